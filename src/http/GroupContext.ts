import { Context, Effect, Layer } from "effect"

/** The identifiers a list of service keys stands for. */
type IdentifiersOf<Keys extends ReadonlyArray<Context.Key<unknown, unknown>>> = Context.Service.Identifier<Keys[number]>

/**
 * Builds an `HttpApiBuilder.group` layer in a context holding only `keys` (and the build's memo
 * map, so layers it provides itself are still the app's instances). A group keeps the whole
 * context it was built in and merges it into every request's context: built in the app's, its 33
 * services were set into every request's copy, now its 4–7 are (the copy of the request's own
 * context stays while the group's is not empty: docs/performance.md). `keys` must name every
 * service the layer needs, its handlers' and its middleware's alike: the type refuses a list that
 * misses one.
 */
export const buildGroupWith = <const Keys extends ReadonlyArray<Context.Key<unknown, unknown>>>(...keys: Keys) =>
<A, E, R extends IdentifiersOf<Keys>>(group: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  Layer.fromBuild((memoMap, scope) =>
    Effect.updateContext(Layer.buildWithMemoMap(group, memoMap, scope), (context: Context.Context<R>) => Context.pick(...keys)(context) as Context.Context<R>)
  )
