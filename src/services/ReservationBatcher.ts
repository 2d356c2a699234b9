import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Metric, Option, Queue, type Tracer } from "effect"
import { SqlError } from "effect/sql"
import { AppConfig, reservationBatchWorkers } from "../layers/Config.js"
import { CurrentRequest } from "./RequestContext.js"
import { ReservationBatches, type BatchEntry, type BatchInput, type BatchResult, type EntryOutcome } from "./ReservationBatches.js"
import { classifySqlError } from "./Transactions.js"

/** `inventory_reservation_batch_size`: requests one group-commit transaction decided. */
const batchSize = Metric.histogram("inventory_reservation_batch_size", {
  description: "Reservation requests (create, release, commit) decided by one group-commit transaction",
  boundaries: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
})

/** `inventory_reservation_batch_queue_wait_seconds`: from a request's arrival to the start of its batch. */
const queueWait = Metric.histogram("inventory_reservation_batch_queue_wait_seconds", {
  description: "Time a reservation request waited for its group-commit batch to start",
  boundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
})

interface Pending {
  readonly entry: BatchEntry
  readonly answer: Deferred.Deferred<EntryOutcome, SqlError.SqlError>
  readonly enqueuedAt: number
}

const shuttingDown = new SqlError.SqlError({
  reason: new SqlError.ConnectionError({ cause: new Error("the service is shutting down"), message: "the service is shutting down", operation: "batch" })
})

/**
 * Splits the waiting requests into this batch and what stays: one request per orderId in a batch (a
 * second one for the same order is decided after the first committed, exactly as two requests one
 * after the other), at most `max` requests, arrival order kept, and no create on a variant that a
 * running batch holds (`held`): it waits for that batch's worker, which takes it in its next batch.
 * A hot variant's requests then go one batch after another, each one UPDATE of its row, instead of
 * batches of several workers queued on its lock.
 */
const formBatch = (waiting: ReadonlyArray<Pending>, max: number, held: ReadonlyMap<string, number>) => {
  const batch: Array<Pending> = []
  const later: Array<Pending> = []
  const orders = new Set<string>()
  for (const pending of waiting) {
    const { input } = pending.entry
    if (batch.length >= max || orders.has(input.orderId) || (held.size > 0 && isHeld(input, held))) later.push(pending)
    else {
      orders.add(input.orderId)
      batch.push(pending)
    }
  }
  return { batch, later }
}

/** A create naming a variant a running batch holds (a release or commit names none: its lines are stored). */
const isHeld = (input: BatchInput, held: ReadonlyMap<string, number>) =>
  input._tag === "Create" && input.lines.some((line) => held.has(line.variantId))

/** The variants a batch's creates name: what it holds while it runs. */
const createdVariants = (batch: ReadonlyArray<Pending>): ReadonlySet<string> => {
  const variants = new Set<string>()
  for (const { entry } of batch) if (entry.input._tag === "Create") for (const line of entry.input.lines) variants.add(line.variantId)
  return variants
}

/** Adds (`by` 1) or removes (-1) a running batch's variants to those held. */
const hold = (held: Map<string, number>, variants: ReadonlySet<string>, by: 1 | -1) => {
  for (const variant of variants) {
    const count = (held.get(variant) ?? 0) + by
    if (count > 0) held.set(variant, count)
    else held.delete(variant)
  }
}

/**
 * Group commit for reservations (ADR 0009): requests queue here, and each of
 * RESERVATION_BATCH_WORKERS worker fibers takes what is waiting when its previous batch finished (no
 * added wait when idle; at most RESERVATION_BATCH_MAX) and runs it as one transaction
 * (ReservationBatches.apply). Each request is answered on its own, only after COMMIT. A batch that
 * fails as a whole is retried as a whole by the transaction (serialization failure, deadlock); when
 * the database is unavailable every request gets the error (503); any other failure of a batch of
 * several (a bug one request triggers) is retried one request per transaction, so it fails only
 * that one. The workers are fibers of the layer's scope: closing it (shutdown) stops new requests
 * and drains the queue, answering every queued request, before the workers end.
 */
export class ReservationBatcher extends Context.Service<ReservationBatcher, {
  readonly submit: (input: BatchInput) => Effect.Effect<EntryOutcome, SqlError.SqlError>
}>()("inventory/ReservationBatcher") {
  static readonly make = Effect.gen(function* () {
    const config = yield* AppConfig
    const { reservationBatchMax } = config
    const batches = yield* ReservationBatches
    const queue = yield* Queue.unbounded<Pending, Cause.Done>()

    const answerAll = (batch: ReadonlyArray<Pending>, exit: Exit.Exit<BatchResult, SqlError.SqlError>) =>
      Exit.isSuccess(exit)
        ? Effect.forEach(batch, (pending, i) => Deferred.succeed(pending.answer, exit.value.outcomes[i]!), { discard: true })
        : Effect.forEach(batch, (pending) => Deferred.failCause(pending.answer, exit.cause), { discard: true })

    const runBatch = (batch: ReadonlyArray<Pending>): Effect.Effect<void> =>
      Effect.gen(function* () {
        const startedAt = Date.now()
        yield* Metric.update(batchSize, batch.length)
        for (const pending of batch) yield* Metric.update(queueWait, (startedAt - pending.enqueuedAt) / 1000)
        const links = batch.flatMap((p) => (p.entry.span === undefined ? [] : [{ span: p.entry.span, attributes: {} }]))
        const exit = yield* Effect.gen(function* () {
          // Each request's span links to the batch that decided it (and the batch to every request).
          const span = yield* Effect.currentSpan.pipe(Effect.option)
          if (Option.isSome(span)) {
            for (const p of batch) if (p.entry.span?._tag === "Span") p.entry.span.addLinks([{ span: span.value, attributes: {} }])
          }
          return yield* batches.apply(batch.map((p) => p.entry))
        }).pipe(
          // captureStackTrace off: the span's source is always this line, and capturing it costs a `new Error()` per batch.
          Effect.withSpan("ReservationBatch", { links, root: true, attributes: { "inventory.batch.size": batch.length } }, { captureStackTrace: false }),
          Effect.exit
        )
        if (Exit.isFailure(exit) && batch.length > 1 && !isUnavailable(exit.cause)) {
          // Not the database's state but something in the batch: each request alone, so one bad request fails alone.
          yield* Effect.logWarning("reservation batch failed; retrying its requests one by one").pipe(
            Effect.annotateLogs({ size: batch.length, cause: Cause.pretty(exit.cause) })
          )
          for (const pending of batch) yield* runBatch([pending])
          return
        }
        yield* answerAll(batch, exit)
      }).pipe(
        // Never leave a request waiting: an interrupted batch (forced shutdown) interrupts its requests.
        Effect.onInterrupt(() => Effect.forEach(batch, (pending) => Deferred.interrupt(pending.answer), { discard: true }))
      )

    /** Requests taken from the queue and not yet in a batch, in arrival order: shared by the workers. */
    let backlog: ReadonlyArray<Pending> = []
    /** Variants of the creates in running batches, with how many batches hold each. */
    const held = new Map<string, number>()

    /**
     * Takes what waits (waiting for a request only when nothing taken can go now) and runs batch
     * after batch until the queue has ended. Requests left for a variant another worker holds are
     * taken by that worker after its batch (so a worker may end while some wait: that one drains them).
     */
    const worker = Effect.gen(function* () {
      for (;;) {
        const ready = backlog.some((pending) => !isHeld(pending.entry.input, held))
        const taken = yield* Queue.takeBetween(queue, ready ? 0 : 1, reservationBatchMax).pipe(
          Effect.catchCause(() => Effect.succeed(undefined))
        )
        if (taken === undefined && !ready) return
        const { batch, later } = formBatch(taken?.length ? [...backlog, ...taken] : backlog, reservationBatchMax, held)
        backlog = later
        if (batch.length === 0) continue
        const variants = createdVariants(batch)
        hold(held, variants, 1)
        yield* runBatch(batch).pipe(Effect.ensuring(Effect.sync(() => hold(held, variants, -1))))
      }
    })

    // The workers' lifetime is the layer's scope, but closing it must not interrupt them mid-queue:
    // its finalizer ends the queue (no new requests) and waits until they have answered what is in it.
    const fibers = yield* Effect.forEach(Array.from({ length: reservationBatchWorkers(config) }), () => Effect.forkDetach(worker))
    yield* Effect.addFinalizer(() => Queue.end(queue).pipe(Effect.andThen(Fiber.awaitAll(fibers))))

    const submit = (input: BatchInput): Effect.Effect<EntryOutcome, SqlError.SqlError> =>
      Effect.gen(function* () {
        const context = yield* CurrentRequest
        const span = Option.getOrUndefined(yield* Effect.currentSpan.pipe(Effect.option)) as Tracer.AnySpan | undefined
        const answer = yield* Deferred.make<EntryOutcome, SqlError.SqlError>()
        const offered = yield* Queue.offer(queue, { entry: { input, context, span }, answer, enqueuedAt: Date.now() })
        if (!offered) return yield* Effect.fail(shuttingDown)
        return yield* Deferred.await(answer)
      })

    return { submit }
  })

  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(ReservationBatches.layer))
}

/** Whether a batch failed because the database cannot serve now (every request gets it: 503). */
const isUnavailable = (cause: Cause.Cause<SqlError.SqlError>) => {
  const error = Cause.findErrorOption(cause)
  return Option.isSome(error) && classifySqlError(error.value) === "unavailable"
}
