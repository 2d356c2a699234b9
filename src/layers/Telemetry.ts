import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Context, Duration, Effect, Layer, Option, Ref, type Scope } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { AppConfig } from "./Config.js"

export const SERVICE_NAME = "inventory-service"

/** The version in the service's package.json (found upwards from this file, in src/ and in dist/). */
const serviceVersion = (): string => {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    const file = join(dir, "package.json")
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string }
      if (pkg.name === SERVICE_NAME && typeof pkg.version === "string") return pkg.version
    }
    dir = dirname(dir)
  }
  return "unknown"
}

/**
 * The Prometheus side of the one metrics system: every Effect `Metric` reaches the OpenTelemetry
 * Prometheus reader through `NodeSdk.layer`; `render` is the text a scrape of `/metrics` returns.
 * Gauges that mirror outside state (pool counts, process memory) are sampled just before each scrape.
 */
export interface MetricsShape {
  /** Runs `sample` before every scrape while the calling scope is open. */
  readonly addSampler: (sample: Effect.Effect<void>) => Effect.Effect<void, never, Scope.Scope>
  readonly render: Effect.Effect<string>
}

export class Metrics extends Context.Service<Metrics, MetricsShape>()("inventory/Metrics") {}

const makeMetrics = (exporter: PrometheusExporter) =>
  Effect.gen(function* () {
    const samplers = yield* Ref.make<ReadonlyArray<Effect.Effect<void>>>([])
    // No otel_scope_name label on every series: there is exactly one producer (Effect's metrics).
    const serializer = new PrometheusSerializer(undefined, false, undefined, false, true)
    const metrics: MetricsShape = {
      addSampler: (sample) =>
        Effect.acquireRelease(Ref.update(samplers, (all) => [...all, sample]), () =>
          Ref.update(samplers, (all) => all.filter((s) => s !== sample))
        ),
      render: Effect.gen(function* () {
        for (const sample of yield* Ref.get(samplers)) yield* sample
        const { resourceMetrics, errors } = yield* Effect.promise(() => exporter.collect())
        if (errors.length > 0) yield* Effect.logWarning("metrics collection errors", errors.map(String))
        return serializer.serialize(resourceMetrics)
      })
    }
    return metrics
  })

/**
 * Tracing and metrics through the OpenTelemetry SDK. Spans are exported over OTLP/HTTP when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is set (else Effect's own tracer still gives every log line a trace
 * id); the resource names the service, its version and the deployment environment. Metrics are
 * read by the Prometheus exporter, which serves nothing itself: `/metrics` is ours (see MetricsHttp).
 */
export const TelemetryLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true })
    const spanProcessor = Option.map(
      config.otlpEndpoint,
      (endpoint) =>
        new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, "")}/v1/traces` }), {
          // Small batches often: a trace of a failed request should reach the collector in seconds.
          scheduledDelayMillis: 1_000
        })
    )
    const sdk = NodeSdk.layer(() => ({
      resource: {
        serviceName: SERVICE_NAME,
        serviceVersion: serviceVersion(),
        // `deployment.environment.name` since semantic conventions 1.27 (was `deployment.environment`).
        attributes: { "deployment.environment.name": Option.getOrElse(config.deploymentEnvironment, () => config.nodeEnv) }
      },
      spanProcessor: Option.getOrUndefined(spanProcessor),
      metricReader: exporter,
      // Shutdown must not hang on an unreachable collector (EFFECT-NOTES.md).
      shutdownTimeout: Duration.seconds(3)
    }))
    return Layer.merge(sdk, Layer.effect(Metrics, makeMetrics(exporter)))
  })
)

/**
 * Whether spans leave the process. Without an exporter Effect's native tracer keeps them in memory
 * only, so the HTTP server does not open spans for reads (http/Server.ts).
 */
export const exportsTraces = (config: { readonly otlpEndpoint: Option.Option<string> }) => Option.isSome(config.otlpEndpoint)
