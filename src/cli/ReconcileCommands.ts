import { Effect } from "effect"
import { repairPlan } from "../domain/Reconciliation.js"
import { reconcile as check, type Drift } from "../services/Reconcile.js"
import { ReconcileRepair, sourcesOf } from "../services/ReconcileRepair.js"
import type { SqlClient } from "effect/sql"
import { UsageError } from "./Args.js"
import { type Command, logChange, type Outcome } from "./Command.js"

const driftLine = (d: Drift) => `DRIFT ${d.variantId} ${d.check}: stored ${d.stored}, expected ${d.expected}`

/** The counters a drift list implies for one variant (absent checks did not drift). */
const storedOf = (drifts: ReadonlyArray<Drift>) => {
  const stored = (checks: ReadonlyArray<Drift["check"]>) => drifts.find((d) => checks.includes(d.check))?.stored
  return { onHand: stored(["on-hand-vs-history"]) ?? 0, reserved: stored(["reserved-vs-history", "reserved-vs-active-reservations"]) ?? 0 }
}

const byVariant = (drifts: ReadonlyArray<Drift>) => {
  const groups = new Map<string, Array<Drift>>()
  for (const d of drifts) groups.set(d.variantId, [...(groups.get(d.variantId) ?? []), d])
  return groups
}

const reconcile: Command<SqlClient.SqlClient | ReconcileRepair> = {
  name: "reconcile",
  usage: "[--repair [--yes --reason R]]",
  summary: "check every variant's counters against its reservations and history; --repair corrects drift",
  help:
    "Exits 1 on drift (after a repair: when drift is left). The check reads one REPEATABLE READ snapshot.\n" +
    "--repair corrects each drifting variant in one transaction of the service, under its row lock: history\n" +
    "is brought up to the counters with one ADJUSTMENT entry, then `reserved` moves to what the ACTIVE\n" +
    "reservations hold (RELEASE/RESERVE), each with its StockLevelChanged event (docs/runbooks/reconciliation-drift.md).",
  options: [{ name: "repair", description: "correct the drift found (a dry run unless --yes)" }],
  changes: true,
  needsReason: true,
  run: ({ args, change }) =>
    Effect.gen(function* () {
      if (args.positionals.length > 0) return yield* new UsageError({ message: "reconcile takes no arguments" })
      const report = yield* check
      const summary = (drifts: number) => `reconcile: ${report.variantsChecked} variants checked, ${drifts} drift(s)`
      const found = report.drifts.map(driftLine)
      if (!args.flags.has("repair")) {
        return { problem: report.drifts.length > 0, json: report, lines: [...found, summary(report.drifts.length)] } satisfies Outcome
      }
      const groups = byVariant(report.drifts)
      if (!change.apply) {
        // The plan from the snapshot; applied, each variant is measured again under its lock.
        const plans = [...groups].map(([variantId, drifts]) => ({ variantId, steps: repairPlan(sourcesOf(storedOf(drifts), drifts)) }))
        yield* logChange("reconcile --repair", change, { variants: plans.map((p) => p.variantId) })
        return {
          problem: report.drifts.length > 0,
          json: { ...report, applied: false, repairs: plans },
          lines: [
            ...found,
            ...plans.flatMap((p) => p.steps.map((s) => `would record ${p.variantId} ${s.type} onHand ${s.onHandChange >= 0 ? "+" : ""}${s.onHandChange}, reserved ${s.reservedChange >= 0 ? "+" : ""}${s.reservedChange}${s.movesCounters ? "" : " (history only; counters stay)"}`)),
            summary(report.drifts.length),
            `dry run: would repair ${plans.length} variant(s) (add --yes to apply)`
          ]
        } satisfies Outcome
      }
      const repairer = yield* ReconcileRepair
      const repairs = []
      const failures: Array<{ variantId: string; error: string }> = []
      for (const variantId of groups.keys()) {
        const outcome = yield* repairer.repair(variantId, change.reason ?? "reconcile --repair").pipe(
          Effect.tap((o) => logChange("reconcile --repair", change, { variantId, steps: o.steps })),
          Effect.catch((error) => Effect.succeed({ variantId, error: error.message }))
        )
        if ("error" in outcome) failures.push(outcome)
        else repairs.push(outcome)
      }
      const after = yield* check
      return {
        problem: after.drifts.length > 0,
        json: { before: report, applied: true, repairs, failures, after },
        lines: [
          ...found,
          ...repairs.flatMap((r) => r.steps.map((s) => `recorded ${r.variantId} ${s.type} onHand ${s.onHandChange}, reserved ${s.reservedChange}`)),
          ...failures.map((f) => `could not repair ${f.variantId}: ${f.error}`),
          ...after.drifts.map((d) => `still ${driftLine(d)}`),
          `repaired ${repairs.length} variant(s); ${after.drifts.length} drift(s) left`
        ]
      } satisfies Outcome
    })
}

export const reconcileCommands = [reconcile] as const
