import { Effect, Result } from "effect"
import { OutboxAdmin, type TouchedRow } from "../outbox/OutboxAdmin.js"
import { intOption, UsageError } from "./Args.js"
import { type ChangeContext, type Command, logChange, type Outcome } from "./Command.js"

const touchedLines = (verb: { readonly done: string; readonly would: string }, change: ChangeContext, rows: ReadonlyArray<TouchedRow>) => [
  ...rows.map((row) => `${row.id} ${row.eventType} ${row.aggregateId} ${row.eventId}`),
  change.apply ? `${verb.done} ${rows.length} row(s)` : `dry run: would ${verb.would} ${rows.length} row(s) (add --yes to apply)`
]

/** Ids given on the command line that the change did not touch (not parked, or no such row). */
const missing = (ids: ReadonlyArray<string>, rows: ReadonlyArray<TouchedRow>) => ids.filter((id) => !rows.some((row) => row.id === id))

const parseIds = (positionals: ReadonlyArray<string>) => {
  const bad = positionals.filter((id) => !/^[0-9]+$/.test(id))
  return bad.length > 0 ? Result.fail(new UsageError({ message: `outbox row ids are numbers (the "id" column), got ${bad.join(", ")}` })) : Result.succeed(positionals)
}

const status: Command<OutboxAdmin> = {
  name: "outbox status",
  usage: "",
  summary: "pending, in flight, retrying and parked rows, oldest pending age, per event type, and live relay leases",
  help: "Exits 1 when rows are parked (they need an operator: docs/runbooks/parked-events.md).",
  options: [],
  changes: false,
  needsReason: false,
  run: () =>
    Effect.gen(function* () {
      const s = yield* (yield* OutboxAdmin).status
      const lines = [
        `pending ${s.pending} (in flight ${s.inFlight}, retrying ${s.retrying}), parked ${s.parked}, oldest pending ${s.oldestPendingSeconds.toFixed(1)} s`,
        ...s.byType.map((t) => `  ${t.eventType}: pending ${t.pending}, in flight ${t.inFlight}, retrying ${t.retrying}, parked ${t.parked}, oldest ${t.oldestPendingSeconds.toFixed(1)} s`),
        ...s.leases.map((l) => `  lease ${l.relay}: ${l.rows} row(s) until ${l.until.toISOString()}`)
      ]
      return { problem: s.parked > 0, json: s, lines } satisfies Outcome
    })
}

const parked: Command<OutboxAdmin> = {
  name: "outbox parked",
  usage: "[--limit N]",
  summary: "list parked rows (oldest first) with their attempts and the broker's last error",
  help: "Exits 1 when there is any.",
  options: [{ name: "limit", value: "N", description: "at most N rows (default 100)" }],
  changes: false,
  needsReason: false,
  run: ({ args }) =>
    Effect.gen(function* () {
      const limit = yield* Effect.fromResult(intOption(args, "limit", 100))
      const rows = yield* (yield* OutboxAdmin).parked(limit)
      const lines = [
        ...rows.map((r) => `${r.id} ${r.eventType} ${r.aggregateId} attempts=${r.attempts} parked=${r.parkedAt.toISOString()} error=${r.lastError ?? "-"}`),
        `${rows.length} parked row(s)`
      ]
      return { problem: rows.length > 0, json: { parked: rows }, lines } satisfies Outcome
    })
}

const requeue: Command<OutboxAdmin> = {
  name: "outbox requeue",
  usage: "<id…> | --all",
  summary: "un-park rows: the relay publishes them again with a fresh set of attempts",
  help: "Only parked rows are touched. Exits 1 when a given id is not a parked row.",
  options: [{ name: "all", description: "every parked row" }],
  changes: true,
  needsReason: true,
  run: ({ args, change }) =>
    Effect.gen(function* () {
      const all = args.flags.has("all")
      if (all === (args.positionals.length > 0)) return yield* new UsageError({ message: "give parked row ids or --all (not both)" })
      const ids = yield* Effect.fromResult(parseIds(args.positionals))
      const rows = yield* (yield* OutboxAdmin).requeue(all ? "all" : ids, change.apply)
      const notParked = all ? [] : missing(ids, rows)
      yield* logChange("outbox requeue", change, { rows: rows.map((r) => r.id), events: rows.map((r) => r.eventId), notParked })
      return {
        problem: notParked.length > 0,
        json: { applied: change.apply, requeued: rows, notParked },
        lines: [...touchedLines({ done: "requeued", would: "requeue" }, change, rows), ...notParked.map((id) => `not a parked row: ${id}`)]
      } satisfies Outcome
    })
}

const discard: Command<OutboxAdmin> = {
  name: "outbox discard",
  usage: "<id…> --reason R",
  summary: "delete parked rows for good: their events are never published",
  help: "Only parked rows are deleted; the audit line holds each payload for the incident record. Decide with the service owner first.",
  options: [],
  changes: true,
  needsReason: true,
  run: ({ args, change }) =>
    Effect.gen(function* () {
      if (args.positionals.length === 0) return yield* new UsageError({ message: "give the ids of the parked rows to discard" })
      const ids = yield* Effect.fromResult(parseIds(args.positionals))
      const rows = yield* (yield* OutboxAdmin).discard(ids, change.apply)
      const notParked = missing(ids, rows)
      yield* logChange("outbox discard", change, { rows: rows.map((r) => r.id), discarded: rows, notParked })
      return {
        problem: notParked.length > 0,
        json: { applied: change.apply, discarded: rows, notParked },
        lines: [...touchedLines({ done: "discarded", would: "discard" }, change, rows), ...notParked.map((id) => `not a parked row: ${id}`)]
      } satisfies Outcome
    })
}

const releaseLeases: Command<OutboxAdmin> = {
  name: "outbox release-leases",
  usage: "[--relay id]",
  summary: "clear live relay leases so other relays take the rows at once (instead of within 60 s)",
  help:
    "Only for a relay that is certainly gone (its pod deleted): a live relay would publish the rows twice.\n" +
    "Without --relay it clears the leases of every relay (use when all pods are stopped). `outbox status` lists the leases.",
  options: [{ name: "relay", value: "id", description: "only this relay's leases (the claimed_by value, as `outbox status` shows it)" }],
  changes: true,
  needsReason: true,
  run: ({ args, change }) =>
    Effect.gen(function* () {
      if (args.positionals.length > 0) return yield* new UsageError({ message: "release-leases takes no arguments (use --relay id)" })
      const relay = args.options.get("relay") ?? null
      const rows = yield* (yield* OutboxAdmin).releaseLeases(relay, change.apply)
      const relays = [...new Set(rows.map((r) => r.relay))]
      yield* logChange("outbox release-leases", change, { relay, relays, rows: rows.map((r) => r.id) })
      return {
        problem: false,
        json: { applied: change.apply, relay, relays, released: rows },
        lines: touchedLines({ done: "released the leases of", would: "release the leases of" }, change, rows)
      } satisfies Outcome
    })
}

export const outboxCommands = [status, parked, requeue, discard, releaseLeases] as const
