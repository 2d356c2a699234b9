// What the fault cases share: a client that records every operation in a History, the event sink
// bound to `inventory.events`, "wait until drained", and the service run as a child process (so
// that it can be SIGKILLed) with its database and broker optionally behind TCP proxies.
import { execFile } from "node:child_process"
import { setTimeout as sleep } from "node:timers/promises"
import { promisify } from "node:util"
import { bearer } from "../support/auth.js"
import { ADMIN_URL, query } from "../support/database.js"
import { AMQP_BASE_URL, eventually, type Peer } from "../support/broker.js"
import { startService, type ServiceProcess } from "../support/process.js"
import { startTcpProxy, type TcpProxy } from "../support/tcpProxy.js"
import { type History, type ObservedEvent, observed, type Operation } from "./checker.js"

/** A client never waits longer than this: far above every bound of the service, so a hang is visible. */
const CLIENT_TIMEOUT_MS = 15_000

export interface Answer {
  readonly status: number
  readonly retryAfter: string | null
  readonly body: any
}

/** Answers no client should ever get: a 5xx other than 503, or a 503 without Retry-After. */
export const violations: Array<string> = []

/** Event types a change's answer promises. */
const promisedEvents = (kind: string, answer: Answer): Pick<Operation, "expects" | "expectsVersion"> | "fail" => {
  if (kind === "adjust" && answer.status === 200) {
    const level = answer.body.stockLevel
    return { expects: ["StockLevelChangedEvent"], expectsVersion: { variantId: level.variantId, version: level.version } }
  }
  if (kind === "reserve" && answer.status === 201) return { expects: ["InventoryReservedEvent", "StockLevelChangedEvent"] }
  // A refused reservation is a recorded outcome of its own: it writes InventoryReservationFailedEvent.
  if (kind === "reserve" && answer.status === 409 && answer.body?.code === "insufficient-stock") {
    return { expects: ["InventoryReservationFailedEvent"] }
  }
  if (kind === "release" && answer.status === 200) return { expects: [] }
  if (answer.status >= 200 && answer.status < 300) return { expects: [] }
  return "fail"
}

/**
 * Sends one change and records its outcome: ok (with the events its answer promises), fail (a 4xx:
 * no effect), or info (503, a timeout, a refused or reset connection: the outcome is unknown).
 */
export const change = async (
  history: History,
  target: { readonly name: string; readonly baseUrl: string; readonly headers: Record<string, string> },
  kind: "adjust" | "reserve" | "release" | "create",
  method: string,
  path: string,
  body: unknown
): Promise<Operation> => {
  const op = history.begin(kind, target.name)
  try {
    const response = await fetch(target.baseUrl + path, {
      method,
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
      headers: { ...target.headers, "content-type": "application/json", "x-correlation-id": op.correlationId },
      body: JSON.stringify(body)
    })
    const text = await response.text()
    const answer: Answer = { status: response.status, retryAfter: response.headers.get("retry-after"), body: text === "" ? null : JSON.parse(text) }
    op.status = answer.status
    if (answer.status >= 500) {
      op.outcome = "info"
      op.reason = String(answer.status)
      if (answer.status !== 503) violations.push(`${op.correlationId}: ${answer.status} ${text.slice(0, 200)}`)
      else if (!(Number(answer.retryAfter) > 0)) violations.push(`${op.correlationId}: 503 without Retry-After`)
    } else {
      const promised = promisedEvents(kind, answer)
      if (promised === "fail") {
        op.outcome = "fail"
        op.reason = `${answer.status} ${answer.body?.code ?? ""}`
      } else {
        op.outcome = "ok"
        op.expects = promised.expects
        if (promised.expectsVersion) op.expectsVersion = promised.expectsVersion
      }
    }
  } catch (error) {
    // No answer: refused (the process is down), reset, or our own timeout. Unknown outcome.
    op.outcome = "info"
    const cause = (error as { cause?: { code?: string } }).cause
    op.reason = cause?.code ?? (error as Error).name
  }
  op.endedAt = Date.now()
  return op
}

/** Runs `task` on `concurrency` workers until `stop()` says so. */
export const stream = async (concurrency: number, stop: () => boolean, task: (i: number) => Promise<unknown>) => {
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!stop()) await task(next++)
    })
  )
}

/** Every event published to `inventory.events`, as it arrives (a queue of the test's own). */
export interface EventSink {
  readonly events: Array<ObservedEvent>
  readonly eventIds: () => Set<string>
  readonly close: () => Promise<void>
}

export const sinkOn = async (peer: Peer): Promise<EventSink> => {
  const events: Array<ObservedEvent> = []
  const { queue } = await peer.channel.assertQueue("", { exclusive: true })
  await peer.channel.bindQueue(queue, "inventory.events", "#")
  const { consumerTag } = await peer.channel.consume(queue, (msg) => {
    if (msg) events.push(observed(msg))
  }, { noAck: true })
  return {
    events,
    eventIds: () => new Set(events.map((e) => e.eventId)),
    close: async () => {
      await peer.channel.cancel(consumerTag).catch(() => undefined)
    }
  }
}

/** The service declares the exchange; a peer binding first needs it, with the same arguments. */
export const declareEventsExchange = async (peer: Peer) => {
  await peer.channel.assertExchange("inventory.unrouted", "fanout", { durable: true })
  await peer.channel.assertExchange("inventory.events", "topic", { durable: true, alternateExchange: "inventory.unrouted" })
}

export const pendingOutbox = async (databaseUrl: string) =>
  Number(
    (await query<{ n: string }>(databaseUrl, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"))[0]!.n
  )

/**
 * Above the relay's claim lease (60 s, src/outbox/Relay.ts): rows a SIGKILLed relay had claimed wait
 * that long before another relay may publish them.
 */
export const AFTER_KILL_DRAIN_MS = 100_000

/**
 * Waits until nothing of `history`'s operations is pending in the outbox and every one of their
 * events has arrived at the sink; returns when the last arrived, or undefined after `timeoutMs` (the
 * checker then says what is missing).
 */
export const drained = async (databaseUrl: string, sink: EventSink, history: History, timeoutMs = 45_000): Promise<number | undefined> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const rows = await query<{ event_id: string; published_at: Date | null; parked_at: Date | null }>(
      databaseUrl,
      "SELECT event_id::text, published_at, parked_at FROM outbox WHERE starts_with(correlation_id, $1)",
      [history.prefix + "-"]
    )
    const ids = sink.eventIds()
    if (rows.every((r) => r.parked_at === null && r.published_at !== null && ids.has(r.event_id))) {
      return Math.max(0, ...sink.events.map((e) => e.receivedAt))
    }
    await sleep(200)
  }
  return undefined
}

/** A running replica of the service, restartable on the same configuration. */
export interface Replica {
  readonly name: string
  current: ServiceProcess
  readonly baseUrl: () => string
  readonly target: () => { readonly name: string; readonly baseUrl: string; readonly headers: Record<string, string> }
  readonly restart: () => Promise<void>
}

let headersCache: Record<string, string> | undefined
export const allScopes = async () => (headersCache ??= await bearer())

/** Starting runs TypeScript through tsx: slow on a loaded 2-core CI machine. */
const START_TIMEOUT_MS = 150_000

export const startReplica = async (name: string, env: Record<string, string>): Promise<Replica> => {
  const headers = await allScopes()
  const replica: Replica = {
    name,
    current: await startService(env, START_TIMEOUT_MS),
    baseUrl: () => replica.current.baseUrl,
    target: () => ({ name, baseUrl: replica.current.baseUrl, headers }),
    restart: async () => {
      replica.current = await startService(env, START_TIMEOUT_MS)
    }
  }
  return replica
}

export const readiness = async (baseUrl: string) => {
  const response = await fetch(baseUrl + "/health/ready", { signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS) })
  return { status: response.status, body: (await response.json()) as any }
}

export const brokerUp = (baseUrl: string) =>
  eventually(async () => ((await readiness(baseUrl)).body?.checks?.broker?.status === "up" ? true : undefined), 30_000, "broker up")

/** A TCP proxy in front of the test PostgreSQL or RabbitMQ, and the URL that goes through it. */
export const proxyFor = async (kind: "database" | "broker", url: string): Promise<{ proxy: TcpProxy; url: string }> => {
  const base = new URL(kind === "database" ? ADMIN_URL : AMQP_BASE_URL)
  const proxy = await startTcpProxy({ host: base.hostname, port: Number(base.port || (kind === "database" ? 5432 : 5672)) })
  const through = new URL(url)
  through.host = `127.0.0.1:${proxy.port}`
  return { proxy, url: through.toString() }
}

/** `npm run reconcile` against the database: exit code and output. */
export const reconcile = async (databaseUrl: string): Promise<{ code: number; output: string }> => {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "src/bin/reconcile.ts"], {
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: "error" }
    })
    return { code: 0, output: stdout }
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string }
    return { code: e.code ?? -1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` }
  }
}

export const kill = async (replica: Replica, signal: NodeJS.Signals) => replica.current.kill(signal)

/** What to look at when a case did not drain: the outbox's state and the service's warnings. */
export const diagnose = async (databaseUrl: string, replica: Replica) => {
  const rows = await query(
    databaseUrl,
    `SELECT count(*) FILTER (WHERE published_at IS NULL AND parked_at IS NULL) AS pending,
            count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked, max(attempts) AS max_attempts,
            max(last_error) AS last_error, count(*) FILTER (WHERE claimed_until > now()) AS claimed
       FROM outbox`
  )
  const warnings = replica.current.output.filter((line) => /"level":"(WARN|ERROR|FATAL)"|warn|error/i.test(line)).slice(-8)
  return `outbox: ${JSON.stringify(rows[0])}\nlast warnings of ${replica.name}:\n${warnings.join("\n")}`
}
