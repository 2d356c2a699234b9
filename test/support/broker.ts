import amqp, { type Channel, type ChannelModel, type ConsumeMessage, type Message } from "amqplib"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import net from "node:net"
import { promisify } from "node:util"

/** The RabbitMQ the messaging tests run against; each test file gets its own vhost. */
export const AMQP_BASE_URL = process.env["TEST_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672"
const RABBITMQCTL = process.env["RABBITMQCTL"] ?? "rabbitmqctl"

const rabbitmqctl = (...args: Array<string>) => promisify(execFile)(RABBITMQCTL, ["-q", ...args]).then(() => undefined)

export interface TestVhost {
  readonly name: string
  /** AMQP URL of the vhost, optionally through another host:port (a proxy). */
  readonly url: (port?: number) => string
  readonly drop: () => Promise<void>
}

/** A fresh vhost with full permissions for guest; `drop` deletes it with everything in it. */
export const createTestVhost = async (label: string): Promise<TestVhost> => {
  const name = `inv_${label.replace(/[^a-z0-9]/gi, "").toLowerCase().slice(0, 20)}_${randomBytes(4).toString("hex")}`
  await rabbitmqctl("add_vhost", name)
  await rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
  const base = new URL(AMQP_BASE_URL)
  return {
    name,
    url: (port) => {
      const url = new URL(base)
      if (port !== undefined) url.port = String(port)
      return `${url.protocol}//${url.username}:${url.password}@${url.hostname}:${url.port || 5672}/${encodeURIComponent(name)}`
    },
    drop: () => rabbitmqctl("delete_vhost", name)
  }
}

/** Polls until `check` returns a value (not undefined); fails after `timeoutMs` with the last state. */
export const eventually = async <A>(check: () => Promise<A | undefined> | A | undefined, timeoutMs = 30_000, what = "condition"): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A plain amqplib client as a peer service or an operator would use it. */
export interface Peer {
  readonly connection: ChannelModel
  readonly channel: Channel
  /** Binds a fresh exclusive queue to `exchange` and collects what arrives, in order. */
  readonly collect: (exchange: string, pattern?: string) => Promise<{ readonly queue: string; readonly messages: Array<ConsumeMessage> }>
  /** Publishes like a peer: persistent JSON with a message id. */
  readonly publish: (exchange: string, routingKey: string, body: unknown, options?: { messageId?: string; type?: string; headers?: Record<string, string> }) => Promise<void>
  /** Messages now in `queue` (taken and acked). */
  readonly drain: (queue: string) => Promise<Array<Message>>
  readonly close: () => Promise<void>
}

export const connectPeer = async (url: string): Promise<Peer> => {
  const connection = await amqp.connect(url)
  const channel = await connection.createConfirmChannel()
  return {
    connection,
    channel,
    collect: async (exchange, pattern = "#") => {
      const messages: Array<ConsumeMessage> = []
      const { queue } = await channel.assertQueue("", { exclusive: true })
      await channel.bindQueue(queue, exchange, pattern)
      await channel.consume(queue, (msg) => {
        if (msg) messages.push(msg)
      }, { noAck: true })
      return { queue, messages }
    },
    publish: async (exchange, routingKey, body, options = {}) => {
      const content = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === "string" ? body : JSON.stringify(body))
      channel.publish(exchange, routingKey, content, {
        persistent: true,
        contentType: "application/json",
        ...(options.messageId ? { messageId: options.messageId } : {}),
        ...(options.type ? { type: options.type } : {}),
        headers: options.headers ?? {}
      })
      await channel.waitForConfirms()
    },
    drain: async (queue) => {
      const out: Array<Message> = []
      for (;;) {
        const msg = await channel.get(queue, { noAck: true })
        if (msg === false) return out
        out.push(msg)
      }
    },
    close: async () => {
      await connection.close().catch(() => undefined)
    }
  }
}

/** A TCP proxy in front of the broker that a test can cut (every connection dropped, new ones refused) and restore. */
export interface BrokerProxy {
  readonly port: number
  readonly cut: () => void
  readonly restore: () => void
  readonly close: () => Promise<void>
}

export const startBrokerProxy = async (target = new URL(AMQP_BASE_URL)): Promise<BrokerProxy> => {
  const sockets = new Set<net.Socket>()
  let open = true
  const server = net.createServer((client) => {
    if (!open) {
      client.destroy()
      return
    }
    const upstream = net.connect(Number(target.port || 5672), target.hostname)
    const pair = [client, upstream]
    for (const socket of pair) {
      sockets.add(socket)
      socket.on("error", () => pair.forEach((s) => s.destroy()))
      socket.on("close", () => {
        pair.forEach((s) => s.destroy())
        sockets.delete(socket)
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    cut: () => {
      open = false
      for (const socket of sockets) socket.destroy()
    },
    restore: () => {
      open = true
    },
    close: async () => {
      open = false
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
