#!/usr/bin/env node
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import { runAdmin } from "../cli/Main.js"

/**
 * `inventory-admin` in the image, `npm run admin -- <command>` in a checkout: the admin CLI
 * (src/cli/Main.ts, docs/operations.md#the-admin-cli). The exit code is the command's.
 */
const io = { out: (line: string) => process.stdout.write(line + "\n"), err: (line: string) => process.stderr.write(line + "\n") }

NodeRuntime.runMain(
  runAdmin(process.argv.slice(2), io).pipe(
    Effect.flatMap((code) => Effect.sync(() => process.exit(code))),
    Effect.provide(NodeServices.layer)
  )
)
