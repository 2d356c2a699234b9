/**
 * `npm run bench:replicas`: one replica against two on one PostgreSQL (docs/performance.md,
 * "Scale-out on one PostgreSQL"). Both replicas run the built service in production mode on the same
 * database, each relaying to the same RabbitMQ vhost, as two pods would. Per round (BENCH_ROUNDS,
 * default 3), each scenario runs at full speed for BENCH_DURATION_S (10) with BENCH_CONNECTIONS (64)
 * client connections: all on replica 1, then split evenly over both at once. Scenarios: (a) uniform
 * single-unit reservations over 10,000 variants, (b) all on one hot variant.
 *
 * Reports, medians over the rounds: req/s (both replicas' answers together), the higher p99 of the
 * two load generators, the replicas' CPU ms per request (both processes), requests per batch (from
 * `inventory_reservation_batch_size`, both replicas), and the whole run's 5xx. On a machine of a few
 * cores the replicas share its CPU with PostgreSQL, so the rate says where the CPU goes; the batch
 * sizes say how the hot row's lock is shared. Not part of the test suite.
 */
import type { Request } from "autocannon"
import { ALL_SCOPES, signToken } from "../test/support/auth.js"
import { createTestVhost } from "../test/support/broker.js"
import { CONNECTIONS, fixed, load, median, outboxDrained, type Run, serviceCounters, useToken } from "./load.js"
import { adminQuery, analyzeAfterWarmUp, type BenchService, cpuSeconds, loadVariants, log, startReplica, withBenchService } from "./support.js"

const ROUNDS = Math.max(1, Number(process.env["BENCH_ROUNDS"] ?? 3))
const DURATION_S = Number(process.env["BENCH_DURATION_S"] ?? 10)
const VARIANTS = 10_000
const STOCK = 1_000_000_000

interface Sample {
  readonly rate: number
  readonly p99: number
  readonly cpuMsPerRequest: number
  readonly requestsPerBatch: number
  readonly fiveHundreds: number
}

/** `request` at full speed, CONNECTIONS split evenly over `replicas`, all at once. */
const together = async (replicas: ReadonlyArray<BenchService>, request: Request): Promise<Sample> => {
  const counters = await Promise.all(replicas.map((r) => serviceCounters(r.baseUrl)))
  const cpu = replicas.map((r) => cpuSeconds(r.child.pid))
  const runs: ReadonlyArray<Run> = await Promise.all(
    replicas.map((r) => load(r.baseUrl, request, DURATION_S, Math.floor(CONNECTIONS / replicas.length)))
  )
  const cpuSpent = replicas.reduce((sum, r, i) => sum + cpuSeconds(r.child.pid) - cpu[i]!, 0)
  const after = await Promise.all(replicas.map((r) => serviceCounters(r.baseUrl)))
  const answered = runs.reduce((sum, run) => sum + run.answered, 0)
  const batches = after.reduce((sum, c, i) => sum + c.batches - counters[i]!.batches, 0)
  return {
    rate: runs.reduce((sum, run) => sum + run.rate, 0),
    p99: Math.max(...runs.map((run) => run.p99)),
    cpuMsPerRequest: (cpuSpent * 1000) / answered,
    requestsPerBatch: answered / batches,
    fiveHundreds: runs.reduce((sum, run) => sum + run.failed, 0)
  }
}

const main = async () => {
  useToken(await signToken({ scope: ALL_SCOPES, sub: "bench", expiresIn: 3600 }))
  const vhost = await createTestVhost("replicas")
  const env = { DB_POOL_MAX: "10", NODE_ENV: "production", NODE_OPTIONS: "", AMQP_URL: vhost.url() }
  try {
    await withBenchService("replicas", env, async (first) => {
      await loadVariants(first.databaseUrl, "bench-", 0, VARIANTS, [{ locationId: "default", onHand: STOCK }])
      await adminQuery(first.databaseUrl, "VACUUM ANALYZE")
      const second = await startReplica(first.databaseUrl, env)
      try {
        await measure(first, second)
      } finally {
        await second.stop()
      }
    })
  } finally {
    await vhost.drop()
  }
}

const measure = async (first: BenchService, second: BenchService) => {
  let order = 0
  const reserve = (variant: () => string): Request => ({
    method: "POST",
    path: "/v1/reservations",
    setupRequest: (request) => ({ ...request, body: JSON.stringify({ orderId: `r-${++order}`, lines: [{ variantId: variant(), quantity: 1 }] }) })
  })
  const scenarios = [
    { name: "(a) reserve 1, uniform over 10,000 variants", request: reserve(() => `bench-${1 + Math.floor(Math.random() * VARIANTS)}`) },
    { name: "(b) reserve 1, one hot variant", request: reserve(() => "bench-0") }
  ]
  log("warm-up, both replicas")
  await together([first, second], scenarios[0]!.request)
  await outboxDrained(first.databaseUrl)
  await analyzeAfterWarmUp(first.databaseUrl)

  const samples = new Map(scenarios.map((s) => [s.name, { one: [] as Array<Sample>, two: [] as Array<Sample> }]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const scenario of scenarios) {
      for (const [label, replicas] of [["one", [first]], ["two", [first, second]]] as const) {
        log(`round ${round + 1} of ${ROUNDS}, ${scenario.name}: ${label === "one" ? "one replica" : "two replicas"}, ${DURATION_S} s`)
        samples.get(scenario.name)![label].push(await together(replicas, scenario.request))
        await outboxDrained(first.databaseUrl)
      }
    }
  }

  const rows = [
    `## bench:replicas, ${new Date().toISOString()}: one replica against two on one PostgreSQL, ${ROUNDS} rounds, ${DURATION_S} s at full speed, ${CONNECTIONS} connections in all`,
    "",
    "| scenario | replicas | req/s (both) | p99 ms (higher of the two) | CPU ms/request (both) | requests per batch | 5xx | rounds: req/s |",
    "|---|---:|---:|---:|---:|---:|---:|---|"
  ]
  for (const { name } of scenarios) {
    for (const label of ["one", "two"] as const) {
      const runs = samples.get(name)![label]
      rows.push(
        `| ${name} | ${label === "one" ? 1 : 2} | ${fixed(0)(median(runs.map((r) => r.rate)))} | ${fixed(1)(median(runs.map((r) => r.p99)))} | ` +
          `${fixed(2)(median(runs.map((r) => r.cpuMsPerRequest)))} | ${fixed(1)(median(runs.map((r) => r.requestsPerBatch)))} | ` +
          `${runs.reduce((sum, r) => sum + r.fiveHundreds, 0)} | ${runs.map((r) => fixed(0)(r.rate)).join(", ")} |`
      )
    }
  }
  process.stdout.write(rows.join("\n") + "\n")
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
