import { SqlClient } from "effect/sql"
import { Effect } from "effect"
import { historyDriftOf } from "./Retention.js"

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
 * The checks of reconciliation, for every variant (null) or the given ones, in the caller's
 * transaction: `reserved` = Σ quantities of its ACTIVE reservation lines, `onHand` = Σ its history's
 * onHand changes and `reserved` = Σ its history's reserved changes.
 */
export const driftsOf = (variantIds: ReadonlyArray<string> | null) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const only = variantIds === null ? null : [...variantIds]
    const reservedDrift = yield* sql<{ variantId: string; reserved: number; activeReserved: number }>`
      SELECT s.variant_id, s.reserved, coalesce(a.total, 0) AS active_reserved
        FROM stock_levels s
        LEFT JOIN (
          SELECT l.variant_id, sum(l.quantity)::int AS total
            FROM reservation_lines l JOIN reservations r ON r.order_id = l.order_id
           WHERE r.status = 'ACTIVE' AND (${only}::text[] IS NULL OR l.variant_id = ANY(${only}::text[]))
           GROUP BY l.variant_id
        ) a ON a.variant_id = s.variant_id
       WHERE (${only}::text[] IS NULL OR s.variant_id = ANY(${only}::text[]))
         AND s.reserved <> coalesce(a.total, 0)
       ORDER BY s.variant_id`
    // Counters vs history (plus the baseline of archived history): stated once, in Retention.ts.
    const fromHistory = yield* historyDriftOf(variantIds)
    const drifts: Array<Drift> = [
      ...reservedDrift.map((row) => ({
        variantId: row.variantId,
        check: "reserved-vs-active-reservations" as const,
        stored: row.reserved,
        expected: row.activeReserved
      })),
      ...fromHistory.flatMap((row): Array<Drift> => [
        ...(row.onHand !== row.expectedOnHand
          ? [{ variantId: row.variantId, check: "on-hand-vs-history" as const, stored: row.onHand, expected: row.expectedOnHand }]
          : []),
        ...(row.reserved !== row.expectedReserved
          ? [{ variantId: row.variantId, check: "reserved-vs-history" as const, stored: row.reserved, expected: row.expectedReserved }]
          : [])
      ])
    ]
    return drifts
  })

/**
 * Reconciliation of every variant. All checks read one snapshot (REPEATABLE READ), so concurrent
 * traffic shows no false drift.
 */
export const reconcile = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* Effect.gen(function* () {
    yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`
    const [{ count }] = (yield* sql<{ count: string }>`SELECT count(*) AS count FROM stock_levels`) as [{ count: string }]
    const drifts = yield* driftsOf(null)
    return { variantsChecked: Number(count), drifts } satisfies ReconcileReport
  }).pipe(sql.withTransaction)
}).pipe(Effect.withSpan("reconcile"))
