import { spawn, type ChildProcess } from "node:child_process"
import { TEST_AUDIENCE, TEST_ISSUER, testPublicKeyPem } from "./auth.js"

/** The process verifies tokens of test/support/auth.ts (`bearer()`), unless `env` says otherwise. */
const AUTH_ENV = { AUTH_PUBLIC_KEY: testPublicKeyPem, AUTH_ISSUER: TEST_ISSUER, AUTH_AUDIENCE: TEST_AUDIENCE }

export interface ServiceProcess {
  readonly baseUrl: string
  readonly child: ChildProcess
  /** Every line the process printed so far (stdout and stderr). */
  readonly output: Array<string>
  /** Resolves with the exit code once the process ends. */
  readonly exited: Promise<number | null>
  readonly kill: (signal?: NodeJS.Signals) => Promise<number | null>
}

/** Runs `src/main.ts` as its own process (as `npm start` would), on a free port. */
export const startService = (env: Record<string, string>, timeoutMs = 30_000): Promise<ServiceProcess> =>
  new Promise((resolve, reject) => {
    // SERVICE_NODE_FLAGS: extra node flags for the service alone (a bench's --cpu-prof, which NODE_OPTIONS refuses).
    const flags = (process.env["SERVICE_NODE_FLAGS"] ?? "").split(" ").filter((flag) => flag !== "")
    const child = spawn(process.execPath, [...flags, "--import", "tsx", "src/main.ts"], {
      env: { ...process.env, PORT: "0", LOG_LEVEL: "info", ...AUTH_ENV, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const output: Array<string> = []
    const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`service did not start in ${timeoutMs} ms:\n${output.join("\n")}`))
    }, timeoutMs)
    const onLine = (line: string) => {
      output.push(line)
      const match = /Listening on http:\/\/[^:]+:(\d+)/.exec(line)
      if (match) {
        clearTimeout(timer)
        resolve({
          baseUrl: `http://127.0.0.1:${match[1]}`,
          child,
          output,
          exited,
          kill: (signal = "SIGTERM") => {
            child.kill(signal)
            return exited
          }
        })
      }
    }
    for (const stream of [child.stdout!, child.stderr!]) {
      let buffer = ""
      stream.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("utf8")
        let newline: number
        while ((newline = buffer.indexOf("\n")) >= 0) {
          onLine(buffer.slice(0, newline))
          buffer = buffer.slice(newline + 1)
        }
      })
    }
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`service exited with ${code} before listening:\n${output.join("\n")}`))
    })
  })

/** Runs the service expecting it to refuse to start; returns its exit code and output. */
export const runToExit = (env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; output: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      env: { ...process.env, PORT: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (c: Buffer) => (output += c.toString()))
    child.stderr.on("data", (c: Buffer) => (output += c.toString()))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`did not exit in ${timeoutMs} ms: ${output}`))
    }, timeoutMs)
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
