import { Context } from "effect"

/** Who asked and under which correlation id; set by the HTTP layer or a consumer, read by services. */
export interface RequestContext {
  readonly correlationId: string | null
  readonly actor: string | null
}

/**
 * The current request (a FiberRef in Effect 3): read with `yield* CurrentRequest`, set for an effect
 * with `Effect.provideService(effect, CurrentRequest, { correlationId, actor })`. Outside a request
 * (sweepers, CLI) it is the default, both null.
 */
export const CurrentRequest = Context.Reference<RequestContext>("inventory/CurrentRequest", {
  defaultValue: () => ({ correlationId: null, actor: null })
})
