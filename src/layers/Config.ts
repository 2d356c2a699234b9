import { readFileSync } from "node:fs"
import { Config, ConfigProvider, Context, Data, Effect, Layer, type LogLevel, Option, Redacted, Schema, SchemaIssue } from "effect"

/**
 * Every setting of ARCHITECTURE.md, read once at start-up. Secrets stay `Redacted` and may come from
 * a file named by `<NAME>_FILE` (Kubernetes Secret volumes).
 */
export interface AppConfigShape {
  readonly nodeEnv: "development" | "production" | "test"
  readonly port: number
  readonly metricsPort: Option.Option<number>
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly dataDir: string
  /** Group commit: most reservation requests one transaction decides (RESERVATION_BATCH_MAX). */
  readonly reservationBatchMax: number
  /**
   * Group commit: batches in flight at once, each on its own connection (RESERVATION_BATCH_WORKERS);
   * unset: 3, or fewer on a pool too small to leave a connection for everything else.
   */
  readonly reservationBatchWorkers: Option.Option<number>
  readonly dbPoolMax: number
  readonly dbStatementTimeoutMs: number
  readonly dbConnectTimeoutMs: number
  readonly amqpUrl: Option.Option<Redacted.Redacted>
  /** Without AMQP_URL, events go to the log; production allows that only when this says so. */
  readonly eventsLogOnly: boolean
  readonly authJwksUrl: Option.Option<string>
  readonly authPublicKey: Option.Option<Redacted.Redacted>
  readonly authIssuer: string
  readonly authAudience: string
  /** Leeway for `exp`/`nbf`/`iat` between the token issuer's clock and ours. */
  readonly authClockSkewSeconds: number
  /** How long a JWKS fetch may take before the request is answered 503. */
  readonly authJwksTimeoutMs: number
  /** Least time between two JWKS re-fetches caused by an unknown `kid`. */
  readonly authJwksCooldownMs: number
  /** Keys fetched from AUTH_JWKS_URL are re-fetched at least this often. */
  readonly authJwksMaxAgeMs: number
  /** How long past that age the last fetched keys still verify tokens while the key server is down (0: not at all). */
  readonly authJwksStaleGraceSeconds: number
  /** Failed authentications allowed per client address and minute before 429 (0: no limit). */
  readonly authFailuresPerMinute: number
  readonly logLevel: LogLevel.LogLevel
  readonly otlpEndpoint: Option.Option<string>
  readonly deploymentEnvironment: Option.Option<string>
  readonly shutdownGraceMs: number
  readonly rateLimitRps: number
  readonly bodyLimitBytes: number
  /** POST /v1/adjustments only: up to 1,000 items must fit (API.md). */
  readonly bulkBodyLimitBytes: number
  readonly requestTimeoutMs: number
  readonly reservationSweepIntervalMs: number
  readonly amqpPrefetch: number
  readonly amqpConsumerMaxAttempts: number
  readonly orderEventsExchange: string
  readonly productEventsExchange: string
  readonly outboxPollIntervalMs: number
  readonly outboxBatchSize: number
  readonly outboxMaxAttempts: number
  /** The relay LISTENs for the outbox trigger's NOTIFY (off behind a transaction-mode pooler, which drops them). */
  readonly outboxListen: boolean
  readonly retention: RetentionConfig
}

/** How long each kind of bookkeeping row is kept (0 = forever) and how the sweep runs (Retention.ts). */
export interface RetentionConfig {
  readonly sweepIntervalMs: number
  readonly batchSize: number
  readonly outboxHours: number
  readonly inboxDays: number
  readonly idempotencyKeyHours: number
  readonly historyDays: number
}

export class AppConfig extends Context.Service<AppConfig, AppConfigShape>()("inventory/AppConfig") {}

/**
 * A configuration error at one variable, rendered by `describeConfigError` as `NAME: message`
 * (Effect 4's ConfigError wraps a Schema issue; the variable is the issue's path).
 */
const invalidAt = (name: string, message: string): Config.ConfigError =>
  new Config.ConfigError(new Schema.SchemaError(new SchemaIssue.Pointer([name], new SchemaIssue.InvalidValue({ message }))))

/** An integer variable that must pass `valid`, else fails with `message` at that variable. */
const checkedInt = (name: string, message: string, valid: (n: number) => boolean) =>
  Config.schema(Schema.Int.check(Schema.makeFilter((n: number) => valid(n) || message)), name)

/** An optional variable; an empty value (common in manifests) counts as unset. */
const optionalString = (name: string) =>
  Config.option(Config.String(name)).pipe(Config.map(Option.filter((value) => value.trim() !== "")))

/** `NAME` or the contents of the file named by `NAME_FILE`, as a secret. */
const secret = (name: string): Config.Config<Option.Option<Redacted.Redacted>> =>
  Config.all([
    optionalString(`${name}_FILE`).pipe(
      Config.mapEffect((file) =>
        Option.match(file, {
          onNone: () => Effect.succeed(Option.none<string>()),
          onSome: (path) =>
            Effect.try({
              try: () => Option.some(readFileSync(path, "utf8").trim()),
              catch: () => invalidAt(`${name}_FILE`, `cannot read file ${path}`)
            })
        })
      )
    ),
    optionalString(name)
  ]).pipe(Config.map(([fromFile, fromEnv]) => Option.map(Option.orElse(fromFile, () => fromEnv), (value) => Redacted.make(value))))

/** 0 asks the operating system for a free port (tests). */
const port = (name: string) => checkedInt(name, "must be a port number 0-65535", (n) => n >= 0 && n <= 65535)

const positiveInt = (name: string, fallback: number) =>
  checkedInt(name, "must be a positive integer", (n) => n > 0).pipe(Config.withDefault(fallback))

/** 0 means "keep forever" for retention periods. */
const nonNegativeInt = (name: string, fallback: number) =>
  checkedInt(name, "must be 0 (keep forever) or a positive integer", (n) => n >= 0).pipe(Config.withDefault(fallback))

/** 0 turns the feature off. */
const zeroOrPositiveInt = (name: string, fallback: number) =>
  checkedInt(name, "must be 0 (off) or a positive integer", (n) => n >= 0).pipe(Config.withDefault(fallback))

/** An optional absolute URL. */
const optionalUrl = (name: string) =>
  optionalString(name).pipe(
    Config.mapEffect((value) =>
      Option.isNone(value) || URL.canParse(value.value) ? Effect.succeed(value) : Effect.fail(invalidAt(name, "must be an absolute URL"))
    )
  )

const logLevel: Config.Config<LogLevel.LogLevel> = Config.Literals(["debug", "info", "warn", "error"], "LOG_LEVEL").pipe(
  Config.withDefault("info" as const),
  // Effect 4's LogLevel is a string literal; the JSON lines still print it lower-case (Logging.ts).
  Config.map((level): LogLevel.LogLevel => (level === "warn" ? "Warn" : level === "debug" ? "Debug" : level === "error" ? "Error" : "Info"))
)

/** Development defaults of the token claims; production must name the platform's real ones. */
export const DEV_ISSUER = "inventory-dev"
export const DEV_AUDIENCE = "inventory-service"

const retentionFields = {
  sweepIntervalMs: positiveInt("RETENTION_SWEEP_INTERVAL_MS", 300_000),
  batchSize: positiveInt("RETENTION_BATCH_SIZE", 1000),
  outboxHours: nonNegativeInt("OUTBOX_RETENTION_HOURS", 168),
  inboxDays: nonNegativeInt("INBOX_RETENTION_DAYS", 30),
  idempotencyKeyHours: nonNegativeInt("IDEMPOTENCY_KEY_RETENTION_HOURS", 72),
  historyDays: nonNegativeInt("HISTORY_RETENTION_DAYS", 0)
}

const fields = {
  nodeEnv: Config.Literals(["development", "production", "test"], "NODE_ENV").pipe(Config.withDefault("development" as const)),
  port: port("PORT").pipe(Config.withDefault(8080)),
  metricsPort: optionalString("METRICS_PORT").pipe(
    Config.mapEffect((value) => {
      if (Option.isNone(value)) return Effect.succeed(Option.none<number>())
      const n = Number(value.value)
      return Number.isInteger(n) && n >= 0 && n <= 65535
        ? Effect.succeed(Option.some(n))
        : Effect.fail(invalidAt("METRICS_PORT", "must be a port number 0-65535"))
    })
  ),
  databaseUrl: secret("DATABASE_URL"),
  dataDir: Config.String("DATA_DIR").pipe(Config.withDefault("./.data")),
  dbPoolMax: positiveInt("DB_POOL_MAX", 10),
  dbStatementTimeoutMs: positiveInt("DB_STATEMENT_TIMEOUT_MS", 5_000),
  dbConnectTimeoutMs: positiveInt("DB_CONNECT_TIMEOUT_MS", 5_000),
  amqpUrl: secret("AMQP_URL"),
  eventsLogOnly: Config.Boolean("EVENTS_LOG_ONLY").pipe(Config.withDefault(false)),
  authJwksUrl: optionalUrl("AUTH_JWKS_URL"),
  authPublicKey: secret("AUTH_PUBLIC_KEY"),
  authIssuer: Config.String("AUTH_ISSUER").pipe(Config.withDefault(DEV_ISSUER)),
  authAudience: Config.String("AUTH_AUDIENCE").pipe(Config.withDefault(DEV_AUDIENCE)),
  authClockSkewSeconds: checkedInt("AUTH_CLOCK_SKEW_SECONDS", "must be an integer 0-300", (n) => n >= 0 && n <= 300).pipe(
    Config.withDefault(30)
  ),
  authJwksTimeoutMs: positiveInt("AUTH_JWKS_TIMEOUT_MS", 2_000),
  authJwksCooldownMs: checkedInt("AUTH_JWKS_COOLDOWN_MS", "must be 0 or a positive integer", (n) => n >= 0).pipe(
    Config.withDefault(30_000)
  ),
  authJwksMaxAgeMs: positiveInt("AUTH_JWKS_MAX_AGE_MS", 600_000),
  authJwksStaleGraceSeconds: zeroOrPositiveInt("AUTH_JWKS_STALE_GRACE_SECONDS", 21_600),
  authFailuresPerMinute: zeroOrPositiveInt("AUTH_FAILURES_PER_MINUTE", 600),
  logLevel,
  otlpEndpoint: optionalUrl("OTEL_EXPORTER_OTLP_ENDPOINT"),
  deploymentEnvironment: Config.option(Config.String("DEPLOYMENT_ENVIRONMENT")),
  shutdownGraceMs: positiveInt("SHUTDOWN_GRACE_MS", 10_000),
  rateLimitRps: checkedInt("RATE_LIMIT_RPS", "must be 0 (off) or a positive integer", (n) => n >= 0).pipe(Config.withDefault(1000)),
  bodyLimitBytes: positiveInt("BODY_LIMIT_BYTES", 64 * 1024),
  bulkBodyLimitBytes: positiveInt("BULK_BODY_LIMIT_BYTES", 1024 * 1024),
  requestTimeoutMs: positiveInt("REQUEST_TIMEOUT_MS", 10_000),
  reservationSweepIntervalMs: positiveInt("RESERVATION_SWEEP_INTERVAL_MS", 1_000),
  reservationBatchMax: checkedInt("RESERVATION_BATCH_MAX", "must be an integer 1-1000", (n) => n >= 1 && n <= 1000).pipe(
    Config.withDefault(256)
  ),
  reservationBatchWorkers: Config.option(checkedInt("RESERVATION_BATCH_WORKERS", "must be an integer 1-64", (n) => n >= 1 && n <= 64)),
  amqpPrefetch: positiveInt("AMQP_PREFETCH", 20),
  amqpConsumerMaxAttempts: positiveInt("AMQP_CONSUMER_MAX_ATTEMPTS", 5),
  orderEventsExchange: Config.String("ORDER_EVENTS_EXCHANGE").pipe(Config.withDefault("order.events")),
  productEventsExchange: Config.String("PRODUCT_EVENTS_EXCHANGE").pipe(Config.withDefault("product.events")),
  outboxPollIntervalMs: positiveInt("OUTBOX_POLL_INTERVAL_MS", 300),
  outboxBatchSize: positiveInt("OUTBOX_BATCH_SIZE", 1000),
  outboxMaxAttempts: positiveInt("OUTBOX_MAX_ATTEMPTS", 10),
  outboxListen: Config.Boolean("OUTBOX_LISTEN").pipe(Config.withDefault(true)),
  retention: Config.all(retentionFields)
}
export const appConfig: Config.Config<AppConfigShape> = Config.all(fields)

/**
 * Every invalid variable, not only the first: Effect 4's `Config.all` stops at the first error,
 * Effect 3's reported them all, so on failure each setting is read once more on its own.
 */
const describeAllErrors = (env: ConfigProvider.ConfigProvider, first: Config.ConfigError): Effect.Effect<string> => {
  const { retention: _, ...top } = fields
  const settings: ReadonlyArray<Config.Config<unknown>> = [...Object.values(top), ...Object.values(retentionFields)]
  return Effect.forEach(settings, (config) => Effect.result(config.parse(env))).pipe(
    Effect.map((results) => {
      const messages = results.flatMap((result) => (result._tag === "Failure" ? [describeConfigError(result.failure)] : []))
      return messages.length > 0 ? messages.join("; ") : describeConfigError(first)
    })
  )
}

/**
 * What a process needs: the service ("serve") verifies tokens; a one-shot database tool
 * ("database", the migration Job) needs only DATABASE_URL, so it is given only that secret.
 */
export type ConfigPurpose = "serve" | "database"

/** Start-up refuses to run on configuration that is unsafe in production. */
const productionProblems = (config: AppConfigShape, env: ConfigProvider.ConfigProvider, purpose: ConfigPurpose): ReadonlyArray<string> => {
  if (config.nodeEnv !== "production") return []
  const problems: Array<string> = []
  // Tokens: a real key source (never the development key pair) and the platform's own claims.
  if (purpose === "serve" && Option.isNone(config.authJwksUrl) && Option.isNone(config.authPublicKey)) {
    problems.push("AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE: required in production (no development key)")
  }
  for (const name of purpose === "serve" ? ["AUTH_ISSUER", "AUTH_AUDIENCE"] : []) {
    if (!isSet(env, name)) problems.push(`${name}: required in production`)
  }
  // The log publisher marks every event published: without a broker they would be lost for good.
  if (purpose === "serve" && Option.isNone(config.amqpUrl) && !config.eventsLogOnly) {
    problems.push("AMQP_URL or AMQP_URL_FILE: required in production (or EVENTS_LOG_ONLY=true to write events only to the log)")
  }
  if (Option.isNone(config.databaseUrl)) problems.push("DATABASE_URL: required in production (no embedded database)")
  const rawUrl = process.env["DATABASE_URL"]
  if (rawUrl !== undefined && /:\/\/[^/:@]+:[^/@]+@/.test(rawUrl)) {
    problems.push("DATABASE_URL: holds a password in plain config; use DATABASE_URL_FILE in production")
  }
  return problems
}

/** Settings that contradict each other, in any environment. */
const ambiguities = (config: AppConfigShape): ReadonlyArray<string> => [
  ...(Option.isSome(config.authJwksUrl) && Option.isSome(config.authPublicKey)
    ? ["AUTH_JWKS_URL and AUTH_PUBLIC_KEY(_FILE): set only one source of token keys"]
    : []),
  // Each batch in flight holds a connection: reads, adjustments and the relay need the rest.
  ...(Option.isSome(config.reservationBatchWorkers) && config.reservationBatchWorkers.value >= config.dbPoolMax
    ? [`RESERVATION_BATCH_WORKERS: must be below DB_POOL_MAX (${config.dbPoolMax})`]
    : [])
]

/** Batches in flight at once: RESERVATION_BATCH_WORKERS, or 3 but never the whole pool. */
export const reservationBatchWorkers = (config: AppConfigShape): number =>
  Option.getOrElse(config.reservationBatchWorkers, () => Math.max(1, Math.min(3, config.dbPoolMax - 1)))

export class InvalidConfig extends Data.TaggedError("InvalidConfig")<{ readonly message: string }> {}

/**
 * One line naming the variable, e.g. `PORT: Expected a string representing a finite number`.
 * Effect 4's ConfigError holds either a source error (the provider could not be read) or a Schema
 * issue whose path is the variable; every leaf issue becomes `NAME: message`, joined by "; ".
 */
export const describeConfigError = (error: Config.ConfigError): string => {
  const cause = error.cause
  if (!Schema.isSchemaError(cause)) return cause.message
  const issues = SchemaIssue.makeFormatterStandardSchemaV1()(cause.issue).issues
  return issues
    .map((issue) => {
      const path = (issue.path ?? []).map((p) => String(typeof p === "object" && p !== null && "key" in p ? p.key : p))
      return path.length > 0 ? `${path.join(".")}: ${issue.message}` : issue.message
    })
    .join("; ")
}

/** Whether the variable is given at all (defaults do not count; an empty value counts as unset). */
const isSet = (env: ConfigProvider.ConfigProvider, name: string) =>
  Effect.runSync(Effect.isSuccess(Config.String(name).parse(env)))

export const loadConfigFor = (purpose: ConfigPurpose): Effect.Effect<AppConfigShape, InvalidConfig> =>
  Effect.gen(function* () {
    const env = yield* ConfigProvider.ConfigProvider
    const config = yield* appConfig.parse(env).pipe(
      Effect.catch((error) =>
        Effect.flatMap(describeAllErrors(env, error), (text) => Effect.fail(new InvalidConfig({ message: `Invalid configuration: ${text}` })))
      )
    )
    const problems = [...ambiguities(config), ...productionProblems(config, env, purpose)]
    return problems.length === 0
      ? config
      : yield* Effect.fail(new InvalidConfig({ message: `Invalid configuration: ${problems.join("; ")}` }))
  })

export const loadConfig: Effect.Effect<AppConfigShape, InvalidConfig> = loadConfigFor("serve")

export const AppConfigLive = Layer.effect(AppConfig, loadConfig)

/** For tests and tools: a configuration with overrides, everything else at its defaults. */
export const configFromMap = (values: Record<string, string>): Layer.Layer<AppConfig, InvalidConfig> =>
  Layer.effect(AppConfig, loadConfig).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: values }))))
