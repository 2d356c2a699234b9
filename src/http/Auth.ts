import { Context, Duration, Effect, Layer, Metric, Option, Redacted } from "effect"
import { HttpEffect, HttpServerRequest } from "effect/http"
import { RateLimiter } from "effect/persistence"
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwksCache,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
  type JWKSCacheInput,
  type JWTVerifyGetKey
} from "jose"
import { createPublicKey, X509Certificate, type KeyObject } from "node:crypto"
import { callerOf, hasScope, type Caller, type Scope } from "../domain/Caller.js"
import { AppConfig, InvalidConfig, type AppConfigShape } from "../layers/Config.js"
import { CurrentRequest } from "../services/RequestContext.js"
import { InventoryApi } from "./Api.js"
import { failedAuthLimited, initAuthMetrics, jwksStale, staleKeyVerifications } from "./AuthMetrics.js"
import { requestFactsIn } from "./HttpMetrics.js"
import { loadOrCreateDevKey } from "./DevKey.js"
import { makeFailedAuthLimiter } from "./FailedAuthLimiter.js"
import { setEachHeader } from "./ResponseHeaders.js"
import { Authentication, CurrentCaller, Forbidden, KeysUnavailable, RateLimited, rateLimitHeaders, scopesByRoute, Unauthenticated } from "./Security.js"

/** Asymmetric algorithms only: `none` and every HMAC (incl. HS256 "signed" with our public key) are refused. */
export const ALGORITHMS = ["RS256", "ES256", "EdDSA"] as const
type Algorithm = (typeof ALGORITHMS)[number]

/** Longer tokens are refused before any parsing (real ones are well under 2 KiB). */
const MAX_TOKEN_LENGTH = 8192
/** `Authorization: Bearer <b64token>` (RFC 6750 §2.1); anything else is no token at all. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i
/** While verifying with stale keys, the key server is asked again at most this often (one request pays its timeout). */
const STALE_RECHECK_MS = 10_000
/**
 * Verified tokens remembered by their exact text: a peer service sends the same token for its whole
 * life, and a signature check (ECDSA/RSA) costs more CPU than the rest of a request. Bounded in size
 * (least recently used out first) and in age, so a key removed from the JWKS stops admitting its
 * tokens within a minute; never past the token's `exp`. Refusals are never remembered.
 */
const VERIFIED_CACHE_MAX_ENTRIES = 1_000
const VERIFIED_CACHE_MAX_AGE_MS = 60_000

interface KeySource {
  readonly getKey: JWTVerifyGetKey
  readonly algorithms: ReadonlyArray<Algorithm>
  readonly description: string
}

/** Marks a failure to fetch the key set (as opposed to a token that matches no key). */
class KeyFetchFailed extends Error {}

const invalid = (variable: string, message: string) => new InvalidConfig({ message: `Invalid configuration: ${variable}: ${message}` })

/** The algorithm a public key verifies, or undefined for keys we do not accept (small RSA, other curves). */
const algorithmOf = (key: KeyObject): Algorithm | undefined => {
  const details = key.asymmetricKeyDetails
  switch (key.asymmetricKeyType) {
    case "rsa":
      return (details?.modulusLength ?? 0) >= 2048 ? "RS256" : undefined
    case "ec":
      return details?.namedCurve === "prime256v1" ? "ES256" : undefined
    case "ed25519":
      return "EdDSA"
    default:
      return undefined
  }
}

const jwkAcceptable = (jwk: JWK) =>
  jwk.d === undefined && (jwk.kty === "RSA" || (jwk.kty === "EC" && jwk.crv === "P-256") || (jwk.kty === "OKP" && jwk.crv === "Ed25519"))

/**
 * AUTH_PUBLIC_KEY(_FILE): a PEM public key or certificate, one JWK, or a JWK set (several keys, so a
 * new key can be added before tokens signed with it appear: rotation without downtime).
 */
const staticKeySource = (text: string): Effect.Effect<KeySource, InvalidConfig> =>
  Effect.gen(function* () {
    const VARIABLE = "AUTH_PUBLIC_KEY"
    if (/PRIVATE KEY/.test(text) || /"d"\s*:/.test(text)) return yield* invalid(VARIABLE, "holds a private key; give the public key only")
    if (text.startsWith("{")) {
      const parsed = yield* Effect.try({ try: () => JSON.parse(text) as Partial<JSONWebKeySet> & JWK, catch: () => invalid(VARIABLE, "is not valid JSON (JWK or JWK set)") })
      const keys: Array<JWK> = Array.isArray(parsed.keys) ? parsed.keys : [parsed]
      if (keys.length === 0 || !keys.every(jwkAcceptable)) {
        return yield* invalid(VARIABLE, "every key must be a public RSA, EC P-256 or Ed25519 JWK")
      }
      return { getKey: createLocalJWKSet({ keys }), algorithms: ALGORITHMS, description: `${keys.length} configured JWK(s)` }
    }
    const key = yield* Effect.try({
      try: () => (/BEGIN CERTIFICATE/.test(text) ? new X509Certificate(text).publicKey : createPublicKey(text)),
      catch: () => invalid(VARIABLE, "is not a PEM public key, certificate, JWK or JWK set")
    })
    const algorithm = algorithmOf(key)
    if (algorithm === undefined) return yield* invalid(VARIABLE, "must be an RSA (2048 bits or more), EC P-256 or Ed25519 key")
    return { getKey: async () => key, algorithms: [algorithm], description: `configured ${algorithm} public key` }
  })

/** Where a key source reports what the request path cannot (the key server's state), as Effects to run. */
type Report = (effect: Effect.Effect<void>) => void

/**
 * AUTH_JWKS_URL: fetched lazily, cached, re-fetched on an unknown kid and at least every
 * AUTH_JWKS_MAX_AGE_MS, each fetch bounded by AUTH_JWKS_TIMEOUT_MS. When the key server cannot be
 * reached, the last keys fetched keep verifying for AUTH_JWKS_STALE_GRACE_SECONDS past that age (an
 * identity-provider outage is not an API outage), with a warning, a gauge and a re-check every
 * STALE_RECHECK_MS; after the grace period, or for a kid those keys lack, requests answer 503.
 */
const remoteKeySource = (url: string, config: AppConfigShape, report: Report): KeySource => {
  // jose records the last fetched set and its time here (`uat`), whether a later fetch failed or not.
  const cache: JWKSCacheInput = {}
  const jwks = createRemoteJWKSet(new URL(url), {
    timeoutDuration: config.authJwksTimeoutMs,
    // A flood of tokens with bogus kids re-fetches at most once per cooldown.
    cooldownDuration: config.authJwksCooldownMs,
    cacheMaxAge: config.authJwksMaxAgeMs,
    [jwksCache]: cache
  })
  const usableForMs = config.authJwksMaxAgeMs + config.authJwksStaleGraceSeconds * 1000
  let stale: { readonly uat: number; readonly keys: JWTVerifyGetKey } | undefined
  let recheckAt = 0
  /** The last fetched keys while still within the grace period. */
  const lastKeys = () => {
    if (!("uat" in cache) || Date.now() - cache.uat > usableForMs) return undefined
    if (stale?.uat !== cache.uat) stale = { uat: cache.uat, keys: createLocalJWKSet(cache.jwks) }
    return stale
  }
  let usingStale = false
  const withStale = async (keys: JWTVerifyGetKey, header: Parameters<JWTVerifyGetKey>[0], token: Parameters<JWTVerifyGetKey>[1]) => {
    report(Metric.update(staleKeyVerifications, 1))
    try {
      return await keys(header, token)
    } catch (error) {
      // A kid the old set lacks may be a new key we cannot fetch: the key server's fault, not the token's.
      if (error instanceof errors.JWKSNoMatchingKey) throw new KeyFetchFailed("unknown kid while the key server cannot be reached")
      throw error
    }
  }
  return {
    getKey: async (header, token) => {
      const fallback = Date.now() < recheckAt ? lastKeys() : undefined
      if (fallback !== undefined) return withStale(fallback.keys, header, token)
      try {
        const key = await jwks(header, token)
        if (usingStale) {
          usingStale = false
          report(Effect.andThen(Metric.update(jwksStale, 0), Effect.logInfo("auth: the JWKS key server answers again; fresh keys in use")))
        }
        return key
      } catch (error) {
        // Only "no key has this kid" is the token's fault; anything else is the key server's.
        if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) throw error
        const reason = error instanceof Error ? error.message : String(error)
        const last = lastKeys()
        if (last === undefined) {
          if (usingStale) {
            usingStale = false
            report(Effect.andThen(Metric.update(jwksStale, 0), Effect.logError("auth: JWKS keys past their grace period; tokens cannot be verified").pipe(Effect.annotateLogs("reason", reason))))
          }
          throw new KeyFetchFailed(reason)
        }
        usingStale = true
        recheckAt = Date.now() + STALE_RECHECK_MS
        const ageSeconds = Math.round((Date.now() - last.uat) / 1000)
        report(
          Effect.andThen(
            Metric.update(jwksStale, 1),
            Effect.logWarning("auth: JWKS key server unreachable; verifying with the last fetched keys").pipe(
              Effect.annotateLogs({ reason, keysAgeSeconds: ageSeconds, graceEndsInSeconds: Math.round((last.uat + usableForMs - Date.now()) / 1000) })
            )
          )
        )
        return withStale(last.keys, header, token)
      }
    },
    algorithms: ALGORITHMS,
    description: `JWKS at ${url}`
  }
}

const keySource = (config: AppConfigShape, report: Report): Effect.Effect<KeySource, InvalidConfig> => {
  if (Option.isSome(config.authJwksUrl)) return Effect.succeed(remoteKeySource(config.authJwksUrl.value, config, report))
  if (Option.isSome(config.authPublicKey)) return staticKeySource(Redacted.value(config.authPublicKey.value).trim())
  // Not production (Config refuses that): a development key pair under DATA_DIR.
  return loadOrCreateDevKey(config.dataDir).pipe(
    Effect.mapError((error) => invalid("DATA_DIR", error.message)),
    Effect.tap((pair) =>
      Effect.logWarning("no AUTH_JWKS_URL or AUTH_PUBLIC_KEY: accepting tokens of the development key; get one with npm run token").pipe(
        Effect.annotateLogs("keyFile", pair.path)
      )
    ),
    Effect.map((pair) => ({
      getKey: createLocalJWKSet({ keys: [pair.publicJwk] }),
      algorithms: ["ES256" as const],
      description: "development key"
    }))
  )
}

const refused = (detail: string) => new Unauthenticated({ detail, reason: "invalid-token" })

/** A verification failure as the client sees it: what is wrong, never the token itself. */
const toRefusal = (error: unknown): Unauthenticated | KeysUnavailable => {
  if (error instanceof KeyFetchFailed) return new KeysUnavailable({ detail: "The token signing keys cannot be fetched; retry later" })
  if (error instanceof errors.JWTExpired) return refused("The token has expired")
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case "nbf":
        return refused("The token is not valid yet")
      case "iss":
        return refused("The token's issuer is not accepted")
      case "aud":
        return refused("The token's audience is not this service")
      case "exp":
        return refused("The token has no valid expiry")
      default:
        return refused("The token's claims are invalid")
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return refused("The token's signing algorithm is not accepted")
  }
  if (error instanceof errors.JWKSNoMatchingKey) return refused("The token is signed by an unknown key")
  if (error instanceof errors.JWSSignatureVerificationFailed) return refused("The token's signature does not verify")
  return refused("The token is malformed")
}

/** Verifies bearer tokens against the configured key source. */
export class TokenVerifier extends Context.Service<TokenVerifier>()("inventory/TokenVerifier", {
  make: Effect.gen(function* () {
    const config = yield* AppConfig
    yield* initAuthMetrics
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const source = yield* keySource(config, (effect) => {
      runFork(effect)
    })
    yield* Effect.logInfo("verifying bearer tokens").pipe(
      Effect.annotateLogs({ keys: source.description, issuer: config.authIssuer, audience: config.authAudience })
    )
    const options = {
      algorithms: [...source.algorithms],
      issuer: config.authIssuer,
      audience: config.authAudience,
      clockTolerance: config.authClockSkewSeconds,
      requiredClaims: ["exp"]
    }
    // Per verifier instance (not module state); a Map iterates in insertion order, so its first key is
    // the least recently used one.
    const verified = new Map<string, { readonly caller: Caller; readonly until: number }>()
    const remember = (token: string, caller: Caller, exp: number | undefined) => {
      const until = Math.min(Date.now() + VERIFIED_CACHE_MAX_AGE_MS, (exp ?? 0) * 1000)
      if (until <= Date.now()) return
      if (verified.size >= VERIFIED_CACHE_MAX_ENTRIES) verified.delete(verified.keys().next().value!)
      verified.set(token, { caller, until })
    }
    const recalled = (token: string): Caller | undefined => {
      const entry = verified.get(token)
      if (entry === undefined) return undefined
      verified.delete(token)
      // jose judges `exp` by the wall clock too; past `until` the token is verified afresh.
      if (entry.until <= Date.now()) return undefined
      verified.set(token, entry)
      return entry.caller
    }
    const verify = (token: string): Effect.Effect<Caller, Unauthenticated | KeysUnavailable> =>
      Effect.suspend(() => {
        const known = recalled(token)
        if (known !== undefined) return Effect.succeed(known)
        return Effect.tryPromise({ try: () => jwtVerify(token, source.getKey, options), catch: toRefusal }).pipe(
          Effect.flatMap(({ payload }) =>
            Option.match(Option.fromNullishOr(callerOf(payload)), {
              onNone: () => Effect.fail(refused("The token names no caller (sub, azp or client_id)")),
              onSome: (caller) => Effect.sync(() => remember(token, caller, payload.exp)).pipe(Effect.as(caller))
            })
          )
        )
      })
    /** Whether `token` verified recently (no signature check needed to admit it again). */
    const remembered = (token: string) => Effect.sync(() => recalled(token) !== undefined)
    return {
      verify,
      remembered,
      /** The caller of a token verified recently, without an Effect (the request path's common case). */
      recall: recalled
    } as const
  })
}) {
  /** Was `TokenVerifier.Default`: needs AppConfig from outside, as before. */
  static readonly layer = Layer.effect(this, this.make)
}

const bearerToken = (header: string | undefined): Option.Option<string> => {
  if (header === undefined || header.length > MAX_TOKEN_LENGTH + 16) return Option.none()
  return Option.fromNullishOr(BEARER.exec(header)?.[1])
}

/**
 * The `Authentication` middleware: a valid token (401 otherwise), the caller's rate budget (429),
 * then the endpoint's scope (403). The caller goes into `CurrentRequest.actor` (history rows) and
 * the log annotations of the rest of the request.
 */
export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const verifier = yield* TokenVerifier
    const config = yield* AppConfig
    const limiter = yield* RateLimiter.RateLimiter
    const scopes = new Map([...scopesByRoute(InventoryApi)].map((r) => [`${r.method} ${r.path}`, r.scope]))
    const failures = makeFailedAuthLimiter(config.authFailuresPerMinute)

    /**
     * An address that failed authentication AUTH_FAILURES_PER_MINUTE times gets 429 for any token not
     * verified recently, before its signature is checked: bad tokens stop costing CPU, while callers
     * behind the same address whose tokens are remembered carry on.
     */
    const checkFailureBudget = (address: string, token: string): Effect.Effect<void, RateLimited> =>
      Effect.gen(function* () {
        if (config.authFailuresPerMinute === 0) return
        const wait = failures.retryAfterSeconds(address)
        if (wait === 0 || (yield* verifier.remembered(token))) return
        yield* Metric.update(failedAuthLimited, 1)
        return yield* new RateLimited({
          detail: `More than ${config.authFailuresPerMinute} failed authentications per minute from this address`,
          retryAfterSeconds: wait
        })
      })

    const rateLimit = (caller: Caller): Effect.Effect<void, RateLimited, HttpServerRequest.HttpServerRequest> =>
      config.rateLimitRps === 0
        ? Effect.void
        : limiter
            .consume({ algorithm: "token-bucket", onExceeded: "fail", window: Duration.seconds(1), limit: config.rateLimitRps, key: caller.id })
            .pipe(
              // Every answer of a limited endpoint tells the caller its quota (RateLimit headers).
              Effect.flatMap((quota) =>
                HttpEffect.appendPreResponseHandler((_, response) =>
                  Effect.succeed(
                    setEachHeader(
                      response,
                      rateLimitHeaders({ limit: quota.limit, remaining: quota.remaining, resetSeconds: Duration.toSeconds(quota.resetAfter) })
                    )
                  )
                )
              ),
              Effect.catch((error) =>
                Effect.fail(
                  new RateLimited({
                    limit: config.rateLimitRps,
                    detail: `More than ${config.rateLimitRps} requests per second from this caller`,
                    retryAfterSeconds: error.reason._tag === "RateLimitExceeded"
                      ? Math.max(1, Math.ceil(Duration.toSeconds(error.reason.retryAfter)))
                      : 1
                  })
                )
              )
            )

    /** Scope checks, the caller's rate budget, then the rest of the request as the caller. */
    const admit = <A, E, R>(
      httpEffect: Effect.Effect<A, E, R>,
      caller: Caller,
      scope: Scope | undefined,
      context: Context.Context<never>
    ): Effect.Effect<A, E | RateLimited | Forbidden, Exclude<R, CurrentCaller> | HttpServerRequest.HttpServerRequest> => {
      // The access log line (written by the server's request middleware, outside this scope) learns the caller here.
      const facts = requestFactsIn(context)
      if (facts !== undefined) facts.actor = caller.id
      // Fail closed: a route missing from the map (impossible after the start-up check) needs a scope nobody has.
      if (scope === undefined || !hasScope(caller, scope)) {
        const forbidden = new Forbidden({ detail: `This endpoint needs the scope ${scope ?? "(unknown)"}`, requiredScope: scope ?? "(unknown)" })
        return Effect.andThen(rateLimit(caller), Effect.andThen(Effect.logDebug("request refused", forbidden.message), Effect.fail(forbidden)))
      }
      // The rest of the request runs as the caller: CurrentCaller for handlers, CurrentRequest.actor
      // (history rows, and the `actor` field of its log lines).
      const current = Context.getUnsafe(context, CurrentRequest)
      // Overlays (Context.add) on the request's context, not a merge that copies every service.
      const asCaller = Effect.updateContext(httpEffect as Effect.Effect<A, E>, (outer: Context.Context<never>) =>
        Context.add(Context.add(outer, CurrentCaller, caller), CurrentRequest, { ...current, actor: caller.id })
      ) as Effect.Effect<A, E, Exclude<R, CurrentCaller>>
      return config.rateLimitRps === 0 ? asCaller : Effect.andThen(Effect.tapError(rateLimit(caller), (error) => Effect.logDebug("request refused", error.message)), asCaller)
    }

    return {
      // The credential HttpApiSecurity.bearer decodes is not used: the header is read and checked
      // here against the RFC 6750 syntax (anything else is "no token", as before).
      bearer: (httpEffect, { endpoint }) =>
        Effect.withFiber((fiber) => {
          const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
          const token = bearerToken(request.headers["authorization"])
          const scope = scopes.get(`${endpoint.method} ${endpoint.path}`)
          // A token verified recently (the common case: a peer sends one token for its whole life) is
          // admitted without an Effect of its own; it passes the failure budget by being remembered.
          const known = Option.isSome(token) && token.value.length <= MAX_TOKEN_LENGTH ? verifier.recall(token.value) : undefined
          if (known !== undefined) return admit(httpEffect, known, scope, fiber.context)
          const address = Option.getOrElse(request.remoteAddress, () => "unknown")
          return Effect.gen(function* () {
            if (Option.isNone(token)) {
              return yield* new Unauthenticated({ detail: "A bearer token is required (Authorization: Bearer <JWT>)", reason: "missing-token" })
            }
            if (token.value.length > MAX_TOKEN_LENGTH) return yield* refused("The token is too long")
            yield* checkFailureBudget(address, token.value)
            return yield* verifier.verify(token.value)
          }).pipe(
            // A token that does not verify cost a check; a missing one cost nothing and is not counted.
            Effect.tapErrorTag("Unauthenticated", (error) => Effect.sync(() => error.reason === "invalid-token" && failures.failed(address))),
            Effect.tapError((error) => Effect.logDebug("request refused", error.message)),
            Effect.flatMap((caller) => admit(httpEffect, caller, scope, fiber.context))
          )
        })
    }
  })
).pipe(Layer.provide([TokenVerifier.layer, RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory))]))
