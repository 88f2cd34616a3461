-- Asset registry: one row per physical or virtual sensor.
-- Business key is sensor_id (what devices send); id is a surrogate UUID.
-- +migrate up
CREATE TABLE sensors (
    id          uuid         NOT NULL DEFAULT gen_random_uuid(),
    sensor_id   varchar(255) NOT NULL,
    type        varchar(50)  NOT NULL DEFAULT 'unknown',
    location    varchar(255),
    status      varchar(20)  NOT NULL DEFAULT 'active',
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT sensors_pkey PRIMARY KEY (id),
    CONSTRAINT sensors_sensor_id_key UNIQUE (sensor_id),
    CONSTRAINT sensors_status_check
        CHECK (status IN ('active', 'inactive', 'maintenance', 'decommissioned'))
);
COMMENT ON TABLE sensors IS 'Asset registry; rows are created on first write by the ingest gateway.';
-- +migrate down
DROP TABLE IF EXISTS sensors;
