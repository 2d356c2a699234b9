import { Effect, Layer, Metric } from "effect"
import { type Histogram, monitorEventLoopDelay } from "node:perf_hooks"
import { Metrics } from "./Telemetry.js"

// The names node exporters (prom-client) use, so stock Node.js dashboards work too.
const cpuSeconds = Metric.counter("process_cpu_seconds", {
  description: "User and system CPU time spent by the process, in seconds",
  incremental: true
})
const residentMemory = Metric.gauge("process_resident_memory_bytes", { description: "Resident set size of the process, in bytes" })
const heapUsed = Metric.gauge("nodejs_heap_size_used_bytes", { description: "V8 heap in use, in bytes" })
const heapTotal = Metric.gauge("nodejs_heap_size_total_bytes", { description: "V8 heap allocated, in bytes" })
const startTime = Metric.gauge("process_start_time_seconds", { description: "Start time of the process since the Unix epoch, in seconds" })
const lagMean = Metric.gauge("nodejs_eventloop_lag_mean_seconds", {
  description: "Mean event-loop delay since the previous scrape, in seconds"
})
const lagP99 = Metric.gauge("nodejs_eventloop_lag_p99_seconds", {
  description: "99th percentile of the event-loop delay since the previous scrape, in seconds"
})
const lagMax = Metric.gauge("nodejs_eventloop_lag_max_seconds", {
  description: "Largest event-loop delay since the previous scrape, in seconds"
})

const NS_PER_S = 1e9
const US_PER_S = 1e6
const LAG_RESOLUTION_MS = 10

/**
 * The event-loop lag in seconds from a `monitorEventLoopDelay` histogram. The histogram records the
 * whole interval between runs of its `resolutionMs` timer, so an idle loop reads `resolutionMs`: the
 * lag is what exceeds it (as Elastic's APM agent reports it). No samples (a scrape right after the
 * last), which the histogram reads as NaN, is reported as no lag.
 */
export const eventLoopLag = (histogram: Histogram, resolutionMs: number) => {
  const lag = (ns: number) => (histogram.count > 0 ? Math.max(0, ns / NS_PER_S - resolutionMs / 1000) : 0)
  return { mean: lag(histogram.mean), p99: lag(histogram.percentile(99)), max: lag(histogram.max) }
}

/**
 * CPU, memory and event-loop lag of this process, sampled at each scrape. The event-loop delay is
 * measured by `perf_hooks.monitorEventLoopDelay` (10 ms resolution, not counted as lag) and reset
 * after every scrape.
 */
export const ProcessMetricsLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const histogram = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const h = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS })
        h.enable()
        return h
      }),
      (h) => Effect.sync(() => h.disable())
    )
    yield* Metric.update(startTime, Math.round(Date.now() / 1000 - process.uptime()))
    yield* metrics.addSampler(
      Effect.gen(function* () {
        const { user, system } = process.cpuUsage()
        const total = (user + system) / US_PER_S
        // A counter only grows: add what the process used since the value it already shows.
        const shown = yield* Metric.value(cpuSeconds)
        yield* Metric.update(cpuSeconds, Math.max(0, total - shown.count))
        const memory = process.memoryUsage()
        yield* Metric.update(residentMemory, memory.rss)
        yield* Metric.update(heapUsed, memory.heapUsed)
        yield* Metric.update(heapTotal, memory.heapTotal)
        const lag = eventLoopLag(histogram, LAG_RESOLUTION_MS)
        yield* Metric.update(lagMean, lag.mean)
        yield* Metric.update(lagP99, lag.p99)
        yield* Metric.update(lagMax, lag.max)
        histogram.reset()
      })
    )
  })
)
