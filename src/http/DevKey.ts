import { Data, Effect } from "effect"
import { calculateJwkThumbprint, type JWK } from "jose"
import { generateKeyPairSync } from "node:crypto"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

/**
 * The development key pair: made once under DATA_DIR when NODE_ENV is not production and no key is
 * configured, so `npm start` works out of the box and `npm run token` can sign tokens it accepts.
 * Production refuses to start without a real key source (layers/Config.ts), so this never guards
 * real data.
 */
export interface DevKeyPair {
  readonly privateJwk: JWK
  readonly publicJwk: JWK
  readonly path: string
}

export class DevKeyError extends Data.TaggedError("DevKeyError")<{ readonly message: string }> {}

export const DEV_ALGORITHM = "ES256"

export const devKeyPath = (dataDir: string) => join(dataDir, "dev-auth", "signing-key.jwk.json")

const publicPart = (jwk: JWK): JWK => {
  const { d, ...rest } = jwk
  void d
  return { ...rest, use: "sig" }
}

const parse = (path: string, text: string): DevKeyPair => {
  const privateJwk = JSON.parse(text) as JWK
  if (privateJwk.kty !== "EC" || privateJwk.crv !== "P-256" || typeof privateJwk.d !== "string") {
    throw new Error("not an EC P-256 private JWK")
  }
  return { privateJwk, publicJwk: publicPart(privateJwk), path }
}

/** Reads the key pair, or makes it (private file 0600 in a 0700 folder); safe when two processes race. */
export const loadOrCreateDevKey = (dataDir: string): Effect.Effect<DevKeyPair, DevKeyError> =>
  Effect.tryPromise({
    try: async () => {
      const path = devKeyPath(dataDir)
      try {
        return parse(path, readFileSync(path, "utf8"))
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
      }
      const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
      const jwk = privateKey.export({ format: "jwk" }) as JWK
      const privateJwk: JWK = { ...jwk, alg: DEV_ALGORITHM, kid: await calculateJwkThumbprint(jwk) }
      mkdirSync(join(dataDir, "dev-auth"), { recursive: true, mode: 0o700 })
      try {
        writeFileSync(path, JSON.stringify(privateJwk) + "\n", { flag: "wx", mode: 0o600 })
      } catch (error) {
        // Another process made it first: use theirs, so both sign and verify with one key.
        if ((error as NodeJS.ErrnoException).code === "EEXIST") return parse(path, readFileSync(path, "utf8"))
        throw error
      }
      return parse(path, JSON.stringify(privateJwk))
    },
    catch: (error) =>
      new DevKeyError({
        message: `cannot read or create the development key ${devKeyPath(dataDir)}: ${error instanceof Error ? error.message : String(error)}`
      })
  })
