#!/bin/bash
# The test command: the whole ctest suite on the normal build, then again on
# an AddressSanitizer + UndefinedBehaviorSanitizer build, then the fuzz
# targets (60 s each) when clang is there.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0

ctest --test-dir build --output-on-failure -LE fuzz || rc=1

cmake -S . -B build-asan -DKCM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
  cmake --build build-asan -j"$(nproc)" >/dev/null || { echo "sanitizer build failed"; exit 1; }
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -LE fuzz || rc=1

if command -v clang >/dev/null; then
  CC=clang cmake -S . -B build-fuzz -DKCM_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
    cmake --build build-fuzz -j"$(nproc)" >/dev/null || { echo "fuzz build failed"; exit 1; }
  ctest --test-dir build-fuzz --output-on-failure -L fuzz || rc=1
fi
exit $rc
