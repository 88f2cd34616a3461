#!/usr/bin/env bash
# The README's quick start, run as written (ctest: quickstart_test).
#
# Starts deploy/dev/run.sh on free loopback ports with its data in a
# temporary directory, extracts the README's quick-start block and runs it
# literally from a directory laid out like the repository root (build/ and
# .dev-data/ are links to the real build and the temporary data), checks what
# it printed, then stops run.sh with Ctrl-C's signal and checks it stopped
# everything. Only the processes this script started are signalled.
#
#   quickstart_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SOURCE_DIR="$(cd "$1" && pwd)"
BUILD_DIR="$(cd "$2" && pwd)"

WORK="$(mktemp -d /tmp/quickstart.XXXXXX)"
chmod 755 "$WORK"  # the postgres user reaches its data through here
RUN_PID=""
fail() { echo "quickstart_test: $*" >&2; exit 1; }
finish() {
  local rc=$?
  if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
    kill -INT "$RUN_PID" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ "$rc" -ne 0 ]; then
    echo "--- run.sh output"; cat "$WORK/run.out" 2>/dev/null || true
    for f in "$WORK"/data/logs/*.log; do echo "--- $f"; tail -20 "$f" || true; done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap finish EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The README block, as a reader would copy it.
sed -n '/^<!-- quick-start/,/^<!-- \/quick-start -->/p' "$SOURCE_DIR/README.md" \
  | grep -v -e '^<!--' -e '^```' > "$WORK/block.sh"
[ "$(wc -l < "$WORK/block.sh")" -ge 5 ] || fail "no quick-start block in README.md"

mkdir -p "$WORK/root" "$WORK/data"
ln -s "$BUILD_DIR" "$WORK/root/build"
ln -s "$WORK/data" "$WORK/root/.dev-data"

TELEMETRY_SKIP_SETUP=1 BUILD_DIR="$BUILD_DIR" TELEMETRY_DEV_DIR="$WORK/data" \
  PG_PORT="$(free_port)" REDIS_PORT="$(free_port)" \
  INGEST_LISTEN_ADDRESS="127.0.0.1:$(free_port)" INGEST_METRICS_ADDRESS="127.0.0.1:$(free_port)" \
  READ_LISTEN_ADDRESS="127.0.0.1:$(free_port)" READ_METRICS_ADDRESS="127.0.0.1:$(free_port)" \
  python3 -c 'import os, signal, sys
# A background job of a script starts with SIGINT ignored; a terminal'"'"'s
# Ctrl-C reaches run.sh with it at its default, so restore that.
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execv(sys.argv[1], sys.argv[1:])' "$SOURCE_DIR/deploy/dev/run.sh" > "$WORK/run.out" 2>&1 &
RUN_PID=$!

# Ready when run.sh has printed all of the README's block (it prints the
# block after the banner, so wait for every line, not for the banner) and
# both services answer.
printed_block() {
  while IFS= read -r line; do
    grep -qF -- "    $line" "$WORK/run.out" 2>/dev/null || return 1
  done < "$WORK/block.sh"
}
for _ in $(seq 1200); do
  kill -0 "$RUN_PID" 2>/dev/null || fail "run.sh exited early"
  if [ -s "$WORK/data/client.env" ] && printed_block; then break; fi
  sleep 0.1
done
# run.sh printed the README's block (indented), not a text of its own.
printed_block || fail "run.sh did not print the README's block within 120 s"
(
  source "$WORK/data/client.env"
  for target in "$INGEST_ADDRESS" "$READ_ADDRESS"; do
    "$BUILD_DIR/client/telemetryctl" health --target="$target" >/dev/null \
      || fail "$target is not serving"
  done
)

# The block, literally, in a fresh shell from the "repository root".
(cd "$WORK/root" && env -u TELEMETRY_PLAINTEXT -u INGEST_ADDRESS -u READ_ADDRESS \
   -u DATABASE_URL -u TELEMETRY_TOKEN_FILE -u TELEMETRY_TOKEN bash -e "$WORK/block.sh") \
  > "$WORK/block.out" 2>&1 || { cat "$WORK/block.out"; fail "the README block failed"; }
cat "$WORK/block.out"
grep -q "sent 1 readings: 1 accepted, 0 duplicates, 0 rejected" "$WORK/block.out" \
  || fail "send did not store the reading"
grep -q "^pump-1,.*,21.5,,celsius" "$WORK/block.out" || fail "latest did not show the reading"
grep -q "^pump-1,.*,1,21.5,21.5,21.5,raw" "$WORK/block.out" || fail "summary did not count it"
grep -q "(1 row)" "$WORK/block.out" || fail "psql did not show the row"

# Ctrl-C: run.sh stops every component and exits.
kill -INT "$RUN_PID"
for _ in $(seq 300); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$RUN_PID" 2>/dev/null && fail "run.sh did not stop within 30 s of SIGINT"
wait "$RUN_PID" || true
RUN_PID=""
grep -q "stopped" "$WORK/run.out" || fail "run.sh did not report stopping"
[ ! -f "$WORK/data/postgres/postmaster.pid" ] || fail "PostgreSQL was left running"
echo "quickstart_test: the README's quick start works as written"
