// What a client could have changed: every row of every table the API writes, in a stable order.
// Tests compare snapshots before and after requests that must change nothing.
import { query } from "./database.js"

const TABLES = ["stock_levels", "inventory_history", "reservations", "reservation_lines", "outbox", "idempotency_keys"] as const

export const snapshot = async (databaseUrl: string): Promise<Record<string, unknown>> => {
  const out: Record<string, unknown> = {}
  for (const table of TABLES) {
    out[table] = await query(databaseUrl, `SELECT to_jsonb(t)::text AS row FROM ${table} t ORDER BY 1`).then((rows) => rows.map((r) => r["row"]))
  }
  return out
}

/** The database's own invariants, and the bookkeeping ones the service keeps: a list of broken ones. */
export const brokenInvariants = async (databaseUrl: string): Promise<ReadonlyArray<unknown>> =>
  query(
    databaseUrl,
    `SELECT s.variant_id, s.on_hand, s.reserved, s.version, h.entries, h.last_on_hand, h.last_reserved
       FROM stock_levels s
       LEFT JOIN LATERAL (
         SELECT count(*)::int AS entries,
                (array_agg(on_hand_after ORDER BY id DESC))[1] AS last_on_hand,
                (array_agg(reserved_after ORDER BY id DESC))[1] AS last_reserved
           FROM inventory_history WHERE variant_id = s.variant_id) h ON true
      WHERE s.reserved < 0 OR s.reserved > s.on_hand
         OR (h.entries > 0 AND (h.last_on_hand <> s.on_hand OR h.last_reserved <> s.reserved))
         OR (h.entries = 0 AND (s.on_hand <> 0 OR s.reserved <> 0))`
  )
