#!/usr/bin/env bash
# scripts/test.sh — bulwark's one test command (README "Quick start"; CI runs it from .ci/run).
#
#   bash scripts/test.sh
#
# On a fresh Debian 12: installs the Debian packages the build needs when any is missing (as root,
# or through sudo), then runs the preset workflows in order, stopping at the first failure:
#   release      configure, build everything, run every test (packaging tests included)
#   asan-ubsan   every unit test under AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan         the real-thread tests ([threads]) under ThreadSanitizer
#   fuzz         the libFuzzer targets (clang), each for a bounded time from its corpus
# Build trees go to build/<preset>/ and are reused by the next run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(cmake ninja-build g++ pkg-config catch2 libcpp-httplib-dev libssl-dev libfmt-dev
          libbenchmark-dev openssl clang libclang-rt-14-dev)

install_missing_packages() {
  local missing=() package
  for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "test.sh: missing Debian packages: ${missing[*]}; install them as root" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  echo "test.sh: installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
}

if command -v dpkg >/dev/null 2>&1; then
  install_missing_packages
else
  echo "test.sh: not a Debian system: install ${packages[*]} (or their equivalents) yourself" >&2
fi

start=$SECONDS
passed=()
run_suite() {  # name, command...
  local name=$1 began=$SECONDS
  shift
  echo "==== test.sh: $name"
  if ! "$@"; then
    echo "test.sh: FAILED in $name after $((SECONDS - start)) s (passed: ${passed[*]:-none})" >&2
    exit 1
  fi
  passed+=("$name ($((SECONDS - began)) s)")
}

run_suite release cmake --workflow --preset release
run_suite asan-ubsan cmake --workflow --preset asan-ubsan
run_suite tsan cmake --workflow --preset tsan

# libFuzzer targets (clang), each for BULWARK_FUZZ_SECONDS (30) from its committed corpus.
run_suite fuzz cmake --workflow --preset fuzz

echo "test.sh: all passed in $((SECONDS - start)) s: ${passed[*]}"
