#!/bin/bash
# The test command: the whole ctest suite on the normal build, then again on
# an AddressSanitizer + UndefinedBehaviorSanitizer build, then the fuzz
# targets (60 s each) when clang is there. Tests run in parallel (ctest -j):
# the suite's four labs (tests/lab/order.cmake) run beside each other and
# beside the tests that need no lab. Each phase's time is printed at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
JOBS=${KCM_TEST_JOBS:-3}
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT
PHASES=()
T0=$SECONDS

# phase NAME CMD...: runs CMD, keeps its output for the summary, times it
phase() {
  local name=$1 t=$SECONDS; shift
  echo "== $name"
  "$@" 2>&1 | tee "$LOG/$name.out"
  local r=${PIPESTATUS[0]}
  [ "$r" = 0 ] || rc=1
  PHASES+=("$(printf '%-10s %5ds  %s' "$name" $((SECONDS - t)) "$(grep -E 'tests passed|No tests were found' "$LOG/$name.out" | tail -1)")")
  return 0
}
build() {
  cmake -S . -B "$1" "${@:2}" >/dev/null && cmake --build "$1" -j"$(nproc)" >/dev/null
}

# The sanitizer and fuzz trees build while the normal pass runs, at the
# lowest priority: they take the cores the lab tests leave idle, never the
# lab tests' time.
nice -n 19 bash -c "$(declare -f build); build build-asan -DKCM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug" \
  >"$LOG/build-asan.log" 2>&1 & ASAN_BUILD=$!
FUZZ_BUILD=
if command -v clang >/dev/null; then
  CC=clang nice -n 19 bash -c "$(declare -f build); build build-fuzz -DKCM_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug" \
    >"$LOG/build-fuzz.log" 2>&1 & FUZZ_BUILD=$!
fi

phase normal ctest --test-dir build --output-on-failure -LE fuzz -j"$JOBS"

if wait "$ASAN_BUILD"; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    phase asan ctest --test-dir build-asan --output-on-failure -LE fuzz -j"$JOBS"
else
  cat "$LOG/build-asan.log"; echo "sanitizer build failed"; rc=1
fi

if [ -n "$FUZZ_BUILD" ]; then
  # one fuzzer a core
  if wait "$FUZZ_BUILD"; then
    phase fuzz ctest --test-dir build-fuzz --output-on-failure -L fuzz -j"$(nproc)"
  else
    cat "$LOG/build-fuzz.log"; echo "fuzz build failed"; rc=1
  fi
fi

echo
echo "== times"
for p in "${PHASES[@]}"; do echo "  $p"; done
passed=0 failed=0
for f in "$LOG"/*.out; do
  read -r p f2 < <(awk '/tests passed, [0-9]+ tests failed out of/ {t=$NF; f=$(NF-5)} END {print t-f, f}' "$f")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f2:-0}))
done
printf '  total      %5ds\n' $((SECONDS - T0))
echo "$passed passed, $failed failed"
exit $rc
