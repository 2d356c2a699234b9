import { Data, Effect } from "effect"
import { randomUUID } from "node:crypto"
import { CurrentRequest } from "../services/RequestContext.js"
import type { OptionSpec, ParsedArgs, UsageError } from "./Args.js"

/** The command ran but could not do its job (database or broker unreachable, refused): exit code 3. */
export class CommandFailed extends Data.TaggedError("CommandFailed")<{ readonly message: string }> {}

/** Any failure of a command's work; its message is printed. */
export interface CommandError {
  readonly _tag: string
  readonly message: string
}

/** Exit codes of every command (docs/operations.md#the-admin-cli). */
export const ExitCode = { ok: 0, problem: 1, usage: 2, failed: 3 } as const

/** What a command found or did: `problem` (exit 1) is drift, a missing id, rows still parked. */
export interface Outcome {
  readonly problem: boolean
  /** The `--json` output. */
  readonly json: unknown
  /** The human output, one line each. */
  readonly lines: ReadonlyArray<string>
}

/** Who runs a change and why, and whether it is applied (`--yes`) or only shown (the default). */
export interface ChangeContext {
  readonly apply: boolean
  readonly actor: string
  readonly reason: string | null
}

export interface Input {
  readonly args: ParsedArgs
  readonly change: ChangeContext
}

export interface Command<R> {
  /** The words that name it, e.g. `outbox requeue`. */
  readonly name: string
  readonly usage: string
  readonly summary: string
  /** Longer help: what it reads or changes, and when to use it. */
  readonly help: string
  readonly options: ReadonlyArray<OptionSpec>
  /** Changes something: takes --yes / --dry-run / --reason / --actor, and logs every applied change. */
  readonly changes: boolean
  /** A reason is required to apply it. */
  readonly needsReason: boolean
  /** A UsageError exits 2; any other failure (SqlError, broker errors, CommandFailed) exits 3 with its message. */
  readonly run: (input: Input) => Effect.Effect<Outcome, UsageError | CommandError, R>
}

export const CHANGE_OPTIONS: ReadonlyArray<OptionSpec> = [
  { name: "yes", description: "apply the change (without it the command is a dry run: it shows what it would do and changes nothing)" },
  { name: "dry-run", description: "only show what would change (the default; wins over --yes)" },
  { name: "reason", value: "text", description: "why (an incident or ticket id); logged with the change, required with --yes" },
  { name: "actor", value: "name", description: "who (default $USER); logged with the change and recorded in history as ops:<name>" }
]

export const COMMON_OPTIONS: ReadonlyArray<OptionSpec> = [
  { name: "json", description: "print one JSON document instead of text" },
  { name: "help", description: "show this help" }
]

/**
 * The audit line of a change: who, what, why, and what it touched. Written for dry runs too
 * (`applied: false`), so a rehearsal is visible in the logs next to the real run.
 */
export const logChange = (command: string, change: ChangeContext, details: Record<string, unknown>) =>
  Effect.logInfo(change.apply ? "admin: change applied" : "admin: dry run").pipe(
    Effect.annotateLogs({ command, actor: change.actor, reason: change.reason, applied: change.apply, ...details })
  )

/**
 * Runs a service call as the operator: history entries carry `ops:<actor>` and every row and event
 * written shares one correlation id, printed in the audit line.
 */
export const asOperator = <A, E, R>(change: ChangeContext, effect: Effect.Effect<A, E, R>) => {
  const correlationId = `admin-${randomUUID()}`
  return effect.pipe(
    Effect.provideService(CurrentRequest, { actor: `ops:${change.actor}`, correlationId }),
    Effect.annotateLogs("correlationId", correlationId)
  )
}
