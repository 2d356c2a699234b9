import { HttpApiError, HttpApiSchema, HttpServerError, HttpServerResponse } from "@effect/platform"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Effect, Option, Schema } from "effect"
import { isProblem, type ProblemInfo } from "../domain/Errors.js"
import { isDatabaseUnavailable } from "../services/Transactions.js"

export { isDatabaseUnavailable }

export const PROBLEM_CONTENT_TYPE = "application/problem+json"

/** Problems the HTTP layer itself answers, beside the domain's typed errors. */
export const problems = {
  validationFailed: { status: 400, code: "validation-failed", title: "Validation failed" },
  notFound: { status: 404, code: "not-found", title: "Not found" },
  payloadTooLarge: { status: 413, code: "payload-too-large", title: "Payload too large" },
  unsupportedMediaType: { status: 415, code: "unsupported-media-type", title: "Unsupported media type" },
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

/**
 * Handlers' SQL failures: an unreachable or overloaded database is a 503 the client may retry;
 * any other SQL error is a bug (a defect, answered 500 and logged).
 */
export const databaseFailures = <A, E, R>(effect: Effect.Effect<A, E | SqlError, R>): Effect.Effect<A, Exclude<E, SqlError> | Unavailable, R> =>
  Effect.catchIf(
    effect,
    (e): e is SqlError => e instanceof SqlError,
    (error) =>
      isDatabaseUnavailable(error)
        ? Effect.zipRight(Effect.logWarning("database unavailable", error.message), Effect.fail(new Unavailable({ detail: "The database is unavailable; retry later" })))
        : Effect.die(error)
  ) as Effect.Effect<A, Exclude<E, SqlError> | Unavailable, R>

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

/**
 * Every failure of a request as problem+json: typed domain errors with their own status and code,
 * decoding failures as 400 with `errors[]`, an unreachable database as 503, anything else as 500
 * with the cause logged and only the correlation id shown to the client.
 */
export const causeToProblem = (cause: Cause.Cause<unknown>, correlationId: string | null) =>
  Effect.gen(function* () {
    const failure = Cause.failureOption(cause)
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
        return problemResponse(problems.unavailable, error.detail, correlationId, {}, { "retry-after": "2" })
      }
      if (isProblem(error)) return problemResponse(error.problem, error.message, correlationId, domainExtras(error))
      if (error instanceof HttpApiError.HttpApiDecodeError) {
        return problemResponse(problems.validationFailed, "The request does not match the API contract", correlationId, {
          errors: error.issues.map((issue) => ({ path: pointer(issue.path), message: issue.message }))
        })
      }
      if (error instanceof HttpServerError.RouteNotFound) {
        return problemResponse(problems.notFound, `No route for ${error.request.method} ${error.request.url}`, correlationId)
      }
    }
    yield* Effect.logError("request failed with an unexpected error", cause)
    return problemResponse(problems.internal, "An unexpected error occurred; quote the correlationId", correlationId)
  })
