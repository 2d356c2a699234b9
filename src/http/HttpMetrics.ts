import { Context, Effect, Metric, Option, type Tracer } from "effect"
import { HttpServerRequest } from "effect/http"

/** Latency buckets in seconds: 5 ms to 10 s, dense around the 100 ms–2 s range the alerts use. */
export const LATENCY_BOUNDARIES: ReadonlyArray<number> = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10]

export const httpRequests = Metric.counter("inventory_http_requests", {
  description: "HTTP requests answered, by route template, method, status code and status class (2xx..5xx)",
  incremental: true
})

export const httpRequestDuration = Metric.histogram("inventory_http_request_duration_seconds", {
  boundaries: LATENCY_BOUNDARIES,
  description: "Time from receiving a request to its response, by route template and method"
})

/** Requests that never get a span (probes, scrapes): their paths are their own templates. */
export const UNTRACED_PATHS: ReadonlyArray<string> = ["/health/live", "/health/ready", "/metrics"]

/**
 * What the access log line and the request metrics learn from inside a request, whose own scope
 * (provided services, log annotations) ends before they are written: the route template the
 * HttpApi matched and the authenticated caller. One mutable record per request, kept by the
 * server's request middleware (http/Server.ts) against the request object, not in the request's
 * context: one overlay fewer on every request, so that the router's own two stay overlays instead
 * of copying the whole context (Effect copies it at its eighth overlay).
 */
export interface RequestFacts {
  route: string | undefined
  actor: string | null
}

const factsByRequest = new WeakMap<HttpServerRequest.HttpServerRequest, RequestFacts>()

/** Starts the record of `request` (the server's request middleware). */
export const trackRequestFacts = (request: HttpServerRequest.HttpServerRequest, facts: RequestFacts): void => {
  factsByRequest.set(request, facts)
}

/** The record of the request being served in `context`; undefined outside the server's middleware. */
export const requestFactsIn = (context: Context.Context<never>): RequestFacts | undefined => {
  const request = Context.getOrUndefined(context, HttpServerRequest.HttpServerRequest)
  return request === undefined ? undefined : factsByRequest.get(request)
}

/** Unmatched paths (404s, scans) share one label so a scanner cannot create series. */
export const UNMATCHED_ROUTE = "unmatched"

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])

/**
 * The route template of a request (`/v1/stock-levels/:variantId`), never the raw path: the router
 * writes it on the request's server span as `http.route`.
 */
export const routeOf = (span: Option.Option<Tracer.AnySpan>, path: string): string => {
  const fromSpan = Option.flatMap(span, (s) => (s._tag === "Span" ? Option.fromNullishOr(s.attributes.get("http.route")) : Option.none()))
  if (Option.isSome(fromSpan) && typeof fromSpan.value === "string") return fromSpan.value
  return UNTRACED_PATHS.includes(path) ? path : UNMATCHED_ROUTE
}

export const statusClass = (status: number) => `${Math.floor(status / 100)}xx`

/**
 * The status code as a label. Bounded: the service answers only codes it chooses (API.md), and
 * anything outside 100-599 (a bug) shares one value.
 */
export const statusLabel = (status: number) => (Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : "other")

/** Bounded method label (OpenTelemetry uses `_OTHER` for the same reason). */
export const methodLabel = (method: string) => (KNOWN_METHODS.has(method) ? method : "_OTHER")

/** A metric with these labels (each combination is its own series). */
export const labelled = <Input, State>(metric: Metric.Metric<Input, State>, labels: Record<string, string>) =>
  Metric.withAttributes(metric, labels)

export const recordRequest = (request: { route: string; method: string; status: number; seconds: number }) =>
  Effect.all(
    [
      Metric.update(
        labelled(httpRequests, {
          route: request.route,
          method: methodLabel(request.method),
          // `status_class` stays for the dashboards and alerts that sum by it; `status` tells 404 from 409.
          status: statusLabel(request.status),
          status_class: statusClass(request.status)
        }),
        1
      ),
      Metric.update(labelled(httpRequestDuration, { route: request.route, method: methodLabel(request.method) }), request.seconds)
    ],
    { discard: true }
  )

/**
 * `recordRequest` without an Effect per request: each label set's counter and histogram are made
 * once (the same series `labelled` would address) and updated in place. One recorder per server.
 */
export const makeRequestRecorder = () => {
  interface Series {
    readonly requests: Metric.Metric<number, unknown>
    readonly duration: Metric.Metric<number, unknown>
  }
  const series = new Map<string, Series>()
  const seriesOf = (route: string, method: string, status: number): Series => {
    const key = `${route} ${method} ${status}`
    let found = series.get(key)
    if (found === undefined) {
      const labels = { route, method: methodLabel(method), status: statusLabel(status), status_class: statusClass(status) }
      found = {
        requests: Metric.counter("inventory_http_requests", { description: httpRequests.description, incremental: true, attributes: labels }),
        duration: Metric.histogram("inventory_http_request_duration_seconds", {
          boundaries: LATENCY_BOUNDARIES,
          description: httpRequestDuration.description,
          attributes: { route, method: labels.method }
        })
      }
      // Bounded by routes × methods × statuses; a flood of odd methods shares `_OTHER` but not its key.
      if (series.size < 10_000) series.set(key, found)
    }
    return found
  }
  return (request: { route: string; method: string; status: number; seconds: number }, context: Context.Context<never>) => {
    const { requests, duration } = seriesOf(request.route, request.method, request.status)
    requests.updateUnsafe(1, context)
    duration.updateUnsafe(request.seconds, context)
  }
}
