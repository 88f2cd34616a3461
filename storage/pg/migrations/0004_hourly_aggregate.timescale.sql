-- The seed's hourly continuous aggregate, as a real TimescaleDB continuous
-- aggregate with its refresh policy. CREATE MATERIALIZED VIEW ... WITH
-- (timescaledb.continuous) cannot run inside a transaction block, so this
-- migration runs statement by statement (and is written to be re-runnable).
-- The read service merges not-yet-materialised hours itself (and reports
-- which hours came from where), so the view is materialized_only.
-- Policy settings come from the migrator: telemetry.cagg_start_offset (3
-- hours; the seed's 2 hours is refused as under two buckets), telemetry.cagg_end_offset (30 minutes),
-- telemetry.cagg_schedule (30 minutes).
-- transaction: none
-- +migrate up
CREATE MATERIALIZED VIEW IF NOT EXISTS sensor_readings_summary_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT sensor_id,
       time_bucket(INTERVAL '1 hour', "timestamp") AS hour,
       avg(value) AS avg_value,
       max(value) AS max_value,
       min(value) AS min_value,
       count(*) AS reading_count
  FROM sensor_readings
 GROUP BY sensor_id, hour
WITH NO DATA;

SELECT add_continuous_aggregate_policy('sensor_readings_summary_hourly',
    start_offset => current_setting('telemetry.cagg_start_offset')::interval,
    end_offset => current_setting('telemetry.cagg_end_offset')::interval,
    schedule_interval => current_setting('telemetry.cagg_schedule')::interval,
    if_not_exists => true);
-- +migrate down
DROP MATERIALIZED VIEW IF EXISTS sensor_readings_summary_hourly;
