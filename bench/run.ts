/**
 * `npm run bench`: the service under load next to the limits it is judged against, measured in one
 * run, and one table of the targets (issue 13) with PASS/MISS.
 *
 * Starts the built service (node dist/src/main.js) on a fresh database, loads 10,000 variants (and
 * the hot one, and the 50,000 of (d)), and measures with autocannon over CONNECTIONS connections:
 *   (a) single-unit reservations uniform over the 10,000 variants, (b) all on one hot variant,
 *   (c) GET /v1/stock-levels/{id}, (d) two-line reservations over variants stocked at three
 *   locations (LOC_* below) (and once, after the rounds, at full speed only: (e) adjustments of the
 *   hot variant, one transaction each, not batched),
 * each at full speed (closed loop, autocannon) and then, once the relay has drained the outbox the
 * full-speed run filled, at half the rate reached, evenly spaced (open loop, `paced`; the p99
 * target). Beside them, in the same
 * run and on the same database: two floor servers of (c)'s endpoint (bench/floor-node.ts, bare
 * node:http + pg; bench/floor-effect.ts, a minimal Effect HttpApi + @effect/sql-pg), both compiled
 * into dist/bench and run with the same `node` as the service, and pgbench with as many connections
 * on bench/reserve.pgbench.sql (uniform, and the same SQL on the hot variant: the one-reservation
 * transaction, unbatched) and bench/get.pgbench.sql. Then the service's own reconciliation.
 *
 * Per run: req/s (answered per second), p50/p99 latency, CPU ms per request of the serving process
 * (user + system from /proc/<pid>/stat over the run, divided by the answers), RSS (the highest
 * 0.5 s sample during the full-speed run), 5xx. The full-speed runs come in BENCH_ROUNDS (3) rounds,
 * each side by side: (c) then both floors, (a) then pgbench uniform, (b) then pgbench hot, (d),
 * every run after the relay drained the one before. Each ratio is taken per round and judged on its
 * median; the other figures are medians over the rounds (RSS: the highest). Then pgbench GET, and
 * the half-rate runs once, at half the median full-speed rate.
 *
 * Prints markdown on stdout (the targets table first, then the measurements) and writes it to
 * BENCH_OUT when set. Not part of the test suite: targets are reported, not asserted.
 *
 * Environment: BENCH_DATABASE_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres),
 * BENCH_CONNECTIONS (64), BENCH_DURATION_S (10; the half-rate runs take 2/3 of it, at least 3 s),
 * BENCH_DB_POOL_MAX (pool of the service and of both floors, default 10), BENCH_LOC_VARIANTS
 * (variants of (d), default 50,000), BENCH_ROUNDS (3), BENCH_OUT (a file for the markdown), BENCH_KEEP_DB=1. The
 * service trusts a key the bench makes (the test issuer) and the bench sends a token signed with
 * it; any answer other than 2xx/409/5xx stops the bench (a broken setup measures nothing).
 */
import type { Request } from "autocannon"
import { spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { isDeepStrictEqual } from "node:util"
import { ALL_SCOPES, signToken } from "../test/support/auth.js"
import { createTestVhost } from "../test/support/broker.js"
import {
  CONNECTIONS, fixed, fromLatencies, load, median, type Measured, outboxDrained, paced, requestHeaders, type Run, underLoad, useToken, walPosition
} from "./load.js"
import { adminQuery, analyzeAfterWarmUp, type BenchProcess, loadVariants, log, reconcile, startFloor, withBenchService } from "./support.js"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..")
const DURATION_S = Number(process.env["BENCH_DURATION_S"] ?? 10)
const HALF_RATE_DURATION_S = Math.max(3, Math.round(DURATION_S * 0.66))
/** Side-by-side rounds of every full-speed run (service, floors, pgbench); the table reports their medians. */
const ROUNDS = Math.max(1, Number(process.env["BENCH_ROUNDS"] ?? 3))
const POOL_MAX = process.env["BENCH_DB_POOL_MAX"] ?? "10"
const OUT = process.env["BENCH_OUT"]
/**
 * The V8 flags the image starts the service with (the Dockerfile's `ENV NODE_OPTIONS="…"` line, when
 * it has one: heap sizing decides the RSS target), so the bench measures what ships;
 * BENCH_NODE_OPTIONS overrides them ("" for V8's defaults). The floors run with V8's defaults.
 */
const SERVICE_NODE_OPTIONS =
  process.env["BENCH_NODE_OPTIONS"] ?? /^ENV NODE_OPTIONS="([^"]*)"$/m.exec(readFileSync(join(ROOT, "Dockerfile"), "utf8"))?.[1] ?? ""
/** Before measuring, each server runs this long at full speed (the JIT settles; 2 s left the Effect floor's CPU per request ~2x high). */
const WARMUP_S = 3
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

/** Per field, the median over the rounds (5xx summed); the answers' note of every round. */
const medianRun = (runs: ReadonlyArray<Run>): Run => ({
  rate: median(runs.map((r) => r.rate)),
  answered: runs.reduce((sum, r) => sum + r.answered, 0),
  p50: median(runs.map((r) => r.p50)),
  p95: median(runs.map((r) => r.p95)),
  p99: median(runs.map((r) => r.p99)),
  failed: runs.reduce((sum, r) => sum + r.failed, 0),
  note: runs.length === 1 ? runs[0]!.note : `rounds: ${runs.map((r) => `${whole(r.rate)}/s (${r.note})`).join("; ")}`
})

/** Medians over the rounds; RSS is the highest of all of them. */
const medianMeasured = (runs: ReadonlyArray<Measured>): Measured => ({
  run: medianRun(runs.map((r) => r.run)),
  cpuMsPerRequest: median(runs.map((r) => r.cpuMsPerRequest)),
  cores: median(runs.map((r) => r.cores)),
  rssMaxMiB: Math.max(...runs.map((r) => r.rssMaxMiB))
})

/** One round: every full-speed run of the service, both floors and both pgbench limits. */
interface Round {
  readonly a: Measured
  readonly b: Measured
  readonly c: Measured
  readonly d: Measured
  readonly nodeFloor: Measured
  readonly effectFloor: Measured
  readonly pgUniform: Run
  readonly pgHot: Run
}

const A_NAME = "(a) reserve 1, uniform over 10,000 variants"
const B_NAME = "(b) reserve 1, one hot variant"
const C_NAME = "(c) GET /v1/stock-levels/{id}"
const D_NAME = "(d) reserve 2 lines, 3 locations 40/30/30 %, split"
const E_NAME = "(e) adjust the hot variant (SALE 1), unbatched, one round"

/** pgbench on the same SQL with as many connections; latencies from its per-transaction log. */
const pgbench = (databaseUrl: string, script: string, defines: Record<string, string | number>): Run => {
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
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1] ?? NaN)
    const failed = Number(/number of failed transactions: (\d+)/.exec(run.stdout)?.[1] ?? NaN)
    if (run.status !== 0) log(`pgbench ${script} exited ${run.status}: ${run.stderr.split("\n").slice(-3).join(" ")}`)
    const latencies: Array<number> = []
    for (const file of readdirSync(logDir)) {
      for (const line of readFileSync(join(logDir, file), "utf8").split("\n")) {
        const fields = line.split(" ")
        if (fields.length >= 3) latencies.push(Number(fields[2]) / 1000)
      }
    }
    return fromLatencies(tps, processed, failed, latencies, `failed×${Number.isFinite(failed) ? failed : "?"}`)
  } finally {
    rmSync(logDir, { recursive: true, force: true })
  }
}

// Formatting.
const ms = fixed(1)
const ms2 = fixed(2)
const whole = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-")

/** A target: the measured value(s) against a bound; PASS only when every part is measured and within it. */
interface Target {
  readonly name: string
  readonly measured: string
  readonly goal: string
  readonly pass: boolean
  /** Of several scenarios, the ones that miss. */
  readonly missed?: ReadonlyArray<string>
}

/** A bound checked on several scenarios at once: the value of each, and which of them miss. */
const each = (
  name: string,
  goal: string,
  parts: ReadonlyArray<readonly [label: string, value: number]>,
  ok: (value: number) => boolean,
  show: (value: number) => string
): Target => {
  const missed = parts.filter(([, value]) => !(Number.isFinite(value) && ok(value))).map(([label]) => label)
  const measured = parts.map(([label, value]) => `${label} ${show(value)}`).join(" · ")
  return { name, goal, pass: missed.length === 0, measured, ...(parts.length > 1 ? { missed } : {}) }
}

/** A ratio taken in each round (side by side), judged on its median; the rounds' values beside it. */
const ratio = (name: string, goal: number, pairs: ReadonlyArray<readonly [numerator: number, denominator: number]>, units: readonly [string, string]): Target => {
  const values = pairs.map(([n, dd]) => n / dd)
  const value = median(values)
  const at = values.indexOf(value)
  const [numerator, denominator] = at >= 0 ? pairs[at]! : [NaN, NaN]
  return {
    name,
    goal: `≥ ${goal.toFixed(1)}`,
    pass: Number.isFinite(value) && value >= goal,
    measured: `${whole(numerator)} ${units[0]} / ${whole(denominator)} ${units[1]} = **${fixed(2)(value)}**` +
      (values.length > 1 ? ` (rounds: ${values.map(fixed(2)).join(", ")})` : "")
  }
}

const main = async () => {
  useToken(await signToken({ scope: ALL_SCOPES, sub: "bench", expiresIn: 3600 }))
  const loadAtStart = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
  // Production-like: the relay publishes every event to a real RabbitMQ (its own vhost), with
  // publisher confirms, as issue 13's harness did; BENCH_EVENTS_LOG_ONLY=1 uses the log publisher.
  const vhost = process.env["BENCH_EVENTS_LOG_ONLY"] === "1" ? undefined : await createTestVhost("bench")
  const events = vhost === undefined ? { EVENTS_LOG_ONLY: "true" } : { AMQP_URL: vhost.url() }
  try {
    await withBenchService("bench", { DB_POOL_MAX: POOL_MAX, NODE_ENV: "production", NODE_OPTIONS: SERVICE_NODE_OPTIONS, ...events }, async ({ baseUrl, databaseUrl, child }) => {
      log(`service up on ${baseUrl} (pool ${POOL_MAX}, NODE_OPTIONS "${SERVICE_NODE_OPTIONS}"); loading ${VARIANTS} variants + the hot one`)
      await loadVariants(databaseUrl, "bench-", 0, VARIANTS, [{ locationId: "default", onHand: STOCK }])
      log(`scenario (d): locations ${LOC_LOCATIONS.map((l) => l.locationId).join(", ")}; loading ${LOC_VARIANTS} variants stocked at three locations`)
      for (const { locationId, priority } of LOC_LOCATIONS) {
        const response = await fetch(`${baseUrl}/v1/locations/${locationId}`, {
          method: "PUT",
          headers: requestHeaders(),
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
      /** Adjustments are one transaction each (not batched): what one hot row takes of them. */
      const adjustHot: Request = {
        method: "POST",
        path: `/v1/stock-levels/${HOT}/adjustments`,
        // A sale: a purchase would take onHand past its bound (1,000,000,000, the hot variant's stock).
        body: JSON.stringify({ type: "SALE", quantity: 1, reason: "bench" })
      }
      const getLevel: Request = { method: "GET", setupRequest: (request) => ({ ...request, path: `/v1/stock-levels/${uniformVariant()}` }) }

      log("starting the floor servers (bench/floor-node.ts, bench/floor-effect.ts, compiled into dist/bench)")
      const floors: Array<BenchProcess> = []
      try {
        const floorNode = await startFloor("floor-node", databaseUrl, POOL_MAX, "/health/ready")
        floors.push(floorNode)
        const floorEffect = await startFloor("floor-effect", databaseUrl, POOL_MAX, "/v1/stock-levels/bench-1")
        floors.push(floorEffect)
        // The floors are only a limit if they serve the same answer: compare the three bodies.
        const bodyOf = (url: string) =>
          fetch(`${url}/v1/stock-levels/bench-1`, { headers: requestHeaders() }).then(async (r) => ({ status: r.status, json: await r.json() as unknown }))
        const [serviceBody, nodeBody, effectBody] = await Promise.all([baseUrl, floorNode.baseUrl, floorEffect.baseUrl].map(bodyOf))
        for (const [label, body] of [["floor-node", nodeBody], ["floor-effect", effectBody]] as const) {
          if (!isDeepStrictEqual(body, serviceBody)) {
            throw new Error(`${label} answers ${JSON.stringify(body)}, the service ${JSON.stringify(serviceBody)}: not the same endpoint`)
          }
        }

        log(`warm-up (${WARMUP_S} s reserve + ${WARMUP_S} s GET on the service, ${WARMUP_S} s GET on each floor)`)
        await load(baseUrl, reserve(uniformVariant), WARMUP_S)
        await load(baseUrl, getLevel, WARMUP_S)
        await load(floorNode.baseUrl, getLevel, WARMUP_S)
        await load(floorEffect.baseUrl, getLevel, WARMUP_S)
        await outboxDrained(databaseUrl)
        await analyzeAfterWarmUp(databaseUrl)

        /** One full-speed run of the service; the half-rate run comes once, after every round. */
        const fullRun = async (name: string, request: Request, round: number) => {
          log(`${name}: service, ${DURATION_S} s at full speed (round ${round + 1} of ${ROUNDS})`)
          const walBefore = await walPosition(databaseUrl)
          const full = await underLoad(child.pid, baseUrl, request, DURATION_S)
          // The next measurement starts with the relay idle, not draining this one's events.
          const drained = await outboxDrained(databaseUrl)
          // WAL written per answered request, the relay's leases and marks of its events included.
          const walBytes = (await walPosition(databaseUrl)) - walBefore
          const wal = `WAL ${whole(walBytes / Math.max(1, full.run.answered))} B/request; `
          return { ...full, run: { ...full.run, note: drained + wal + full.run.note } }
        }
        const halfRun = async (name: string, request: Request, fullRate: number) => {
          const halfRate = Math.max(1, Math.floor(fullRate / 2))
          log(`${name}: service, ${HALF_RATE_DURATION_S} s at ${halfRate} req/s, evenly spaced (open loop)`)
          const half = await paced(baseUrl, request, HALF_RATE_DURATION_S, halfRate)
          const after = await outboxDrained(databaseUrl)
          return { ...half, note: half.note + (after === "" ? "" : `; after: ${after.replace(/; $/, "")}`) }
        }
        const floorRun = async (name: string, floor: BenchProcess, round: number) => {
          log(`${name}: ${DURATION_S} s at full speed (round ${round + 1} of ${ROUNDS})`)
          return await underLoad(floor.child.pid, floor.baseUrl, getLevel, DURATION_S)
        }
        const pgbenchRun = async (name: string, script: string, defines: Record<string, string | number>, round: number) => {
          log(`${name}: ${DURATION_S} s (round ${round + 1} of ${ROUNDS})`)
          const run = pgbench(databaseUrl, script, defines)
          // bench/reserve.pgbench.sql writes outbox rows too: the relay publishes them before the next run.
          await outboxDrained(databaseUrl)
          return run
        }

        // Rounds, each a side-by-side set: the service's GET beside both floors, each reservation
        // scenario beside its pgbench limit, so that every ratio is of runs minutes apart on the same
        // database (pgbench's tps falls as the run's database fills) and the table reports medians.
        const rounds: Array<Round> = []
        for (let round = 0; round < ROUNDS; round++) {
          const c = await fullRun(C_NAME, getLevel, round)
          const nodeFloor = await floorRun("floor: node:http + pg, same GET", floorNode, round)
          const effectFloor = await floorRun("floor: Effect HttpApi + sql-pg, same GET", floorEffect, round)
          const a = await fullRun(A_NAME, reserve(uniformVariant), round)
          const pgUniform = await pgbenchRun("pgbench bench/reserve.pgbench.sql, uniform", "reserve.pgbench.sql", { lo: 1, hi: VARIANTS }, round)
          const b = await fullRun(B_NAME, reserve(() => HOT), round)
          const pgHot = await pgbenchRun("pgbench bench/reserve.pgbench.sql, hot variant", "reserve.pgbench.sql", { lo: 0, hi: 0 }, round)
          const d = await fullRun(D_NAME, reserveSplit, round)
          rounds.push({ a, b, c, d, nodeFloor, effectFloor, pgUniform, pgHot })
        }
        // Whether hot adjustments need the batcher too (issue 13): their rate on the hot row, unbatched.
        const e = { name: E_NAME, full: await fullRun(E_NAME, adjustHot, 0) }
        while (floors.length > 0) await floors.pop()!.stop()
        const pgGet = { name: "pgbench bench/get.pgbench.sql", run: await pgbenchRun("pgbench bench/get.pgbench.sql", "get.pgbench.sql", {}, 0) }

        const scenarioOf = (name: string, key: "a" | "b" | "c" | "d", half: Run) => ({ name, full: medianMeasured(rounds.map((r) => r[key])), half })
        const cMedian = medianMeasured(rounds.map((r) => r.c))
        const c = scenarioOf(C_NAME, "c", await halfRun(C_NAME, getLevel, cMedian.run.rate))
        const aMedian = medianMeasured(rounds.map((r) => r.a))
        const a = scenarioOf(A_NAME, "a", await halfRun(A_NAME, reserve(uniformVariant), aMedian.run.rate))
        const bMedian = medianMeasured(rounds.map((r) => r.b))
        const b = scenarioOf(B_NAME, "b", await halfRun(B_NAME, reserve(() => HOT), bMedian.run.rate))
        const dMedian = medianMeasured(rounds.map((r) => r.d))
        const d = scenarioOf(D_NAME, "d", await halfRun(D_NAME, reserveSplit, dMedian.run.rate))
        const nodeFloor = { name: "floor: node:http + pg, same GET", full: medianMeasured(rounds.map((r) => r.nodeFloor)) }
        const effectFloor = { name: "floor: Effect HttpApi + sql-pg, same GET", full: medianMeasured(rounds.map((r) => r.effectFloor)) }
        const pgUniform = { name: "pgbench bench/reserve.pgbench.sql, uniform", run: medianRun(rounds.map((r) => r.pgUniform)) }
        const pgHot = { name: "pgbench bench/reserve.pgbench.sql, hot variant", run: medianRun(rounds.map((r) => r.pgHot)) }
        const loadAtEnd = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")

        log("reconciling (dist/src/bin/reconcile.js)")
        const reconciled = reconcile(databaseUrl)
        // Scenario (d): how the lines were held (allocations per line).
        const split = await adminQuery(
          databaseUrl,
          `SELECT count(*)::int AS lines, count(*) FILTER (WHERE n > 1)::int AS split
             FROM (SELECT count(*) AS n FROM reservation_allocations WHERE variant_id LIKE 'loc-%' GROUP BY order_id, variant_id) a`
        )

        const services = [a, b, c, d]
        const letter = (s: { name: string }) => s.name.slice(1, 2)
        const targets: Array<Target> = [
          ratio("(a) uniform reserve / pgbench uniform", 1, rounds.map((r) => [r.a.run.rate, r.pgUniform.rate]), ["req/s", "tps"]),
          ratio("(b) hot reserve / pgbench hot", 3, rounds.map((r) => [r.b.run.rate, r.pgHot.rate]), ["req/s", "tps"]),
          ratio("(c) GET / bare node floor", 0.7, rounds.map((r) => [r.c.run.rate, r.nodeFloor.run.rate]), ["req/s", "req/s"]),
          ratio("(c) GET / Effect floor", 0.8, rounds.map((r) => [r.c.run.rate, r.effectFloor.run.rate]), ["req/s", "req/s"]),
          {
            ...each("CPU ms per GET (c)", "≤ 0.20", [["c", c.full.cpuMsPerRequest]], (v) => v <= 0.2, ms2),
            measured: `**${ms2(c.full.cpuMsPerRequest)}** (floors: node ${ms2(nodeFloor.full.cpuMsPerRequest)}, Effect ${ms2(effectFloor.full.cpuMsPerRequest)})`
          },
          each("CPU ms per reservation (a, b, d)", "≤ 0.40", [a, b, d].map((s) => [letter(s), s.full.cpuMsPerRequest] as const), (v) => v <= 0.4, ms2),
          each("p99 at half the max rate (a–d)", "< 50 ms", services.map((s) => [letter(s), s.half.p99] as const), (v) => v < 50, ms),
          each("RSS under full load (a–d)", "≤ 200 MiB", services.map((s) => [letter(s), s.full.rssMaxMiB] as const), (v) => v <= 200, fixed(0)),
          each("5xx, full + half rate (a–d)", "0", services.map((s) => [letter(s), s.full.run.failed + s.half.failed] as const), (v) => v === 0, whole),
          { name: "reconcile clean after the run", goal: "clean", pass: reconciled.clean, measured: reconciled.clean ? "clean" : "**not clean**" }
        ]
        const verdict = (t: Target) => (t.pass ? "PASS" : `**MISS**${t.missed !== undefined && t.missed.length > 0 ? ` (${t.missed.join(", ")})` : ""}`)

        const serviceRow = (s: (typeof services)[number]) =>
          `| ${s.name} | ${whole(s.full.run.rate)} | ${ms(s.full.run.p50)} / ${ms(s.full.run.p99)} | ${ms2(s.full.cpuMsPerRequest)} | ` +
          `${ms2(s.full.cores)} | ${fixed(0)(s.full.rssMaxMiB)} | ${s.full.run.failed + s.half.failed} | ` +
          `${whole(s.half.rate)}: ${ms(s.half.p50)} / ${ms(s.half.p99)} | ${s.full.run.note}; half: ${s.half.note} |`
        const onceRow = (o: typeof e) =>
          `| ${o.name} | ${whole(o.full.run.rate)} | ${ms(o.full.run.p50)} / ${ms(o.full.run.p99)} | ${ms2(o.full.cpuMsPerRequest)} | ` +
          `${ms2(o.full.cores)} | ${fixed(0)(o.full.rssMaxMiB)} | ${o.full.run.failed} | – | ${o.full.run.note} |`
        const floorRow = (f: typeof nodeFloor) =>
          `| ${f.name} | ${whole(f.full.run.rate)} | ${ms(f.full.run.p50)} / ${ms(f.full.run.p99)} | ${ms2(f.full.cpuMsPerRequest)} | ` +
          `${ms2(f.full.cores)} | ${fixed(0)(f.full.rssMaxMiB)} | ${f.full.run.failed} | – | ${f.full.run.note} |`
        const pgbenchRow = (p: typeof pgGet) =>
          `| ${p.name} | ${whole(p.run.rate)} | ${ms(p.run.p50)} / ${ms(p.run.p99)} | – | – | – | – | – | ${p.run.note} |`

        const lines = [
          `## Inventory Service benchmark (issue 13 targets)`,
          "",
          `${new Date().toISOString()}: ${CONNECTIONS} connections, ${DURATION_S} s per full-speed run, medians of ${ROUNDS} side-by-side rounds, ` +
            `${HALF_RATE_DURATION_S} s at half rate, ` +
            `pool ${POOL_MAX} (service and floors), node ${process.version}, service NODE_OPTIONS "${SERVICE_NODE_OPTIONS}", ` +
            `${availableParallelism()} cores, load ${loadAtStart} → ${loadAtEnd}`,
          "",
          "| target | measured (this run) | goal | verdict |",
          "|---|---|---|---|",
          ...targets.map((t) => `| ${t.name} | ${t.measured} | ${t.goal} | ${verdict(t)} |`),
          "",
          `${targets.filter((t) => t.pass).length} of ${targets.length} targets met.`,
          "",
          "| run | req/s (tps) | p50 / p99 ms | CPU ms/req | cores | RSS MiB (max) | 5xx | half rate: req/s: p50 / p99 ms | answers |",
          "|---|---:|---|---:|---:|---:|---:|---|---|",
          ...services.map(serviceRow),
          onceRow(e),
          floorRow(nodeFloor),
          floorRow(effectFloor),
          ...[pgUniform, pgHot, pgGet].map(pgbenchRow),
          "",
          `${reconciled.summary}. (d): ${split[0]!.split} of ${split[0]!.lines} reserved lines split over two locations.`,
          "CPU ms/req: user + system CPU of the serving process (/proc/<pid>/stat) over the full-speed run / its answers; " +
            "pgbench runs the one-reservation transaction unbatched (bench/reserve.pgbench.sql)."
        ]
        const text = lines.join("\n") + "\n"
        process.stdout.write(text)
        if (OUT !== undefined && OUT !== "") {
          mkdirSync(dirname(OUT), { recursive: true })
          writeFileSync(OUT, text)
          log(`written to ${OUT}`)
        }
      } finally {
        for (const floor of floors) await floor.stop()
      }
    })
  } finally {
    await vhost?.drop()
  }
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`)
  process.exit(1)
})
