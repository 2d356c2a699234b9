import { Context, Effect, Layer, Tracer } from "effect"
import { PgTypes } from "@effect/sql-pg"
import { SqlClient, type SqlError } from "effect/sql"
import type { AllocationStrategy } from "../domain/Allocation.js"
import type { ReservationFailure, ReservationNotActive } from "../domain/Errors.js"
import {
  correlatedWith,
  inventoryReservationCommitted,
  inventoryReservationFailed,
  inventoryReservationReleased,
  inventoryReserved,
  type DomainEvent
} from "../domain/Events.js"
import { repeatsReservation, statusAfter, type Reservation, type ReservationLine, type ReservedLine } from "../domain/Reservation.js"
import {
  decideBatch,
  rowKey,
  shortVariants,
  type AppliedChange,
  type BatchDecision,
  type BatchOutcome,
  type BatchRequest,
  type StoredReservation
} from "../domain/ReservationBatch.js"
import { Outbox } from "../outbox/Outbox.js"
import { countReservations } from "./ReservationMetrics.js"
import { CurrentRequest, type RequestContext } from "./RequestContext.js"
import { RESERVATION_WITH_LINES, toLines, toReservation, type ReservationRow, type ReservationWithLinesRow } from "./ReservationRows.js"
import { eventsOfChange, StockChanges, type StockChange } from "./StockChanges.js"
import { LOCATION_COLUMNS, locationStateOf, STOCK_COLUMNS, type LocationRow, type StockRow } from "./StockRows.js"
import { afterCommit, Transactions } from "./Transactions.js"

/** A request as the batcher queues it. */
export type BatchInput =
  | {
    readonly _tag: "Create"
    readonly orderId: string
    readonly lines: ReadonlyArray<ReservationLine>
    readonly ttlSeconds: number
    readonly strategy: AllocationStrategy
  }
  | { readonly _tag: "Release" | "Commit"; readonly orderId: string }

/** A queued request with who asked and the span it was asked in (its events continue that trace). */
export interface BatchEntry {
  readonly input: BatchInput
  readonly context: RequestContext
  readonly span: Tracer.AnySpan | undefined
}

/** What a batch answers one request (committed before anyone sees it). */
export type EntryOutcome =
  | { readonly _tag: "Created"; readonly reservation: Reservation }
  | { readonly _tag: "Existing"; readonly reservation: Reservation }
  | { readonly _tag: "Conflict" }
  | { readonly _tag: "Refused"; readonly failures: ReadonlyArray<ReservationFailure> }
  | { readonly _tag: "Changed"; readonly change: Exclude<AppliedChange, "reserve">; readonly reservation: Reservation }
  | { readonly _tag: "Unchanged"; readonly reservation: Reservation }
  | { readonly _tag: "NotActive"; readonly error: ReservationNotActive }
  | { readonly _tag: "NotFound" }

export interface BatchResult {
  readonly outcomes: ReadonlyArray<EntryOutcome>
  /** Due reservations the batch expired on the way (they held stock a create lacked). */
  readonly expired: number
}

/**
 * A row of `lockStock`'s one statement: a claimed orderId (claiming), a variant's totals (no
 * locationId) or one of its location rows.
 */
interface LockedStockRow {
  readonly orderId: string | null
  readonly expiresAt: Date | null
  readonly locationId: string | null
  readonly variantId: string | null
  readonly sku: string | null
  readonly onHand: number
  readonly reserved: number
  readonly available: number | null
  readonly lowStockThreshold: number | null
  readonly status: StockRow["status"] | null
  readonly version: number
  readonly updatedAt: Date
  readonly safetyStock: number | null
  readonly active: boolean | null
  readonly priority: number | null
}

/** A new orderId this batch claimed: its reservation row's times (created at the transaction's start). */
interface Claim {
  readonly createdAt: Date
  readonly expiresAt: Date
}

/** The stock rows a batch holds. */
interface LockedStock {
  readonly totals: ReadonlyMap<string, StockRow>
  readonly rows: ReadonlyArray<LocationRow>
}

type CreateEntry = BatchEntry & { readonly input: Extract<BatchInput, { _tag: "Create" }> }

/** A request as decided, with who asked; `index` is its entry's (-1: a due reservation expired on the way). */
interface DecidedItem {
  readonly index: number
  readonly request: BatchRequest
  readonly context: RequestContext
  readonly span: Tracer.AnySpan | undefined
  readonly expiresAt: Date
}

/** Most due reservations one batch expires on the way. */
const LAZY_EXPIRY_LIMIT = 500

type LoadedRow = ReservationWithLinesRow

/** A stored reservation the batch found, with its row. */
interface Found {
  readonly row: ReservationRow
  readonly stored: StoredReservation
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

const eventOf = (change: AppliedChange, orderId: string, lines: ReadonlyArray<ReservedLine>, expiresAt: Date): DomainEvent => {
  switch (change) {
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
 * The one SQL apply of a reservation batch (group commit, ADR 0009), in one transaction and a fixed
 * number of statements whatever the batch's size: claim the new orderIds, lock the stored ones, lock
 * every stock row the batch needs once (variants in id order, then their locations: the global lock
 * order), decide every request in arrival order with the pure rule (domain/ReservationBatch.ts),
 * then in one statement move each row once by what all its changes add up to and write the
 * reservation rows, lines, history and outbox. A batch of creates only claims and locks in one
 * statement: BEGIN, two statements, COMMIT. A refused request changes nothing but its event.
 */
export class ReservationBatches extends Context.Service<ReservationBatches>()("inventory/ReservationBatches", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const stockChanges = yield* StockChanges
    const outbox = yield* Outbox
    const withLines = sql.literal(RESERVATION_WITH_LINES)
    /** Due for expiry: ACTIVE and past expiresAt on the database's clock (one clock for every replica). */
    const isDue = sql.literal("status = 'ACTIVE' AND expires_at <= inventory_now()")

    /** Inserts the new orderIds' reservation rows (in id order); an existing one is left alone. A concurrent claim of one waits for its transaction. */
    const claimInsert = (creates: ReadonlyArray<CreateEntry>) => sql`
      INSERT INTO reservations (order_id, status, expires_at, correlation_id, actor, created_at, updated_at)
      SELECT c.order_id, 'ACTIVE', t.now + make_interval(secs => c.ttl), c.correlation_id, c.actor, t.now, t.now
        FROM unnest(${creates.map((e) => e.input.orderId)}::text[], ${creates.map((e) => e.input.ttlSeconds)}::int[],
                    ${creates.map((e) => PgTypes.text(e.context.correlationId))}::text[],
                    ${creates.map((e) => PgTypes.text(e.context.actor))}::text[]) AS c(order_id, ttl, correlation_id, actor)
       CROSS JOIN (SELECT inventory_now() AS now) t
       ORDER BY c.order_id
      ON CONFLICT (order_id) DO NOTHING
      RETURNING order_id, created_at, expires_at`

    /** Claims the new orderIds; the existing ones are not claimed. */
    const claim = (creates: ReadonlyArray<CreateEntry>) =>
      creates.length === 0
        ? Effect.succeed(new Map<string, Claim>())
        : Effect.map(sql<{ orderId: string } & Claim>`${claimInsert(creates)}`, (rows) => new Map(rows.map((row) => [row.orderId, row] as const)))

    /** Stored reservations with their lines, locked in id order, and the database's time. */
    const loadLocked = (orderIds: ReadonlyArray<string>) =>
      orderIds.length === 0
        ? Effect.succeed([] as ReadonlyArray<LoadedRow>)
        : sql<LoadedRow>`
            SELECT ${withLines}
              FROM reservations r
             WHERE order_id = ANY(${[...orderIds].sort(byId)})
             ORDER BY order_id
               FOR UPDATE`

    /**
     * Stored reservations with their lines, read without a lock: for repeated creates of a batch that
     * holds stock rows already (every writer locks a reservation row before stock rows, so waiting for
     * one now could deadlock). A repeat's answer needs only its lines, which never change.
     */
    const loadStored = (orderIds: ReadonlyArray<string>) =>
      orderIds.length === 0
        ? Effect.succeed([] as ReadonlyArray<LoadedRow>)
        : sql<LoadedRow>`SELECT ${withLines} FROM reservations r WHERE order_id = ANY(${orderIds})`

    /**
     * The variants' rows, locked in variant-id order, then their location rows in (variant, location)
     * order: the lock order of every writer, so none deadlock. `ifFree` skips variants another
     * transaction holds instead of waiting (for rows beyond the ones a transaction locked first);
     * their location rows are then free, since every writer of one holds its variant's row first.
     * `claiming`: the same statement first claims these creates' orderIds (a batch of creates only:
     * one round trip less), before any stock row is locked, as `claim` would.
     */
    const lockStock = (variantIds: ReadonlyArray<string>, options: { readonly ifFree?: boolean; readonly claiming?: ReadonlyArray<CreateEntry> } = {}) =>
      Effect.gen(function* () {
        const claiming = options.claiming ?? []
        const claimed = new Map<string, Claim>()
        const totals = new Map<string, StockRow>()
        const rows: Array<LocationRow> = []
        if (variantIds.length === 0 && claiming.length === 0) return { claimed, totals, rows }
        // The claim runs to its end before the first stock row is locked: `v`, read first, counts its
        // rows before it locks any (the lock order of `claim` then `lockStock`).
        const claimFirst = claiming.length === 0
          ? { cte: sql.literal(""), after: sql.literal(""), rows: sql.literal("") }
          : {
            cte: sql`claimed AS (${claimInsert(claiming)}),`,
            after: sql.literal("AND (SELECT count(*) FROM claimed) >= 0"),
            rows: sql.literal(`UNION ALL
              SELECT order_id, expires_at, NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, created_at, NULL, NULL, NULL FROM claimed`)
          }
        // One round trip: the variants' rows, then their location rows, each locked in that order
        // (a location row is locked only once its variant's row is held: the join needs it first).
        const locked = yield* sql<LockedStockRow>`
          WITH ${claimFirst.cte} v AS MATERIALIZED (
            SELECT ${sql.literal(STOCK_COLUMNS)} FROM stock_levels
             WHERE variant_id = ANY(${[...variantIds].sort(byId)}) ${claimFirst.after}
             ORDER BY variant_id
               FOR UPDATE ${sql.literal(options.ifFree === true ? "SKIP LOCKED" : "")}
          ), r AS MATERIALIZED (
            SELECT ${sql.literal(LOCATION_COLUMNS)} FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
             WHERE ls.variant_id IN (SELECT variant_id FROM v)
             ORDER BY ls.variant_id, ls.location_id
               FOR UPDATE OF ls
          )
          SELECT NULL::text AS order_id, NULL::timestamptz AS expires_at, NULL::text AS location_id, variant_id, sku, on_hand, reserved,
                 available, low_stock_threshold, status, version, updated_at, NULL::int AS safety_stock, NULL::boolean AS active,
                 NULL::int AS priority FROM v
          UNION ALL
          SELECT NULL, NULL, location_id, variant_id, NULL, on_hand, reserved, NULL, NULL, NULL, version, updated_at, safety_stock, active,
                 priority FROM r
          ${claimFirst.rows}`
        for (const row of locked) {
          if (row.orderId !== null) {
            claimed.set(row.orderId, { createdAt: row.updatedAt, expiresAt: row.expiresAt! })
          } else if (row.locationId === null) {
            totals.set(row.variantId!, {
              variantId: row.variantId!, sku: row.sku, onHand: row.onHand, reserved: row.reserved, available: row.available!,
              lowStockThreshold: row.lowStockThreshold!, status: row.status!, version: row.version, updatedAt: row.updatedAt
            })
          } else {
            rows.push({
              variantId: row.variantId!, locationId: row.locationId, onHand: row.onHand, reserved: row.reserved, safetyStock: row.safetyStock!,
              version: row.version, updatedAt: row.updatedAt, active: row.active!, priority: row.priority!
            })
          }
        }
        return { claimed, totals, rows }
      })

    /** The locations pinned lines name, as read (never locked: `locations` rows are not locked after a variant's). */
    const pinnedLocations = (requests: ReadonlyArray<BatchRequest>) =>
      Effect.gen(function* () {
        const ids = [...new Set(requests.flatMap((r) => (r._tag === "Create" ? r.lines.flatMap((l) => (l.locationId === undefined ? [] : [l.locationId])) : [])))]
        if (ids.length === 0) return new Map<string, { active: boolean }>()
        const rows = yield* sql<{ locationId: string; active: boolean }>`SELECT location_id, active FROM locations WHERE location_id = ANY(${ids})`
        return new Map(rows.map((row) => [row.locationId, { active: row.active }] as const))
      })

    /** Due ACTIVE reservations holding any of `variantIds`, not in the batch and not held by another transaction. */
    const dueHolding = (variantIds: ReadonlyArray<string>, inBatch: ReadonlyArray<string>) =>
      sql<LoadedRow>`
        SELECT ${withLines}
          FROM reservations r
         WHERE r.status = 'ACTIVE' AND r.expires_at <= inventory_now() AND r.order_id <> ALL(${inBatch})
           AND EXISTS (SELECT 1 FROM reservation_lines l WHERE l.order_id = r.order_id AND l.variant_id = ANY(${variantIds}))
         ORDER BY r.expires_at, r.order_id
         LIMIT ${LAZY_EXPIRY_LIMIT}
           FOR UPDATE SKIP LOCKED`

    const foundOf = (row: LoadedRow): Found => ({ row, stored: { status: row.status, expiresAt: row.expiresAt, lines: toLines(row.lines) } })

    /**
     * Applies a decided batch in one statement: each changed location row moved once (the triggers
     * move the totals and both versions by its number of changes) and the reservation rows, lines,
     * allocations, history and outbox written; the moved rows are checked against the plan. `items`
     * are the decided requests with who asked (events, history) and what they change.
     */
    const applyDecided = (
      outcome: BatchOutcome<StockRow, LocationRow>,
      locked: LockedStock,
      items: ReadonlyArray<{ readonly request: BatchRequest; readonly context: RequestContext; readonly span: Tracer.AnySpan | undefined; readonly expiresAt: Date }>
    ) =>
      Effect.gen(function* () {
        const { changes, decisions, finalRows, finalTotals } = outcome
        const original = new Map(locked.rows.map((row) => [rowKey(row.variantId, row.locationId), row] as const))
        const moves = [...finalRows].map(([key, { row, changes: n }]) => {
          const before = original.get(key)!
          return { row, n, onHand: row.onHand - before.onHand, reserved: row.reserved - before.reserved }
        })

        // Per request: its stock changes (history, events) and its aggregate event first, in arrival order.
        const stockChangesOf = new Map<number, Array<StockChange>>()
        for (const c of changes) {
          const item = items[c.request]!
          const list = stockChangesOf.get(c.request) ?? []
          list.push({
            after: c.totalsAfter,
            locationId: c.locationId,
            location: locationStateOf(c.rowAfter),
            locationActive: c.rowBefore.active,
            type: c.type,
            onHandChange: c.onHandChange,
            reservedChange: c.reservedChange,
            orderId: item.request.orderId,
            correlationId: item.context.correlationId,
            actor: item.context.actor
          })
          stockChangesOf.set(c.request, list)
        }
        const eventsOf = (index: number, decision: BatchDecision): ReadonlyArray<DomainEvent> => {
          const { request, context, expiresAt } = items[index]!
          const own = (stockChangesOf.get(index) ?? []).flatMap(eventsOfChange)
          const aggregate = decision._tag === "Reserved"
            ? eventOf("reserve", request.orderId, decision.lines, expiresAt)
            : decision._tag === "Refused"
              ? inventoryReservationFailed(request.orderId, decision.failures)
              : decision._tag === "Applied" && request._tag !== "Create"
                ? eventOf(decision.change, request.orderId, request.stored!.lines, expiresAt)
                : undefined
          return aggregate === undefined ? own : [correlatedWith(aggregate, context.correlationId), ...own]
        }
        const outboxRows = (yield* Effect.forEach(decisions, (decision, index) => {
          const { context, span } = items[index]!
          const rows = outbox.rows(eventsOf(index, decision)).pipe(Effect.provideService(CurrentRequest, context))
          // No stack trace: it would be this line for every request (a `new Error()` each, ~10 µs).
          return span === undefined ? rows : Effect.withParentSpan(rows, span, { captureStackTrace: false })
        })).flat()

        const statusChanges = decisions.flatMap((d, i) => (d._tag === "Applied" ? [{ orderId: items[i]!.request.orderId, status: statusAfter(d.change) }] : []))
        const refused = decisions.flatMap((d, i) => (d._tag === "Refused" ? [items[i]!.request.orderId] : []))
        const reserved = decisions.flatMap((d, i) => (d._tag === "Reserved" ? d.lines.map((line) => ({ orderId: items[i]!.request.orderId, line })) : []))
        const allocations = reserved.flatMap(({ orderId, line }) => line.allocations.map((a) => ({ orderId, variantId: line.variantId, ...a })))
        const { ctes, recorded } = stockChanges.historyAndEvents(
          [...stockChangesOf.keys()].sort((a, b) => a - b).flatMap((i) => stockChangesOf.get(i)!),
          outboxRows,
          sql`true`,
          { correlationId: null, actor: null }
        )
        // One statement: each changed location row moved once by all its changes (the roll-up trigger
        // moves the variant's totals and version from exactly these rows at the statement's end), and
        // the reservation rows, lines, allocations, history and outbox written.
        const moved = yield* sql<{ variantId: string; locationId: string; onHand: number; reserved: number; version: number }>`
          WITH moved AS (
            UPDATE location_stock ls
               SET on_hand = ls.on_hand + m.on_hand_change,
                   reserved = ls.reserved + m.reserved_change,
                   version = ls.version + m.changes
              FROM unnest(${moves.map((m) => m.row.variantId)}::text[], ${moves.map((m) => m.row.locationId)}::text[],
                          ${moves.map((m) => m.onHand)}::int[], ${moves.map((m) => m.reserved)}::int[], ${moves.map((m) => m.n)}::int[])
                   AS m(variant_id, location_id, on_hand_change, reserved_change, changes)
             WHERE ls.variant_id = m.variant_id AND ls.location_id = m.location_id
            RETURNING ls.variant_id, ls.location_id, ls.on_hand, ls.reserved, ls.version
          ), ${ctes},
          status AS (
            UPDATE reservations r SET status = u.status, updated_at = inventory_now()
              FROM unnest(${statusChanges.map((s) => s.orderId)}::text[], ${statusChanges.map((s) => s.status)}::text[]) AS u(order_id, status)
             WHERE r.order_id = u.order_id
          ), unclaim AS (
            DELETE FROM reservations WHERE order_id = ANY(${refused}::text[])
          ), lines AS (
            INSERT INTO reservation_lines (order_id, variant_id, quantity)
            SELECT * FROM unnest(${reserved.map((r) => r.orderId)}::text[], ${reserved.map((r) => r.line.variantId)}::text[],
                                 ${reserved.map((r) => r.line.quantity)}::int[])
          ), allocations AS (
            INSERT INTO reservation_allocations (order_id, variant_id, location_id, quantity)
            SELECT * FROM unnest(${allocations.map((a) => a.orderId)}::text[], ${allocations.map((a) => a.variantId)}::text[],
                                 ${allocations.map((a) => a.locationId)}::text[], ${allocations.map((a) => a.quantity)}::int[])
          )
          SELECT variant_id, location_id, on_hand, reserved, version FROM moved`
        // The rows as moved must be the plan's (they were locked); a disagreement is a bug, and dying
        // here rolls the whole batch back. The roll-up trigger adds each of these rows' changes to its
        // variant's totals, so the totals follow from the rows checked here.
        const movedByKey = new Map(moved.map((row) => [rowKey(row.variantId, row.locationId), row] as const))
        const rowsAgree = moved.length === moves.length && moves.every(({ row }) => {
          const got = movedByKey.get(rowKey(row.variantId, row.locationId))
          return got !== undefined && got.onHand === row.onHand && got.reserved === row.reserved && got.version === row.version
        })
        if (!rowsAgree) return yield* Effect.die(new Error(`location rows of ${[...finalTotals.keys()].join(", ")} changed although they were locked`))
        yield* recorded
      })

    /** Expires reservations this transaction has locked (and, when given, their stock rows): the sweeper's and a batch's way. */
    const expiryItems = (found: ReadonlyArray<Found>) =>
      found.map((f) => ({
        request: { _tag: "Expire", orderId: f.row.orderId, stored: f.stored } as const satisfies BatchRequest,
        // Expiry is the reservation's own story: its events keep the correlation id it was made with.
        context: { correlationId: f.row.correlationId, actor: null },
        span: undefined,
        expiresAt: f.row.expiresAt
      }))

    const logExpired = (found: ReadonlyArray<Found>) =>
      afterCommit(Effect.forEach(found, (f) =>
        Effect.logInfo("reservation expired").pipe(Effect.annotateLogs({ orderId: f.row.orderId, lines: f.stored.lines, outcome: "expired" })), { discard: true }))

    /** One batch in one transaction (retried whole on a serialization failure or deadlock); orderIds unique. */
    const apply = (entries: ReadonlyArray<BatchEntry>): Effect.Effect<BatchResult, SqlError.SqlError> =>
      transactions.run(Effect.gen(function* () {
        const creates = entries.filter((e): e is CreateEntry => e.input._tag === "Create")
        const variantsOf = (lines: ReadonlyArray<{ readonly variantId: string }>) => [...new Set(lines.map((line) => line.variantId))]
        // A batch of creates only (the common case) claims and locks in one statement: every create's
        // variants, a repeated one's too (extra locks, in lock order); a repeat's stored reservation is
        // then read without a lock. Otherwise: claim, lock the stored reservations, then the stock.
        const createsOnly = creates.length === entries.length
        const claimedAndLocked = createsOnly ? yield* lockStock(variantsOf(creates.flatMap((e) => e.input.lines)), { claiming: creates }) : undefined
        const claimed = claimedAndLocked?.claimed ?? (yield* claim(creates))
        const toLoad = entries.filter((e) => e.input._tag !== "Create" || !claimed.has(e.input.orderId)).map((e) => e.input.orderId)
        const loadedRows = yield* (createsOnly ? loadStored(toLoad) : loadLocked(toLoad))
        const loaded = new Map(loadedRows.map((row) => [row.orderId, foundOf(row)] as const))
        // The transaction's time (inventory_now() is its start), whichever statement read it.
        const now = claimed.values().next().value?.createdAt ?? loadedRows[0]?.dbNow ?? new Date()

        // Unclaimed creates answer the stored reservation (same lines) or a conflict; the rest are decided.
        const outcomes: Array<EntryOutcome | undefined> = entries.map((entry) => {
          const { input } = entry
          if (input._tag !== "Create" || claimed.has(input.orderId)) return undefined
          const existing = loaded.get(input.orderId)
          return existing !== undefined && repeatsReservation(existing.stored.lines, input.lines)
            ? { _tag: "Existing", reservation: toReservation(existing.row, existing.stored.lines, now) }
            : { _tag: "Conflict" }
        })
        const decided = entries.flatMap((entry, index) => {
          if (outcomes[index] !== undefined) return []
          const { input } = entry
          const request: BatchRequest = input._tag === "Create"
            ? { _tag: "Create", orderId: input.orderId, lines: input.lines, strategy: input.strategy }
            : { _tag: input._tag, orderId: input.orderId, stored: loaded.get(input.orderId)?.stored }
          const expiresAt = input._tag === "Create" ? claimed.get(input.orderId)!.expiresAt : loaded.get(input.orderId)?.row.expiresAt ?? now
          return [{ index, request, context: entry.context, span: entry.span, expiresAt } satisfies DecidedItem]
        })
        const requests = decided.map((d) => d.request)
        const pinned = yield* pinnedLocations(requests)
        let locked: LockedStock = claimedAndLocked ??
          (yield* lockStock(variantsOf(requests.flatMap((r) => (r._tag === "Create" ? r.lines : r.stored?.lines ?? [])))))
        let items: ReadonlyArray<DecidedItem> = decided
        let outcome = decideBatch(requests, { ...locked, pinned }, now.getTime())
        let expired: ReadonlyArray<Found> = []

        // A create that lacks stock first expires the due reservations holding its variants, so one the
        // sweeper has not reached yet never blocks it. This transaction already holds its own rows, so it
        // takes the others' only if free (SKIP LOCKED): waiting for them out of order could deadlock.
        const short = shortVariants(outcome.decisions)
        if (short.length > 0) {
          const due = (yield* dueHolding(short, entries.map((e) => e.input.orderId))).map(foundOf)
          if (due.length > 0) {
            const others = variantsOf(due.flatMap((f) => f.stored.lines)).filter((id) => !locked.totals.has(id))
            const free = yield* lockStock(others, { ifFree: true })
            locked = { totals: new Map([...locked.totals, ...free.totals]), rows: [...locked.rows, ...free.rows] }
            expired = due.filter((f) => f.stored.lines.every((line) => locked.totals.has(line.variantId)))
            if (expired.length > 0) {
              items = [...expiryItems(expired).map((item) => ({ ...item, index: -1 })), ...decided]
              outcome = decideBatch(items.map((i) => i.request), { ...locked, pinned }, now.getTime())
            }
          }
        }
        yield* applyDecided(outcome, locked, items)
        yield* logExpired(expired)
        yield* afterCommit(countReservations("expired", expired.length))

        outcome.decisions.forEach((decision, i) => {
          const { index, request, expiresAt } = items[i]!
          if (index < 0) return
          const orderId = request.orderId
          const context = entries[index]!.context
          switch (decision._tag) {
            case "Reserved":
              outcomes[index] = {
                _tag: "Created",
                reservation: toReservation({ orderId, status: "ACTIVE", expiresAt, correlationId: context.correlationId, createdAt: now, updatedAt: now }, decision.lines, now)
              }
              return
            case "Refused":
              outcomes[index] = { _tag: "Refused", failures: decision.failures }
              return
            case "Applied": {
              const found = loaded.get(orderId)!
              const row = { ...found.row, status: statusAfter(decision.change), updatedAt: now }
              outcomes[index] = { _tag: "Changed", change: decision.change, reservation: toReservation(row, found.stored.lines, now) }
              return
            }
            case "Unchanged": {
              const found = loaded.get(orderId)!
              outcomes[index] = { _tag: "Unchanged", reservation: toReservation(found.row, found.stored.lines, now) }
              return
            }
            case "NotActive":
              outcomes[index] = { _tag: "NotActive", error: decision.error }
              return
            case "NotFound":
              outcomes[index] = { _tag: "NotFound" }
              return
          }
        })
        return { outcomes: outcomes.map((o) => o!), expired: expired.length } satisfies BatchResult
      }))

    /**
     * One batch of the expiry sweep: claims up to `limit` due ACTIVE reservations that no other
     * transaction holds (several replicas sweep at once without waiting on each other) and expires
     * them through the same apply as every batch. Uninterruptible: an interrupt (shutdown) waits for
     * the short batch, since interrupting a query makes the driver cancel whatever that connection
     * runs by then (EFFECT-NOTES.md).
     */
    const expireDue = (limit: number) =>
      Effect.uninterruptible(transactions.run(Effect.gen(function* () {
        const due = (yield* sql<LoadedRow>`
          SELECT ${withLines}
            FROM reservations r
           WHERE ${isDue}
           ORDER BY expires_at, order_id
           LIMIT ${limit}
             FOR UPDATE SKIP LOCKED`).map(foundOf)
        if (due.length === 0) return 0
        // Its stock rows in lock order, after rows no one waits on while holding stock.
        const items = expiryItems(due)
        const locked = yield* lockStock([...new Set(due.flatMap((f) => f.stored.lines.map((line) => line.variantId)))])
        const outcome = decideBatch(items.map((i) => i.request), { ...locked, pinned: new Map() }, Date.now())
        yield* applyDecided(outcome, locked, items)
        yield* logExpired(due)
        return due.length
      })))

    /** The reservations `expireDue` would expire now (oldest first), for a dry run of the admin CLI. */
    const due = (limit: number) =>
      sql<{ orderId: string; expiresAt: Date }>`
        SELECT order_id, expires_at FROM reservations
         WHERE ${isDue}
         ORDER BY expires_at, order_id
         LIMIT ${limit}`

    return { apply, expireDue, due } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, StockChanges.layer, Outbox.layer]))
}
