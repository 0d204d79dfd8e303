# Shared helpers for the shell-driven tests. Source it; KCMRUN must be set.
set -u
: "${KCMRUN:?KCMRUN must point to the kcmrun binary}"
export NO_COLOR=1
T=$(mktemp -d "${TMPDIR:-/tmp}/kcmtest.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
# run CMD...: captures stdout/stderr/exit code in $T/out, $T/err, $RC
run() { set +e; "$@" >"$T/out" 2>"$T/err"; RC=$?; set -e; }
expect_rc() { [ "$RC" = "$1" ] || { echo "--- stdout"; cat "$T/out"; echo "--- stderr"; cat "$T/err"; fail "${2:-command}: exit code $RC, expected $1"; }; }
expect_out() { grep -qE -- "$1" "$T/out" || { cat "$T/out"; fail "stdout lacks /$1/"; }; }
expect_err() { grep -qE -- "$1" "$T/err" || { cat "$T/err"; fail "stderr lacks /$1/"; }; }
expect_file() { grep -qE -- "$2" "$1" || { cat "$1"; fail "$1 lacks /$2/"; }; }
