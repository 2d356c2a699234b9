import { Effect } from "effect"
import { repairPlan, sourcesOf, type Drift } from "../domain/Reconciliation.js"
import { reconcile as check } from "../services/Reconcile.js"
import { ReconcileRepair } from "../services/ReconcileRepair.js"
import type { SqlClient } from "effect/sql"
import { UsageError } from "./Args.js"
import { type Command, logChange, type Outcome } from "./Command.js"

const where = (d: Drift) => (d.locationId === null ? " (variant totals)" : ` at ${d.locationId}`)
const driftLine = (d: Drift) => `DRIFT ${d.variantId} ${d.check}: stored ${d.stored}, expected ${d.expected}${where(d)}`

/** The counters a location row's drift list implies (absent checks did not drift). */
const storedOf = (drifts: ReadonlyArray<Drift>) => {
  const stored = (checks: ReadonlyArray<Drift["check"]>) => drifts.find((d) => checks.includes(d.check))?.stored
  return { onHand: stored(["on-hand-vs-history"]) ?? 0, reserved: stored(["reserved-vs-history", "reserved-vs-active-reservations"]) ?? 0 }
}

/** The drifts of location rows, by (variant, location) in report order. */
const byLocation = (drifts: ReadonlyArray<Drift>) => {
  const groups = new Map<string, { variantId: string; locationId: string; drifts: Array<Drift> }>()
  for (const d of drifts) {
    if (d.locationId === null) continue
    const key = JSON.stringify([d.variantId, d.locationId])
    const group = groups.get(key) ?? { variantId: d.variantId, locationId: d.locationId, drifts: [] }
    group.drifts.push(d)
    groups.set(key, group)
  }
  return [...groups.values()]
}

/** Variants whose totals differ from their locations: the triggers' to keep, no repair writes them. */
const totalsDrifting = (drifts: ReadonlyArray<Drift>) => [...new Set(drifts.filter((d) => d.locationId === null).map((d) => d.variantId))]
const TOTALS_NOT_REPAIRABLE = "variant totals differ from the sum of its locations; not repairable by --repair (docs/runbooks/reconciliation-drift.md)"

const reconcile: Command<SqlClient.SqlClient | ReconcileRepair> = {
  name: "reconcile",
  usage: "[--repair [--yes --reason R]]",
  summary: "check every location row's counters against its reservations and history, and every variant's totals; --repair corrects drift",
  help:
    "Exits 1 on drift (after a repair: when drift is left). The check reads one REPEATABLE READ snapshot.\n" +
    "--repair corrects each drifting location row (variant, location) in one transaction of the service,\n" +
    "under the variant's and then the row's lock: history there is brought up to the counters with one\n" +
    "ADJUSTMENT entry, then `reserved` moves to what the ACTIVE reservations hold there (RELEASE/RESERVE),\n" +
    "each with its StockLevelChanged event. Totals that differ from their locations are reported, never\n" +
    "written (docs/runbooks/reconciliation-drift.md).",
  options: [{ name: "repair", description: "correct the drift found (a dry run unless --yes)" }],
  changes: true,
  needsReason: true,
  run: ({ args, change }) =>
    Effect.gen(function* () {
      if (args.positionals.length > 0) return yield* new UsageError({ message: "reconcile takes no arguments" })
      const report = yield* check
      const summary = (drifts: number) =>
        `reconcile: ${report.variantsChecked} variants checked (${report.locationRowsChecked} location rows), ${drifts} drift(s)`
      const found = report.drifts.map(driftLine)
      if (!args.flags.has("repair")) {
        return { problem: report.drifts.length > 0, json: report, lines: [...found, summary(report.drifts.length)] } satisfies Outcome
      }
      const groups = byLocation(report.drifts)
      const unrepairable = totalsDrifting(report.drifts).map((variantId) => ({ variantId, error: TOTALS_NOT_REPAIRABLE }))
      if (!change.apply) {
        // The plan from the snapshot; applied, each location row is measured again under its lock.
        const plans = groups.map(({ variantId, locationId, drifts }) => ({ variantId, locationId, steps: repairPlan(sourcesOf(storedOf(drifts), drifts)) }))
        yield* logChange("reconcile --repair", change, { rows: plans.map((p) => ({ variantId: p.variantId, locationId: p.locationId })) })
        return {
          problem: report.drifts.length > 0,
          json: { ...report, applied: false, repairs: plans, unrepairable },
          lines: [
            ...found,
            ...plans.flatMap((p) => p.steps.map((s) => `would record ${p.variantId} at ${p.locationId} ${s.type} onHand ${s.onHandChange >= 0 ? "+" : ""}${s.onHandChange}, reserved ${s.reservedChange >= 0 ? "+" : ""}${s.reservedChange}${s.movesCounters ? "" : " (history only; counters stay)"}`)),
            ...unrepairable.map((u) => `cannot repair ${u.variantId}: ${u.error}`),
            summary(report.drifts.length),
            `dry run: would repair ${plans.length} location row(s) (add --yes to apply)`
          ]
        } satisfies Outcome
      }
      const repairer = yield* ReconcileRepair
      const repairs = []
      const failures: Array<{ variantId: string; locationId: string | null; error: string }> = unrepairable.map((u) => ({ ...u, locationId: null }))
      for (const { variantId, locationId } of groups) {
        const outcome = yield* repairer.repair(variantId, locationId, change.reason ?? "reconcile --repair").pipe(
          Effect.tap((o) => logChange("reconcile --repair", change, { variantId, locationId, steps: o.steps })),
          Effect.catch((error) => Effect.succeed({ variantId, locationId, error: error.message }))
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
          ...repairs.flatMap((r) => r.steps.map((s) => `recorded ${r.variantId} at ${r.locationId} ${s.type} onHand ${s.onHandChange}, reserved ${s.reservedChange}`)),
          ...failures.map((f) => `could not repair ${f.variantId}${f.locationId === null ? "" : ` at ${f.locationId}`}: ${f.error}`),
          ...after.drifts.map((d) => `still ${driftLine(d)}`),
          `repaired ${repairs.length} location row(s); ${after.drifts.length} drift(s) left`
        ]
      } satisfies Outcome
    })
}

export const reconcileCommands = [reconcile] as const
