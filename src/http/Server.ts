import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Context, Effect, Exit, Fiber, Layer, Option, References, Tracer } from "effect"
import { HttpEffect, HttpMiddleware, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiSwagger } from "effect/http-api"
import { randomUUID } from "node:crypto"
import { createServer, type Server } from "node:http"
import { wellFormedCorrelationId } from "../domain/Ids.js"
import { AppConfig, type AppConfigShape } from "../layers/Config.js"
import { Lifecycle } from "../layers/Lifecycle.js"
import { AccessLog, type AccessFields } from "../layers/Logging.js"
import { InFlightDrain } from "../layers/Shutdown.js"
import { exportsTraces } from "../layers/Telemetry.js"
import { CurrentRequest } from "../services/RequestContext.js"
import { InventoryApi } from "./Api.js"
import { AuthenticationLive } from "./Auth.js"
import { HealthHttpLive } from "./HealthHttp.js"
import { makeRequestRecorder, type RequestFacts, requestFactsIn, routeOf, trackRequestFacts, UNTRACED_PATHS } from "./HttpMetrics.js"
import { logListening, MetricsRouteLive, MetricsServerLive } from "./MetricsHttp.js"
import { Problems, problemResponse, problems, renderProblems, unroutedProblems } from "./Problem.js"
import { ReservationsHttpLive } from "./ReservationsHttp.js"
import { setEachHeader } from "./ResponseHeaders.js"
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
  // Whichever comes first: the handler's answer or the deadline. The request fiber waits on a plain
  // timer and the work fiber's exit observer (no second fiber per request, no join: the observer
  // hands over the work's exit), so shutdown still waits for it, at most until the deadline.
  // The work starts at once on its fiber (no scheduler turn before it reaches its first query).
  Effect.flatMap(Effect.forkDetach(app, { startImmediately: true }), (work) =>
    Effect.callback<HttpServerResponse.HttpServerResponse>((resume) => {
      const timer = setTimeout(() => {
        removeObserver()
        resume(late(work, timeoutMs, correlationId))
      }, timeoutMs)
      const removeObserver = work.addObserver((exit) => {
        clearTimeout(timer)
        resume(exit)
      })
      return Effect.sync(() => {
        clearTimeout(timer)
        removeObserver()
      })
    })
  )

/** The deadline passed first: 503 now, and a warning once the work has finished on its own fiber. */
const late = (work: Fiber.Fiber<HttpServerResponse.HttpServerResponse>, timeoutMs: number, correlationId: string) =>
  Effect.as(
    Effect.forkDetach(
      Effect.flatMap(Fiber.await(work), (exit) =>
        Effect.logWarning("request finished after its deadline").pipe(
          Effect.annotateLogs({ status: Exit.isSuccess(exit) ? exit.value.status : "failed", correlationId })
        )
      )
    ),
    problemResponse(
      problems.unavailable,
      `The request did not complete within ${timeoutMs} ms; it may still take effect, so retry with the same Idempotency-Key`,
      correlationId,
      {},
      { "retry-after": "2" }
    )
  )

/** A path as logged: a JWT a client pasted into it is masked, and it is cut at 200 characters. */
const loggedPath = (path: string) => {
  const masked = path.includes("eyJ") ? path.replace(/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*/g, "[jwt]") : path
  return masked.length > 200 ? masked.slice(0, 200) + "…" : masked
}

/** Headers for a JSON API: nothing to sniff, frame, cache or refer; Swagger UI (/docs) may run its inline code. */
const securityHeaders = (path: string): Readonly<Record<string, string>> => ({
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

const API_HEADERS = securityHeaders("/")
const DOCS_HEADERS = securityHeaders("/docs")

/** Every response's headers: `headers`, the correlation id, and `Connection: close` while the process drains. */
const withHeaders = (response: HttpServerResponse.HttpServerResponse, headers: Readonly<Record<string, string>>, correlationId: string, draining: boolean) => {
  const out = HttpServerResponse.setHeader(setEachHeader(response, headers), "x-correlation-id", correlationId)
  return draining ? HttpServerResponse.setHeader(out, "connection", "close") : out
}

/** Served beside the HttpApi's own endpoints (see HttpLive), by exact path. */
const EXTRA_ROUTES = [{ method: "GET", path: "/openapi.json" }, { method: "GET", path: "/docs" }]

/** Methods that change nothing: with no trace exporter, their requests open no spans (see HttpLive). */
const READ_METHODS = new Set(["GET", "HEAD"])

/**
 * Outermost middleware: correlation id (honoured or generated, echoed on every response, on every
 * log line, stored with history and events), URL and body limits, security headers, and per
 * request one access log line (with the caller once authenticated) and the HTTP metrics, both by
 * route template. No bodies, no headers are logged. It is the server's middleware
 * (`HttpRouter.serve({ middleware })`): it wraps the writing of the response too, so the duration
 * includes it and the response it sees is the one sent.
 *
 * It is the per-request cost beyond the framework's, so it runs as one synchronous step before and
 * one after the app: no generator, the metrics' series bound once (HttpMetrics.makeRequestRecorder),
 * the access line serialised in one template and written straight to stdout (Logging.AccessLog;
 * through the Effect logger only where no such writer is provided, e.g. a test's capturing logger).
 */
const requestMiddleware = (
  config: AppConfigShape,
  lifecycle: Lifecycle["Service"],
  accessLog: ((fields: AccessFields) => void) | undefined,
  untracedReads: boolean
) => {
  const record = makeRequestRecorder()
  return <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      const started = performance.now()
      const correlationId = correlationIdOf(request)
      const at = request.url.indexOf("?")
      const path = at < 0 ? request.url : request.url.slice(0, at)
      const headers = path === "/docs" ? DOCS_HEADERS : API_HEADERS
      // Filled in from inside the request: the route the HttpApi matched, the authenticated caller.
      const facts: RequestFacts = { route: undefined, actor: null }
      trackRequestFacts(request, facts)
      // A bulk adjustment's 1,000 items need more room than any other body (API.md).
      const bodyLimit = path === "/v1/adjustments" ? config.bulkBodyLimitBytes : config.bodyLimitBytes
      const rejected = Option.orElse(rejectUrl(request, correlationId), () => rejectBody(request, bodyLimit, correlationId))
      let handled: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
      if (Option.isSome(rejected)) {
        handled = Effect.succeed(withHeaders(rejected.value, headers, correlationId, false))
      } else {
        // The app's responses are written inside `app`: its headers go on via a pre-response
        // handler. While the process drains, `Connection: close` makes keep-alive clients stop
        // reusing this socket.
        HttpEffect.appendPreResponseHandlerUnsafe(fiber.context, (_, response) =>
          Effect.map(lifecycle.isDraining, (draining) => withHeaders(response, headers, correlationId, draining))
        )
        handled = app
      }
      // Overlays on the request's context (Context.add), not a merge that copies every service.
      const withRequest = Effect.updateContext(handled as Effect.Effect<HttpServerResponse.HttpServerResponse, E>, (outer: Context.Context<never>) => {
        let context = Context.add(outer, CurrentRequest, { correlationId, actor: null })
        if (BODY_METHODS.has(request.method)) context = Context.add(context, HttpServerRequest.MaxBodySize, ByteSize.bytes(bodyLimit))
        // Nothing would see these spans (Effect's native tracer): a read opens none (see HttpLive).
        return untracedReads && READ_METHODS.has(request.method) ? Context.add(context, References.TracerEnabled, false) : context
      }) as Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
      return Effect.flatMap(withRequest, (response) => {
        const seconds = (performance.now() - started) / 1000
        const span = Context.getOption(fiber.context, Tracer.ParentSpan)
        const route =
          facts.route ??
          (EXTRA_ROUTES.some((r) => r.path === path) && (request.method === "GET" || request.method === "HEAD") && response.status !== 404
            ? path
            : routeOf(span, path))
        record({ route, method: request.method, status: response.status, seconds }, fiber.context)
        const fields: AccessFields = {
          correlationId,
          traceId: Option.isSome(span) ? span.value.traceId : null,
          spanId: Option.isSome(span) ? span.value.spanId : null,
          actor: facts.actor,
          method: request.method,
          route,
          path: loggedPath(path),
          status: response.status,
          durationMs: Math.round(seconds * 1e6) / 1e3
        }
        if (accessLog !== undefined) {
          accessLog(fields)
          return Effect.succeed(response)
        }
        const { traceId: _t, spanId: _s, ...annotations } = fields
        return Effect.as(Effect.logInfo("http request").pipe(Effect.annotateLogs(annotations)), response)
      })
    })
}

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
      Effect.withFiber((fiber) => {
        const { route } = Context.getUnsafe(fiber.context, HttpRouter.RouteContext)
        const facts = requestFactsIn(fiber.context)
        if (facts !== undefined) facts.route = route.path
        const { correlationId } = Context.getUnsafe(fiber.context, CurrentRequest)
        return withDeadline(renderProblems(httpEffect), config.requestTimeoutMs, correlationId ?? "unknown")
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
    const untracedReads = !exportsTraces(config)
    const serve = HttpRouter.serve(app, {
      // Our access log line replaces the platform's, our listening line (logListening) its own.
      disableLogger: true,
      disableListenLog: true,
      // find-my-way refuses path parameters over 100 characters as "no route"; ids may be 128 and
      // longer ones must reach validation to get a 400, not a 404.
      routerConfig: { maxParamLength: 1024 },
      middleware: requestMiddleware(config, lifecycle, yield* AccessLog, untracedReads)
    })
    return Layer.effectDiscard(logListening).pipe(
      Layer.provideMerge(serve),
      // Probes and scrapes are never traced; with no trace exporter neither are reads (GET, HEAD):
      // Effect's native tracer keeps spans nobody can see, at a cost per request.
      Layer.provide(
        Layer.succeed(HttpMiddleware.TracerDisabledWhen, (request) =>
          UNTRACED_PATHS.includes(request.url) || (untracedReads && READ_METHODS.has(request.method))
        )
      ),
      Layer.provideMerge(NodeHttpServer.layer(() => server, { port: config.port })),
      Layer.merge(Option.match(config.metricsPort, { onNone: () => Layer.empty, onSome: MetricsServerLive }))
    )
  })
).pipe(Layer.merge(InFlightDrainLive), Layer.provideMerge(NodeServerLive))
