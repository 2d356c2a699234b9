import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import { runAdmin } from "../cli/Main.js"

/**
 * `npm run reconcile [-- --repair …]`: the admin CLI's `reconcile` command (src/cli/ReconcileCommands.ts).
 * Prints each drift and exits 1 when there is any, 3 when the check itself could not run.
 */
const io = { out: (line: string) => process.stdout.write(line + "\n"), err: (line: string) => process.stderr.write(line + "\n") }

NodeRuntime.runMain(
  runAdmin(["reconcile", ...process.argv.slice(2)], io).pipe(
    Effect.flatMap((code) => Effect.sync(() => process.exit(code))),
    Effect.provide(NodeServices.layer)
  )
)
