import { Result } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { planAdjustment, quantityProblem } from "../../src/domain/Adjustment.js"
import type { AdjustmentType } from "../../src/domain/History.js"
import { MAX_QUANTITY } from "../../src/domain/Ids.js"
import { deriveStatus } from "../../src/domain/StockLevel.js"

describe("stock status", () => {
  it.each([
    [0, 5, "OUT_OF_STOCK"],
    [-1, 0, "OUT_OF_STOCK"],
    [1, 5, "LOW_STOCK"],
    [5, 5, "LOW_STOCK"],
    [6, 5, "IN_STOCK"],
    [1, 0, "IN_STOCK"]
  ] as const)("available %i with threshold %i is %s", (available, threshold, status) => {
    expect(deriveStatus(available, threshold)).toBe(status)
  })
})

describe("adjustment quantities", () => {
  it("requires a positive quantity for PURCHASE, RETURN and SALE", () => {
    for (const type of ["PURCHASE", "RETURN", "SALE"] as const) {
      expect(quantityProblem(type, 1)).toBeUndefined()
      expect(quantityProblem(type, 0)).toMatch(/greater than 0/)
      expect(quantityProblem(type, -3)).toMatch(/greater than 0/)
    }
  })
  it("requires a non-zero delta for ADJUSTMENT and a non-negative count for RECOUNT", () => {
    expect(quantityProblem("ADJUSTMENT", -2)).toBeUndefined()
    expect(quantityProblem("ADJUSTMENT", 0)).toMatch(/not be 0/)
    expect(quantityProblem("RECOUNT", 0)).toBeUndefined()
    expect(quantityProblem("RECOUNT", -1)).toMatch(/0 or more/)
  })
})

describe("planAdjustment", () => {
  const level = { variantId: "v", onHand: 10, reserved: 4, version: 3 }

  it("adds PURCHASE and RETURN, takes SALE, applies ADJUSTMENT deltas and RECOUNT absolutes", () => {
    expect(planAdjustment(level, { type: "PURCHASE", quantity: 5 })).toEqual(Result.succeed(5))
    expect(planAdjustment(level, { type: "RETURN", quantity: 2 })).toEqual(Result.succeed(2))
    expect(planAdjustment(level, { type: "SALE", quantity: 6 })).toEqual(Result.succeed(-6))
    expect(planAdjustment(level, { type: "ADJUSTMENT", quantity: -6 })).toEqual(Result.succeed(-6))
    expect(planAdjustment(level, { type: "RECOUNT", quantity: 4 })).toEqual(Result.succeed(-6))
  })

  it("refuses a SALE larger than what is available (onHand minus reserved)", () => {
    const result = planAdjustment(level, { type: "SALE", quantity: 7 })
    expect(Result.isFailure(result) && result.failure._tag).toBe("InsufficientStock")
    expect(Result.isFailure(result) && result.failure).toMatchObject({ requested: 7, available: 6 })
  })

  it("refuses a RECOUNT below what is reserved", () => {
    const result = planAdjustment(level, { type: "RECOUNT", quantity: 3 })
    expect(Result.isFailure(result) && result.failure._tag).toBe("InsufficientStock")
  })

  it("refuses a stale expectedVersion and accepts the current one", () => {
    const stale = planAdjustment(level, { type: "PURCHASE", quantity: 1, expectedVersion: 2 })
    expect(Result.isFailure(stale) && stale.failure).toMatchObject({ _tag: "VersionConflict", expectedVersion: 2, currentVersion: 3 })
    expect(planAdjustment(level, { type: "PURCHASE", quantity: 1, expectedVersion: 3 })).toEqual(Result.succeed(1))
  })

  it("refuses to go past the largest storable quantity", () => {
    const result = planAdjustment({ ...level, onHand: MAX_QUANTITY }, { type: "PURCHASE", quantity: 1 })
    expect(Result.isFailure(result) && result.failure._tag).toBe("StockLimitExceeded")
  })

  it("never accepts a change that breaks 0 <= reserved <= onHand <= limit", () => {
    const type = fc.constantFrom<AdjustmentType>("PURCHASE", "SALE", "RETURN", "ADJUSTMENT", "RECOUNT")
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX_QUANTITY }).chain((onHand) =>
          fc.record({ onHand: fc.constant(onHand), reserved: fc.integer({ min: 0, max: onHand }) })
        ),
        type,
        fc.integer({ min: -MAX_QUANTITY, max: MAX_QUANTITY }),
        ({ onHand, reserved }, adjustmentType, quantity) => {
          fc.pre(quantityProblem(adjustmentType, quantity) === undefined)
          const result = planAdjustment({ variantId: "v", onHand, reserved, version: 1 }, { type: adjustmentType, quantity })
          if (Result.isSuccess(result)) {
            const after = onHand + result.success
            expect(after).toBeGreaterThanOrEqual(reserved)
            expect(after).toBeLessThanOrEqual(MAX_QUANTITY)
          }
        }
      )
    )
  })
})
