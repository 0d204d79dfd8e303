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
bool)
  # the step shows what the node was built with; nothing is connected to
  play 'print("become=" .. tostring(node.become))'
  for v in yes YES On 1 true; do
    run K -q -i "$T/inv.lua" -e become=$v "$T/p.lua"
    expect_rc 0 "-e become=$v"; expect_out "^become=true$"
  done
  for v in no NO off 0 False; do
    run K -q -i "$T/inv.lua" -e become=$v "$T/p.lua"
    expect_rc 0 "-e become=$v"; expect_out "^become=false$"
  done
  for v in maybe "" y 2; do
    run K -q -i "$T/inv.lua" -e "become=$v" "$T/p.lua"
    expect_rc 2 "-e become=$v"
    expect_err "^kcmrun: -e become: \"$v\" is not a boolean \(use true/false, yes/no, on/off or 1/0\)$"
    one_line "-e become=$v"
  done
  printf '#!/bin/bash\nNODE_IPS=(127.0.0.1)\nKCMRUN_BECOME=perhaps\n' >"$T/environment.sh"
  run K -i "$T/environment.sh" "$T/p.lua"
  expect_rc 2 "KCMRUN_BECOME=perhaps"
  expect_err "^kcmrun: .*environment.sh:3: KCMRUN_BECOME: \"perhaps\" is not a boolean"
  one_line "KCMRUN_BECOME=perhaps"
  printf '#!/bin/bash\nNODE_IPS=(127.0.0.1)\nKCMRUN_BECOME=Yes\n' >"$T/environment.sh"
  run K -q -i "$T/environment.sh" "$T/p.lua"
  expect_rc 0 "KCMRUN_BECOME=Yes"; expect_out "^become=true$"
  # component.asked reads a boolean too: -e ha_test=maybe is refused
  printf 'local c = require "kcm.component"\nlocal kcm = require "kcm"\nlocal play = kcm.playbook { name = "x" }\nplay:step("a", { once = true, optional = true, when = c.asked("ha_test") }, function() print("ran") end)\nreturn play\n' >"$T/asked.lua"
  run K -q -e ha_test=on "$T/asked.lua"
  expect_rc 0 "-e ha_test=on"; expect_out "^ran$"
  run K -q -e ha_test=sure "$T/asked.lua"
  expect_rc 2 "-e ha_test=sure"
  expect_err "-e ha_test: \"sure\" is not a boolean"
  pass "booleans from -e and environment.sh: true/false/yes/no/on/off/1/0 in any case, anything else exit 2"
  ;;
port)
  play 'print("port=" .. tostring(node.port))'
  for p in 0 65536 -1 22x 99999999999999999999 ""; do
    run K -q -i "$T/inv.lua" -e "ssh_port=$p" "$T/p.lua"
    expect_rc 2 "-e ssh_port=$p"
    expect_err "^kcmrun: -e ssh_port: \"$p\" is not a TCP port \(1-65535\)$"
    one_line "-e ssh_port=$p"
  done
  for p in 1 65535; do
    run K -q -i "$T/inv.lua" -e "ssh_port=$p" "$T/p.lua"
    expect_rc 0 "-e ssh_port=$p"; expect_out "^port=$p$"
  done
  # an ssh table's port: the layer is named
  printf 'return { ssh = { port = 0 }, nodes = { { name = "n1", host = "127.0.0.1" } } }\n' >"$T/inv0.lua"
  run K -q -i "$T/inv0.lua" "$T/p.lua"
  expect_rc 2 "ssh.port = 0"
  expect_err "^kcmrun: n1: port \(ssh table\): \"0\" is not a TCP port"
  one_line "ssh.port = 0"
  pass "ports 1-65535 from -e ssh_port and the ssh tables; 0, 65536, -1, 22x refused, exit 2"
  ;;
outpath)
  # an output that cannot be written is refused before any step runs
  play 'print("step ran")'
  mkdir "$T/adir"
  for c in "--timeline|$T/nonexistent/x.svg|No such file or directory" "--timeline|$T/adir|Is a directory" \
           "--log-json|$T/nonexistent/x.json|No such file or directory"; do
    IFS='|' read -r opt path why <<<"$c"
    run K -i "$T/inv.lua" "$opt" "$path" "$T/p.lua"
    expect_rc 2 "$opt $path"
    expect_err "^kcmrun: $opt: .*$path: $why$"
    one_line "$opt $path"
    ! grep -q "step ran" "$T/out" || fail "$opt $path: the step ran before the refusal"
  done
  run K -q -i "$T/inv.lua" --timeline "$T/t.svg" "$T/p.lua"
  expect_rc 0 "--timeline t.svg"
  expect_file "$T/t.svg" "kcmrun timeline: "
  pass "--timeline and --log-json paths that cannot be written: exit 2 before the run"
  ;;
basicauth)
  cat >"$T/kc.yaml" <<'YAML'
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:9
users:
- name: admin
  user:
    username: admin
    password: hunter2-not-shown
contexts:
- name: x
  context: {cluster: c, user: admin}
current-context: x
YAML
  printf 'local kcm = require "kcm"\nlocal play = kcm.playbook { name = "x" }\nplay:step("a", { once = true }, function(ctx)\n  require("kcm.kube").client { kubeconfig = ctx.vars.kc }\n  print("no refusal")\nend)\nreturn play\n' >"$T/kc.lua"
  run K -e kc="$T/kc.yaml" "$T/kc.lua"
  expect_rc 3 "kubeconfig with username/password"
  expect_err "^kcmrun: playbook error in step 'a': .*/kc.yaml:11: user 'admin' has username/password: basic authentication is gone from Kubernetes"
  one_line "basic auth"
  ! grep -q "no refusal" "$T/out" || fail "the client was made"
  ! grep -q "hunter2" "$T/out" "$T/err" || fail "the password was shown"
  pass "a kubeconfig user with username/password is refused at its line, exit 3"
  ;;
errobj)
  # __tostring that raises, in a step; one that returns no string, while loading
  printf 'local kcm = require "kcm"\nlocal play = kcm.playbook { name = "x" }\nplay:step("a", { once = true }, function(ctx)\n  error(setmetatable({ code = 42, reason = "Conflict" }, { __tostring = function() error("tostring broke") end }))\nend)\nreturn play\n' >"$T/eo.lua"
  run K "$T/eo.lua"
  expect_rc 3 "__tostring raises"
  expect_err "^kcmrun: playbook error in step 'a': error object \{ code = 42, reason = \"Conflict\" \} \(its __tostring failed: .*eo.lua:4: tostring broke\) \(at .*eo.lua:4\)$"
  one_line "__tostring raises"
  printf 'error(setmetatable({ code = 7, [1] = "x" }, { __tostring = function() return {} end, __pairs = function() error("no") end }))\n' >"$T/eo2.lua"
  run K "$T/eo2.lua"
  expect_rc 3 "__tostring returns a table"
  expect_err "^kcmrun: error object \\{ code = 7, \\[1\\] = \"x\" \\} \\(its __tostring failed: '__tostring' must return a string\\) \\(at .*eo2.lua:1\\)$"
  one_line "__tostring returns a table"
  pass "an error object whose __tostring fails is shown by its fields, exit 3, never internal error"
  ;;
extravars)
  cat >"$T/ev.lua" <<'LUA'
local kcm = require "kcm"
local play = kcm.playbook { name = "x", vars = { etcd_data_dir = "/var/lib/etcd" } }
play:step("a", { once = true }, function(ctx)
  local flags = ctx.vars.etcd_extra_flags or ""
  local r = require("kcm.control"):run(ctx.vars.cmd or "true", { ok_codes = { 0, 1 } })
  print("flags=" .. flags .. " cmd=" .. type(ctx.vars.cmd) .. " code=" .. r.code)
end)
play:step("b", { once = true, optional = true }, function(ctx) print(ctx.vars.only_b) end)
return play
LUA
  # the singular of a name the step reads: the run used the default; exit 2
  run K -e etcd_extra_flag=--quota-backend-bytes=1 "$T/ev.lua"
  expect_rc 2 "-e etcd_extra_flag"
  expect_err "^kcmrun: -e etcd_extra_flag: no step read it \(close known names: etcd_extra_flags\) \(a misspelt name\? the run used the defaults instead\)$"
  one_line "-e etcd_extra_flag"
  expect_out "exit code 2|RECAP"
  # close to a playbook default nothing read; one far from every name
  run K -e etcd_data_dri=/x -e zzzz=1 "$T/ev.lua"
  expect_rc 2 "-e etcd_data_dri"
  expect_err "^kcmrun: -e etcd_data_dri: no step read it \(close known names: etcd_data_dir\); -e zzzz: no step read it \(no known name is close\)"
  one_line "-e etcd_data_dri"
  # a name read, and a login setting (read by the inventory, not a step): fine
  run K -q -e etcd_extra_flags=--x -e become=yes "$T/ev.lua"
  expect_rc 0 "-e etcd_extra_flags"; expect_out "^flags=--x "
  # -e cmd=false stays the text "false": the command false runs (exit 1)
  run K -q -e cmd=false "$T/ev.lua"
  expect_rc 0 "-e cmd=false"; expect_out "^flags= cmd=string code=1$"
  # a name the playbook's vars define is a known setting, read or not
  run K -q -e etcd_data_dir=/x "$T/ev.lua"
  expect_rc 0 "-e etcd_data_dir (a playbook default)"
  # a name read only by a step --only leaves out is not an error then (-v notes it)
  run K -v --only a -e only_b=1 "$T/ev.lua"
  expect_rc 0 "--only a -e only_b"; expect_out "-e only_b: no step read it .*not an error: not every step ran"
  pass "an -e name no step read: exit 2 with the close known names; -e values stay text"
  ;;
redact)
  # a real --diff to the throwaway sshd of tests/ssh (fixture ssh_local)
  : "${KCM_SSH_DIR:?}"
  SRC=$(cd "$(dirname "$0")/../.." && pwd)
  run env KCM_SSH_INV="$KCM_SSH_DIR/inventory.lua" KCM_SSH_DIR="$KCM_SSH_DIR" \
    "$KCMRUN" --diff --lua-path "$SRC/tests/ssh" "$SRC/tests/strict/diff_token.lua"
  expect_rc 0 "diff_token.lua"
  expect_out "^ok: diff_token"
  pass "--diff shows --initial-cluster-token (a name), hides the bootstrap token and the password"
  ;;
env)
  # probe: a module that reports whether the engine's globals (the
  # registry's, as a module has its own environment too) were touched
  mkdir "$T/mods"
  cat >"$T/mods/probe.lua" <<'LUA'
local G = debug.getregistry()[2]
MODULE_GLOBAL = "set by a module"
return function()
  return string.format("engine: tostring=%s pairs=%s PLAYBOOK_GLOBAL=%s INV_GLOBAL=%s MODULE_GLOBAL=%s",
                       G.tostring(1), type(G.pairs), tostring(rawget(G, "PLAYBOOK_GLOBAL")),
                       tostring(rawget(G, "INV_GLOBAL")), tostring(rawget(G, "MODULE_GLOBAL")))
end
LUA
  cat >"$T/inv-env.lua" <<'LUA'
INV_GLOBAL = "set by the inventory"
ipairs = nil                        -- the inventory's own, not the engine's
return { nodes = { { name = "n1", host = "127.0.0.1", port = 1 } } }
LUA
  cat >"$T/env.lua" <<'LUA'
local kcm = require "kcm"
local probe = require "probe"
-- globals named like engine functions: the playbook's own from here on
tostring = function() return "hijacked" end
pairs = nil
PLAYBOOK_GLOBAL = "set by the playbook"
_G.ALSO_MINE = 1
local play = kcm.playbook { name = "x", hosts = "all" }
play:step("a", function(node, ctx)
  print(probe())
  print("playbook: tostring=" .. tostring(1) .. " PLAYBOOK_GLOBAL=" .. PLAYBOOK_GLOBAL .. " ALSO_MINE=" .. ALSO_MINE ..
        " kcm=" .. type(kcm.playbook) .. " global kcm=" .. type(rawequal(kcm, _G.kcm) and kcm))
end)
play:step("b", function(node, ctx) return INV_GLOBAL end)
return play
LUA
  run K -i "$T/inv-env.lua" --lua-path "$T/mods" "$T/env.lua"
  expect_rc 3 "a playbook reading the inventory's global"
  expect_out "^engine: tostring=1 pairs=function PLAYBOOK_GLOBAL=nil INV_GLOBAL=nil MODULE_GLOBAL=nil$"
  expect_out "^playbook: tostring=hijacked PLAYBOOK_GLOBAL=set by the playbook ALSO_MINE=1 kcm=function global kcm=table$"
  # an unknown global (here the inventory's, which the playbook cannot see) is an error at its line
  expect_err "^kcmrun: playbook error in step 'b': .*env.lua:14: undefined global 'INV_GLOBAL'$"
  one_line "undefined global"
  # package is on the allow-list (a playbook may drop a module from package.loaded, as
  # trust_modules does); a name on no list is an error at its line
  printf 'assert(package.loaded)\nreturn no_such_name\n' >"$T/pkg.lua"
  run K "$T/pkg.lua"
  expect_rc 3 "an unknown name"
  expect_err "^kcmrun: .*pkg.lua:2: undefined global 'no_such_name'"
  one_line "unknown name"
  # a module of the playbook's folders is the operator's code: a mistyped
  # global in it is an error at its line too
  printf 'local M = {}\nfunction M.f()\n  return tabel.concat({ "a" }, ",")\nend\nreturn M\n' >"$T/mods/typo.lua"
  printf 'local kcm = require "kcm"\nlocal typo = require "typo"\nlocal play = kcm.playbook { name = "x", hosts = "all" }\nplay:step("a", function() typo.f() end)\nreturn play\n' >"$T/usetypo.lua"
  run K -i "$T/inv.lua" --lua-path "$T/mods" "$T/usetypo.lua"
  expect_rc 3 "a module reading an unknown global"
  expect_err "typo.lua:3: undefined global 'tabel'"
  # dofile runs a helper in the playbook's own environment: it sees and sets the playbook's globals
  printf 'HELPER_SAW = SHARED\n' >"$T/helper.lua"
  printf 'SHARED = "yes"\ndofile(arg[0]:match("^(.*)/") .. "/helper.lua")\nprint("helper saw " .. HELPER_SAW)\n' >"$T/usehelper.lua"
  run K "$T/usehelper.lua"
  expect_rc 0 "dofile"; expect_out "^helper saw yes$"
  pass "playbook, inventory and their modules' globals stay in their own environment; reads see the allow-list and kcm; unknown globals are errors at their line, in a module too"
  ;;
*) fail "unknown case $case_name" ;;
esac
