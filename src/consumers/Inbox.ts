import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * The consumers' de-duplication: each message id is recorded in the same transaction as its effect,
 * so a redelivered message finds its id and changes nothing. A concurrent duplicate waits on the
 * first one's uncommitted row and then finds it too.
 */
export class Inbox extends Effect.Service<Inbox>()("inventory/Inbox", {
  effect: Effect.gen(function* () {
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

    /** Forgets ids older than the retention, a bounded batch at a time (redeliveries come within minutes). */
    const deleteOlderThan = (hours: number) =>
      sql`
        DELETE FROM inbox
         WHERE message_id IN (SELECT message_id FROM inbox
                               WHERE processed_at < now() - make_interval(hours => ${hours})
                               LIMIT 10000)`

    return { record, deleteOlderThan } as const
  })
}) {}
