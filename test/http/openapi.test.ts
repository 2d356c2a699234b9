import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { openApiYaml } from "../../src/bin/openapi.js"

describe("openapi/inventory-service.yaml", () => {
  it("is exactly what the HttpApi generates (run `npm run openapi` after changing the API)", () => {
    expect(readFileSync("openapi/inventory-service.yaml", "utf8")).toBe(openApiYaml())
  })

  it("documents every error as application/problem+json", () => {
    const yaml = openApiYaml()
    expect(yaml).toContain("application/problem+json")
    expect(yaml).not.toMatch(/"4\d\d":\n\s+description: [^\n]+\n\s+content:\n\s+application\/json/)
  })
})
