import { Cause, Config, Effect, Layer, Logger, Option, References, Result } from "effect"
import { userInfo } from "node:os"
import { AppConfig, type AppConfigShape, loadConfig } from "../layers/Config.js"
import { structuredLogger } from "../layers/Logging.js"
import { SqlLive } from "../layers/Sql.js"
import { OutboxAdmin } from "../outbox/OutboxAdmin.js"
import { Locations } from "../services/Locations.js"
import { ReconcileRepair } from "../services/ReconcileRepair.js"
import { Reservations } from "../services/Reservations.js"
import { type OptionSpec, parseArgs, UsageError } from "./Args.js"
import { asOperator, CHANGE_OPTIONS, type Command, COMMON_OPTIONS, ExitCode, type Outcome } from "./Command.js"
import { dlqCommands } from "./DlqCommands.js"
import { locationCommands } from "./LocationCommands.js"
import { outboxCommands } from "./OutboxCommands.js"
import { reconcileCommands } from "./ReconcileCommands.js"
import { reservationCommands } from "./ReservationCommands.js"

/** What the CLI prints to: stdout carries the answer (text or JSON), stderr the logs and errors. */
export interface AdminIO {
  readonly out: (line: string) => void
  readonly err: (line: string) => void
}

/** The service's own configuration, SQL and services: the CLI runs exactly the code the service runs. */
const servicesLayer = (config: AppConfigShape) =>
  Layer.mergeAll(OutboxAdmin.layer, Reservations.layer, ReconcileRepair.layer, Locations.layer).pipe(
    Layer.provideMerge(SqlLive),
    Layer.provideMerge(Layer.succeed(AppConfig, config))
  )

type Services = Layer.Success<ReturnType<typeof servicesLayer>>

const COMMANDS: ReadonlyArray<Command<Services>> = [...outboxCommands, ...dlqCommands, ...reconcileCommands, ...reservationCommands, ...locationCommands]

const BIN = "inventory-admin"

const optionLines = (options: ReadonlyArray<OptionSpec>) =>
  options.map((o) => `  --${o.name}${o.value ? ` <${o.value}>` : ""}`.padEnd(24) + o.description)

const EXIT_HELP = ["Exit codes: 0 ok, 1 a problem found (drift, parked rows, an id not found, messages left), 2 usage error, 3 could not run (configuration, database, broker)."]

const overview = () => [
  `${BIN} <command> [options]   (from a checkout: npm run admin -- <command> [options])`,
  "",
  "Operations on the service's database and broker, with the service's own configuration (environment, as",
  "the service reads it), SQL and services. Commands that change something are dry runs unless given --yes",
  "(with --reason); each change is logged with who, what and why. docs/operations.md#the-admin-cli",
  "",
  "Commands:",
  ...COMMANDS.map((c) => `  ${`${c.name} ${c.usage}`.padEnd(40)} ${c.summary}`),
  "",
  `Every command takes --json and --help (\`${BIN} <command> --help\`).`,
  ...EXIT_HELP
]

const optionsOf = (command: Command<Services>) => [...command.options, ...(command.changes ? CHANGE_OPTIONS : []), ...COMMON_OPTIONS]

const commandHelp = (command: Command<Services>) => [
  `${BIN} ${command.name} ${command.usage}`.trimEnd(),
  "",
  command.summary,
  command.help,
  ...(command.changes ? ["Changes data: a dry run unless --yes; --yes needs --reason."] : []),
  "",
  "Options:",
  ...optionLines(optionsOf(command)),
  "",
  ...EXIT_HELP
]

const find = (words: ReadonlyArray<string>) => {
  const two = COMMANDS.find((c) => c.name === words.slice(0, 2).join(" "))
  if (two) return { command: two, rest: words.slice(2) }
  const one = COMMANDS.find((c) => c.name === words[0])
  return one ? { command: one, rest: words.slice(1) } : undefined
}

/** Who runs the command: --actor, else $USER / $LOGNAME (from the same environment as the configuration), else the OS user. */
const operator = (given: string | undefined) =>
  Effect.gen(function* () {
    if (given !== undefined && given !== "") return given
    const fromEnv = yield* Config.option(Config.String("USER")).pipe(
      Config.orElse(() => Config.option(Config.String("LOGNAME"))),
      Effect.orElseSucceed(() => Option.none<string>())
    )
    if (Option.isSome(fromEnv) && fromEnv.value !== "") return fromEnv.value
    return yield* Effect.try(() => userInfo().username).pipe(Effect.orElseSucceed(() => "unknown"))
  })

const print = (io: AdminIO, outcome: Outcome, json: boolean) => {
  if (json) io.out(JSON.stringify(outcome.json, null, 2))
  else for (const line of outcome.lines) io.out(line)
}

/**
 * Runs one admin command line; resolves with its exit code. The configuration comes from the
 * ambient ConfigProvider (the environment), exactly as the service reads it.
 */
export const runAdmin = (argv: ReadonlyArray<string>, io: AdminIO): Effect.Effect<number> => {
  const usage = (message: string, help: ReadonlyArray<string>) =>
    Effect.sync(() => {
      io.err(`${BIN}: ${message}`)
      for (const line of help) io.err(line)
      return ExitCode.usage
    })
  const found = argv.length > 0 && !argv[0]!.startsWith("--") ? find(argv) : undefined
  if (found === undefined) {
    if (argv.length === 0 || argv.includes("--help") || argv[0] === "help") return Effect.sync(() => (overview().forEach(io.out), ExitCode.ok))
    return usage(`unknown command: ${argv.join(" ")}`, overview())
  }
  const { command } = found
  const parsed = parseArgs(found.rest, optionsOf(command))
  if (Result.isFailure(parsed)) return usage(parsed.failure.message, commandHelp(command))
  const args = parsed.success
  if (args.flags.has("help")) return Effect.sync(() => (commandHelp(command).forEach(io.out), ExitCode.ok))
  const apply = args.flags.has("yes") && !args.flags.has("dry-run")
  const reason = args.options.get("reason") ?? null
  if (apply && command.needsReason && reason === null) {
    return usage("--yes needs --reason (why: an incident or ticket id)", commandHelp(command))
  }
  // Our JSON lines to stderr only: Logger.layer replaces the default loggers.
  const logger = Logger.layer([Logger.map(structuredLogger, io.err)])

  return Effect.gen(function* () {
    const config = yield* loadConfig
    const change = { apply, reason, actor: yield* operator(args.options.get("actor")) }
    const outcome = yield* (command.changes ? asOperator(change, command.run({ args, change })) : command.run({ args, change })).pipe(
      Effect.provide(servicesLayer(config))
    )
    print(io, outcome, args.flags.has("json"))
    return outcome.problem ? ExitCode.problem : ExitCode.ok
  }).pipe(
    Effect.scoped,
    Effect.catch((error) =>
      error instanceof UsageError
        ? usage(error.message, commandHelp(command))
        : Effect.sync(() => (io.err(`${BIN} ${command.name}: ${error.message}`), ExitCode.failed))
    ),
    Effect.catchCause((cause) => Effect.sync(() => (io.err(`${BIN} ${command.name} failed: ${Cause.pretty(cause)}`), ExitCode.failed))),
    Effect.provide(Layer.merge(logger, Layer.succeed(References.MinimumLogLevel, "Info")))
  )
}
