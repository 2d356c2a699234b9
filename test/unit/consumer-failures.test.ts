import { Cause, Duration } from "effect"
import { describe, expect, it } from "vitest"
import { classifyCause, sqlFailureKind, retryDelay } from "../../src/consumers/Failure.js"
import { Unprocessable } from "../../src/consumers/Consumer.js"
import { connectionError, pgError } from "../support/sqlError.js"

describe("what a failed attempt at a consumed message means", () => {
  it.each(["57P01", "57P03", "57014", "55P03", "25P03", "40001", "40P01", "53300", "08006", "08001", "25006"])(
    "retries SQLSTATE %s without limit (it passes by itself)",
    (code) => expect(sqlFailureKind(pgError(code))).toBe("transient")
  )

  it("retries a refused or reset connection and a pool acquire timeout (no SQLSTATE)", () => {
    expect(sqlFailureKind(connectionError("connect ECONNREFUSED 127.0.0.1:5432"))).toBe("transient")
    expect(sqlFailureKind(connectionError("Connection terminated unexpectedly"))).toBe("transient")
    expect(sqlFailureKind(connectionError("timeout exceeded when trying to connect"))).toBe("transient")
  })

  it("dead-letters a data exception (class 22) at once: only the data can cause it", () => {
    expect(sqlFailureKind(pgError("22021", "invalid byte sequence for encoding \"UTF8\": 0x00"))).toBe("unprocessable")
    expect(sqlFailureKind(pgError("22003"))).toBe("unprocessable")
    const failure = classifyCause(Cause.fail(pgError("22P02", "invalid input syntax")))
    expect(failure).toMatchObject({ kind: "unprocessable" })
    expect(failure.reason).toMatch(/^SqlError: .*invalid input syntax.*\[22P02\]/)
  })

  it("counts other SQL errors and defects as unknown (dead-lettered after the configured attempts)", () => {
    expect(sqlFailureKind(pgError("42P01", "relation does not exist"))).toBe("unknown")
    expect(classifyCause(Cause.die(new TypeError("bug")))).toMatchObject({ kind: "unknown", reason: expect.stringMatching(/^defect: /) })
  })

  it("classifies a SqlError thrown as a defect (a failed COMMIT) like the error itself", () => {
    expect(classifyCause(Cause.die(pgError("57P01"))).kind).toBe("transient")
  })

  it("dead-letters bad data and domain refusals at once", () => {
    expect(classifyCause(Cause.fail(new Unprocessable({ reason: "invalid data: orderId" })))).toEqual({
      kind: "unprocessable",
      reason: "invalid data: orderId"
    })
    expect(classifyCause(Cause.fail({ _tag: "VariantNotFound", message: "no such variant" })).kind).toBe("unprocessable")
  })

  it("backs off exponentially from 200 ms, capped at 5 s, with ±20 % jitter", () => {
    expect(Duration.toMillis(retryDelay(1, 0.5))).toBe(200)
    expect(Duration.toMillis(retryDelay(2, 0.5))).toBe(400)
    expect(Duration.toMillis(retryDelay(6, 0.5))).toBe(5_000)
    expect(Duration.toMillis(retryDelay(1_000, 0.5))).toBe(5_000)
    expect(Duration.toMillis(retryDelay(1_000, 0))).toBe(4_000)
    expect(Duration.toMillis(retryDelay(1_000, 0.999999))).toBeLessThanOrEqual(6_000)
  })
})
