import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const LAYERS = join(import.meta.dirname, "../../src/layers")

describe("layer boundaries", () => {
  it("no infrastructure layer imports an HTTP module (the server plugs into them, not the reverse)", () => {
    const offenders = readdirSync(LAYERS)
      .filter((file) => file.endsWith(".ts"))
      .filter((file) => /from\s+["']\.\.\/http\//.test(readFileSync(join(LAYERS, file), "utf8")))
    expect(offenders).toEqual([])
  })
})
