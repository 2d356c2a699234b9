import { Cause, Context, FiberRefs, FiberRef, HashMap, Layer, Logger, LogLevel, Option, Tracer } from "effect"

const SERVICE = "inventory-service"

const levelName = (level: LogLevel.LogLevel) => level.label.toLowerCase()

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => (typeof part === "string" ? part : JSON.stringify(part))).join(" ")
}

/**
 * One JSON object per line: timestamp, level, message, service, correlationId, traceId, spanId, the
 * log's annotations as fields, and the error's cause when there is one. Nothing else is printed.
 */
export const structuredLogger = Logger.make<unknown, string>(({ logLevel, message, annotations, cause, context, date }) => {
  const span = Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan)
  const line: Record<string, unknown> = {
    timestamp: date.toISOString(),
    level: levelName(logLevel),
    message: messageText(message),
    service: SERVICE,
    correlationId: null,
    traceId: Option.match(span, { onNone: () => null, onSome: (s) => s.traceId }),
    spanId: Option.match(span, { onNone: () => null, onSome: (s) => s.spanId })
  }
  for (const [key, value] of HashMap.toEntries(annotations)) line[key] = value
  if (!Cause.isEmpty(cause)) line["error"] = Cause.pretty(cause, { renderErrorCause: true })
  return JSON.stringify(line)
})

const writeLine = Logger.map(structuredLogger, (line) => {
  process.stdout.write(line + "\n")
})

/** The service's only logger, at the configured minimum level. */
export const LoggingLive = (minimum: LogLevel.LogLevel) =>
  Layer.merge(Logger.replace(Logger.defaultLogger, writeLine), Logger.minimumLogLevel(minimum))

