#!/bin/bash
# Driver for the ssh tests.
#   run.sh local CASE        test_local.lua case against the throwaway sshd (KCM_SSH_DIR)
#   run.sh check             --check --diff against the throwaway sshd
#   run.sh onecon            a multi-step playbook opens exactly one connection (sshd log)
#   run.sh interrupt         SIGKILL during a large put: old file intact, no partial target
#   run.sh lab               test_lab.lua: 3 lab nodes in parallel
#   run.sh lab_interrupt     SIGKILL during a large put to a lab node
#   run.sh lab_onecon        one connection per lab node for a multi-step run (journal)
#   run.sh lab_unreachable   a powered-off lab node is reported unreachable; the others succeed
set -e
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

local_env() {
  : "${KCM_SSH_DIR:?}"
  export KCM_SSH_INV=$KCM_SSH_DIR/inventory.lua
}
lab_env() {
  : "${KCMRUN_LAB_DIR:?}"
  export KCM_SSH_INV=$KCMRUN_LAB_DIR/inventory.lua
  [ -f "$KCM_SSH_INV" ] || fail "no lab inventory at $KCM_SSH_INV"
}
accepted() { grep -c "Accepted publickey" "$1" || true; }

case "$1" in
local)
  local_env
  run env KCM_SSH_CASE="$2" "$KCMRUN" "$HERE/test_local.lua"
  expect_rc 0 "test_local $2"
  expect_out "^ok: $2$"
  # nothing on stderr: libssh's own logging stays off (even with ssh_config LogLevel)
  [ ! -s "$T/err" ] || { cat "$T/err"; fail "stderr not empty"; }
  pass "$2"
  ;;
agent)
  local_env
  eval "$(ssh-agent -s)" >/dev/null
  trap 'kill $SSH_AGENT_PID 2>/dev/null; rm -rf "$T"' EXIT
  ssh-add -q "$KCM_SSH_DIR/client_key" 2>/dev/null
  mkdir -p "$T/home"
  run env HOME="$T/home" KCM_SSH_CASE=agent "$KCMRUN" "$HERE/test_local.lua"
  expect_rc 0 "agent"
  expect_out "^ok: agent$"
  # without the agent the same node fails, naming what it tried
  run env -u SSH_AUTH_SOCK HOME="$T/home" KCM_SSH_CASE=agent "$KCMRUN" "$HERE/test_local.lua"
  expect_rc 3 "no agent"
  expect_err "authentication failed for root@"
  expect_err "ssh-agent \(not available"
  pass "ssh-agent auth (and its absence named in the error)"
  ;;
check)
  local_env
  run "$KCMRUN" --check --diff "$HERE/test_check.lua"
  expect_rc 0 "check mode"
  expect_out "ok: check mode and diff"
  pass "check/diff"
  ;;
onecon)
  local_env
  log=$KCM_SSH_DIR/sshd.log
  before=$(accepted "$log")
  run env KCM_SSH_REMOTE="$T/remote" "$KCMRUN" --no-lock -i "$KCM_SSH_INV" "$HERE/multistep.lua"
  expect_rc 0 "multistep playbook"
  after=$(accepted "$log")
  [ $((after - before)) = 1 ] || fail "expected 1 ssh login for the whole run, sshd logged $((after - before))"
  [ "$(wc -l < "$T/remote/conn-local1")" = 4 ] || fail "expected 4 steps recorded"
  [ "$(cut -d' ' -f2- "$T/remote/conn-local1" | sort -u | wc -l)" = 1 ] || { cat "$T/remote/conn-local1"; fail "steps used different connections"; }
  pass "4 steps, 1 login in sshd's log, one \$SSH_CONNECTION"
  ;;
interrupt)
  local_env
  R=$T/remote; mkdir -p "$R"
  printf 'old content\n' > "$R/target"
  oldsum=$(sha256sum < "$R/target")
  head -c 400000000 /dev/urandom > "$T/big"
  cat > "$T/put.lua" <<LUA
local T = require "sshtest"
local n = T.node(T.inventory())
-- only a run that holds the node's lock removes other runs' temp files
assert(n:lock(0, "ssh test put"), "the node's lock is held")
n:put("$T/big", "$R/target", { mode = "0644" })
print("put finished")
LUA
  cp "$HERE/sshtest.lua" "$T/"
  "$KCMRUN" "$T/put.lua" > "$T/out" 2>&1 &
  pid=$!
  # wait until the transfer is under way: a temp file next to the target
  for _ in $(seq 1 400); do
    tmpf=$(ls -A "$R" | grep '\.kcm-.*\.tmp$' || true)
    [ -n "$tmpf" ] && [ "$(stat -c %s "$R/$tmpf" 2>/dev/null || echo 0)" -gt 1000000 ] && break
    sleep 0.05
  done
  [ -n "$tmpf" ] || { kill -9 $pid; fail "transfer never started"; }
  kill -9 $pid
  wait $pid 2>/dev/null || true
  grep -q "put finished" "$T/out" && fail "put finished before the kill (file too small?)"
  sleep 0.5
  [ "$(sha256sum < "$R/target")" = "$oldsum" ] || fail "target changed by an interrupted put"
  [ "$(ls -A "$R" | grep -vc '\.kcm-.*\.tmp$')" = 1 ] || { ls -la "$R"; fail "unexpected files"; }
  # the next put succeeds and removes the stale temp file
  run "$KCMRUN" "$T/put.lua"
  expect_rc 0 "put after interruption"
  cmp -s "$T/big" "$R/target" || fail "target differs after the second put"
  [ "$(ls -A "$R")" = target ] || { ls -la "$R"; fail "stale temp file left"; }
  pass "killed put: old file intact, no partial target; next put replaces it and cleans up"
  ;;
silent)
  # a TCP listener that never speaks SSH: unreachable within connect_timeout
  local_env
  /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' > "$T/port" &
  lpid=$!
  trap 'kill $lpid 2>/dev/null; rm -rf "$T"' EXIT
  for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
  port=$(cat "$T/port")
  cp "$HERE/sshtest.lua" "$T/"
  cat > "$T/silent.lua" <<LUA
local T = require "sshtest"
local n = T.node(T.inventory(), 1, { connect_timeout = 2 }, { name = "silent", port = $port })
local err = T.raises(n.run, n, "true")
assert(require("kcm.error").is(err, "unreachable"), "not an unreachable error: " .. tostring(err))
print(tostring(err))
LUA
  start=$(date +%s%N)
  run "$KCMRUN" "$T/silent.lua"
  took=$(( ($(date +%s%N) - start) / 1000000 ))
  expect_rc 0 "silent listener"
  expect_out "^silent \(127\.0\.0\.1:$port\): unreachable: .*[Tt]imeout"
  # connect_timeout 2 s; bound generous for a loaded machine
  [ "$took" -lt 10000 ] || fail "took ${took}ms with connect_timeout=2"
  pass "silent server: unreachable, reason timeout, after ${took}ms (connect_timeout 2 s)"
  ;;
lab)
  lab_env
  run "$KCMRUN" "$HERE/test_lab.lua"
  expect_rc 0 "test_lab"
  expect_out "^ok: lab$"
  pass "3 lab nodes"
  ;;
lab_interrupt)
  lab_env
  R=/tmp/kcm-ssh-interrupt
  ssh1() { "$KCMRUN" lab ssh node1 "$@"; }
  ssh1 "rm -rf $R && mkdir -p $R && printf 'old content\n' > $R/target"
  head -c 400000000 /dev/urandom > "$T/big"
  cp "$HERE/sshtest.lua" "$T/"
  cat > "$T/put.lua" <<LUA
local T = require "sshtest"
local n = T.node(T.inventory(), 1)
-- only a run that holds the node's lock removes other runs' temp files
assert(n:lock(0, "ssh test put"), "the node's lock is held")
n:put("$T/big", "$R/target", { mode = "0644" })
print("put finished")
LUA
  "$KCMRUN" "$T/put.lua" > "$T/putout" 2>&1 &
  pid=$!
  started=
  for _ in $(seq 1 100); do
    sz=$(ssh1 "find $R -name '.target.kcm-*.tmp' -printf '%s\n'" | head -1)
    [ -n "$sz" ] && [ "$sz" -gt 1000000 ] && { started=1; break; }
    sleep 0.1
  done
  kill -9 $pid; wait $pid 2>/dev/null || true
  [ -n "$started" ] || fail "transfer never seen under way"
  grep -q "put finished" "$T/putout" && fail "put finished before the kill"
  [ "$(ssh1 cat $R/target)" = "old content" ] || fail "target changed by an interrupted put"
  [ "$(ssh1 "ls -A $R" | grep -vc '\.kcm-.*\.tmp$')" = 1 ] || { ssh1 "ls -la $R"; fail "unexpected files"; }
  run "$KCMRUN" "$T/put.lua"
  expect_rc 0 "put after interruption"
  [ "$(ssh1 sha256sum $R/target | cut -d' ' -f1)" = "$(sha256sum "$T/big" | cut -d' ' -f1)" ] || fail "target differs after the second put"
  [ "$(ssh1 "ls -A $R")" = target ] || { ssh1 "ls -la $R"; fail "stale temp file left"; }
  ssh1 "rm -rf $R"
  pass "lab: killed put leaves the old file and no partial target; next put replaces it and cleans up"
  ;;
lab_onecon)
  lab_env
  # cursor of each node's journal before the run (this login is before it)
  for i in 1 2 3; do
    "$KCMRUN" lab ssh node$i journalctl -u ssh -n 0 --show-cursor -q | sed -n 's/^-- cursor: //p' > "$T/cur$i"
    [ -s "$T/cur$i" ] || fail "node$i: no journal cursor"
  done
  run env KCM_SSH_REMOTE=/tmp/kcm-ssh-multistep "$KCMRUN" --no-lock -i "$KCM_SSH_INV" "$HERE/multistep.lua"
  expect_rc 0 "multistep playbook on the lab"
  for i in 1 2 3; do
    # the cursor holds ';': quote it for the remote shell
    n=$("$KCMRUN" lab ssh node$i "journalctl -q -u ssh --after-cursor '$(cat "$T/cur$i")'" | grep -c "Accepted publickey" || true)
    # the run's login + the login of this very check
    [ "$n" = 2 ] || fail "node$i: expected 1 login for the run (+1 for this check), journal has $n"
    c=$("$KCMRUN" lab ssh node$i cat /tmp/kcm-ssh-multistep/conn-node$i | cut -d' ' -f2- | sort -u | wc -l)
    [ "$c" = 1 ] || fail "node$i: steps used $c connections"
  done
  pass "4 steps on 3 nodes: one login per node in each node's journal"
  ;;
lab_unreachable)
  lab_env
  trap '"$KCMRUN" lab start node2 >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
  "$KCMRUN" lab stop node2 >/dev/null
  start=$(date +%s)
  run env KCM_SSH_REMOTE=/tmp/kcm-ssh-multistep "$KCMRUN" --no-lock -i "$KCM_SSH_INV" "$HERE/multistep.lua"
  took=$(( $(date +%s) - start ))
  expect_rc 4 "run with node2 powered off"
  addr=$(sed -n 's/.*name = "node2", host = "\([^"]*\)".*/\1/p' "$KCM_SSH_INV")
  expect_out "node2 \($addr:22\): unreachable: "
  # recap columns: ok changed failed skipped unreachable
  grep -E "^ +node1 +[0-9]+ +[0-9]+ +0 +0 +0$" "$T/out" >/dev/null || { cat "$T/out"; fail "node1 did not succeed"; }
  grep -E "^ +node3 +[0-9]+ +[0-9]+ +0 +0 +0$" "$T/out" >/dev/null || { cat "$T/out"; fail "node3 did not succeed"; }
  grep -E "^ +node2 +0 +0 +0 +0 +1$" "$T/out" >/dev/null || { cat "$T/out"; fail "node2 not unreachable"; }
  # connect_timeout is 5 s in the lab inventory; generous bound for a slow machine
  [ "$took" -lt 30 ] || fail "run took ${took}s with one node down"
  pass "node2 off: unreachable with address and reason (${took}s), node1/node3 ok, exit 4"
  ;;
*) fail "unknown case $1" ;;
esac
