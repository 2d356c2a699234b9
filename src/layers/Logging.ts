import { Cause, Context, FiberRefs, FiberRef, HashMap, Layer, Logger, LogLevel, Option, Tracer } from "effect"
import { CurrentRequest } from "../services/RequestContext.js"

const SERVICE = "inventory-service"

const levelName = (level: LogLevel.LogLevel) => level.label.toLowerCase()

/** Fields every line has; annotations cannot overwrite them. */
const CORE_FIELDS = new Set(["timestamp", "level", "message", "service", "correlationId", "traceId", "spanId", "error"])

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => (typeof part === "string" ? part : JSON.stringify(part))).join(" ")
}

/**
 * One JSON object per line: timestamp, level, message, service, correlationId, traceId, spanId, the
 * log's annotations as fields, and the error's cause when there is one. Nothing else is printed.
 * The correlation id is the request's (or consumed message's) from `CurrentRequest`, else a
 * `correlationId` annotation (the access line is written after the request's scope has ended).
 */
export const structuredLogger = Logger.make<unknown, string>(({ logLevel, message, annotations, cause, context, date }) => {
  const span = Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan)
  const annotated = HashMap.get(annotations, "correlationId").pipe(Option.filter((id) => typeof id === "string"))
  const correlationId = FiberRefs.getOrDefault(context, CurrentRequest).correlationId ?? Option.getOrNull(annotated)
  const line: Record<string, unknown> = {
    timestamp: date.toISOString(),
    level: levelName(logLevel),
    message: messageText(message),
    service: SERVICE,
    correlationId,
    traceId: Option.match(span, { onNone: () => null, onSome: (s) => s.traceId }),
    spanId: Option.match(span, { onNone: () => null, onSome: (s) => s.spanId })
  }
  for (const [key, value] of HashMap.toEntries(annotations)) if (!CORE_FIELDS.has(key)) line[key] = value
  if (!Cause.isEmpty(cause)) line["error"] = Cause.pretty(cause, { renderErrorCause: true })
  return JSON.stringify(line)
})

const writeLine = Logger.map(structuredLogger, (line) => {
  process.stdout.write(line + "\n")
})

/** The service's only logger, at the configured minimum level. */
export const LoggingLive = (minimum: LogLevel.LogLevel) =>
  Layer.merge(Logger.replace(Logger.defaultLogger, writeLine), Logger.minimumLogLevel(minimum))

