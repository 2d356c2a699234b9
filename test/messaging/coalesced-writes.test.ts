// Messaging.ts `coalesceWrites`: a batch of publishes leaves in a few socket writes instead of one per
// message, against the real RabbitMQ, with every message confirmed and delivered whole and in order.
// The same batch on a connection without it shows the test can fail (one write per message).
import amqp, { type ChannelModel } from "amqplib"
import type { Socket } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { coalesceWrites } from "../../src/layers/Messaging.js"
import { createTestVhost, type TestVhost } from "../support/broker.js"

const MESSAGES = 200
/** About the size of a stock-level event's envelope. */
const body = (n: number) => Buffer.from(JSON.stringify({ n, padding: "x".repeat(600) }))

/** Counts the socket's writes to the kernel: `_write` for one chunk, `_writev` for a corked run. */
const countWrites = (connection: ChannelModel) => {
  const socket = (connection.connection as unknown as { readonly stream: Socket }).stream
  const counter = { writes: 0 }
  const write = socket._write.bind(socket)
  const writev = socket._writev?.bind(socket)
  socket._write = (...args) => {
    counter.writes++
    write(...args)
  }
  if (writev !== undefined) {
    socket._writev = (...args) => {
      counter.writes++
      writev(...args)
    }
  }
  return counter
}

/** Publishes MESSAGES in one synchronous run (as the relay does), waits for every confirm, reads them back. */
const publishBatch = async (connection: ChannelModel, queue: string) => {
  const channel = await connection.createConfirmChannel()
  await channel.assertQueue(queue, { durable: true })
  const counter = countWrites(connection)
  const confirms = Array.from({ length: MESSAGES }, (_, n) =>
    new Promise<void>((resolve, reject) =>
      channel.publish("", queue, body(n), { persistent: true, messageId: String(n) }, (error: unknown) => (error ? reject(error) : resolve()))
    )
  )
  await Promise.all(confirms)
  const writes = counter.writes
  const received: Array<number> = []
  for (;;) {
    const message = await channel.get(queue, { noAck: true })
    if (message === false) break
    received.push((JSON.parse(message.content.toString()) as { n: number }).n)
  }
  await channel.close()
  return { writes, received }
}

describe("coalesced broker writes", () => {
  let vhost: TestVhost
  const connections: Array<ChannelModel> = []
  const connect = async () => {
    const connection = await amqp.connect(vhost.url(), { noDelay: true })
    connections.push(connection)
    return connection
  }

  beforeAll(async () => {
    vhost = await createTestVhost("coalesce")
  })
  afterAll(async () => {
    for (const connection of connections) await connection.close().catch(() => undefined)
    await vhost?.drop()
  })

  it("sends a batch of publishes in a few writes, every message confirmed and delivered in order", async () => {
    const connection = await connect()
    expect(coalesceWrites(connection)).toBe(true)
    const { writes, received } = await publishBatch(connection, "coalesced")
    expect(received).toEqual(Array.from({ length: MESSAGES }, (_, n) => n))
    // ~160 KB in runs of the socket's 16 KiB high-water mark: about ten writes, not 200.
    expect(writes).toBeLessThanOrEqual(MESSAGES / 10)
  })

  it("without it, amqplib writes each message on its own", async () => {
    const connection = await connect()
    const { writes, received } = await publishBatch(connection, "uncoalesced")
    expect(received).toEqual(Array.from({ length: MESSAGES }, (_, n) => n))
    expect(writes).toBeGreaterThanOrEqual(MESSAGES)
  })
})
