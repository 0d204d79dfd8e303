#!/bin/bash
# Engine core behaviour: parallel fan-out bounded by --forks, failure
# isolation, module overrides, check mode, step selection, exit codes.
set -e
. "$(dirname "$0")/../lib.sh"
F=$(cd "$(dirname "$0")/fixtures" && pwd)
SD="$T/state"

case "${1:?usage: test_engine.sh CASE}" in
forks)
  run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$F/fanout.lua"
  expect_rc 0 "fanout default forks"
  expect_out "answers=64 max_in_flight=64 max_running=64$"
  run "$KCMRUN" --state-dir "$SD" --forks 8 --timeline "$T/t.svg" -i "$F/inv64.lua" "$F/fanout.lua"
  expect_rc 0 "fanout --forks 8"
  expect_out "answers=64 max_in_flight=8 max_running=8$"
  # the timeline draws one bar per node for the step, in waves of 8
  /usr/bin/python3 - "$T/t.svg" <<'PY' || fail "timeline"
import sys, xml.dom.minidom as m
d = m.parse(sys.argv[1])
bars = [r for r in d.getElementsByTagName("rect") if r.getElementsByTagName("title")
        and " call: " in r.getElementsByTagName("title")[0].firstChild.data]
assert len(bars) == 64, len(bars)
xs = sorted(float(r.getAttribute("x")) for r in bars)
waves = len(set(round(x / 20) for x in xs))
assert waves >= 8, "expected 8 waves of 8 nodes, got %d distinct starts" % waves
PY
  pass "64 nodes: in flight = forks (64, 8); every node got its own answer"
  ;;
serial)
  # batches of 2 out of 5: a gate after each (the last too), never two batches at once
  NODES=5 run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$F/serial.lua"
  expect_rc 0 "serial = 2"
  expect_out "^gate 1 after n1,n2 \(running 0\)$"; expect_out "^gate 2 after n3,n4 \(running 0\)$"
  expect_out "^gate 3 after n5 \(running 0\)$"; expect_out "^order n1,n2,n3,n4,n5$"
  # a percentage: 34% of 5 = 2 nodes
  NODES=5 SERIAL=34% run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$F/serial.lua"
  expect_rc 0 "serial = 34%"; expect_out "^gate 1 after n1,n2 "
  # the gate says no after the 2nd batch: n5 is not started, exit 4
  NODES=5 GATE_FAILS=2 run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$F/serial.lua"
  expect_rc 4 "gate stops the step"
  expect_out "the health gate after n3,n4 said no"; expect_out "^  n5 +0 +0 +0 +1 +0$"
  ! grep -q "^gate 3" "$T/out" || fail "a batch ran after the gate said no"
  # max_fail = 0: one failure stops the step before the next batch
  NODES=5 FAIL=n3 run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$F/serial.lua"
  expect_rc 4 "max_fail 0"
  expect_out "FAILED +n3"; expect_out "^  n5 +0 +0 +0 +1 +0$"; expect_out "^order n1,n2,n3,n4$"
  # max_fail = 1 tolerates it
  NODES=5 FAIL=n3 MAX_FAIL=1 run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$F/serial.lua"
  expect_rc 4 "max_fail 1 (n3 still failed)"; expect_out "^order n1,n2,n3,n4,n5$"
  # a bad serial is refused where the step is defined
  NODES=5 SERIAL=lots run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$F/serial.lua"
  expect_rc 3 "bad serial"; expect_err "serial.lua:9: play:step roll: step option serial = \"lots\""
  pass "serial steps: batches of N or P%, gate after every batch, gate failure and max_fail stop the step"
  ;;
isolation)
  NODES=10 run "$KCMRUN" --state-dir "$SD" --log-json "$T/log.jsonl" -i "$F/inv64.lua" "$F/onefails.lua"
  expect_rc 4 "one node fails"
  expect_out "FAILED +n7"
  expect_out "n7 cannot do this"
  expect_out "onefails.lua:6"
  [ "$(grep -cE '^  ok +n[0-9]+ ' "$T/out")" = 18 ] || { cat "$T/out"; fail "expected 9 nodes ok in 2 steps"; }
  expect_out "first error \(work\): .*onefails.lua:6: n7 cannot do this"
  grep '"event":"node_result"' "$T/log.jsonl" | grep '"node":"n7"' | grep -q '"status":"failed"' || fail "json: n7 not failed"
  grep '"node":"n7"' "$T/log.jsonl" | grep -q 'onefails.lua:6: n7 cannot do this' || fail "json: error lacks file:line"
  [ "$(grep '"event":"node_result"' "$T/log.jsonl" | grep -c '"status":"ok"')" = 18 ] || fail "json: expected 18 ok results"
  grep '"event":"run_end"' "$T/log.jsonl" | grep -q '"exit_code":4' || fail "json: run_end exit code"
  pass "10 nodes, one raises: 9 ok, 1 failed, exit 4, error with file:line in recap and JSON"
  ;;
override)
  run "$KCMRUN" "$F/override/play.lua"
  expect_rc 0 override
  expect_out "kcm.exec: from the playbook's folder"
  mkdir -p "$T/lp/kcm" && echo 'return { overridden = "from --lua-path" }' > "$T/lp/kcm/exec.lua"
  run "$KCMRUN" --lua-path "$T/lp" "$F/override/play.lua"
  expect_out "kcm.exec: from --lua-path"
  KCMRUN_LUA_PATH="$T/lp" run "$KCMRUN" "$F/override/play.lua"
  expect_out "kcm.exec: from --lua-path"
  echo 'require "kcm.nosuchmodule"' > "$T/missing.lua"
  run "$KCMRUN" "$T/missing.lua"
  expect_rc 3 "missing module"
  expect_err "module 'kcm.nosuchmodule' not found"
  expect_err "no file '$T/kcm/nosuchmodule.lua'"
  expect_err "no built-in module 'kcm.nosuchmodule'"
  pass "a kcm/<module>.lua in the playbook's folder (or --lua-path, KCMRUN_LUA_PATH) replaces the built-in; a missing module lists the places tried"
  ;;
check)
  mkdir -p "$T/files"
  NODES=3 run "$KCMRUN" --state-dir "$SD" --check -e dir="$T/files" -i "$F/inv64.lua" "$F/checkmode.lua"
  expect_rc 0 "check mode"
  expect_out "changed +n1 .*write $T/files/n1.txt"
  [ -z "$(ls -A "$T/files")" ] || fail "check mode wrote files: $(ls "$T/files")"
  NODES=3 run "$KCMRUN" --state-dir "$SD" -e dir="$T/files" -i "$F/inv64.lua" "$F/checkmode.lua"
  expect_rc 0 "real run"
  [ "$(stat -c %a "$T/files/n2.txt")" = 600 ] || fail "mode not applied"
  NODES=3 run "$KCMRUN" --state-dir "$SD" -e dir="$T/files" -i "$F/inv64.lua" "$F/checkmode.lua"
  expect_out "^  ok +n1 "
  ! grep -qE "^  changed" "$T/out" || fail "second run reported changes"
  pass "--check reports the change and writes nothing; a real run writes 0600; a rerun changes nothing"
  ;;
steps)
  NODES=2 run "$KCMRUN" -i "$F/inv64.lua" --list-steps "$F/steps.lua"
  expect_rc 0 list-steps
  expect_out "^a +once "; expect_out "^per-node +all "
  NODES=2 run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" --only b,d "$F/steps.lua"
  expect_out "ran b"; expect_out "ran d"; ! grep -qE "ran (a|c)|node n" "$T/out" || fail "--only ran other steps"
  NODES=2 run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" --skip c --start-at b -e greeting=hi "$F/steps.lua"
  expect_out "ran b greeting=hi"; expect_out "ran d"; ! grep -qE "ran (a|c)" "$T/out" || fail "--skip/--start-at"
  NODES=3 run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" --only per-node --limit n2 "$F/steps.lua"
  expect_out "node n2"; ! grep -qE "node n(1|3)" "$T/out" || fail "--limit"
  NODES=2 run "$KCMRUN" -i "$F/inv64.lua" --only nosuch "$F/steps.lua"
  expect_rc 2 "unknown step"; expect_err "no step named 'nosuch'"
  run "$KCMRUN" --bogus "$F/steps.lua"
  expect_rc 2 "unknown option"; expect_err "unknown option --bogus"
  run "$KCMRUN" "$F/syntax.lua"
  expect_rc 3 "syntax error"; expect_err "syntax.lua:4: .*expected"
  printf 'return { nodes = { { name = "a" }\n' > "$T/badinv.lua"
  run "$KCMRUN" -i "$T/badinv.lua" "$F/steps.lua"
  expect_rc 2 "inventory syntax"; expect_err "badinv.lua:[0-9]+:"
  printf 'return { nodes = { { name = "a;b" } } }\n' > "$T/badinv2.lua"
  run "$KCMRUN" -i "$T/badinv2.lua" "$F/steps.lua"
  expect_rc 2 "inventory value"; expect_err "is not a valid node name"
  run "$KCMRUN" --help
  expect_rc 0 help; expect_out "exit codes"
  pass "--list-steps, --only, --skip, --start-at, --limit, -e; usage/syntax/inventory errors exit 2/3 with file:line"
  ;;
lock)
  # the lock of a node is on the node (state_locks, state_folders, faults_lock
  # test it on the lab): a run that never reaches a node takes none, so two
  # such runs from one state folder both go on; --lock-wait takes seconds
  cat > "$T/slow.lua" <<'LUA'
local kcm = require "kcm"
local p = kcm.playbook { name = "slow" }
p:step("wait", { once = true }, function() require("kcm.task").sleep(2) end)
p:step("touch", function(node) end)
return p
LUA
  NODES=2 "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$T/slow.lua" >/dev/null 2>&1 &
  first=$!
  sleep 0.5
  run "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$T/slow.lua"
  expect_rc 0 "a second run that reaches no node"
  wait $first || fail "the first run failed"
  run "$KCMRUN" --state-dir "$SD" --lock-wait soon -i "$F/inv64.lua" "$T/slow.lua"
  expect_rc 2 "--lock-wait soon"
  expect_err "--lock-wait expects whole seconds \(0 or more\), got 'soon'"
  pass "no node reached, no lock taken (two runs go on); --lock-wait wants whole seconds"
  ;;
coroutine)
  run "$KCMRUN" "$F/usercoroutine.lua"
  expect_rc 0 "user coroutine"
  expect_out "^hi"; expect_out "done"; expect_out "^x$"
  pass "a native call inside a user's own coroutine runs inline; the scheduler's still run on the pool"
  ;;
signal)
  cat > "$T/long.lua" <<'LUA'
local kcm = require "kcm"
local exec = require "kcm.exec"
local p = kcm.playbook { name = "long", hosts = "all" }
p:step("one", function(node) exec.run({ "sleep", "1" }) end)
p:step("two", function(node) print("two ran on " .. node.name) end)
return p
LUA
  NODES=3 "$KCMRUN" --state-dir "$SD" -i "$F/inv64.lua" "$T/long.lua" >"$T/out" 2>&1 &
  pid=$!
  sleep 0.5; kill -INT $pid; set +e; wait $pid; RC=$?; set -e
  expect_rc 130 "SIGINT"
  expect_out "RECAP"; ! grep -q "two ran" "$T/out" || fail "new work started after SIGINT"
  pass "SIGINT: in-flight work finishes, nothing new starts, recap printed, exit 130"
  ;;
*)
  fail "unknown case '$1'"
  ;;
esac
