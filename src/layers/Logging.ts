import { Cause, Context, Layer, Logger, LogLevel, Option, References, Tracer } from "effect"
import { CurrentRequest } from "../services/RequestContext.js"

const SERVICE = "inventory-service"

/** Effect 4's levels are "Debug" | "Info" | "Warn" | "Error" | …; the JSON keeps "debug", "info", "warn", "error". */
const levelName = (level: LogLevel.LogLevel) => level.toLowerCase()

/** Fields every line has; annotations cannot overwrite them. */
const CORE_FIELDS = new Set(["timestamp", "level", "message", "service", "correlationId", "traceId", "spanId", "error"])

/** Effect 4 hands the logger the array of `Effect.log*` arguments (causes removed): one string. */
const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => (typeof part === "string" ? part : JSON.stringify(part))).join(" ")
}

/**
 * One JSON object per line: timestamp, level, message, service, correlationId, traceId, spanId, the
 * log's annotations as fields, and the error's cause when there is one. Nothing else is printed.
 * The correlation id is the request's (or consumed message's) from `CurrentRequest`, else a
 * `correlationId` annotation (the access line is written after the request's scope has ended);
 * the request's authenticated caller is its `actor` field.
 */
export const structuredLogger: Logger.Logger<unknown, string> = Logger.make<unknown, string>(({ logLevel, message, cause, fiber, date }) => {
  const span = Context.getOption(fiber.context, Tracer.ParentSpan)
  const annotations = fiber.getRef(References.CurrentLogAnnotations)
  const annotated = annotations["correlationId"]
  const request = fiber.getRef(CurrentRequest)
  const correlationId = request.correlationId ?? (typeof annotated === "string" ? annotated : null)
  const line: Record<string, unknown> = {
    timestamp: date.toISOString(),
    level: levelName(logLevel),
    message: messageText(message),
    service: SERVICE,
    correlationId,
    traceId: Option.match(span, { onNone: () => null, onSome: (s) => s.traceId }),
    spanId: Option.match(span, { onNone: () => null, onSome: (s) => s.spanId })
  }
  // Set in place by the authentication middleware (no log annotation per request).
  if (request.actor !== null) line["actor"] = request.actor
  for (const [key, value] of Object.entries(annotations)) if (!CORE_FIELDS.has(key)) line[key] = value
  // Cause.pretty renders nested `Error.cause` chains too (Effect 3 needed `renderErrorCause: true`).
  if (cause.reasons.length > 0) line["error"] = Cause.pretty(cause)
  return JSON.stringify(line)
})

const writeLine = Logger.map(structuredLogger, (line) => {
  process.stdout.write(line + "\n")
})

/** What the access line says of one request (observability.md "Logs": `http request`). */
export interface AccessFields {
  readonly correlationId: string
  readonly traceId: string | null
  readonly spanId: string | null
  readonly actor: string | null
  readonly method: string
  readonly route: string
  readonly path: string
  readonly status: number
  readonly durationMs: number
}

/**
 * The access line written without Effect's logger pipeline: the same JSON `structuredLogger` makes
 * for `Effect.logInfo("http request")` with these fields, serialised in one template. Provided by
 * `LoggingLive` (the service's own stdout logger); where it is absent (a test's capturing logger),
 * the server logs the line through the Effect logger instead.
 */
export const AccessLog = Context.Reference<((fields: AccessFields) => void) | undefined>("inventory/AccessLog", {
  defaultValue: () => undefined
})

const str = (value: string | null) => (value === null ? "null" : JSON.stringify(value))

const accessLine = (f: AccessFields) =>
  `{"timestamp":"${new Date().toISOString()}","level":"info","message":"http request","service":"${SERVICE}",` +
  `"correlationId":${str(f.correlationId)},"traceId":${str(f.traceId)},"spanId":${str(f.spanId)},` +
  `"actor":${str(f.actor)},"method":${str(f.method)},"route":${str(f.route)},"path":${str(f.path)},"status":${f.status},"durationMs":${f.durationMs}}\n`

/** What the relay's `event published` line says of one confirmed event (observability.md "Logs"). */
export interface PublishedEventFields {
  readonly correlationId: string | null
  readonly eventId: string
  readonly eventType: string
  readonly aggregateId: string
  readonly exchange: string
  readonly routingKey: string
}

/** The span a batch's lines name (none: `traceId` and `spanId` are null). */
export type LineSpan = { readonly traceId: string; readonly spanId: string } | null

/**
 * The relay's `event published` lines, one per confirmed event, written without Effect's logger
 * pipeline and in one write per batch: the same JSON `structuredLogger` makes for
 * `Effect.logInfo("event published")` with these fields in the batch's span. At a drain of 6,000
 * events/s the per-event pipeline cost 12–15% of the relay's throughput (docs/messaging.md). Absent
 * where `LoggingLive` is not provided (a test's capturing logger): the relay logs each through Effect.
 */
export const PublishedEventsLog = Context.Reference<
  ((events: ReadonlyArray<PublishedEventFields>, span: LineSpan) => void) | undefined
>("inventory/PublishedEventsLog", { defaultValue: () => undefined })

const publishedLines = (events: ReadonlyArray<PublishedEventFields>, span: LineSpan) => {
  const timestamp = new Date().toISOString()
  const trace = span === null ? `"traceId":null,"spanId":null` : `"traceId":${str(span.traceId)},"spanId":${str(span.spanId)}`
  let text = ""
  for (const e of events) {
    text +=
      `{"timestamp":"${timestamp}","level":"info","message":"event published","service":"${SERVICE}",` +
      `"correlationId":${str(e.correlationId)},${trace},"eventId":${str(e.eventId)},"eventType":${str(e.eventType)},` +
      `"aggregateId":${str(e.aggregateId)},"exchange":${str(e.exchange)},"routingKey":${str(e.routingKey)}}\n`
  }
  return text
}

/** The service's only logger (it replaces Effect's default loggers), at the configured minimum level. */
export const LoggingLive = (minimum: LogLevel.LogLevel): Layer.Layer<never> =>
  Layer.mergeAll(
    Logger.layer([writeLine]),
    Layer.succeed(References.MinimumLogLevel, minimum),
    Layer.succeed(
      AccessLog,
      LogLevel.isGreaterThan(minimum, "Info")
        ? () => {}
        : (fields: AccessFields) => {
            process.stdout.write(accessLine(fields))
          }
    ),
    Layer.succeed(
      PublishedEventsLog,
      LogLevel.isGreaterThan(minimum, "Info")
        ? () => {}
        : (events, span) => {
            if (events.length > 0) process.stdout.write(publishedLines(events, span))
          }
    )
  )
