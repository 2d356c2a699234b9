-- The claim's head window (the oldest `head_window` pending rows, in id order) has one good plan:
-- walk outbox_pending_id in order and stop after `head_window` rows. On a table that has just grown
-- and has no statistics yet, the planner puts the pending rows at 1-3, and at 3 a bitmap scan of
-- that index followed by a sort costs a hair less (16.16 against 16.33): it then fetches and sorts
-- every pending row. Measured on a fresh outbox of 50,000 pending events (bench:relay's backlog):
-- 51,000 heap fetches and 57-65 ms per claim with bitmap scans, 5,000 and 13-19 ms without, and the
-- drain's claims (serial) took 44 ms median. Bitmap scans are off for this function only; every
-- statement in it reads an ordered index range or a list of primary keys, which an index scan
-- serves as well or better. Same signature and protocol as 0086.
ALTER FUNCTION outbox_claim(text, text[], integer, integer, integer, integer, integer) SET enable_bitmapscan = off;
