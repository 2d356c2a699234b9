/**
 * `npm run bench:ab`: two builds of the service side by side in one run, for a change whose effect
 * is smaller than this machine's drift between runs (a run of `npm run bench` at 07:22 and one at
 * 07:34 differed 2× on the same code). BENCH_AB_BASE is another checkout of the service (built there
 * with `npm run build`; e.g. `git worktree add /tmp/base main` with node_modules linked), "base";
 * this checkout is "this". Each runs on a database of its own with the same 10,000 variants (and the
 * hot one), in production mode with the relay publishing to a RabbitMQ vhost of its own, both
 * started before the first measurement.
 *
 * Per round, each scenario runs on both, in ABBA order over the rounds (base first in even rounds),
 * each run after the relays drained: (a) uniform single-unit reservations and (b) all on the hot
 * variant, at full speed (closed loop, BENCH_CONNECTIONS) and then at a fixed rate (open loop,
 * BENCH_AB_RATE req/s, default 300, for p99, with requests and SQL statements per batch and the
 * statements' mean round trip, from the service's own metrics), and (c) the GET at full speed. Prints, per measure,
 * both medians over BENCH_ROUNDS (default 4) rounds, the median of the per-round ratios this / base
 * and every round's values. BENCH_AB_NODE_OPTIONS_BASE / BENCH_AB_NODE_OPTIONS_THIS give each side
 * its own NODE_OPTIONS (default none): with BENCH_AB_BASE at the same commit, V8 flags side by side.
 * Not part of the test suite.
 */
import type { Request } from "autocannon"
import { ALL_SCOPES, signToken } from "../test/support/auth.js"
import { createTestVhost } from "../test/support/broker.js"
import { fixed, load, median, type Measured, outboxDrained, paced, type Run, serviceCounters, underLoad, useToken } from "./load.js"
import { adminQuery, analyzeAfterWarmUp, type BenchService, cpuSeconds, loadVariants, log, withBenchService } from "./support.js"

const BASE_ROOT = process.env["BENCH_AB_BASE"]
const ROUNDS = Math.max(1, Number(process.env["BENCH_ROUNDS"] ?? 4))
const DURATION_S = Number(process.env["BENCH_DURATION_S"] ?? 10)
const PACED_DURATION_S = Math.max(3, Math.round(DURATION_S * 0.7))
const RATE = Number(process.env["BENCH_AB_RATE"] ?? 300)
/** NODE_OPTIONS of each side (default none): with BENCH_AB_BASE at the same commit, V8 flags side by side. */
const NODE_OPTIONS: Record<Side, string> = {
  base: process.env["BENCH_AB_NODE_OPTIONS_BASE"] ?? "",
  this: process.env["BENCH_AB_NODE_OPTIONS_THIS"] ?? ""
}
const VARIANTS = 10_000
const STOCK = 1_000_000_000
const WARMUP_S = 3

/** Over `run`: requests per batch, SQL statements per batch and the mean round trip of one. */
const batchesOver = async <A extends { readonly answered: number }>(baseUrl: string, run: () => Promise<A>) => {
  const before = await serviceCounters(baseUrl)
  const result = await run()
  const after = await serviceCounters(baseUrl)
  const statements = after.statements - before.statements
  const batches = after.batches - before.batches
  return {
    result,
    requestsPerBatch: result.answered / batches,
    statementsPerBatch: statements / batches,
    msPerStatement: ((after.seconds - before.seconds) * 1000) / statements
  }
}

/** One measurement of one build in one round. */
interface Sample {
  readonly full?: Measured
  readonly paced?: Run
  readonly pacedCpuMs?: number
  /** At the fixed rate: requests per batch, the service's SQL statements per batch and their mean round trip. */
  readonly pacedBatches?: { readonly requestsPerBatch: number; readonly statementsPerBatch: number; readonly msPerStatement: number }
}

type Side = "base" | "this"

const main = async () => {
  if (BASE_ROOT === undefined) throw new Error("BENCH_AB_BASE must name the other checkout (its own node_modules, or a link to one)")
  useToken(await signToken({ scope: ALL_SCOPES, sub: "bench", expiresIn: 3600 }))
  const vhosts: Record<Side, Awaited<ReturnType<typeof createTestVhost>>> = { base: await createTestVhost("ab-base"), this: await createTestVhost("ab-this") }
  const env = (side: Side) => ({ DB_POOL_MAX: "10", NODE_ENV: "production", NODE_OPTIONS: NODE_OPTIONS[side], AMQP_URL: vhosts[side].url() })
  try {
    await withBenchService("ab_base", env("base"), (base) =>
      withBenchService("ab_this", env("this"), (self) => measure({ base, this: self })), BASE_ROOT)
  } finally {
    for (const vhost of Object.values(vhosts)) await vhost.drop()
  }
}

const measure = async (services: Record<Side, BenchService>) => {
  for (const service of Object.values(services)) {
    await loadVariants(service.databaseUrl, "bench-", 0, VARIANTS, [{ locationId: "default", onHand: STOCK }])
    await adminQuery(service.databaseUrl, "VACUUM ANALYZE")
  }
  let order = 0
  const reserve = (variant: () => string): Request => ({
    method: "POST",
    path: "/v1/reservations",
    setupRequest: (request) => ({ ...request, body: JSON.stringify({ orderId: `ab-${++order}`, lines: [{ variantId: variant(), quantity: 1 }] }) })
  })
  const uniformVariant = () => `bench-${1 + Math.floor(Math.random() * VARIANTS)}`
  const scenarios: ReadonlyArray<{ readonly name: string; readonly request: Request; readonly paced: boolean }> = [
    { name: "(a) reserve 1, uniform", request: reserve(uniformVariant), paced: true },
    { name: "(b) reserve 1, hot variant", request: reserve(() => "bench-0"), paced: true },
    { name: "(c) GET /v1/stock-levels/{id}", request: { method: "GET", setupRequest: (request) => ({ ...request, path: `/v1/stock-levels/${uniformVariant()}` }) }, paced: false }
  ]
  for (const side of ["base", "this"] as const) {
    log(`warm-up of ${side}`)
    await load(services[side].baseUrl, scenarios[0]!.request, WARMUP_S)
    await load(services[side].baseUrl, scenarios[2]!.request, WARMUP_S)
    await outboxDrained(services[side].databaseUrl)
    await analyzeAfterWarmUp(services[side].databaseUrl)
  }

  const samples = new Map<string, Record<Side, Array<Sample>>>(scenarios.map((s) => [s.name, { base: [], this: [] }]))
  for (let round = 0; round < ROUNDS; round++) {
    const sides: ReadonlyArray<Side> = round % 2 === 0 ? ["base", "this"] : ["this", "base"]
    for (const scenario of scenarios) {
      for (const side of sides) {
        const { baseUrl, databaseUrl, child } = services[side]
        log(`round ${round + 1} of ${ROUNDS}, ${scenario.name}: ${side}, ${DURATION_S} s at full speed`)
        const full = await underLoad(child.pid, baseUrl, scenario.request, DURATION_S)
        await outboxDrained(databaseUrl)
        let sample: Sample = { full }
        if (scenario.paced) {
          log(`round ${round + 1} of ${ROUNDS}, ${scenario.name}: ${side}, ${PACED_DURATION_S} s at ${RATE} req/s`)
          // The relay's statements for these events count too: measured until it has drained them.
          const measured = await batchesOver(baseUrl, async () => {
            const cpu = await cpuOver(child.pid, () => paced(baseUrl, scenario.request, PACED_DURATION_S, RATE))
            await outboxDrained(databaseUrl)
            return { ...cpu, answered: cpu.result.answered }
          })
          const { result: cpu, ...pacedBatches } = measured
          sample = { ...sample, paced: cpu.result, pacedCpuMs: (cpu.seconds * 1000) / cpu.result.answered, pacedBatches }
        }
        samples.get(scenario.name)![side].push(sample)
      }
    }
  }
  print(scenarios.map((s) => s.name), samples)
}

/** A run and the CPU seconds the serving process spent over it. */
const cpuOver = async <A>(pid: number | undefined, run: () => Promise<A>) => {
  const before = cpuSeconds(pid)
  const result = await run()
  return { result, seconds: cpuSeconds(pid) - before }
}

const print = (names: ReadonlyArray<string>, samples: ReadonlyMap<string, Record<Side, ReadonlyArray<Sample>>>) => {
  const rows: Array<string> = [
    `## bench:ab, ${new Date().toISOString()}: base ${BASE_ROOT} against this checkout, ${ROUNDS} rounds (ABBA), ${DURATION_S} s full speed, ${PACED_DURATION_S} s at ${RATE} req/s` +
      (NODE_OPTIONS.base === "" && NODE_OPTIONS.this === "" ? "" : `; NODE_OPTIONS base "${NODE_OPTIONS.base}", this "${NODE_OPTIONS.this}"`),
    "",
    "| scenario | measure | base (median) | this (median) | this / base (median of rounds) | rounds base → this |",
    "|---|---|---:|---:|---:|---|"
  ]
  const measures: ReadonlyArray<readonly [string, (s: Sample) => number | undefined, number]> = [
    ["req/s at full speed", (s) => s.full?.run.rate, 0],
    ["CPU ms/request at full speed", (s) => s.full?.cpuMsPerRequest, 2],
    ["p99 ms at full speed", (s) => s.full?.run.p99, 1],
    ["RSS MiB at full speed (highest)", (s) => s.full?.rssMaxMiB, 0],
    [`p50 ms at ${RATE} req/s`, (s) => s.paced?.p50, 1],
    [`p99 ms at ${RATE} req/s`, (s) => s.paced?.p99, 1],
    [`CPU ms/request at ${RATE} req/s`, (s) => s.pacedCpuMs, 2],
    [`requests per batch at ${RATE} req/s`, (s) => s.pacedBatches?.requestsPerBatch, 1],
    [`service SQL statements per batch at ${RATE} req/s`, (s) => s.pacedBatches?.statementsPerBatch, 1],
    [`ms per SQL round trip at ${RATE} req/s`, (s) => s.pacedBatches?.msPerStatement, 2],
    ["5xx", (s) => (s.full?.run.failed ?? 0) + (s.paced?.failed ?? 0), 0]
  ]
  for (const name of names) {
    const { base, this: self } = samples.get(name)!
    for (const [label, of, digits] of measures) {
      const a = base.map(of)
      const b = self.map(of)
      if (a.every((v) => v === undefined)) continue
      const av = a.map((v) => v ?? NaN)
      const bv = b.map((v) => v ?? NaN)
      const ratios = av.map((v, i) => bv[i]! / v)
      const show = fixed(digits)
      rows.push(
        `| ${name} | ${label} | ${show(median(av))} | ${show(median(bv))} | ${fixed(2)(median(ratios))} | ${av.map((v, i) => `${show(v)} → ${show(bv[i]!)}`).join("; ")} |`
      )
    }
  }
  process.stdout.write(rows.join("\n") + "\n")
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
