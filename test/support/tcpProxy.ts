import { createServer, connect, type Server, type Socket } from "node:net"

/** How the proxy treats the database while it is cut. */
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
  /** Forwards new connections to the target again. */
  readonly restore: () => Promise<void>
  readonly close: () => Promise<void>
}

/** A TCP proxy on 127.0.0.1 that a test can cut and restore, to take a dependency away under a live service. */
export const startTcpProxy = async (target: { readonly host: string; readonly port: number }): Promise<TcpProxy> => {
  const sockets = new Set<Socket>()
  let mode: CutMode | "up" = "up"
  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => socket.destroy())
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
    client.pipe(upstream)
    upstream.pipe(client)
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
  return {
    port,
    cut: async (next) => {
      mode = next
      for (const socket of sockets) socket.destroy()
      if (next === "refuse") await stopListening()
    },
    restore: async () => {
      for (const socket of sockets) socket.destroy()
      mode = "up"
      if (!server.listening) await listen(port)
    },
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await stopListening()
    }
  }
}
