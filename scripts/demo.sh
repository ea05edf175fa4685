#!/usr/bin/env bash
# The README's demo, in one command on a fresh Debian 12 machine:
#   1. installs what is missing (apt-get, as root or through sudo): cmake ninja-build g++
#      pkg-config libcpp-httplib-dev libssl-dev libfmt-dev catch2;
#   2. configures and builds the two demo programs in build/demo (Release);
#   3. starts the fault-injecting test API (examples/test_api.cpp) on 127.0.0.1, port 0;
#   4. runs examples/resilient_client.cpp against it: the seed's usage example, then a fault drill
#      in which the breaker opens, fails fast and closes again;
#   5. stops the server (whatever happens) and exits with the client's status.
#
# Environment: DEMO_NO_INSTALL=1 never calls apt-get (fails if something is missing);
#              DEMO_BUILD_DIR overrides build/demo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${DEMO_BUILD_DIR:-$ROOT/build/demo}"
log() { printf '[demo] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ install ---
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
[ -f /usr/include/httplib.h ] || missing+=(libcpp-httplib-dev)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ -f /usr/include/fmt/core.h ] || missing+=(libfmt-dev)
[ -f /usr/include/catch2/catch.hpp ] || missing+=(catch2)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "${DEMO_NO_INSTALL:-0}" = 1 ] && die "missing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${missing[*]}"
    SUDO="sudo"
  fi
  log "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# -------------------------------------------------------------------- build ---
log "configuring $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DBULWARK_BUILD_EXAMPLES=ON -DBULWARK_BUILD_TESTS=OFF -DBULWARK_BUILD_BENCHMARKS=OFF \
  -DBULWARK_INSTALL=OFF -DBULWARK_FETCH_DEPENDENCIES=OFF -DBULWARK_REQUIRE_DEPENDENCIES=ON \
  -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$BUILD/bin" >&2
log "building test_api and resilient_client"
cmake --build "$BUILD" --target bulwark_example_test_api bulwark_example_resilient_client >&2
SERVER_BIN="$BUILD/bin/test_api"
CLIENT_BIN="$BUILD/bin/resilient_client"
if [ ! -x "$SERVER_BIN" ] || [ ! -x "$CLIENT_BIN" ]; then die "built programs not found in $BUILD/bin"; fi

# -------------------------------------------------------------------- run -----
SERVER_PID=""
SERVER_OUT="$(mktemp)"
# shellcheck disable=SC2317  # called through the trap below
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping test_api (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -f "$SERVER_OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$SERVER_BIN" 0 >"$SERVER_OUT" &
SERVER_PID=$!
PORT=""
for _ in $(seq 100); do
  PORT="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")"
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "test_api exited early"
  sleep 0.1
done
[ -n "$PORT" ] || die "test_api did not report its port within 10 s"
log "test_api (pid $SERVER_PID) listening on 127.0.0.1:$PORT"

set +e
timeout 60 "$CLIENT_BIN" "http://127.0.0.1:$PORT" --metrics-port 0
status=$?
set -e
log "resilient_client exited with status $status"
exit "$status"
