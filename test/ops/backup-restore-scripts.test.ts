// scripts/backup and scripts/restore against the real local PostgreSQL: a scratch database with a
// few tables, constraints and a sequence is dumped, restored into a second database and compared.
// Both databases get unique names per run and are dropped afterwards.
// Server: TEST_PG_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/postgres, trust auth).
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const adminUrl = process.env["TEST_PG_ADMIN_URL"] ?? "postgresql://postgres@127.0.0.1:5432/postgres"
const urlFor = (db: string) => {
  const u = new URL(adminUrl)
  u.pathname = `/${db}`
  return u.toString()
}

const suffix = `${process.pid}_${Date.now()}`
const source = `ops_backup_src_${suffix}`
const target = `ops_backup_dst_${suffix}`
const workDir = mkdtempSync(path.join(tmpdir(), "inventory-backup-"))
const dumpFile = path.join(workDir, "nested", "inventory-test.dump")

const psql = (url: string, sql: string): string =>
  execFileSync("psql", ["--dbname", url, "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--set=ON_ERROR_STOP=1", "--command", sql], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  }).trim()

const run = (script: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const result = spawnSync(path.join(root, "scripts", script), args, {
    encoding: "utf8",
    cwd: workDir,
    env: { ...process.env, DATABASE_URL: "", TARGET_DATABASE_URL: "", ...env }
  })
  return { status: result.status, out: result.stdout, err: result.stderr }
}

/** Every row of every table as JSON, ordered, so two databases can be compared exactly. */
const snapshot = (url: string) => ({
  stock_levels: psql(url, "SELECT coalesce(json_agg(t ORDER BY variant_id), '[]') FROM stock_levels t"),
  reservations: psql(url, "SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM reservations t"),
  reservation_lines: psql(url, "SELECT coalesce(json_agg(t ORDER BY reservation_id, variant_id), '[]') FROM reservation_lines t"),
  history: psql(url, "SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM history t")
})

beforeAll(() => {
  psql(adminUrl, `CREATE DATABASE ${source}`)
  psql(
    urlFor(source),
    `
    CREATE TABLE stock_levels (
      variant_id text PRIMARY KEY,
      on_hand integer NOT NULL,
      reserved integer NOT NULL DEFAULT 0,
      available integer GENERATED ALWAYS AS (on_hand - reserved) STORED,
      updated_at timestamptz NOT NULL DEFAULT '2024-01-01T00:00:00Z',
      CHECK (reserved BETWEEN 0 AND on_hand)
    );
    CREATE TABLE reservations (
      id uuid PRIMARY KEY,
      order_id text NOT NULL UNIQUE,
      status text NOT NULL,
      metadata jsonb
    );
    CREATE TABLE reservation_lines (
      reservation_id uuid NOT NULL REFERENCES reservations (id),
      variant_id text NOT NULL REFERENCES stock_levels (variant_id),
      quantity integer NOT NULL CHECK (quantity > 0),
      PRIMARY KEY (reservation_id, variant_id)
    );
    CREATE TABLE history (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, variant_id text NOT NULL, note text);
    CREATE INDEX history_variant ON history (variant_id);
    INSERT INTO stock_levels (variant_id, on_hand, reserved)
      SELECT 'sku-' || g, g * 10, g FROM generate_series(1, 500) g;
    INSERT INTO reservations VALUES
      ('00000000-0000-4000-8000-000000000001', 'order-1', 'ACTIVE', '{"by": "order-service", "ttl": 900}'),
      ('00000000-0000-4000-8000-000000000002', 'order-2', 'RELEASED', NULL);
    INSERT INTO reservation_lines VALUES
      ('00000000-0000-4000-8000-000000000001', 'sku-1', 1),
      ('00000000-0000-4000-8000-000000000001', 'sku-2', 2),
      ('00000000-0000-4000-8000-000000000002', 'sku-3', 3);
    INSERT INTO history (variant_id, note)
      SELECT 'sku-' || (g % 500 + 1), CASE WHEN g % 7 = 0 THEN NULL ELSE 'réservé ✓ ' || g END FROM generate_series(1, 2000) g;
    `
  )
}, 60_000)

afterAll(() => {
  for (const db of [source, target]) psql(adminUrl, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
  rmSync(workDir, { recursive: true, force: true })
}, 60_000)

describe("scripts/backup and scripts/restore", () => {
  it("backs up with pg_dump -Fc and prints the file and its size", () => {
    const { status, out, err } = run("backup", [dumpFile], { DATABASE_URL: urlFor(source) })
    expect(status, err).toBe(0)
    expect(existsSync(dumpFile)).toBe(true)
    const size = statSync(dumpFile).size
    expect(out).toContain(`wrote ${dumpFile}`)
    expect(out).toContain(`size ${size} bytes`)
    // Custom-format archives start with the magic "PGDMP".
    expect(execFileSync("head", ["-c", "5", dumpFile], { encoding: "utf8" })).toBe("PGDMP")
  }, 60_000)

  it("defaults to ./backups/inventory-<UTC timestamp>.dump and never overwrites a file", () => {
    const first = run("backup", ["--database-url", urlFor(source)])
    expect(first.status, first.err).toBe(0)
    expect(first.out).toMatch(/wrote \.\/backups\/inventory-\d{8}T\d{6}Z\.dump/)
    const again = run("backup", [dumpFile], { DATABASE_URL: urlFor(source) })
    expect(again.status).not.toBe(0)
    expect(again.err).toContain("already exists")
  }, 60_000)

  it("fails clearly without a database URL or with an unreachable database, leaving no file", () => {
    const none = run("backup", [path.join(workDir, "none.dump")])
    expect(none.status).not.toBe(0)
    expect(none.err).toContain("no database")
    const missing = run("backup", [path.join(workDir, "missing.dump")], { DATABASE_URL: urlFor(`${source}_missing`) })
    expect(missing.status).not.toBe(0)
    expect(existsSync(path.join(workDir, "missing.dump"))).toBe(false)
  }, 60_000)

  it("restores into an empty database: same rows, constraints and identity sequence, and prints the elapsed time", () => {
    psql(adminUrl, `CREATE DATABASE ${target}`)
    const { status, out, err } = run("restore", [dumpFile, urlFor(target)])
    expect(status, err).toBe(0)
    expect(out).toMatch(/elapsed \d+\.\d{3} s/)
    console.log(`restore of the test data set: ${out.match(/elapsed .*/)?.[0]}`)

    expect(snapshot(urlFor(target))).toEqual(snapshot(urlFor(source)))
    expect(JSON.parse(snapshot(urlFor(target)).stock_levels)).toHaveLength(500)
    // The CHECK constraint came back with the data.
    expect(() => psql(urlFor(target), "UPDATE stock_levels SET reserved = on_hand + 1 WHERE variant_id = 'sku-1'")).toThrow()
    // The identity sequence continues after the restored rows.
    expect(Number(psql(urlFor(target), "INSERT INTO history (variant_id) VALUES ('sku-1') RETURNING id"))).toBe(2001)
  }, 60_000)

  it("refuses to restore into a non-empty database without --force and leaves it untouched", () => {
    psql(urlFor(target), "DELETE FROM history WHERE id > 2000")
    psql(urlFor(target), "UPDATE stock_levels SET on_hand = on_hand + 1 WHERE variant_id = 'sku-9'")
    const before = snapshot(urlFor(target))
    const { status, err } = run("restore", [dumpFile], { TARGET_DATABASE_URL: urlFor(target) })
    expect(status).not.toBe(0)
    expect(err).toContain("not empty")
    expect(snapshot(urlFor(target))).toEqual(before)
  }, 60_000)

  it("with --force replaces the dumped objects with the backup's contents", () => {
    const { status, out, err } = run("restore", ["--force", dumpFile, urlFor(target)])
    expect(status, err).toBe(0)
    expect(out).toContain("--force")
    expect(snapshot(urlFor(target))).toEqual(snapshot(urlFor(source)))
  }, 60_000)

  it("rejects a file that is not a pg_dump archive", () => {
    const { status, err } = run("restore", [path.join(root, "package.json"), urlFor(target)])
    expect(status).not.toBe(0)
    expect(err).toContain("not a pg_dump custom-format archive")
  }, 60_000)
})
