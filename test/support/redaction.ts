/**
 * What must never appear in a log line: a bearer token or JWT, an Authorization header value, a
 * password inside a connection URL, and any value a test names as secret.
 */
const SECRET_PATTERNS: ReadonlyArray<RegExp> = [
  /Bearer\s+[A-Za-z0-9._~+/=-]{8,}/i,
  /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\./, // JWT header.payload.
  /"authorization"\s*:\s*"[^"]/i,
  /[a-z][a-z0-9+.-]*:\/\/[^:@/\s"]+:[^@/\s"]+@/i // scheme://user:password@
]

/** The offending lines (trimmed), empty when the logs are clean. */
export const secretsIn = (lines: ReadonlyArray<string>, secrets: ReadonlyArray<string> = []): ReadonlyArray<string> =>
  lines
    .filter((line) => SECRET_PATTERNS.some((pattern) => pattern.test(line)) || secrets.some((secret) => line.includes(secret)))
    .map((line) => (line.length > 300 ? line.slice(0, 300) + "..." : line))
