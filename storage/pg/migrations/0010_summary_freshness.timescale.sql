-- What the hourly continuous aggregate does not (yet) hold, from
-- TimescaleDB's own bookkeeping, so the read service can answer every hour
-- exactly: hours below these functions' answers come from the aggregate,
-- the rest from sensor_readings.
--
-- telemetry_summary_watermark(): TimescaleDB's invalidation threshold (rows
-- above it are not logged as invalidations, because no refresh has covered
-- them), never above the aggregate's own watermark.
--
-- telemetry_summary_stale_ranges(lo, hi): the hour-aligned, merged ranges
-- of [lo, hi) that the aggregate holds wrongly or not at all:
--   * the materialization invalidation log: created as (-infinity,
--     infinity) WITH NO DATA and cut by each refresh, so it names exactly
--     the hours no refresh has materialised (back-filled history, hours the
--     policy missed while it was stopped) and hours invalidated before the
--     last refresh moved them here;
--   * the hypertable invalidation log: rows written below the threshold
--     since the last refresh (late rows, also into compressed chunks).
-- Both logs hold microseconds since the Unix epoch, bounds inclusive, with
-- int8's extremes for -infinity and infinity.
--
-- The catalog tables are readable by every role (TimescaleDB grants SELECT
-- to PUBLIC), so these are ordinary SQL functions run with the caller's
-- rights.
-- +migrate up
CREATE FUNCTION telemetry_summary_watermark() RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $fn$
    SELECT least(_timescaledb_functions.to_timestamp(t.watermark),
                 _timescaledb_functions.to_timestamp(w.watermark))
      FROM _timescaledb_catalog.continuous_agg c
      JOIN _timescaledb_catalog.continuous_aggs_invalidation_threshold t
        ON t.hypertable_id = c.raw_hypertable_id
      JOIN _timescaledb_catalog.continuous_aggs_watermark w
        ON w.mat_hypertable_id = c.mat_hypertable_id
     WHERE c.user_view_name = 'sensor_readings_summary_hourly'
$fn$;

CREATE FUNCTION telemetry_summary_stale_ranges(lo timestamptz, hi timestamptz)
RETURNS TABLE (range_start timestamptz, range_end timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $fn$
    WITH agg AS (
        SELECT mat_hypertable_id, raw_hypertable_id
          FROM _timescaledb_catalog.continuous_agg
         WHERE user_view_name = 'sensor_readings_summary_hourly'),
    logged AS (
        SELECT m.lowest_modified_value AS l, m.greatest_modified_value AS g
          FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log m
          JOIN agg ON m.materialization_id = agg.mat_hypertable_id
        UNION ALL
        SELECT h.lowest_modified_value, h.greatest_modified_value
          FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log h
          JOIN agg ON h.hypertable_id = agg.raw_hypertable_id),
    hours AS (
        SELECT greatest(lo, date_trunc('hour', _timescaledb_functions.to_timestamp(l), 'UTC')) AS s,
               least(hi, date_trunc('hour', _timescaledb_functions.to_timestamp(g), 'UTC')
                         + interval '1 hour') AS e
          FROM logged),
    ordered AS (
        SELECT s, e, max(e) OVER (ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING
                                                  AND 1 PRECEDING) AS before_end
          FROM hours WHERE s < e),
    islands AS (
        SELECT s, e, sum(CASE WHEN before_end IS NULL OR s > before_end THEN 1 ELSE 0 END)
                         OVER (ORDER BY s, e) AS island
          FROM ordered)
    SELECT min(s), max(e) FROM islands GROUP BY island ORDER BY 1
$fn$;
-- +migrate down
DROP FUNCTION IF EXISTS telemetry_summary_stale_ranges(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS telemetry_summary_watermark();
