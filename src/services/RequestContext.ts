import { FiberRef } from "effect"

/** Who asked and under which correlation id; set by the HTTP layer or a consumer, read by services. */
export interface RequestContext {
  readonly correlationId: string | null
  readonly actor: string | null
}

export const CurrentRequest: FiberRef.FiberRef<RequestContext> = FiberRef.unsafeMake<RequestContext>({
  correlationId: null,
  actor: null
})
