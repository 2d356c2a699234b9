import { describe, expect, it } from "vitest"
import { callerOf, hasScope, scopesOf } from "../../src/domain/Caller.js"

describe("the caller of a token", () => {
  it("is sub, else azp, else client_id", () => {
    expect(callerOf({ sub: "a", azp: "b", client_id: "c" })?.id).toBe("a")
    expect(callerOf({ azp: "b", client_id: "c" })?.id).toBe("b")
    expect(callerOf({ client_id: "c" })?.id).toBe("c")
    expect(callerOf({ sub: "", client_id: "c" })?.id).toBe("c")
  })

  it("is nobody for tokens naming no one, or an id that could forge log lines", () => {
    expect(callerOf({})).toBeUndefined()
    expect(callerOf({ sub: 42 })).toBeUndefined()
    expect(callerOf({ sub: "evil\n{\"level\":\"error\"}" })).toBeUndefined()
    expect(callerOf({ sub: "x".repeat(257) })).toBeUndefined()
  })

  it("has the scopes of the space-separated scope claim, or of an scp array", () => {
    expect([...scopesOf({ scope: "inventory:read  inventory:adjust" })]).toEqual(["inventory:read", "inventory:adjust"])
    expect([...scopesOf({ scp: ["inventory:read", 7, ""] })]).toEqual(["inventory:read"])
    expect(scopesOf({ scope: 12 }).size).toBe(0)
  })

  it("needs the exact scope: no prefixes, no case folding", () => {
    const caller = callerOf({ sub: "a", scope: "inventory:read inventory" })!
    expect(hasScope(caller, "inventory:read")).toBe(true)
    expect(hasScope(caller, "inventory:adjust")).toBe(false)
    expect(hasScope(callerOf({ sub: "a", scope: "INVENTORY:ADJUST inventory:adjust:all" })!, "inventory:adjust")).toBe(false)
  })
})
