import { Result } from "effect"

/** What the broker said of one published row. */
export type Outcome<F> = Result.Result<void, F>

export interface Settlement<R, F> {
  /** Confirmed, with every earlier row of its aggregate in the batch confirmed too: mark published. */
  readonly published: ReadonlyArray<R>
  /** The first failed row of its aggregate: record an attempt (refused, timed out) or release it (connection gone). */
  readonly failed: ReadonlyArray<{ readonly row: R; readonly failure: F }>
  /** Later rows of an aggregate whose earlier row failed, confirmed or not: released, sent again after it. */
  readonly heldBack: ReadonlyArray<R>
}

/**
 * Per-aggregate order over a batch's outcomes (rows in id order). Once a row of an aggregate fails,
 * none of its later rows may leave the outbox before it does, even if the broker confirmed them:
 * they go out again after the failed one, so the last copy a consumer sees of each event follows
 * commit order (consumers de-duplicate by messageId; EVENTS.md).
 */
export const settle = <R extends { readonly aggregateId: string }, F>(
  rows: ReadonlyArray<R>,
  outcomes: ReadonlyArray<Outcome<F>>
): Settlement<R, F> => {
  const blocked = new Set<string>()
  const published: Array<R> = []
  const failed: Array<{ readonly row: R; readonly failure: F }> = []
  const heldBack: Array<R> = []
  rows.forEach((row, i) => {
    const outcome = outcomes[i]!
    if (blocked.has(row.aggregateId)) heldBack.push(row)
    else if (Result.isSuccess(outcome)) published.push(row)
    else {
      blocked.add(row.aggregateId)
      failed.push({ row, failure: outcome.failure })
    }
  })
  return { published, failed, heldBack }
}
