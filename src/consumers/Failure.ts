import { Cause, Duration, Option, Result } from "effect"
import { SqlError } from "effect/sql"
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
export const sqlFailureKind = (error: SqlError.SqlError): FailureKind => KIND_OF[classifySqlError(error)]

const firstLine = (text: string) => text.split("\n")[0]!.slice(0, 500)

/**
 * `Tag: message (cause) [SQLSTATE]`: a SqlError's own message is generic (its reason's, e.g.
 * "PgConnection: Query failed"); the driver's error behind the reason (`reason.cause`, one level
 * deeper than in Effect 3) says what happened.
 */
const describe = (error: { readonly _tag: string; readonly message: string; readonly cause?: unknown }) => {
  const driverError = SqlError.isSqlError(error) ? error.reason.cause : error.cause
  const cause = driverError instanceof Error ? ` (${driverError.message})` : ""
  const code = pgCode(error)
  return firstLine(`${error._tag}: ${error.message}${cause}${code === undefined ? "" : ` [${code}]`}`)
}

/** `reason` is Unprocessable's text; a SqlError's `reason` (Effect 4) is its classified cause, not a string. */
type Failure = { readonly _tag: string; readonly message: string; readonly reason?: unknown }

/** Classifies the cause of one failed attempt (typed failure or defect). */
export const classifyCause = (cause: Cause.Cause<Failure>): ClassifiedFailure => {
  const failure = Cause.findErrorOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error._tag === "Unprocessable") return { kind: "unprocessable", reason: typeof error.reason === "string" ? error.reason : error.message }
    if (SqlError.isSqlError(error)) return { kind: sqlFailureKind(error), reason: describe(error) }
    // Any other typed failure is a rule of the domain saying no: retrying cannot change it.
    return { kind: "unprocessable", reason: describe(error) }
  }
  const defect = Cause.findDefect(cause)
  if (Result.isSuccess(defect) && SqlError.isSqlError(defect.success)) {
    return { kind: sqlFailureKind(defect.success), reason: describe(defect.success) }
  }
  return { kind: "unknown", reason: `defect: ${firstLine(Cause.pretty(cause))}` }
}

/** Backoff before retry `attempt` (1-based): 200 ms doubling up to 5 s, ±20 % jitter (`random` in [0, 1)). */
export const retryDelay = (attempt: number, random: number): Duration.Duration => {
  const base = Math.min(5_000, 200 * 2 ** Math.min(attempt - 1, 20))
  return Duration.millis(Math.round(base * (0.8 + 0.4 * random)))
}
