#!/bin/bash
# Interrupts, strictness and error paths (issue 16, points 6-10):
#   test_signals.sh loop|strict|errors                  (no lab)
#   test_signals.sh twosig|grace|abandon|timeout|steperr|verbose|logjson|tls   (on the lab)
set -e
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
SD=$T/state

ms() { date +%s%3N; }
BG=
bg() { "$KCMRUN" --state-dir "$SD" "$@" >"$T/out" 2>"$T/err" & BG=$!; }
# wait_exit LIMIT_MS: waits for the background run; fails when it takes longer
# than LIMIT_MS from now (a run that does not stop is what this suite is about)
wait_exit() {
  local t0; t0=$(ms)
  while kill -0 "$BG" 2>/dev/null; do
    if [ $(( $(ms) - t0 )) -gt "$1" ]; then
      kill -9 "$BG"; cat "$T/out" "$T/err"; fail "kcmrun still running $1 ms after the signal"
    fi
    sleep 0.05
  done
  set +e; wait "$BG"; RC=$?; set -e
  TOOK=$(( $(ms) - t0 ))
  BG=
}
# one_line: stderr is one line, no traceback, no internal error
one_line() {
  local n; n=$(wc -l <"$T/err")
  [ "$n" = 1 ] || { cat "$T/err"; fail "$1: stderr has $n lines, expected one"; }
  ! grep -qE "traceback|internal error|builtin:|table: 0x" "$T/err" || { cat "$T/err"; fail "$1: traceback or internal error"; }
}
cleanup_bg() { [ -n "$BG" ] && kill -9 "$BG" 2>/dev/null; true; }
trap 'cleanup_bg; rm -rf "$T"' EXIT

ONCE=$T/once.lua
cat >"$ONCE" <<'LUA'
local kcm = require "kcm"
local p = kcm.playbook { name = "once" }
p:step("hello", { once = true }, function(ctx) print("hello ran") end)
return p
LUA

lab_env() {
  eval "$("$KCMRUN" lab env)"
  NODES=($KCMRUN_LAB_NODES)
  LABINV=$KCMRUN_LAB_INVENTORY
  cp "$HERE/remote.lua" "$T/remote.lua"
  for n in "${NODES[@]}"; do "$KCMRUN" lab exec "$n" rm -f /run/kcm-signals-after; done
}
# sleeps_left CMD: processes running exactly `sleep $1` on any node
sleeps_left() {
  local n out=""
  for n in "${NODES[@]}"; do
    out+=$("$KCMRUN" lab exec "$n" pgrep -fx "sleep $1" || true)
  done
  echo "$out"
}
wait_sleeping() {   # until every node runs `sleep $1`
  local n
  for _ in $(seq 1 100); do
    local all=1
    for n in "${NODES[@]}"; do "$KCMRUN" lab exec "$n" pgrep -fx "sleep $1" >/dev/null || all=0; done
    [ $all = 1 ] && return 0
    sleep 0.1
  done
  cat "$T/out" "$T/err"; fail "the remote sleep never started"
}

case "$1" in
loop)
  # an endless loop in the inventory: one SIGINT stops it (count hook)
  printf 'local x = 0\nwhile true do x = x + 1 end\nreturn {}\n' >"$T/inv.lua"
  bg -i "$T/inv.lua" "$ONCE"
  sleep 0.5
  kill -INT "$BG"
  wait_exit 2000
  expect_rc 130 "SIGINT during an endless inventory"
  expect_err "interrupted by SIGINT while loading the inventory .*inv.lua"
  one_line "inventory loop"
  # an endless loop at a playbook's top level: SIGTERM -> 143
  printf 'local kcm = require "kcm"\nwhile true do end\n' >"$T/pb.lua"
  bg "$T/pb.lua"
  sleep 0.5
  kill -TERM "$BG"
  wait_exit 2000
  expect_rc 143 "SIGTERM during an endless playbook"
  expect_err "interrupted by SIGTERM while loading .*pb.lua"
  one_line "playbook loop"
  # a local command (30 s) in a step: two SIGINTs end it and kcmrun at once
  cat >"$T/local.lua" <<'LUA'
local kcm = require "kcm"
local exec = require "kcm.exec"
local p = kcm.playbook { name = "local" }
p:step("wait", { once = true }, function(ctx) exec.run({ "sleep", "37.5" }) end)
return p
LUA
  bg "$T/local.lua"
  for _ in $(seq 1 50); do pgrep -fx "sleep 37.5" >/dev/null && break; sleep 0.1; done
  pgrep -fx "sleep 37.5" >/dev/null || fail "the local command never started"
  kill -INT "$BG"; sleep 0.2; kill -INT "$BG"
  wait_exit 2000
  expect_rc 130 "two SIGINTs during a local command"
  sleep 0.2
  ! pgrep -fx "sleep 37.5" >/dev/null || { pkill -fx "sleep 37.5"; fail "the local command outlived kcmrun"; }
  pass "SIGINT stops an endless inventory ($TOOK ms for the last case), SIGTERM an endless playbook; two SIGINTs kill a local command; 130/143, one line"
  ;;
strict)
  printf 'local kcm = require "kcm"\nlocal play = kcm.playbook { name = "x" }\nreturn paly\n' >"$T/typo.lua"
  run "$KCMRUN" "$T/typo.lua"
  expect_rc 3 "return paly"
  expect_err "typo.lua:3: undefined global 'paly'"
  one_line "typo"
  printf 'local kcm = require "kcm"\nlocal p = kcm.playbook { name = "x" }\np:step("a", { notfy = "restart" }, function() end)\nreturn p\n' >"$T/opt.lua"
  run "$KCMRUN" "$T/opt.lua"
  expect_rc 3 "unknown step option"
  expect_err "opt.lua:3: unknown option 'notfy' for play:step a \(did you mean 'notify'\? known: once, hosts, [a-z_, ]*continue_on_failure[a-z_, ]*\)"
  one_line "unknown option"
  printf 'local kcm = require "kcm"\nlocal p = kcm.playbook { name = "x" }\np:step("a", { notify = "restart" }, function() end)\nreturn p\n' >"$T/noh.lua"
  run "$KCMRUN" "$T/noh.lua"
  expect_rc 3 "notify without handler"
  expect_err "noh.lua:3: step 'a' notifies 'restart', but no step handles it"
  one_line "notify without handler"
  printf 'return { nodes = { { name = "n1", host = "127.0.0.1" } },\n  vars = { x = undefined_thing } }\n' >"$T/uinv.lua"
  run "$KCMRUN" -i "$T/uinv.lua" "$ONCE"
  expect_rc 2 "undefined global in the inventory"
  expect_err "uinv.lua:2: undefined global 'undefined_thing'"
  one_line "inventory global"
  # a playbook error at load: one line; -vv adds the traceback
  printf 'local kcm = require "kcm"\nerror("boom")\n' >"$T/boom.lua"
  run "$KCMRUN" "$T/boom.lua"
  expect_rc 3 "error at load"
  expect_err "boom.lua:2: boom"
  one_line "error at load"
  run "$KCMRUN" -vv "$T/boom.lua"
  expect_rc 3 "error at load, -vv"
  expect_err "stack traceback"
  pass "undefined globals (playbook, inventory), unknown step options and unhandled notifies: exit 3/2, one line with file:line; -vv adds a traceback"
  ;;
errors)
  run "$KCMRUN" --state-dir "$SD" --log-json /nonexistent/x "$ONCE"
  expect_rc 2 "--log-json into a missing folder"
  expect_err "^kcmrun: --log-json: /nonexistent/x: No such file or directory$"
  one_line "--log-json"
  : >"$T/afile"
  printf 'return { nodes = { { name = "n1", host = "127.0.0.1" } } }\n' >"$T/inv.lua"
  run "$KCMRUN" --state-dir "$T/afile" -i "$T/inv.lua" "$ONCE"
  expect_rc 2 "--state-dir is a file"
  expect_err "^kcmrun: state folder $T/afile: is not a folder; give another with --state-dir DIR$"
  one_line "--state-dir"
  printf 'NODE_IPS=(127.0.0.1)\necho "cannot reach the vault" >&2\nfalse\n' >"$T/environment.sh"
  run "$KCMRUN" --state-dir "$SD" -i "$T/environment.sh" "$ONCE"
  expect_rc 2 "environment.sh ending in false"
  expect_err "environment.sh: sourcing it with bash failed: its last command exited with status 1; stderr: cannot reach the vault$"
  one_line "environment.sh false"
  printf 'NODE_IPS=(127.0.0.1)\nexit 5\n' >"$T/environment.sh"
  run "$KCMRUN" --state-dir "$SD" -i "$T/environment.sh" "$ONCE"
  expect_rc 2 "environment.sh exit 5"
  expect_err "environment.sh: sourcing it with bash failed: it exited with status 5 \(nothing on stderr\)$"
  printf 'NODE_IPS=(127.0.0.1)\nsleep 100\n' >"$T/environment.sh"
  run "$KCMRUN" --state-dir "$SD" -i "$T/environment.sh" "$ONCE"
  expect_rc 2 "environment.sh that hangs"
  expect_err "environment.sh: sourcing it with bash timed out after 30 s"
  ! grep -q "143" "$T/err" || fail "the timeout reads as an exit status: $(cat "$T/err")"
  one_line "environment.sh timeout"
  pass "--log-json/--state-dir/environment.sh errors: exit 2, one line naming the file and the reason"
  ;;
twosig)
  lab_env
  bg -i "$LABINV" "$T/remote.lua"
  wait_sleeping 600
  kill -INT "$BG"; sleep 0.2; kill -INT "$BG"
  wait_exit 2000
  expect_rc 130 "two SIGINTs"
  expect_err "interrupted again: stopping now"
  sleep 0.5
  left=$(sleeps_left 600)
  [ -z "$left" ] || fail "remote sleep 600 left on a node: $left"
  [ -z "$(for n in "${NODES[@]}"; do "$KCMRUN" lab exec "$n" ls /run/kcm-signals-after 2>/dev/null; done)" ] || fail "a later step ran"
  pass "remote sleep 600 + two SIGINTs: exit 130 in $TOOK ms, no sleep left on any node"
  ;;
grace)
  lab_env
  # sleep 5: on a loaded machine seeing it start on every node can take 2-3 s of the sleep
  KCM_SLEEP=5 bg -i "$LABINV" --grace 10 "$T/remote.lua"
  wait_sleeping 5
  kill -INT "$BG"
  wait_exit 8000
  expect_rc 130 "one SIGINT, --grace 10"
  [ "$TOOK" -ge 1000 ] || fail "did not wait for the command in flight ($TOOK ms)"
  expect_out "^RECAP"
  for n in "${NODES[@]}"; do
    grep -qE "^  ok +$n " "$T/out" || { cat "$T/out"; fail "$n: sleep 5 not reported ok"; }
    ! "$KCMRUN" lab exec "$n" test -e /run/kcm-signals-after || fail "$n: the next step started after SIGINT"
  done
  pass "one SIGINT with a remote sleep 5 and --grace 10: waited for it ($TOOK ms), recap printed, no next step, 130"
  ;;
abandon)
  lab_env
  bg -i "$LABINV" --grace 1 "$T/remote.lua"
  wait_sleeping 600
  kill -TERM "$BG"
  wait_exit 2500
  expect_rc 143 "one SIGTERM, --grace 1, remote sleep 600"
  [ "$TOOK" -ge 900 ] || fail "did not give the grace ($TOOK ms)"
  expect_out "^RECAP"
  expect_out "interrupted: still running after the 1s grace, abandoned"
  sleep 0.5
  left=$(sleeps_left 600)
  [ -z "$left" ] || fail "remote sleep 600 left on a node: $left"
  pass "SIGTERM, grace 1 s over: work abandoned ($TOOK ms), recap printed, 143, no sleep left on any node"
  ;;
timeout)
  lab_env
  KCM_SLEEP=601 KCM_TIMEOUT=2 run "$KCMRUN" --state-dir "$SD" -i "$LABINV" "$T/remote.lua"
  expect_rc 4 "a command over its timeout"
  expect_out "'sleep' '601': timed out after 2s"
  sleep 0.5
  left=$(sleeps_left 601)
  [ -z "$left" ] || fail "the timed-out command still runs on a node: $left"
  pass "a command over its timeout is ended on the node"
  ;;
steperr)
  lab_env
  cat >"$T/meth.lua" <<'LUA'
local kcm = require "kcm"
local p = kcm.playbook { name = "m", hosts = "all" }
p:step("bad", function(node) node:nosuch() end)
p:step("after", { once = true }, function(ctx) print("AFTER RAN") end)
return p
LUA
  run "$KCMRUN" --state-dir "$SD" -i "$LABINV" "$T/meth.lua"
  expect_rc 3 "a missing method in a step"
  expect_err "^kcmrun: playbook error in step 'bad': .*meth.lua:3: attempt to call a nil value \(method 'nosuch'\)$"
  n=$(cat "$T/out" "$T/err" | grep -c "attempt to call")
  [ "$n" = 1 ] || { cat "$T/out" "$T/err"; fail "the error is printed $n times, expected once"; }
  ! grep -q "AFTER RAN" "$T/out" || fail "a once step ran after a playbook error"
  cat >"$T/allfail.lua" <<'LUA'
local kcm = require "kcm"
local p = kcm.playbook { name = "m", hosts = "all" }
p:step("bad", { continue_on_failure = os.getenv("COF") == "1" }, function(node) node:run({ "false" }) end)
p:step("after", { once = true }, function(ctx) print("AFTER RAN") end)
return p
LUA
  run "$KCMRUN" --state-dir "$SD" -i "$LABINV" "$T/allfail.lua"
  expect_rc 4 "every target failed"
  ! grep -q "AFTER RAN" "$T/out" || fail "a once step ran after every target failed"
  expect_err "every target of step 'bad' failed: the play stopped there"
  COF=1 run "$KCMRUN" --state-dir "$SD" -i "$LABINV" "$T/allfail.lua"
  expect_rc 4 "every target failed, continue_on_failure"
  expect_out "AFTER RAN"
  pass "a Lua error in a step: exit 3, printed once, later steps do not run; every target failed: the play stops unless continue_on_failure"
  ;;
verbose)
  lab_env
  head -c 12288 /dev/urandom >"$T/blob"
  cat >"$T/v.lua" <<'LUA'
local kcm = require "kcm"
local p = kcm.playbook { name = "v", hosts = "all" }
p:step("v", function(node)
  node:run({ "systemctl", "is-system-running" }, { ok_codes = { 0, 1 }, env = { SECRET_TOKEN = "hunter2-value" },
                                                 stdin = "stdin-secret-value" })
  node:put(os.getenv("BLOB"), "/tmp/kcm-signals-blob", { mode = "0600" })
end)
return p
LUA
  BLOB=$T/blob run "$KCMRUN" --state-dir "$SD" -v -i "$LABINV" "$T/v.lua"
  expect_rc 0 "-v run"
  for n in "${NODES[@]}"; do
    expect_out "^    $n: run 'systemctl' 'is-system-running'$"
    expect_out "^    $n: put /tmp/kcm-signals-blob \(12 KiB\)$"
  done
  ! grep -q "hunter2-value\|stdin-secret-value" "$T/out" "$T/err" || fail "-v shows an environment value or stdin"
  BLOB=$T/blob run "$KCMRUN" --state-dir "$SD" -i "$LABINV" "$T/v.lua"
  ! grep -q ": run 'systemctl'" "$T/out" || fail "commands shown without -v"
  pass "-v shows each remote command and transfer (env values and stdin never); without -v it does not"
  ;;
logjson)
  lab_env
  cat >"$T/e.lua" <<'LUA'
local kcm = require "kcm"
local p = kcm.playbook { name = "e", hosts = "all" }
p:step("both", { prepare = function(ctx) end }, function(node) end)
return p
LUA
  run "$KCMRUN" --state-dir "$SD" -i "$LABINV" --log-json "$T/log.jsonl" "$T/e.lua"
  expect_rc 0 "--log-json"
  python3 - "$T/log.jsonl" "${NODES[@]}" <<'PY' || fail "--log-json types"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
starts = [e for e in evs if e["event"] == "step_start"]
assert starts and starts[0]["targets"] == ["localhost"] + sys.argv[2:], starts
res = [e for e in evs if e["event"] == "node_result"]
assert len(res) == 1 + len(sys.argv[2:]), res
for e in res:
    assert e["changes"] == [], e
print("ok")
PY
  pass "--log-json: empty lists are [], a step with a prepare part lists localhost and the nodes"
  ;;
tls)
  lab_env
  # a CA that did not sign the apiserver's certificate
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/other-key.pem" -out "$T/other-ca.pem" \
    -days 1 -subj "/CN=other-ca" >/dev/null 2>&1
  cat >"$T/tls.lua" <<'LUA'
local kube = require "kcm.kube"
local c = kube.client { server = os.getenv("KCMRUN_LAB_KUBE_APISERVER"), ca_file = os.getenv("OTHER_CA") }
c:get("/version")
LUA
  t0=$(ms)
  OTHER_CA=$T/other-ca.pem run "$KCMRUN" -v "$T/tls.lua"
  took=$(( $(ms) - t0 ))
  expect_rc 3 "TLS verification failure"
  expect_err "GET https://[^ ]*/version: TLS verification failed: "
  ! grep -qE "retrying|attempts|did not answer" "$T/out" "$T/err" || { cat "$T/out" "$T/err"; fail "a TLS verification failure was retried"; }
  [ "$took" -lt 3000 ] || fail "took $took ms: retried?"
  pass "a TLS verification failure is reported as such and not retried ($took ms)"
  ;;
*) fail "unknown case $1" ;;
esac
