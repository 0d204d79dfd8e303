#!/bin/bash
# Issue 16 points 4-5 and the state key, without a lab:
#   test_local.sh identity|members|cmdline|hygiene
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
hygiene)
  # issue 24 point 6: a state folder others may write, or another user owns,
  # is refused with one line saying what to fix; a symlinked state file is
  # never read; a non-root run uses its own folder and knows who it is
  inv=$F/members-inv.lua
  mkdir -p "$T/open" && chmod 0777 "$T/open"
  run "$KCMRUN" --state-dir "$T/open" -i "$inv" "$F/where.lua"
  expect_rc 2 "a 0777 state folder"
  expect_err "state folder $T/open: may be written by others \(mode 0777\): chmod 700 $T/open$"
  [ "$(grep -c . "$T/err")" = 1 ] || { cat "$T/err"; fail "more than one line for a 0777 state folder"; }
  mkdir -p "$T/theirs" && chmod 0700 "$T/theirs" && chown nobody "$T/theirs"
  run "$KCMRUN" --state-dir "$T/theirs" -i "$inv" "$F/where.lua"
  expect_rc 2 "a state folder nobody owns"
  expect_err "state folder $T/theirs: is owned by uid [0-9]+, not by you \(uid 0\): chown 0 $T/theirs, or give your own with --state-dir DIR$"
  ln -s "$T/open" "$T/link"
  run "$KCMRUN" --state-dir "$T/link" -i "$inv" "$F/where.lua"
  expect_rc 2 "a symlinked state folder"
  expect_err "state folder $T/link: is a symbolic link"
  run "$KCMRUN" --state-dir "$T/mine" -i "$inv" "$F/where.lua"
  expect_rc 0 "a fresh state folder"
  [ "$(stat -c %a "$T/mine")" = 700 ] || fail "a new state folder is not 0700"
  run "$KCMRUN" "$F/statefile.lua" "$T"
  expect_rc 0 statefile; expect_out "^statefile ok$"
  # as nobody (hardening makes /proc/self root-owned in some containers: the
  # uid comes from getuid)
  mkdir -p "$T/home" && chown nobody "$T/home" && chmod 755 "$T"
  run setpriv --reuid nobody --regid nogroup --clear-groups env HOME="$T/home" "$KCMRUN" -i "$inv" "$F/where.lua"
  expect_rc 0 "as nobody"
  expect_out "^state_dir $T/home/.local/state/kcmrun$"
  expect_out "^user nobody$"
  pass "0777, foreign-owned and symlinked state folders refused with one line each; a symlinked state file is not read; nobody uses ~/.local/state/kcmrun and is named nobody"
  ;;
*) fail "unknown case $1" ;;
esac
