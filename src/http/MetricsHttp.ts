import { HttpApiBuilder, HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { Metrics, type MetricsShape } from "../layers/Telemetry.js"

const PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

const scrape = (metrics: MetricsShape) =>
  Effect.map(metrics.render, (text) => HttpServerResponse.text(text, { contentType: PROMETHEUS_TEXT }))

/** `GET /metrics` on the API's own server, beside the HttpApi and outside its auth (API.md). */
export const MetricsRouteLive = HttpApiBuilder.Router.use((router) =>
  Effect.flatMap(Metrics, (metrics) => router.get("/metrics", scrape(metrics)))
)

/**
 * `GET /metrics` alone on METRICS_PORT, so a NetworkPolicy can open only that port to Prometheus.
 * Scrapes are not traced (a span every 30 s per pod would only bury real traces).
 */
export const MetricsServerLive = (port: number) =>
  Layer.mergeAll(
    Layer.unwrapEffect(
      Effect.map(Metrics, (metrics) => HttpRouter.empty.pipe(HttpRouter.get("/metrics", scrape(metrics)), HttpServer.serve()))
    ),
    Layer.effectDiscard(HttpServer.logAddress)
  ).pipe(
    HttpMiddleware.withTracerDisabledForUrls(["/metrics"]),
    // Provided, not merged: the API server stays the service's `HttpServer`.
    Layer.provide(NodeHttpServer.layer(createServer, { port }))
  )
