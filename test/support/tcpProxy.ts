import { createServer, connect, type Server, type Socket } from "node:net"
import { setTimeout as sleep } from "node:timers/promises"

/** How the proxy treats the dependency while it is cut. */
export type CutMode =
  /** Not listening: connection attempts are refused (database host down, port closed). */
  | "refuse"
  /** Accepts, then resets at once (a database that crashes on connect). */
  | "reset"
  /** Accepts and never answers (a network partition): only client timeouts end the wait. */
  | "silent"

export interface TcpProxy {
  readonly port: number
  /** Drops every open connection and treats new ones according to `mode`. */
  readonly cut: (mode: CutMode) => Promise<void>
  /** Forwards new connections to the target again (and ends a one-way partition and any latency). */
  readonly restore: () => Promise<void>
  /** Cuts and restores `times` times: `downMs` cut, then `upMs` up (a flapping network path). */
  readonly flap: (options: { readonly times: number; readonly downMs: number; readonly upMs: number; readonly mode?: CutMode }) => Promise<void>
  /** Delays every chunk in both directions by `ms` (order kept): a slow network or an overloaded peer. 0 ends it. */
  readonly setLatency: (ms: number) => void
  /**
   * One-way partition: what the client sends still reaches the target, but nothing comes back
   * (a broker whose confirms are lost on the way). Open connections stay open; `restore` ends it.
   */
  readonly swallowReplies: (on: boolean) => void
  readonly close: () => Promise<void>
}

/** A TCP proxy on 127.0.0.1 that a test can cut, slow, partition and restore, to fault a dependency under a live service. */
export const startTcpProxy = async (target: { readonly host: string; readonly port: number }): Promise<TcpProxy> => {
  const sockets = new Set<Socket>()
  let mode: CutMode | "up" = "up"
  let latencyMs = 0
  let swallowing = false
  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => socket.destroy())
  }
  /** Forwards `from` → `to`, through the configured latency, keeping chunk order. */
  const forward = (from: Socket, to: Socket, isReply: boolean) => {
    let tail = Promise.resolve()
    from.on("data", (chunk: Buffer) => {
      if (isReply && swallowing) return
      const delay = latencyMs
      if (delay === 0) {
        tail = tail.then(() => {
          if (!to.destroyed) to.write(chunk)
        })
        return
      }
      tail = tail.then(async () => {
        await sleep(delay)
        if (!to.destroyed) to.write(chunk)
      })
    })
  }
  const server: Server = createServer((client) => {
    track(client)
    if (mode === "reset") {
      client.resetAndDestroy()
      return
    }
    if (mode === "silent") return
    const upstream = connect(target.port, target.host)
    track(upstream)
    forward(client, upstream, false)
    forward(upstream, client, true)
    client.on("close", () => upstream.destroy())
    upstream.on("close", () => client.destroy())
  })
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject)
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject)
        const address = server.address()
        resolve(typeof address === "object" && address !== null ? address.port : port)
      })
    })
  const stopListening = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))
  const port = await listen(0)
  const cut = async (next: CutMode) => {
    mode = next
    for (const socket of sockets) socket.destroy()
    if (next === "refuse") await stopListening()
  }
  const restore = async () => {
    for (const socket of sockets) socket.destroy()
    mode = "up"
    latencyMs = 0
    swallowing = false
    if (!server.listening) await listen(port)
  }
  return {
    port,
    cut,
    restore,
    flap: async ({ times, downMs, upMs, mode: flapMode = "refuse" }) => {
      for (let i = 0; i < times; i++) {
        await cut(flapMode)
        await sleep(downMs)
        await restore()
        await sleep(upMs)
      }
    },
    setLatency: (ms) => {
      latencyMs = Math.max(0, ms)
    },
    swallowReplies: (on) => {
      swallowing = on
    },
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await stopListening()
    }
  }
}
