import { SqlError } from "@effect/sql/SqlError"
import { Cause, Duration, Option } from "effect"
import { isDatabaseUnavailable, pgCode } from "../services/Transactions.js"

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

/**
 * SQLSTATEs that pass by themselves: lock and statement timeouts (55P03, 57014), an idle transaction
 * cut (25P03), contention left after the transaction's own retries (40001, 40P01), and the classes of
 * connection trouble (08), exhausted resources (53) and shutdown/failover (57P0x).
 */
const TRANSIENT_CODES = new Set(["55P03", "57014", "25P03", "25006", "40001", "40P01"])
const TRANSIENT_CLASSES = ["08", "53", "57P"]

/** Class 22 (data exception: a NUL byte, a value out of range…) is only ever caused by the data itself. */
export const classifySqlError = (error: SqlError): FailureKind => {
  const code = pgCode(error)
  if (code !== undefined) {
    if (code.startsWith("22")) return "unprocessable"
    if (TRANSIENT_CODES.has(code) || TRANSIENT_CLASSES.some((prefix) => code.startsWith(prefix))) return "transient"
  }
  // No SQLSTATE: the driver or the pool (connection refused or reset, acquire timeout).
  return isDatabaseUnavailable(error) ? "transient" : "unknown"
}

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
    if (error instanceof SqlError) return { kind: classifySqlError(error), reason: describe(error) }
    // Any other typed failure is a rule of the domain saying no: retrying cannot change it.
    return { kind: "unprocessable", reason: describe(error) }
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect) && defect.value instanceof SqlError) {
    return { kind: classifySqlError(defect.value), reason: describe(defect.value) }
  }
  return { kind: "unknown", reason: `defect: ${firstLine(Cause.pretty(cause))}` }
}

/** Backoff before retry `attempt` (1-based): 200 ms doubling up to 5 s, ±20 % jitter (`random` in [0, 1)). */
export const retryDelay = (attempt: number, random: number): Duration.Duration => {
  const base = Math.min(5_000, 200 * 2 ** Math.min(attempt - 1, 20))
  return Duration.millis(Math.round(base * (0.8 + 0.4 * random)))
}
