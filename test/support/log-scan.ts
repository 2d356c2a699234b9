// Secrets that must never reach a log line: bearer tokens (any JWT), the test database password,
// private key material. Used on the logs of a whole test run (global-setup.ts) and by
// test/security/log-redaction.test.ts.
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const SECRETS: ReadonlyArray<readonly [string, RegExp]> = [
  ["a JWT", /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}/],
  ["the database password", /s3cret-db-password-/],
  ["private key material", /PRIVATE KEY-----|"d"\s*:\s*"[A-Za-z0-9_-]{16,}/]
]

export interface Leak {
  readonly file: string
  readonly line: number
  readonly what: string
}

export const findLeaks = (file: string, text: string): Array<Leak> =>
  text.split("\n").flatMap((line, i) => SECRETS.filter(([, pattern]) => pattern.test(line)).map(([what]) => ({ file, line: i + 1, what })))

export const scanLogDir = (dir: string): { readonly lines: number; readonly leaks: Array<Leak> } => {
  if (!existsSync(dir)) return { lines: 0, leaks: [] }
  let lines = 0
  const leaks: Array<Leak> = []
  for (const name of readdirSync(dir)) {
    const text = readFileSync(join(dir, name), "utf8")
    lines += text.split("\n").length - 1
    leaks.push(...findLeaks(name, text))
  }
  return { lines, leaks }
}
