// Captures the service's log lines of the whole run (startTestApp writes them at debug level to
// TEST_LOG_DIR) and fails the run if any of them holds a token, the database password or a key.
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { scanLogDir } from "./log-scan.js"

export default function setup() {
  const dir = (process.env["TEST_LOG_DIR"] ??= join(process.cwd(), ".tmp", "test-logs", `run-${Date.now()}-${process.pid}`))
  mkdirSync(dir, { recursive: true })
  return () => {
    const { lines, leaks } = scanLogDir(dir)
    if (leaks.length > 0) {
      throw new Error(`secrets in the service logs of this run (${dir}):\n${leaks.map((l) => `  ${l.file}:${l.line}: ${l.what}`).join("\n")}`)
    }
    process.stdout.write(`log scan: ${lines} service log lines in ${dir}, no token, password or key\n`)
  }
}
