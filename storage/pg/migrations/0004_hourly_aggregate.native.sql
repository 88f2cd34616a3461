-- The hourly summary of the seed (sensor_readings_summary_hourly) on plain
-- PostgreSQL: a table with the continuous aggregate's name and columns,
-- materialised by telemetry_refresh_hourly(), which the read service runs on
-- the policy's schedule.
--
-- Late arrivals: a statement-level trigger records every UTC hour that
-- received rows (one row per hour per statement, not per reading) in
-- telemetry_aggregate_invalidations, in the writer's own transaction. A
-- refresh re-materialises its window plus every invalidated hour before the
-- window's end, then deletes exactly the invalidation rows it read, so a
-- write that commits during a refresh is never lost: its invalidation row
-- survives for the next refresh. Queries treat hours at or after the
-- watermark, and hours with pending invalidations, as raw.
-- +migrate up
CREATE TABLE sensor_readings_summary_hourly (
    sensor_id      varchar(255)     NOT NULL,
    hour           timestamptz      NOT NULL,
    avg_value      double precision NOT NULL,
    max_value      double precision NOT NULL,
    min_value      double precision NOT NULL,
    reading_count  bigint           NOT NULL,
    CONSTRAINT sensor_readings_summary_hourly_pkey PRIMARY KEY (sensor_id, hour)
);
CREATE INDEX ix_sensor_readings_summary_hourly_hour
    ON sensor_readings_summary_hourly (hour);

CREATE TABLE telemetry_aggregate_invalidations (
    id           bigserial   PRIMARY KEY,
    hour         timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_telemetry_aggregate_invalidations_hour
    ON telemetry_aggregate_invalidations (hour);

-- One row: hours before `watermark` have been materialised at least once.
CREATE TABLE telemetry_aggregate_state (
    name       text        PRIMARY KEY,
    watermark  timestamptz NOT NULL
);
INSERT INTO telemetry_aggregate_state VALUES ('sensor_readings_summary_hourly', '-infinity');

CREATE FUNCTION telemetry_record_invalidations() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
BEGIN
    INSERT INTO telemetry_aggregate_invalidations (hour)
    SELECT DISTINCT date_trunc('hour', "timestamp", 'UTC') FROM new_rows;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER sensor_readings_record_invalidations
    AFTER INSERT ON sensor_readings
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION telemetry_record_invalidations();

-- Materialises [window_start, window_end) (rounded to whole UTC hours) and
-- every invalidated hour before window_end. Returns the number of hours
-- materialised, or -1 when another refresh holds the lock (replicas of the
-- read service never refresh concurrently).
CREATE FUNCTION telemetry_refresh_hourly(window_start timestamptz, window_end timestamptz)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    lo        timestamptz := date_trunc('hour', window_start, 'UTC');
    hi        timestamptz := date_trunc('hour', window_end, 'UTC');
    seen_ids  bigint[];
    hours     timestamptz[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('telemetry_refresh_hourly')) THEN
        RETURN -1;
    END IF;
    SELECT coalesce(array_agg(id), '{}') INTO seen_ids
      FROM telemetry_aggregate_invalidations WHERE hour < hi;
    SELECT coalesce(array_agg(DISTINCT h), '{}') INTO hours FROM (
        SELECT generate_series(lo, hi - interval '1 hour', interval '1 hour') AS h
         WHERE lo < hi AND lo > '-infinity'
        UNION
        SELECT hour FROM telemetry_aggregate_invalidations WHERE id = ANY (seen_ids)
    ) s;
    DELETE FROM sensor_readings_summary_hourly WHERE hour = ANY (hours);
    INSERT INTO sensor_readings_summary_hourly
    SELECT r.sensor_id, b.h, avg(r.value), max(r.value), min(r.value), count(*)
      FROM unnest(hours) AS b(h)
      JOIN sensor_readings r
        ON r."timestamp" >= b.h AND r."timestamp" < b.h + interval '1 hour'
     GROUP BY r.sensor_id, b.h;
    DELETE FROM telemetry_aggregate_invalidations WHERE id = ANY (seen_ids);
    UPDATE telemetry_aggregate_state SET watermark = greatest(watermark, hi)
     WHERE name = 'sensor_readings_summary_hourly' AND hi > '-infinity';
    RETURN cardinality(hours);
END
$fn$;

-- Materialises everything: every hour that has readings.
CREATE FUNCTION telemetry_refresh_hourly_all()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    first_ts timestamptz;
    last_ts  timestamptz;
BEGIN
    SELECT min("timestamp"), max("timestamp") INTO first_ts, last_ts FROM sensor_readings;
    IF first_ts IS NULL THEN
        RETURN telemetry_refresh_hourly('-infinity', '-infinity');
    END IF;
    RETURN telemetry_refresh_hourly(first_ts, last_ts + interval '1 hour');
END
$fn$;
-- +migrate down
DROP FUNCTION IF EXISTS telemetry_refresh_hourly_all();
DROP FUNCTION IF EXISTS telemetry_refresh_hourly(timestamptz, timestamptz);
DROP TRIGGER IF EXISTS sensor_readings_record_invalidations ON sensor_readings;
DROP FUNCTION IF EXISTS telemetry_record_invalidations();
DROP TABLE IF EXISTS telemetry_aggregate_state;
DROP TABLE IF EXISTS telemetry_aggregate_invalidations;
DROP TABLE IF EXISTS sensor_readings_summary_hourly;
