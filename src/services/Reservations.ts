import { Context, DateTime, Effect, Layer, Result } from "effect"
import { SqlClient } from "effect/sql"
import { availableAt, DEFAULT_ALLOCATION, type AllocationStock, type AllocationStrategy } from "../domain/Allocation.js"
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
  decideReservation,
  DEFAULT_TTL_SECONDS,
  LineAllocation,
  lineChange,
  mergeLines,
  releaseTransition,
  repeatsReservation,
  Reservation,
  ReservedLine,
  statusAfter,
  statusAt,
  type ReservationLine,
  type ReservationRequest,
  type ReservationStatus,
  type Transition
} from "../domain/Reservation.js"
import { deriveStatus } from "../domain/StockLevel.js"
import { Outbox } from "../outbox/Outbox.js"
import { countReservations, initReservationMetrics } from "./ReservationMetrics.js"
import { CurrentRequest } from "./RequestContext.js"
import { StockChanges, type StockChange } from "./StockChanges.js"
import { LOCATION_COLUMNS, locationStateOf, STOCK_COLUMNS, type LocationRow, type StockRow } from "./StockRows.js"
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

/** A stored line as JSON (`LINE_JSON`): its allocations in location-id order, as answers list them. */
interface StoredLine {
  readonly variantId: string
  readonly quantity: number
  readonly allocations: ReadonlyArray<{ readonly locationId: string; readonly quantity: number }> | null
}

/** Class construction without re-running the schema's checks (see toReservation). */
const SKIP_CHECKS = { disableChecks: true } as const

const RESERVATION_COLUMNS = "order_id, status, expires_at, correlation_id, created_at, updated_at"

/** A line of `reservation_lines l` with its allocations, as JSON. */
const LINE_JSON = `json_build_object(
  'variantId', l.variant_id, 'quantity', l.quantity,
  'allocations', (SELECT json_agg(json_build_object('locationId', a.location_id, 'quantity', a.quantity) ORDER BY a.location_id COLLATE "C")
                    FROM reservation_allocations a WHERE a.order_id = l.order_id AND a.variant_id = l.variant_id))`

/** Most due reservations one lazy expiry (inside a refused reservation) takes on. */
const LAZY_EXPIRY_LIMIT = 500

/** Stored lines as the domain's, trusting the database's constraints (see toReservation). */
const toLines = (lines: ReadonlyArray<StoredLine> | null): ReadonlyArray<ReservedLine> =>
  (lines ?? []).map((line) =>
    new ReservedLine(
      {
        variantId: line.variantId,
        quantity: line.quantity,
        allocations: (line.allocations ?? []).map((a) => new LineAllocation({ locationId: a.locationId, quantity: a.quantity }, SKIP_CHECKS))
      },
      SKIP_CHECKS
    )
  )

/**
 * The answer about a reservation at `at` (the database's time of the answer): its status is derived
 * there, so an ACTIVE row past `expiresAt` reads EXPIRED before the sweeper reaches it.
 * Built from validated requests and rows the database's constraints hold to the same rules, so their
 * checks (id patterns, quantity ranges) are not run again (that cost a noticeable share of a
 * reservation's CPU; Effect 4 still checks the types and shape); the response is still encoded
 * through the schema.
 */
const toReservation = (row: ReservationRow, lines: ReadonlyArray<ReservedLine>, at: Date) =>
  new Reservation(
    {
      orderId: row.orderId,
      status: statusAt(row, at.getTime()),
      lines,
      expiresAt: DateTime.fromDateUnsafe(row.expiresAt),
      createdAt: DateTime.fromDateUnsafe(row.createdAt),
      updatedAt: DateTime.fromDateUnsafe(row.updatedAt)
    },
    SKIP_CHECKS
  )

type Applied = Exclude<Transition, "unchanged"> | "reserve"

/** A reservation whose allocations a change applies to stock; `correlationId` overrides the current request's (expiry). */
interface AppliedReservation {
  readonly orderId: string
  readonly lines: ReadonlyArray<ReservedLine>
  readonly expiresAt: Date
  readonly correlationId?: string | null
}

const eventOf = (applied: Applied, orderId: string, lines: ReadonlyArray<ReservedLine>, expiresAt: Date): DomainEvent => {
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

/** The lines' variants as read or locked: their totals and every location row they have. */
interface StockView {
  readonly levels: ReadonlyMap<string, StockRow>
  readonly rows: ReadonlyArray<LocationRow>
}

/**
 * What the allocation rule decides on. `pinned`: the locations the lines name, as read (unlocked);
 * where the rows read with them say otherwise (read later, under the variant's lock), the rows win.
 */
const allocationStock = (
  variants: Iterable<string>,
  rows: ReadonlyArray<LocationRow>,
  pinned: ReadonlyMap<string, { readonly active: boolean }>
): AllocationStock => {
  const locations = new Map(pinned)
  for (const row of rows) if (locations.has(row.locationId)) locations.set(row.locationId, { active: row.active })
  return { rows, variants: new Set(variants), locations }
}

/** The part of a view about the given variants. */
const viewOf = (view: StockView, variantIds: ReadonlyArray<string>): StockView => ({
  levels: new Map(variantIds.flatMap((id) => (view.levels.has(id) ? [[id, view.levels.get(id)!] as const] : []))),
  rows: view.rows.filter((row) => variantIds.includes(row.variantId))
})

const rowKey = (variantId: string, locationId: string) => `${variantId} ${locationId}`

/** One move of one location row (ids never contain a space, so `rowKey` is unique). */
interface Move {
  readonly variantId: string
  readonly locationId: string
  readonly onHandChange: number
  readonly reservedChange: number
}

/**
 * The stock changes of reservations applied one after another to locked rows: one change (history
 * entry, events) per reservation, variant and allocated location, each with the location row and the
 * variant's totals as they are after that change (the triggers move the totals by the same amounts,
 * `available` by what the row adds, and both versions by one per change).
 */
const planStockChanges = (locked: StockView, applied: Applied, reservations: ReadonlyArray<Omit<AppliedReservation, "expiresAt">>) => {
  const levels = new Map(locked.levels)
  const rows = new Map(locked.rows.map((row) => [rowKey(row.variantId, row.locationId), row]))
  const changes: Array<StockChange> = []
  const moves: Array<Move> = []
  for (const reservation of reservations) {
    for (const line of reservation.lines) {
      for (const { locationId, quantity } of line.allocations) {
        const key = rowKey(line.variantId, locationId)
        const before = rows.get(key)!
        const level = levels.get(line.variantId)!
        const { type, onHandChange, reservedChange } = lineChange(applied, quantity)
        const row: LocationRow = { ...before, onHand: before.onHand + onHandChange, reserved: before.reserved + reservedChange, version: before.version + 1 }
        const available = level.available + (before.active ? availableAt(row) - availableAt(before) : 0)
        const after: StockRow = {
          ...level,
          onHand: level.onHand + onHandChange,
          reserved: level.reserved + reservedChange,
          available,
          version: level.version + 1,
          status: deriveStatus(available, level.lowStockThreshold)
        }
        rows.set(key, row)
        levels.set(line.variantId, after)
        changes.push({
          after,
          locationId,
          location: locationStateOf(row),
          locationActive: before.active,
          type,
          onHandChange,
          reservedChange,
          orderId: reservation.orderId,
          correlationId: reservation.correlationId
        })
        moves.push({ variantId: line.variantId, locationId, onHandChange, reservedChange })
      }
    }
  }
  return { changes, moves, final: { levels, rows } }
}

/**
 * Moves in rounds that touch each row at most once: one UPDATE moves a row once, and the triggers
 * bump its version and its variant's by one per move, as its history entry says (several
 * reservations of one expiry batch may hold the same row).
 */
const roundsOf = (moves: ReadonlyArray<Move>): ReadonlyArray<ReadonlyArray<Move>> => {
  const rounds: Array<Array<Move>> = []
  const seen = new Map<string, number>()
  for (const move of moves) {
    const key = rowKey(move.variantId, move.locationId)
    const round = seen.get(key) ?? 0
    ;(rounds[round] ??= []).push(move)
    seen.set(key, round + 1)
  }
  return rounds
}

/** What the create transaction committed; `expired` counts due reservations it expired on the way. */
type CreateOutcome =
  | { readonly _tag: "Created"; readonly reservation: Reservation; readonly expired: number }
  | { readonly _tag: "Existing"; readonly reservation: Reservation; readonly expired: number }
  | { readonly _tag: "Refused"; readonly failures: ReadonlyArray<ReservationFailure>; readonly expired: number }

/**
 * Reservations of API.md: all-or-nothing, idempotent by orderId, never more than `onHand`, expiring.
 * Every change is one transaction: the reservation rows, the `location_stock` rows its allocations
 * hold (the triggers move the variants' `stock_levels` totals), one history entry per variant and
 * location, and the outbox events. Every time (expiresAt, "due", the status of an answer) is the
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
    const locationColumns = sql.literal(LOCATION_COLUMNS)
    const reservationColumns = sql.literal(RESERVATION_COLUMNS)
    const lineJson = sql.literal(LINE_JSON)

    /**
     * The variants' rows, locked in variant-id order, then their location rows in (variant, location)
     * order: the lock order of every writer, so none deadlock. `ifFree` skips variants another
     * transaction holds instead of waiting (for rows beyond the ones a transaction locked first);
     * their location rows are then free, since every writer of one holds its variant's row first.
     */
    const lockStockRows = (variantIds: ReadonlyArray<string>, ifFree: boolean) =>
      Effect.gen(function* () {
        const levels = yield* sql<StockRow>`
          SELECT ${stockColumns} FROM stock_levels
           WHERE variant_id = ANY(${variantIds})
           ORDER BY variant_id
             FOR UPDATE ${sql.literal(ifFree ? "SKIP LOCKED" : "")}`
        const rows = levels.length === 0
          ? []
          : yield* sql<LocationRow>`
              SELECT ${locationColumns} FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
               WHERE ls.variant_id = ANY(${levels.map((level) => level.variantId)})
               ORDER BY ls.variant_id, ls.location_id
                 FOR UPDATE OF ls`
        return { levels: new Map(levels.map((level) => [level.variantId, level])), rows } satisfies StockView
      })
    const lockStock = (variantIds: ReadonlyArray<string>) => lockStockRows(variantIds, false)
    const lockStockIfFree = (variantIds: ReadonlyArray<string>) => lockStockRows(variantIds, true)

    const linesOf = (orderIds: ReadonlyArray<string>) =>
      sql<{ orderId: string; line: StoredLine }>`
        SELECT l.order_id, ${lineJson} AS line FROM reservation_lines l
         WHERE l.order_id = ANY(${orderIds})
         ORDER BY l.order_id, l.variant_id`

    /**
     * Applies a transition to the reservations' allocations on their rows as locked here (or already
     * by the caller): moves the location rows (the triggers move the variants' totals), checks the
     * rows and totals are what the plan says, stores a new reservation's lines and allocations, and
     * records the history entries and the aggregate + per-variant events.
     */
    const applyToStock = (applied: Applied, reservations: ReadonlyArray<AppliedReservation>, lockedRows?: StockView) =>
      Effect.gen(function* () {
        const variantIds = [...new Set(reservations.flatMap((r) => r.lines.map((line) => line.variantId)))].sort()
        const locked = lockedRows ?? (yield* lockStock(variantIds))
        const { changes, moves, final } = planStockChanges(locked, applied, reservations)
        const moved = new Map<string, { onHand: number; reserved: number; version: number }>()
        for (const round of roundsOf(moves)) {
          const rows = yield* sql<{ variantId: string; locationId: string; onHand: number; reserved: number; version: number }>`
            UPDATE location_stock ls
               SET on_hand = ls.on_hand + m.on_hand_change,
                   reserved = ls.reserved + m.reserved_change
              FROM unnest(${round.map((m) => m.variantId)}::text[], ${round.map((m) => m.locationId)}::text[],
                          ${round.map((m) => m.onHandChange)}::int[], ${round.map((m) => m.reservedChange)}::int[])
                   AS m(variant_id, location_id, on_hand_change, reserved_change)
             WHERE ls.variant_id = m.variant_id AND ls.location_id = m.location_id
            RETURNING ls.variant_id, ls.location_id, ls.on_hand, ls.reserved, ls.version`
          for (const row of rows) moved.set(rowKey(row.variantId, row.locationId), row)
        }
        // The variants' totals as the triggers left them; a plan that disagrees with the rows is a bug.
        const totals = yield* sql<StockRow>`SELECT ${stockColumns} FROM stock_levels WHERE variant_id = ANY(${variantIds})`
        const rowsAgree = moves.every(({ variantId, locationId }) => {
          const planned = final.rows.get(rowKey(variantId, locationId))!
          const row = moved.get(rowKey(variantId, locationId))
          return row !== undefined && row.onHand === planned.onHand && row.reserved === planned.reserved && row.version === planned.version
        })
        const totalsAgree = totals.length === variantIds.length && totals.every((row) => {
          const planned = final.levels.get(row.variantId)
          return planned !== undefined && row.onHand === planned.onHand && row.reserved === planned.reserved &&
            row.available === planned.available && row.version === planned.version
        })
        if (!rowsAgree || !totalsAgree) {
          return yield* Effect.die(new Error(`stock rows of ${variantIds.join(", ")} changed although they were locked`))
        }
        if (applied === "reserve") {
          const lines = reservations.flatMap((r) => r.lines.map((line) => ({ orderId: r.orderId, line })))
          const allocations = lines.flatMap(({ orderId, line }) => line.allocations.map((a) => ({ orderId, variantId: line.variantId, ...a })))
          yield* sql`
            WITH lines AS (
              INSERT INTO reservation_lines (order_id, variant_id, quantity)
              SELECT * FROM unnest(${lines.map((l) => l.orderId)}::text[], ${lines.map((l) => l.line.variantId)}::text[],
                                   ${lines.map((l) => l.line.quantity)}::int[])
            )
            INSERT INTO reservation_allocations (order_id, variant_id, location_id, quantity)
            SELECT * FROM unnest(${allocations.map((a) => a.orderId)}::text[], ${allocations.map((a) => a.variantId)}::text[],
                                 ${allocations.map((a) => a.locationId)}::text[], ${allocations.map((a) => a.quantity)}::int[])`
        }
        yield* stockChanges.record(
          changes,
          reservations.map((r) => correlatedWith(eventOf(applied, r.orderId, r.lines, r.expiresAt), r.correlationId))
        )
      })

    /**
     * A reservation with its lines and the database's time (`now`, what its answer is decided on), in
     * one statement; `lock` takes its row lock (release, commit).
     */
    const load = (orderId: string, lock: boolean) =>
      Effect.gen(function* () {
        const [row] = yield* sql<ReservationRow & { dbNow: Date; lines: ReadonlyArray<StoredLine> | null }>`
          SELECT ${reservationColumns}, inventory_now() AS db_now,
                 (SELECT json_agg(${lineJson} ORDER BY l.variant_id) FROM reservation_lines l WHERE l.order_id = r.order_id) AS lines
            FROM reservations r
           WHERE order_id = ${orderId}
          ${lock ? sql`FOR UPDATE` : sql``}`
        if (!row) return undefined
        return { row, now: row.dbNow, lines: toLines(row.lines) }
      })

    // inventory_now() is the transaction's start: the same time the transaction decided on.
    const setStatus = (orderIds: ReadonlyArray<string>, status: ReservationStatus) =>
      sql`UPDATE reservations SET status = ${status}, updated_at = inventory_now() WHERE order_id = ANY(${orderIds})`

    /** Due reservations (their rows locked by this transaction) with their lines and allocations. */
    const withLines = (rows: ReadonlyArray<ReservationRow>) =>
      Effect.map(rows.length === 0 ? Effect.succeed([]) : linesOf(rows.map((r) => r.orderId)), (lines) =>
        rows.map((row): AppliedReservation => ({
          orderId: row.orderId,
          expiresAt: row.expiresAt,
          // Expiry is the reservation's own story: its events keep the correlation id it was made with.
          correlationId: row.correlationId,
          lines: toLines(lines.filter((l) => l.orderId === row.orderId).map((l) => l.line))
        }))
      )

    /** Expires reservations whose rows this transaction has locked (and their stock rows, when given). */
    const expireLocked = (reservations: ReadonlyArray<AppliedReservation>, lockedRows?: StockView) =>
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
     * together, in order (`lockStock`); when it already holds its own, it takes the others only if
     * free (SKIP LOCKED), since waiting for them out of order could deadlock, and leaves a reservation
     * whose rows it could not all take to the sweeper. Answers its own variants' rows as they are afterwards.
     */
    const expireDueOf = (short: ReadonlyArray<string>, own: ReadonlyArray<string>, held: StockView | undefined) =>
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
        let rows: StockView
        if (held === undefined) {
          rows = yield* lockStock([...own, ...others].sort())
        } else {
          const free = others.length === 0 ? undefined : yield* lockStockIfFree(others.sort())
          rows = free === undefined ? held : { levels: new Map([...held.levels, ...free.levels]), rows: [...held.rows, ...free.rows] }
        }
        const covered = due.filter((r) => r.lines.every((l) => rows.levels.has(l.variantId)))
        const expired = yield* expireLocked(covered, rows)
        return { expired, locked: expired > 0 ? yield* lockStock(own) : viewOf(rows, own) }
      })

    const createInTransaction = (orderId: string, lines: ReadonlyArray<ReservationLine>, ttlSeconds: number, strategy: AllocationStrategy) =>
      Effect.gen(function* () {
        const { correlationId, actor } = yield* CurrentRequest
        // Merged lines of one variant are adjacent (pinned ones first): each variant once, in order.
        const variantIds = [...new Set(lines.map((line) => line.variantId))]
        // One statement: claim the orderId and read the variants with their location rows (no lock
        // yet). The claim makes a concurrent duplicate wait (on the primary key) until this
        // transaction ends, then find the stored reservation. The outer joins return `claimed` even
        // when no variant exists. expiresAt is on the database's clock, like every decision about it.
        const claim = yield* sql<
          Omit<LocationRow, "locationId"> & { locationId: string | null; stockedId: string | null; claimed: number; claimedAt: Date | null; claimExpiresAt: Date | null }
        >`
          WITH claim AS (
            INSERT INTO reservations (order_id, status, expires_at, correlation_id, actor, created_at, updated_at)
            SELECT ${orderId}, 'ACTIVE', t.now + make_interval(secs => ${ttlSeconds}), ${correlationId}, ${actor}, t.now, t.now
              FROM (SELECT inventory_now() AS now) t
            ON CONFLICT (order_id) DO NOTHING
            RETURNING created_at, expires_at
          )
          SELECT c.claimed, c.claimed_at, c.claim_expires_at, s.variant_id AS stocked_id, ${locationColumns}
            FROM (SELECT count(*)::int AS claimed, max(created_at) AS claimed_at, max(expires_at) AS claim_expires_at FROM claim) c
            LEFT JOIN LATERAL (
              SELECT variant_id FROM stock_levels WHERE variant_id = ANY(${variantIds}) AND c.claimed = 1
            ) s ON true
            LEFT JOIN location_stock ls ON ls.variant_id = s.variant_id
            LEFT JOIN locations l ON l.location_id = ls.location_id`
        if (claim[0]!.claimed === 0) {
          const existing = yield* load(orderId, false)
          if (!existing || !repeatsReservation(existing.lines, lines)) return yield* new ReservationConflict({ orderId })
          return { _tag: "Existing", reservation: toReservation(existing.row, existing.lines, existing.now), expired: 0 } as CreateOutcome
        }
        const now = claim[0]!.claimedAt!
        const expiresAt = claim[0]!.claimExpiresAt!
        // The named locations (a plain read: `locations` rows are never locked after a variant's).
        // Whether one exists and is active; a row of the line's variant there overrides this.
        const pinnedIds = [...new Set(lines.flatMap((line) => (line.locationId === undefined ? [] : [line.locationId])))]
        const pinned = new Map(
          pinnedIds.length === 0
            ? []
            : (yield* sql<{ locationId: string; active: boolean }>`
                SELECT location_id, active FROM locations WHERE location_id = ANY(${pinnedIds})`).map((l) => [l.locationId, { active: l.active }] as const)
        )
        const decide = (stock: AllocationStock) => decideReservation(lines, stock, strategy)
        // A refusal on what is committed needs no lock: when a variant is sold out, refusals never
        // queue behind the reservations holding its rows. A reservation that can succeed locks the
        // rows (variants in variant-id order, then their locations) and decides again on them.
        const seen = allocationStock(
          claim.flatMap((row) => (row.stockedId === null ? [] : [row.stockedId])),
          claim.flatMap((row): Array<LocationRow> => (row.locationId === null ? [] : [{ ...row, locationId: row.locationId }])),
          pinned
        )
        let locked: StockView | undefined
        let decision = decide(seen)
        if (Result.isSuccess(decision)) {
          locked = yield* lockStock(variantIds)
          decision = decide(allocationStock(locked.levels.keys(), locked.rows, pinned))
        }
        let expired = 0
        if (Result.isFailure(decision)) {
          const short = decision.failure.filter((f) => f.reason === "INSUFFICIENT_STOCK").map((f) => f.variantId)
          if (short.length > 0) {
            const lazy = yield* expireDueOf(short, variantIds, locked)
            expired = lazy.expired
            locked = lazy.locked
            if (expired > 0 && locked !== undefined) decision = decide(allocationStock(locked.levels.keys(), locked.rows, pinned))
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
        const reserved = decision.success
        yield* applyToStock("reserve", [{ orderId, lines: reserved, expiresAt }], locked)
        return {
          _tag: "Created",
          reservation: toReservation({ orderId, status: "ACTIVE", expiresAt, correlationId, createdAt: now, updatedAt: now }, reserved, now),
          expired
        } as CreateOutcome
      })

    /**
     * `POST /v1/reservations`: every line or none, allocated over locations by the request's strategy
     * (lines naming a location only there). The same orderId with the same lines answers the stored
     * reservation (`created: false`) and reserves nothing twice; other lines are a conflict.
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
        .run(createInTransaction(orderId, lines, request.ttlSeconds ?? DEFAULT_TTL_SECONDS, request.allocation ?? DEFAULT_ALLOCATION))
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
          // Its stock rows in lock order (applyToStock), after rows no one waits on while holding stock.
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
