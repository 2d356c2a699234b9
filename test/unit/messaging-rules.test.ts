import { Duration, Effect, Result } from "effect"
import { describe, expect, it } from "vitest"
import { decodeData, OrderCancelled, parseEnvelope, ProductVariantCreated } from "../../src/domain/ConsumedEvents.js"
import { retryDelay, toMessage, type OutboxRow } from "../../src/outbox/Relay.js"

const row = (over: Partial<OutboxRow> = {}): OutboxRow => ({
  id: "7",
  eventId: "0b6f3a52-5d4e-4f8e-9f3e-2f0c8d1c9a11",
  eventType: "StockLevelChangedEvent",
  routingKey: "inventory.stock_level_changed",
  aggregateId: "v-1",
  payload: { eventId: "0b6f3a52-5d4e-4f8e-9f3e-2f0c8d1c9a11", occurredAt: "2026-01-01T00:00:01.500Z", data: {} },
  correlationId: "corr-1",
  traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  tracestate: null,
  attempts: 0,
  createdAt: new Date("2026-01-01T00:00:01.500Z"),
  ...over
})

describe("the message of an outbox row", () => {
  it("carries the envelope as body and the ids, type, time and trace of EVENTS.md", () => {
    const message = toMessage(row())
    expect(message).toMatchObject({
      exchange: "inventory.events",
      routingKey: "inventory.stock_level_changed",
      messageId: "0b6f3a52-5d4e-4f8e-9f3e-2f0c8d1c9a11",
      type: "StockLevelChangedEvent",
      timestamp: 1767225601,
      headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x-correlation-id": "corr-1" }
    })
    expect(JSON.parse(message.body)).toEqual(row().payload)
  })

  it("leaves out headers it has no value for", () => {
    expect(toMessage(row({ correlationId: null, traceparent: null })).headers).toEqual({})
    expect(toMessage(row({ tracestate: "vendor=1" })).headers["tracestate"]).toBe("vendor=1")
  })
})

describe("the relay's retry schedule", () => {
  it("grows roughly exponentially from about a second and never exceeds five minutes", async () => {
    const delays = await Effect.runPromise(Effect.forEach([1, 2, 3, 4, 12, 30], (n) => Effect.map(retryDelay(n), Duration.toMillis)))
    expect(delays[0]).toBeGreaterThan(0)
    expect(delays[0]).toBeLessThanOrEqual(1_200) // jittered ±20 %
    expect(delays[3]!).toBeGreaterThan(delays[0]!)
    for (const delay of delays) expect(delay).toBeLessThanOrEqual(5 * 60_000)
    expect(delays[5]).toBe(5 * 60_000)
  })
})

describe("consumed messages", () => {
  it("parses the envelope and names what is wrong with a bad body", () => {
    expect(Result.isSuccess(parseEnvelope(JSON.stringify({ eventId: "e1", eventType: "OrderCancelledEvent", data: { orderId: "o-1" } })))).toBe(true)
    expect(parseEnvelope("{nope")).toEqual(Result.fail(expect.stringMatching(/^body is not JSON/)))
    expect(parseEnvelope(JSON.stringify({ eventType: "X", data: {} }))).toEqual(Result.fail(expect.stringMatching(/eventId/)))
  })

  it("decodes event data against the contract", () => {
    const envelope = (data: unknown) => ({ eventId: "e", eventType: "ProductVariantCreatedEvent", data })
    expect(decodeData(ProductVariantCreated, envelope({ variantId: "v-1", sku: "S" }))).toEqual(Result.succeed({ variantId: "v-1", sku: "S" }))
    expect(decodeData(ProductVariantCreated, envelope({ variantId: "v-1" }))).toEqual(Result.succeed({ variantId: "v-1" }))
    expect(Result.isFailure(decodeData(ProductVariantCreated, envelope({ variantId: "bad id" })))).toBe(true)
    expect(Result.isFailure(decodeData(OrderCancelled, { ...envelope({}), eventType: "OrderCancelledEvent" }))).toBe(true)
  })
})
