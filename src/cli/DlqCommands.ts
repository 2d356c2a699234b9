import { Effect, Option } from "effect"
import { AppConfig } from "../layers/Config.js"
import { type DeadLetter, openDeadLetters } from "../layers/DeadLetters.js"
import { Topology } from "../layers/Messaging.js"
import { intOption, UsageError } from "./Args.js"
import { type Command, CommandFailed, logChange, type Outcome } from "./Command.js"

/** The dead-letter queue over AMQP_URL, for the duration of one command. */
const deadLetters = Effect.gen(function* () {
  const { amqpUrl } = yield* AppConfig
  if (Option.isNone(amqpUrl)) return yield* new CommandFailed({ message: "AMQP_URL is unset: there is no broker and no dead-letter queue" })
  return yield* openDeadLetters(amqpUrl.value)
})

const letterLine = (l: DeadLetter) =>
  `${l.messageId ?? "-"} ${l.type ?? "-"} from ${l.originalQueue ?? "?"} attempts=${l.attempts ?? "-"} reason=${l.reason ?? "-"}`

const list: Command<AppConfig> = {
  name: "dlq list",
  usage: "[--limit N]",
  summary: `the messages in ${Topology.deadLetterQueue}: id, type, original queue, attempts, reason`,
  help: "Peeks: every message stays in the queue, in its place. Exits 1 when the queue is not empty.",
  options: [{ name: "limit", value: "N", description: "at most N messages (default 100)" }],
  changes: false,
  needsReason: false,
  run: ({ args }) =>
    Effect.scoped(
      Effect.gen(function* () {
        const limit = yield* Effect.fromResult(intOption(args, "limit", 100))
        const dlq = yield* deadLetters
        const depth = yield* dlq.depth
        const letters = yield* dlq.list(limit)
        return {
          problem: depth > 0,
          json: { depth, messages: letters },
          lines: [...letters.map(letterLine), `${depth} message(s) in ${Topology.deadLetterQueue}${letters.length < depth ? ` (${letters.length} shown)` : ""}`]
        } satisfies Outcome
      })
    )
}

const replay: Command<AppConfig> = {
  name: "dlq replay",
  usage: "[--type T] [--limit N]",
  summary: "send dead-lettered messages back to the queue they came from, with their original messageId and headers",
  help:
    "The consumer's inbox still de-duplicates by messageId, so replaying a message that was in fact handled\n" +
    "changes nothing. A message is removed from the dead-letter queue only after the broker confirmed its copy.\n" +
    "Fix the cause first (the reason column of `dlq list`), or the consumer dead-letters it again.",
  options: [
    { name: "type", value: "T", description: "only messages of this type (e.g. OrderCancelledEvent)" },
    { name: "limit", value: "N", description: "at most N messages (default: all)" }
  ],
  changes: true,
  needsReason: true,
  run: ({ args, change }) =>
    Effect.scoped(
      Effect.gen(function* () {
        if (args.positionals.length > 0) return yield* new UsageError({ message: "dlq replay takes no arguments" })
        const limit = yield* Effect.fromResult(intOption(args, "limit", Number.MAX_SAFE_INTEGER))
        const dlq = yield* deadLetters
        const type = args.options.get("type") ?? null
        const { replayed, skipped } = yield* dlq.replay({ type, limit, apply: change.apply })
        yield* logChange("dlq replay", change, { type, messages: replayed.map((l) => ({ messageId: l.messageId, type: l.type, queue: l.originalQueue })), skipped: skipped.length })
        return {
          problem: skipped.length > 0,
          json: { applied: change.apply, replayed, skipped },
          lines: [
            ...replayed.map(letterLine),
            ...skipped.map((l) => `skipped ${l.messageId ?? "-"}: ${l.why}`),
            change.apply ? `replayed ${replayed.length} message(s)` : `dry run: would replay ${replayed.length} message(s) (add --yes to apply)`
          ]
        } satisfies Outcome
      })
    )
}

const purge: Command<AppConfig> = {
  name: "dlq purge",
  usage: "--reason R",
  summary: `delete every message in ${Topology.deadLetterQueue}`,
  help: "For messages that must never be handled (decided with the service owner); `dlq list --json` first, for the record.",
  options: [],
  changes: true,
  needsReason: true,
  run: ({ args, change }) =>
    Effect.scoped(
      Effect.gen(function* () {
        if (args.positionals.length > 0) return yield* new UsageError({ message: "dlq purge takes no arguments" })
        const count = yield* (yield* deadLetters).purge(change.apply)
        yield* logChange("dlq purge", change, { messages: count })
        return {
          problem: false,
          json: { applied: change.apply, purged: count },
          lines: [change.apply ? `purged ${count} message(s)` : `dry run: would purge ${count} message(s) (add --yes to apply)`]
        } satisfies Outcome
      })
    )
}

export const dlqCommands = [list, replay, purge] as const
