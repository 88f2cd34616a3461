#!/usr/bin/env bash
# Runs the whole system locally on the embedded default: a private PostgreSQL
# cluster and a Redis server under a local data directory, on loopback only,
# migrations applied, the ingest gateway and the read service serving, each
# with its own least-privilege database login. Ctrl-C stops everything.
#
# Settings (environment): TELEMETRY_DEV_DIR (data, default .dev-data),
# PG_PORT (55432), REDIS_PORT (56379), INGEST_LISTEN_ADDRESS
# (127.0.0.1:50051), INGEST_METRICS_ADDRESS (127.0.0.1:9464),
# READ_LISTEN_ADDRESS (127.0.0.1:50052), READ_METRICS_ADDRESS (127.0.0.1:9465),
# BUILD_DIR (build); TELEMETRY_SKIP_SETUP=1 skips the package check and the
# build (the quick-start test runs an already built tree).
#
# It writes $TELEMETRY_DEV_DIR/client.env (what a client shell needs) and
# prints the README's quick-start block, which works as written from the
# repository root.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEV_DIR="${TELEMETRY_DEV_DIR:-$REPO_ROOT/.dev-data}"
BUILD_DIR="${BUILD_DIR:-$REPO_ROOT/build}"
PG_PORT="${PG_PORT:-55432}"
REDIS_PORT="${REDIS_PORT:-56379}"
export INGEST_LISTEN_ADDRESS="${INGEST_LISTEN_ADDRESS:-127.0.0.1:50051}"
export INGEST_METRICS_ADDRESS="${INGEST_METRICS_ADDRESS:-127.0.0.1:9464}"
export READ_LISTEN_ADDRESS="${READ_LISTEN_ADDRESS:-127.0.0.1:50052}"
export READ_METRICS_ADDRESS="${READ_METRICS_ADDRESS:-127.0.0.1:9465}"
# Loopback development: plaintext, asked for explicitly (both services refuse
# to start without TLS certificates otherwise; see README "Security model").
export PLAINTEXT=1

if [ "${TELEMETRY_SKIP_SETUP:-0}" != 1 ]; then
  install_packages
  build_project "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi

PG_BIN="$(pg_bindir)"
PG_DATA="$DEV_DIR/postgres"
mkdir -p "$DEV_DIR/logs"
if [ "$(id -u)" -eq 0 ]; then chown postgres "$DEV_DIR" "$DEV_DIR/logs"; fi

PIDS=()
STOPPING=0
cleanup() {
  STOPPING=1
  trap - INT TERM EXIT
  log "stopping"
  # Newest first: the gateway drains before Redis and PostgreSQL go away.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  if [ -f "$PG_DATA/postmaster.pid" ]; then
    as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null || true
  fi
  log "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -f "$PG_DATA/PG_VERSION" ]; then
  log "initialising PostgreSQL cluster in $PG_DATA"
  mkdir -p "$PG_DATA"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$PG_DATA"; fi
  as_pg_user "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 \
    --locale=C >"$DEV_DIR/logs/initdb.log"
fi
log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -l "$DEV_DIR/logs/postgres.log" \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DATA" start >/dev/null

log "starting Redis on 127.0.0.1:$REDIS_PORT"
# setsid: Ctrl-C reaches only this script, which then stops the components in
# order (gateway first, so it drains into a running database).
setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DEV_DIR" \
  --save "" --appendonly no --daemonize no >"$DEV_DIR/logs/redis.log" 2>&1 &
PIDS+=("$!")

export DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
for _ in $(seq 100); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

log "applying migrations"
"$BUILD_DIR/client/telemetryctl" migrate apply

create_service_roles "$DATABASE_URL"
PG_HOSTPORT="127.0.0.1:$PG_PORT/postgres"

issue_dev_credentials "$DEV_DIR" "$BUILD_DIR/client/telemetryctl"

log "starting ingest-gateway"
DATABASE_URL="postgresql://ingest_gateway@$PG_HOSTPORT" \
  setsid "$BUILD_DIR/server/ingest-gateway" 2>>"$DEV_DIR/logs/ingest-gateway.log" &
PIDS+=("$!")
wait_for_port "$INGEST_METRICS_ADDRESS"

log "starting read-service"
READ_DATABASE_URL="postgresql://read_service@$PG_HOSTPORT" \
MAINTENANCE_DATABASE_URL="postgresql://maintenance_service@$PG_HOSTPORT" \
  setsid "$BUILD_DIR/server/read-service" 2>>"$DEV_DIR/logs/read-service.log" &
PIDS+=("$!")
wait_for_port "$READ_METRICS_ADDRESS"

# What a client shell needs, for the quick-start block (and any telemetryctl).
cat >"$DEV_DIR/client.env" <<ENV
export TELEMETRY_PLAINTEXT=1
export INGEST_ADDRESS=$INGEST_LISTEN_ADDRESS
export READ_ADDRESS=$READ_LISTEN_ADDRESS
export DATABASE_URL=$DATABASE_URL
export DEV_DEVICE_TOKEN=$DEV_DEVICE_TOKEN
export TELEMETRY_TOKEN_FILE=$DEV_API_TOKEN
ENV

cat <<INFO

  telemetry-gateway is running (Ctrl-C stops everything)

  ingest gRPC      $INGEST_LISTEN_ADDRESS   (telemetry.v1.IngestService, health, reflection)
  ingest metrics   http://$INGEST_METRICS_ADDRESS/metrics
  ingest status    http://$INGEST_METRICS_ADDRESS/status   (open in a browser)
  read gRPC        $READ_LISTEN_ADDRESS   (Query, Alert, Maintenance, Admin services)
  read metrics     http://$READ_METRICS_ADDRESS/metrics
  read status      http://$READ_METRICS_ADDRESS/status
  PostgreSQL       $DATABASE_URL
  Redis            $REDIS_URL
  logs             $DEV_DIR/logs/

  Try it, in another terminal from $REPO_ROOT (plaintext, loopback only;
  production uses TLS, see README):

INFO
# The README's block, so the two cannot drift apart.
sed -n '/^<!-- quick-start/,/^<!-- \/quick-start -->/p' "$REPO_ROOT/README.md" \
  | grep -v -e '^<!--' -e '^```' | sed 's/^/    /'
echo
wait -n "${PIDS[@]}" || true
if [ "$STOPPING" -eq 0 ]; then log "a component exited; see $DEV_DIR/logs/"; fi
