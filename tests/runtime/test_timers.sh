#!/bin/bash
# Timers in the runtime (engine/timers.c): task.sleep holds no worker thread.
set -e
. "$(dirname "$0")/../lib.sh"
D=$(cd "$(dirname "$0")" && pwd)
U=$D/../unit/fixtures

NODES=40 run "$KCMRUN" --state-dir "$T/state" -i "$U/inv64.lua" "$D/timers.lua"
expect_rc 0 "timers playbook"
line=$(grep -E '^nodes=' "$T/out") || { cat "$T/out"; fail "no measurement"; }
took=$(sed -E 's/.*took=([0-9.]+).*/\1/' <<<"$line")
workers=$(sed -E 's/.*workers=([0-9]+).*/\1/' <<<"$line")
# 40 sleeps of 0.5 s on one worker would take 20 s; in parallel ~0.5 s
awk -v t="$took" 'BEGIN { exit !(t >= 0.45 && t < 2.0) }' || fail "40 x 0.5 s sleeps took ${took}s (expected ~0.5 s): $line"
[ "$workers" -le 1 ] || fail "expected at most 1 worker thread, got $workers"
expect_out "^order=zero,early,job,late took=0\.[2-4]"
pass "40 nodes sleeping 0.5 s with 1 worker: ${took}s; timers wake in deadline order beside a worker job"
