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
    const result = start({ NODE_ENV: "production", DATABASE_URL_FILE: "/dev/null", AUTH_JWKS_URL: "https://auth.example/jwks", AUTH_ISSUER: "https://auth.example/" })
    expect(result.status).toBe(1)
    expect(result.stderr.trim()).toMatch(/^Invalid configuration: AUTH_AUDIENCE: required in production$/)
  })

  it("refuses two sources of token keys at once, in any environment", () => {
    const result = start({ DATABASE_URL_FILE: "/dev/null", AUTH_JWKS_URL: "https://auth.example/jwks", AUTH_PUBLIC_KEY: "not-used" })
    expect(result.status).toBe(1)
    expect(result.stderr.trim()).toMatch(/^Invalid configuration: AUTH_JWKS_URL and AUTH_PUBLIC_KEY\(_FILE\): set only one source of token keys$/)
  })
})
