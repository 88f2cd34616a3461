-- On-demand refresh of the hourly aggregate for the maintainer role
-- (`telemetryctl refresh`). refresh_continuous_aggregate() needs the
-- aggregate's owner and cannot run inside a function (it commits as it
-- goes), so a SECURITY DEFINER function cannot call it. What TimescaleDB
-- does accept: a job owned by the owner, whose procedure calls it. So
-- telemetry_request_refresh(start, end) (SECURITY DEFINER, owned by the
-- migrations owner) adds a one-shot job with the window in its config and
-- returns its id; the scheduler runs telemetry_refresh_window() at once as
-- the owner, which unschedules its own job when done; the caller watches
-- the job in timescaledb_information.job_stats (readable by every role), and
-- finished one-shot jobs are deleted by the next request.
-- +migrate up
CREATE PROCEDURE telemetry_refresh_window(job_id integer, config jsonb)
LANGUAGE plpgsql AS $fn$
BEGIN
    CALL refresh_continuous_aggregate('sensor_readings_summary_hourly',
                                      (config->>'start')::timestamptz,
                                      (config->>'end')::timestamptz);
    PERFORM alter_job(job_id, scheduled => false);
END
$fn$;

CREATE FUNCTION telemetry_request_refresh(window_start timestamptz, window_end timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    finished integer;
BEGIN
    IF window_start IS NOT NULL AND window_end IS NOT NULL AND window_start >= window_end THEN
        RAISE EXCEPTION 'start must be before end' USING ERRCODE = '22023';
    END IF;
    -- One-shot jobs of earlier requests that have run.
    FOR finished IN
        SELECT j.job_id FROM timescaledb_information.jobs j
          JOIN timescaledb_information.job_stats s USING (job_id)
         WHERE j.proc_name = 'telemetry_refresh_window' AND NOT j.scheduled
           AND s.last_run_status IS NOT NULL
           AND s.last_run_started_at < now() - interval '1 hour'
    LOOP
        PERFORM delete_job(finished);
    END LOOP;
    RETURN add_job('public.telemetry_refresh_window'::regproc, interval '1 day',
                   config => jsonb_build_object('start', window_start, 'end', window_end),
                   initial_start => now());
END
$fn$;

REVOKE EXECUTE ON FUNCTION telemetry_request_refresh(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION telemetry_request_refresh(timestamptz, timestamptz) TO telemetry_maintainer;
REVOKE EXECUTE ON PROCEDURE telemetry_refresh_window(integer, jsonb) FROM PUBLIC;
-- +migrate down
DROP FUNCTION IF EXISTS telemetry_request_refresh(timestamptz, timestamptz);
DROP PROCEDURE IF EXISTS telemetry_refresh_window(integer, jsonb);
