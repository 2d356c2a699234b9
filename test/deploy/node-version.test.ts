// One Node major everywhere: the suite itself (npm scripts put node_modules/.bin, with the pinned
// `node` devDependency, first on the PATH), .nvmrc, engines and the image. A machine whose own Node
// is older still runs `npm test` on the pinned one; this test fails if it does not.
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { parseStages } from "./dockerfile-rules.js"

const root = new URL("../../", import.meta.url)
const read = (file: string) => readFileSync(new URL(file, root), "utf8")
const major = (version: string) => Number(/(\d+)/.exec(version)?.[1])

const pkg = JSON.parse(read("package.json")) as { engines: { node: string }; devDependencies: Record<string, string> }
const nvmrc = major(read(".nvmrc").trim())

describe("the Node version", () => {
  it("is the one .nvmrc names, for the test run itself and the service processes it spawns", () => {
    expect(nvmrc).toBeGreaterThanOrEqual(24)
    expect(major(process.versions.node)).toBe(nvmrc)
  })

  it("is pinned exactly as the `node` devDependency, allowed by engines, and the image's base", () => {
    expect(pkg.devDependencies["node"]).toMatch(/^\d+\.\d+\.\d+$/)
    expect(major(pkg.devDependencies["node"]!)).toBe(nvmrc)
    expect(pkg.engines.node).toBe(`>=${nvmrc}`)
    const bases = parseStages(read("Dockerfile")).map((s) => s.image)
    expect(bases.length).toBeGreaterThan(0)
    for (const base of bases) expect(base).toMatch(new RegExp(`^node:${nvmrc}\\.`))
  })
})
