-- Least-privilege roles (the seed's security recommendation). Group roles
-- without LOGIN; deployments create login users that are members of one:
--   CREATE ROLE ingest_gateway LOGIN PASSWORD '...' IN ROLE telemetry_writer;
--   telemetry_writer      the gateway: append readings, register sensors
--   telemetry_reader      the read service's queries: SELECT only
--   telemetry_maintainer  the read service's writes: alerts, maintenance,
--                         the sensor registry, aggregate refresh/retention
-- Roles are cluster-wide and may serve several databases, so they are
-- created only if missing and never dropped by the down step (which revokes
-- this database's grants instead).
-- +migrate up
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_writer') THEN
        CREATE ROLE telemetry_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_reader') THEN
        CREATE ROLE telemetry_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_maintainer') THEN
        CREATE ROLE telemetry_maintainer NOLOGIN;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA public TO telemetry_writer, telemetry_reader, telemetry_maintainer;

-- Reader: every table, read only.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO telemetry_reader;

-- Writer: append readings, upsert sensors, create partitions. No UPDATE or
-- DELETE on readings, nothing on alerts or maintenance.
GRANT SELECT, INSERT ON sensor_readings TO telemetry_writer;
GRANT SELECT, INSERT, UPDATE ON sensors TO telemetry_writer;
GRANT USAGE ON SEQUENCE sensor_readings_id_seq TO telemetry_writer;
GRANT SELECT ON schema_migrations TO telemetry_writer;

-- Maintainer: reads everything; writes alerts, maintenance and the sensor
-- registry.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO telemetry_maintainer;
GRANT INSERT, UPDATE ON anomaly_alerts, maintenance_tasks, maintenance_logs
    TO telemetry_maintainer;
GRANT INSERT, UPDATE ON sensors TO telemetry_maintainer;
-- +migrate down
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM telemetry_writer, telemetry_reader, telemetry_maintainer;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM telemetry_writer, telemetry_reader, telemetry_maintainer;
REVOKE ALL ON SCHEMA public FROM telemetry_writer, telemetry_reader, telemetry_maintainer;
