import { SqlClient } from "effect/sql"
import { Effect } from "effect"
import { locationDrifts, totalsDrifts, type CounterSources, type Drift } from "../domain/Reconciliation.js"
import { historyDriftOf } from "./Retention.js"

export type { Drift } from "../domain/Reconciliation.js"

export interface ReconcileReport {
  readonly variantsChecked: number
  /** location_stock rows checked (one per variant and location where it is stocked). */
  readonly locationRowsChecked: number
  readonly drifts: ReadonlyArray<Drift>
}

const key = (variantId: string, locationId: string) => JSON.stringify([variantId, locationId])

/**
 * The checks of reconciliation, for every variant (null) or the given ones, in the caller's
 * transaction. Per location row (variant, location): `reserved` = Σ quantities of the ACTIVE
 * reservations' allocations there, `onHand` and `reserved` = baseline + Σ history changes there.
 * Per variant: its totals (onHand, reserved, available) = the sums over its location rows. The SQL
 * only reads the rows that differ; the comparison is domain/Reconciliation.ts's. Drifts come by
 * variant, then location (the variant's totals last), then check.
 */
export const driftsOf = (variantIds: ReadonlyArray<string> | null) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const only = variantIds === null ? null : [...variantIds]
    const reservedRows = yield* sql<{ variantId: string; locationId: string; onHand: number; reserved: number; activeReserved: string }>`
      SELECT ls.variant_id, ls.location_id, ls.on_hand, ls.reserved, coalesce(a.total, 0)::text AS active_reserved
        FROM location_stock ls
        LEFT JOIN (
          SELECT a.variant_id, a.location_id, sum(a.quantity) AS total
            FROM reservation_allocations a JOIN reservations r ON r.order_id = a.order_id
           WHERE r.status = 'ACTIVE' AND (${only}::text[] IS NULL OR a.variant_id = ANY(${only}::text[]))
           GROUP BY a.variant_id, a.location_id
        ) a ON a.variant_id = ls.variant_id AND a.location_id = ls.location_id
       WHERE (${only}::text[] IS NULL OR ls.variant_id = ANY(${only}::text[]))
         AND ls.reserved <> coalesce(a.total, 0)`
    // Counters vs history (plus the baseline of archived history): stated once, in Retention.ts.
    const historyRows = yield* historyDriftOf(variantIds)
    const totalsRows = yield* sql<{
      variantId: string
      onHand: number
      reserved: number
      available: number
      locationsOnHand: string
      locationsReserved: string
      locationsAvailable: string
    }>`
      SELECT s.variant_id, s.on_hand, s.reserved, s.available,
             coalesce(t.on_hand, 0)::text AS locations_on_hand, coalesce(t.reserved, 0)::text AS locations_reserved,
             coalesce(t.available, 0)::text AS locations_available
        FROM stock_levels s
        LEFT JOIN (
          SELECT ls.variant_id, sum(ls.on_hand) AS on_hand, sum(ls.reserved) AS reserved,
                 sum(location_available(ls.on_hand, ls.reserved, ls.safety_stock, l.active)) AS available
            FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
           WHERE ${only}::text[] IS NULL OR ls.variant_id = ANY(${only}::text[])
           GROUP BY ls.variant_id
        ) t ON t.variant_id = s.variant_id
       WHERE (${only}::text[] IS NULL OR s.variant_id = ANY(${only}::text[]))
         AND (s.on_hand <> coalesce(t.on_hand, 0) OR s.reserved <> coalesce(t.reserved, 0)
              OR s.available <> coalesce(t.available, 0))`

    // Every location row that differs somewhere: its counters and its sources (a source not read
    // above did not drift, so it equals the counter).
    const rows = new Map<string, CounterSources & { variantId: string; locationId: string }>()
    const rowOf = (variantId: string, locationId: string, counters: { onHand: number; reserved: number }) =>
      rows.get(key(variantId, locationId)) ?? {
        variantId,
        locationId,
        ...counters,
        historyOnHand: counters.onHand,
        historyReserved: counters.reserved,
        activeReserved: counters.reserved
      }
    for (const h of historyRows) {
      rows.set(key(h.variantId, h.locationId), {
        ...rowOf(h.variantId, h.locationId, h),
        historyOnHand: h.expectedOnHand,
        historyReserved: h.expectedReserved
      })
    }
    for (const r of reservedRows) {
      rows.set(key(r.variantId, r.locationId), { ...rowOf(r.variantId, r.locationId, r), activeReserved: Number(r.activeReserved) })
    }
    const byLocation = [...rows.values()].map((row) => ({
      variantId: row.variantId,
      locationId: row.locationId as string | null,
      drifts: locationDrifts(row.variantId, row.locationId, row)
    }))
    const byVariant = totalsRows.map((row) => ({
      variantId: row.variantId,
      locationId: null,
      drifts: totalsDrifts(row.variantId, {
        onHand: row.onHand,
        reserved: row.reserved,
        available: row.available,
        locationsOnHand: Number(row.locationsOnHand),
        locationsReserved: Number(row.locationsReserved),
        locationsAvailable: Number(row.locationsAvailable)
      })
    }))
    // Plain code-unit order (not the database's collation): stable whatever the server's locale.
    const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
    return [...byLocation, ...byVariant]
      .sort((a, b) => order(a.variantId, b.variantId) || (a.locationId === null ? 1 : b.locationId === null ? -1 : order(a.locationId, b.locationId)))
      .flatMap((group) => group.drifts)
  })

/**
 * Reconciliation of every variant and every location row. All checks read one snapshot
 * (REPEATABLE READ), so concurrent traffic shows no false drift.
 */
export const reconcile = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* Effect.gen(function* () {
    yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`
    const [counts] = yield* sql<{ variants: string; locationRows: string }>`
      SELECT (SELECT count(*) FROM stock_levels)::text AS variants, (SELECT count(*) FROM location_stock)::text AS location_rows`
    const drifts = yield* driftsOf(null)
    return {
      variantsChecked: Number(counts?.variants ?? 0),
      locationRowsChecked: Number(counts?.locationRows ?? 0),
      drifts
    } satisfies ReconcileReport
  }).pipe(sql.withTransaction)
}).pipe(Effect.withSpan("reconcile"))
