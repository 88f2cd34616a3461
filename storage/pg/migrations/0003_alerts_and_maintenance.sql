-- Anomaly alerts, maintenance tasks and maintenance logs (seed tables 3-5).
-- Departure from the seed: maintenance_logs.task_id is a real foreign key
-- (the seed only "logically references" it), so a log can never point at a
-- task that does not exist. Status values are constrained in the database.
-- +migrate up
CREATE TABLE anomaly_alerts (
    id                   uuid             NOT NULL DEFAULT gen_random_uuid(),
    sensor_id            varchar(255)     NOT NULL,
    anomaly_type         varchar(100)     NOT NULL,
    severity             smallint         NOT NULL,
    confidence           double precision NOT NULL,
    description          text,
    evidence             jsonb            NOT NULL DEFAULT '{}'::jsonb,
    recommended_actions  text[]           NOT NULL DEFAULT '{}',
    status               varchar(20)      NOT NULL DEFAULT 'open',
    created_at           timestamptz      NOT NULL DEFAULT now(),
    updated_at           timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT anomaly_alerts_pkey PRIMARY KEY (id),
    CONSTRAINT anomaly_alerts_sensor_id_fkey FOREIGN KEY (sensor_id)
        REFERENCES sensors (sensor_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    CONSTRAINT anomaly_alerts_severity_check CHECK (severity BETWEEN 1 AND 5),
    CONSTRAINT anomaly_alerts_confidence_check CHECK (confidence >= 0 AND confidence <= 1),
    CONSTRAINT anomaly_alerts_status_check
        CHECK (status IN ('open', 'acknowledged', 'resolved'))
);
CREATE INDEX ix_anomaly_alerts_sensor_id_created_at
    ON anomaly_alerts (sensor_id, created_at DESC);
CREATE INDEX ix_anomaly_alerts_status_created_at
    ON anomaly_alerts (status, created_at DESC);

CREATE TABLE maintenance_tasks (
    id                        uuid             NOT NULL DEFAULT gen_random_uuid(),
    equipment_id              varchar(255)     NOT NULL,
    sensor_id                 varchar(255),
    task_type                 varchar(100)     NOT NULL,
    description               text,
    priority                  smallint         NOT NULL DEFAULT 3,
    status                    varchar(20)      NOT NULL DEFAULT 'pending',
    estimated_duration_hours  double precision,
    scheduled_start_time      timestamptz,
    scheduled_end_time        timestamptz,
    assigned_technician_id    varchar(255),
    required_skills           text[]           NOT NULL DEFAULT '{}',
    parts_needed              text[]           NOT NULL DEFAULT '{}',
    created_at                timestamptz      NOT NULL DEFAULT now(),
    updated_at                timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT maintenance_tasks_pkey PRIMARY KEY (id),
    CONSTRAINT maintenance_tasks_sensor_id_fkey FOREIGN KEY (sensor_id)
        REFERENCES sensors (sensor_id) ON UPDATE CASCADE ON DELETE SET NULL,
    CONSTRAINT maintenance_tasks_priority_check CHECK (priority BETWEEN 1 AND 5),
    CONSTRAINT maintenance_tasks_status_check
        CHECK (status IN ('pending', 'scheduled', 'in_progress', 'completed', 'cancelled')),
    CONSTRAINT maintenance_tasks_schedule_check
        CHECK (scheduled_end_time IS NULL OR scheduled_start_time IS NULL
               OR scheduled_end_time >= scheduled_start_time)
);
CREATE INDEX ix_maintenance_tasks_equipment_id ON maintenance_tasks (equipment_id);
CREATE INDEX ix_maintenance_tasks_sensor_id ON maintenance_tasks (sensor_id);

CREATE TABLE maintenance_logs (
    id                     uuid             NOT NULL DEFAULT gen_random_uuid(),
    task_id                uuid             NOT NULL,
    equipment_id           varchar(255)     NOT NULL,
    completion_date        timestamptz      NOT NULL,
    technician_id          varchar(255)     NOT NULL,
    status                 varchar(20)      NOT NULL DEFAULT 'completed',
    actual_duration_hours  double precision,
    notes                  text,
    created_at             timestamptz      NOT NULL DEFAULT now(),
    updated_at             timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT maintenance_logs_pkey PRIMARY KEY (id),
    CONSTRAINT maintenance_logs_task_id_fkey FOREIGN KEY (task_id)
        REFERENCES maintenance_tasks (id) ON DELETE RESTRICT,
    CONSTRAINT maintenance_logs_status_check
        CHECK (status IN ('completed', 'partial', 'failed')),
    CONSTRAINT maintenance_logs_duration_check
        CHECK (actual_duration_hours IS NULL OR actual_duration_hours >= 0)
);
CREATE INDEX ix_maintenance_logs_task_id ON maintenance_logs (task_id);
CREATE INDEX ix_maintenance_logs_equipment_id ON maintenance_logs (equipment_id);
-- +migrate down
DROP TABLE IF EXISTS maintenance_logs;
DROP TABLE IF EXISTS maintenance_tasks;
DROP TABLE IF EXISTS anomaly_alerts;
