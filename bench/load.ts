/**
 * Load generation for the benches: closed-loop full speed (autocannon), open-loop at a fixed rate
 * (`paced`), the serving process's CPU and memory over a run, and the relay's backlog.
 */
import autocannon, { type Request, type Result } from "autocannon"
import { createConnection, type Socket } from "node:net"
import { performance } from "node:perf_hooks"
import { adminQuery, cpuSeconds, rssMiB } from "./support.js"

/** Connections of every load run (BENCH_CONNECTIONS, default 64). */
export const CONNECTIONS = Number(process.env["BENCH_CONNECTIONS"] ?? 64)

export const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

/** One load run: answers per second, latency percentiles, failures. */
export interface Run {
  readonly rate: number
  readonly answered: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  /** 5xx answers (pgbench: failed transactions). */
  readonly failed: number
  readonly note: string
}

export const fromLatencies = (rate: number, answered: number, failed: number, latenciesMs: Array<number>, note: string): Run => {
  latenciesMs.sort((a, b) => a - b)
  return { rate, answered, failed, p50: percentile(latenciesMs, 50), p95: percentile(latenciesMs, 95), p99: percentile(latenciesMs, 99), note }
}

/** Every scope, valid for the whole run. */
let token = ""

/** The bearer token every request of the load carries. */
export const useToken = (value: string) => {
  token = value
}

/** autocannon against a server at full speed (closed loop); latencies of every response, throughput of every answer. */
export const load = (baseUrl: string, request: Request, durationS: number, connections = CONNECTIONS) =>
  new Promise<Run>((resolve, reject) => {
    const latencies: Array<number> = []
    const instance = autocannon(
      { url: baseUrl, connections, duration: durationS, headers: requestHeaders(), requests: [request] },
      (error, result: Result) => {
        if (error) return reject(error)
        const counts = new Map(Object.entries(result.statusCodeStats).map(([code, c]) => [code, c.count] as const))
        const summary = summarise(baseUrl, counts, result.errors)
        if (summary instanceof Error) return reject(summary)
        resolve(fromLatencies(summary.answered / result.duration, summary.answered, summary.fiveHundreds, latencies, summary.note))
      }
    )
    instance.on("response", (_client, _status, _bytes, responseTime) => latencies.push(responseTime))
  })

export const requestHeaders = (): Record<string, string> => ({ "content-type": "application/json", authorization: `Bearer ${token}` })

/** Answers by status: the answered count, 5xx, the note; an Error for any answer the bench does not expect. */
export const summarise = (baseUrl: string, counts: ReadonlyMap<string, number>, errorCount: number) => {
  const stats = [...counts]
  const answered = stats.reduce((s, [, c]) => s + c, 0)
  const fiveHundreds = stats.filter(([code]) => code.startsWith("5")).reduce((s, [, c]) => s + c, 0)
  const codes = stats.map(([code, c]) => `${code}×${c}`).join(" ")
  const unexpected = stats.filter(([code]) => !/^(2\d\d|409|5\d\d)$/.test(code))
  if (unexpected.length > 0) return new Error(`${baseUrl}: unexpected answers ${codes}: the bench's setup is broken`)
  return { answered, fiveHundreds, note: `${codes}${errorCount > 0 ? ` errors×${errorCount}` : ""}` }
}

/**
 * Open-loop load at a fixed rate (the half-rate runs): request i is due at start + i / rate, evenly
 * spaced, and goes out on a free one of at most CONNECTIONS keep-alive connections, or waits for
 * one. Latency runs from when a request was due to the end of its answer, so a wait for a free
 * connection (the service falling behind) counts.
 *
 * Not autocannon's `overallRate`: autocannon gives each connection rate / connections requests per
 * second and lets it send them back to back from the moment its one-second interval resets; the
 * intervals of all connections start together, so the service got the full-speed concurrency (64
 * requests in flight) for the first part of every second and nothing after, and the "half-rate"
 * latencies were full-speed latencies (p50 at half rate ≈ p50 at full speed). Raw HTTP/1.1 over
 * node:net with a minimal response parser, so the client costs about what autocannon costs
 * (node:http cost twice that per request on this 2-core machine, which delayed the pacing itself).
 */
export const paced = (baseUrl: string, request: Request, durationS: number, rate: number) =>
  new Promise<Run>((resolve, reject) => {
    const { hostname, port } = new URL(baseUrl)
    const fixedHeaders = Object.entries({ host: `${hostname}:${port}`, ...requestHeaders() })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("")
    const total = Math.max(1, Math.round(rate * durationS))
    const latencies: Array<number> = []
    const counts = new Map<string, number>()
    let sent = 0
    let settled = 0
    let errors = 0
    let open = 0
    let finished = false
    interface Connection {
      readonly socket: Socket
      /** When its current request was due (performance.now()); NaN when it has none. */
      due: number
      buffer: Buffer
    }
    const idle: Array<Connection> = []
    const queued: Array<number> = []
    const started = performance.now()
    const finish = () => {
      if (finished || settled < total) return
      finished = true
      for (const c of idle) c.socket.destroy()
      const summary = summarise(baseUrl, counts, errors)
      if (summary instanceof Error) return reject(summary)
      resolve(fromLatencies(summary.answered / durationS, summary.answered, summary.fiveHundreds, latencies, summary.note))
    }
    const settle = (connection: Connection, status: string | undefined) => {
      settled += 1
      if (status === undefined) errors += 1
      else {
        latencies.push(performance.now() - connection.due)
        counts.set(status, (counts.get(status) ?? 0) + 1)
      }
      connection.due = NaN
      connection.buffer = Buffer.alloc(0)
    }
    const send = (connection: Connection, due: number) => {
      connection.due = due
      const r = request.setupRequest ? request.setupRequest({ ...request }, {}) : request
      const body = r.body ?? ""
      connection.socket.write(
        `${r.method ?? "GET"} ${r.path ?? "/"} HTTP/1.1\r\n${fixedHeaders}` +
          `${body === "" ? "" : `content-length: ${Buffer.byteLength(body)}\r\n`}\r\n${body}`
      )
    }
    const free = (connection: Connection) => {
      const next = queued.shift()
      if (next === undefined) idle.push(connection)
      else send(connection, next)
    }
    /** A complete answer at the front of the buffer: its status and its length in bytes. */
    const parse = (buffer: Buffer): { readonly status: string; readonly length: number } | undefined => {
      const end = buffer.indexOf("\r\n\r\n")
      if (end < 0) return undefined
      const head = buffer.toString("latin1", 0, end)
      const status = head.slice(9, 12)
      const length = /\r\ncontent-length: *(\d+)/i.exec(head)
      if (length !== null) {
        const total = end + 4 + Number(length[1])
        return buffer.length >= total ? { status, length: total } : undefined
      }
      if (!/\r\ntransfer-encoding: *chunked/i.test(head)) return { status, length: end + 4 }
      const last = buffer.indexOf("\r\n0\r\n\r\n", end + 2)
      return last < 0 ? undefined : { status, length: last + 7 }
    }
    const connect = (due: number) => {
      open += 1
      const socket = createConnection({ host: hostname, port: Number(port), noDelay: true })
      const connection: Connection = { socket, due, buffer: Buffer.alloc(0) }
      socket.setTimeout(10_000, () => socket.destroy(new Error("timeout")))
      socket.once("connect", () => send(connection, connection.due))
      socket.on("data", (chunk: Buffer) => {
        connection.buffer = connection.buffer.length === 0 ? chunk : Buffer.concat([connection.buffer, chunk])
        const answer = parse(connection.buffer)
        if (answer === undefined) return
        settle(connection, answer.status)
        free(connection)
        finish()
      })
      // An error is followed by `close`, which counts the request it lost.
      socket.on("error", () => {})
      socket.once("close", () => {
        open -= 1
        const at = idle.indexOf(connection)
        if (at >= 0) idle.splice(at, 1)
        if (!Number.isNaN(connection.due)) {
          settle(connection, undefined)
          const next = queued.shift()
          if (next !== undefined) connect(next)
          finish()
        }
      })
    }
    const dispatch = (due: number) => {
      const connection = idle.pop()
      if (connection !== undefined) send(connection, due)
      else if (open < CONNECTIONS) connect(due)
      else queued.push(due)
    }
    const tick = () => {
      const dueNow = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1)
      while (sent < dueNow) dispatch(started + (sent++ * 1000) / rate)
      if (sent < total) setTimeout(tick, 1)
    }
    tick()
  })

/** Outbox rows still to publish (the relay's backlog). */
export const outboxPending = async (databaseUrl: string) =>
  Number((await adminQuery(databaseUrl, "SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"))[0]!["n"])

/**
 * Waits (at most 60 s) until the relay has published what the full-speed run left in the outbox, so
 * that the half-rate run measures requests, not requests competing with the relay's catch-up on
 * the full-speed run's events. Says what it waited for (in the run's note).
 */
export const outboxDrained = async (databaseUrl: string) => {
  const since = performance.now()
  const backlog = await outboxPending(databaseUrl)
  let left = backlog
  while (left > 0 && performance.now() - since < 60_000) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    left = await outboxPending(databaseUrl)
  }
  const waited = ((performance.now() - since) / 1000).toFixed(1)
  if (backlog === 0) return ""
  return left === 0 ? `outbox ${backlog} drained in ${waited} s; ` : `outbox ${left} of ${backlog} left after ${waited} s; `
}

/** The database's WAL insert position in bytes (its difference over a run: the WAL that run wrote). */
export const walPosition = async (databaseUrl: string) =>
  Number((await adminQuery(databaseUrl, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS b"))[0]!["b"])

/** `n` with `digits` decimals, "-" when it is not a number (a measure a run did not take). */
export const fixed = (digits: number) => (n: number) => (Number.isFinite(n) ? n.toFixed(digits) : "-")

/** The middle value (of an even count, the lower middle one: always one of the values measured). */
export const median = (values: ReadonlyArray<number>) => {
  const sorted = values.filter(Number.isFinite).sort((x, y) => x - y)
  return sorted.length === 0 ? NaN : sorted[Math.floor((sorted.length - 1) / 2)]!
}


/** A full-speed run with the serving process's CPU and memory over it. */
export interface Measured {
  readonly run: Run
  readonly cpuMsPerRequest: number
  readonly cores: number
  readonly rssMaxMiB: number
}

export const underLoad = async (pid: number | undefined, baseUrl: string, request: Request, durationS: number): Promise<Measured> => {
  const cpuBefore = cpuSeconds(pid)
  const started = process.hrtime.bigint()
  const rss: Array<number> = [rssMiB(pid)]
  const sampler = setInterval(() => rss.push(rssMiB(pid)), 500)
  const run = await load(baseUrl, request, durationS)
  clearInterval(sampler)
  rss.push(rssMiB(pid))
  const cpuSpent = cpuSeconds(pid) - cpuBefore
  const wallS = Number(process.hrtime.bigint() - started) / 1e9
  return { run, cpuMsPerRequest: (cpuSpent * 1000) / run.answered, cores: cpuSpent / wallS, rssMaxMiB: Math.max(...rss) }
}

/**
 * From the service's own metrics: SQL statements sent and their round trips' sum
 * (inventory_db_query_duration_seconds, every series of the service's pool) and reservation batches
 * (inventory_reservation_batch_size).
 */
export const serviceCounters = async (baseUrl: string) => {
  const text = await (await fetch(`${baseUrl}/metrics`, { headers: requestHeaders() })).text()
  const sum = (name: string) =>
    [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "gm"))].reduce((total, match) => total + Number(match[1]), 0)
  return {
    statements: sum("inventory_db_query_duration_seconds_count"),
    seconds: sum("inventory_db_query_duration_seconds_sum"),
    batches: sum("inventory_reservation_batch_size_count")
  }
}
