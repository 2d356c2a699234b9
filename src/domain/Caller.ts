/**
 * Who is calling, as far as the service cares: a verified token's subject and its scopes (API.md).
 * Pure rules, no I/O: the HTTP layer verifies the token and asks these questions of its claims.
 */
export const SCOPES = ["inventory:read", "inventory:reserve", "inventory:adjust"] as const
export type Scope = (typeof SCOPES)[number]

export interface Caller {
  /** `sub`, else `azp`, else `client_id`: the peer service the token was issued to. */
  readonly id: string
  readonly scopes: ReadonlySet<string>
}

/** Longest caller id kept (logs, `actor` columns); longer ones are refused as malformed tokens. */
export const MAX_CALLER_ID_LENGTH = 256

/** Control characters would let a caller id forge log lines. */
const hasControlCharacter = (s: string) => [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)

const nonEmptyString = (value: unknown): value is string => typeof value === "string" && value.length > 0

/**
 * The scopes a token grants: the space-separated `scope` claim (RFC 8693), or the `scp` array some
 * identity providers issue instead.
 */
export const scopesOf = (claims: Readonly<Record<string, unknown>>): ReadonlySet<string> => {
  const scope = claims["scope"]
  if (typeof scope === "string") return new Set(scope.split(" ").filter((s) => s.length > 0))
  const scp = claims["scp"]
  if (Array.isArray(scp)) return new Set(scp.filter(nonEmptyString))
  return new Set()
}

/** The caller a token identifies, or undefined when it names none (such a token is refused). */
export const callerOf = (claims: Readonly<Record<string, unknown>>): Caller | undefined => {
  const id = [claims["sub"], claims["azp"], claims["client_id"]].find(nonEmptyString)
  if (id === undefined || id.length > MAX_CALLER_ID_LENGTH || hasControlCharacter(id)) return undefined
  return { id, scopes: scopesOf(claims) }
}

export const hasScope = (caller: Caller, scope: Scope): boolean => caller.scopes.has(scope)
