import { Effect, Layer } from "effect"
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { NodeHttpServer } from "@effect/platform-node"
import { createServer } from "node:http"
import { Metrics, type MetricsShape } from "../layers/Telemetry.js"

/**
 * `Listening on http://0.0.0.0:8080` as before (README; test/support/process.ts reads the port from
 * it): Effect 4 formats the unspecified IPv6 address a dual-stack server listens on as `[::]`.
 */
export const logListening = HttpServer.addressFormattedWith((url) =>
  Effect.log(`Listening on ${url.replace(/^http:\/\/\[::\]:/, "http://0.0.0.0:")}`)
)

const PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

const scrape = (metrics: MetricsShape) =>
  Effect.map(metrics.render, (text) => HttpServerResponse.text(text, { contentType: PROMETHEUS_TEXT }))

/** `GET /metrics` on the API's own server, beside the HttpApi and outside its auth (API.md). */
export const MetricsRouteLive = HttpRouter.use((router) =>
  Effect.flatMap(Effect.service(Metrics), (metrics) => router.add("GET", "/metrics", scrape(metrics)))
)

/**
 * `GET /metrics` alone on METRICS_PORT, so a NetworkPolicy can open only that port to Prometheus.
 * Scrapes are not traced (a span every 30 s per pod would only bury real traces). Anything else
 * is a plain 404, as the one-route router answered before.
 */
export const MetricsServerLive = (port: number) =>
  Layer.mergeAll(
    Layer.unwrap(
      Effect.map(Effect.service(Metrics), (metrics) =>
        HttpServer.serve(
          Effect.flatMap(Effect.service(HttpServerRequest.HttpServerRequest), (request) =>
            (request.method === "GET" || request.method === "HEAD") && (request.url.split("?")[0] ?? "/") === "/metrics"
              ? scrape(metrics)
              : Effect.succeed(HttpServerResponse.empty({ status: 404 }))
          )
        )
      )
    ),
    Layer.effectDiscard(logListening)
  ).pipe(
    Layer.provide(HttpMiddleware.layerTracerDisabledForUrls(["/metrics"])),
    // Provided, not merged: the API server stays the service's `HttpServer`.
    Layer.provide(NodeHttpServer.layer(createServer, { port }))
  )
