-- The same two questions migration 0010 answers for TimescaleDB, answered
-- from native mode's own bookkeeping, so the read service asks both modes
-- in the same words (no C++ chooses between two spellings):
--
-- telemetry_summary_watermark(): hours before it have been materialised at
-- least once (telemetry_aggregate_state); NULL while nothing has been.
--
-- telemetry_summary_stale_ranges(lo, hi): the hours of [lo, hi) written
-- since they were materialised (telemetry_aggregate_invalidations), one
-- range per hour; the caller merges adjacent ones.
--
-- Ordinary SQL functions run with the caller's rights: the read service's
-- login already reads both tables. EXECUTE is granted explicitly, so the
-- functions stay callable where PUBLIC's default EXECUTE was revoked.
-- +migrate up
CREATE FUNCTION telemetry_summary_watermark() RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $fn$
    SELECT nullif(watermark, '-infinity')
      FROM telemetry_aggregate_state
     WHERE name = 'sensor_readings_summary_hourly'
$fn$;

CREATE FUNCTION telemetry_summary_stale_ranges(lo timestamptz, hi timestamptz)
RETURNS TABLE (range_start timestamptz, range_end timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $fn$
    SELECT DISTINCT hour, hour + interval '1 hour'
      FROM telemetry_aggregate_invalidations
     WHERE hour >= lo AND hour < hi
     ORDER BY 1
$fn$;

GRANT EXECUTE ON FUNCTION telemetry_summary_watermark(),
                          telemetry_summary_stale_ranges(timestamptz, timestamptz)
    TO telemetry_reader, telemetry_maintainer;
-- +migrate down
DROP FUNCTION IF EXISTS telemetry_summary_stale_ranges(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS telemetry_summary_watermark();
