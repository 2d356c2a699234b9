-- Group commit (issue 13): one UPDATE of a location row may apply several changes (N reservations of
-- one hot variant in one batch). The writer then sets the row's version itself, to the old version
-- plus its number of changes, and the variant's version moves by the same number; a writer that
-- leaves version alone still gets +1 per changed row, as before. Each change keeps its own history
-- entry and event, with the versions they have always had (API.md: +1 on every change).

CREATE OR REPLACE FUNCTION location_stock_versioned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.version > OLD.version THEN
    -- The writer counted its changes (never fewer than one: the version only grows).
    NEW.updated_at := inventory_now();
  ELSIF (NEW.on_hand, NEW.reserved, NEW.safety_stock) IS DISTINCT FROM (OLD.on_hand, OLD.reserved, OLD.safety_stock) THEN
    NEW.version := OLD.version + 1;
    NEW.updated_at := inventory_now();
  ELSE
    NEW.version := OLD.version;
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION location_stock_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  is_active boolean;
  old_available integer := 0;
  new_available integer;
  changes integer;
BEGIN
  SELECT active INTO is_active FROM locations WHERE location_id = NEW.location_id;
  new_available := location_available(NEW.on_hand, NEW.reserved, NEW.safety_stock, is_active);
  IF TG_OP = 'UPDATE' THEN
    IF NEW.variant_id <> OLD.variant_id OR NEW.location_id <> OLD.location_id THEN
      RAISE EXCEPTION 'location_stock rows never move between variants or locations';
    END IF;
    old_available := location_available(OLD.on_hand, OLD.reserved, OLD.safety_stock, is_active);
    changes := NEW.version - OLD.version;
    -- A settings change that moves nothing of the variant (safety stock within what is free) leaves
    -- its version alone; several changes that cancel out (a reserve and a release) still count.
    IF NEW.on_hand = OLD.on_hand AND NEW.reserved = OLD.reserved AND new_available = old_available AND changes <= 1 THEN
      RETURN NULL;
    END IF;
    UPDATE stock_levels
       SET on_hand = on_hand + (NEW.on_hand - OLD.on_hand),
           reserved = reserved + (NEW.reserved - OLD.reserved),
           available = available + (new_available - old_available),
           version = version + greatest(1, changes),
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
