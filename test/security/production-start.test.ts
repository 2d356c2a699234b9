// With NODE_ENV=production the service refuses to start without a real key source, issuer and
// audience: one line on stderr naming the variables, exit code 1, no stack trace.
import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"

const root = new URL("../../", import.meta.url).pathname

const start = (env: Record<string, string>) =>
  spawnSync(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: root,
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", ...env },
    encoding: "utf8",
    timeout: 30_000
  })

describe("production start-up", () => {
  it("refuses to start without a key source, issuer and audience, in one clear line", () => {
    const result = start({ NODE_ENV: "production", DATABASE_URL_FILE: "/dev/null" })
    expect(result.status).toBe(1)
    const lines = result.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Invalid configuration: .*AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE: required in production/)
    expect(lines[0]).toMatch(/AUTH_ISSUER: required in production/)
    expect(lines[0]).toMatch(/AUTH_AUDIENCE: required in production/)
    expect(result.stdout).toBe("")
  })

  it("names only what is missing", () => {
    const result = start({
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

  it("refuses to start without a broker, naming AMQP_URL in one line", () => {
    const result = start(complete)
    expect(result.status).toBe(1)
    const lines = result.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Invalid configuration: AMQP_URL or AMQP_URL_FILE: required in production \(or EVENTS_LOG_ONLY=true/)
    expect(result.stdout).toBe("")
  })

  it("accepts log-only events in production only when EVENTS_LOG_ONLY=true says so", () => {
    // Another production problem keeps the start short; the line then names only that one.
    const { DATABASE_URL_FILE: _, ...rest } = complete
    const result = start({ ...rest, DATABASE_URL: "postgres://inv:pw@db.example/inv", EVENTS_LOG_ONLY: "true" })
    expect(result.status).toBe(1)
    expect(result.stderr.trim()).toMatch(/^Invalid configuration: DATABASE_URL: holds a password in plain config; use DATABASE_URL_FILE in production$/)
  })

  it("refuses two sources of token keys at once, in any environment", () => {
    const result = start({ DATABASE_URL_FILE: "/dev/null", AUTH_JWKS_URL: "https://auth.example/jwks", AUTH_PUBLIC_KEY: "not-used" })
    expect(result.status).toBe(1)
    expect(result.stderr.trim()).toMatch(/^Invalid configuration: AUTH_JWKS_URL and AUTH_PUBLIC_KEY\(_FILE\): set only one source of token keys$/)
  })
})
