/**
 * Endurance (soak) run: the built service against a fresh PostgreSQL database, under a steady mixed
 * load for SOAK_MINUTES (default 10): reservations with short ttls (so the expiry sweeper works all
 * the time), releases, commits, adjustments and reads, at SOAK_RATE requests/s (default 150). Every
 * SOAK_SAMPLE_S seconds it records RSS, the V8 heap (from /metrics), CPU and the latency of that
 * interval; at the end it prints the samples, the heap's growth per minute after the warm-up
 * (least squares), and checks reconciliation. A leak shows as a heap that keeps growing. 404/409
 * answers are expected: the mix releases, commits and reads recent orders without waiting for them.
 *
 *   npm run bench:soak            SOAK_MINUTES=30 SOAK_RATE=200 npm run bench:soak
 */
import autocannon, { type Request, type Result } from "autocannon"
import { ALL_SCOPES, signToken } from "../test/support/auth.js"
import { adminQuery, cpuSeconds, log, rssMiB, withBenchService } from "./support.js"

const MINUTES = Number(process.env["SOAK_MINUTES"] ?? 10)
const RATE = Number(process.env["SOAK_RATE"] ?? 150)
const SAMPLE_S = Number(process.env["SOAK_SAMPLE_S"] ?? 30)
const VARIANTS = 1_000

interface Sample {
  readonly minute: number
  readonly rssMiB: number
  readonly heapMiB: number
  readonly cpuCores: number
  readonly requests: number
  readonly p99Ms: number
  readonly statuses: string
}

const heapUsedMiB = async (baseUrl: string) => {
  const text = await (await fetch(`${baseUrl}/metrics`)).text()
  const line = text.split("\n").find((l) => l.startsWith("nodejs_heap_size_used_bytes "))
  return line ? Number(line.split(" ")[1]) / 1024 / 1024 : NaN
}

/** Least-squares slope of y over x. */
const slope = (points: ReadonlyArray<readonly [number, number]>) => {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return den === 0 ? 0 : num / den
}

const main = async () => {
  const token = await signToken({ scope: ALL_SCOPES, sub: "soak", expiresIn: MINUTES * 60 + 600 })
  await withBenchService("soak", {}, async ({ baseUrl, databaseUrl, child }) => {
    await adminQuery(
      databaseUrl,
      `WITH v AS (INSERT INTO stock_levels (variant_id, on_hand) SELECT 'soak-' || g, 1000000000 FROM generate_series(1, ${VARIANTS}) g RETURNING variant_id)
       INSERT INTO inventory_history (variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason)
       SELECT variant_id, 'PURCHASE', 1000000000, 0, 1000000000, 0, 'soak load' FROM v`
    )
    let order = 0
    const variant = () => `soak-${1 + Math.floor(Math.random() * VARIANTS)}`
    const json = (body: unknown) => JSON.stringify(body)
    // A mix a checkout flow produces: reserve (short ttl: many expire), then release or commit some
    // of the recent orders, adjust stock, read levels and reservations.
    const requests: Array<Request> = [
      { method: "POST", path: "/v1/reservations", setupRequest: (r) => ({ ...r, body: json({ orderId: `s-${++order}`, lines: [{ variantId: variant(), quantity: 1 }, { variantId: variant(), quantity: 2 }], ttlSeconds: 5 }) }) },
      { method: "POST", setupRequest: (r) => ({ ...r, path: `/v1/reservations/s-${Math.max(1, order - 3)}/release` }) },
      { method: "POST", path: "/v1/reservations", setupRequest: (r) => ({ ...r, body: json({ orderId: `s-${++order}`, lines: [{ variantId: variant(), quantity: 1 }], ttlSeconds: 600 }) }) },
      { method: "POST", setupRequest: (r) => ({ ...r, path: `/v1/reservations/s-${Math.max(1, order - 1)}/commit` }) },
      { method: "POST", setupRequest: (r) => ({ ...r, path: `/v1/stock-levels/${variant()}/adjustments`, body: json({ type: "PURCHASE", quantity: 1 }) }) },
      { method: "GET", setupRequest: (r) => ({ ...r, path: `/v1/stock-levels/${variant()}` }) },
      { method: "GET", setupRequest: (r) => ({ ...r, path: `/v1/reservations/s-${Math.max(1, order)}` }) }
    ]
    const samples: Array<Sample> = []
    const started = Date.now()
    let lastCpu = cpuSeconds(child.pid)
    log(`soak: ${MINUTES} min at ${RATE} req/s, a sample every ${SAMPLE_S} s`)
    while (Date.now() - started < MINUTES * 60_000) {
      const latencies: Array<number> = []
      const result = await new Promise<Result>((resolve, reject) => {
        const instance = autocannon(
          {
            url: baseUrl,
            connections: 16,
            overallRate: RATE,
            duration: SAMPLE_S,
            headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
            requests
          },
          (error, r) => (error ? reject(error) : resolve(r))
        )
        instance.on("response", (_c, _s, _b, time) => latencies.push(time))
      })
      latencies.sort((a, b) => a - b)
      const cpu = cpuSeconds(child.pid)
      const sample: Sample = {
        minute: (Date.now() - started) / 60_000,
        rssMiB: rssMiB(child.pid),
        heapMiB: await heapUsedMiB(baseUrl),
        cpuCores: (cpu - lastCpu) / SAMPLE_S,
        requests: latencies.length,
        p99Ms: Math.round((latencies[Math.max(0, Math.ceil(latencies.length * 0.99) - 1)] ?? NaN) * 10) / 10,
        statuses: Object.entries(result.statusCodeStats).map(([code, c]) => `${code}×${c.count}`).join(" ")
      }
      lastCpu = cpu
      samples.push(sample)
      log(`t=${sample.minute.toFixed(1)} min rss=${sample.rssMiB.toFixed(0)} MiB heap=${sample.heapMiB.toFixed(0)} MiB cpu=${sample.cpuCores.toFixed(2)} p99=${sample.p99Ms} ms ${sample.statuses}`)
      if (Object.keys(result.statusCodeStats).some((code) => code.startsWith("5") || code === "401")) throw new Error(`unexpected answers: ${sample.statuses}`)
    }
    const settled = samples.filter((s) => s.minute >= Math.min(2, MINUTES / 3))
    const heapSlope = slope(settled.map((s) => [s.minute, s.heapMiB] as const))
    const rssSlope = slope(settled.map((s) => [s.minute, s.rssMiB] as const))
    const [drift] = await adminQuery(
      databaseUrl,
      `SELECT count(*)::int AS n FROM stock_levels s
        WHERE s.reserved <> COALESCE((SELECT sum(l.quantity) FROM reservation_lines l JOIN reservations r USING (order_id)
                                       WHERE l.variant_id = s.variant_id AND r.status = 'ACTIVE'), 0)`
    )
    const lines = [
      `Soak: ${MINUTES} min at ${RATE} req/s (mixed reserve/release/commit/adjust/read), node ${process.version}`,
      "",
      "| minute | RSS MiB | heap MiB | CPU cores | requests | p99 ms |",
      "|---:|---:|---:|---:|---:|---:|",
      ...samples.map((s) => `| ${s.minute.toFixed(1)} | ${s.rssMiB.toFixed(0)} | ${s.heapMiB.toFixed(0)} | ${s.cpuCores.toFixed(2)} | ${s.requests} | ${s.p99Ms} |`),
      "",
      `after the warm-up: heap ${heapSlope >= 0 ? "+" : ""}${heapSlope.toFixed(2)} MiB/min, RSS ${rssSlope >= 0 ? "+" : ""}${rssSlope.toFixed(2)} MiB/min`,
      `reserved vs ACTIVE reservation lines after the run: ${drift?.n ?? "?"} variant(s) drifted`
    ]
    process.stdout.write(lines.join("\n") + "\n")
  })
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
  process.exit(1)
})
