import { HttpApiBuilder, HttpApiSwagger, HttpApp, HttpMiddleware, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, FiberRef, Layer, Option } from "effect"
import { randomUUID } from "node:crypto"
import { createServer, type Server } from "node:http"
import { AppConfig } from "../layers/Config.js"
import { Lifecycle } from "../layers/Lifecycle.js"
import { CurrentRequest } from "../services/RequestContext.js"
import { InventoryApi } from "./Api.js"
import { HealthHttpLive } from "./HealthHttp.js"
import { causeToProblem, problemResponse, problems } from "./Problem.js"
import { ReservationsHttpLive } from "./ReservationsHttp.js"
import { StockLevelsHttpLive } from "./StockLevelsHttp.js"

const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/
const BODY_METHODS = new Set(["POST", "PUT", "PATCH"])

/** The caller's correlation id when it is well-formed, else a new one. */
const correlationIdOf = (request: HttpServerRequest.HttpServerRequest) => {
  const given = request.headers["x-correlation-id"]
  return given !== undefined && CORRELATION_ID.test(given) ? given : randomUUID()
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
 * Outermost middleware: correlation id (honoured or generated, echoed on every response, on every
 * log line, stored with history and events), body limits, and one access log line per request.
 */
const requestMiddleware = (bodyLimitBytes: number, lifecycle: Lifecycle) =>
  HttpMiddleware.make((app) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const correlationId = correlationIdOf(request)
      const started = Date.now()
      // The app's responses are written before this middleware sees them: its headers go on via a
      // pre-response handler; responses made here (413, 415) get the header directly. While the
      // process drains, `Connection: close` makes keep-alive clients stop reusing this socket.
      yield* HttpApp.appendPreResponseHandler((_, response) =>
        Effect.map(lifecycle.isDraining, (draining) =>
          HttpServerResponse.setHeaders(response, {
            "x-correlation-id": correlationId,
            ...(draining ? { connection: "close" } : {})
          })
        )
      )
      const response = yield* Option.match(rejectBody(request, bodyLimitBytes, correlationId), {
        onSome: (rejection) => Effect.succeed(HttpServerResponse.setHeader(rejection, "x-correlation-id", correlationId)),
        onNone: () => app
      }).pipe(
        HttpServerRequest.withMaxBodySize(Option.some(bodyLimitBytes)),
        Effect.locally(CurrentRequest, { correlationId, actor: null }),
        Effect.annotateLogs("correlationId", correlationId)
      )
      yield* Effect.logInfo("http request").pipe(
        Effect.annotateLogs({
          correlationId,
          method: request.method,
          path: request.url.split("?")[0],
          status: response.status,
          durationMs: Date.now() - started
        })
      )
      return response
    })
  )

/** Inside the HttpApi: every failure becomes problem+json before the default encoder sees it. */
const ProblemMiddlewareLive = HttpApiBuilder.middleware((app) =>
  Effect.catchAllCause(app, (cause) =>
    Effect.flatMap(FiberRef.get(CurrentRequest), ({ correlationId }) => causeToProblem(cause, correlationId))
  )
)

export const ApiLive = HttpApiBuilder.api(InventoryApi).pipe(Layer.provide([StockLevelsHttpLive, ReservationsHttpLive, HealthHttpLive]))

/**
 * The Node server itself, so that shutdown can stop accepting and wait for in-flight requests
 * while their handler is still installed (the platform's own finalizer removes it first).
 */
export class NodeServer extends Context.Tag("inventory/NodeServer")<NodeServer, Server>() {}

const NodeServerLive = Layer.sync(NodeServer, () => createServer())

/** The HTTP server on PORT serving the API, `/openapi.json` and `/docs`. */
export const HttpLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const lifecycle = yield* Lifecycle
    const server = yield* NodeServer
    return HttpApiBuilder.serve(requestMiddleware(config.bodyLimitBytes, lifecycle)).pipe(
      Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
      Layer.provide(ProblemMiddlewareLive),
      Layer.provide(ApiLive),
      // find-my-way refuses path parameters over 100 characters as "no route"; ids may be 128 and
      // longer ones must reach validation to get a 400, not a 404.
      Layer.provide(HttpRouter.setRouterConfig({ maxParamLength: 1024 })),
      HttpServer.withLogAddress,
      Layer.provideMerge(NodeHttpServer.layer(() => server, { port: config.port }))
    )
  })
).pipe(Layer.provideMerge(NodeServerLive))
