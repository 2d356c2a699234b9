import { Context, DateTime, Effect, Layer, Result } from "effect"
import { SqlClient } from "effect/sql"
import { ReservationConflict, ReservationNotActive, ReservationNotFound, ReservationRefused, type ReservationFailure } from "../domain/Errors.js"
import {
  correlatedWith,
  inventoryReservationCommitted,
  inventoryReservationFailed,
  inventoryReservationReleased,
  inventoryReserved,
  type DomainEvent
} from "../domain/Events.js"
import {
  commitTransition,
  decideLines,
  DEFAULT_TTL_SECONDS,
  lineChange,
  mergeLines,
  releaseTransition,
  Reservation,
  ReservationLine,
  sameLines,
  statusAfter,
  statusAt,
  type ReservationRequest,
  type ReservationStatus,
  type Transition
} from "../domain/Reservation.js"
import { deriveStatus } from "../domain/StockLevel.js"
import { Outbox } from "../outbox/Outbox.js"
import { countReservations, initReservationMetrics } from "./ReservationMetrics.js"
import { CurrentRequest } from "./RequestContext.js"
import { StockChanges, type StockChange } from "./StockChanges.js"
import { STOCK_COLUMNS, type StockRow } from "./StockRows.js"
import { afterCommit, Transactions } from "./Transactions.js"

interface ReservationRow {
  readonly orderId: string
  readonly status: ReservationStatus
  readonly expiresAt: Date
  /** Of the request that made the reservation; its expiry events carry it. */
  readonly correlationId: string | null
  readonly createdAt: Date
  readonly updatedAt: Date
}

interface LineRow {
  readonly orderId: string
  readonly variantId: string
  readonly quantity: number
}

/** Class construction without re-running the schema's checks (see toReservation). */
const SKIP_CHECKS = { disableChecks: true } as const

const RESERVATION_COLUMNS = "order_id, status, expires_at, correlation_id, created_at, updated_at"

/** Most due reservations one lazy expiry (inside a refused reservation) takes on. */
const LAZY_EXPIRY_LIMIT = 500

/**
 * The answer about a reservation at `at` (the database's time of the answer): its status is derived
 * there, so an ACTIVE row past `expiresAt` reads EXPIRED before the sweeper reaches it.
 * Built from validated requests and rows the database's constraints hold to the same rules, so their
 * checks (id patterns, quantity ranges) are not run again (that cost a noticeable share of a
 * reservation's CPU; Effect 4 still checks the types and shape); the response is still encoded
 * through the schema.
 */
const toReservation = (row: ReservationRow, lines: ReadonlyArray<{ variantId: string; quantity: number }>, at: Date) =>
  new Reservation(
    {
      orderId: row.orderId,
      status: statusAt(row, at.getTime()),
      lines: lines.map((line) => new ReservationLine({ variantId: line.variantId, quantity: line.quantity }, SKIP_CHECKS)),
      expiresAt: DateTime.fromDateUnsafe(row.expiresAt),
      createdAt: DateTime.fromDateUnsafe(row.createdAt),
      updatedAt: DateTime.fromDateUnsafe(row.updatedAt)
    },
    SKIP_CHECKS
  )

type Applied = Exclude<Transition, "unchanged"> | "reserve"

/** A reservation whose lines a change applies to stock; `correlationId` overrides the current request's (expiry). */
interface AppliedReservation {
  readonly orderId: string
  readonly lines: ReadonlyArray<ReservationLine>
  readonly expiresAt: Date
  readonly correlationId?: string | null
}

const eventOf = (applied: Applied, orderId: string, lines: ReadonlyArray<ReservationLine>, expiresAt: Date): DomainEvent => {
  switch (applied) {
    case "reserve":
      return inventoryReserved(orderId, lines, expiresAt)
    case "release":
      return inventoryReservationReleased(orderId, lines, "RELEASED")
    case "expire":
      return inventoryReservationReleased(orderId, lines, "EXPIRED")
    case "commit":
      return inventoryReservationCommitted(orderId, lines)
  }
}

/**
 * The stock changes of reservations applied one after another to locked rows: one change (history
 * entry, events) per reservation and variant, each with the row as it is after that change.
 */
const planStockChanges = (
  locked: ReadonlyMap<string, StockRow>,
  applied: Applied,
  reservations: ReadonlyArray<Omit<AppliedReservation, "expiresAt">>
) => {
  const current = new Map(locked)
  const changes: Array<StockChange> = []
  for (const reservation of reservations) {
    for (const line of reservation.lines) {
      const before = current.get(line.variantId)!
      const { type, onHandChange, reservedChange } = lineChange(applied, line.quantity)
      const onHand = before.onHand + onHandChange
      const reserved = before.reserved + reservedChange
      const after: StockRow = {
        ...before,
        onHand,
        reserved,
        version: before.version + 1,
        status: deriveStatus(onHand - reserved, before.lowStockThreshold)
      }
      current.set(line.variantId, after)
      changes.push({ after, type, onHandChange, reservedChange, orderId: reservation.orderId, correlationId: reservation.correlationId })
    }
  }
  const deltas = [...current.values()]
    .filter((row) => row.version !== locked.get(row.variantId)!.version)
    .map((row) => {
      const before = locked.get(row.variantId)!
      return {
        variantId: row.variantId,
        onHandChange: row.onHand - before.onHand,
        reservedChange: row.reserved - before.reserved,
        versions: row.version - before.version
      }
    })
  return { changes, deltas, final: current }
}

/** What the create transaction committed; `expired` counts due reservations it expired on the way. */
type CreateOutcome =
  | { readonly _tag: "Created"; readonly reservation: Reservation; readonly expired: number }
  | { readonly _tag: "Existing"; readonly reservation: Reservation; readonly expired: number }
  | { readonly _tag: "Refused"; readonly failures: ReadonlyArray<ReservationFailure>; readonly expired: number }

/**
 * Reservations of API.md: all-or-nothing, idempotent by orderId, never more than `onHand`, expiring.
 * Every change is one transaction: the reservation rows, `stock_levels`, one history entry per
 * variant and the outbox events. Every time (expiresAt, "due", the status of an answer) is the
 * database's `inventory_now()`: one clock for all replicas, whatever their own clocks say.
 */
export class Reservations extends Context.Service<Reservations>()("inventory/Reservations", {
  make: Effect.gen(function* () {
    yield* initReservationMetrics
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const stockChanges = yield* StockChanges
    const outbox = yield* Outbox
    const stockColumns = sql.literal(STOCK_COLUMNS)
    const reservationColumns = sql.literal(RESERVATION_COLUMNS)

    /** The variants' rows, locked in variant-id order (every writer locks in this order, so none deadlock). */
    const lockStockRows = (variantIds: ReadonlyArray<string>, ifFree: boolean) =>
      Effect.map(
        sql<StockRow>`
          SELECT ${stockColumns} FROM stock_levels
           WHERE variant_id = ANY(${variantIds})
           ORDER BY variant_id
             FOR UPDATE ${sql.literal(ifFree ? "SKIP LOCKED" : "")}`,
        (rows) => new Map(rows.map((row) => [row.variantId, row]))
      )
    const lockStock = (variantIds: ReadonlyArray<string>) => lockStockRows(variantIds, false)
    /** Locks those of the rows no other transaction holds, never waiting: for rows beyond the ones a transaction locked first. */
    const lockStockIfFree = (variantIds: ReadonlyArray<string>) => lockStockRows(variantIds, true)

    const linesOf = (orderIds: ReadonlyArray<string>) =>
      sql<LineRow>`
        SELECT order_id, variant_id, quantity FROM reservation_lines
         WHERE order_id = ANY(${orderIds})
         ORDER BY order_id, variant_id`

    /**
     * Applies a transition in ONE statement, provided the variants' rows still hold what `expected`
     * says (the values the changes were planned on): locks the rows in variant-id order (as every
     * writer does, so none deadlock), compares them, and only when all are unchanged moves
     * `stock_levels`, inserts a new reservation's lines, the history entries and the aggregate +
     * per-variant events. Either way it answers the rows as now locked, so a caller whose plan was
     * stale decides again on them.
     */
    const applyIfUnchanged = (
      applied: Applied,
      reservations: ReadonlyArray<AppliedReservation>,
      expected: ReadonlyMap<string, StockRow>
    ) =>
      Effect.gen(function* () {
        const variantIds = [...new Set(reservations.flatMap((r) => r.lines.map((line) => line.variantId)))].sort()
        const seen = variantIds.flatMap((id) => expected.get(id) ?? [])
        const { changes, deltas, final } = planStockChanges(expected, applied, reservations)
        const gate = sql`(SELECT ok FROM unchanged)`
        const { ctes, recorded } = yield* stockChanges.recordIf(
          changes,
          reservations.map((r) => correlatedWith(eventOf(applied, r.orderId, r.lines, r.expiresAt), r.correlationId)),
          gate
        )
        const newLines = applied === "reserve" ? reservations.flatMap((r) => r.lines.map((line) => ({ orderId: r.orderId, ...line }))) : []
        const insertLines =
          newLines.length === 0
            ? sql``
            : sql`, lines AS (
                INSERT INTO reservation_lines (order_id, variant_id, quantity)
                SELECT * FROM unnest(${newLines.map((l) => l.orderId)}::text[], ${newLines.map((l) => l.variantId)}::text[],
                                     ${newLines.map((l) => l.quantity)}::int[])
                 WHERE ${gate}
              )`
        // `unchanged` reads every locked row before any UPDATE runs (the UPDATE's gate needs it), so
        // the row locks are taken in variant-id order; the UPDATE then re-locks rows this transaction holds.
        const rows = yield* sql<StockRow & { ok: boolean; afterOnHand: number | null; afterReserved: number | null; afterVersion: number | null }>`
          WITH locked AS (
            SELECT ${stockColumns} FROM stock_levels
             WHERE variant_id = ANY(${variantIds})
             ORDER BY variant_id
               FOR UPDATE
          ), unchanged AS (
            SELECT count(*) = ${variantIds.length} AS ok
              FROM locked l
              JOIN unnest(${seen.map((r) => r.variantId)}::text[], ${seen.map((r) => r.onHand)}::int[], ${seen.map((r) => r.reserved)}::int[],
                          ${seen.map((r) => r.version)}::int[], ${seen.map((r) => r.lowStockThreshold)}::int[])
                   AS e(variant_id, on_hand, reserved, version, low_stock_threshold)
                ON (l.variant_id, l.on_hand, l.reserved, l.version, l.low_stock_threshold)
                 = (e.variant_id, e.on_hand, e.reserved, e.version, e.low_stock_threshold)
          ), updated AS (
            UPDATE stock_levels
               SET on_hand = on_hand + d.on_hand_change,
                   reserved = reserved + d.reserved_change,
                   version = version + d.versions,
                   updated_at = now()
              FROM unnest(${deltas.map((d) => d.variantId)}::text[], ${deltas.map((d) => d.onHandChange)}::int[],
                          ${deltas.map((d) => d.reservedChange)}::int[], ${deltas.map((d) => d.versions)}::int[])
                   AS d(id, on_hand_change, reserved_change, versions)
             WHERE stock_levels.variant_id = d.id AND ${gate}
            RETURNING stock_levels.variant_id, stock_levels.on_hand, stock_levels.reserved, stock_levels.version
          )${insertLines}, ${ctes}
          SELECT u.ok, l.*, up.on_hand AS after_on_hand, up.reserved AS after_reserved, up.version AS after_version
            FROM unchanged u
            LEFT JOIN locked l ON true
            LEFT JOIN updated up ON up.variant_id = l.variant_id`
        const locked = new Map(
          rows.flatMap((row): Array<[string, StockRow]> =>
            row.variantId === null
              ? []
              : [[row.variantId, {
                  variantId: row.variantId,
                  sku: row.sku,
                  onHand: row.onHand,
                  reserved: row.reserved,
                  lowStockThreshold: row.lowStockThreshold,
                  status: row.status,
                  version: row.version,
                  updatedAt: row.updatedAt
                }]]
          )
        )
        if (rows[0]?.ok !== true) return { applied: false, locked } as const
        for (const row of rows) {
          const after = final.get(row.variantId)!
          const moved = row.afterVersion !== null
          if (moved ? row.afterOnHand !== after.onHand || row.afterReserved !== after.reserved || row.afterVersion !== after.version : after.version !== row.version) {
            return yield* Effect.die(new Error(`stock row ${row.variantId} changed although it was locked`))
          }
        }
        yield* recorded
        return { applied: true, locked } as const
      })

    /** Applies a transition to reservations on their rows as locked here (or already by the caller). */
    const applyToStock = (
      applied: Applied,
      reservations: ReadonlyArray<AppliedReservation>,
      lockedRows?: ReadonlyMap<string, StockRow>
    ) =>
      Effect.gen(function* () {
        const variantIds = [...new Set(reservations.flatMap((r) => r.lines.map((line) => line.variantId)))].sort()
        const locked = lockedRows ?? (yield* lockStock(variantIds))
        const result = yield* applyIfUnchanged(applied, reservations, locked)
        if (!result.applied) return yield* Effect.die(new Error(`stock rows of ${variantIds.join(", ")} changed although they were locked`))
      })

    /**
     * A reservation with its lines and the database's time (`now`, what its answer is decided on), in
     * one statement; `lock` takes its row lock (release, commit).
     */
    const load = (orderId: string, lock: boolean) =>
      Effect.gen(function* () {
        const [row] = yield* sql<ReservationRow & { dbNow: Date; lines: ReadonlyArray<{ variantId: string; quantity: number }> }>`
          SELECT ${reservationColumns}, inventory_now() AS db_now,
                 (SELECT json_agg(json_build_object('variantId', l.variant_id, 'quantity', l.quantity) ORDER BY l.variant_id)
                    FROM reservation_lines l WHERE l.order_id = r.order_id) AS lines
            FROM reservations r
           WHERE order_id = ${orderId}
          ${lock ? sql`FOR UPDATE` : sql``}`
        if (!row) return undefined
        return { row, now: row.dbNow, lines: (row.lines ?? []).map((l) => new ReservationLine({ variantId: l.variantId, quantity: l.quantity })) }
      })

    // inventory_now() is the transaction's start: the same time the transaction decided on.
    const setStatus = (orderIds: ReadonlyArray<string>, status: ReservationStatus) =>
      sql`UPDATE reservations SET status = ${status}, updated_at = inventory_now() WHERE order_id = ANY(${orderIds})`

    /** Due reservations (their rows locked by this transaction) with their lines. */
    const withLines = (rows: ReadonlyArray<ReservationRow>) =>
      Effect.map(rows.length === 0 ? Effect.succeed([]) : linesOf(rows.map((r) => r.orderId)), (lines) =>
        rows.map((row): AppliedReservation => ({
          orderId: row.orderId,
          expiresAt: row.expiresAt,
          // Expiry is the reservation's own story: its events keep the correlation id it was made with.
          correlationId: row.correlationId,
          lines: lines.filter((l) => l.orderId === row.orderId).map((l) => new ReservationLine({ variantId: l.variantId, quantity: l.quantity }))
        }))
      )

    /** Expires reservations whose rows this transaction has locked (and their stock rows, when given). */
    const expireLocked = (reservations: ReadonlyArray<AppliedReservation>, lockedRows?: ReadonlyMap<string, StockRow>) =>
      Effect.gen(function* () {
        if (reservations.length === 0) return 0
        yield* applyToStock("expire", reservations, lockedRows)
        yield* setStatus(reservations.map((r) => r.orderId), "EXPIRED")
        yield* afterCommit(
          Effect.forEach(
            reservations,
            (reservation) =>
              Effect.logInfo("reservation expired").pipe(
                Effect.annotateLogs({ orderId: reservation.orderId, lines: reservation.lines, outcome: "expired" })
              ),
            { discard: true }
          )
        )
        return reservations.length
      })

    /**
     * A reservation that lacks stock first expires the due reservations holding its short variants,
     * so one the sweeper has not reached yet never blocks it. Due rows another transaction holds (the
     * sweeper's) are skipped: that transaction is already expiring them. Lock order (ADR 0005): when
     * this transaction holds no stock row yet, it locks its own variants and the due reservations'
     * in one ordered statement; when it already holds its own, it takes the others only if free (SKIP
     * LOCKED), since waiting for them out of order could deadlock, and leaves a reservation whose rows
     * it could not all take to the sweeper. Answers its own variants' rows as they are afterwards.
     */
    const expireDueOf = (short: ReadonlyArray<string>, own: ReadonlyArray<string>, held: ReadonlyMap<string, StockRow> | undefined) =>
      Effect.gen(function* () {
        const dueRows = yield* sql<ReservationRow>`
          SELECT ${reservationColumns} FROM reservations r
           WHERE r.status = 'ACTIVE' AND r.expires_at <= inventory_now()
             AND EXISTS (SELECT 1 FROM reservation_lines l WHERE l.order_id = r.order_id AND l.variant_id = ANY(${short}))
           ORDER BY r.expires_at, r.order_id
           LIMIT ${LAZY_EXPIRY_LIMIT}
             FOR UPDATE SKIP LOCKED`
        if (dueRows.length === 0) return { expired: 0, locked: held }
        const due = yield* withLines(dueRows)
        const others = [...new Set(due.flatMap((r) => r.lines.map((l) => l.variantId)))].filter((id) => !own.includes(id))
        const rows =
          held === undefined
            ? yield* lockStock([...own, ...others].sort())
            : new Map([...held, ...(others.length === 0 ? [] : yield* lockStockIfFree(others.sort()))])
        const covered = due.filter((r) => r.lines.every((l) => rows.has(l.variantId)))
        const expired = yield* expireLocked(covered, rows)
        return { expired, locked: expired > 0 ? yield* lockStock(own) : new Map(own.flatMap((id) => (rows.has(id) ? [[id, rows.get(id)!] as const] : []))) }
      })

    const createInTransaction = (orderId: string, lines: ReadonlyArray<ReservationLine>, ttlSeconds: number) =>
      Effect.gen(function* () {
        const { correlationId, actor } = yield* CurrentRequest
        const variantIds = lines.map((line) => line.variantId)
        // One statement: claim the orderId and read the variants (no lock yet). The claim makes a
        // concurrent duplicate wait (on the primary key) until this transaction ends, then find the
        // stored reservation. The outer join returns `claimed` even when no variant exists. expiresAt
        // is on the database's clock, like every decision about it.
        const claim = yield* sql<StockRow & { claimed: number; claimedAt: Date | null; claimExpiresAt: Date | null }>`
          WITH claim AS (
            INSERT INTO reservations (order_id, status, expires_at, correlation_id, actor, created_at, updated_at)
            SELECT ${orderId}, 'ACTIVE', t.now + make_interval(secs => ${ttlSeconds}), ${correlationId}, ${actor}, t.now, t.now
              FROM (SELECT inventory_now() AS now) t
            ON CONFLICT (order_id) DO NOTHING
            RETURNING created_at, expires_at
          )
          SELECT c.claimed, c.claimed_at, c.claim_expires_at, s.*
            FROM (SELECT count(*)::int AS claimed, max(created_at) AS claimed_at, max(expires_at) AS claim_expires_at FROM claim) c
            LEFT JOIN LATERAL (
              SELECT ${stockColumns} FROM stock_levels WHERE variant_id = ANY(${variantIds}) AND c.claimed = 1
            ) s ON true`
        if (claim[0]!.claimed === 0) {
          const existing = yield* load(orderId, false)
          if (!existing || !sameLines(existing.lines, lines)) return yield* new ReservationConflict({ orderId })
          return { _tag: "Existing", reservation: toReservation(existing.row, existing.lines, existing.now), expired: 0 } as CreateOutcome
        }
        const now = claim[0]!.claimedAt!
        const expiresAt = claim[0]!.claimExpiresAt!
        // A refusal on what is committed needs no lock: when a variant is sold out, refusals never
        // queue behind the reservations holding its row. A reservation that can succeed locks the rows
        // (in variant-id order) and, when they are as read, reserves in that same statement (the common
        // case); rows changed meanwhile are decided again on their locked values.
        const seen = new Map(claim.flatMap((row): Array<[string, StockRow]> => (row.variantId === null ? [] : [[row.variantId, row]])))
        const created = (expired: number): CreateOutcome => ({
          _tag: "Created",
          reservation: toReservation({ orderId, status: "ACTIVE", expiresAt, correlationId, createdAt: now, updatedAt: now }, lines, now),
          expired
        })
        let locked: ReadonlyMap<string, StockRow> | undefined
        let decision = decideLines(lines, seen)
        if (Result.isSuccess(decision)) {
          const attempt = yield* applyIfUnchanged("reserve", [{ orderId, lines, expiresAt }], seen)
          if (attempt.applied) return created(0)
          locked = attempt.locked
          decision = decideLines(lines, locked)
        }
        let expired = 0
        if (Result.isFailure(decision)) {
          const short = decision.failure.filter((f) => f.reason === "INSUFFICIENT_STOCK").map((f) => f.variantId)
          if (short.length > 0) {
            const lazy = yield* expireDueOf(short, variantIds, locked)
            expired = lazy.expired
            locked = lazy.locked
            if (expired > 0) decision = decideLines(lines, lazy.locked!)
          }
        }
        if (Result.isFailure(decision)) {
          // A refusal stores nothing (a retry may succeed later) but is published: one statement.
          const [event, ...more] = yield* outbox.rows([inventoryReservationFailed(orderId, decision.failure)])
          yield* sql`
            WITH unclaim AS (DELETE FROM reservations WHERE order_id = ${orderId})
            INSERT INTO outbox ${sql.insert([event!, ...more])}`
          return { _tag: "Refused", failures: decision.failure, expired } as CreateOutcome
        }
        yield* applyToStock("reserve", [{ orderId, lines, expiresAt }], locked)
        return created(expired)
      })

    /**
     * `POST /v1/reservations`: every line or none. The same orderId with the same lines answers the
     * stored reservation (`created: false`) and reserves nothing twice; other lines are a conflict.
     */
    const create = Effect.fn("Reservations.create")(function* (request: ReservationRequest) {
      const lines = mergeLines(request.lines)
      const orderId = request.orderId
      yield* Effect.annotateCurrentSpan({ "inventory.order_id": orderId, "inventory.lines": lines.length })
      // The outcome goes on the span and the log line alike; a refusal also names its typed error.
      const log = (outcome: string, extra: Record<string, unknown> = {}) =>
        Effect.annotateCurrentSpan({
          "inventory.outcome": outcome,
          ...(outcome === "refused" || outcome === "conflict"
            ? { "inventory.refusal": outcome === "refused" ? "ReservationRefused" : "ReservationConflict" }
            : {})
        }).pipe(Effect.andThen(Effect.logInfo("reservation attempt").pipe(Effect.annotateLogs({ orderId, lines, outcome, ...extra }))))
      const outcome = yield* transactions
        .run(createInTransaction(orderId, lines, request.ttlSeconds ?? DEFAULT_TTL_SECONDS))
        .pipe(Effect.tapErrorTag("ReservationConflict", () => log("conflict")))
      yield* countReservations("expired", outcome.expired)
      switch (outcome._tag) {
        case "Created":
          yield* countReservations("created")
          yield* log("created")
          return { reservation: outcome.reservation, created: true }
        case "Existing":
          yield* log("replayed")
          return { reservation: outcome.reservation, created: false }
        case "Refused":
          yield* countReservations("refused")
          yield* log("refused", { failures: outcome.failures })
          return yield* new ReservationRefused({ orderId, failures: outcome.failures })
      }
    })

    const get = Effect.fn("Reservations.get")(function* (orderId: string) {
      yield* Effect.annotateCurrentSpan("inventory.order_id", orderId)
      const found = yield* load(orderId, false)
      if (!found) return yield* new ReservationNotFound({ orderId })
      return toReservation(found.row, found.lines, found.now)
    })

    /** Release or commit: lock the reservation, decide with the pure rule, apply, publish. */
    const transition = (
      orderId: string,
      rule: typeof releaseTransition,
      refuseAfterExpiry: boolean
    ) =>
      Effect.gen(function* () {
        const result = yield* transactions.run(
          Effect.gen(function* () {
            const found = yield* load(orderId, true)
            if (!found) return yield* new ReservationNotFound({ orderId })
            const { now } = found
            const decided = yield* Effect.fromResult(rule(orderId, found.row, now.getTime()))
            if (decided === "unchanged") return { decided, reservation: toReservation(found.row, found.lines, now) }
            yield* applyToStock(decided, [{ orderId, lines: found.lines, expiresAt: found.row.expiresAt }])
            const status = statusAfter(decided)
            yield* setStatus([orderId], status)
            return { decided, reservation: toReservation({ ...found.row, status, updatedAt: now }, found.lines, now) }
          })
        )
        const { decided, reservation } = result
        yield* Effect.annotateCurrentSpan(
          "inventory.outcome",
          decided === "release" ? "released" : decided === "commit" ? "committed" : decided === "expire" ? "expired" : "unchanged"
        )
        if (decided !== "unchanged") {
          const outcome = decided === "release" ? "released" : decided === "commit" ? "committed" : "expired"
          yield* countReservations(outcome)
          yield* Effect.logInfo(`reservation ${outcome}`).pipe(Effect.annotateLogs({ orderId, lines: reservation.lines, outcome }))
        }
        // Committing a reservation found past its expiry expired it instead: that is not a commit.
        if (decided === "expire" && refuseAfterExpiry) {
          return yield* new ReservationNotActive({ orderId, reservationStatus: "EXPIRED" })
        }
        return reservation
      })

    /** Frees the reserved units. Again: same answer; already EXPIRED: as is; COMMITTED: not active. */
    const release = Effect.fn("Reservations.release")(function* (orderId: string) {
      yield* Effect.annotateCurrentSpan("inventory.order_id", orderId)
      return yield* transition(orderId, releaseTransition, false)
    })

    /** The reserved units leave both `reserved` and `onHand`. Again: same answer; RELEASED/EXPIRED: not active. */
    const commit = Effect.fn("Reservations.commit")(function* (orderId: string) {
      yield* Effect.annotateCurrentSpan("inventory.order_id", orderId)
      return yield* transition(orderId, commitTransition, true)
    })

    /**
     * One batch of the expiry sweep: claims up to `limit` due ACTIVE reservations that no other
     * transaction holds (several replicas sweep at once without waiting on each other) and expires them.
     * Uninterruptible (as Retention's batches): an interrupt (shutdown) waits for the short batch, since
     * interrupting a query makes the driver cancel whatever that connection runs by then (EFFECT-NOTES.md).
     */
    /** Due for the sweep: ACTIVE and past expiresAt on the database's clock (one clock for every replica). */
    const isDue = sql.literal("status = 'ACTIVE' AND expires_at <= inventory_now()")

    const expireDue = Effect.fn("Reservations.expireDue")(function* (limit: number) {
      const expired = yield* Effect.uninterruptible(transactions.run(
        Effect.gen(function* () {
          const due = yield* sql<ReservationRow>`
            SELECT ${reservationColumns} FROM reservations
             WHERE ${isDue}
             ORDER BY expires_at, order_id
             LIMIT ${limit}
               FOR UPDATE SKIP LOCKED`
          // Its stock rows in one ordered statement (applyToStock), after rows no one waits on while holding stock.
          return yield* expireLocked(yield* withLines(due))
        })
      ))
      yield* countReservations("expired", expired)
      return expired
    })

    /** The reservations `expireDue` would expire now (oldest first), for a dry run of the admin CLI. */
    const due = Effect.fn("Reservations.due")(function* (limit: number) {
      return yield* sql<{ orderId: string; expiresAt: Date }>`
        SELECT order_id, expires_at FROM reservations
         WHERE ${isDue}
         ORDER BY expires_at, order_id
         LIMIT ${limit}`
    })

    return { create, get, release, commit, expireDue, due } as const
  })
}) {
  /** Was `Reservations.Default`: the service with its dependencies provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, StockChanges.layer, Outbox.layer]))
}
