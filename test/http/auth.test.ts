// API.md "Auth": every endpoint but health/metrics/docs needs a valid bearer token (401 otherwise,
// with WWW-Authenticate: Bearer) holding the endpoint's scope (403 otherwise), and a refused request
// changes nothing. The endpoint list comes from the HttpApi itself, so new endpoints are covered.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SCOPES } from "../../src/domain/Caller.js"
import { InventoryApi } from "../../src/http/Api.js"
import { scopesByRoute } from "../../src/http/Security.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { bearer, hs256WithPublicKey, signToken, unknownKey, unsignedToken } from "../support/auth.js"
import { query } from "../support/database.js"
import { request } from "../support/http.js"
import { snapshot } from "../support/snapshot.js"

const routes = scopesByRoute(InventoryApi).map(({ method, path, scope }) => ({
  method,
  path,
  scope,
  url: path.replace(/:(\w+)/g, (_, name: string) => `existing-${name}`)
}))

const call = (app: TestApp, route: (typeof routes)[number], headers: Record<string, string>) =>
  request(app.baseUrl, route.method, route.url, route.method === "GET" ? { headers } : { headers, body: { type: "PURCHASE", quantity: 1 } })

const BAD_TOKENS: ReadonlyArray<readonly [string, () => Promise<Record<string, string>>, RegExp]> = [
  ["no Authorization header", async () => ({}), /bearer token is required/],
  ["an empty Bearer", async () => ({ authorization: "Bearer " }), /bearer token is required/],
  ["Basic credentials", async () => ({ authorization: "Basic YWxpY2U6c2VjcmV0" }), /bearer token is required/],
  ["a token without the Bearer prefix", async () => ({ authorization: await signToken({ sub: "c", scope: SCOPES.join(" ") }) }), /bearer token is required/],
  ["an expired token", async () => ({ authorization: `Bearer ${await signToken({ sub: "c", scope: SCOPES.join(" "), expiresIn: -120 })}` }), /expired/],
  ["a token valid only in the future (nbf)", async () => ({ authorization: `Bearer ${await signToken({ sub: "c", scope: SCOPES.join(" "), notBefore: 600 })}` }), /not valid yet/],
  ["a wrong issuer", async () => ({ authorization: `Bearer ${await signToken({ sub: "c", scope: SCOPES.join(" "), issuer: "someone-else" })}` }), /issuer/],
  ["a wrong audience", async () => ({ authorization: `Bearer ${await signToken({ sub: "c", scope: SCOPES.join(" "), audience: "billing-service" })}` }), /audience/],
  ["alg: none", async () => ({ authorization: `Bearer ${unsignedToken()}` }), /algorithm is not accepted/],
  ["HS256 signed with the public key", async () => ({ authorization: `Bearer ${hs256WithPublicKey()}` }), /algorithm is not accepted/],
  ["a token signed by an unknown key", async () => ({ authorization: `Bearer ${await signToken({ sub: "c", scope: SCOPES.join(" "), key: unknownKey })}` }), /signature does not verify/],
  ["a token naming no caller", async () => ({ authorization: `Bearer ${await signToken({ scope: SCOPES.join(" ") })}` }), /names no caller/],
  ["garbage", async () => ({ authorization: "Bearer not.a.jwt" }), /malformed/],
  ["a huge token", async () => ({ authorization: `Bearer ${"a".repeat(9000)}` }), /too long|required/]
]

describe("authentication and scopes", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "auth" })
    // Something a refused request could change: a variant with stock.
    for (const name of ["variantId"]) {
      expect((await app.api.put(`/v1/stock-levels/existing-${name}`, { lowStockThreshold: 1 })).status).toBe(201)
      expect((await app.api.post(`/v1/stock-levels/existing-${name}/adjustments`, { type: "PURCHASE", quantity: 10 })).status).toBe(200)
    }
  })
  afterAll(() => app?.close())

  it("knows every protected endpoint and its scope", () => {
    expect(routes.length).toBeGreaterThanOrEqual(5)
    expect(routes).toContainEqual(expect.objectContaining({ method: "POST", path: "/v1/stock-levels/:variantId/adjustments", scope: "inventory:adjust" }))
    expect(routes).toContainEqual(expect.objectContaining({ method: "GET", path: "/v1/stock-levels/:variantId", scope: "inventory:read" }))
  })

  it.each(BAD_TOKENS)("answers 401 problem+json with WWW-Authenticate to %s on every endpoint, changing nothing", async (_, headers, detail) => {
    const before = await snapshot(app.database.url)
    for (const route of routes) {
      const res = await call(app, route, await headers())
      expect(res.status, `${route.method} ${route.path}`).toBe(401)
      expect(res.headers.get("content-type")).toBe("application/problem+json")
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="inventory-service"/)
      expect(res.body).toMatchObject({ status: 401, code: "unauthenticated", title: "Unauthenticated" })
      expect(res.body.detail).toMatch(detail)
      expect(JSON.stringify(res.body)).not.toMatch(/eyJ|stack|at .*\.ts/)
    }
    expect(await snapshot(app.database.url)).toEqual(before)
  })

  it("marks a presented but invalid token with error=\"invalid_token\" (RFC 6750)", async () => {
    const res = await request(app.baseUrl, "GET", "/v1/stock-levels/x", { headers: { authorization: `Bearer ${unsignedToken()}` } })
    expect(res.headers.get("www-authenticate")).toMatch(/error="invalid_token"/)
    const none = await request(app.baseUrl, "GET", "/v1/stock-levels/x")
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="inventory-service"')
  })

  it("answers 403 forbidden to a valid token lacking the endpoint's scope, changing nothing", async () => {
    const before = await snapshot(app.database.url)
    for (const route of routes) {
      for (const other of SCOPES.filter((s) => s !== route.scope)) {
        const res = await call(app, route, await bearer(other))
        expect(res.status, `${route.method} ${route.path} with ${other}`).toBe(403)
        expect(res.headers.get("content-type")).toBe("application/problem+json")
        expect(res.headers.get("www-authenticate")).toContain(`error="insufficient_scope", scope="${route.scope}"`)
        expect(res.body).toMatchObject({ status: 403, code: "forbidden", requiredScope: route.scope })
      }
      const none = await call(app, route, await bearer(""))
      expect(none.status).toBe(403)
    }
    expect(await snapshot(app.database.url)).toEqual(before)
  })

  it("lets a token with exactly the endpoint's scope through", async () => {
    for (const route of routes) {
      const res = await call(app, route, await bearer(route.scope))
      expect([401, 403]).not.toContain(res.status)
      expect(res.status).toBeLessThan(500)
    }
  })

  it("accepts the scp array form of scopes and a small clock skew", async () => {
    const token = await signToken({ sub: "skewed", claims: { scp: ["inventory:read"] }, notBefore: 10 })
    const res = await request(app.baseUrl, "GET", "/v1/stock-levels/existing-variantId", { headers: { authorization: `Bearer ${token}` } })
    expect(res.status).toBe(200)
  })

  it("records the caller (sub) in the history entries its changes write", async () => {
    const res = await request(app.baseUrl, "POST", "/v1/stock-levels/existing-variantId/adjustments", {
      headers: await bearer("inventory:adjust", "order-service"),
      body: { type: "SALE", quantity: 1 }
    })
    expect(res.status).toBe(200)
    expect(res.body.entry).not.toHaveProperty("actor")
    const [row] = await query(app.database.url, "SELECT actor FROM inventory_history WHERE id = $1", [res.body.entry.id])
    expect(row).toEqual({ actor: "order-service" })
  })

  it("uses azp or client_id when the token has no sub", async () => {
    const token = await signToken({ scope: "inventory:adjust", claims: { client_id: "product-service" } })
    const res = await request(app.baseUrl, "POST", "/v1/stock-levels/existing-variantId/adjustments", {
      headers: { authorization: `Bearer ${token}` },
      body: { type: "RETURN", quantity: 1 }
    })
    expect(res.status).toBe(200)
    const [row] = await query(app.database.url, "SELECT actor FROM inventory_history WHERE id = $1", [res.body.entry.id])
    expect(row).toEqual({ actor: "product-service" })
  })

  it("keeps health, /openapi.json and /docs open without a token", async () => {
    for (const path of ["/health/live", "/health/ready", "/openapi.json", "/docs"]) {
      const res = await request(app.baseUrl, "GET", path)
      expect(res.status, path).toBe(200)
    }
  })

  it("shows the bearer scheme and each endpoint's 401/403 in the OpenAPI document", async () => {
    const spec = (await request(app.baseUrl, "GET", "/openapi.json")).body
    expect(spec.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer", bearerFormat: "JWT" })
    const operation = spec.paths["/v1/stock-levels/{variantId}/adjustments"].post
    expect(operation.security).toEqual([{ bearer: ["inventory:adjust"] }])
    expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(["401", "403", "429"]))
    expect(spec.paths["/health/live"].get.security).toEqual([])
  })
})
