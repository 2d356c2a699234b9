import { OpenApi } from "effect/http-api"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { openApiYaml } from "../../src/bin/openapi.js"
import { InventoryApi } from "../../src/http/Api.js"

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

describe("the OpenAPI problem documentation", () => {
  const spec: any = OpenApi.fromApi(InventoryApi)
  const responses = Object.entries(spec.paths).flatMap(([path, item]: [string, any]) =>
    Object.entries(item).flatMap(([method, operation]: [string, any]) =>
      Object.entries(operation.responses ?? {}).map(([status, response]: [string, any]) => ({ at: `${method} ${path} ${status}`, status: Number(status), response }))
    )
  )
  const problemsOf = (response: any) => response.content?.["application/problem+json"]
  const codesOf = (media: any): Array<string> => media.schema.allOf.find((s: any) => s.properties?.code)?.properties.code.enum ?? []

  it("gives every problem response an example per code, each with that response's status and code", () => {
    const documented = responses.filter(({ response }) => problemsOf(response) !== undefined)
    expect(documented.length).toBeGreaterThan(30)
    for (const { at, status, response } of documented) {
      const media = problemsOf(response)
      const codes = codesOf(media)
      expect(codes.length, at).toBeGreaterThan(0)
      expect(Object.keys(media.examples), at).toEqual(codes)
      for (const code of codes) {
        expect(media.examples[code].value, `${at} ${code}`).toMatchObject({ status, code, type: `urn:inventory:problem:${code}` })
      }
    }
  })

  it("lists every code the 409 of an adjustment can carry", () => {
    const conflict = spec.paths["/v1/stock-levels/{variantId}/adjustments"].post.responses["409"]
    expect(codesOf(problemsOf(conflict))).toEqual(["insufficient-stock", "version-conflict", "stock-limit-exceeded"])
    for (const code of ["insufficient-stock", "version-conflict", "stock-limit-exceeded"]) expect(conflict.description).toContain(code)
  })

  it("states the Idempotency-Key semantics: scope, replay and its header, 422, retention", () => {
    const header = spec.paths["/v1/stock-levels/{variantId}/adjustments"].post.parameters.find((p: any) => p.name === "idempotency-key")
    expect(header.description).toMatch(/per caller/)
    expect(header.description).toContain("Idempotent-Replayed: true")
    expect(header.description).toContain("422 `idempotency-key-reused`")
    expect(header.description).toContain("IDEMPOTENCY_KEY_RETENTION_HOURS")
  })
})
