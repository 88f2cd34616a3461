-- Raw readings on plain PostgreSQL: declarative range partitioning by day on
-- "timestamp", plus a DEFAULT partition so a reading is never refused for lack
-- of a partition. Daily partitions are created on demand by
-- telemetry_ensure_partitions() (the gateway calls it for each new day it
-- sees, and ahead of time for the coming days).
--
-- Deliberate departures from the seed (see docs/schema.md):
--   * id is bigint: an int sequence runs out after 2^31 readings, which a
--     1,000-sensor fleet at 10 Hz reaches in under three days.
--   * no standalone (timestamp) index: the primary key (timestamp, sensor_id)
--     already leads with timestamp and serves every pure time-range scan.
-- +migrate up
CREATE SEQUENCE sensor_readings_id_seq AS bigint CACHE 1000;

CREATE TABLE sensor_readings (
    "timestamp"      timestamptz      NOT NULL,
    sensor_id        varchar(255)     NOT NULL,
    sensor_type      varchar(50),
    value            double precision NOT NULL,
    unit             varchar(50),
    quality          double precision,
    sensor_metadata  jsonb,
    id               bigint           NOT NULL DEFAULT nextval('sensor_readings_id_seq'),
    created_at       timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT sensor_readings_pkey PRIMARY KEY ("timestamp", sensor_id),
    CONSTRAINT sensor_readings_quality_check CHECK (quality IS NULL OR (quality >= 0 AND quality <= 1))
) PARTITION BY RANGE ("timestamp");

ALTER SEQUENCE sensor_readings_id_seq OWNED BY sensor_readings.id;

CREATE INDEX ix_sensor_readings_sensor_id_timestamp
    ON sensor_readings (sensor_id, "timestamp" DESC);

CREATE TABLE sensor_readings_default PARTITION OF sensor_readings DEFAULT;

-- Creates the missing daily partitions covering [from_ts, to_ts] (UTC days).
-- Rows already in the DEFAULT partition for such a day are moved into the new
-- partition in the same transaction. Safe to call concurrently. Returns the
-- number of partitions created.
CREATE FUNCTION telemetry_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    day      date := (from_ts AT TIME ZONE 'UTC')::date;
    last_day date := (to_ts AT TIME ZONE 'UTC')::date;
    created  integer := 0;
    lo       timestamptz;
    hi       timestamptz;
    pname    text;
BEGIN
    IF last_day - day > 1000 THEN
        RAISE EXCEPTION 'refusing to create % partitions in one call', last_day - day + 1
            USING ERRCODE = '22023';
    END IF;
    WHILE day <= last_day LOOP
        pname := 'sensor_readings_p' || to_char(day, 'YYYYMMDD');
        IF to_regclass(pname) IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('telemetry_ensure_partitions'));
            IF to_regclass(pname) IS NULL THEN
                lo := day::timestamp AT TIME ZONE 'UTC';
                hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
                EXECUTE format('CREATE TABLE %I (LIKE sensor_readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', pname);
                EXECUTE format('WITH moved AS (DELETE FROM sensor_readings_default WHERE "timestamp" >= $1 AND "timestamp" < $2 RETURNING *) '
                               'INSERT INTO %I SELECT * FROM moved', pname) USING lo, hi;
                -- A matching CHECK lets ATTACH skip its validation scan.
                EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK ("timestamp" >= %L AND "timestamp" < %L)',
                               pname, pname || '_bounds', lo, hi);
                EXECUTE format('ALTER TABLE sensor_readings ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                               pname, lo, hi);
                EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', pname, pname || '_bounds');
                created := created + 1;
            END IF;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END
$fn$;

-- Retention for native mode: drops whole daily partitions that end at or
-- before `cutoff` and deletes older stragglers from the DEFAULT partition.
-- Returns the number of partitions dropped.
CREATE FUNCTION telemetry_drop_partitions_before(cutoff timestamptz)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    part    record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'sensor_readings'::regclass
           AND c.relname ~ '^sensor_readings_p[0-9]{8}$'
           AND to_date(substr(c.relname, 18), 'YYYYMMDD') + 1 <= (cutoff AT TIME ZONE 'UTC')::date
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM sensor_readings_default WHERE "timestamp" < cutoff;
    RETURN dropped;
END
$fn$;
-- +migrate down
DROP FUNCTION IF EXISTS telemetry_drop_partitions_before(timestamptz);
DROP FUNCTION IF EXISTS telemetry_ensure_partitions(timestamptz, timestamptz);
DROP TABLE IF EXISTS sensor_readings;
DROP SEQUENCE IF EXISTS sensor_readings_id_seq;
