import { Context, Option, Schema } from "effect"
import { HttpApi, type HttpApiGroup, HttpApiMiddleware, HttpApiSecurity, OpenApi } from "effect/http-api"
import type { Caller, Scope } from "../domain/Caller.js"
import { problems } from "./Problem.js"

/**
 * The contract side of authentication (API.md "Auth"): the bearer scheme the OpenAPI document shows,
 * the refusals it can answer with, and the scope each endpoint needs. The implementation (token
 * verification, scope and rate checks) is http/Auth.ts.
 */

/** The token scope an endpoint needs; `Authentication` enforces whatever this annotation says. */
export class RequiredScope extends Context.Service<RequiredScope, Scope>()("inventory/RequiredScope") {}

/** The verified caller of the current request, for handlers that want more than `CurrentRequest.actor`. */
export class CurrentCaller extends Context.Service<CurrentCaller, Caller>()("inventory/CurrentCaller") {}

/** RFC 6750 `WWW-Authenticate` challenge. */
const challenge = (params: Record<string, string>) =>
  ["Bearer realm=\"inventory-service\"", ...Object.entries(params).map(([k, v]) => `${k}="${v.replace(/["\\]/g, "")}"`)].join(", ")

/** 401: no token, or one that does not verify (signature, algorithm, issuer, audience, time). */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()(
  "Unauthenticated",
  { detail: Schema.String, reason: Schema.Literals(["missing-token", "invalid-token"]) },
  { httpApiStatus: 401, description: "unauthenticated: missing, invalid or expired bearer token" }
) {
  readonly problem = problems.unauthenticated
  override get message() {
    return this.detail
  }
  /** Only a presented token gets `error="invalid_token"` (RFC 6750 §3.1). */
  get problemHeaders(): Record<string, string> {
    return {
      "www-authenticate": this.reason === "invalid-token"
        ? challenge({ error: "invalid_token", error_description: this.detail })
        : challenge({})
    }
  }
}

/** 403: a valid token without the endpoint's scope. */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { detail: Schema.String, requiredScope: Schema.String },
  { httpApiStatus: 403, description: "forbidden: the token lacks the endpoint's scope" }
) {
  readonly problem = problems.forbidden
  override get message() {
    return this.detail
  }
  get problemHeaders(): Record<string, string> {
    return { "www-authenticate": challenge({ error: "insufficient_scope", scope: this.requiredScope }) }
  }
}

/** The one quota policy: RATE_LIMIT_RPS requests per second per caller, counted by each replica. */
export const RATE_LIMIT_POLICY = "per-caller"

/**
 * `RateLimit-Policy` and `RateLimit` (IETF draft-ietf-httpapi-ratelimit-headers, structured fields):
 * the quota `q` per window `w` seconds, what remains `r` and the seconds `t` until it is whole again.
 */
export const rateLimitHeaders = (quota: { readonly limit: number; readonly remaining: number; readonly resetSeconds: number }) => ({
  "ratelimit-policy": `"${RATE_LIMIT_POLICY}";q=${quota.limit};w=1`,
  ratelimit: `"${RATE_LIMIT_POLICY}";r=${Math.max(0, Math.floor(quota.remaining))};t=${Math.max(0, Math.ceil(quota.resetSeconds))}`
})

/** 429: the caller spent its RATE_LIMIT_RPS budget. */
export class RateLimited extends Schema.TaggedError<RateLimited>()(
  "RateLimited",
  // `limit`: the per-caller quota (RATE_LIMIT_RPS); absent for the per-address failed-authentication budget.
  { detail: Schema.String, retryAfterSeconds: Schema.Int, limit: Schema.optionalKey(Schema.Int) },
  { httpApiStatus: 429, description: "rate-limited: too many requests from this caller; see Retry-After and RateLimit" }
) {
  readonly problem = problems.rateLimited
  override get message() {
    return this.detail
  }
  get problemHeaders(): Record<string, string> {
    return {
      "retry-after": String(this.retryAfterSeconds),
      ...(this.limit === undefined ? {} : rateLimitHeaders({ limit: this.limit, remaining: 0, resetSeconds: this.retryAfterSeconds }))
    }
  }
}

/** 503: the key server (AUTH_JWKS_URL) did not answer in time, so no token can be checked. */
export class KeysUnavailable extends Schema.TaggedError<KeysUnavailable>()(
  "KeysUnavailable",
  { detail: Schema.String },
  { httpApiStatus: 503, description: "unavailable: the token keys cannot be fetched; retry later" }
) {
  readonly problem = problems.unavailable
  override get message() {
    return this.detail
  }
  get problemHeaders(): Record<string, string> {
    return { "retry-after": "2" }
  }
}

const bearer = HttpApiSecurity.bearer.pipe(
  HttpApiSecurity.annotate(OpenApi.Description, "A JWT (RS256, ES256 or EdDSA) whose `scope` claim holds the endpoint's scope"),
  HttpApiSecurity.annotate(OpenApi.Format, "JWT")
)

/**
 * Every endpoint of a group with `.middleware(Authentication)` needs a valid bearer token holding
 * the scope of its `RequiredScope` annotation. The implementation (http/Auth.ts) runs the endpoint
 * with `CurrentCaller` provided.
 */
export class Authentication extends HttpApiMiddleware.Service<Authentication, { provides: CurrentCaller }>()("inventory/Authentication", {
  security: { bearer },
  error: [Unauthenticated, Forbidden, RateLimited, KeysUnavailable]
}) {}

export interface ProtectedRoute {
  readonly method: string
  readonly path: string
  readonly operationId: string
  readonly scope: Scope
}

/**
 * Every endpoint behind `Authentication` with its scope, read from the HttpApi itself: a new group
 * needs only `.middleware(Authentication)` and its `RequiredScope` annotations. An endpoint behind it
 * without a scope is a bug, thrown at start-up.
 */
export const scopesByRoute = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>
): ReadonlyArray<ProtectedRoute> => {
  const routes: Array<ProtectedRoute> = []
  HttpApi.reflect(api, {
    onGroup: () => undefined,
    onEndpoint: ({ endpoint, group, mergedAnnotations, middleware }) => {
      // The class is the key in the endpoint's middleware set; its static type lacks the set's `provides` member.
      if (!middleware.has(Authentication as unknown as HttpApiMiddleware.AnyService)) return
      const scope = Context.getOption(mergedAnnotations, RequiredScope)
      if (Option.isNone(scope)) throw new Error(`${endpoint.method} ${endpoint.path} uses Authentication but has no RequiredScope annotation`)
      routes.push({ method: endpoint.method, path: endpoint.path, operationId: `${group.identifier}.${endpoint.identifier}`, scope: scope.value })
    }
  })
  return routes
}

type Json = Record<string, unknown>

/** OpenAPI: each protected operation's security requirement names its scope (OpenAPI 3.1 allows roles for http schemes). */
export const documentScopes = (spec: Json, routes: ReadonlyArray<ProtectedRoute>): Json => {
  const byOperation = new Map(routes.map((r) => [r.operationId, r.scope]))
  for (const item of Object.values((spec["paths"] as Json | undefined) ?? {})) {
    for (const operation of Object.values(item as Json)) {
      const op = operation as Json
      const scope = byOperation.get(String(op["operationId"]))
      if (scope === undefined) continue
      op["security"] = [{ bearer: [scope] }]
      op["description"] = [op["description"], `Requires a bearer token with scope \`${scope}\`.`].filter(Boolean).join("\n\n")
    }
  }
  // HTTP auth scheme names are case-insensitive (RFC 9110); the document keeps Effect 3's "bearer".
  const schemes = (spec["components"] as Json | undefined)?.["securitySchemes"] as Record<string, Json> | undefined
  for (const scheme of Object.values(schemes ?? {})) {
    if (scheme["type"] === "http" && typeof scheme["scheme"] === "string") scheme["scheme"] = scheme["scheme"].toLowerCase()
  }
  return spec
}
