-- Status lifecycles enforced by the database, whatever client writes:
--   anomaly_alerts:    open -> acknowledged -> resolved; open -> resolved
--   maintenance_tasks: pending -> scheduled -> in_progress -> completed;
--                      pending/scheduled/in_progress -> cancelled
-- An illegal transition raises check_violation (23514) naming both states.
-- updated_at follows every update.
-- +migrate up
CREATE FUNCTION telemetry_check_alert_transition() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'open' AND NEW.status IN ('acknowledged', 'resolved'))
        OR (OLD.status = 'acknowledged' AND NEW.status = 'resolved')) THEN
        RAISE EXCEPTION 'illegal alert status transition: % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$fn$;
CREATE TRIGGER anomaly_alerts_status_rules BEFORE UPDATE ON anomaly_alerts
    FOR EACH ROW EXECUTE FUNCTION telemetry_check_alert_transition();

CREATE FUNCTION telemetry_check_task_transition() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'pending' AND NEW.status IN ('scheduled', 'in_progress', 'cancelled'))
        OR (OLD.status = 'scheduled' AND NEW.status IN ('in_progress', 'cancelled'))
        OR (OLD.status = 'in_progress' AND NEW.status IN ('completed', 'cancelled'))) THEN
        RAISE EXCEPTION 'illegal task status transition: % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$fn$;
CREATE TRIGGER maintenance_tasks_status_rules BEFORE UPDATE ON maintenance_tasks
    FOR EACH ROW EXECUTE FUNCTION telemetry_check_task_transition();
-- +migrate down
DROP TRIGGER IF EXISTS maintenance_tasks_status_rules ON maintenance_tasks;
DROP FUNCTION IF EXISTS telemetry_check_task_transition();
DROP TRIGGER IF EXISTS anomaly_alerts_status_rules ON anomaly_alerts;
DROP FUNCTION IF EXISTS telemetry_check_alert_transition();
