# Shared by run.sh, cluster.sh and test.sh: installs what the project needs
# from Debian's archive (only what is missing), builds it, and sets up the
# development database. Sourced, not executed.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Everything the build, the tests and the dev stack need.
TELEMETRY_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libpq-dev libhiredis-dev libabsl-dev prometheus-cpp-dev libcivetweb-dev libssl-dev openssl
  zlib1g-dev  # the edge spool's checksums (CRC-32)
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  postgresql-15 postgresql-client-15 redis-server
  prometheus python3 python3-yaml python3-grpcio python3-protobuf
  chromium  # the status pages' browser test (headless)
  # The cluster (deploy/dev/cluster.sh and the cluster tests): PostgreSQL
  # managed by Patroni on etcd, Redis watched by Sentinel.
  patroni etcd-server etcd-client redis-sentinel
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else echo "need root to run: $*" >&2; return 1; fi
}

install_packages() {
  local missing=()
  for p in "${TELEMETRY_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "packages: all present"
    return 0
  fi
  log "installing: ${missing[*]}"
  # Debian's postgresql package would create and start a default cluster; we
  # run private clusters only, so keep the package from starting services.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
    created_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ "$created_policy" -eq 1 ]; then as_root rm -f "$policy"; fi
}

# build_project <build-dir> <extra cmake args...>
build_project() {
  local dir="$1"; shift
  log "configuring in $dir"
  cmake -S "$REPO_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  log "building (this takes a few minutes on a fresh checkout)"
  cmake --build "$dir" -j "$(nproc)"
}

pg_bindir() {
  local best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/postgres" ] && best="$d"
  done
  echo "$best"
}

# Runs a command as the postgres system user when we are root (PostgreSQL
# refuses to run as root), as ourselves otherwise.
as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# create_service_roles <superuser-url>: one login per service, each a member
# of a group role the migrations made (trust authentication on loopback:
# these are development clusters).
create_service_roles() {
  "$(pg_bindir)/psql" -q -v ON_ERROR_STOP=1 "$1" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ingest_gateway') THEN
    CREATE ROLE ingest_gateway LOGIN IN ROLE telemetry_writer; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'read_service') THEN
    CREATE ROLE read_service LOGIN IN ROLE telemetry_reader; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'maintenance_service') THEN
    CREATE ROLE maintenance_service LOGIN IN ROLE telemetry_maintainer; END IF;
END $$;
SQL
}

# issue_dev_credentials <dir> <telemetryctl>: development credentials (both
# services require them, as in production): a device allowed to write every
# sensor, and an admin API token, in <dir>/dev-device.token and
# <dir>/dev-admin.token. Issued once, re-issued when the files are missing;
# the database keeps only hashes. Uses $DATABASE_URL.
issue_dev_credentials() {
  local dir="$1" ctl="$2"
  DEV_DEVICE_TOKEN="$dir/dev-device.token"
  DEV_API_TOKEN="$dir/dev-admin.token"
  if [ ! -s "$DEV_DEVICE_TOKEN" ]; then
    log "issuing the development device credential (dev-device)"
    if ! "$ctl" device add dev-device --sensors='*' >"$DEV_DEVICE_TOKEN" 2>/dev/null; then
      "$ctl" device rotate dev-device >"$DEV_DEVICE_TOKEN" 2>/dev/null
    fi
    chmod 600 "$DEV_DEVICE_TOKEN"
  fi
  if [ ! -s "$DEV_API_TOKEN" ]; then
    log "issuing the development API token (dev-admin)"
    "$(pg_bindir)/psql" -q "$DATABASE_URL" \
      -c "DELETE FROM api_tokens WHERE name = 'dev-admin'" >/dev/null
    "$ctl" token add dev-admin --scope=admin >"$DEV_API_TOKEN" 2>/dev/null
    chmod 600 "$DEV_API_TOKEN"
  fi
}

# wait_for_port <host:port>: up to 10 s for something to listen there.
wait_for_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
