// With NODE_ENV=production the service refuses to start without a real key source, issuer and
// audience: one line on stderr naming the variables, exit code 1, no stack trace.
import { execFile } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { createTestDatabase, query } from "../support/database.js"

const root = new URL("../../", import.meta.url).pathname

// tsx compiles on start: on a loaded machine that alone took 30-55 s, so bound it generously,
// and wait asynchronously (a blocking spawnSync starves the vitest worker's own RPC).
const start = (env: Record<string, string>, entry = "src/main.ts", timeout = 85_000) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      ["--import", "tsx", entry],
      { cwd: root, env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", ...env }, encoding: "utf8", timeout },
      (error, stdout, stderr) => resolve({ status: error ? (typeof error.code === "number" ? error.code : null) : 0, stdout, stderr })
    )
    child.stdin?.end()
  })

describe("production start-up", { timeout: 90_000 }, () => {
  it("refuses to start without a key source, issuer and audience, in one clear line", async () => {
    const result = await start({ NODE_ENV: "production", DATABASE_URL_FILE: "/dev/null" })
    expect(result.status).toBe(1)
    const lines = result.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Invalid configuration: .*AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE: required in production/)
    expect(lines[0]).toMatch(/AUTH_ISSUER: required in production/)
    expect(lines[0]).toMatch(/AUTH_AUDIENCE: required in production/)
    expect(result.stdout).toBe("")
  })

  it("names only what is missing", async () => {
    const result = await start({
      NODE_ENV: "production",
      DATABASE_URL_FILE: "/dev/null",
      AMQP_URL: "amqp://broker.example",
      AUTH_JWKS_URL: "https://auth.example/jwks",
      AUTH_ISSUER: "https://auth.example/"
    })
    expect(result.status).toBe(1)
    expect(result.stderr.trim()).toMatch(/^Invalid configuration: AUTH_AUDIENCE: required in production$/)
  })

  // The log publisher would mark every committed event published and retention would then delete it.
  const complete = {
    NODE_ENV: "production",
    DATABASE_URL_FILE: "/dev/null",
    AUTH_JWKS_URL: "https://auth.example/jwks",
    AUTH_ISSUER: "https://auth.example/",
    AUTH_AUDIENCE: "inventory"
  }

  it("refuses to start without a broker, naming AMQP_URL in one line", async () => {
    const result = await start(complete)
    expect(result.status).toBe(1)
    const lines = result.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Invalid configuration: AMQP_URL or AMQP_URL_FILE: required in production \(or EVENTS_LOG_ONLY=true/)
    expect(result.stdout).toBe("")
  })

  it("accepts log-only events in production only when EVENTS_LOG_ONLY=true says so", async () => {
    // Another production problem keeps the start short; the line then names only that one.
    const { DATABASE_URL_FILE: _, ...rest } = complete
    const result = await start({ ...rest, DATABASE_URL: "postgres://inv:pw@db.example/inv", EVENTS_LOG_ONLY: "true" })
    expect(result.status).toBe(1)
    expect(result.stderr.trim()).toMatch(/^Invalid configuration: DATABASE_URL: holds a password in plain config; use DATABASE_URL_FILE in production$/)
  })

  it("refuses two sources of token keys at once, in any environment", async () => {
    const result = await start({ DATABASE_URL_FILE: "/dev/null", AUTH_JWKS_URL: "https://auth.example/jwks", AUTH_PUBLIC_KEY: "not-used" })
    expect(result.status).toBe(1)
    expect(result.stderr.trim()).toMatch(/^Invalid configuration: AUTH_JWKS_URL and AUTH_PUBLIC_KEY\(_FILE\): set only one source of token keys$/)
  })

  it("runs the migrations with the database secret alone (the migration Job mounts nothing else)", async () => {
    const database = await createTestDatabase("migrateonly")
    try {
      const file = join(mkdtempSync(join(tmpdir(), "migrate-")), "database-url")
      writeFileSync(file, database.url)
      const result = await start({ NODE_ENV: "production", DATABASE_URL_FILE: file, LOG_LEVEL: "warn" }, "src/bin/migrate.ts", 110_000)
      expect(result.stderr).toBe("")
      expect(result.status).toBe(0)
      expect(result.stdout).toMatch(/^migrations applied: 0001_init/)
      expect((await query(database.url, "SELECT count(*)::int AS n FROM stock_levels"))[0]).toEqual({ n: 0 })
    } finally {
      await database.drop()
    }
  }, 120_000)
})
