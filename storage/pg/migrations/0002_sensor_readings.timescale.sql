-- Raw readings as a TimescaleDB hypertable (TimescaleDB 2.x API), with
-- native compression (segment by sensor_id) and a retention policy. Intervals
-- come from session settings the migrator sets from its options:
--   telemetry.chunk_interval (default 1 day), telemetry.compress_after
--   (default 7 days), telemetry.retention (default 180 days).
-- Same columns, key and indexes as the native variant; see docs/schema.md for
-- the departures from the seed (bigint id, no standalone timestamp index:
-- create_default_indexes => false keeps TimescaleDB from adding it).
-- +migrate up
CREATE EXTENSION IF NOT EXISTS timescaledb;

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
);

ALTER SEQUENCE sensor_readings_id_seq OWNED BY sensor_readings.id;

SELECT create_hypertable('sensor_readings', 'timestamp',
    chunk_time_interval => current_setting('telemetry.chunk_interval')::interval,
    create_default_indexes => false);

CREATE INDEX ix_sensor_readings_sensor_id_timestamp
    ON sensor_readings (sensor_id, "timestamp" DESC);

ALTER TABLE sensor_readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'sensor_id',
    timescaledb.compress_orderby = '"timestamp" DESC');

SELECT add_compression_policy('sensor_readings',
    current_setting('telemetry.compress_after')::interval);
SELECT add_retention_policy('sensor_readings',
    current_setting('telemetry.retention')::interval);
-- +migrate down
DROP TABLE IF EXISTS sensor_readings;
DROP SEQUENCE IF EXISTS sensor_readings_id_seq;
