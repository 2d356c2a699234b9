// The CI gate around `npm audit --omit=dev --audit-level=high` (scripts/audit.mjs), on the JSON
// shapes npm prints.
import { describe, expect, it } from "vitest"
import { judge } from "../../scripts/audit.mjs"

const report = (vulnerabilities: Record<string, number>, details: Record<string, unknown> = {}) =>
  JSON.stringify({ auditReportVersion: 2, vulnerabilities: details, metadata: { vulnerabilities: { info: 0, low: 0, moderate: 0, high: 0, critical: 0, ...vulnerabilities } } })

describe("the npm audit gate", () => {
  it("passes a clean report and one with only low/moderate advisories", () => {
    expect(judge(report({})).ok).toBe(true)
    expect(judge(report({ moderate: 2, low: 1 })).ok).toBe(true)
  })

  it("fails on a high or critical advisory and names the package", () => {
    const verdict = judge(report({ high: 1 }, { "bad-pkg": { severity: "high" } }))
    expect(verdict.ok).toBe(false)
    expect(verdict.message).toContain("bad-pkg (high)")
    expect(judge(report({ critical: 1 })).ok).toBe(false)
  })

  it("says loudly that nothing was audited when the advisory service refuses, and fails then only if strict", () => {
    const refused = JSON.stringify({ message: "405 Method Not Allowed - POST https://registry.example/-/npm/v1/security/advisories/bulk", statusCode: 405 })
    expect(judge(refused)).toEqual({ ok: true, message: expect.stringMatching(/NOT audited/) })
    expect(judge(refused, true).ok).toBe(false)
  })
})
