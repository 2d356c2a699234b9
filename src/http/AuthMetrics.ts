import { Effect, Metric } from "effect"

/** 1 while tokens are verified with JWKS keys older than AUTH_JWKS_MAX_AGE_MS because the key server is unreachable. */
export const jwksStale = Metric.gauge("inventory_auth_jwks_stale", {
  description: "1 while tokens are verified with the last fetched JWKS keys because the key server cannot be reached"
})
/** Tokens verified with such stale keys. */
export const staleKeyVerifications = Metric.counter("inventory_auth_stale_key_verifications", {
  description: "Token verifications that used the last fetched JWKS keys past their age (key server unreachable)",
  incremental: true
})
/** Requests refused with 429 because their address failed authentication too often. */
export const failedAuthLimited = Metric.counter("inventory_auth_failures_limited", {
  description: "Requests answered 429 without a token check because their client address failed authentication too often",
  incremental: true
})

export const initAuthMetrics = Effect.all(
  [Metric.update(jwksStale, 0), Metric.update(staleKeyVerifications, 0), Metric.update(failedAuthLimited, 0)],
  { discard: true }
)
