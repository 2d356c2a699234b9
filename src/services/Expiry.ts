import { Duration, Effect, Layer } from "effect"
import { runBackgroundLoop } from "../layers/BackgroundLoop.js"
import { AppConfig } from "../layers/Config.js"
import { Reservations } from "./Reservations.js"

/** Reservations one sweep transaction expires at most: short transactions, short row locks. */
export const SWEEP_BATCH = 200

/** Expires every due reservation now, batch after batch; the number expired (the admin CLI's "expire due now" too). */
export const sweepOnce = Effect.gen(function* () {
  const reservations = yield* Reservations
  let total = 0
  for (;;) {
    const expired = yield* reservations.expireDue(SWEEP_BATCH)
    total += expired
    if (expired < SWEEP_BATCH) return total
  }
})

/**
 * The expiry sweeper: a fiber of the service's runtime that every RESERVATION_SWEEP_INTERVAL_MS
 * expires the ACTIVE reservations past `expiresAt`. Every replica runs one; they share the work
 * through `FOR UPDATE SKIP LOCKED`. Closing the layer's scope (shutdown) interrupts it between
 * batches: each batch (`expireDue`) is uninterruptible, so shutdown never cancels one of its queries.
 */
export const ExpiryLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const { reservationSweepIntervalMs } = yield* AppConfig
    const sweep = sweepOnce.pipe(
      Effect.tap((expired) => (expired > 0 ? Effect.logDebug("expiry sweep").pipe(Effect.annotateLogs("expired", expired)) : Effect.void))
    )
    // A failed sweep (database away) is logged, counted and tried again after a backoff (BackgroundLoop).
    yield* runBackgroundLoop({ name: "expiry-sweeper", stallAfter: Duration.minutes(5) }, (loop) =>
      Effect.andThen(sweep, loop.idle(Effect.sleep(Duration.millis(reservationSweepIntervalMs))))
    )
  })
)
