import { Context, Effect, Layer, Schema } from "effect"
import { HttpEffect, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import { createHash } from "node:crypto"
import { IdempotencyKeyReused } from "../domain/Errors.js"

/** A stable fingerprint of a request: same key with another fingerprint is a reuse (422). */
export const fingerprint = (request: unknown): string =>
  createHash("sha256").update(JSON.stringify(request)).digest("base64url")

/** The response header that marks a stored answer given again (the change did not run twice). */
export const REPLAYED_HEADER = "idempotent-replayed"

/**
 * On the HTTP response of this request, if there is one: every endpoint that takes an
 * Idempotency-Key gets the header from here, not from its handler. Outside a request it is inert
 * (the unsafe variant reads the request from the fiber's context and does nothing without one).
 */
const markReplayed = Effect.withFiber((fiber) => {
  HttpEffect.appendPreResponseHandlerUnsafe(fiber.context, (_, response) =>
    Effect.succeed(HttpServerResponse.setHeader(response, REPLAYED_HEADER, "true"))
  )
  return Effect.void
})

/**
 * `Idempotency-Key` handling, inside the caller's transaction: the first request with a key runs and
 * stores its answer; a retry with the same request gets the stored answer and changes nothing; the
 * same key with a different request is refused. A transaction-scoped advisory lock on the key makes
 * two simultaneous first attempts run one after the other. Refusals are not stored: a retry may
 * succeed once the situation changed.
 */
export class Idempotency extends Context.Service<Idempotency>()("inventory/Idempotency", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const once = <A, I, E, R>(
      options: { readonly scope: string; readonly key: string; readonly request: unknown; readonly schema: Schema.Codec<A, I> },
      effect: Effect.Effect<A, E, R>
    ) =>
      Effect.gen(function* () {
        const requestHash = fingerprint(options.request)
        yield* sql`SELECT pg_advisory_xact_lock(hashtextextended(${options.scope + "\u001e" + options.key}, 0))`
        const [stored] = yield* sql<{ requestHash: string; responseBody: unknown }>`
          SELECT request_hash, response_body FROM idempotency_keys
           WHERE scope = ${options.scope} AND key = ${options.key}`
        if (stored) {
          if (stored.requestHash !== requestHash) return yield* new IdempotencyKeyReused({ key: options.key })
          yield* markReplayed
          return { replayed: true, value: yield* Schema.decodeUnknownEffect(options.schema)(stored.responseBody).pipe(Effect.orDie) }
        }
        const value = yield* effect
        const body = yield* Schema.encodeEffect(options.schema)(value).pipe(Effect.orDie)
        yield* sql`
          INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body)
          VALUES (${options.scope}, ${options.key}, ${requestHash}, 200, ${JSON.stringify(body)}::jsonb)`
        return { replayed: false, value }
      })

    return { once } as const
  })
}) {
  /** Was `Idempotency.Default`; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make)
}
