/**
 * `npm run bench`: the reservation hot path under load, next to what PostgreSQL itself can do.
 *
 * Starts the built service (node dist/src/main.js) on a fresh database, loads 10,000 variants, then for
 * each scenario measures with autocannon over CONNECTIONS HTTP connections (a) single-line
 * reservations spread uniformly over the variants, (b) every reservation on one hot variant,
 * (c) GET /v1/stock-levels/{id}, (d) two-line reservations over variants stocked at three locations
 * (see LOC_* below), at full speed and then at half the rate reached, and for (a)–(c) runs pgbench
 * with the same number of connections on the same SQL (bench/*.pgbench.sql). Prints one table.
 * Not part of the test suite; numbers are reported, not asserted.
 *
 * Environment: BENCH_DATABASE_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres),
 * BENCH_CONNECTIONS (64), BENCH_DURATION_S (15), BENCH_DB_POOL_MAX (service pool, default 10),
 * BENCH_LOC_VARIANTS (variants of scenario (d), default 50,000), BENCH_KEEP_DB=1. The service trusts a key the bench makes (the test issuer) and the bench sends a token
 * signed with it; any answer other than 2xx/409 stops the bench (a broken setup measures nothing).
 */
import autocannon, { type Request, type Result } from "autocannon"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { ALL_SCOPES, signToken } from "../test/support/auth.js"
import { adminQuery, cpuSeconds, loadVariants, log, rssMiB, withBenchService } from "./support.js"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..")
const CONNECTIONS = Number(process.env["BENCH_CONNECTIONS"] ?? 64)
const DURATION_S = Number(process.env["BENCH_DURATION_S"] ?? 15)
const HALF_RATE_DURATION_S = Math.max(5, Math.round(DURATION_S * 0.66))
const POOL_MAX = process.env["BENCH_DB_POOL_MAX"] ?? "10"
const VARIANTS = 10_000
const HOT = "bench-0"
const STOCK = 1_000_000_000
/**
 * Scenario (d): `default` plus two locations after it in priority order, each variant stocked
 * 40/30/30 % (4/3/3 units) and every line asking 5: a variant's first line is held 4 at `default` + 1
 * at `bench-east`, its second 2 at `bench-east` + 3 at `bench-west` (PRIORITY allocation), a third is
 * refused (409). So every reserved line splits; the variants are many for the stock to last the runs
 * (409s are counted in the note).
 */
const LOC_VARIANTS = Number(process.env["BENCH_LOC_VARIANTS"] ?? 50_000)
const LOC_LOCATIONS = [
  { locationId: "bench-east", priority: 10 },
  { locationId: "bench-west", priority: 20 }
]
const LOC_SPREAD = [
  { locationId: "default", onHand: 4 },
  { locationId: "bench-east", onHand: 3 },
  { locationId: "bench-west", onHand: 3 }
]
const LOC_LINE_QUANTITY = 5

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

interface Measure {
  readonly rate: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly note: string
}

const fromLatencies = (rate: number, latenciesMs: Array<number>, note: string): Measure => {
  latenciesMs.sort((a, b) => a - b)
  return { rate, p50: percentile(latenciesMs, 50), p95: percentile(latenciesMs, 95), p99: percentile(latenciesMs, 99), note }
}

/** autocannon against the service; latencies of every response, throughput of 2xx/4xx answers (no 5xx expected). */
const load = (baseUrl: string, request: Request, durationS: number, overallRate?: number) =>
  new Promise<Measure>((resolve, reject) => {
    const latencies: Array<number> = []
    const headers: Record<string, string> = { "content-type": "application/json", authorization: `Bearer ${token}` }
    const instance = autocannon(
      {
        url: baseUrl,
        // autocannon paces each connection at overallRate / connections: keep that at least 1 req/s.
        connections: overallRate ? Math.min(CONNECTIONS, overallRate) : CONNECTIONS,
        duration: durationS,
        headers,
        requests: [request],
        ...(overallRate ? { overallRate } : {})
      },
      (error, result: Result) => {
        if (error) return reject(error)
        const answered = Object.values(result.statusCodeStats).reduce((s, c) => s + c.count, 0)
        const fiveHundreds = Object.entries(result.statusCodeStats).filter(([code]) => code.startsWith("5")).reduce((s, [, c]) => s + c.count, 0)
        const codes = Object.entries(result.statusCodeStats).map(([code, c]) => `${code}×${c.count}`).join(" ")
        const unexpected = Object.keys(result.statusCodeStats).filter((code) => !/^(2\d\d|409|5\d\d)$/.test(code))
        if (unexpected.length > 0) return reject(new Error(`unexpected answers ${codes}: the bench's setup is broken`))
        resolve(fromLatencies(answered / result.duration, latencies, `${codes}${fiveHundreds > 0 ? " (5xx!)" : ""}${result.errors ? ` errors×${result.errors}` : ""}`))
      }
    )
    instance.on("response", (_client, _status, _bytes, responseTime) => latencies.push(responseTime))
  })

/** No pgbench counterpart (scenario (d)): the columns show "-". */
const NOT_MEASURED: Measure = { rate: NaN, p50: NaN, p95: NaN, p99: NaN, note: "not run (no SQL counterpart)" }

/** pgbench on the same SQL with as many connections; latencies from its per-transaction log. */
const pgbench = (databaseUrl: string, script: string, defines: Record<string, string | number>): Measure => {
  const logDir = mkdtempSync(join(tmpdir(), "pgbench-"))
  try {
    const url = new URL(databaseUrl)
    const args = [
      "-h", url.hostname, "-p", url.port || "5432", "-U", decodeURIComponent(url.username || "postgres"),
      "-n", "-M", "prepared", "-c", String(CONNECTIONS), "-j", "2", "-T", String(DURATION_S),
      "-l", "--log-prefix", join(logDir, "tx"),
      ...Object.entries(defines).flatMap(([k, v]) => ["-D", `${k}=${v}`]),
      "-f", join(ROOT, "bench", script), url.pathname.slice(1)
    ]
    const run = spawnSync("pgbench", args, { encoding: "utf8", env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) } })
    const tps = Number(/tps = ([\d.]+)/.exec(run.stdout)?.[1] ?? NaN)
    const failed = /number of failed transactions: (\d+)/.exec(run.stdout)?.[1] ?? "?"
    if (run.status !== 0) log(`pgbench ${script} exited ${run.status}: ${run.stderr.split("\n").slice(-3).join(" ")}`)
    const latencies: Array<number> = []
    for (const file of readdirSync(logDir)) {
      for (const line of readFileSync(join(logDir, file), "utf8").split("\n")) {
        const fields = line.split(" ")
        if (fields.length >= 3) latencies.push(Number(fields[2]) / 1000)
      }
    }
    return fromLatencies(tps, latencies, `failed×${failed}`)
  } finally {
    rmSync(logDir, { recursive: true, force: true })
  }
}


/** Every scope, valid for the whole run. */
let token = ""

const main = async () => {
  token = await signToken({ scope: ALL_SCOPES, sub: "bench", expiresIn: 3600 })
  await withBenchService("bench", { DB_POOL_MAX: POOL_MAX }, async ({ baseUrl, databaseUrl, child }) => {
    log(`service up on ${baseUrl} (pool ${POOL_MAX}); loading ${VARIANTS} variants + the hot one`)
    await loadVariants(databaseUrl, "bench-", 0, VARIANTS, [{ locationId: "default", onHand: STOCK }])
    log(`scenario (d): locations ${LOC_LOCATIONS.map((l) => l.locationId).join(", ")}; loading ${LOC_VARIANTS} variants stocked at three locations`)
    for (const { locationId, priority } of LOC_LOCATIONS) {
      const response = await fetch(`${baseUrl}/v1/locations/${locationId}`, {
        method: "PUT",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ name: `Bench ${locationId}`, priority })
      })
      if (response.status !== 201 && response.status !== 200) throw new Error(`PUT /v1/locations/${locationId} answered ${response.status}`)
    }
    await loadVariants(databaseUrl, "loc-", 1, LOC_VARIANTS, LOC_SPREAD)
    await adminQuery(databaseUrl, "VACUUM ANALYZE")

    let order = 0
    const reserve = (variant: () => string): Request => ({
      method: "POST",
      path: "/v1/reservations",
      setupRequest: (request) => ({
        ...request,
        body: JSON.stringify({ orderId: `b-${++order}`, lines: [{ variantId: variant(), quantity: 1 }] })
      })
    })
    const uniformVariant = () => `bench-${1 + Math.floor(Math.random() * VARIANTS)}`
    /** Two lines on two different variants of scenario (d). */
    const reserveSplit: Request = {
      method: "POST",
      path: "/v1/reservations",
      setupRequest: (request) => {
        const first = 1 + Math.floor(Math.random() * LOC_VARIANTS)
        const second = 1 + ((first + Math.floor(Math.random() * (LOC_VARIANTS - 1))) % LOC_VARIANTS)
        const lines = [first, second].map((n) => ({ variantId: `loc-${n}`, quantity: LOC_LINE_QUANTITY }))
        return { ...request, body: JSON.stringify({ orderId: `b-${++order}`, lines }) }
      }
    }
    const getLevel: Request = { method: "GET", setupRequest: (request) => ({ ...request, path: `/v1/stock-levels/${uniformVariant()}` }) }

    log("warm-up (3 s)")
    await load(baseUrl, reserve(uniformVariant), 3)
    await load(baseUrl, getLevel, 2)

    const scenarios = [
      { name: "(a) reserve, uniform over 10,000 variants", request: reserve(uniformVariant), script: "reserve.pgbench.sql", defines: { lo: 1, hi: VARIANTS } },
      { name: "(b) reserve, one hot variant", request: reserve(() => HOT), script: "reserve.pgbench.sql", defines: { lo: 0, hi: 0 } },
      { name: "(c) GET /v1/stock-levels/{id}", request: getLevel, script: "get.pgbench.sql", defines: {} },
      { name: "(d) reserve 2 lines, 3 locations 40/30/30 %, split by priority", request: reserveSplit, script: undefined, defines: {} }
    ]
    const rows: Array<{ name: string; service: Measure; half: Measure; db: Measure; cpuMsPerRequest: number; cores: number; rss: Array<number> }> = []
    for (const scenario of scenarios) {
      log(`${scenario.name}: service, ${DURATION_S} s at full speed`)
      const cpuBefore = cpuSeconds(child.pid)
      // Memory and CPU under load, for sizing the service's requests and limits.
      const rss: Array<number> = []
      const sampler = setInterval(() => rss.push(rssMiB(child.pid)), 500)
      const service = await load(baseUrl, scenario.request, DURATION_S)
      clearInterval(sampler)
      // The service's own CPU per request: meaningful even on a busy machine, unlike req/s.
      const cpuSpent = cpuSeconds(child.pid) - cpuBefore
      const cpuMsPerRequest = (cpuSpent * 1000) / (service.rate * DURATION_S)
      const cores = cpuSpent / DURATION_S
      const halfRate = Math.max(1, Math.floor(service.rate / 2))
      log(`${scenario.name}: service, ${HALF_RATE_DURATION_S} s at ${halfRate} req/s`)
      const half = await load(baseUrl, scenario.request, HALF_RATE_DURATION_S, halfRate)
      if (scenario.script !== undefined) log(`${scenario.name}: pgbench, ${DURATION_S} s`)
      const db = scenario.script === undefined ? NOT_MEASURED : pgbench(databaseUrl, scenario.script, scenario.defines)
      rows.push({ name: scenario.name, service, half, db, cpuMsPerRequest, cores, rss })
    }

    const drift = await adminQuery(
      databaseUrl,
      `SELECT count(*)::int AS n FROM stock_levels s
        WHERE s.reserved <> coalesce((SELECT sum(l.quantity) FROM reservation_lines l JOIN reservations r USING (order_id)
                                       WHERE r.status = 'ACTIVE' AND l.variant_id = s.variant_id), 0)`
    )

    const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "-")
    const count = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : "-")
    // Scenario (d): how the lines were held (allocations per line), for the note under the table.
    const split = await adminQuery(
      databaseUrl,
      `SELECT count(*)::int AS lines, count(*) FILTER (WHERE n > 1)::int AS split
         FROM (SELECT count(*) AS n FROM reservation_allocations WHERE variant_id LIKE 'loc-%' GROUP BY order_id, variant_id) a`
    )
    const lines = [
      `Inventory Service benchmark: ${CONNECTIONS} connections, ${DURATION_S} s per run, service pool ${POOL_MAX}, node ${process.version}`,
      "",
      "| scenario | service req/s | pgbench tps | service/pgbench | service p50/p95/p99 ms (full speed) | pgbench p50/p95/p99 ms | service at half rate: req/s, p50/p95/p99 ms |",
      "|---|---:|---:|---:|---|---|---|",
      ...rows.map(
        (r) =>
          `| ${r.name} | ${r.service.rate.toFixed(0)} | ${count(r.db.rate)} | ${Number.isFinite(r.db.rate) ? `${(r.service.rate / r.db.rate * 100).toFixed(0)}%` : "-"} | ` +
          `${ms(r.service.p50)} / ${ms(r.service.p95)} / ${ms(r.service.p99)} | ${ms(r.db.p50)} / ${ms(r.db.p95)} / ${ms(r.db.p99)} | ` +
          `${r.half.rate.toFixed(0)}: ${ms(r.half.p50)} / ${ms(r.half.p95)} / ${ms(r.half.p99)} |`
      ),
      "",
      ...rows.map(
        (r) =>
          `${r.name}: service ${r.service.note}, ${r.cpuMsPerRequest.toFixed(2)} ms of service CPU per request ` +
          `(${r.cores.toFixed(2)} cores, RSS ${Math.min(...r.rss).toFixed(0)}–${Math.max(...r.rss).toFixed(0)} MiB at full speed); half rate ${r.half.note}; pgbench ${r.db.note}`
      ),
      `machine load (1/5/15 min) at the end: ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")} on ${availableParallelism()} cores`,
      `reserved vs ACTIVE reservation lines after the run: ${drift[0]!.n} variant(s) drifted`,
      `(d): ${split[0]!.split} of ${split[0]!.lines} reserved lines split over two locations`,
      "Targets (reported, not asserted): (a) service >= 50% of pgbench tps; p99 < 25 ms at half the maximum rate."
    ]
    process.stdout.write(lines.join("\n") + "\n")
  })
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`)
  process.exit(1)
})
