import { Cause, Context, Effect, Layer, Option, Result, Schema, SchemaIssue } from "effect"
import { HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiError, HttpApiMiddleware } from "effect/http-api"
import { SqlError } from "effect/sql"
import type { unhandled } from "effect/Types"
import { isProblem, problemType, type ProblemInfo } from "../domain/Errors.js"
import { CurrentRequest } from "../services/RequestContext.js"
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
  { httpApiStatus: 503, description: "unavailable: Service unavailable, retry later" }
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
  { httpApiStatus: 400, description: "validation-failed: a value the database cannot store" }
) {
  readonly problem = problems.validationFailed
  override get message() {
    return this.detail
  }
}

const RETRY_AFTER = { "retry-after": "2" }

const driverMessage = (error: SqlError.SqlError): unknown =>
  (error.reason.cause as { message?: unknown } | undefined)?.message ?? error.reason.message

/**
 * The one mapping of SQL errors to what a client sees: an unreachable, overloaded or shutting-down
 * database is a 503 to retry; a data exception only bad input can cause is a 400; anything else is
 * a bug (a defect, answered 500 and logged). One log line says which, with the SQLSTATE.
 */
const sqlFailure = (error: SqlError.SqlError): Effect.Effect<never, Unavailable | InvalidData> => {
  const code = pgCode(error) ?? null
  switch (classifySqlError(error)) {
    case "unavailable":
      return Effect.andThen(
        Effect.logWarning("database unavailable", String(driverMessage(error) ?? error.message)).pipe(Effect.annotateLogs({ sqlState: code })),
        Effect.fail(new Unavailable({ detail: "The database is unavailable; retry later" }))
      )
    case "bad-data":
      return Effect.andThen(
        // The database's own message is the driver error's, behind the classified reason.
        Effect.logWarning("request refused by the database as invalid data", String(driverMessage(error) ?? error.message)).pipe(
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
  effect: Effect.Effect<A, E | SqlError.SqlError, R>
): Effect.Effect<A, Exclude<E, SqlError.SqlError> | Unavailable | InvalidData, R> =>
  Effect.catchIf(effect, (e): e is SqlError.SqlError => SqlError.isSqlError(e), sqlFailure) as Effect.Effect<
    A,
    Exclude<E, SqlError.SqlError> | Unavailable | InvalidData,
    R
  >

export { problemType }

/** An RFC 9457 problem+json response. */
export const problemResponse = (
  info: ProblemInfo,
  detail: string,
  correlationId: string | null,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {}
) =>
  HttpServerResponse.jsonUnsafe(
    { type: problemType(info.code), title: info.title, status: info.status, detail, code: info.code, correlationId, ...extra },
    { status: info.status, contentType: PROBLEM_CONTENT_TYPE, headers }
  )

/** A segment of a schema issue path: a key, or `{ key }` (Standard Schema). */
type PathSegment = PropertyKey | { readonly key: PropertyKey }

/** JSON Pointer of a schema issue path, e.g. `/lines/0/quantity`. */
const pointer = (path: ReadonlyArray<PathSegment>) =>
  "/" + path.map((p) => String(typeof p === "object" ? p.key : p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/")

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/** The HttpApi's own message for a body that is not JSON at all (HttpApiBuilder decodePayload). */
const NOT_JSON = "Expected a valid JSON body"

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

/** The request decoding failures (params, query, headers, payload); response encoding ones are bugs. */
const isRequestSchemaError = (u: unknown): u is HttpApiError.HttpApiSchemaError =>
  HttpApiError.HttpApiSchemaError.is(u) && u.kind !== "Body" && u.kind !== "ResponseHeaders"

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
    const defect = Result.getSuccess(Cause.findDefect(cause))
    // Backstop: a SqlError that escaped `databaseFailures` (a failure outside a handler, or one that
    // became a defect) is still mapped by what it means, so bad data or an outage never becomes a 500.
    const sqlError = Option.orElse(
      Option.filter(Cause.findErrorOption(cause), SqlError.isSqlError),
      () => Option.filter(defect, SqlError.isSqlError)
    )
    const failure: Option.Option<unknown> =
      Option.isSome(sqlError) && classifySqlError(sqlError.value) !== "bug"
        ? Option.some(yield* Effect.flip(sqlFailure(sqlError.value)))
        : Cause.findErrorOption(cause)
    // The HttpApi reads bodies with `orDie`: an unreadable or oversized body arrives as an
    // HttpServerError (RequestParseError) defect.
    const unreadableBody = Option.filter(
      Option.orElse(defect, () => failure),
      (d): d is HttpServerError.HttpServerError => HttpServerError.isHttpServerError(d) && d.reason._tag === "RequestParseError"
    )
    if (Option.isSome(unreadableBody)) {
      const reason = unreadableBody.value.reason as HttpServerError.RequestParseError
      return reason.reason === "BodyTooLarge" || /max|size|limit|too large/i.test(String(reason.cause ?? ""))
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
      if (isRequestSchemaError(error)) {
        const issues = formatIssues(error.cause.issue).issues
        if (error.kind === "Payload" && issues.length === 1 && (issues[0]!.path ?? []).length === 0 && issues[0]!.message === NOT_JSON) {
          return problemResponse(problems.validationFailed, "The request body is not valid JSON", correlationId, {
            errors: [{ path: "/", message: "malformed JSON" }]
          })
        }
        // Every check of a field runs (`errors: "all"`): two checks may refuse a value with the same words.
        const errors = issues.map((issue) => ({ path: pointer(issue.path ?? []), message: issue.message }))
        return problemResponse(problems.validationFailed, "The request does not match the API contract", correlationId, {
          errors: errors.filter((e, i) => errors.findIndex((o) => o.path === e.path && o.message === e.message) === i)
        })
      }
      if (HttpServerError.isHttpServerError(error) && error.reason._tag === "RouteNotFound") {
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

/**
 * The HttpApi answers a body whose content type no endpoint decodes with a plain-text 415 of its
 * own (before any handler runs); it gets our problem body like every other refusal.
 */
const problemFor415 = (response: HttpServerResponse.HttpServerResponse, correlationId: string | null) =>
  response.status === 415 && !String(response.headers["content-type"] ?? "").startsWith(PROBLEM_CONTENT_TYPE)
    ? problemResponse(problems.unsupportedMediaType, "Send the request body as application/json", correlationId)
    : response

/**
 * The whole of an endpoint (its decoding, its middleware, its handler) with every failure answered
 * as problem+json: what `Problems` does, exported so the server can wrap more around it (the
 * request deadline).
 */
export const renderProblems = <R>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.withFiber((fiber) => {
    const { correlationId } = Context.getUnsafe(fiber.context, CurrentRequest)
    return Effect.matchCauseEffect(effect, {
      onSuccess: (response) => Effect.succeed(problemFor415(response, correlationId)),
      onFailure: (cause) => causeToProblem(cause, correlationId)
    })
  })

/**
 * The one place every failure of the API becomes problem+json: an API-wide middleware added last
 * (so outermost, http/Api.ts). It wraps the whole endpoint, including the decoding of params, query,
 * headers and payload, so it sees the handlers' typed errors, the security middleware's refusals and
 * `HttpApiSchemaError` as failures before the HttpApi would encode them itself. It declares the
 * problems the HTTP layer adds to every endpoint (503 `unavailable`, 400 for data the database
 * refuses) for the OpenAPI document and the handlers' types.
 */
export class Problems extends HttpApiMiddleware.Service<Problems>()("inventory/Problems", {
  error: [Unavailable, InvalidData]
}) {}

/** `Problems` as is; http/Server.ts may build its own around `renderProblems` (the deadline). */
export const ProblemsLive: Layer.Layer<Problems> = Layer.succeed(Problems)((httpEffect) => renderProblems(httpEffect))

/**
 * Requests that never reach an endpoint (no route: 405 with `Allow` for a known path, 404 otherwise)
 * and failures of routes outside the HttpApi, as problem+json: a global router middleware.
 */
export const unroutedProblems = (allowedMethods: (path: string) => ReadonlyArray<string>) =>
  HttpRouter.middleware(
    (httpEffect) =>
      // A middleware that handles every error does not type-check as such (docs trap 5): it
      // handles them all, so nothing is left for the router's own error answer.
      Effect.catchCause(httpEffect, (cause) =>
        Effect.flatMap(Effect.service(CurrentRequest), ({ correlationId }) => causeToProblem(cause, correlationId, allowedMethods))
      ) as Effect.Effect<HttpServerResponse.HttpServerResponse, unhandled, HttpServerRequest.HttpServerRequest>,
    { global: true }
  )
