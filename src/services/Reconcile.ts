import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/** One variant whose stored counters disagree with what they are derived from. */
export interface Drift {
  readonly variantId: string
  readonly check: "reserved-vs-active-reservations" | "on-hand-vs-history" | "reserved-vs-history"
  readonly stored: number
  readonly expected: number
}

export interface ReconcileReport {
  readonly variantsChecked: number
  readonly drifts: ReadonlyArray<Drift>
}

/**
 * Reconciliation: for every variant, `reserved` = Σ quantities of its ACTIVE reservation lines,
 * `onHand` = Σ its history's onHand changes and `reserved` = Σ its history's reserved changes.
 * All checks read one snapshot (REPEATABLE READ), so concurrent traffic shows no false drift.
 */
export const reconcile = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* Effect.gen(function* () {
    yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`
    const [{ count }] = (yield* sql<{ count: string }>`SELECT count(*) AS count FROM stock_levels`) as [{ count: string }]
    const rows = yield* sql<{ variantId: string; onHand: number; reserved: number; activeReserved: number; historyOnHand: number; historyReserved: number }>`
      WITH active AS (
        SELECT l.variant_id, sum(l.quantity)::int AS total
          FROM reservation_lines l JOIN reservations r ON r.order_id = l.order_id
         WHERE r.status = 'ACTIVE'
         GROUP BY l.variant_id
      ),
      -- The one place that says what a variant's history adds up to (archived history would add its baseline here).
      history AS (
        SELECT variant_id, sum(on_hand_change)::bigint AS on_hand, sum(reserved_change)::bigint AS reserved
          FROM inventory_history
         GROUP BY variant_id
      )
      SELECT s.variant_id, s.on_hand, s.reserved,
             coalesce(a.total, 0) AS active_reserved,
             coalesce(h.on_hand, 0)::int AS history_on_hand,
             coalesce(h.reserved, 0)::int AS history_reserved
        FROM stock_levels s
        LEFT JOIN active a ON a.variant_id = s.variant_id
        LEFT JOIN history h ON h.variant_id = s.variant_id
       WHERE s.reserved <> coalesce(a.total, 0)
          OR s.on_hand <> coalesce(h.on_hand, 0)
          OR s.reserved <> coalesce(h.reserved, 0)
       ORDER BY s.variant_id`
    const drifts = rows.flatMap((row): Array<Drift> => [
      ...(row.reserved !== row.activeReserved
        ? [{ variantId: row.variantId, check: "reserved-vs-active-reservations" as const, stored: row.reserved, expected: row.activeReserved }]
        : []),
      ...(row.onHand !== row.historyOnHand
        ? [{ variantId: row.variantId, check: "on-hand-vs-history" as const, stored: row.onHand, expected: row.historyOnHand }]
        : []),
      ...(row.reserved !== row.historyReserved
        ? [{ variantId: row.variantId, check: "reserved-vs-history" as const, stored: row.reserved, expected: row.historyReserved }]
        : [])
    ])
    return { variantsChecked: Number(count), drifts } satisfies ReconcileReport
  }).pipe(sql.withTransaction)
}).pipe(Effect.withSpan("reconcile"))
