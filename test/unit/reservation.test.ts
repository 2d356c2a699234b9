import { Result, Schema } from "effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  commitTransition,
  decideLines,
  lineChange,
  mergeLines,
  releaseTransition,
  ReservationRequest,
  sameLines
} from "../../src/domain/Reservation.js"

const decodeRequest = Schema.decodeUnknownResult(ReservationRequest)
const at = (iso: string) => new Date(iso)
const NOW = at("2026-01-01T00:10:00Z").getTime()
const FUTURE = at("2026-01-01T00:15:00Z")
const PAST = at("2026-01-01T00:05:00Z")

describe("mergeLines", () => {
  it("sums the quantities of a repeated variant and orders lines by variant id", () => {
    expect(
      mergeLines([
        { variantId: "b", quantity: 2 },
        { variantId: "a", quantity: 1 },
        { variantId: "b", quantity: 3 }
      ]).map((l) => [l.variantId, l.quantity])
    ).toEqual([
      ["a", 1],
      ["b", 5]
    ])
  })

  it("keeps the total per variant whatever the order and splitting (property)", () => {
    const line = fc.record({ variantId: fc.constantFrom("a", "b", "c", "d"), quantity: fc.integer({ min: 1, max: 10 }) })
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 20 }), (lines) => {
        const merged = mergeLines(lines)
        const ids = merged.map((l) => l.variantId)
        expect(ids).toEqual([...new Set(ids)].sort())
        for (const { variantId, quantity } of merged) {
          expect(quantity).toBe(lines.filter((l) => l.variantId === variantId).reduce((s, l) => s + l.quantity, 0))
        }
        expect(sameLines(lines, [...lines].reverse())).toBe(true)
      })
    )
  })

  it("tells different lines apart", () => {
    expect(sameLines([{ variantId: "a", quantity: 1 }], [{ variantId: "a", quantity: 2 }])).toBe(false)
    expect(sameLines([{ variantId: "a", quantity: 1 }], [{ variantId: "a", quantity: 1 }, { variantId: "b", quantity: 1 }])).toBe(false)
    expect(sameLines([{ variantId: "a", quantity: 2 }], [{ variantId: "a", quantity: 1 }, { variantId: "a", quantity: 1 }])).toBe(true)
  })
})

describe("ReservationRequest", () => {
  const line = { variantId: "v-1", quantity: 1 }
  it("accepts 1 to 100 lines and a ttl of 1 to 86400 seconds", () => {
    expect(Result.isSuccess(decodeRequest({ orderId: "o-1", lines: [line] }))).toBe(true)
    expect(Result.isSuccess(decodeRequest({ orderId: "o-1", lines: Array(100).fill(line), ttlSeconds: 86_400 }))).toBe(true)
  })
  it.each([
    ["no lines", { orderId: "o-1", lines: [] }],
    ["101 lines", { orderId: "o-1", lines: Array(101).fill(line) }],
    ["quantity 0", { orderId: "o-1", lines: [{ variantId: "v", quantity: 0 }] }],
    ["quantity over 1,000,000", { orderId: "o-1", lines: [{ variantId: "v", quantity: 1_000_001 }] }],
    ["merged quantity over 1,000,000", { orderId: "o-1", lines: [{ variantId: "v", quantity: 600_000 }, { variantId: "v", quantity: 600_000 }] }],
    ["fractional quantity", { orderId: "o-1", lines: [{ variantId: "v", quantity: 1.5 }] }],
    ["ttl 0", { orderId: "o-1", lines: [line], ttlSeconds: 0 }],
    ["ttl over a day", { orderId: "o-1", lines: [line], ttlSeconds: 86_401 }],
    ["bad orderId", { orderId: "o 1", lines: [line] }],
    ["bad variantId", { orderId: "o-1", lines: [{ variantId: "", quantity: 1 }] }]
  ])("refuses %s", (_, body) => {
    expect(Result.isFailure(decodeRequest(body))).toBe(true)
  })
})

describe("decideLines", () => {
  const stock = new Map([
    ["a", { onHand: 5, reserved: 2 }],
    ["b", { onHand: 1, reserved: 1 }]
  ])
  it("reserves when every line fits what is available", () => {
    expect(Result.isSuccess(decideLines(mergeLines([{ variantId: "a", quantity: 3 }]), stock))).toBe(true)
  })
  it("lists every failing line, unknown variants and insufficient stock alike", () => {
    const decision = decideLines(
      mergeLines([
        { variantId: "a", quantity: 4 },
        { variantId: "b", quantity: 1 },
        { variantId: "x", quantity: 2 }
      ]),
      stock
    )
    expect(Result.isFailure(decision) && decision.failure.map((f) => ({ ...f }))).toEqual([
      { variantId: "a", requested: 4, available: 3, reason: "INSUFFICIENT_STOCK" },
      { variantId: "b", requested: 1, available: 0, reason: "INSUFFICIENT_STOCK" },
      { variantId: "x", requested: 2, available: 0, reason: "UNKNOWN_VARIANT" }
    ])
  })
})

describe("transitions", () => {
  const active = { status: "ACTIVE" as const, expiresAt: FUTURE }
  const due = { status: "ACTIVE" as const, expiresAt: PAST }
  it("releases an ACTIVE reservation, expires a due one, keeps RELEASED/EXPIRED, refuses COMMITTED", () => {
    expect(releaseTransition("o", active, NOW)).toEqual(Result.succeed("release"))
    expect(releaseTransition("o", due, NOW)).toEqual(Result.succeed("expire"))
    expect(releaseTransition("o", { status: "RELEASED", expiresAt: FUTURE }, NOW)).toEqual(Result.succeed("unchanged"))
    expect(releaseTransition("o", { status: "EXPIRED", expiresAt: PAST }, NOW)).toEqual(Result.succeed("unchanged"))
    const refused = releaseTransition("o", { status: "COMMITTED", expiresAt: FUTURE }, NOW)
    expect(Result.isFailure(refused) && refused.failure.reservationStatus).toBe("COMMITTED")
  })
  it("commits an ACTIVE reservation, keeps COMMITTED, refuses RELEASED/EXPIRED, expires a due one", () => {
    expect(commitTransition("o", active, NOW)).toEqual(Result.succeed("commit"))
    expect(commitTransition("o", { status: "COMMITTED", expiresAt: FUTURE }, NOW)).toEqual(Result.succeed("unchanged"))
    expect(commitTransition("o", due, NOW)).toEqual(Result.succeed("expire"))
    for (const status of ["RELEASED", "EXPIRED"] as const) {
      const refused = commitTransition("o", { status, expiresAt: FUTURE }, NOW)
      expect(Result.isFailure(refused) && refused.failure._tag).toBe("ReservationNotActive")
    }
  })
  it("moves stock as API.md says: reserve and release/expire move reserved, commit moves both", () => {
    expect(lineChange("reserve", 3)).toMatchObject({ type: "RESERVE", onHandChange: 0, reservedChange: 3 })
    expect(lineChange("release", 3)).toMatchObject({ type: "RELEASE", onHandChange: 0, reservedChange: -3 })
    expect(lineChange("expire", 3)).toMatchObject({ type: "EXPIRE", onHandChange: 0, reservedChange: -3 })
    expect(lineChange("commit", 3)).toMatchObject({ type: "COMMIT", onHandChange: -3, reservedChange: -3 })
  })
})
