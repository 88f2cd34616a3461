#!/usr/bin/env bash
# Runs the system as several machines would, all on loopback: PostgreSQL
# managed by Patroni (a primary and a synchronous standby, automatic
# failover) on a 3-member etcd; Redis with a replica and 3 Sentinels; 3
# ingest gateways and 2 read services. Ctrl-C stops everything.
#
# Settings (environment): TELEMETRY_CLUSTER_DIR (data, default
# .cluster-data), CLUSTER_PORT_BASE (25000, below the ephemeral port
# range; the ports printed at start are offsets from it), BUILD_DIR
# (build), CLUSTER_SYNCHRONOUS (true; false for asynchronous replication);
# TELEMETRY_SKIP_SETUP=1 skips the package check and the build.
#
# It writes $TELEMETRY_CLUSTER_DIR/client.env: telemetryctl and loadgen then
# spread their streams over the three gateways. Try a failover:
#   patronictl -c $TELEMETRY_CLUSTER_DIR/pg0/patroni.yml list
#   patronictl -c $TELEMETRY_CLUSTER_DIR/pg0/patroni.yml switchover
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DIR="${TELEMETRY_CLUSTER_DIR:-$REPO_ROOT/.cluster-data}"
BUILD_DIR="${BUILD_DIR:-$REPO_ROOT/build}"
BASE="${CLUSTER_PORT_BASE:-25000}"
SYNCHRONOUS="${CLUSTER_SYNCHRONOUS:-true}"
MASTER_NAME=telemetry-dedupe
# Loopback development: plaintext, asked for explicitly.
export PLAINTEXT=1

if [ "${TELEMETRY_SKIP_SETUP:-0}" != 1 ]; then
  install_packages
  build_project "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi

PG_BIN="$(pg_bindir)"
mkdir -p "$DIR/logs"

# Ports: etcd clients +0..2 (peers +10..12), PostgreSQL +20..21 (Patroni's
# API +30..31), Redis +40 (replica +41, sentinels +50..52), gateways
# +60..62 (metrics +70..72), read services +80..81 (metrics +90..91).
port() { echo $((BASE + $1)); }

PIDS=()
STOPPING=0
# stop_pid <pid>: SIGTERM, up to 30 s to exit, then SIGKILL. Only PIDs in
# PIDS, children of this script that it has not reaped yet.
running() {  # <pid>: alive and not a zombie waiting for our `wait`
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}
stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 300); do
    running "$1" || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  STOPPING=1
  trap - EXIT
  trap '' INT TERM  # a second Ctrl-C must not cut the stop short
  log "stopping"
  # Newest first: gateways drain before Redis and PostgreSQL go away;
  # Patroni stops its PostgreSQL; etcd goes last.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    [ -n "${PIDS[i]}" ] && stop_pid "${PIDS[i]}"
  done
  # A PostgreSQL whose Patroni died (or was killed to try a failover)
  # outlives it: stop it by its data directory.
  for i in 0 1; do
    if [ -f "$DIR/pg$i/data/postmaster.pid" ]; then
      as_pg_user "$PG_BIN/pg_ctl" -D "$DIR/pg$i/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
  done
  log "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# exec_as_postgres <cmd...>: for `( exec_as_postgres ... ) &`. PostgreSQL
# (so Patroni) refuses root; exec and setpriv replace the subshell, so $! is
# the command's own PID, the one cleanup signals.
exec_as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    exec "$@"
  fi
}

# http_status <port> <path>: the HTTP status of GET http://127.0.0.1:<port><path>.
http_status() {
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || { echo 000; return; }
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  read -r -t 5 _ line _ <&3 || line=000
  exec 3>&-
  echo "$line"
}

# wait_until <seconds> <what> <cmd...>: polls <cmd> (a command or one of
# the functions here) until it succeeds, for at most <seconds>.
wait_until() {
  local deadline=$((SECONDS + $1)) what="$2"
  shift 2
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "timed out waiting for $what; see $DIR/logs/" >&2
  return 1
}

# ---------------------------------------------------------------- etcd ×3
log "starting etcd (3 members)"
ETCD_CLUSTER="e0=http://127.0.0.1:$(port 10),e1=http://127.0.0.1:$(port 11)"
ETCD_CLUSTER="$ETCD_CLUSTER,e2=http://127.0.0.1:$(port 12)"
ETCD_HOSTS="127.0.0.1:$(port 0),127.0.0.1:$(port 1),127.0.0.1:$(port 2)"
for i in 0 1 2; do
  state=new
  [ -d "$DIR/etcd$i/member" ] && state=existing
  setsid etcd --name "e$i" --data-dir "$DIR/etcd$i" \
    --heartbeat-interval 250 --election-timeout 2500 --enable-v2=true \
    --listen-client-urls "http://127.0.0.1:$(port $i)" \
    --advertise-client-urls "http://127.0.0.1:$(port $i)" \
    --listen-peer-urls "http://127.0.0.1:$(port $((10 + i)))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(port $((10 + i)))" \
    --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state "$state" \
    --initial-cluster-token telemetry-dev --logger zap --log-level warn \
    >>"$DIR/logs/etcd$i.log" 2>&1 &
  PIDS+=("$!")
done
wait_until 30 "etcd" env ETCDCTL_API=3 etcdctl --endpoints="$ETCD_HOSTS" \
  --command-timeout=2s endpoint health

# ----------------------------------------------------- Patroni + PostgreSQL
log "starting Patroni (2 PostgreSQL members, synchronous_mode=$SYNCHRONOUS)"
if [ "$(id -u)" -eq 0 ]; then chown postgres "$DIR" "$DIR/logs"; fi
for i in 0 1; do
  mkdir -p "$DIR/pg$i/socket"
  sed -e "s|@SCOPE@|telemetry|" -e "s|@MEMBER@|pg$i|" \
      -e "s|@API_PORT@|$(port $((30 + i)))|g" -e "s|@ETCD_HOSTS@|$ETCD_HOSTS|" \
      -e "s|@SYNCHRONOUS_MODE@|$SYNCHRONOUS|" -e "s|@PG_PORT@|$(port $((20 + i)))|g" \
      -e "s|@DATA_DIR@|$DIR/pg$i/data|g" -e "s|@PG_BINDIR@|$PG_BIN|" \
      -e "s|@SOCKET_DIR@|$DIR/pg$i/socket|" \
      "$REPO_ROOT/deploy/cluster/patroni.yml.in" >"$DIR/pg$i/patroni.yml"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$DIR/pg$i"; fi
done
leader_is() { [ "$(http_status "$(port $((30 + $1)))" /primary)" = 200 ]; }
start_patroni() {  # <member>
  (exec_as_postgres setsid patroni "$DIR/pg$1/patroni.yml" >>"$DIR/logs/patroni-pg$1.log" 2>&1) &
  PIDS+=("$!")
}
any_leader() { leader_is 0 || leader_is 1; }
if [ -f "$DIR/pg0/data/PG_VERSION" ] && [ -f "$DIR/pg1/data/PG_VERSION" ]; then
  # Both exist: either may be the one that can lead now; start both.
  start_patroni 0
  start_patroni 1
  wait_until 120 "a Patroni leader" any_leader
else
  # The first member bootstraps alone, the second then clones it.
  start_patroni 0
  wait_until 90 "a Patroni leader" any_leader
  start_patroni 1
fi
replicas_ok() {
  local sync=0 i
  for i in 0 1; do
    leader_is "$i" && continue
    [ "$(http_status "$(port $((30 + i)))" /replica)" = 200 ] || return 1
    [ "$(http_status "$(port $((30 + i)))" /sync)" = 200 ] && sync=1
  done
  [ "$SYNCHRONOUS" != true ] || [ "$sync" = 1 ]
}
wait_until 120 "the standby to stream" replicas_ok

PG_HOSTS="127.0.0.1:$(port 20),127.0.0.1:$(port 21)"
# Every member; libpq picks the one that takes writes (or, for reads, a
# standby when there is one).
db_url() {  # <user> <target_session_attrs>
  echo "postgresql://$1@$PG_HOSTS/postgres?target_session_attrs=$2&connect_timeout=2"
}
export DATABASE_URL
DATABASE_URL="$(db_url postgres read-write)"
log "applying migrations"
"$BUILD_DIR/client/telemetryctl" migrate apply
create_service_roles "$DATABASE_URL"
issue_dev_credentials "$DIR" "$BUILD_DIR/client/telemetryctl"

# --------------------------------------------------- Redis + 3 Sentinels
log "starting Redis (primary, replica, 3 sentinels)"
redis_args=(--bind 127.0.0.1 --save "" --appendonly no --daemonize no)
setsid redis-server --port "$(port 40)" --dir "$DIR" "${redis_args[@]}" \
  >>"$DIR/logs/redis-primary.log" 2>&1 &
PIDS+=("$!")
setsid redis-server --port "$(port 41)" --dir "$DIR" "${redis_args[@]}" \
  --replicaof 127.0.0.1 "$(port 40)" >>"$DIR/logs/redis-replica.log" 2>&1 &
PIDS+=("$!")
wait_until 10 "Redis" redis-cli -p "$(port 40)" ping
SENTINELS=""
for i in 0 1 2; do
  conf="$DIR/sentinel$i.conf"  # Sentinel rewrites it with what it learns
  cat >"$conf" <<CONF
port $(port $((50 + i)))
bind 127.0.0.1
dir $DIR
sentinel monitor $MASTER_NAME 127.0.0.1 $(port 40) 2
sentinel down-after-milliseconds $MASTER_NAME 2000
sentinel failover-timeout $MASTER_NAME 10000
CONF
  setsid redis-sentinel "$conf" >>"$DIR/logs/sentinel$i.log" 2>&1 &
  PIDS+=("$!")
  SENTINELS="${SENTINELS:+$SENTINELS,}127.0.0.1:$(port $((50 + i)))"
done
wait_until 10 "Sentinel" redis-cli -p "$(port 50)" sentinel get-master-addr-by-name "$MASTER_NAME"

# ------------------------------------------------------------ the services
GATEWAYS=""
for i in 0 1 2; do
  log "starting ingest-gateway $i"
  DATABASE_URL="$(db_url ingest_gateway read-write)" \
  REDIS_SENTINELS="$SENTINELS" REDIS_MASTER_NAME="$MASTER_NAME" \
  INGEST_LISTEN_ADDRESS="127.0.0.1:$(port $((60 + i)))" \
  INGEST_METRICS_ADDRESS="127.0.0.1:$(port $((70 + i)))" \
    setsid "$BUILD_DIR/server/ingest-gateway" >>"$DIR/logs/ingest-gateway$i.log" 2>&1 &
  PIDS+=("$!")
  wait_for_port "127.0.0.1:$(port $((70 + i)))" \
    || { echo "ingest-gateway $i did not start; see $DIR/logs/" >&2; exit 1; }
  GATEWAYS="${GATEWAYS:+$GATEWAYS,}127.0.0.1:$(port $((60 + i)))"
done
READERS=""
for i in 0 1; do
  log "starting read-service $i"
  READ_DATABASE_URL="$(db_url read_service prefer-standby)" \
  MAINTENANCE_DATABASE_URL="$(db_url maintenance_service read-write)" \
  READ_LISTEN_ADDRESS="127.0.0.1:$(port $((80 + i)))" \
  READ_METRICS_ADDRESS="127.0.0.1:$(port $((90 + i)))" \
    setsid "$BUILD_DIR/server/read-service" >>"$DIR/logs/read-service$i.log" 2>&1 &
  PIDS+=("$!")
  wait_for_port "127.0.0.1:$(port $((90 + i)))" \
    || { echo "read-service $i did not start; see $DIR/logs/" >&2; exit 1; }
  READERS="${READERS:+$READERS,}127.0.0.1:$(port $((80 + i)))"
done

{
  echo "export TELEMETRY_PLAINTEXT=1"
  printf 'export INGEST_ADDRESS=%q\n' "$GATEWAYS"
  printf 'export READ_ADDRESS=%q\n' "$READERS"
  printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
  printf 'export DEV_DEVICE_TOKEN=%q\n' "$DEV_DEVICE_TOKEN"
  printf 'export TELEMETRY_TOKEN_FILE=%q\n' "$DEV_API_TOKEN"
} >"$DIR/client.env"

cat <<INFO

  telemetry-gateway cluster is running (Ctrl-C stops everything)

  ingest gRPC      $GATEWAYS
  ingest status    http://127.0.0.1:$(port 70)/status  :$(port 71)  :$(port 72)
  read gRPC        $READERS
  read status      http://127.0.0.1:$(port 90)/status  :$(port 91)
  PostgreSQL       $PG_HOSTS (Patroni: patronictl -c $DIR/pg0/patroni.yml list)
  Patroni API      http://127.0.0.1:$(port 30)/cluster
  etcd             $ETCD_HOSTS
  Redis            127.0.0.1:$(port 40), replica :$(port 41); sentinels $SENTINELS ($MASTER_NAME)
  logs             $DIR/logs/

  In another terminal, from $REPO_ROOT:
    source $DIR/client.env
    TELEMETRY_TOKEN_FILE=\$DEV_DEVICE_TOKEN build/load/loadgen --devices=30 --duration=60s
    build/client/telemetryctl jobs

INFO
# -p: the component that exited is reaped, so its PID must not be signalled.
done_pid=""
wait -n -p done_pid "${PIDS[@]}" || true
for i in "${!PIDS[@]}"; do
  [ "${PIDS[i]}" = "$done_pid" ] && PIDS[i]=""
done
if [ "$STOPPING" -eq 0 ]; then log "a component exited; see $DIR/logs/"; fi
