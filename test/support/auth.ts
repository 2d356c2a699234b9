// Tokens for tests: a key pair made once per test process, configured into startTestApp as
// AUTH_PUBLIC_KEY, and helpers to sign good and deliberately bad tokens.
import { SignJWT, type JWTPayload } from "jose"
import { createHmac, generateKeyPairSync, type KeyObject } from "node:crypto"

export const TEST_ISSUER = "inventory-test-issuer"
export const TEST_AUDIENCE = "inventory-service"
export const ALL_SCOPES = "inventory:read inventory:reserve inventory:adjust"

const ecKeys = generateKeyPairSync("ec", { namedCurve: "P-256" })

/** The public key startTestApp configures (PEM, as AUTH_PUBLIC_KEY_FILE would hold it). */
export const testPublicKeyPem = ecKeys.publicKey.export({ type: "spki", format: "pem" }).toString()

/** A key the service does not know. */
export const unknownKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey

export interface TokenOptions {
  readonly scope?: string | undefined
  readonly sub?: string | undefined
  readonly issuer?: string
  readonly audience?: string
  /** Seconds from now; negative for an expired token. */
  readonly expiresIn?: number
  /** Seconds from now. */
  readonly notBefore?: number
  readonly key?: KeyObject
  readonly claims?: JWTPayload
}

const now = () => Math.floor(Date.now() / 1000)

/** An ES256 token signed with the test key (or `key`), valid for an hour unless told otherwise. */
export const signToken = (options: TokenOptions = {}): Promise<string> => {
  const claims: JWTPayload = { ...options.claims }
  if (options.scope !== undefined) claims["scope"] = options.scope
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", typ: "JWT" })
    .setIssuer(options.issuer ?? TEST_ISSUER)
    .setAudience(options.audience ?? TEST_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(now() + (options.expiresIn ?? 3600))
  if (options.sub !== undefined) jwt = jwt.setSubject(options.sub)
  if (options.notBefore !== undefined) jwt = jwt.setNotBefore(now() + options.notBefore)
  return jwt.sign(options.key ?? ecKeys.privateKey)
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

const validClaims = (scope = ALL_SCOPES) => ({
  sub: "attacker",
  scope,
  iss: TEST_ISSUER,
  aud: TEST_AUDIENCE,
  iat: now(),
  exp: now() + 3600
})

/** `alg: none`: claims every scope, no signature. */
export const unsignedToken = () => `${b64url({ alg: "none", typ: "JWT" })}.${b64url(validClaims())}.`

/** The classic confusion attack: HS256 with the service's PUBLIC key (PEM text) as the HMAC secret. */
export const hs256WithPublicKey = () => {
  const input = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(validClaims())}`
  return `${input}.${createHmac("sha256", testPublicKeyPem).update(input).digest("base64url")}`
}

/** `authorization` header with a valid token holding `scope` (all scopes by default). */
export const bearer = async (scope: string = ALL_SCOPES, sub = "test-client") => ({
  authorization: `Bearer ${await signToken({ scope, sub })}`
})
