import { readFileSync } from "node:fs"
import { Config, ConfigError, ConfigProvider, Context, Data, Effect, Either, Layer, LogLevel, Option, Redacted } from "effect"

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
  readonly requestTimeoutMs: number
  readonly reservationSweepIntervalMs: number
  readonly amqpPrefetch: number
  readonly amqpConsumerMaxAttempts: number
  readonly orderEventsExchange: string
  readonly productEventsExchange: string
  readonly outboxPollIntervalMs: number
  readonly outboxBatchSize: number
  readonly outboxMaxAttempts: number
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

export class AppConfig extends Context.Tag("inventory/AppConfig")<AppConfig, AppConfigShape>() {}

/** An optional variable; an empty value (common in manifests) counts as unset. */
const optionalString = (name: string) =>
  Config.option(Config.string(name)).pipe(Config.map(Option.filter((value) => value.trim() !== "")))

/** `NAME` or the contents of the file named by `NAME_FILE`, as a secret. */
const secret = (name: string): Config.Config<Option.Option<Redacted.Redacted>> =>
  optionalString(`${name}_FILE`).pipe(
    Config.mapOrFail((file) =>
      Option.match(file, {
        onNone: () => Either.right(Option.none<string>()),
        onSome: (path) =>
          Either.try({
            try: () => Option.some(readFileSync(path, "utf8").trim()),
            catch: () => ConfigError.InvalidData([`${name}_FILE`], `cannot read file ${path}`)
          })
      })
    ),
    Config.zipWith(optionalString(name), (fromFile, fromEnv) =>
      Option.map(Option.orElse(fromFile, () => fromEnv), Redacted.make)
    )
  )

/** 0 asks the operating system for a free port (tests). */
const port = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: "must be a port number 0-65535", validation: (n) => n >= 0 && n <= 65535 }))

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

/** 0 means "keep forever" for retention periods. */
const nonNegativeInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be 0 (keep forever) or a positive integer", validation: (n) => n >= 0 }),
    Config.withDefault(fallback)
  )

/** 0 turns the feature off. */
const zeroOrPositiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be 0 (off) or a positive integer", validation: (n) => n >= 0 }),
    Config.withDefault(fallback)
  )

/** An optional absolute URL. */
const optionalUrl = (name: string) =>
  optionalString(name).pipe(
    Config.mapOrFail((value) =>
      Option.isNone(value) || URL.canParse(value.value)
        ? Either.right(value)
        : Either.left(ConfigError.InvalidData([name], "must be an absolute URL"))
    )
  )

const logLevel = Config.literal("debug", "info", "warn", "error")("LOG_LEVEL").pipe(
  Config.withDefault("info" as const),
  Config.map((level) => LogLevel.fromLiteral(level === "warn" ? "Warning" : level === "debug" ? "Debug" : level === "error" ? "Error" : "Info"))
)

/** Development defaults of the token claims; production must name the platform's real ones. */
export const DEV_ISSUER = "inventory-dev"
export const DEV_AUDIENCE = "inventory-service"

export const appConfig: Config.Config<AppConfigShape> = Config.all({
  nodeEnv: Config.literal("development", "production", "test")("NODE_ENV").pipe(Config.withDefault("development" as const)),
  port: port("PORT").pipe(Config.withDefault(8080)),
  metricsPort: optionalString("METRICS_PORT").pipe(
    Config.mapOrFail((value) => {
      if (Option.isNone(value)) return Either.right(Option.none<number>())
      const n = Number(value.value)
      return Number.isInteger(n) && n >= 0 && n <= 65535
        ? Either.right(Option.some(n))
        : Either.left(ConfigError.InvalidData(["METRICS_PORT"], "must be a port number 0-65535"))
    })
  ),
  databaseUrl: secret("DATABASE_URL"),
  dataDir: Config.string("DATA_DIR").pipe(Config.withDefault("./.data")),
  dbPoolMax: positiveInt("DB_POOL_MAX", 10),
  dbStatementTimeoutMs: positiveInt("DB_STATEMENT_TIMEOUT_MS", 5_000),
  dbConnectTimeoutMs: positiveInt("DB_CONNECT_TIMEOUT_MS", 5_000),
  amqpUrl: secret("AMQP_URL"),
  eventsLogOnly: Config.boolean("EVENTS_LOG_ONLY").pipe(Config.withDefault(false)),
  authJwksUrl: optionalUrl("AUTH_JWKS_URL"),
  authPublicKey: secret("AUTH_PUBLIC_KEY"),
  authIssuer: Config.string("AUTH_ISSUER").pipe(Config.withDefault(DEV_ISSUER)),
  authAudience: Config.string("AUTH_AUDIENCE").pipe(Config.withDefault(DEV_AUDIENCE)),
  authClockSkewSeconds: Config.integer("AUTH_CLOCK_SKEW_SECONDS").pipe(
    Config.validate({ message: "must be an integer 0-300", validation: (n) => n >= 0 && n <= 300 }),
    Config.withDefault(30)
  ),
  authJwksTimeoutMs: positiveInt("AUTH_JWKS_TIMEOUT_MS", 2_000),
  authJwksCooldownMs: Config.integer("AUTH_JWKS_COOLDOWN_MS").pipe(
    Config.validate({ message: "must be 0 or a positive integer", validation: (n) => n >= 0 }),
    Config.withDefault(30_000)
  ),
  authJwksMaxAgeMs: positiveInt("AUTH_JWKS_MAX_AGE_MS", 600_000),
  authJwksStaleGraceSeconds: zeroOrPositiveInt("AUTH_JWKS_STALE_GRACE_SECONDS", 21_600),
  authFailuresPerMinute: zeroOrPositiveInt("AUTH_FAILURES_PER_MINUTE", 600),
  logLevel,
  otlpEndpoint: optionalUrl("OTEL_EXPORTER_OTLP_ENDPOINT"),
  deploymentEnvironment: Config.option(Config.string("DEPLOYMENT_ENVIRONMENT")),
  shutdownGraceMs: positiveInt("SHUTDOWN_GRACE_MS", 10_000),
  rateLimitRps: Config.integer("RATE_LIMIT_RPS").pipe(
    Config.validate({ message: "must be 0 (off) or a positive integer", validation: (n) => n >= 0 }),
    Config.withDefault(1000)
  ),
  bodyLimitBytes: positiveInt("BODY_LIMIT_BYTES", 64 * 1024),
  requestTimeoutMs: positiveInt("REQUEST_TIMEOUT_MS", 10_000),
  reservationSweepIntervalMs: positiveInt("RESERVATION_SWEEP_INTERVAL_MS", 1_000),
  amqpPrefetch: positiveInt("AMQP_PREFETCH", 20),
  amqpConsumerMaxAttempts: positiveInt("AMQP_CONSUMER_MAX_ATTEMPTS", 5),
  orderEventsExchange: Config.string("ORDER_EVENTS_EXCHANGE").pipe(Config.withDefault("order.events")),
  productEventsExchange: Config.string("PRODUCT_EVENTS_EXCHANGE").pipe(Config.withDefault("product.events")),
  outboxPollIntervalMs: positiveInt("OUTBOX_POLL_INTERVAL_MS", 300),
  outboxBatchSize: positiveInt("OUTBOX_BATCH_SIZE", 1000),
  outboxMaxAttempts: positiveInt("OUTBOX_MAX_ATTEMPTS", 10),
  retention: Config.all({
    sweepIntervalMs: positiveInt("RETENTION_SWEEP_INTERVAL_MS", 300_000),
    batchSize: positiveInt("RETENTION_BATCH_SIZE", 1000),
    outboxHours: nonNegativeInt("OUTBOX_RETENTION_HOURS", 168),
    inboxDays: nonNegativeInt("INBOX_RETENTION_DAYS", 30),
    idempotencyKeyHours: nonNegativeInt("IDEMPOTENCY_KEY_RETENTION_HOURS", 72),
    historyDays: nonNegativeInt("HISTORY_RETENTION_DAYS", 0)
  })
})

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
const ambiguities = (config: AppConfigShape): ReadonlyArray<string> =>
  Option.isSome(config.authJwksUrl) && Option.isSome(config.authPublicKey)
    ? ["AUTH_JWKS_URL and AUTH_PUBLIC_KEY(_FILE): set only one source of token keys"]
    : []

export class InvalidConfig extends Data.TaggedError("InvalidConfig")<{ readonly message: string }> {}

/** One line naming the variable, e.g. `PORT: Expected an integer value but received abc`. */
export const describeConfigError = (error: ConfigError.ConfigError): string =>
  ConfigError.reduceWithContext(error, undefined, {
    andCase: (_, left: string, right: string) => `${left}; ${right}`,
    orCase: (_, left: string, right: string) => `${left}; ${right}`,
    invalidDataCase: (_, path, message) => `${path.join(".")}: ${message}`,
    missingDataCase: (_, path, message) => `${path.join(".")}: ${message}`,
    sourceUnavailableCase: (_, path, message) => `${path.join(".")}: ${message}`,
    unsupportedCase: (_, path, message) => `${path.join(".")}: ${message}`
  })

/** Whether the variable is given at all (defaults do not count). */
const isSet = (env: ConfigProvider.ConfigProvider, name: string) =>
  Effect.runSync(Effect.isSuccess(env.load(Config.string(name))))

export const loadConfigFor = (purpose: ConfigPurpose): Effect.Effect<AppConfigShape, InvalidConfig> => appConfig.pipe(
  Effect.mapError((error) => new InvalidConfig({ message: `Invalid configuration: ${describeConfigError(error)}` })),
  Effect.flatMap((config) =>
    Effect.flatMap(Effect.configProviderWith(Effect.succeed), (env) => {
      const problems = [...ambiguities(config), ...productionProblems(config, env, purpose)]
      return problems.length === 0
        ? Effect.succeed(config)
        : Effect.fail(new InvalidConfig({ message: `Invalid configuration: ${problems.join("; ")}` }))
    })
  )
)

export const loadConfig: Effect.Effect<AppConfigShape, InvalidConfig> = loadConfigFor("serve")

export const AppConfigLive = Layer.effect(AppConfig, loadConfig)

/** For tests and tools: a configuration with overrides, everything else at its defaults. */
export const configFromMap = (values: Record<string, string>) =>
  Layer.effect(AppConfig, loadConfig).pipe(
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(values)))))
  )
