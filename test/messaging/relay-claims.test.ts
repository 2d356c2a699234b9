// How the relay claims under a stuck aggregate and a wide backlog, against the real PostgreSQL and
// RabbitMQ: an aggregate backing off with 10,000 pending rows costs other aggregates' claims no
// full scan, one claim never takes more than MAX_AGGREGATES_PER_CLAIM advisory locks, and claims on
// an outbox without statistics read a bounded number of rows each.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ConsumeMessage } from "amqplib"
import pg from "pg"
import { MAX_AGGREGATES_PER_CLAIM } from "../../src/outbox/Relay.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { insertEventBacklog, query } from "../support/database.js"

/** Rows of aggregate `aggregate` (or one aggregate per row when `aggregate` is null), due in `dueIn`. */
const insertRows = (app: TestApp, count: number, aggregate: string | null, dueIn: string) =>
  query(
    app.database.url,
    `INSERT INTO outbox (event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, next_attempt_at)
     SELECT gen_random_uuid(), 'StockLevelChangedEvent', 'inventory.stock_level_changed', 'StockLevel',
            COALESCE($1, 'wide-' || n), jsonb_build_object('n', n), now() + $3::interval
       FROM generate_series(1, $2::int) AS n`,
    [aggregate, count, dueIn]
  )

/** Tuples PostgreSQL read from the outbox table and its indexes, and transactions committed, so far. */
const readCounters = async (app: TestApp) => {
  const [row] = await query<{ reads: string; xacts: string }>(
    app.database.url,
    `SELECT (SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = 'outbox')
            + (SELECT COALESCE(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname = 'outbox') AS reads,
            (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS xacts`
  )
  return { reads: Number(row!.reads), xacts: Number(row!.xacts) }
}

const untilBrokerUp = (app: TestApp) =>
  eventually(async () => {
    const body = (await (await fetch(`${app.baseUrl}/health/ready`)).json()) as { checks?: { broker?: { status?: string } } }
    return body.checks?.broker?.status === "up" ? true : undefined
  }, 30_000, "broker connection")

/** Until the relay has published every pending row (but those of aggregate `except`). */
const untilDrained = (app: TestApp, timeoutMs: number, except = "") =>
  eventually(
    async () => {
      const [row] = await query<{ n: number }>(
        app.database.url,
        "SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL AND aggregate_id <> $1",
        [except]
      )
      return row!.n === 0 ? true : undefined
    },
    timeoutMs,
    "the outbox drained"
  )

describe("relay claims", () => {
  let vhost: TestVhost
  let app: TestApp
  let peer: Peer
  let messages: Array<ConsumeMessage>

  beforeAll(async () => {
    vhost = await createTestVhost("relay-claims")
    app = await startTestApp({
      label: "relay-claims",
      env: {
        AMQP_URL: vhost.url(),
        OUTBOX_POLL_INTERVAL_MS: "100",
        OUTBOX_BATCH_SIZE: "500",
        // Keep the other fibers' transactions out of the per-claim arithmetic.
        RESERVATION_SWEEP_INTERVAL_MS: "600000"
      }
    })
    await untilBrokerUp(app)
    peer = await connectPeer(vhost.url())
    messages = (await peer.collect("inventory.events")).messages
  })
  afterAll(async () => {
    await peer?.close()
    await app?.close()
    await vhost?.drop()
  })

  it("keeps claiming other aggregates cheaply while one aggregate backs off with 10,000 pending rows", async () => {
    await insertRows(app, 10_000, "stuck", "1 hour")
    // Let the relay settle on the stuck head, then measure a few seconds of its claims.
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const before = await readCounters(app)
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    const after = await readCounters(app)
    const claims = after.xacts - before.xacts
    expect(claims).toBeGreaterThan(5)
    // Without a bound each claim reads all 10,000 stuck rows; bounded, the head window (4 batches)
    // and a skip scan of the other aggregates' heads.
    expect((after.reads - before.reads) / claims).toBeLessThan(6_000)

    // Other aggregates still go out promptly, behind the stuck one.
    const response = await fetch(`${app.baseUrl}/v1/stock-levels/beside-stuck`, {
      method: "PUT",
      headers: { ...app.authHeaders, "content-type": "application/json" },
      body: "{}"
    })
    expect(response.status).toBe(201)
    // Creating a level writes no event; a purchase does.
    const purchase = await fetch(`${app.baseUrl}/v1/stock-levels/beside-stuck/adjustments`, {
      method: "POST",
      headers: { ...app.authHeaders, "content-type": "application/json" },
      body: JSON.stringify({ type: "PURCHASE", quantity: 1 })
    })
    expect(purchase.status).toBe(200)
    await eventually(
      () => (messages.some((m) => JSON.parse(m.content.toString()).aggregateId === "beside-stuck") ? true : undefined),
      10_000,
      "the other aggregate's event"
    )
    await query(app.database.url, "DELETE FROM outbox WHERE aggregate_id = 'stuck'")
  })

  it(`takes at most ${MAX_AGGREGATES_PER_CLAIM} aggregates (advisory locks) per claim, and still drains a wide backlog`, async () => {
    const from = app.logs().length
    await insertRows(app, 3 * MAX_AGGREGATES_PER_CLAIM + 50, null, "0 seconds")
    await untilDrained(app, 30_000)
    const batches = app
      .logs()
      .slice(from)
      .map((line) => JSON.parse(line) as { message: string; aggregates?: number })
      .filter((line) => line.message === "outbox: batch relayed")
    expect(batches.length).toBeGreaterThanOrEqual(4)
    expect(Math.max(...batches.map((b) => b.aggregates ?? Infinity))).toBeLessThanOrEqual(MAX_AGGREGATES_PER_CLAIM)
  })

  // The lease changes no indexed column: with room on the row's page (migration 0087's fill factor)
  // it is a HOT update, writing no index entries. At the default fill factor about 3% of leases
  // were, and claims took twice as long. The mark changes published_at (in the partial indexes'
  // predicates), so it is never HOT: about one HOT update per event (92% measured; a mark can take
  // the room a later lease would have used).
  it("leases rows in place (HOT updates, no index entries)", async () => {
    const updates = async () => {
      const [row] = await query<{ all: string; hot: string }>(
        app.database.url,
        "SELECT n_tup_upd AS all, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relname = 'outbox'"
      )
      return { all: Number(row!.all), hot: Number(row!.hot) }
    }
    await untilDrained(app, 30_000)
    await new Promise((resolve) => setTimeout(resolve, 1_500)) // statistics counters are flushed about once a second
    const before = await updates()
    await insertRows(app, 2_000, null, "0 seconds")
    await untilDrained(app, 30_000)
    // Until the counters show a lease and a mark per event (they are flushed about once a second).
    const after = await eventually(async () => {
      const now = await updates()
      return now.all - before.all >= 2 * 2_000 ? now : undefined
    }, 10_000, "a lease and a mark per event counted")
    expect(after.hot - before.hot).toBeGreaterThanOrEqual(0.75 * 2_000)
  })
})

// A table that has just grown has no statistics on how many aggregates its pending rows belong to,
// and statistics taken while the outbox was drained put its pending rows at about none: the claim's
// plans must not depend on either (migrations 0085, 0086).
describe("relay claims on an outbox without statistics", () => {
  let vhost: TestVhost
  let app: TestApp
  let peer: Peer

  beforeAll(async () => {
    vhost = await createTestVhost("relay-claims-nostats")
    app = await startTestApp({
      label: "relay-claims-nostats",
      env: { AMQP_URL: vhost.url(), OUTBOX_POLL_INTERVAL_MS: "100", RESERVATION_SWEEP_INTERVAL_MS: "600000" }
    })
    await untilBrokerUp(app)
    peer = await connectPeer(vhost.url())
    await peer.channel.assertQueue("nostats.all", { durable: false })
    await peer.channel.bindQueue("nostats.all", "inventory.events", "#")
  })
  afterAll(async () => {
    await peer?.close()
    await app?.close()
    await vhost?.drop()
  })

  /**
   * Inserts 20,000 due events of 20,000 aggregates (behind `stuck` rows of one aggregate backing off,
   * when given), waits for the relay to publish them all, returns rows read per transaction.
   */
  const drainWideBacklog = async (stuck = 0) => {
    const before = await readCounters(app)
    if (stuck > 0) await insertRows(app, stuck, "stuck", "1 hour")
    await insertRows(app, 20_000, null, "0 seconds")
    await untilDrained(app, 300_000, "stuck")
    await new Promise((resolve) => setTimeout(resolve, 1_500)) // statistics counters are flushed about once a second
    const after = await readCounters(app)
    const transactions = after.xacts - before.xacts
    // At most MAX_AGGREGATES_PER_CLAIM aggregates per claim: at least 200 claims.
    expect(transactions).toBeGreaterThanOrEqual(20_000 / MAX_AGGREGATES_PER_CLAIM)
    return (after.reads - before.reads) / transactions
  }

  // Bounded: the head window (4,000 rows) and the claimed aggregates' rows per claim (or the head
  // walk's 4,000 probes). Unbounded, every claimed aggregate's lookup walks the pending backlog:
  // about 1,000,000 rows per claim at the start (20,000 × 100); measured 372,747 per transaction
  // without migration 0085.
  const BOUND = 20_000

  it("drains 20,000 events of 20,000 aggregates reading a bounded number of rows per claim", async () => {
    // No ANALYZE may run meanwhile: the planner keeps the freshly migrated, empty table's picture.
    await query(app.database.url, "ALTER TABLE outbox SET (autovacuum_enabled = false)")
    const [stats] = await query<{ n: number }>(
      app.database.url,
      "SELECT count(*)::int AS n FROM pg_stats WHERE tablename = 'outbox' AND attname = 'aggregate_id'"
    )
    expect(stats!.n).toBe(0)
    expect(await drainWideBacklog()).toBeLessThan(BOUND)
    const { messageCount } = await peer.channel.checkQueue("nostats.all")
    expect(messageCount).toBe(20_000)
  }, 320_000)

  // Statistics taken while the outbox was drained (the previous test's 20,000 rows, all published):
  // the planner then costs both partial indexes of pending rows at about nothing. Without migration
  // 0086 this read 334,283 rows per transaction and took 131 s to drain.
  it("drains 20,000 wide events reading a bounded number of rows per claim after statistics of a drained outbox", async () => {
    await query(app.database.url, "ANALYZE outbox")
    const [stats] = await query<{ nullFraction: number }>(
      app.database.url,
      "SELECT null_frac AS \"nullFraction\" FROM pg_stats WHERE tablename = 'outbox' AND attname = 'published_at'"
    )
    expect(stats!.nullFraction).toBe(0)
    expect(await drainWideBacklog()).toBeLessThan(BOUND)
  }, 320_000)

  // The same statistics, and an aggregate backing off with 10,000 rows ahead of the backlog: the head
  // window holds nothing claimable, so every claim walks the aggregates' heads (step 1b). Without
  // migration 0086 one such claim took 30 s (each of its 4,000 probes read and sorted the backlog).
  it("walks past an aggregate backing off with 10,000 rows after statistics of a drained outbox", async () => {
    await query(app.database.url, "ANALYZE outbox")
    expect(await drainWideBacklog(10_000)).toBeLessThan(BOUND)
    await query(app.database.url, "DELETE FROM outbox WHERE aggregate_id = 'stuck'")
  }, 320_000)
})

// The head window's one good plan is an ordered walk of outbox_pending_id that stops after the
// window. On a table that has just grown (no statistics), the planner's estimate of 3 pending rows
// made a bitmap scan of the whole index and a sort a hair cheaper: every pending row fetched and
// sorted per claim (migration 0089; 51,000 fetches and 57 ms for this backlog, 5,000 and 19 ms now).
describe("the claim's head window on an outbox that has just grown", () => {
  let app: TestApp

  beforeAll(async () => {
    app = await startTestApp({ label: "relay-claims-grown", env: { RESERVATION_SWEEP_INTERVAL_MS: "600000" } })
  })
  afterAll(async () => {
    await app?.close()
  })

  it("reads the window, not the backlog: 50,000 pending events without statistics", async () => {
    await query(app.database.url, "ALTER TABLE outbox SET (autovacuum_enabled = false)")
    // Events as the service writes them (envelope, correlation id, traceparent), due in an hour so
    // the service's relay leaves them alone: the claim below still reads its window of them.
    await insertEventBacklog(app.database.url, 50_000, "grown-", "1 hour")
    const [stats] = await query<{ n: number }>(app.database.url, "SELECT count(*)::int AS n FROM pg_stats WHERE tablename = 'outbox'")
    expect(stats!.n).toBe(0)
    // One claim as the relay makes it (window 4 × 1,000 rows, 100 aggregates, batches of 1,000), in
    // a transaction of its own that is rolled back: its heap fetches and scanned tuples, from
    // pg_stat_xact_user_tables (this transaction only, whatever the service's relay does meanwhile).
    const client = new pg.Client({ connectionString: app.database.url })
    await client.connect()
    const reads = await (async () => {
      try {
        await client.query("BEGIN")
        const claim = await client.query("SELECT count(*)::int AS n FROM outbox_claim('relay-claims-probe', '{}', 4000, $1, 1000, 60, 73182)", [MAX_AGGREGATES_PER_CLAIM])
        const counters = await client.query(
          "SELECT (seq_tup_read + idx_tup_fetch)::int AS n FROM pg_stat_xact_user_tables WHERE relname = 'outbox'"
        )
        return { claimed: claim.rows[0].n as number, fetched: counters.rows[0].n as number }
      } finally {
        await client.query("ROLLBACK")
        await client.end()
      }
    })()
    expect(reads.claimed).toBe(0)
    // The window (4,000 rows) and the head walk's 1,000 probes (nothing in the window is due).
    expect(reads.fetched).toBeLessThan(10_000)
  }, 60_000)
})
