// The checker's classification on made-up histories: it must see each anomaly it is there to find.
import { describe, expect, it } from "vitest"
import { check, History, type ObservedEvent } from "./checker.js"

let n = 0
const event = (correlationId: string | null, eventType: string, aggregateId: string, version?: number, eventId = `e-${++n}`): ObservedEvent => ({
  eventId,
  eventType,
  aggregateId,
  correlationId,
  version,
  receivedAt: 0,
  data: {}
})

const adjusted = (history: History, variantId: string, version: number) => {
  const op = history.begin("adjust")
  op.outcome = "ok"
  op.expects = ["StockLevelChangedEvent"]
  op.expectsVersion = { variantId, version }
  return op
}

describe("fault checker", () => {
  it("a clean run: nothing lost, duplicated, unexpected or out of order", () => {
    const history = new History("clean")
    const a = adjusted(history, "v", 2)
    const b = adjusted(history, "v", 3)
    const verdict = check(history, [event(a.correlationId, "StockLevelChangedEvent", "v", 2), event(b.correlationId, "StockLevelChangedEvent", "v", 3)])
    expect(verdict).toMatchObject({ ok: 2, lost: [], duplicated: 0, unexpected: [], outOfOrder: [] })
  })

  it("finds a lost change, and one whose event carries another version than the client saw", () => {
    const history = new History("lost")
    const a = adjusted(history, "v", 2)
    const b = adjusted(history, "v", 3)
    const verdict = check(history, [event(b.correlationId, "StockLevelChangedEvent", "v", 4)])
    expect(verdict.lost).toEqual([
      { correlationId: a.correlationId, missing: ["StockLevelChangedEvent", "StockLevelChangedEvent v@2"] },
      { correlationId: b.correlationId, missing: ["StockLevelChangedEvent v@3"] }
    ])
  })

  it("counts duplicates, allows events of unknown outcomes, flags events of refused or unknown changes", () => {
    const history = new History("dup")
    const a = adjusted(history, "v", 2)
    const unknown = history.begin("adjust")
    unknown.outcome = "info"
    const refused = history.begin("adjust")
    refused.outcome = "fail"
    const copy = event(a.correlationId, "StockLevelChangedEvent", "v", 2)
    const verdict = check(history, [
      copy,
      copy,
      event(unknown.correlationId, "StockLevelChangedEvent", "v", 3),
      event(refused.correlationId, "StockLevelChangedEvent", "v", 4),
      event("nobody", "StockLevelChangedEvent", "w", 2)
    ])
    expect(verdict.duplicated).toBe(1)
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected.map((e) => e.correlationId)).toEqual([refused.correlationId, "nobody"])
  })

  it("finds versions of a variant out of order, judging first copies only", () => {
    const history = new History("order")
    const a = adjusted(history, "v", 2)
    const b = adjusted(history, "v", 3)
    const first = event(a.correlationId, "StockLevelChangedEvent", "v", 2)
    // A redelivered copy of version 2 after 3 is fine; 3 before 2 is not.
    expect(check(history, [first, event(b.correlationId, "StockLevelChangedEvent", "v", 3), first]).outOfOrder).toEqual([])
    expect(check(history, [event(b.correlationId, "StockLevelChangedEvent", "v", 3), first]).outOfOrder).toEqual([{ variantId: "v", versions: [3, 2] }])
  })
})
