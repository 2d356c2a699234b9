import { Effect, Ref } from "effect"

export type DependencyStatus = "up" | "down" | "disabled"

export interface DependencyCheck {
  readonly name: string
  /** A dependency the service cannot serve without (the database); others are only reported. */
  readonly critical: boolean
  readonly check: Effect.Effect<{ readonly status: DependencyStatus; readonly detail?: string }>
}

/**
 * The process's lifecycle as readiness sees it: whether shutdown has begun, and the dependency checks
 * that layers (database, broker) register for `/health/ready`.
 */
export class Lifecycle extends Effect.Service<Lifecycle>()("inventory/Lifecycle", {
  effect: Effect.gen(function* () {
    const draining = yield* Ref.make(false)
    const checks = yield* Ref.make<ReadonlyArray<DependencyCheck>>([])
    return {
      isDraining: Ref.get(draining),
      markDraining: Ref.set(draining, true),
      register: (check: DependencyCheck) => Ref.update(checks, (all) => [...all.filter((c) => c.name !== check.name), check]),
      checks: Ref.get(checks)
    } as const
  })
}) {}
