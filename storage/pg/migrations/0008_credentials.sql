-- Credentials of callers: edge devices (ingest gateway) and API clients
-- (read service). Only SHA-256 digests of bearer tokens are stored: tokens
-- are 256-bit random strings issued by `telemetryctl device add` / `token
-- add`, so a fast hash is enough (nothing to brute-force) and a leaked table
-- yields no usable token. A device authenticated by its client certificate
-- (mutual TLS) is matched by device_id = the certificate's CN and needs no
-- token (token_sha256 NULL).
-- +migrate up
CREATE TABLE device_credentials (
    device_id       text PRIMARY KEY
                    CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$'),
    token_sha256    bytea UNIQUE CHECK (octet_length(token_sha256) = 32),
    -- Sensors the device may write: exact ids, or prefixes ending in '*'
    -- ('pump-7-*'); '*' alone allows every sensor.
    sensor_patterns text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

CREATE TABLE api_tokens (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$'),
    token_sha256 bytea NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
    -- read: queries and listings; admin: also writes (alerts, maintenance,
    -- sensors) and the AdminService.
    scope        text NOT NULL CHECK (scope IN ('read', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- The gateway reads device credentials; the read service reads API tokens.
-- Neither can change them: issuing and revoking is the owner's job.
REVOKE ALL ON device_credentials, api_tokens FROM telemetry_reader, telemetry_maintainer;
GRANT SELECT ON device_credentials TO telemetry_writer;
GRANT SELECT ON api_tokens TO telemetry_reader;
-- +migrate down
DROP TABLE api_tokens;
DROP TABLE device_credentials;
