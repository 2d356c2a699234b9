import { HttpApiError, HttpApiSchema, HttpServerError, HttpServerResponse } from "@effect/platform"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Effect, Option, Schema } from "effect"
import { isProblem, type ProblemInfo } from "../domain/Errors.js"
import { classifySqlError, isDatabaseUnavailable, pgCode } from "../services/Transactions.js"

export { isDatabaseUnavailable }

export const PROBLEM_CONTENT_TYPE = "application/problem+json"

/** Problems the HTTP layer itself answers, beside the domain's typed errors. */
export const problems = {
  validationFailed: { status: 400, code: "validation-failed", title: "Validation failed" },
  unauthenticated: { status: 401, code: "unauthenticated", title: "Unauthenticated" },
  forbidden: { status: 403, code: "forbidden", title: "Forbidden" },
  notFound: { status: 404, code: "not-found", title: "Not found" },
  methodNotAllowed: { status: 405, code: "method-not-allowed", title: "Method not allowed" },
  payloadTooLarge: { status: 413, code: "payload-too-large", title: "Payload too large" },
  uriTooLong: { status: 414, code: "uri-too-long", title: "URI too long" },
  unsupportedMediaType: { status: 415, code: "unsupported-media-type", title: "Unsupported media type" },
  rateLimited: { status: 429, code: "rate-limited", title: "Too many requests" },
  unavailable: { status: 503, code: "unavailable", title: "Service unavailable" },
  internal: { status: 500, code: "internal", title: "Internal error" }
} as const satisfies Record<string, ProblemInfo>

/** 503: a dependency (the database) is not answering; the client should retry after `Retry-After`. */
export class Unavailable extends Schema.TaggedError<Unavailable>()(
  "Unavailable",
  { detail: Schema.String },
  HttpApiSchema.annotations({ status: 503, description: "unavailable: Service unavailable, retry later" })
) {
  readonly problem = problems.unavailable
  override get message() {
    return this.detail
  }
}

/** 400: a value that passed the schemas but that the database refuses as data (SQLSTATE class 22). */
export class InvalidData extends Schema.TaggedError<InvalidData>()(
  "InvalidData",
  { detail: Schema.String, errors: Schema.Array(Schema.Struct({ path: Schema.String, message: Schema.String })) },
  HttpApiSchema.annotations({ status: 400, description: "validation-failed: a value the database cannot store" })
) {
  readonly problem = problems.validationFailed
  override get message() {
    return this.detail
  }
}

const RETRY_AFTER = { "retry-after": "2" }

/**
 * The one mapping of SQL errors to what a client sees: an unreachable, overloaded or shutting-down
 * database is a 503 to retry; a data exception only bad input can cause is a 400; anything else is
 * a bug (a defect, answered 500 and logged). One log line says which, with the SQLSTATE.
 */
const sqlFailure = (error: SqlError): Effect.Effect<never, Unavailable | InvalidData> => {
  const code = pgCode(error) ?? null
  switch (classifySqlError(error)) {
    case "unavailable":
      return Effect.zipRight(
        Effect.logWarning("database unavailable", error.message).pipe(Effect.annotateLogs({ sqlState: code })),
        Effect.fail(new Unavailable({ detail: "The database is unavailable; retry later" }))
      )
    case "bad-data":
      return Effect.zipRight(
        Effect.logWarning("request refused by the database as invalid data", String((error.cause as { message?: unknown } | undefined)?.message ?? error.message)).pipe(
          Effect.annotateLogs({ sqlState: code })
        ),
        Effect.fail(
          new InvalidData({
            detail: "The request holds a value the service cannot store",
            errors: [{ path: "/", message: "a value the database cannot store" }]
          })
        )
      )
    case "bug":
      return Effect.die(error)
  }
}

/** Handlers' SQL failures, through `sqlFailure`. */
export const databaseFailures = <A, E, R>(
  effect: Effect.Effect<A, E | SqlError, R>
): Effect.Effect<A, Exclude<E, SqlError> | Unavailable | InvalidData, R> =>
  Effect.catchIf(effect, (e): e is SqlError => e instanceof SqlError, sqlFailure) as Effect.Effect<
    A,
    Exclude<E, SqlError> | Unavailable | InvalidData,
    R
  >

export const problemType = (code: string) => `urn:inventory:problem:${code}`

/** An RFC 9457 problem+json response. */
export const problemResponse = (
  info: ProblemInfo,
  detail: string,
  correlationId: string | null,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {}
) =>
  HttpServerResponse.unsafeJson(
    { type: problemType(info.code), title: info.title, status: info.status, detail, code: info.code, correlationId, ...extra },
    { status: info.status, contentType: PROBLEM_CONTENT_TYPE, headers }
  )

/** JSON Pointer of a schema issue path, e.g. `/lines/0/quantity`. */
const pointer = (path: ReadonlyArray<PropertyKey>) => "/" + path.map((p) => String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/")

const domainExtras = (error: object): Record<string, unknown> => {
  const { _tag, problem, ...extra } = error as Record<string, unknown>
  void _tag
  void problem
  return extra
}

/** Headers an error asks for (`WWW-Authenticate`, `Retry-After`), via its `problemHeaders` getter. */
const problemHeaders = (error: object): Record<string, string> => {
  const headers = (error as { readonly problemHeaders?: unknown }).problemHeaders
  return typeof headers === "object" && headers !== null ? (headers as Record<string, string>) : {}
}

/**
 * Every failure of a request as problem+json: typed domain errors with their own status and code,
 * decoding failures as 400 with `errors[]`, an unreachable database as 503, anything else as 500
 * with the cause logged and only the correlation id shown to the client.
 */
export const causeToProblem = (
  cause: Cause.Cause<unknown>,
  correlationId: string | null,
  /** The methods a path is served with (http/Routes.ts): an unrouted request to a known path is a 405. */
  allowedMethods: (path: string) => ReadonlyArray<string> = () => []
) =>
  Effect.gen(function* () {
    // Backstop: a SqlError that escaped `databaseFailures` (a failed COMMIT is a defect) is still
    // mapped by what it means, so bad data or an outage never becomes a 500.
    const sqlError = Option.orElse(
      Option.filter(Cause.failureOption(cause), (e) => e instanceof SqlError),
      () => Option.filter(Cause.dieOption(cause), (d) => d instanceof SqlError)
    ) as Option.Option<SqlError>
    const failure: Option.Option<unknown> =
      Option.isSome(sqlError) && classifySqlError(sqlError.value) !== "bug"
        ? Option.some(yield* Effect.flip(sqlFailure(sqlError.value)))
        : Cause.failureOption(cause)
    // The HttpApi reads bodies with `orDie`: an unreadable body arrives as a RequestError defect.
    const unreadableBody = Cause.dieOption(cause).pipe(Option.filter((d) => d instanceof HttpServerError.RequestError))
    if (Option.isSome(unreadableBody)) {
      const reason = String((unreadableBody.value as HttpServerError.RequestError).cause ?? "")
      return /max|size|limit|too large/i.test(reason)
        ? problemResponse(problems.payloadTooLarge, "The request body is larger than allowed", correlationId)
        : problemResponse(problems.validationFailed, "The request body is not valid JSON", correlationId, {
            errors: [{ path: "/", message: "malformed JSON" }]
          })
    }
    if (Option.isSome(failure)) {
      const error = failure.value
      if (error instanceof Unavailable) {
        return problemResponse(problems.unavailable, error.detail, correlationId, {}, RETRY_AFTER)
      }
      if (isProblem(error)) return problemResponse(error.problem, error.message, correlationId, domainExtras(error), problemHeaders(error))
      if (error instanceof HttpApiError.HttpApiDecodeError) {
        return problemResponse(problems.validationFailed, "The request does not match the API contract", correlationId, {
          errors: error.issues.map((issue) => ({ path: pointer(issue.path), message: issue.message }))
        })
      }
      if (error instanceof HttpServerError.RouteNotFound) {
        const { method, url } = error.request
        const allowed = allowedMethods(url.split("?")[0] ?? "/")
        return allowed.length > 0
          ? problemResponse(problems.methodNotAllowed, `${method} is not served here; use ${allowed.join(", ")}`, correlationId, {}, { allow: allowed.join(", ") })
          : problemResponse(problems.notFound, `No route for ${method} ${url}`, correlationId)
      }
    }
    yield* Effect.logError("request failed with an unexpected error", cause)
    return problemResponse(problems.internal, "An unexpected error occurred; quote the correlationId", correlationId)
  })
