// `npm run token -- --scope "inventory:read inventory:reserve" [--sub my-service] [--ttl 3600]`
// prints a token signed with the development key of DATA_DIR (made if missing), for the issuer and
// audience the service is configured with. Refuses in production: real tokens come from the
// platform's identity provider.
import { Effect } from "effect"
import { importJWK, SignJWT } from "jose"
import { parseArgs } from "node:util"
import { SCOPES } from "../domain/Caller.js"
import { loadConfig } from "../layers/Config.js"
import { DEV_ALGORITHM, loadOrCreateDevKey } from "../http/DevKey.js"

const usage = `usage: npm run token -- [--scope "${SCOPES.join(" ")}"] [--sub dev-client] [--ttl 3600]`

const fail = (message: string): never => {
  process.stderr.write(`${message}\n`)
  process.exit(1)
}

const program = Effect.gen(function* () {
  const { values } = yield* Effect.try({
    try: () =>
      parseArgs({
        options: { scope: { type: "string", default: SCOPES.join(" ") }, sub: { type: "string", default: "dev-client" }, ttl: { type: "string", default: "3600" } }
      }),
    catch: (error) => new Error(`${(error as Error).message}\n${usage}`)
  })
  const ttl = Number(values.ttl)
  if (!Number.isInteger(ttl) || ttl <= 0) return fail(`--ttl must be a positive number of seconds\n${usage}`)
  const unknown = values.scope.split(" ").filter((s) => s !== "" && !(SCOPES as ReadonlyArray<string>).includes(s))
  if (unknown.length > 0) return fail(`unknown scope(s): ${unknown.join(", ")}\n${usage}`)
  const config = yield* loadConfig
  if (config.nodeEnv === "production") return fail("npm run token signs with the development key; it does not run with NODE_ENV=production")
  const pair = yield* loadOrCreateDevKey(config.dataDir)
  const key = yield* Effect.promise(() => importJWK(pair.privateJwk, DEV_ALGORITHM))
  const token = yield* Effect.promise(() =>
    new SignJWT({ scope: values.scope })
      .setProtectedHeader({ alg: DEV_ALGORITHM, kid: pair.privateJwk.kid ?? "dev", typ: "JWT" })
      .setSubject(values.sub)
      .setIssuer(config.authIssuer)
      .setAudience(config.authAudience)
      .setIssuedAt()
      .setExpirationTime(`${ttl}s`)
      .sign(key)
  )
  process.stdout.write(token + "\n")
})

Effect.runPromise(program).catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)))
