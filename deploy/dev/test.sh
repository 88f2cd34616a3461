#!/usr/bin/env bash
# Builds everything and runs every test: unit tests, then integration and
# end-to-end tests against a real PostgreSQL and Redis that the test harness
# starts itself on free loopback ports. Installs missing packages first.
#
#   deploy/dev/test.sh              # everything CI runs
#   CTEST_ARGS="-L unit" deploy/dev/test.sh   # a subset
#   FUZZ_SECONDS=0 deploy/dev/test.sh          # without the fuzz pass
#   SANITIZERS=0 deploy/dev/test.sh            # without the sanitizer builds
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BUILD_DIR="${BUILD_DIR:-$REPO_ROOT/build}"
install_packages
# The status pages' browser test skips without Chromium on a developer's
# machine; here Chromium was just installed, so a skip would hide a failure.
export TELEMETRY_REQUIRE_BROWSER=1
build_project "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTELEMETRY_WERROR=ON

# A short, bounded libFuzzer pass over the request validator, the COPY
# encoder, the CSV parser and the spool's segment decoder (clang build of just those; corpus in
# tests/fuzz/corpus). FUZZ_SECONDS=0 skips it.
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  FUZZ_DIR="${FUZZ_DIR:-$REPO_ROOT/build-fuzz}"
  log "fuzzing ($FUZZ_SECONDS s per target)"
  CC=clang CXX=clang++ build_project "$FUZZ_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTELEMETRY_FUZZ_ONLY=ON -DTELEMETRY_FUZZ_SECONDS="$FUZZ_SECONDS"
  (cd "$FUZZ_DIR" && ctest --output-on-failure -j "$(nproc)" -L fuzz)
fi

# Sanitizer builds (clang), each in its own build directory; a report fails
# the run. SANITIZERS=0 skips both.
#   AddressSanitizer + UndefinedBehaviorSanitizer (with LeakSanitizer at
#   exit): every test but the soak, deploy and fuzz labels, the gRPC ones
#   included: the servers, the client and the tests are all instrumented.
#   ThreadSanitizer: the unit and integration tests, our own concurrent
#   code (pipeline, credential store, limiter, pool, COPY writer, Redis
#   store); why not the gRPC-bound ones: tests/sanitizers/tsan.supp.
if [ "${SANITIZERS:-1}" != 0 ]; then
  ASAN_DIR="${ASAN_DIR:-$REPO_ROOT/build-asan}"
  log "AddressSanitizer + UndefinedBehaviorSanitizer build"
  CC=clang CXX=clang++ build_project "$ASAN_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTELEMETRY_WERROR=ON -DTELEMETRY_SANITIZE=address,undefined
  log "running tests under AddressSanitizer + UndefinedBehaviorSanitizer"
  (cd "$ASAN_DIR" &&
    ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure --timeout 900 -j "$(nproc)" -LE 'soak|deploy|fuzz')

  TSAN_DIR="${TSAN_DIR:-$REPO_ROOT/build-tsan}"
  log "ThreadSanitizer build (unit and integration tests)"
  CC=clang CXX=clang++ cmake -S "$REPO_ROOT" -B "$TSAN_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTELEMETRY_WERROR=ON -DTELEMETRY_SANITIZE=thread >/dev/null
  cmake --build "$TSAN_DIR" -j "$(nproc)" --target unit_and_integration_tests
  log "running tests under ThreadSanitizer"
  (cd "$TSAN_DIR" &&
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$REPO_ROOT/tests/sanitizers/tsan.supp" \
    ctest --output-on-failure --timeout 900 -j "$(nproc)" -L 'unit|integration')
fi

# The main suite last, so its summary closes the output.
log "running tests"
rc=0
(cd "$BUILD_DIR" &&
  # Soak and long fault runs carry the 'soak' label and run only when asked.
  ctest --output-on-failure --timeout 900 -j "$(nproc)" -LE soak ${CTEST_ARGS:-}) || rc=$?
# What the browser test saw (screenshots of both status pages per mode).
for f in "$BUILD_DIR"/artifacts/*.png; do
  if [ -e "$f" ]; then log "artifact: $f"; fi
done
exit "$rc"
