import { HttpApiBuilder, HttpApiSwagger, HttpMiddleware, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, FiberRef, Layer, Option } from "effect"
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import { AppConfig } from "../layers/Config.js"
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
const requestMiddleware = (bodyLimitBytes: number) =>
  HttpMiddleware.make((app) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const correlationId = correlationIdOf(request)
      const started = Date.now()
      const response = yield* Option.match(rejectBody(request, bodyLimitBytes, correlationId), {
        onSome: Effect.succeed,
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
      return HttpServerResponse.setHeader(response, "x-correlation-id", correlationId)
    })
  )

/** Inside the HttpApi: every failure becomes problem+json before the default encoder sees it. */
const ProblemMiddlewareLive = HttpApiBuilder.middleware((app) =>
  Effect.catchAllCause(app, (cause) =>
    Effect.flatMap(FiberRef.get(CurrentRequest), ({ correlationId }) => causeToProblem(cause, correlationId))
  )
)

export const ApiLive = HttpApiBuilder.api(InventoryApi).pipe(Layer.provide([StockLevelsHttpLive, ReservationsHttpLive, HealthHttpLive]))

/** The HTTP server on PORT serving the API, `/openapi.json` and `/docs`. */
export const HttpLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    HttpApiBuilder.serve(requestMiddleware(config.bodyLimitBytes)).pipe(
      Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
      Layer.provide(ProblemMiddlewareLive),
      Layer.provide(ApiLive),
      HttpServer.withLogAddress,
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: config.port }))
    )
  )
)
