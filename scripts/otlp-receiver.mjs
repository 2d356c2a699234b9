#!/usr/bin/env node
// A small OTLP/HTTP trace receiver (JSON encoding, what @opentelemetry/exporter-trace-otlp-http
// sends by default). As a program it prints every span it receives, one line each, indented under
// its parent; the tests import `startOtlpReceiver` to collect the spans of a run.
//
// Usage: node scripts/otlp-receiver.mjs [port]      (default 4318, the OTLP/HTTP port)
//        OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 npm start
import { Buffer } from "node:buffer"
import { createServer } from "node:http"
import { fileURLToPath } from "node:url"
import { gunzipSync } from "node:zlib"

const KINDS = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
const STATUS = ["UNSET", "OK", "ERROR"]

const attributeValue = (value) => {
  if (value === undefined || value === null) return null
  if ("stringValue" in value) return value.stringValue
  if ("intValue" in value) return Number(value.intValue)
  if ("doubleValue" in value) return value.doubleValue
  if ("boolValue" in value) return value.boolValue
  if ("arrayValue" in value) return (value.arrayValue.values ?? []).map(attributeValue)
  return JSON.stringify(value)
}

const attributes = (list) => Object.fromEntries((list ?? []).map((a) => [a.key, attributeValue(a.value)]))

const nanos = (value) => BigInt(value ?? 0)

/** Flattens an ExportTraceServiceRequest into plain span records. */
export const spansOf = (request) =>
  (request.resourceSpans ?? []).flatMap((rs) =>
    (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((span) => ({
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId || null,
        name: span.name,
        kind: KINDS[span.kind] ?? String(span.kind),
        durationMs: Number(nanos(span.endTimeUnixNano) - nanos(span.startTimeUnixNano)) / 1e6,
        attributes: attributes(span.attributes),
        status: { code: STATUS[span.status?.code ?? 0], message: span.status?.message ?? "" },
        events: (span.events ?? []).map((e) => ({ name: e.name, attributes: attributes(e.attributes) })),
        links: (span.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
        resource: attributes(rs.resource?.attributes)
      }))
    )
  )

/** Listens on `port` (0: any free port); every received span is appended to `spans`. */
export const startOtlpReceiver = ({ port = 0, onSpans = () => {} } = {}) =>
  new Promise((resolve, reject) => {
    const spans = []
    const server = createServer((req, res) => {
      const chunks = []
      req.on("data", (chunk) => chunks.push(chunk))
      req.on("end", () => {
        if (req.method !== "POST" || req.url !== "/v1/traces") {
          res.writeHead(404).end()
          return
        }
        try {
          let body = Buffer.concat(chunks)
          if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body)
          if (!String(req.headers["content-type"] ?? "").includes("json")) {
            res.writeHead(415, { "content-type": "application/json" }).end('{"error":"send OTLP/HTTP JSON"}')
            return
          }
          const received = spansOf(JSON.parse(body.toString("utf8")))
          spans.push(...received)
          onSpans(received)
          res.writeHead(200, { "content-type": "application/json" }).end("{}")
        } catch (error) {
          res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: String(error) }))
        }
      })
    })
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () => {
      const address = server.address()
      resolve({
        url: `http://127.0.0.1:${address.port}`,
        spans,
        close: () => new Promise((done) => server.close(() => done()))
      })
    })
  })

const describe = (span, depth) => {
  const interesting = Object.entries(span.attributes)
    .filter(([key]) => !key.startsWith("http.request.header.") && !key.startsWith("http.response.header."))
    .map(([key, value]) => `${key}=${typeof value === "string" && value.length > 80 ? value.slice(0, 77) + "..." : value}`)
  const error = span.status.code === "ERROR" ? ` ERROR(${span.status.message})` : ""
  return `${"  ".repeat(depth)}${span.name} [${span.kind}] ${span.durationMs.toFixed(1)}ms${error} ${interesting.join(" ")}`
}

/** Prints a batch as trees: each trace, its root(s) first, children indented under their parent. */
const print = (batch) => {
  const byTrace = new Map()
  for (const span of batch) byTrace.set(span.traceId, [...(byTrace.get(span.traceId) ?? []), span])
  for (const [traceId, spans] of byTrace) {
    console.log(`trace ${traceId} (${spans[0].resource["service.name"]})`)
    const ids = new Set(spans.map((s) => s.spanId))
    const walk = (span, depth) => {
      console.log(describe(span, depth))
      for (const child of spans.filter((s) => s.parentSpanId === span.spanId)) walk(child, depth + 1)
    }
    for (const root of spans.filter((s) => s.parentSpanId === null || !ids.has(s.parentSpanId))) walk(root, 1)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? 4318)
  const receiver = await startOtlpReceiver({ port, onSpans: print })
  console.log(`OTLP/HTTP receiver on ${receiver.url}/v1/traces (JSON); Ctrl-C to stop`)
}
