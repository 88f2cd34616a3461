-- On-demand compression and retention for the maintainer role. TimescaleDB
-- lets only a job's owner run_job() it, and the policies belong to the
-- migrations owner; these SECURITY DEFINER functions (owned by that owner)
-- do what the policies do, with the policies' own intervals, so the read
-- service's least-privilege login can run them (telemetryctl compress /
-- retention). They are functions, not procedures: compress_chunk and
-- drop_chunks need no transaction control.
-- +migrate up
CREATE FUNCTION telemetry_compress_due_chunks() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    after interval;
    chunk regclass;
    compressed integer := 0;
BEGIN
    SELECT (config->>'compress_after')::interval INTO after
      FROM timescaledb_information.jobs
     WHERE proc_name = 'policy_compression' AND hypertable_name = 'sensor_readings';
    IF after IS NULL THEN
        RAISE EXCEPTION 'sensor_readings has no compression policy';
    END IF;
    FOR chunk IN
        SELECT format('%I.%I', chunk_schema, chunk_name)::regclass
          FROM timescaledb_information.chunks
         WHERE hypertable_name = 'sensor_readings' AND NOT is_compressed
           AND range_end <= now() - after
         ORDER BY range_start
    LOOP
        PERFORM compress_chunk(chunk, if_not_compressed => true);
        compressed := compressed + 1;
    END LOOP;
    RETURN compressed;
END
$fn$;

CREATE FUNCTION telemetry_drop_expired_chunks() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    after interval;
    dropped integer;
BEGIN
    SELECT (config->>'drop_after')::interval INTO after
      FROM timescaledb_information.jobs
     WHERE proc_name = 'policy_retention' AND hypertable_name = 'sensor_readings';
    IF after IS NULL THEN
        RAISE EXCEPTION 'sensor_readings has no retention policy';
    END IF;
    SELECT count(*) INTO dropped FROM drop_chunks('sensor_readings', older_than => after);
    RETURN dropped;
END
$fn$;

REVOKE EXECUTE ON FUNCTION telemetry_compress_due_chunks(), telemetry_drop_expired_chunks()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION telemetry_compress_due_chunks(), telemetry_drop_expired_chunks()
    TO telemetry_maintainer;
-- +migrate down
DROP FUNCTION telemetry_compress_due_chunks();
DROP FUNCTION telemetry_drop_expired_chunks();
