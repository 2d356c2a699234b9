// Types for scripts/otlp-receiver.mjs, so the TypeScript tests can import it.
export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | null
  readonly name: string
  readonly kind: "UNSPECIFIED" | "INTERNAL" | "SERVER" | "CLIENT" | "PRODUCER" | "CONSUMER"
  readonly durationMs: number
  readonly attributes: Record<string, unknown>
  readonly status: { readonly code: "UNSET" | "OK" | "ERROR"; readonly message: string }
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: Record<string, unknown> }>
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>
  readonly resource: Record<string, unknown>
}
export interface OtlpReceiver {
  readonly url: string
  readonly spans: Array<ReceivedSpan>
  readonly close: () => Promise<void>
}
export declare function spansOf(request: unknown): Array<ReceivedSpan>
export declare function startOtlpReceiver(options?: {
  port?: number
  onSpans?: (spans: ReadonlyArray<ReceivedSpan>) => void
}): Promise<OtlpReceiver>
