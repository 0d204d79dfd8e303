#!/bin/bash
# Step options retries/delay/until and node:run{changed=} on the lab.
set -e
. "$(dirname "$0")/../lib.sh"
D=$(cd "$(dirname "$0")" && pwd)
eval "$("$KCMRUN" lab env)"
MARK=/tmp/kcm-steps-$$

run "$KCMRUN" --no-lock --state-dir "$T/state" -i "$KCMRUN_LAB_INVENTORY" -e mark="$MARK" "$D/steps_play.lua"
expect_rc 4 "first run (the last step must fail)"
nodes=$(grep -cE '^flaky .* attempts=3$' "$T/out") || true
[ "$nodes" -ge 2 ] || { cat "$T/out"; fail "flaky: expected every node to succeed on attempt 3"; }
! grep -qE '^  FAILED +\S+ +(flaky|until|changed)' "$T/out" || { cat "$T/out"; fail "a retried step failed"; }
[ "$(grep -cE '^  changed +' "$T/out")" -ge "$nodes" ] || { cat "$T/out"; fail "changed: no change reported on the first run"; }
expect_out "step 'never': until not met after 2 attempts"
run "$KCMRUN" --no-lock --state-dir "$T/state" -i "$KCMRUN_LAB_INVENTORY" -e mark="$MARK" "$D/steps_play.lua"
expect_rc 4 "second run"
! grep -qE '^  changed +' "$T/out" || { cat "$T/out"; fail "changed: the second run reported a change"; }
pass "$nodes nodes: retries end ok on attempt 3, until waits for its value, run reports changed once, until exhausted fails"
