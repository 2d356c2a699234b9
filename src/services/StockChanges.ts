import { Context, Effect, Layer, Metric } from "effect"
import { PgTypes } from "@effect/sql-pg"
import { SqlClient, type Statement } from "effect/sql"
import { availableAt } from "../domain/Allocation.js"
import { correlatedWith, stockLevelChanged, stockStatusChanged, type DomainEvent, type LocationState } from "../domain/Events.js"
import type { HistoryType } from "../domain/History.js"
import { deriveStatus, type StockStatus } from "../domain/StockLevel.js"
import { Outbox } from "../outbox/Outbox.js"

/** An outbox row as `Outbox.rows` builds it. */
type OutboxRow = Effect.Success<ReturnType<Outbox["Service"]["rows"]>>[number]
import { CurrentRequest } from "./RequestContext.js"
import { initStockMetrics, statusChangesTo, stockUpdatesOf } from "./StockMetrics.js"
import { HISTORY_COLUMNS, toHistoryEntry, type HistoryRow, type StockRow } from "./StockRows.js"
import { afterCommit } from "./Transactions.js"

/** One change of one variant at one location, already applied to its `location_stock` row. */
export interface StockChange {
  /** The variant's totals after this change (the `stock_levels` row the triggers wrote). */
  readonly after: StockRow
  readonly locationId: string
  /** The location row after this change. */
  readonly location: LocationState
  /** False for an inactive location, whose row adds nothing to the variant's available (default true). */
  readonly locationActive?: boolean | undefined
  readonly type: HistoryType
  readonly onHandChange: number
  readonly reservedChange: number
  readonly reason?: string | undefined
  readonly reference?: string | undefined
  readonly orderId?: string | undefined
  /** The story's correlation id when it is not the current request's (see DomainEvent). */
  readonly correlationId?: string | null | undefined
  /** Who made the change when it is not the current request's caller (a batch of several callers). */
  readonly actor?: string | null | undefined
}

/** The variant's status before the change: its available less what the change added at the location. */
const statusBefore = (change: StockChange): StockStatus => {
  const { location } = change
  const addedAvailable = change.locationActive === false
    ? 0
    : location.available -
      availableAt({
        onHand: location.onHand - change.onHandChange,
        reserved: location.reserved - change.reservedChange,
        safetyStock: location.safetyStock
      })
  return deriveStatus(change.after.available - addedAvailable, change.after.lowStockThreshold)
}

/** What ops see of a committed change: the stock-update line and metric, and the status change if any. */
const reportChange = (change: StockChange, correlationId: string | null) =>
  Effect.gen(function* () {
    const { after } = change
    yield* Metric.update(stockUpdatesOf(change.type), 1)
    yield* Effect.logInfo("stock updated").pipe(
      Effect.annotateLogs({
        variantId: after.variantId,
        locationId: change.locationId,
        type: change.type,
        onHandChange: change.onHandChange,
        reservedChange: change.reservedChange,
        onHand: after.onHand,
        reserved: after.reserved,
        available: after.available,
        orderId: change.orderId ?? null,
        reason: change.reason ?? null
      })
    )
    const before = statusBefore(change)
    if (before !== after.status) {
      yield* Metric.update(statusChangesTo(after.status), 1)
      yield* Effect.logInfo("stock status changed").pipe(
        Effect.annotateLogs({ variantId: after.variantId, oldStatus: before, newStatus: after.status, available: after.available })
      )
    }
  }).pipe(Effect.annotateLogs("correlationId", correlationId))

/** The events one change of a variant publishes: always StockLevelChanged, StockStatusChanged when the status moved. */
export const eventsOfChange = (change: StockChange): ReadonlyArray<DomainEvent> => {
  const { after } = change
  const before = statusBefore(change)
  const levelChanged = stockLevelChanged({
    variantId: after.variantId,
    onHand: after.onHand,
    reserved: after.reserved,
    available: after.available,
    version: after.version,
    changeType: change.type,
    onHandChange: change.onHandChange,
    reservedChange: change.reservedChange,
    locationId: change.locationId,
    location: change.location
  })
  const events = before === after.status
    ? [levelChanged]
    : [levelChanged, stockStatusChanged(after.variantId, before, after.status, after.available)]
  return events.map((event) => correlatedWith(event, change.correlationId))
}

/**
 * Records changes already applied to `location_stock` in the current transaction: exactly one history
 * entry per change (variant and location) and its outbox events. Every writer of `on_hand` /
 * `reserved` goes through here.
 */
export class StockChanges extends Context.Service<StockChanges>()("inventory/StockChanges", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Outbox
    yield* initStockMetrics

    /**
     * The history entries and outbox rows of `changes` and `events` (outbox rows already built) as
     * the CTEs `history` (RETURNING the entries) and `events` of the caller's statement, inserted
     * only when `gate`, a boolean SQL expression of that statement, holds. `current` answers the
     * correlation id and actor of a change that names none.
     */
    const historyAndEvents = (
      changes: ReadonlyArray<StockChange>,
      events: ReadonlyArray<OutboxRow>,
      gate: Statement.Fragment,
      current: { readonly correlationId: string | null; readonly actor: string | null }
    ) => {
      const column = <A>(f: (change: StockChange) => A) => changes.map(f)
      const correlationOf = (change: StockChange) => (change.correlationId !== undefined ? change.correlationId : current.correlationId)
      const actorOf = (change: StockChange) => (change.actor !== undefined ? change.actor : current.actor)
      const eventColumn = <A>(f: (event: OutboxRow) => A) => events.map(f)
      // Nullable text columns bind each element as text: the driver cannot infer the type of an
      // array whose elements are all null (e.g. no reason on any line), and would refuse the query.
      const textColumn = (f: (change: StockChange) => string | null) => changes.map((change) => PgTypes.text(f(change)))
      const eventTextColumn = (f: (event: OutboxRow) => string | null) => events.map((event) => PgTypes.text(f(event)))
      // unnest keeps the given order (WITH ORDINALITY makes it explicit): history ids and outbox ids
      // follow line order, and the relay publishes an aggregate's events in outbox id order.
      const ctes = sql`
        history AS (
          INSERT INTO inventory_history (variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after,
                                         reserved_after, reason, reference, order_id, correlation_id, actor)
          SELECT h.variant_id, h.location_id, h.type, h.on_hand_change, h.reserved_change, h.on_hand_after, h.reserved_after,
                 h.reason, h.reference, h.order_id, h.correlation_id, h.actor
            FROM unnest(${column((c) => c.after.variantId)}::text[], ${column((c) => c.locationId)}::text[],
                        ${column((c) => c.type)}::text[],
                        ${column((c) => c.onHandChange)}::int[], ${column((c) => c.reservedChange)}::int[],
                        ${column((c) => c.location.onHand)}::int[], ${column((c) => c.location.reserved)}::int[],
                        ${textColumn((c) => c.reason ?? null)}::text[], ${textColumn((c) => c.reference ?? null)}::text[],
                        ${textColumn((c) => c.orderId ?? null)}::text[], ${textColumn(correlationOf)}::text[],
                        ${textColumn(actorOf)}::text[])
                 WITH ORDINALITY AS h(variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after,
                                      reason, reference, order_id, correlation_id, actor, n)
           WHERE ${gate}
           ORDER BY h.n
          RETURNING ${sql.literal(HISTORY_COLUMNS)}
        ), events AS (
          INSERT INTO outbox (event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, correlation_id, traceparent)
          SELECT e.event_id, e.event_type, e.routing_key, e.aggregate_type, e.aggregate_id, e.payload, e.correlation_id, e.traceparent
            FROM unnest(${eventColumn((e) => e.eventId)}::uuid[], ${eventColumn((e) => e.eventType)}::text[],
                        ${eventColumn((e) => e.routingKey)}::text[], ${eventColumn((e) => e.aggregateType)}::text[],
                        ${eventColumn((e) => e.aggregateId)}::text[], ${eventColumn((e) => e.payload)}::jsonb[],
                        ${eventTextColumn((e) => e.correlationId)}::text[], ${eventTextColumn((e) => e.traceparent)}::text[])
                 WITH ORDINALITY AS e(event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, correlation_id, traceparent, n)
           WHERE ${gate}
           ORDER BY e.n
        )`
      const recorded = afterCommit(Effect.forEach(changes, (change) => reportChange(change, correlationOf(change)), { discard: true }))
      return { ctes, recorded } as const
    }

    /**
     * The history entries and outbox rows of `changes` (plus `extraEvents`) as the CTEs `history`
     * (RETURNING the entries) and `events` of the caller's statement, inserted only when `gate`, a
     * boolean SQL expression of that statement, holds: a writer can then move its rows and record
     * the change in one round trip. Run `recorded` once the statement has shown the gate held.
     */
    const recordIf = (changes: ReadonlyArray<StockChange>, extraEvents: ReadonlyArray<DomainEvent>, gate: Statement.Fragment) =>
      Effect.gen(function* () {
        const current = yield* CurrentRequest
        // Aggregate events first (e.g. InventoryReserved), then each variant's own, in line order.
        const events = yield* outbox.rows([...extraEvents, ...changes.flatMap(eventsOfChange)])
        return historyAndEvents(changes, events, gate, current)
      })

    /** Records changes already applied to `location_stock` in the current transaction; returns the history entries. */
    const record = (changes: ReadonlyArray<StockChange>, extraEvents: ReadonlyArray<DomainEvent> = []) =>
      Effect.gen(function* () {
        if (changes.length === 0) {
          yield* outbox.write(extraEvents)
          return []
        }
        const { ctes, recorded } = yield* recordIf(changes, extraEvents, sql`true`)
        // History and outbox in one statement: one round trip less on every change (the hot path).
        const rows = yield* sql<HistoryRow>`WITH ${ctes} SELECT * FROM history ORDER BY id`
        yield* recorded
        return rows.map(toHistoryEntry)
      })

    return { record, recordIf, historyAndEvents } as const
  })
}) {
  /** Was `StockChanges.Default`: the service with its dependencies (Outbox) provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(Outbox.layer))
}
