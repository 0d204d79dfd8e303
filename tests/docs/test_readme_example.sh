#!/bin/bash
# The README's "Writing playbooks" example, taken from README.md between its
# markers, runs on the lab: the first run changes and restarts, a rerun
# changes nothing. If the README's example stops working, this fails.
set -e
. "$(dirname "$0")/../lib.sh"
README=$(dirname "$0")/../../README.md
eval "$("$KCMRUN" lab env)"

awk '/^<!-- readme-example/ { on = 1; next } /^<!-- \/readme-example -->/ { on = 0 }
     on && /^```lua$/ { code = 1; next } on && /^```$/ { code = 0 } code' "$README" > "$T/example.lua"
[ "$(wc -l < "$T/example.lua")" -ge 5 ] || fail "no example playbook between the README's markers"
grep -q '^return play$' "$T/example.lua" || fail "the README's example does not return its playbook"

cleanup() {
  cat > "$T/clean.lua" <<'LUA'
local play = require("kcm").playbook { name = "clean", hosts = "masters" }
play:step("clean", function(node)
  node:run({ "sh", "-c", "systemctl disable --now example 2>/dev/null; rm -f /etc/systemd/system/example.service " ..
                         "/etc/example.env; systemctl daemon-reload; true" })
end)
return play
LUA
  "$KCMRUN" --no-lock --state-dir "$T/state" -i "$KCMRUN_LAB_INVENTORY" "$T/clean.lua" >/dev/null 2>&1 || true
}
cleanup
trap 'cleanup; rm -rf "$T"' EXIT

run "$KCMRUN" --no-lock --state-dir "$T/state" -i "$KCMRUN_LAB_INVENTORY" "$T/example.lua"
expect_rc 0 "the README's example, first run"
expect_out "runs once, on this machine"
nodes=$(grep -cE '^  changed +\S+ +.*restart example' "$T/out" || true)
[ "$nodes" -ge 2 ] || { cat "$T/out"; fail "first run: expected the handler to restart example on every master"; }
run "$KCMRUN" --no-lock --state-dir "$T/state" -i "$KCMRUN_LAB_INVENTORY" "$T/example.lua"
expect_rc 0 "the README's example, rerun"
! grep -qE '^  changed ' "$T/out" || { cat "$T/out"; fail "rerun: the README's example changed something"; }
pass "README example: $nodes masters configured and restarted, rerun changes nothing"
