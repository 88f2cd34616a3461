# Shared by run.sh and test.sh: installs what the project needs from Debian's
# archive (only what is missing) and builds it. Sourced, not executed.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Everything the build, the tests and the dev stack need.
TELEMETRY_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libpq-dev libhiredis-dev libabsl-dev prometheus-cpp-dev libcivetweb-dev libssl-dev openssl
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  postgresql-15 postgresql-client-15 redis-server
  prometheus python3 python3-yaml python3-grpcio python3-protobuf
  chromium  # the status pages' browser test (headless)
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
