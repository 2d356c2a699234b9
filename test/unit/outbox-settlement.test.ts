import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { settle } from "../../src/outbox/Settlement.js"

const row = (id: string, aggregateId: string) => ({ id, aggregateId })
const ok = Result.succeed(undefined)
const timeout = Result.fail("no confirm from the broker in time")

describe("settling a published batch", () => {
  it("holds back an aggregate's later events behind a confirm timeout in the middle of the batch, even if confirmed", () => {
    const rows = [row("1", "a"), row("2", "b"), row("3", "a"), row("4", "a"), row("5", "b")]
    const result = settle(rows, [ok, ok, timeout, ok, ok])
    expect(result.published.map((r) => r.id)).toEqual(["1", "2", "5"])
    expect(result.failed).toEqual([{ row: row("3", "a"), failure: "no confirm from the broker in time" }])
    expect(result.heldBack.map((r) => r.id)).toEqual(["4"])
  })

  it("counts only the first failure of an aggregate; the rest wait behind it", () => {
    const result = settle([row("1", "a"), row("2", "a"), row("3", "a")], [Result.fail("refused"), Result.fail("refused"), ok])
    expect(result.failed.map((f) => f.row.id)).toEqual(["1"])
    expect(result.heldBack.map((r) => r.id)).toEqual(["2", "3"])
    expect(result.published).toEqual([])
  })
})
