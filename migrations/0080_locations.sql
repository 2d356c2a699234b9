-- Locations (issue 12, ADR 0007): stock per (variant, location). The location rows are the one
-- source of truth for onHand and reserved; stock_levels keeps the variant's totals, written ONLY by
-- the triggers below, so they cannot drift from their locations. Every existing stock level,
-- reservation line and history entry moves to the location `default`, unchanged.

CREATE TABLE locations (
  location_id text        PRIMARY KEY CHECK (location_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 512),
  -- Lower is used first; ties by location_id (COLLATE "C" where ordered, as the allocation rule does).
  priority    integer     NOT NULL DEFAULT 100,
  active      boolean     NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT inventory_now(),
  updated_at  timestamptz NOT NULL DEFAULT inventory_now()
);
INSERT INTO locations (location_id, name, priority) VALUES ('default', 'Default', 0);

CREATE TABLE location_stock (
  variant_id   text        NOT NULL REFERENCES stock_levels (variant_id),
  location_id  text        NOT NULL REFERENCES locations (location_id),
  on_hand      integer     NOT NULL DEFAULT 0,
  reserved     integer     NOT NULL DEFAULT 0,
  safety_stock integer     NOT NULL DEFAULT 0 CHECK (safety_stock BETWEEN 0 AND 1000000000),
  version      integer     NOT NULL DEFAULT 1,
  created_at   timestamptz NOT NULL DEFAULT inventory_now(),
  updated_at   timestamptz NOT NULL DEFAULT inventory_now(),
  PRIMARY KEY (variant_id, location_id),
  CONSTRAINT location_stock_reserved_within_on_hand CHECK (reserved >= 0 AND reserved <= on_hand),
  CONSTRAINT location_stock_on_hand_limit CHECK (on_hand <= 1000000000)
);
-- GET /v1/locations/{id}/stock: keyset by variant within a location; reconcile per location.
CREATE INDEX location_stock_location_variant ON location_stock (location_id, variant_id);

-- What one location row adds to its variant's `available` (API.md: only ACTIVE locations count,
-- safety stock held back, never below 0). The one SQL statement of the rule in domain/Allocation.ts.
CREATE FUNCTION location_available(on_hand integer, reserved integer, safety_stock integer, active boolean)
  RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE WHEN active THEN greatest(0, on_hand - reserved - safety_stock) ELSE 0 END $$;

-- The variant's totals. `available` is stored (the status listing is indexed on it); the status
-- now follows it instead of on_hand - reserved (the same with one location and no safety stock).
ALTER TABLE stock_levels ADD COLUMN available integer NOT NULL DEFAULT 0;
UPDATE stock_levels SET available = on_hand - reserved;
DROP INDEX stock_levels_status_variant;
ALTER TABLE stock_levels DROP COLUMN status;
ALTER TABLE stock_levels ADD COLUMN status text NOT NULL GENERATED ALWAYS AS (
  CASE WHEN available <= 0 THEN 'OUT_OF_STOCK'
       WHEN available <= low_stock_threshold THEN 'LOW_STOCK'
       ELSE 'IN_STOCK' END) STORED;
CREATE INDEX stock_levels_status_variant ON stock_levels (status, variant_id);

INSERT INTO location_stock (variant_id, location_id, on_hand, reserved, version, created_at, updated_at)
SELECT variant_id, 'default', on_hand, reserved, 1, created_at, updated_at FROM stock_levels;

-- A location row's change moves its variant's totals by the same amounts and bumps the variant's
-- version (API.md: +1 on every change at any location), in the same statement.
CREATE FUNCTION location_stock_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  is_active boolean;
  old_available integer := 0;
  new_available integer;
BEGIN
  SELECT active INTO is_active FROM locations WHERE location_id = NEW.location_id;
  new_available := location_available(NEW.on_hand, NEW.reserved, NEW.safety_stock, is_active);
  IF TG_OP = 'UPDATE' THEN
    IF NEW.variant_id <> OLD.variant_id OR NEW.location_id <> OLD.location_id THEN
      RAISE EXCEPTION 'location_stock rows never move between variants or locations';
    END IF;
    old_available := location_available(OLD.on_hand, OLD.reserved, OLD.safety_stock, is_active);
    IF NEW.on_hand = OLD.on_hand AND NEW.reserved = OLD.reserved AND new_available = old_available THEN
      RETURN NULL;
    END IF;
    UPDATE stock_levels
       SET on_hand = on_hand + (NEW.on_hand - OLD.on_hand),
           reserved = reserved + (NEW.reserved - OLD.reserved),
           available = available + (new_available - old_available),
           version = version + 1,
           updated_at = NEW.updated_at
     WHERE variant_id = NEW.variant_id;
  ELSE
    UPDATE stock_levels
       SET on_hand = on_hand + NEW.on_hand,
           reserved = reserved + NEW.reserved,
           available = available + new_available,
           version = version + CASE WHEN NEW.on_hand <> 0 OR NEW.reserved <> 0 THEN 1 ELSE 0 END,
           updated_at = CASE WHEN NEW.on_hand <> 0 OR NEW.reserved <> 0 THEN NEW.updated_at ELSE updated_at END
     WHERE variant_id = NEW.variant_id;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER location_stock_roll_up AFTER INSERT OR UPDATE ON location_stock
  FOR EACH ROW EXECUTE FUNCTION location_stock_roll_up();

-- Each location row has its own version (API.md LocationStock.version): +1 on every change of it.
CREATE FUNCTION location_stock_versioned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.on_hand, NEW.reserved, NEW.safety_stock) IS DISTINCT FROM (OLD.on_hand, OLD.reserved, OLD.safety_stock) THEN
    NEW.version := OLD.version + 1;
    NEW.updated_at := inventory_now();
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER location_stock_versioned BEFORE UPDATE ON location_stock
  FOR EACH ROW EXECUTE FUNCTION location_stock_versioned();

-- Rows are never deleted (a variant stays stocked where it was: its history is there).
CREATE FUNCTION location_stock_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'location_stock rows are never deleted';
END $$;
CREATE TRIGGER location_stock_no_delete BEFORE DELETE ON location_stock
  FOR EACH ROW EXECUTE FUNCTION location_stock_no_delete();

-- The totals are the roll-up's alone: a direct write of them (a bug, a hand-pasted fix) is refused,
-- so they can only ever be the sums of their locations. A new variant starts at 0 everywhere.
CREATE FUNCTION stock_levels_totals_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.on_hand <> 0 OR NEW.reserved <> 0 OR NEW.available <> 0 THEN
      RAISE EXCEPTION 'a new stock level starts at 0; stock it at a location instead';
    END IF;
  ELSIF (NEW.on_hand, NEW.reserved, NEW.available) IS DISTINCT FROM (OLD.on_hand, OLD.reserved, OLD.available)
        AND pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'stock_levels totals change only through location_stock (variant %)', NEW.variant_id;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER stock_levels_totals_guard BEFORE INSERT OR UPDATE ON stock_levels
  FOR EACH ROW EXECUTE FUNCTION stock_levels_totals_guard();

-- Deactivating or reactivating a location changes what its rows add to their variants' available.
-- Every writer of a location row holds its variant's stock_levels row lock (locks are taken variant
-- first, then location), so recomputing under that lock, here, in variant order, sees every
-- committed change and blocks later ones until this transaction commits.
CREATE FUNCTION locations_active_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.active IS DISTINCT FROM OLD.active THEN
    PERFORM 1 FROM stock_levels s
      WHERE s.variant_id IN (SELECT variant_id FROM location_stock WHERE location_id = NEW.location_id)
      ORDER BY s.variant_id FOR UPDATE;
    UPDATE stock_levels s
       SET available = t.available, updated_at = inventory_now()
      FROM (SELECT ls.variant_id, sum(location_available(ls.on_hand, ls.reserved, ls.safety_stock, l.active))::integer AS available
              FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
             WHERE ls.variant_id IN (SELECT variant_id FROM location_stock WHERE location_id = NEW.location_id)
             GROUP BY ls.variant_id) t
     WHERE s.variant_id = t.variant_id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER locations_active_roll_up AFTER UPDATE OF active ON locations
  FOR EACH ROW EXECUTE FUNCTION locations_active_roll_up();

-- History: where each change happened. onHandAfter / reservedAfter are that location's values.
ALTER TABLE inventory_history ADD COLUMN location_id text NOT NULL DEFAULT 'default' REFERENCES locations (location_id);
ALTER TABLE inventory_history ALTER COLUMN location_id DROP DEFAULT;
ALTER TABLE inventory_history DROP CONSTRAINT inventory_history_type_check;
ALTER TABLE inventory_history ADD CONSTRAINT inventory_history_type_check CHECK (type IN (
  'PURCHASE','SALE','RETURN','ADJUSTMENT','RECOUNT','RESERVE','RELEASE','COMMIT','EXPIRE','TRANSFER_OUT','TRANSFER_IN'));
ALTER TABLE inventory_history_archive ADD COLUMN location_id text NOT NULL DEFAULT 'default';
ALTER TABLE inventory_history_archive ALTER COLUMN location_id DROP DEFAULT;

-- Retention's baseline is kept per (variant, location), so reconciliation checks every location.
ALTER TABLE inventory_history_baseline ADD COLUMN location_id text NOT NULL DEFAULT 'default' REFERENCES locations (location_id);
ALTER TABLE inventory_history_baseline ALTER COLUMN location_id DROP DEFAULT;
ALTER TABLE inventory_history_baseline DROP CONSTRAINT inventory_history_baseline_pkey;
ALTER TABLE inventory_history_baseline ADD PRIMARY KEY (variant_id, location_id);

-- What each reservation line holds where; release, commit and expiry act on exactly these.
CREATE TABLE reservation_allocations (
  order_id    text    NOT NULL,
  variant_id  text    NOT NULL,
  location_id text    NOT NULL REFERENCES locations (location_id),
  quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000000),
  PRIMARY KEY (order_id, variant_id, location_id),
  FOREIGN KEY (order_id, variant_id) REFERENCES reservation_lines (order_id, variant_id) ON DELETE CASCADE,
  FOREIGN KEY (variant_id, location_id) REFERENCES location_stock (variant_id, location_id)
);
-- Reconciliation: reserved at a location = the ACTIVE allocations there.
CREATE INDEX reservation_allocations_location ON reservation_allocations (variant_id, location_id);
INSERT INTO reservation_allocations (order_id, variant_id, location_id, quantity)
SELECT order_id, variant_id, 'default', quantity FROM reservation_lines;

-- Adjustment answers stored under an Idempotency-Key before this migration are replayed with the
-- new StockLevel/HistoryEntry shape: give them the fields they would have had (their one location,
-- `default`, as the variant's totals then; the location rows start at version 1).
UPDATE idempotency_keys
   SET response_body = jsonb_set(
         jsonb_set(response_body, '{entry,locationId}', '"default"'),
         '{stockLevel,locations}',
         jsonb_build_array(jsonb_build_object(
           'locationId', 'default',
           'onHand', response_body #> '{stockLevel,onHand}',
           'reserved', response_body #> '{stockLevel,reserved}',
           'safetyStock', 0,
           'available', (response_body #>> '{stockLevel,onHand}')::integer - (response_body #>> '{stockLevel,reserved}')::integer,
           'version', 1,
           'updatedAt', response_body #> '{stockLevel,updatedAt}')))
 WHERE scope LIKE 'adjustments:%'
   AND response_body ? 'stockLevel' AND response_body ? 'entry'
   AND NOT (response_body -> 'stockLevel') ? 'locations';
