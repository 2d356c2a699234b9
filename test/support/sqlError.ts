/**
 * SqlErrors shaped as @effect/sql-pg 4 builds them, for unit tests of the code that reads them.
 *
 * In Effect 4 a `SqlError` carries a classified `reason` (its `.cause`); the reason's own `.cause` is
 * the server's error with its SQLSTATE in `code`. The mapping below mirrors the driver's (not
 * exported) `classifySqlState` in node_modules/@effect/sql-pg/dist/internal/sqlError.js.
 */
import { SqlError } from "effect/sql"

type ReasonProps = { readonly cause: unknown; readonly message: string; readonly operation: string }

const reasonFor = (code: string, props: ReasonProps) => {
  if (code.startsWith("08")) return new SqlError.ConnectionError(props)
  if (code.startsWith("28")) return new SqlError.AuthenticationError(props)
  if (code === "42501") return new SqlError.AuthorizationError(props)
  if (code.startsWith("42")) return new SqlError.SqlSyntaxError(props)
  if (code === "23505") return new SqlError.UniqueViolation({ ...props, constraint: "" })
  if (code.startsWith("23")) return new SqlError.ConstraintError(props)
  if (code === "40P01") return new SqlError.DeadlockError(props)
  if (code === "40001") return new SqlError.SerializationError(props)
  if (code === "55P03") return new SqlError.LockTimeoutError(props)
  if (code === "57014") return new SqlError.StatementTimeoutError(props)
  return new SqlError.UnknownError(props)
}

/** A SqlError for a server error with SQLSTATE `code` (was `new SqlError({ cause: { code, message } })` in Effect 3). */
export const pgError = (code: string, message = "boom"): SqlError.SqlError =>
  new SqlError.SqlError({
    reason: reasonFor(code, {
      cause: Object.assign(new Error(message), { code }),
      message: "PgConnection: Query failed",
      operation: "query"
    })
  })

/** A SqlError for a driver or socket failure without SQLSTATE (was `new SqlError({ cause: new Error(message) })`). */
export const connectionError = (message: string): SqlError.SqlError =>
  new SqlError.SqlError({
    reason: new SqlError.ConnectionError({ cause: new Error(message), message: "PgConnection: Failed to connect", operation: "connect" })
  })
