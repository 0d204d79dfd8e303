#!/bin/bash
# Files from the current folder and password files (issue 25): code found
# by name (./inventory.lua, ./playbooks/NAME.lua) or given (-i FILE, a
# playbook path) follows the module rule, owned by root or you and writable
# by nobody else; become_password_file is yours and 0600/0400;
# become_password_env never reaches a local child process.
#   code     a nobody-owned 0666 ./inventory.lua, ./playbooks/NAME.lua, -i FILE, a playbook path
#   secret   become_password_file 0644 / owned by nobody; become_password_env not inherited
set -e
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CASE=${1:?usage: test_localfiles.sh CASE}

write_play() {
  cat >"$1" <<'LUA'
local kcm = require "kcm"
local play = kcm.playbook { name = "t", hosts = "all" }
play:step("s", { once = true }, function(ctx) print("step ran") end)
play:step("n", function(node) print("node step ran") end)
return play
LUA
}
write_inv() { printf 'return { nodes = { { name = "n1", host = "127.0.0.1", port = 1 } } }\n' >"$1"; }

case "$CASE" in
code)
  mkdir -p "$T/cwd/playbooks" && cd "$T/cwd"
  write_play playbooks/p.lua && write_inv inventory.lua
  chmod 0644 playbooks/p.lua inventory.lua
  # the good shape runs (the node 127.0.0.1:1 is then unreachable)
  run "$KCMRUN" p
  expect_out "step ran"
  ! grep -q refusing "$T/err" || { cat "$T/err"; fail "a root-owned 0644 inventory was refused"; }
  # a nobody-owned 0666 ./inventory.lua (the audit's case)
  chown nobody inventory.lua && chmod 0666 inventory.lua
  run "$KCMRUN" p
  [ "$RC" = 2 ] || [ "$RC" = 3 ] || { cat "$T/out" "$T/err"; fail "a nobody-owned 0666 ./inventory.lua: exit $RC"; }
  expect_err "refusing to run inventory $T/cwd/inventory.lua: $T/cwd/inventory.lua is owned by uid [0-9]+, neither root nor you"
  [ "$(grep -c . "$T/err")" = 1 ] || { cat "$T/err"; fail "more than one line"; }
  ! grep -q "step ran" "$T/out" || fail "the step ran"
  # owned by us but group-writable, found by name
  chown root inventory.lua && chmod 0664 inventory.lua
  run "$KCMRUN" p
  expect_err "inventory.lua is group-writable \\(mode 0664\\); chmod go-w it"
  chmod 0644 inventory.lua
  # ./playbooks/NAME.lua world-writable, and the same file given by path
  chmod 0646 playbooks/p.lua
  for arg in p playbooks/p.lua "$T/cwd/playbooks/p.lua"; do
    run "$KCMRUN" "$arg"
    expect_rc 2 "world-writable playbook $arg"
    ! grep -q "step ran" "$T/out" || fail "the playbook ran"
    expect_err "refusing to run playbook .*playbooks/p.lua: .*playbooks/p.lua is world-writable \\(mode 0646\\)"
  done
  chmod 0644 playbooks/p.lua
  # an explicit -i FILE gets the check too
  write_inv "$T/other-inv.lua" && chown nobody "$T/other-inv.lua"
  run "$KCMRUN" -i "$T/other-inv.lua" p
  expect_err "refusing to run inventory $T/other-inv.lua: .* neither root nor you"
  pass "./inventory.lua (nobody 0666, 0664), ./playbooks/p.lua 0646 (by name and path), -i FILE owned by nobody: one-line refusals"
  ;;
secret)
  printf 'pw-secret-1234\n' >"$T/pw"
  cat >"$T/spec.lua" <<'LUA'
-- node_spec for an inventory with become_password_*; prints what a local
-- child sees of the variable, or the refusal.
local inventory = require "kcm.inventory"
local exec = require "kcm.native.exec"
local inv = inventory.load(arg and arg[1] or os.getenv("INV"))
local ok, err = pcall(inventory.node_spec, inv, inv.nodes[1], {}, {})
if not ok then io.stderr:write(tostring(type(err) == "table" and err.message or err), "\n") os.exit(2) end
local name = "KCM_T_BECOME_PW"
local p = io.popen("env")
local via_popen = p:read("a"):find(name, 1, true) ~= nil
p:close()
local r = exec.run({ argv = { "env" } })
local via_exec = r.stdout:find(name, 1, true) ~= nil
print(string.format("popen=%s exec=%s getenv=%s kept=%s", via_popen, via_exec, tostring(os.getenv(name)),
                    tostring(exec.take_env(name))))
LUA
  inv_with() { printf 'return { ssh = { become = true, %s }, nodes = { { name = "n1", host = "127.0.0.1" } } }\n' "$1" >"$T/inv.lua"; }
  inv_with "become_password_file = \"$T/pw\""
  chmod 0644 "$T/pw"
  INV=$T/inv.lua run "$KCMRUN" "$T/spec.lua"
  expect_rc 2 "become_password_file 0644"
  expect_err "^n1: become_password_file $T/pw has mode 0644, must be 0600 or 0400; chmod 600 it \\(from ssh table\\)$"
  chmod 0600 "$T/pw" && chown nobody "$T/pw"
  INV=$T/inv.lua run "$KCMRUN" "$T/spec.lua"
  expect_rc 2 "become_password_file owned by nobody"
  expect_err "become_password_file $T/pw is owned by uid [0-9]+, not by you"
  chown root "$T/pw"
  for m in 0600 0400; do
    chmod $m "$T/pw"
    INV=$T/inv.lua run "$KCMRUN" "$T/spec.lua"
    expect_rc 0 "become_password_file $m"
  done
  inv_with 'become_password_env = "KCM_T_BECOME_PW"'
  KCM_T_BECOME_PW=pw-secret-1234 INV=$T/inv.lua run "$KCMRUN" "$T/spec.lua"
  expect_rc 0 "become_password_env"
  expect_out "^popen=false exec=false getenv=nil kept=pw-secret-1234$"
  pass "become_password_file 0644 / not ours refused in one line, 0600/0400 taken; become_password_env reaches no local child"
  ;;
*) fail "unknown case $CASE" ;;
esac
