/**
 * Relay benchmark against the real RabbitMQ and PostgreSQL (npm run bench:relay).
 *
 * 1. Drain rate: the service runs with its broker connection cut (a TCP proxy); a backlog of
 *    BENCH_BACKLOG outbox rows over 1,000 aggregates is written; the proxy is restored and the time
 *    until every row is confirmed and marked gives events per second.
 * 2. Commit-to-confirm latency while reservations run at a fixed rate (BENCH_RESERVATIONS_PER_S,
 *    each single-line reservation writes 2 events: InventoryReserved + StockLevelChanged), measured
 *    in the database as published_at - created_at of each row: an upper bound (created_at is the
 *    row's write, the batch's last statement before COMMIT (migration 0090), published_at the mark's
 *    start, after the broker's confirm). Beside it, from the reservation's transaction start.
 *
 * 3. The broker's own floor, first, with nothing else running: the same client library (amqplib)
 *    publishes messages of the drain's size and properties (persistent, mandatory, with confirms) to
 *    the same durable queue, as fast as a window of FLOOR_WINDOW unconfirmed messages allows (the
 *    relay's 4 batches of 1,000 in flight), and then evenly at BENCH_RESERVATIONS_PER_S × 2 per
 *    second for the confirm latency alone. What the relay adds is its ratio to these.
 * 4. The broker's confirm latency under that load: while phase 2 runs, amqplib alone publishes
 *    PROBE_PER_S persistent, mandatory messages per second (evenly) to a durable queue of their own
 *    and times each publish → confirm: what the broker (sharing the machine with the service,
 *    PostgreSQL and the load) takes by itself, beside the relay's figures.
 *
 * The service runs as the image runs it (`node dist/src/main.js`, production mode, its log to a file),
 * connected to the broker through the proxy for phase 1 and directly for phase 2; results are printed
 * as JSON. With SERVICE_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" the service writes a CPU profile.
 */
import type { ConfirmChannel } from "amqplib"
import { randomUUID } from "node:crypto"
import { readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { publishOptions } from "../src/layers/Messaging.js"
import { toMessage } from "../src/outbox/Relay.js"
import { bearer } from "../test/support/auth.js"
import { connectPeer, createTestVhost, startBrokerProxy } from "../test/support/broker.js"
import { createTestDatabase, insertEventBacklog, query, type TestDatabase } from "../test/support/database.js"
import { analyzeAfterWarmUp, buildService, startBuiltService } from "./support.js"

const BACKLOG = Number(process.env["BENCH_BACKLOG"] ?? 50_000)
const RESERVATIONS_PER_S = Number(process.env["BENCH_RESERVATIONS_PER_S"] ?? 500)
const LOAD_SECONDS = Number(process.env["BENCH_LOAD_SECONDS"] ?? 20)
/**
 * BENCH_NOTIFY=off: the relay without its NOTIFY wake-up (migration 0082's switch and OUTBOX_LISTEN=false),
 * to tell the writers' share of its cost (notifying commits are serialised) from the relay's gains.
 */
const NOTIFY = process.env["BENCH_NOTIFY"] !== "off"
/** BENCH_PHASES=drain or latency runs only that half (default both). */
const PHASES = (process.env["BENCH_PHASES"] ?? "drain,latency").split(",")

/** p50 / p90 / p99 / max of `values`, in ms with one decimal (nearest rank). */
const percentiles = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => Number((sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN).toFixed(1))
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) }
}

/** The service's CPU seconds so far and its event-loop lag since the previous scrape (ProcessMetrics.ts). */
const processMetrics = async (baseUrl: string, headers: Record<string, string>) => {
  const text = await (await fetch(`${baseUrl}/metrics`, { headers })).text()
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text)?.[1] ?? NaN)
  const ms = (name: string) => Number((value(name) * 1000).toFixed(1))
  return {
    cpuSeconds: value("process_cpu_seconds_total"),
    lagMeanMs: ms("nodejs_eventloop_lag_mean_seconds"),
    lagP99Ms: ms("nodejs_eventloop_lag_p99_seconds"),
    lagMaxMs: ms("nodejs_eventloop_lag_max_seconds")
  }
}

/** Unconfirmed messages the broker floor keeps in flight: the relay's MAX_BATCHES_IN_FLIGHT × OUTBOX_BATCH_SIZE. */
const FLOOR_WINDOW = 4 * 1000
/** The under-load probe's rate: low, so it measures the broker's latency without adding much load. */
const PROBE_PER_S = 100

/** A message like the drain's rows (the same envelope), built and given its properties as the relay does. */
const floorMessage = (n: number) => {
  const eventId = randomUUID()
  const aggregateId = `floor-${n % 1000}`
  const occurredAt = new Date().toISOString()
  const message = toMessage({
    id: String(n), eventId, eventType: "StockLevelChangedEvent", routingKey: "inventory.stock_level_changed", aggregateId,
    payload: JSON.stringify({
      eventId, eventType: "StockLevelChangedEvent", eventVersion: 1, occurredAt, aggregateType: "StockLevel", aggregateId,
      correlationId: "bench",
      data: { variantId: aggregateId, onHand: n, reserved: 0, available: n, version: n, changeType: "PURCHASE", onHandChange: 1, reservedChange: 0 }
    }),
    occurredAt, correlationId: "bench", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: null,
    attempts: 0, createdAt: new Date()
  })
  return { message, body: Buffer.from(message.body, "utf8"), options: publishOptions(message) }
}

/**
 * The broker's limits on this machine, without the service or the database: `count` messages as fast
 * as FLOOR_WINDOW unconfirmed allow, then `perSecond` evenly for `seconds`, publish → confirm each.
 */
const brokerFloor = async (channel: ConfirmChannel, count: number, perSecond: number, seconds: number) => {
  const publish = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const { message, body, options } = floorMessage(n)
      channel.publish(message.exchange, message.routingKey, body, options, (error: unknown) => (error ? reject(error) : resolve()))
    })
  const started = performance.now()
  await new Promise<void>((resolve, reject) => {
    let sent = 0
    let confirmed = 0
    const pump = () => {
      while (sent < count && sent - confirmed < FLOOR_WINDOW) {
        publish(sent++).then(() => (++confirmed === count ? resolve() : pump()), reject)
      }
    }
    pump()
  })
  const drainSeconds = (performance.now() - started) / 1000
  const latencies: Array<number> = []
  const paced: Array<Promise<void>> = []
  const pacedStart = performance.now()
  for (let i = 0; i < perSecond * seconds; i++) {
    const wait = pacedStart + (i * 1000) / perSecond - performance.now()
    if (wait > 0) await sleep(wait)
    const sentAt = performance.now()
    paced.push(publish(i).then(() => void latencies.push(performance.now() - sentAt)))
  }
  await Promise.all(paced)
  return {
    messagesPerSecond: Math.round(count / drainSeconds),
    window: FLOOR_WINDOW,
    confirmMsAtRate: { perSecond, ...percentiles(latencies) }
  }
}

/** Publishes PROBE_PER_S messages per second evenly until `stop` resolves; the publish → confirm latencies. */
const confirmProbe = async (channel: ConfirmChannel, queue: string, stop: Promise<void>) => {
  let stopped = false
  void stop.then(() => (stopped = true))
  const latencies: Array<number> = []
  const confirms: Array<Promise<void>> = []
  const started = performance.now()
  for (let i = 0; !stopped; i++) {
    const wait = started + (i * 1000) / PROBE_PER_S - performance.now()
    if (wait > 0) await sleep(wait)
    const { body, options } = floorMessage(i)
    const sentAt = performance.now()
    confirms.push(
      new Promise<void>((resolve, reject) =>
        channel.publish("", queue, body, options, (error: unknown) => (error ? reject(error) : resolve()))
      ).then(() => void latencies.push(performance.now() - sentAt))
    )
  }
  await Promise.all(confirms)
  return { perSecond: PROBE_PER_S, ...percentiles(latencies) }
}

/** The services' standard output (read after the run for BENCH_LOG_LEVEL=debug's batch lines). */
const serviceLog = join(tmpdir(), `bench-relay-${process.pid}.log`)

/**
 * The built service as the image runs it (production mode, its events log written to a file, not
 * read by this process while it drives the load), relaying to `amqpUrl`.
 */
const startRelayService = (database: TestDatabase, amqpUrl: string, readyPath: string) =>
  startBuiltService(
    database.url,
    {
      NODE_ENV: "production",
      AMQP_URL: amqpUrl,
      LOG_LEVEL: process.env["BENCH_LOG_LEVEL"] ?? "info",
      DB_POOL_MAX: "10",
      OUTBOX_LISTEN: String(NOTIFY)
    },
    { stdoutFile: serviceLog, readyPath }
  )

type RelayService = Awaited<ReturnType<typeof startRelayService>>

const progress = (text: string) => process.stderr.write(`[bench] ${text}\n`)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const pending = async (url: string) =>
  Number((await query<{ n: string }>(url, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"))[0]!.n)

const waitUntil = async (check: () => Promise<boolean>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out")
    await sleep(20)
  }
}

const main = async () => {
  buildService()
  const vhost = await createTestVhost("bench")
  const database = await createTestDatabase("bench")
  const proxy = await startBrokerProxy()
  const peer = await connectPeer(vhost.url())
  const results: Record<string, unknown> = {}
  try {
    // A durable queue bound to everything: the broker persists each message as a subscriber's would.
    await peer.channel.assertExchange("inventory.unrouted", "fanout", { durable: true })
    await peer.channel.assertExchange("inventory.events", "topic", { durable: true, alternateExchange: "inventory.unrouted" })
    await peer.channel.assertQueue("bench.all", { durable: true })
    await peer.channel.bindQueue("bench.all", "inventory.events", "#")

    // --- 3. the broker's floor, before anything else runs --------------------------------------
    progress("broker floor: amqplib alone, persistent messages with confirms")
    const floorChannel = await peer.connection.createConfirmChannel()
    results["brokerFloor"] = await brokerFloor(floorChannel, Math.min(BACKLOG, 50_000), RESERVATIONS_PER_S * 2, 10)
    await floorChannel.close()
    await peer.channel.purgeQueue("bench.all")
    progress(`broker floor: ${JSON.stringify(results["brokerFloor"])}`)

    // --- 1. drain rate -------------------------------------------------------------------------
    proxy.cut()
    // Read by every new connection; the service migrates after this, so the trigger exists by then.
    if (!NOTIFY) await query(database.url, `ALTER DATABASE ${database.name} SET inventory.outbox_notify = off`)
    /** The one service running at a time: stopped after each phase, and when the bench fails. */
    let service: RelayService | undefined
    try {
      if (PHASES.includes("drain")) {
        progress("starting the service (its broker connection cut)")
        const draining = await startRelayService(database, vhost.url(proxy.port), "/health/live")
        service = draining
        await insertEventBacklog(database.url, BACKLOG, "bench-")
        progress(`backlog of ${BACKLOG} written; restoring the broker`)
        proxy.restore()
        // Time from the reconnection (the service's backoff while the proxy was cut is not the relay's speed).
        await waitUntil(async () => {
          const res = await fetch(`${draining.baseUrl}/health/ready`)
          const body = (await res.json()) as { checks?: { broker?: { status?: string } } }
          return body.checks?.broker?.status === "up"
        }, 60_000)
        const started = Date.now()
        await waitUntil(async () => (await pending(database.url)) === 0, 600_000)
        const seconds = (Date.now() - started) / 1000
        const { messageCount } = await peer.channel.checkQueue("bench.all")
        const floor = results["brokerFloor"] as { readonly messagesPerSecond: number }
        results["drain"] = {
          events: BACKLOG,
          seconds: Number(seconds.toFixed(2)),
          eventsPerSecond: Math.round(BACKLOG / seconds),
          ofBrokerFloor: Number((BACKLOG / seconds / floor.messagesPerSecond).toFixed(2)),
          inQueue: messageCount
        }
        await peer.channel.purgeQueue("bench.all")
        await query(database.url, "DELETE FROM outbox")

        progress(`drained: ${JSON.stringify(results["drain"])}`)
      }
      // The latency phase's service talks to the broker directly: the proxy lives in this process,
      // whose event loop also drives the load, and would add its delays to every publish and confirm.
      await service?.stop()
      if (PHASES.includes("latency")) {
        progress("starting the service (connected to the broker directly)")
        const loaded = await startRelayService(database, vhost.url(), "/health/ready")
        service = loaded
        // --- 2. commit-to-confirm latency under reservation load ---------------------------------
        // The service verifies the test issuer's tokens (bench/support.ts's environment); one token with every scope.
        const headers = { "content-type": "application/json", ...(await bearer()) }
        const variants = Array.from({ length: 100 }, (_, i) => `lat-${i}`)
        for (const id of variants) {
          const put = await fetch(`${loaded.baseUrl}/v1/stock-levels/${id}`, { method: "PUT", headers, body: "{}" })
          const purchase = await fetch(`${loaded.baseUrl}/v1/stock-levels/${id}/adjustments`, {
            method: "POST",
            headers,
            body: JSON.stringify({ type: "PURCHASE", quantity: 1_000_000 })
          })
          if (put.status >= 300 || purchase.status !== 200) throw new Error(`setup of ${id} failed: ${put.status} ${purchase.status}`)
        }
        // Warm-up: 2,000 reservations, then ANALYZE, so the load meets a database in service
        // (analyzeAfterWarmUp).
        for (let chunk = 0; chunk < 40; chunk++) {
          await Promise.all(
            Array.from({ length: 50 }, (_, i) =>
              fetch(`${loaded.baseUrl}/v1/reservations`, {
                method: "POST",
                headers,
                body: JSON.stringify({ orderId: `bench-warm-${chunk * 50 + i}`, lines: [{ variantId: variants[i % variants.length], quantity: 1 }] })
              }).then(async (res) => {
                await res.arrayBuffer()
                if (res.status !== 201) throw new Error(`warm-up reservation answered ${res.status}`)
              })
            )
          )
        }
        await waitUntil(async () => (await pending(database.url)) === 0, 60_000)
        await analyzeAfterWarmUp(database.url)
        await query(database.url, "DELETE FROM outbox")
        progress("reservation load")
        await peer.channel.assertQueue("bench.probe", { durable: true })
        const probeChannel = await peer.connection.createConfirmChannel()
        let endLoad = () => {}
        const loadEnded = new Promise<void>((resolve) => (endLoad = resolve))
        const probe = confirmProbe(probeChannel, "bench.probe", loadEnded)
        const processBefore = await processMetrics(loaded.baseUrl, headers)
        const total = RESERVATIONS_PER_S * LOAD_SECONDS
        const statuses = new Map<number, number>()
        /** When each reservation's 201 arrived: after its transaction committed. */
        const answeredAt = new Map<string, number>()
        const loadStarted = Date.now()
        const inFlight: Array<Promise<void>> = []
        for (let i = 0; i < total; i++) {
          // Open loop: request i leaves at its scheduled time, whatever the earlier ones are doing.
          const due = loadStarted + (i * 1000) / RESERVATIONS_PER_S
          const wait = due - Date.now()
          if (wait > 0) await sleep(wait)
          const orderId = `bench-order-${i}`
          inFlight.push(
            fetch(`${loaded.baseUrl}/v1/reservations`, {
              method: "POST",
              headers,
              body: JSON.stringify({ orderId, lines: [{ variantId: variants[i % variants.length], quantity: 1 }] })
            }).then(
              async (res) => {
                if (res.status === 201) answeredAt.set(orderId, Date.now())
                await res.arrayBuffer()
                statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
              },
              () => {
                statuses.set(0, (statuses.get(0) ?? 0) + 1)
              }
            )
          )
        }
        await Promise.all(inFlight)
        const loadSeconds = (Date.now() - loadStarted) / 1000
        endLoad()
        const brokerConfirmUnderLoadMs = await probe
        await probeChannel.close()
        await peer.channel.deleteQueue("bench.probe")
        // Scraping resets the lag window: these cover the load (10 ms resolution).
        const processAfter = await processMetrics(loaded.baseUrl, headers)
        await waitUntil(async () => (await pending(database.url)) === 0, 120_000)
        const [latency] = await query<{ events: string; p50: number; p90: number; p99: number; max: number }>(
          database.url,
          `SELECT count(*) AS events,
                  percentile_cont(0.5)  WITHIN GROUP (ORDER BY ms) AS p50,
                  percentile_cont(0.9)  WITHIN GROUP (ORDER BY ms) AS p90,
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99,
                  max(ms) AS max
             FROM (SELECT EXTRACT(EPOCH FROM published_at - created_at) * 1000 AS ms FROM outbox) AS t`
        )
        // Each reservation's InventoryReservedEvent (aggregate = order) from its transaction's start
        // (the reservation row's created_at): to the mark, to its 201 (batching, transaction, HTTP),
        // and 201 → confirmed and marked (the relay's share; the 201 leaves after COMMIT, so this
        // slightly under-counts it).
        const reserved = await query<{ aggregate_id: string; created_ms: number; published_ms: number }>(
          database.url,
          `SELECT o.aggregate_id, EXTRACT(EPOCH FROM r.created_at) * 1000 AS created_ms, EXTRACT(EPOCH FROM o.published_at) * 1000 AS published_ms
             FROM outbox o JOIN reservations r ON r.order_id = o.aggregate_id
            WHERE o.event_type = 'InventoryReservedEvent'`
        )
        const toAnswer: Array<number> = []
        const answerToConfirm: Array<number> = []
        const startToConfirm = reserved.map((row) => Number(row.published_ms) - Number(row.created_ms))
        for (const row of reserved) {
          const answered = answeredAt.get(row.aggregate_id)
          if (answered === undefined) continue
          toAnswer.push(answered - Number(row.created_ms))
          answerToConfirm.push(Number(row.published_ms) - answered)
        }
        results["latency"] = {
          reservations: total,
          reservationsPerSecond: Math.round(total / loadSeconds),
          eventsPerSecond: Math.round(Number(latency!.events) / loadSeconds),
          httpStatuses: Object.fromEntries(statuses),
          events: Number(latency!.events),
          commitToConfirmMs: {
            p50: Number(Number(latency!.p50).toFixed(1)),
            p90: Number(Number(latency!.p90).toFixed(1)),
            p99: Number(Number(latency!.p99).toFixed(1)),
            max: Number(Number(latency!.max).toFixed(1))
          },
          // The reservations' events from their transaction's start (the figure before migration 0090).
          transactionStartToConfirmMs: percentiles(startToConfirm),
          transactionStartToAnswerMs: percentiles(toAnswer),
          answerToConfirmMs: percentiles(answerToConfirm),
          // amqplib alone, beside the load, on the same broker (phase 4).
          brokerConfirmUnderLoadMs,
          // The relay shares the service's event loop with the HTTP load: its delay is every round trip's.
          serviceCpuShare: Number(((processAfter.cpuSeconds - processBefore.cpuSeconds) / loadSeconds).toFixed(2)),
          eventLoopLagMs: { mean: processAfter.lagMeanMs, p99: processAfter.lagP99Ms, max: processAfter.lagMaxMs }
        }
      }
    } finally {
      await service?.stop()
      if (process.env["BENCH_LOG_LEVEL"] === "debug") {
        for (const line of readFileSync(serviceLog, "utf8").split("\n")) if (line.includes("batch relayed")) progress(line)
      }
      rmSync(serviceLog, { force: true })
    }
  } finally {
    await peer.close()
    await proxy.close()
    await database.drop()
    await vhost.drop()
  }
  process.stdout.write(JSON.stringify({ notify: NOTIFY, ...results }, null, 2) + "\n")
}

main().catch((error) => {
  process.stderr.write(String(error?.stack ?? error) + "\n")
  process.exit(1)
})
