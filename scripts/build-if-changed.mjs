// `npm start`: compile only when a source is newer than the last build, so an unchanged checkout
// starts in about a second instead of waiting for tsc. Any doubt (no build yet) → build.
import { execFileSync } from "node:child_process"
import { existsSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"

const STAMP = "dist/src/main.js"
const INPUTS = ["src", "package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json"]

const newest = (path) => {
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return readdirSync(path).reduce((latest, name) => Math.max(latest, newest(join(path, name))), stat.mtimeMs)
}

const built = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0
const changed = INPUTS.filter((input) => existsSync(input) && newest(input) > built)
if (built === 0 || changed.length > 0) {
  process.stderr.write(`build: ${built === 0 ? "no build yet" : `changed since the last build: ${changed.join(", ")}`}\n`)
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" })
}
