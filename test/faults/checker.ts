// A Jepsen-style checker for the outbox: what clients saw against what the broker delivered.
//
// Every change a client makes is an operation with its own correlation id (the service copies it onto
// every event the change writes). An operation ends as
// - ok: the client saw it succeed (2xx, or a refusal that is itself recorded, like a failed reservation),
// - fail: the client saw it refused with no effect (4xx),
// - info: the outcome is unknown to the client (503, timeout, connection refused or reset): it may or
//   may not have committed, so its events are allowed either way (Jepsen's :info operations).
// Against the events consumed from `inventory.events`:
// - lost: an ok operation missing one of the events its answer promises,
// - duplicated: an eventId delivered more than once (at-least-once: counted, allowed),
// - unexpected: an event whose correlation id is of no ok or info operation,
// - out of order: per variant, the versions of its StockLevelChangedEvents not strictly increasing
//   in arrival order (first copies).
import type { ConsumeMessage } from "amqplib"

export type Outcome = "pending" | "ok" | "fail" | "info"

export interface Operation {
  readonly correlationId: string
  readonly kind: string
  /** Which service instance the request went to (for the rolling-restart case). */
  readonly target: string
  readonly sentAt: number
  outcome: Outcome
  status?: number
  /** Why the outcome is unknown or failed (status, error code). */
  reason?: string
  /** Event types the answer promises (set when ok). */
  expects: ReadonlyArray<string>
  /** For a StockLevelChangedEvent promised by the answer: the variant and the version the client saw. */
  expectsVersion?: { readonly variantId: string; readonly version: number }
  endedAt?: number
}

export interface ObservedEvent {
  readonly eventId: string
  readonly eventType: string
  readonly aggregateId: string
  readonly correlationId: string | null
  readonly version: number | undefined
  readonly receivedAt: number
  readonly data: Record<string, unknown>
}

export const observed = (message: ConsumeMessage, receivedAt = Date.now()): ObservedEvent => {
  const body = JSON.parse(message.content.toString("utf8"))
  return {
    eventId: body.eventId,
    eventType: body.eventType,
    aggregateId: body.aggregateId,
    correlationId: body.correlationId ?? null,
    version: typeof body.data?.version === "number" ? body.data.version : undefined,
    receivedAt,
    data: body.data ?? {}
  }
}

/** Prefixes of every History of this test process: cases sharing a database keep to their own events. */
const histories = new Set<string>()
const ofOtherHistory = (correlationId: string | null, own: string) =>
  correlationId !== null && [...histories].some((p) => p !== own && correlationId.startsWith(p + "-"))

export class History {
  readonly ops = new Map<string, Operation>()
  private seq = 0
  constructor(readonly prefix: string) {
    histories.add(prefix)
  }

  begin(kind: string, target = "service"): Operation {
    const op: Operation = {
      correlationId: `${this.prefix}-${++this.seq}-${kind}`,
      kind,
      target,
      sentAt: Date.now(),
      outcome: "pending",
      expects: []
    }
    this.ops.set(op.correlationId, op)
    return op
  }

  list(): ReadonlyArray<Operation> {
    return [...this.ops.values()]
  }

  count(outcome: Outcome): number {
    return this.list().filter((op) => op.outcome === outcome).length
  }
}

export interface Verdict {
  readonly ok: number
  readonly fail: number
  readonly info: number
  readonly events: number
  readonly lost: ReadonlyArray<{ readonly correlationId: string; readonly missing: ReadonlyArray<string> }>
  readonly duplicated: number
  readonly unexpected: ReadonlyArray<ObservedEvent>
  readonly outOfOrder: ReadonlyArray<{ readonly variantId: string; readonly versions: ReadonlyArray<number> }>
}

export const check = (history: History, events: ReadonlyArray<ObservedEvent>): Verdict => {
  const firsts: Array<ObservedEvent> = []
  const seen = new Set<string>()
  let duplicated = 0
  for (const event of events) {
    // A late event of an earlier case on the same database is that case's business, not this one's.
    if (ofOtherHistory(event.correlationId, history.prefix)) continue
    if (seen.has(event.eventId)) duplicated++
    else {
      seen.add(event.eventId)
      firsts.push(event)
    }
  }
  const byCorrelation = new Map<string, Array<ObservedEvent>>()
  for (const event of firsts) {
    const key = event.correlationId ?? ""
    byCorrelation.set(key, [...(byCorrelation.get(key) ?? []), event])
  }
  const lost: Array<{ correlationId: string; missing: Array<string> }> = []
  for (const op of history.list()) {
    if (op.outcome !== "ok") continue
    const got = byCorrelation.get(op.correlationId) ?? []
    const missing = op.expects.filter((type) => !got.some((e) => e.eventType === type))
    const v = op.expectsVersion
    if (v && !got.some((e) => e.eventType === "StockLevelChangedEvent" && e.aggregateId === v.variantId && e.version === v.version)) {
      missing.push(`StockLevelChangedEvent ${v.variantId}@${v.version}`)
    }
    if (missing.length > 0) lost.push({ correlationId: op.correlationId, missing })
  }
  const unexpected = firsts.filter((e) => {
    const op = e.correlationId === null ? undefined : history.ops.get(e.correlationId)
    return op === undefined || op.outcome === "fail" || op.outcome === "pending"
  })
  const versions = new Map<string, Array<number>>()
  for (const e of firsts) {
    if (e.eventType !== "StockLevelChangedEvent" || e.version === undefined) continue
    versions.set(e.aggregateId, [...(versions.get(e.aggregateId) ?? []), e.version])
  }
  const outOfOrder = [...versions]
    .filter(([, vs]) => !vs.every((x, i) => i === 0 || vs[i - 1]! < x))
    .map(([variantId, vs]) => ({ variantId, versions: vs }))
  return {
    ok: history.count("ok"),
    fail: history.count("fail"),
    info: history.count("info"),
    events: firsts.length,
    lost,
    duplicated,
    unexpected,
    outOfOrder
  }
}

/** One line for the test log: the classification and the drain time. */
export const summary = (name: string, verdict: Verdict, extra: Record<string, unknown> = {}) =>
  `[faults] ${name}: ok=${verdict.ok} fail=${verdict.fail} info=${verdict.info} events=${verdict.events} ` +
  `lost=${verdict.lost.length} duplicated=${verdict.duplicated} unexpected=${verdict.unexpected.length} ` +
  `outOfOrder=${verdict.outOfOrder.length}` +
  Object.entries(extra)
    .map(([k, v]) => ` ${k}=${String(v)}`)
    .join("")
