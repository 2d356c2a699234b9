// Helpers shared by the benchmarks (bench/run.ts, bench/soak.ts): the database, the service process
// and what /proc says about it.
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import ts from "typescript"
import { TEST_AUDIENCE, TEST_ISSUER, testPublicKeyPem } from "../test/support/auth.js"

export const ADMIN_URL = process.env["BENCH_DATABASE_ADMIN_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"

export const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

export const adminQuery = async (url: string, text: string) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(text)).rows
  } finally {
    await client.end()
  }
}

/**
 * After the warm-up's reservations: ANALYZE, which autovacuum does within about a minute on a new
 * database, so that the runs measure the steady state a database in service is in. PostgreSQL keeps
 * each connection's plans of the foreign-key checks from their first use; made while `reservations`
 * and `reservation_lines` were nearly empty they are sequential scans, which grow with every
 * reservation until the tables are next analyzed (docs/performance.md, "A new database's first
 * minute"). Analyzing invalidates those plans in every connection.
 */
export const analyzeAfterWarmUp = async (databaseUrl: string) => {
  await adminQuery(databaseUrl, "ANALYZE")
}

/** Where each loaded variant is stocked: units per location (the locations must exist). */
export interface LoadSpread {
  readonly locationId: string
  readonly onHand: number
}

/**
 * Loads variants `prefix + from` .. `prefix + to`, stocked as `spread` says, the way the schema allows
 * it (migration 0080): a stock level starts at 0, its location rows carry the units (the triggers roll
 * them up into the totals), and each row gets its PURCHASE history entry, so reconciliation agrees.
 * Ids and numbers are the bench's own constants (interpolated, no parameters).
 */
export const loadVariants = (databaseUrl: string, prefix: string, from: number, to: number, spread: ReadonlyArray<LoadSpread>) => {
  const stock = spread.map(({ locationId, onHand }) => `('${locationId}', ${Math.trunc(onHand)})`).join(", ")
  const ids = `SELECT '${prefix}' || g AS variant_id FROM generate_series(${from}, ${to}) g`
  return adminQuery(
    databaseUrl,
    `INSERT INTO stock_levels (variant_id) ${ids};
     INSERT INTO location_stock (variant_id, location_id, on_hand)
     SELECT v.variant_id, s.location_id, s.on_hand FROM (${ids}) v CROSS JOIN (VALUES ${stock}) s(location_id, on_hand);
     INSERT INTO inventory_history (variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason)
     SELECT v.variant_id, s.location_id, 'PURCHASE', s.on_hand, 0, s.on_hand, 0, 'bench load'
       FROM (${ids}) v CROSS JOIN (VALUES ${stock}) s(location_id, on_hand) WHERE s.on_hand > 0;`
  )
}

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
export const cpuSeconds = (pid: number | undefined): number => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return NaN
  }
}

/** Resident set size of a process in MiB, from /proc (Linux). */
export const rssMiB = (pid: number | undefined): number => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024
  } catch {
    return NaN
  }
}

export const waitReady = async (baseUrl: string, child: ChildProcess, path = "/health/ready") => {
  for (let i = 0; i < 120; i++) {
    if (child.exitCode !== null) throw new Error(`${baseUrl} exited with ${child.exitCode}`)
    const ok = await fetch(`${baseUrl}${path}`).then((r) => r.ok, () => false)
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  throw new Error(`${baseUrl}${path} not ready after 60 s`)
}

export interface BenchService {
  readonly baseUrl: string
  readonly databaseUrl: string
  readonly child: ChildProcess
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..")

/** The built service's environment, beside what the caller adds (rate limiting off, the test issuer trusted). */
const serviceEnv = (databaseUrl: string, port: number, env: Record<string, string>): NodeJS.ProcessEnv => ({
  ...process.env,
  DATABASE_URL: databaseUrl,
  PORT: String(port),
  RATE_LIMIT_RPS: "0",
  LOG_LEVEL: "warn",
  NODE_ENV: "development",
  AUTH_PUBLIC_KEY: testPublicKeyPem,
  AUTH_ISSUER: TEST_ISSUER,
  AUTH_AUDIENCE: TEST_AUDIENCE,
  ...env
})

/**
 * Compiles bench/<name>.ts to dist/bench/<name>.js with the project's TypeScript and tsconfig.json's
 * options (emit only; `npm run typecheck` checks its types), as ES modules like the rest of dist/
 * (package.json `type: module`), so it runs on plain `node` like the service. Its imports of
 * ../src/* resolve to the service's own build (call after `npm run build`).
 */
export const compileBenchFile = (name: string): string => {
  const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"))
    }
  })
  const source = join(ROOT, "bench", `${name}.ts`)
  const { outputText } = ts.transpileModule(readFileSync(source, "utf8"), {
    fileName: source,
    // NodeNext emits ESM for a .ts file under `type: module`; transpileModule alone cannot tell.
    compilerOptions: { ...config!.options, module: ts.ModuleKind.ES2022, sourceMap: false }
  })
  const out = join(ROOT, "dist", "bench", `${name}.js`)
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, outputText)
  return out
}

export interface BenchProcess {
  readonly baseUrl: string
  readonly child: ChildProcess
  readonly stop: () => Promise<void>
}

/** SIGTERM, then wait for the exit (SIGKILL after 10 s). */
const stopChild = async (child: ChildProcess) => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once("exit", resolve))
  child.kill("SIGTERM")
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
  await exited
  clearTimeout(timer)
}

/**
 * Runs a compiled floor server (bench/floor-*.ts) on `databaseUrl` with the same `node` and no
 * loader, on a free port; ready once `readyPath` answers 200.
 */
export const startFloor = async (name: string, databaseUrl: string, poolMax: string, readyPath: string): Promise<BenchProcess> => {
  const script = compileBenchFile(name)
  const port = await freePort()
  const baseUrl = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, [...nodeFlags("FLOOR_NODE_FLAGS"), script], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), DB_POOL_MAX: poolMax }
  })
  try {
    await waitReady(baseUrl, child, readyPath)
  } catch (error) {
    await stopChild(child)
    throw error
  }
  return { baseUrl, child, stop: () => stopChild(child) }
}

/**
 * The service's own reconciliation (`npm run reconcile`, built: dist/src/bin/reconcile.js) on the
 * bench database: clean when it exits 0 (1: drift, 3: the check could not run).
 */
export const reconcile = (databaseUrl: string): { readonly clean: boolean; readonly summary: string } => {
  const run = spawnSync(process.execPath, [join(ROOT, "dist/src/bin/reconcile.js")], {
    cwd: ROOT,
    encoding: "utf8",
    env: serviceEnv(databaseUrl, 8080, {})
  })
  const lines = `${run.stdout}\n${run.stderr}`.split("\n").map((l) => l.trim()).filter((l) => l.length > 0)
  const summary = lines.find((l) => l.startsWith("reconcile:")) ?? lines.slice(-2).join(" ")
  return { clean: run.status === 0, summary: `${summary} (exit ${run.status})` }
}

/**
 * Node flags from an environment variable, e.g. "--cpu-prof --cpu-prof-dir=DIR" (NODE_OPTIONS refuses
 * --cpu-prof): SERVICE_NODE_FLAGS for the service alone, FLOOR_NODE_FLAGS for the floor servers.
 */
const nodeFlags = (variable: "SERVICE_NODE_FLAGS" | "FLOOR_NODE_FLAGS") =>
  (process.env[variable] ?? "").split(" ").filter((flag) => flag !== "")

/**
 * Starts `root`'s build (`node dist/src/main.js`, as in the image) on a free port; not yet ready. Its
 * standard output is dropped, or appended to `stdoutFile`: a file, so that the bench process does not
 * read the service's lines while it drives the load.
 */
const spawnService = async (root: string, databaseUrl: string, env: Record<string, string>, flags: ReadonlyArray<string>, stdoutFile?: string) => {
  const port = await freePort()
  const stdout = stdoutFile === undefined ? "ignore" : openSync(stdoutFile, "a")
  try {
    const child = spawn(process.execPath, [...flags, join(root, "dist/src/main.js")], {
      cwd: root,
      stdio: ["ignore", stdout, "inherit"],
      env: serviceEnv(databaseUrl, port, env)
    })
    return { baseUrl: `http://127.0.0.1:${port}`, child }
  } finally {
    // The child has its own copy of the descriptor.
    if (typeof stdout === "number") closeSync(stdout)
  }
}

/** `npm run -s build` in `root` (what `node dist/src/main.js` runs). */
export const buildService = (root: string = ROOT) => {
  log("building (npm run build)")
  if (spawnSync("npm", ["run", "-s", "build"], { cwd: root, stdio: "inherit" }).status !== 0) throw new Error(`build failed in ${root}`)
}

/**
 * Builds the service, runs it (`node dist/src/main.js`, as in the image) on a fresh database with
 * rate limiting off and the test issuer's key trusted, hands it to `use`, then stops it and drops
 * the database (kept with BENCH_KEEP_DB=1).
 */
export const withBenchService = async <A>(
  label: string,
  env: Record<string, string>,
  use: (service: BenchService) => Promise<A>,
  /** The checkout whose build runs (bench/ab.ts: another one beside this). */
  root: string = ROOT
): Promise<A> => {
  const name = `inv_${label}_${randomBytes(4).toString("hex")}`
  const databaseUrl = Object.assign(new URL(ADMIN_URL), { pathname: `/${name}` }).toString()
  buildService(root)
  await adminQuery(ADMIN_URL, `CREATE DATABASE ${name}`)
  const { baseUrl, child } = await spawnService(root, databaseUrl, env, nodeFlags("SERVICE_NODE_FLAGS"))
  try {
    await waitReady(baseUrl, child)
    return await use({ baseUrl, databaseUrl, child })
  } finally {
    await stopChild(child)
    if (process.env["BENCH_KEEP_DB"] !== "1") await adminQuery(ADMIN_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
}

/**
 * One more replica of the built service on an existing database (bench/replicas.ts): same
 * environment as `withBenchService`'s, without SERVICE_NODE_FLAGS; `stop` ends it (SIGTERM, as
 * Kubernetes would).
 */
export const startReplica = (databaseUrl: string, env: Record<string, string>) => startBuiltService(databaseUrl, env, { flags: [] })

/**
 * The built service (call `buildService` first) on an existing database, as in the image, with
 * `flags` (default SERVICE_NODE_FLAGS) and `withBenchService`'s environment beside `env`; up once `readyPath` answers
 * 200 (`/health/live` when a dependency is meant to be down). `stop` ends it with SIGTERM.
 */
export const startBuiltService = async (
  databaseUrl: string,
  env: Record<string, string>,
  options: { readonly stdoutFile?: string; readonly readyPath?: string; readonly flags?: ReadonlyArray<string> } = {}
): Promise<BenchService & { readonly stop: () => Promise<void> }> => {
  const { baseUrl, child } = await spawnService(ROOT, databaseUrl, env, options.flags ?? nodeFlags("SERVICE_NODE_FLAGS"), options.stdoutFile)
  try {
    await waitReady(baseUrl, child, options.readyPath)
  } catch (error) {
    await stopChild(child)
    throw error
  }
  return { baseUrl, databaseUrl, child, stop: () => stopChild(child) }
}
