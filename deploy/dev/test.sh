#!/usr/bin/env bash
# Builds everything and runs every test: unit tests, then integration and
# end-to-end tests against a real PostgreSQL and Redis that the test harness
# starts itself on free loopback ports. Installs missing packages first.
#
#   deploy/dev/test.sh              # everything CI runs
#   CTEST_ARGS="-L unit" deploy/dev/test.sh   # a subset
#   FUZZ_SECONDS=0 deploy/dev/test.sh          # without the fuzz pass
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BUILD_DIR="${BUILD_DIR:-$REPO_ROOT/build}"
install_packages
build_project "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTELEMETRY_WERROR=ON

# A short, bounded libFuzzer pass over the request validator, the COPY
# encoder and the CSV parser (clang build of just those; corpus in
# tests/fuzz/corpus). FUZZ_SECONDS=0 skips it.
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  FUZZ_DIR="${FUZZ_DIR:-$REPO_ROOT/build-fuzz}"
  log "fuzzing ($FUZZ_SECONDS s per target)"
  CC=clang CXX=clang++ build_project "$FUZZ_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTELEMETRY_FUZZ_ONLY=ON -DTELEMETRY_FUZZ_SECONDS="$FUZZ_SECONDS"
  (cd "$FUZZ_DIR" && ctest --output-on-failure -j "$(nproc)" -L fuzz)
fi

# The main suite last, so its summary closes the output.
log "running tests"
(cd "$BUILD_DIR" &&
  # Soak and long fault runs carry the 'soak' label and run only when asked.
  ctest --output-on-failure --timeout 900 -j "$(nproc)" -LE soak ${CTEST_ARGS:-})
