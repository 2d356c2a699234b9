import { SqlError } from "@effect/sql/SqlError"
import { Cause, Duration, Option } from "effect"
import { classifySqlError, pgCode, type SqlFailureKind } from "../services/Transactions.js"

/**
 * What a failed attempt at a consumed message means for the message:
 * - `unprocessable`: it can never succeed (bad data, refused by the domain): dead-letter it now;
 * - `transient`: the database is away, slow or contended: keep the message and retry without limit;
 * - `unknown`: anything else (a bug, an unexpected SQL error): retried AMQP_CONSUMER_MAX_ATTEMPTS
 *   times, then dead-lettered, so one bad message cannot stop its queue for good.
 */
export type FailureKind = "unprocessable" | "transient" | "unknown"

export interface ClassifiedFailure {
  readonly kind: FailureKind
  readonly reason: string
}

/** The database's own classification (services/Transactions.ts), read for a consumed message. */
const KIND_OF: Record<SqlFailureKind, FailureKind> = { "bad-data": "unprocessable", unavailable: "transient", bug: "unknown" }

/** Class 22 (data exception) is only ever caused by the data; unavailability passes by itself. */
export const sqlFailureKind = (error: SqlError): FailureKind => KIND_OF[classifySqlError(error)]

const firstLine = (text: string) => text.split("\n")[0]!.slice(0, 500)

/** `Tag: message (cause) [SQLSTATE]`: a SqlError's own message is generic, its cause says what happened. */
const describe = (error: { readonly _tag: string; readonly message: string; readonly cause?: unknown }) => {
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : ""
  const code = pgCode(error)
  return firstLine(`${error._tag}: ${error.message}${cause}${code === undefined ? "" : ` [${code}]`}`)
}

type Failure = { readonly _tag: string; readonly message: string; readonly reason?: string }

/** Classifies the cause of one failed attempt (typed failure or defect). */
export const classifyCause = (cause: Cause.Cause<Failure>): ClassifiedFailure => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error._tag === "Unprocessable") return { kind: "unprocessable", reason: error.reason ?? error.message }
    if (error instanceof SqlError) return { kind: sqlFailureKind(error), reason: describe(error) }
    // Any other typed failure is a rule of the domain saying no: retrying cannot change it.
    return { kind: "unprocessable", reason: describe(error) }
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect) && defect.value instanceof SqlError) {
    return { kind: sqlFailureKind(defect.value), reason: describe(defect.value) }
  }
  return { kind: "unknown", reason: `defect: ${firstLine(Cause.pretty(cause))}` }
}

/** Backoff before retry `attempt` (1-based): 200 ms doubling up to 5 s, ±20 % jitter (`random` in [0, 1)). */
export const retryDelay = (attempt: number, random: number): Duration.Duration => {
  const base = Math.min(5_000, 200 * 2 ** Math.min(attempt - 1, 20))
  return Duration.millis(Math.round(base * (0.8 + 0.4 * random)))
}
