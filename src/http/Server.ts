import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Context, Effect, Exit, Fiber, Layer, Option } from "effect"
import { HttpEffect, HttpMiddleware, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiSwagger } from "effect/http-api"
import { randomUUID } from "node:crypto"
import { createServer, type Server } from "node:http"
import { wellFormedCorrelationId } from "../domain/Ids.js"
import { AppConfig, type AppConfigShape } from "../layers/Config.js"
import { Lifecycle } from "../layers/Lifecycle.js"
import { InFlightDrain } from "../layers/Shutdown.js"
import { CurrentRequest } from "../services/RequestContext.js"
import { InventoryApi } from "./Api.js"
import { AuthenticationLive } from "./Auth.js"
import { HealthHttpLive } from "./HealthHttp.js"
import { CurrentRequestFacts, recordRequest, type RequestFacts, routeOf, UNTRACED_PATHS } from "./HttpMetrics.js"
import { logListening, MetricsRouteLive, MetricsServerLive } from "./MetricsHttp.js"
import { Problems, problemResponse, problems, renderProblems, unroutedProblems } from "./Problem.js"
import { ReservationsHttpLive } from "./ReservationsHttp.js"
import { allowedMethods, routesOf } from "./Routes.js"
import { AdjustmentsHttpLive } from "./AdjustmentsHttp.js"
import { LocationsHttpLive } from "./LocationsHttp.js"
import { StockLevelsHttpLive } from "./StockLevelsHttp.js"

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"])

/** The caller's correlation id when it is well-formed, else a new one. */
const correlationIdOf = (request: HttpServerRequest.HttpServerRequest) => {
  return wellFormedCorrelationId(request.headers["x-correlation-id"]) ?? randomUUID()
}

/**
 * Bounds on the request line, checked before routing. The longest legitimate URL is a batch read of
 * 100 ids of 128 characters (about 14 KB); paths hold at most one id.
 */
export const MAX_PATH_LENGTH = 1024
export const MAX_QUERY_LENGTH = 15_000
export const MAX_QUERY_PARAMETERS = 200

/** `%` followed by two hex digits, decoding to UTF-8: the router cannot match anything else (it would be a 404). */
const validPercentEncoding = (path: string) => {
  try {
    decodeURIComponent(path)
    return true
  } catch {
    return false
  }
}

const rejectUrl = (request: HttpServerRequest.HttpServerRequest, correlationId: string) => {
  const at = request.url.indexOf("?")
  const path = at < 0 ? request.url : request.url.slice(0, at)
  const query = at < 0 ? "" : request.url.slice(at + 1)
  if (path.length > MAX_PATH_LENGTH || query.length > MAX_QUERY_LENGTH) {
    return Option.some(
      problemResponse(problems.uriTooLong, `Paths are limited to ${MAX_PATH_LENGTH} and queries to ${MAX_QUERY_LENGTH} characters`, correlationId)
    )
  }
  if (!validPercentEncoding(path)) {
    return Option.some(
      problemResponse(problems.validationFailed, "The path holds an invalid percent-encoding", correlationId, {
        errors: [{ path: "/", message: "invalid percent-encoding in the path" }]
      })
    )
  }
  if (query.split("&").length > MAX_QUERY_PARAMETERS) {
    return Option.some(
      problemResponse(problems.validationFailed, `At most ${MAX_QUERY_PARAMETERS} query parameters are accepted`, correlationId, {
        errors: [{ path: "/", message: "too many query parameters" }]
      })
    )
  }
  return Option.none()
}

/** Body checks that need no parsing: declared size (413) and media type (415). */
const rejectBody = (request: HttpServerRequest.HttpServerRequest, limit: number, correlationId: string) => {
  if (!BODY_METHODS.has(request.method)) return Option.none()
  const length = Number(request.headers["content-length"] ?? "0")
  if (length > limit) {
    return Option.some(problemResponse(problems.payloadTooLarge, `The request body exceeds ${limit} bytes`, correlationId))
  }
  const hasBody = length > 0 || request.headers["transfer-encoding"] !== undefined
  const contentType = (request.headers["content-type"] ?? "").toLowerCase()
  if (hasBody && !/^application\/([a-z.+-]*\+)?json\s*(;|$)/.test(contentType)) {
    return Option.some(problemResponse(problems.unsupportedMediaType, "Send the request body as application/json", correlationId))
  }
  return Option.none()
}

/**
 * REQUEST_TIMEOUT_MS: at the deadline the client gets 503, but the work is NOT interrupted. It runs
 * on to its end on its own fiber. With Effect 3's driver, interrupting a fiber inside a SQL query
 * cancelled "the query on that connection", which could by then be another request's
 * (EFFECT-NOTES.md); the Effect 4 driver confirms its cancels, but the design stays: a started
 * change is never cut midway by a client-facing deadline. The database bounds the work instead
 * (statement_timeout, idle_in_transaction_session_timeout). A change may therefore still commit
 * after the 503: clients retry with their Idempotency-Key.
 */
const withDeadline = <R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>, timeoutMs: number, correlationId: string) =>
  Effect.gen(function* () {
    // Whichever comes first: the handler's answer or the deadline. The request fiber waits on a plain
    // timer and the work fiber's exit observer (no second fiber per request), so shutdown still waits
    // for it, at most until the deadline.
    const work = yield* Effect.forkDetach(app)
    const first = yield* Effect.callback<"answered" | "late">((resume) => {
      const timer = setTimeout(() => resume(Effect.succeed("late")), timeoutMs)
      const removeObserver = work.addObserver(() => {
        clearTimeout(timer)
        resume(Effect.succeed("answered"))
      })
      return Effect.sync(() => {
        clearTimeout(timer)
        removeObserver()
      })
    })
    if (first === "answered") {
      // Already done: returns its response (the caller reaches the access log through RequestFacts).
      return yield* Fiber.join(work)
    }
    yield* Effect.forkDetach(
      Effect.flatMap(Fiber.await(work), (exit) =>
        Effect.logWarning("request finished after its deadline").pipe(
          Effect.annotateLogs({ status: Exit.isSuccess(exit) ? exit.value.status : "failed", correlationId })
        )
      )
    )
    return problemResponse(
      problems.unavailable,
      `The request did not complete within ${timeoutMs} ms; it may still take effect, so retry with the same Idempotency-Key`,
      correlationId,
      {},
      { "retry-after": "2" }
    )
  })

/** A path as logged: a JWT a client pasted into it is masked, and it is cut at 200 characters. */
const loggedPath = (path: string) => {
  const masked = path.replace(/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*/g, "[jwt]")
  return masked.length > 200 ? masked.slice(0, 200) + "…" : masked
}

/** Headers for a JSON API: nothing to sniff, frame, cache or refer; Swagger UI (/docs) may run its inline code. */
const securityHeaders = (path: string) => ({
  "x-content-type-options": "nosniff",
  "cache-control": "no-store",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  "content-security-policy":
    path === "/docs"
      ? "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; frame-ancestors 'none'"
      : "default-src 'none'; frame-ancestors 'none'"
})

/** Served beside the HttpApi's own endpoints (see HttpLive), by exact path. */
const EXTRA_ROUTES = [{ method: "GET", path: "/openapi.json" }, { method: "GET", path: "/docs" }]

/**
 * Outermost middleware: correlation id (honoured or generated, echoed on every response, on every
 * log line, stored with history and events), URL and body limits, security headers, and per
 * request one access log line (with the caller once authenticated) and the HTTP metrics, both by
 * route template. No bodies, no headers are logged. It is the server's middleware
 * (`HttpRouter.serve({ middleware })`): it wraps the writing of the response too, so the duration
 * includes it and the response it sees is the one sent.
 */
const requestMiddleware =
  (config: AppConfigShape, lifecycle: Lifecycle["Service"]) =>
  <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const correlationId = correlationIdOf(request)
      const path = request.url.split("?")[0] ?? "/"
      const started = process.hrtime.bigint()
      const headers = { ...securityHeaders(path), "x-correlation-id": correlationId }
      // Filled in from inside the request: the route the HttpApi matched, the authenticated caller.
      const facts: RequestFacts = { route: undefined, actor: null }
      // A bulk adjustment's 1,000 items need more room than any other body (API.md).
      const bodyLimit = path === "/v1/adjustments" ? config.bulkBodyLimitBytes : config.bodyLimitBytes
      const rejected = Option.orElse(rejectUrl(request, correlationId), () => rejectBody(request, bodyLimit, correlationId))
      const response = yield* Option.match(rejected, {
        onSome: (response) => Effect.succeed(HttpServerResponse.setHeaders(response, headers)),
        // The app's responses are written inside `app`: its headers go on via a pre-response
        // handler. While the process drains, `Connection: close` makes keep-alive clients stop
        // reusing this socket.
        onNone: () =>
          Effect.andThen(
            HttpEffect.appendPreResponseHandler((_, response) =>
              Effect.map(lifecycle.isDraining, (draining) =>
                HttpServerResponse.setHeaders(response, { ...headers, ...(draining ? { connection: "close" } : {}) })
              )
            ),
            app
          )
      }).pipe(
        Effect.provideService(HttpServerRequest.MaxBodySize, ByteSize.bytes(bodyLimit)),
        Effect.provideService(CurrentRequestFacts, facts),
        Effect.provideService(CurrentRequest, { correlationId, actor: null }),
        Effect.annotateLogs("correlationId", correlationId)
      )
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      const route =
        facts.route ??
        (EXTRA_ROUTES.some((r) => r.path === path) && (request.method === "GET" || request.method === "HEAD") && response.status !== 404
          ? path
          : routeOf(yield* Effect.option(Effect.currentSpan), path))
      yield* recordRequest({ route, method: request.method, status: response.status, seconds })
      yield* Effect.logInfo("http request").pipe(
        Effect.annotateLogs({
          correlationId,
          actor: facts.actor,
          method: request.method,
          route,
          path: loggedPath(path),
          status: response.status,
          durationMs: Math.round(seconds * 1e6) / 1e3
        })
      )
      return response
    })

/**
 * `Problems` (http/Problem.ts) as this server runs it: every failure becomes problem+json before the
 * HttpApi's own encoder sees it, and the whole of it is bounded by REQUEST_TIMEOUT_MS (the deadline
 * sits here, inside the server's response writing, so exactly one response is written: the
 * handler's or the 503). It also tells the access log the matched route template.
 */
const ProblemsWithDeadlineLive = Layer.effect(
  Problems,
  Effect.map(Effect.service(AppConfig), (config) =>
    Problems.of((httpEffect) =>
      Effect.gen(function* () {
        const { route } = yield* HttpRouter.RouteContext
        const facts = yield* CurrentRequestFacts
        if (facts !== undefined) facts.route = route.path
        const { correlationId } = yield* CurrentRequest
        return yield* withDeadline(renderProblems(httpEffect), config.requestTimeoutMs, correlationId ?? "unknown")
      })
    )
  )
)

/** Every group behind `.middleware(Authentication)` gets its implementation from AuthenticationLive. */
export const ApiLive = HttpApiBuilder.layer(InventoryApi, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide([StockLevelsHttpLive, ReservationsHttpLive, LocationsHttpLive, AdjustmentsHttpLive, HealthHttpLive]),
  Layer.provide([AuthenticationLive, ProblemsWithDeadlineLive])
)

/**
 * The Node server itself, so that shutdown can stop accepting and wait for in-flight requests
 * while their handler is still installed (the platform's own finalizer removes it).
 */
export class NodeServer extends Context.Service<NodeServer, Server>()("inventory/NodeServer") {}

const NodeServerLive = Layer.sync(NodeServer, () => createServer())

/** Shutdown's drain step: stop accepting, close idle keep-alive sockets, wait for in-flight requests. */
const InFlightDrainLive = Layer.effect(
  InFlightDrain,
  Effect.map(Effect.service(NodeServer), (server) => ({
    drain: Effect.callback<void>((resume) => {
      if (!server.listening) return resume(Effect.void)
      server.close(() => resume(Effect.void))
      server.closeIdleConnections()
    })
  }))
)

/**
 * The HTTP server on PORT serving the API, `/openapi.json`, `/docs` and `/metrics` (the latter on its
 * own server when METRICS_PORT is set). Probes and scrapes are not traced.
 */
export const HttpLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const lifecycle = yield* Lifecycle
    const server = yield* NodeServer
    const metricsRoute = Option.isNone(config.metricsPort) ? [{ method: "GET", path: "/metrics" }] : []
    const allowed = allowedMethods([...routesOf(InventoryApi), ...EXTRA_ROUTES, ...metricsRoute])
    const app = Layer.mergeAll(
      ApiLive,
      HttpApiSwagger.layer(InventoryApi, { path: "/docs" }),
      Option.isNone(config.metricsPort) ? MetricsRouteLive : Layer.empty,
      // No route (404, or 405 with Allow) and failures outside the HttpApi, as problem+json.
      unroutedProblems(allowed)
    )
    const serve = HttpRouter.serve(app, {
      // Our access log line replaces the platform's, our listening line (logListening) its own.
      disableLogger: true,
      disableListenLog: true,
      // find-my-way refuses path parameters over 100 characters as "no route"; ids may be 128 and
      // longer ones must reach validation to get a 400, not a 404.
      routerConfig: { maxParamLength: 1024 },
      middleware: requestMiddleware(config, lifecycle)
    })
    return Layer.effectDiscard(logListening).pipe(
      Layer.provideMerge(serve),
      Layer.provide(HttpMiddleware.layerTracerDisabledForUrls(UNTRACED_PATHS)),
      Layer.provideMerge(NodeHttpServer.layer(() => server, { port: config.port })),
      Layer.merge(Option.match(config.metricsPort, { onNone: () => Layer.empty, onSome: MetricsServerLive }))
    )
  })
).pipe(Layer.merge(InFlightDrainLive), Layer.provideMerge(NodeServerLive))
