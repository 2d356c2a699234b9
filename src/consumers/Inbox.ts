import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"

/**
 * The consumers' de-duplication: each message id is recorded in the same transaction as its effect,
 * so a redelivered message finds its id and changes nothing. A concurrent duplicate waits on the
 * first one's uncommitted row and then finds it too. Old ids are forgotten by the retention sweep
 * (services/Retention.ts, INBOX_RETENTION_DAYS).
 */
export class Inbox extends Context.Service<Inbox>()("inventory/Inbox", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /** Must run inside the effect's transaction; `false` when the message was processed before. */
    const record = (messageId: string, consumer: string, eventType: string) =>
      Effect.map(
        sql`
          INSERT INTO inbox (message_id, consumer, event_type)
          VALUES (${messageId}, ${consumer}, ${eventType})
          ON CONFLICT (message_id) DO NOTHING
          RETURNING message_id`,
        (rows) => rows.length > 0
      )

    return { record } as const
  })
}) {
  /** Was `Inbox.Default`; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make)
}
