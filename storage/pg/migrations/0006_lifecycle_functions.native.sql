-- Privileges on the native-mode lifecycle functions: partitions for the
-- writer, refresh and retention for the maintainer. (Functions are
-- executable by PUBLIC by default; take that back first.)
-- +migrate up
REVOKE EXECUTE ON FUNCTION telemetry_ensure_partitions(timestamptz, timestamptz),
    telemetry_drop_partitions_before(timestamptz),
    telemetry_refresh_hourly(timestamptz, timestamptz),
    telemetry_refresh_hourly_all() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION telemetry_ensure_partitions(timestamptz, timestamptz)
    TO telemetry_writer;
GRANT EXECUTE ON FUNCTION telemetry_drop_partitions_before(timestamptz),
    telemetry_refresh_hourly(timestamptz, timestamptz),
    telemetry_refresh_hourly_all() TO telemetry_maintainer;
-- +migrate down
GRANT EXECUTE ON FUNCTION telemetry_ensure_partitions(timestamptz, timestamptz),
    telemetry_drop_partitions_before(timestamptz),
    telemetry_refresh_hourly(timestamptz, timestamptz),
    telemetry_refresh_hourly_all() TO PUBLIC;
REVOKE EXECUTE ON FUNCTION telemetry_ensure_partitions(timestamptz, timestamptz)
    FROM telemetry_writer;
REVOKE EXECUTE ON FUNCTION telemetry_drop_partitions_before(timestamptz),
    telemetry_refresh_hourly(timestamptz, timestamptz),
    telemetry_refresh_hourly_all() FROM telemetry_maintainer;
