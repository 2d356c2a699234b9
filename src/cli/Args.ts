import { Data, Result } from "effect"

/** A command line the CLI cannot run: exit code 2, with the command's usage. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

export interface OptionSpec {
  readonly name: string
  /** Placeholder of the option's value; absent for a flag. */
  readonly value?: string
  readonly description: string
}

export interface ParsedArgs {
  readonly positionals: ReadonlyArray<string>
  readonly options: ReadonlyMap<string, string>
  readonly flags: ReadonlySet<string>
}

/** `--name value`, `--name=value`, `--flag` and positionals; anything not in `specs` is a usage error. */
export const parseArgs = (argv: ReadonlyArray<string>, specs: ReadonlyArray<OptionSpec>): Result.Result<ParsedArgs, UsageError> => {
  const positionals: Array<string> = []
  const options = new Map<string, string>()
  const flags = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (!arg.startsWith("--")) {
      positionals.push(arg)
      continue
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined]
    const spec = specs.find((s) => s.name === name)
    if (spec === undefined) return Result.fail(new UsageError({ message: `unknown option --${name}` }))
    if (spec.value === undefined) {
      if (inline !== undefined) return Result.fail(new UsageError({ message: `--${name} takes no value` }))
      flags.add(name)
      continue
    }
    const value = inline ?? argv[++i]
    if (value === undefined || (inline === undefined && value.startsWith("--"))) {
      return Result.fail(new UsageError({ message: `--${name} needs a value (${spec.value})` }))
    }
    options.set(name, value)
  }
  return Result.succeed({ positionals, options, flags })
}

/** A positive integer option, or its default. */
export const intOption = (args: ParsedArgs, name: string, fallback: number): Result.Result<number, UsageError> => {
  const raw = args.options.get(name)
  if (raw === undefined) return Result.succeed(fallback)
  const n = Number(raw)
  return Number.isInteger(n) && n > 0 ? Result.succeed(n) : Result.fail(new UsageError({ message: `--${name} must be a positive integer, got ${raw}` }))
}
