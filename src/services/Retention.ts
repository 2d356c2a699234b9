import { Context, Duration, Effect, Layer } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { runBackgroundLoop } from "../layers/BackgroundLoop.js"
import { AppConfig } from "../layers/Config.js"
import { countRemoved } from "./RetentionMetrics.js"

export const RETENTION_TABLES = ["outbox", "inbox", "idempotency_keys", "inventory_history"] as const
export type RetentionTable = (typeof RETENTION_TABLES)[number]

/** Transaction-scoped advisory lock per table: one replica sweeps a table at a time, the others skip it. */
const LOCK_KEYS: Record<RetentionTable, number> = {
  outbox: 7_318_200_501,
  inbox: 7_318_200_502,
  idempotency_keys: 7_318_200_503,
  inventory_history: 7_318_200_504
}

/** A sweep stops after this many batches per table; the next sweep continues with the rest. */
export const MAX_BATCHES_PER_SWEEP = 100

export type SweepResult = Record<RetentionTable, number>

/** One location row whose counts do not follow from its history (see historyDriftOf). */
export interface HistoryDrift {
  readonly variantId: string
  readonly locationId: string
  readonly onHand: number
  readonly reserved: number
  readonly expectedOnHand: number
  readonly expectedReserved: number
}

/**
 * Location rows (variant, location) whose counts do not follow from their history there:
 *   location_stock.on_hand  = baseline.on_hand  + sum(history.on_hand_change)
 *   location_stock.reserved = baseline.reserved + sum(history.reserved_change)
 * where the baseline (0 when absent) holds the sums of the archived entries of that variant and
 * location. A history or baseline without its location row counts against a row of 0. One
 * statement, so one snapshot: a concurrent archiving batch is seen entirely or not at all.
 * Reconciliation must use this instead of summing inventory_history alone, which is wrong once
 * history has been archived.
 */
export const historyDriftOf = (variantIds: ReadonlyArray<string> | null) => Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // null: every variant (reconcile); a list: just those (a repair, under their row locks).
  const only = variantIds === null ? null : [...variantIds]
  const rows = yield* sql<{
    variantId: string
    locationId: string
    onHand: number
    reserved: number
    expectedOnHand: string
    expectedReserved: string
  }>`
    WITH h AS (
      SELECT variant_id, location_id, sum(on_hand_change) AS on_hand, sum(reserved_change) AS reserved
        FROM inventory_history
       WHERE ${only}::text[] IS NULL OR variant_id = ANY(${only}::text[])
       GROUP BY variant_id, location_id
    ), b AS (
      SELECT variant_id, location_id, on_hand, reserved
        FROM inventory_history_baseline
       WHERE ${only}::text[] IS NULL OR variant_id = ANY(${only}::text[])
    ), ls AS (
      SELECT variant_id, location_id, on_hand, reserved
        FROM location_stock
       WHERE ${only}::text[] IS NULL OR variant_id = ANY(${only}::text[])
    ), k AS (
      SELECT variant_id, location_id FROM ls
      UNION SELECT variant_id, location_id FROM h
      UNION SELECT variant_id, location_id FROM b
    )
    SELECT k.variant_id, k.location_id, coalesce(ls.on_hand, 0) AS on_hand, coalesce(ls.reserved, 0) AS reserved,
           (coalesce(b.on_hand, 0) + coalesce(h.on_hand, 0))::text   AS expected_on_hand,
           (coalesce(b.reserved, 0) + coalesce(h.reserved, 0))::text AS expected_reserved
      FROM k
      LEFT JOIN ls USING (variant_id, location_id)
      LEFT JOIN b USING (variant_id, location_id)
      LEFT JOIN h USING (variant_id, location_id)
     WHERE coalesce(ls.on_hand, 0)  <> coalesce(b.on_hand, 0) + coalesce(h.on_hand, 0)
        OR coalesce(ls.reserved, 0) <> coalesce(b.reserved, 0) + coalesce(h.reserved, 0)
     ORDER BY k.variant_id, k.location_id`
  return rows.map((row): HistoryDrift => ({
    variantId: row.variantId,
    locationId: row.locationId,
    onHand: row.onHand,
    reserved: row.reserved,
    expectedOnHand: Number(row.expectedOnHand),
    expectedReserved: Number(row.expectedReserved)
  }))
}).pipe(Effect.withSpan("Retention.historyDrift"))

export const historyDrift = historyDriftOf(null)

/**
 * Purges what the service no longer needs: published outbox rows, processed inbox ids and idempotency
 * keys older than their retention, and archives history entries older than HISTORY_RETENTION_DAYS
 * into inventory_history_archive while folding their changes into inventory_history_baseline per
 * (variant, location) (same transaction), so reconciliation stays exact. Works in batches by the age index, each in a short
 * transaction guarded by a per-table try-lock, so several replicas may run it at once.
 */
export class Retention extends Context.Service<Retention>()("inventory/Retention", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { retention } = yield* AppConfig
    const limit = retention.batchSize

    /** One batch per table: delete (or archive) up to `limit` rows past the retention, count them. */
    const statements: Record<RetentionTable, Effect.Effect<ReadonlyArray<{ removed: number }>, SqlError.SqlError>> = {
      // Only published rows: pending and parked rows are the relay's and the operator's business.
      outbox: sql`
        WITH doomed AS (
          SELECT id FROM outbox
           WHERE published_at < now() - make_interval(hours => ${retention.outboxHours})
           ORDER BY published_at
           LIMIT ${limit}),
        deleted AS (DELETE FROM outbox o USING doomed WHERE o.id = doomed.id RETURNING 1)
        SELECT count(*)::int AS removed FROM deleted`,
      inbox: sql`
        WITH doomed AS (
          SELECT message_id FROM inbox
           WHERE processed_at < now() - make_interval(days => ${retention.inboxDays})
           ORDER BY processed_at
           LIMIT ${limit}),
        deleted AS (DELETE FROM inbox i USING doomed WHERE i.message_id = doomed.message_id RETURNING 1)
        SELECT count(*)::int AS removed FROM deleted`,
      idempotency_keys: sql`
        WITH doomed AS (
          SELECT scope, key FROM idempotency_keys
           WHERE created_at < now() - make_interval(hours => ${retention.idempotencyKeyHours})
           ORDER BY created_at
           LIMIT ${limit}),
        deleted AS (
          DELETE FROM idempotency_keys k USING doomed
           WHERE k.scope = doomed.scope AND k.key = doomed.key
          RETURNING 1)
        SELECT count(*)::int AS removed FROM deleted`,
      // The newest entry of each variant at each location is never archived, however old: its
      // on_hand_after / reserved_after state that location's current counts, and the history
      // endpoint never goes empty.
      inventory_history: sql`
        WITH doomed AS (
          SELECT h.id FROM inventory_history h
           WHERE h.created_at < now() - make_interval(days => ${retention.historyDays})
             AND EXISTS (SELECT 1 FROM inventory_history newer
                          WHERE newer.variant_id = h.variant_id AND newer.location_id = h.location_id
                            AND newer.id > h.id)
           ORDER BY h.created_at
           LIMIT ${limit}),
        moved AS (
          DELETE FROM inventory_history h USING doomed WHERE h.id = doomed.id
          RETURNING h.id, h.variant_id, h.location_id, h.type, h.on_hand_change, h.reserved_change, h.on_hand_after,
                    h.reserved_after, h.reason, h.reference, h.order_id, h.correlation_id, h.actor, h.created_at),
        archived AS (
          INSERT INTO inventory_history_archive (id, variant_id, location_id, type, on_hand_change, reserved_change,
                        on_hand_after, reserved_after, reason, reference, order_id, correlation_id, actor, created_at)
          SELECT id, variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after,
                 reason, reference, order_id, correlation_id, actor, created_at
            FROM moved),
        -- One baseline per (variant, location). archived_through_id: every entry of the variant at the
        -- location up to it is archived, i.e. the one before its oldest entry there still in the history
        -- (never max(id) of the batch: ids are assigned under the row lock, after created_at, so an older
        -- id can be younger and still kept). The other CTEs see the history before the DELETE, hence
        -- the NOT IN.
        folded AS (
          INSERT INTO inventory_history_baseline AS b (variant_id, location_id, on_hand, reserved, archived_through_id, archived_entries)
          SELECT m.variant_id, m.location_id, sum(m.on_hand_change), sum(m.reserved_change),
                 (SELECT min(k.id) FROM inventory_history k
                   WHERE k.variant_id = m.variant_id AND k.location_id = m.location_id
                     AND k.id NOT IN (SELECT id FROM moved)) - 1,
                 count(*)
            FROM moved m GROUP BY m.variant_id, m.location_id
          ON CONFLICT (variant_id, location_id) DO UPDATE
             SET on_hand             = b.on_hand + excluded.on_hand,
                 reserved            = b.reserved + excluded.reserved,
                 archived_through_id = greatest(b.archived_through_id, excluded.archived_through_id),
                 archived_entries    = b.archived_entries + excluded.archived_entries,
                 updated_at          = now())
        SELECT count(*)::int AS removed FROM moved`
    }

    const keepFor: Record<RetentionTable, number> = {
      outbox: retention.outboxHours,
      inbox: retention.inboxDays,
      idempotency_keys: retention.idempotencyKeyHours,
      inventory_history: retention.historyDays
    }

    // `null` when another replica holds the table's lock.
    // Uninterruptible: shutdown waits for the current short batch instead of cancelling a query.
    const batch = (table: RetentionTable) =>
      Effect.gen(function* () {
        const [lock] = yield* sql<{ locked: boolean }>`SELECT pg_try_advisory_xact_lock(${LOCK_KEYS[table]}) AS locked`
        if (!lock?.locked) return null
        const [result] = yield* statements[table]
        return result?.removed ?? 0
      }).pipe(sql.withTransaction, Effect.uninterruptible)

    const sweepTable = (table: RetentionTable) =>
      Effect.gen(function* () {
        let total = 0
        for (let i = 0; i < MAX_BATCHES_PER_SWEEP; i++) {
          const removed = yield* batch(table)
          if (removed === null) break
          total += removed
          yield* countRemoved(table, removed)
          if (removed < limit) break
        }
        return total
      }).pipe(Effect.withSpan("Retention.sweepTable", { attributes: { "inventory.table": table } }))

    /** One pass over every table with a retention (0 = keep forever); the rows removed per table. */
    const sweepOnce = Effect.fn("Retention.sweepOnce")(function* () {
      const result: SweepResult = { outbox: 0, inbox: 0, idempotency_keys: 0, inventory_history: 0 }
      for (const table of RETENTION_TABLES) {
        if (keepFor[table] === 0) continue
        result[table] = yield* sweepTable(table)
      }
      if (RETENTION_TABLES.some((table) => result[table] > 0)) {
        yield* Effect.logInfo("retention sweep removed rows").pipe(Effect.annotateLogs(result))
      }
      return result
    })

    return { sweepOnce } as const
  })
}) {
  /** Was `Retention.Default`; needs SqlClient and AppConfig. */
  static readonly layer = Layer.effect(this, this.make)
}

/**
 * The background sweep: every RETENTION_SWEEP_INTERVAL_MS (first run one interval after start, so
 * replicas starting together do not all sweep at once). A failed sweep is logged, counted and
 * retried after a backoff; closing the layer interrupts the loop between batches.
 */
export const RetentionSweeperLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const retention = yield* Retention
    const { retention: config } = yield* AppConfig
    const interval = Duration.millis(config.sweepIntervalMs)
    // A failed sweep is logged, counted and retried after a backoff (BackgroundLoop); one sweep is at
    // most MAX_BATCHES_PER_SWEEP short transactions per table.
    yield* runBackgroundLoop(
      { name: "retention-sweeper", stallAfter: Duration.minutes(15), backoff: { initial: Duration.seconds(1), max: Duration.minutes(1) } },
      (loop) => Effect.andThen(loop.idle(Effect.sleep(interval)), retention.sweepOnce())
    )
  })
)
