import { Context, Effect, Layer, Ref } from "effect"

export type DependencyStatus = "up" | "down" | "disabled"

export interface DependencyCheck {
  readonly name: string
  /** A dependency the service cannot serve without (the database); others are only reported. */
  readonly critical: boolean
  readonly check: Effect.Effect<{ readonly status: DependencyStatus; readonly detail?: string }>
}

/**
 * What a background loop (layers/BackgroundLoop.ts) last reported: `running` an iteration's work,
 * `idle` waiting for work, `backing-off` after a failed iteration, `dead` when its fiber ended
 * without shutdown. `since` is when it entered that state (epoch ms).
 */
export interface LoopState {
  readonly status: "running" | "idle" | "backing-off" | "dead"
  readonly since: number
  /** How long `running` may last before liveness calls the loop stalled. */
  readonly stallAfterMs: number
  readonly consecutiveFailures: number
  readonly lastError?: string
}

/**
 * The process's lifecycle as the probes see it: whether shutdown has begun, the dependency checks
 * that layers (database, broker, outbox) register for `/health/ready`, and the state of every
 * background loop for `/health/live`.
 */
export class Lifecycle extends Context.Service<Lifecycle>()("inventory/Lifecycle", {
  make: Effect.gen(function* () {
    const draining = yield* Ref.make(false)
    const checks = yield* Ref.make<ReadonlyArray<DependencyCheck>>([])
    const loops = yield* Ref.make<ReadonlyMap<string, LoopState>>(new Map())
    return {
      isDraining: Ref.get(draining),
      markDraining: Ref.set(draining, true),
      register: (check: DependencyCheck) => Ref.update(checks, (all) => [...all.filter((c) => c.name !== check.name), check]),
      checks: Ref.get(checks),
      reportLoop: (name: string, state: LoopState) => Ref.update(loops, (all) => new Map(all).set(name, state)),
      loops: Ref.get(loops)
    } as const
  })
}) {
  /** Was `Lifecycle.Default`: no dependencies. */
  static readonly layer = Layer.effect(this, this.make)
}

/** Loops that are dead, or stuck in one iteration's work past their bound: what makes liveness fail. */
export const failingLoops = (loops: ReadonlyMap<string, LoopState>, now: number): ReadonlyArray<string> =>
  [...loops].flatMap(([name, state]) =>
    state.status === "dead"
      ? [`${name}: ended${state.lastError === undefined ? "" : ` (${state.lastError})`}`]
      : state.status === "running" && now - state.since > state.stallAfterMs
        ? [`${name}: one iteration running for ${Math.round((now - state.since) / 1000)} s`]
        : []
  )
