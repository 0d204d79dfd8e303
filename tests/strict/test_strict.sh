#!/bin/bash
# Hostile inputs of issue 25's "silent mistakes": each must be refused with
# one line naming the file:line or option, exit 2 (configuration) or 3
# (playbook). Usage: test_strict.sh CASE
set -eu
. "$(dirname "$0")/../lib.sh"
case_name=${1:?case}

# one_line WHAT: stderr is exactly one line, no traceback or internal error
one_line() {
  local n; n=$(wc -l <"$T/err")
  [ "$n" = 1 ] || { cat "$T/err"; fail "$1: stderr has $n lines, expected one"; }
  ! grep -qE "traceback|internal error|builtin:|table: 0x" "$T/err" || { cat "$T/err"; fail "$1: traceback or internal error"; }
}

# a node nothing listens on: every refusal below comes before a connection
printf 'return { nodes = { { name = "n1", host = "127.0.0.1", port = 1 } } }\n' >"$T/inv.lua"
K() { "$KCMRUN" --state-dir "$T/st" --no-lock "$@"; }

# play BODY: a playbook on every node whose one step is BODY (node, ctx)
play() {
  printf 'local kcm = require "kcm"\nlocal play = kcm.playbook { name = "x", hosts = "all" }\nplay:step("a", function(node, ctx)\n  %s\nend)\nreturn play\n' "$1" >"$T/p.lua"
}

case "$case_name" in
keys)
  printf 'local kcm = require "kcm"\nlocal play = kcm.playbook { name = "x", host = "masters" }\nplay:step("a", function() end)\nreturn play\n' >"$T/pb.lua"
  run K -i "$T/inv.lua" "$T/pb.lua"
  expect_rc 3 "kcm.playbook host="
  expect_err "pb.lua:2: unknown option 'host' for kcm.playbook \(did you mean 'hosts'\? known: name, hosts, vars\)"
  one_line "kcm.playbook host="
  for c in "put|node:put({ content = \"k\" }, \"/tmp/k\", { mdoe = \"0600\" })|mdoe|mode" \
           "run|node:run({ \"true\" }, { ok_code = { 0, 1 } })|ok_code|ok_codes" \
           "get|node:get(\"/etc/hostname\", { becom = true })|becom|become" \
           "mkdir|node:mkdir(\"/tmp/d\", { mod = \"0700\" })|mod|mode" \
           "remove|node:remove(\"/tmp/d\", { recursve = true })|recursve|recursive"; do
    IFS='|' read -r op body bad good <<<"$c"
    play "$body"
    run K -i "$T/inv.lua" "$T/p.lua"
    expect_rc 3 "node:$op $bad"
    expect_err "p.lua:4: unknown option '$bad' for node:$op \(did you mean '$good'\?"
    one_line "node:$op $bad"
  done
  play 'require("kcm.task").retry { attempt = 3 } (function() return true end)'
  run K -i "$T/inv.lua" "$T/p.lua"
  expect_rc 3 "task.retry attempt="
  expect_err "p.lua:4: unknown option 'attempt' for task.retry \(did you mean 'attempts'\?"
  one_line "task.retry"
  printf 'local c = require("kcm.component").new { name = "c", template = "t.in", binary_vars = "x_binary" }\n' >"$T/comp.lua"
  run K "$T/comp.lua"
  expect_rc 3 "component.new binary_vars="
  expect_err "comp.lua:1: unknown option 'binary_vars' for component.new \(did you mean 'binary_var'\?"
  one_line "component.new"
  printf 'local c = require("kcm.component").new { name = "c", template = "t.in", cert = { CN = "c", o = "k8s" } }\n' >"$T/cert.lua"
  run K "$T/cert.lua"
  expect_rc 3 "component.new cert.o="
  expect_err "cert.lua:1: unknown option 'o' for component.new cert \(did you mean 'O'\?"
  one_line "component.new cert"
  # a key nothing is close to: no suggestion, the known ones listed
  play 'node:put({ content = "k" }, "/tmp/k", { colour = "blue" })'
  run K -i "$T/inv.lua" "$T/p.lua"
  expect_rc 3 "put colour="
  expect_err "p.lua:4: unknown option 'colour' for node:put \(known: mode, owner"
  pass "unknown keys of kcm.playbook, node:put/run/get/mkdir/remove, task.retry and component.new: exit 3 at the line, closest known key"
  ;;
*) fail "unknown case $case_name" ;;
esac
