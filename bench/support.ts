// Helpers shared by the benchmarks (bench/run.ts, bench/soak.ts): the database, the service process
// and what /proc says about it.
import type { ChildProcess } from "node:child_process"
import { readFileSync } from "node:fs"
import { createServer } from "node:net"
import pg from "pg"

export const ADMIN_URL = process.env["BENCH_DATABASE_ADMIN_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"

export const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

export const adminQuery = async (url: string, text: string) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(text)).rows
  } finally {
    await client.end()
  }
}

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
export const cpuSeconds = (pid: number | undefined): number => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return NaN
  }
}

/** Resident set size of a process in MiB, from /proc (Linux). */
export const rssMiB = (pid: number | undefined): number => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024
  } catch {
    return NaN
  }
}

export const waitReady = async (baseUrl: string, child: ChildProcess) => {
  for (let i = 0; i < 120; i++) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}`)
    const ok = await fetch(`${baseUrl}/health/ready`).then((r) => r.ok, () => false)
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  throw new Error("service not ready after 60 s")
}
