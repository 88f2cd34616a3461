#!/bin/bash
# Runs once, as the superuser, when the TimescaleDB container initialises an
# empty data directory (the image runs /docker-entrypoint-initdb.d/*). Creates
# the least-privilege roles (docs/operations.md, "Database roles"): a
# migrations owner, and one login per service in the group role the
# migrations grant to (migration 0005 creates the groups only if missing, so
# creating them here first is safe). Passwords come from the
# container's environment (compose: .env), never from this file.
set -euo pipefail
: "${TELEMETRY_OWNER_PASSWORD:?}" "${INGEST_GATEWAY_PASSWORD:?}"
: "${READ_SERVICE_PASSWORD:?}" "${MAINTENANCE_SERVICE_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner_pw="$TELEMETRY_OWNER_PASSWORD" -v gw_pw="$INGEST_GATEWAY_PASSWORD" \
  -v rs_pw="$READ_SERVICE_PASSWORD" -v ms_pw="$MAINTENANCE_SERVICE_PASSWORD" \
  -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE telemetry_writer NOLOGIN;
CREATE ROLE telemetry_reader NOLOGIN;
CREATE ROLE telemetry_maintainer NOLOGIN;
CREATE ROLE telemetry_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE ingest_gateway LOGIN PASSWORD :'gw_pw' IN ROLE telemetry_writer;
CREATE ROLE read_service LOGIN PASSWORD :'rs_pw' IN ROLE telemetry_reader;
CREATE ROLE maintenance_service LOGIN PASSWORD :'ms_pw' IN ROLE telemetry_maintainer;
-- The owner creates and owns every table the migrations make.
ALTER DATABASE :"db" OWNER TO telemetry_owner;
ALTER SCHEMA public OWNER TO telemetry_owner;
SQL
