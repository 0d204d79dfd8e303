#!/bin/bash
# Issue 16 points 4-5 and the state key, without a lab:
#   test_local.sh identity|members|cmdline
set -e
. "$(dirname "$0")/../lib.sh"
F=$(cd "$(dirname "$0")/fixtures" && pwd)
case "$1" in
identity)
  run "$KCMRUN" "$F/identity.lua" "$T"
  expect_rc 0 identity; expect_out "^identity ok$"
  pass "state key: an ssh_config alias, an address and explicit values of one machine give one identity"
  ;;
cmdline)
  run "$KCMRUN" "$F/cmdline.lua"
  expect_rc 0 cmdline; expect_out "^cmdline ok$"
  pass "the command line other runs are shown keeps -e names, not values"
  ;;
members)
  run "$KCMRUN" --state-dir "$T/sd" -v -i "$F/members-inv.lua" --limit n2 "$F/members.lua"
  expect_rc 0 "--limit n2"
  expect_out "^members n1=127.0.0.1,n2=127.0.0.2,n3=127.0.0.3$"
  expect_out "^targets n2$"
  expect_out "^control level=group$"
  expect_out "^node n2 level=node other=d$"
  ! grep -q "^node n[13]" "$T/out" || fail "--limit n2 ran on another node"
  expect_out "inventory keys nothing read \(.*members-inv.lua\): vars.unused_key$"
  run "$KCMRUN" --state-dir "$T/sd" -i "$F/members-inv.lua" "$F/members.lua"
  expect_rc 0 "all"
  expect_out "^node n1 level=group other=odd$"
  expect_out "^node n2 level=node other=d$"
  expect_out "^node n3 level=group other=odd$"
  run "$KCMRUN" --state-dir "$T/sd" -i "$F/members-inv.lua" -e level=cli "$F/members.lua"
  expect_out "^node n2 level=cli other=d$"; expect_out "^control level=cli$"
  printf 'return { nodes = { "a" }, group_vars = { nope = {} } }\n' >"$T/bad.lua"
  run "$KCMRUN" -i "$T/bad.lua" "$F/members.lua"
  expect_rc 2 "group_vars of an unknown group"; expect_err "bad.lua: group_vars.nope: no group named"
  pass "members ignore --limit, targets follow it; -e > node vars > group vars (later group wins) > inventory vars > defaults; unread keys under -v"
  ;;
*) fail "unknown case $1" ;;
esac
