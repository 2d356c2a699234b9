import { Metric } from "effect"

/** Rows the retention sweep deleted (outbox, inbox, idempotency keys) or archived (history), by table. */
export const retentionRemovedRows = Metric.counter("inventory_retention_removed_rows", {
  description: "Rows removed by the retention sweep, by table (history rows are archived, the others deleted)",
  incremental: true
})

export const countRemoved = (table: string, rows: number) =>
  Metric.update(Metric.withAttributes(retentionRemovedRows, { table }), rows)
