// Where verification keys come from: a JWKS URL (cached, re-fetched on an unknown kid, bounded by a
// timeout), a configured JWK set, PEM keys of each accepted type; and the refusal of unusable keys.
import { Effect, Exit } from "effect"
import { exportJWK, SignJWT } from "jose"
import { generateKeyPairSync, type KeyObject } from "node:crypto"
import { createServer, type Server } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { configFromMap } from "../../src/layers/Config.js"
import { TokenVerifier } from "../../src/http/Auth.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { TEST_AUDIENCE, TEST_ISSUER } from "../support/auth.js"
import { request } from "../support/http.js"

const ec = () => generateKeyPairSync("ec", { namedCurve: "P-256" })

const sign = (key: KeyObject, alg: string, kid?: string) =>
  new SignJWT({ scope: "inventory:read" })
    .setProtectedHeader(kid === undefined ? { alg } : { alg, kid })
    .setSubject("keys-test")
    .setIssuer(TEST_ISSUER)
    .setAudience(TEST_AUDIENCE)
    .setExpirationTime("5m")
    .sign(key)

const publicJwk = async (key: KeyObject, kid: string) => ({ ...(await exportJWK(key)), kid, use: "sig" })

/** A key server on a free loopback port whose answer the test changes. */
const keyServer = async () => {
  let keys: Array<unknown> = []
  let hang = false
  let fetches = 0
  const server: Server = createServer((_, res) => {
    fetches++
    if (hang) return // never answers
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys }))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    setKeys: (k: Array<unknown>) => void (keys = k),
    setHang: (h: boolean) => void (hang = h),
    fetches: () => fetches,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}

const get = (app: TestApp, token: string) =>
  request(app.baseUrl, "GET", "/v1/stock-levels/none", { headers: { authorization: `Bearer ${token}` } })

describe("keys from AUTH_JWKS_URL", () => {
  let app: TestApp
  let jwks: Awaited<ReturnType<typeof keyServer>>
  const first = ec()
  const second = ec()
  beforeAll(async () => {
    jwks = await keyServer()
    jwks.setKeys([await publicJwk(first.publicKey, "key-1")])
    app = await startTestApp({ label: "jwks", env: { AUTH_JWKS_URL: jwks.url, AUTH_PUBLIC_KEY: "", AUTH_JWKS_TIMEOUT_MS: "300", AUTH_JWKS_COOLDOWN_MS: "0" } })
  })
  afterAll(async () => {
    await app?.close()
    await jwks?.close()
  })

  it("verifies tokens with the fetched keys and caches them", async () => {
    expect((await get(app, await sign(first.privateKey, "ES256", "key-1"))).status).toBe(404)
    const fetched = jwks.fetches()
    expect((await get(app, await sign(first.privateKey, "ES256", "key-1"))).status).toBe(404)
    expect(jwks.fetches()).toBe(fetched)
  })

  it("re-fetches the set for a token with an unknown kid (key rotation), then refuses keys it still lacks", async () => {
    jwks.setKeys([await publicJwk(first.publicKey, "key-1"), await publicJwk(second.publicKey, "key-2")])
    expect((await get(app, await sign(second.privateKey, "ES256", "key-2"))).status).toBe(404)
    const unknown = await get(app, await sign(ec().privateKey, "ES256", "key-3"))
    expect(unknown.status).toBe(401)
    expect(unknown.body.detail).toMatch(/unknown key/)
  })

  it("answers 503 with Retry-After, not a hang, when the key server does not answer in time", async () => {
    jwks.setHang(true)
    const res = await startTestApp({ label: "jwkshang", env: { AUTH_JWKS_URL: jwks.url, AUTH_PUBLIC_KEY: "", AUTH_JWKS_TIMEOUT_MS: "200" } }).then(async (slow) => {
      try {
        return await get(slow, await sign(first.privateKey, "ES256", "key-1"))
      } finally {
        await slow.close()
      }
    })
    jwks.setHang(false)
    expect(res.status).toBe(503)
    expect(res.headers.get("content-type")).toBe("application/problem+json")
    expect(res.body.code).toBe("unavailable")
    expect(res.headers.get("retry-after")).toBeTruthy()
  })
})

describe("keys from AUTH_JWKS_URL while the key server is down", () => {
  let app: TestApp
  let jwks: Awaited<ReturnType<typeof keyServer>>
  const key = ec()
  // Each request a token never seen before (a new subject), so nothing comes from the verified-token cache.
  let n = 0
  const fresh = () =>
    new SignJWT({ scope: "inventory:read" })
      .setProtectedHeader({ alg: "ES256", kid: "idp-1" })
      .setSubject(`stale-test-${n++}`)
      .setIssuer(TEST_ISSUER)
      .setAudience(TEST_AUDIENCE)
      .setExpirationTime("5m")
      .sign(key.privateKey)
  const staleGauge = async () => /^inventory_auth_jwks_stale(\{[^}]*\})? (\d)/m.exec(await (await fetch(`${app.baseUrl}/metrics`)).text())?.[2]
  const MAX_AGE_MS = 500
  const GRACE_SECONDS = 4

  beforeAll(async () => {
    jwks = await keyServer()
    jwks.setKeys([await publicJwk(key.publicKey, "idp-1")])
    app = await startTestApp({
      label: "jwksstale",
      env: {
        AUTH_JWKS_URL: jwks.url,
        AUTH_PUBLIC_KEY: "",
        AUTH_JWKS_TIMEOUT_MS: "200",
        AUTH_JWKS_MAX_AGE_MS: String(MAX_AGE_MS),
        AUTH_JWKS_STALE_GRACE_SECONDS: String(GRACE_SECONDS)
      }
    })
  })
  afterAll(async () => {
    await app?.close()
    await jwks?.close()
  })

  it("keeps verifying with the last keys fetched for the grace period, says so, then answers 503; fresh keys end it", async () => {
    expect((await get(app, await fresh())).status).toBe(404)
    const fetchedAt = Date.now()
    jwks.setHang(true)
    await new Promise((resolve) => setTimeout(resolve, MAX_AGE_MS + 200))

    // Past the keys' age, the key server silent: new tokens still verify with the old keys.
    for (let i = 0; i < 3; i++) expect((await get(app, await fresh())).status).toBe(404)
    expect(await staleGauge()).toBe("1")
    expect(app.logs().some((line) => line.includes("JWKS key server unreachable; verifying with the last fetched keys"))).toBe(true)
    // A kid the old keys lack may be a new key: the key server's fault, not the token's.
    const unknownKid = await get(app, await sign(ec().privateKey, "ES256", "idp-2"))
    expect(unknownKid.status).toBe(503)

    // After the grace period: 503 with Retry-After, not a wrong 401.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, fetchedAt + MAX_AGE_MS + GRACE_SECONDS * 1000 + 200 - Date.now())))
    const late = await get(app, await fresh())
    expect(late.status).toBe(503)
    expect(late.body.code).toBe("unavailable")
    expect(late.headers.get("retry-after")).toBeTruthy()

    jwks.setHang(false)
    expect((await get(app, await fresh())).status).toBe(404)
    expect(await staleGauge()).toBe("0")
  })
})

/** Builds only the verifier: enough to check a key configuration without a database. */
const verifierWith = (env: Record<string, string>) =>
  Effect.runPromiseExit(
    Effect.flatMap(TokenVerifier, (v) => Effect.succeed(v)).pipe(
      Effect.provide(TokenVerifier.layer),
      Effect.provide(configFromMap({ AUTH_ISSUER: TEST_ISSUER, AUTH_AUDIENCE: TEST_AUDIENCE, ...env }))
    )
  )

const verify = async (env: Record<string, string>, token: string) => {
  const exit = await verifierWith(env)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return Effect.runPromiseExit(exit.value.verify(token))
}

describe("keys from AUTH_PUBLIC_KEY", () => {
  it.each([
    ["an RSA 2048 PEM key with RS256", () => generateKeyPairSync("rsa", { modulusLength: 2048 }), "RS256"],
    ["an EC P-256 PEM key with ES256", ec, "ES256"],
    ["an Ed25519 PEM key with EdDSA", () => generateKeyPairSync("ed25519"), "EdDSA"]
  ])("accepts %s", async (_, make, alg) => {
    const pair = make()
    const pem = pair.publicKey.export({ type: "spki", format: "pem" }).toString()
    const exit = await verify({ AUTH_PUBLIC_KEY: pem }, await sign(pair.privateKey, alg))
    expect(Exit.isSuccess(exit) && exit.value.id).toBe("keys-test")
  })

  it("accepts a JWK set holding the old and the new key during a rotation", async () => {
    const old = ec()
    const next = ec()
    const env = { AUTH_PUBLIC_KEY: JSON.stringify({ keys: [await publicJwk(old.publicKey, "old"), await publicJwk(next.publicKey, "new")] }) }
    expect(Exit.isSuccess(await verify(env, await sign(old.privateKey, "ES256", "old")))).toBe(true)
    expect(Exit.isSuccess(await verify(env, await sign(next.privateKey, "ES256", "new")))).toBe(true)
  })

  it("reads the key from AUTH_PUBLIC_KEY_FILE", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs")
    const { join } = await import("node:path")
    const { tmpdir } = await import("node:os")
    const pair = ec()
    const file = join(mkdtempSync(join(tmpdir(), "inv-key-")), "auth-public-key")
    writeFileSync(file, pair.publicKey.export({ type: "spki", format: "pem" }))
    expect(Exit.isSuccess(await verify({ AUTH_PUBLIC_KEY_FILE: file }, await sign(pair.privateKey, "ES256")))).toBe(true)
  })

  it.each([
    ["a private key", () => ec().privateKey.export({ type: "pkcs8", format: "pem" }).toString(), /private key/],
    ["an HMAC secret as a JWK", () => JSON.stringify({ kty: "oct", k: "c2VjcmV0" }), /public RSA, EC P-256 or Ed25519/],
    ["a 1024-bit RSA key", () => generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ type: "spki", format: "pem" }).toString(), /2048/],
    ["garbage", () => "hello", /not a PEM public key/]
  ])("refuses to start with %s, naming the variable", async (_, value, message) => {
    const exit = await verifierWith({ AUTH_PUBLIC_KEY: value() })
    expect(Exit.isFailure(exit)).toBe(true)
    const text = String(Exit.isFailure(exit) ? exit.cause : "")
    expect(text).toMatch(/AUTH_PUBLIC_KEY: /)
    expect(text).toMatch(message)
  })
})

describe("verified tokens remembered by the verifier", () => {
  const pair = ec()
  const env = { AUTH_PUBLIC_KEY: pair.publicKey.export({ type: "spki", format: "pem" }).toString(), AUTH_CLOCK_SKEW_SECONDS: "0" }
  const verifier = async () => {
    const exit = await verifierWith(env)
    if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
    return exit.value
  }
  const signExpiringIn = (seconds: number, scope = "inventory:read") =>
    new SignJWT({ scope })
      .setProtectedHeader({ alg: "ES256" })
      .setSubject("cache-test")
      .setIssuer(TEST_ISSUER)
      .setAudience(TEST_AUDIENCE)
      .setExpirationTime(Math.floor(Date.now() / 1000) + seconds)
      .sign(pair.privateKey)

  it("answers a token it verified again, but still refuses any other text, e.g. a tampered signature", async () => {
    const v = await verifier()
    const token = await signExpiringIn(300)
    for (let i = 0; i < 3; i++) {
      const exit = await Effect.runPromiseExit(v.verify(token))
      expect(Exit.isSuccess(exit) && [exit.value.id, [...exit.value.scopes]]).toEqual(["cache-test", ["inventory:read"]])
    }
    const [head, body, signature] = token.split(".")
    const tampered = `${head}.${body}.${signature!.slice(0, -2)}${signature!.endsWith("AA") ? "BB" : "AA"}`
    const refused = await Effect.runPromiseExit(v.verify(tampered))
    expect(Exit.isFailure(refused) && String(refused.cause)).toMatch(/signature|malformed/)
  })

  it("refuses a remembered token once it has expired", async () => {
    const v = await verifier()
    // exp is whole seconds: at least 1 s and at most 2 s from now.
    const token = await signExpiringIn(2)
    expect(Exit.isSuccess(await Effect.runPromiseExit(v.verify(token)))).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 2_100))
    const late = await Effect.runPromiseExit(v.verify(token))
    expect(Exit.isFailure(late) && String(late.cause)).toMatch(/expired/)
  })
})
