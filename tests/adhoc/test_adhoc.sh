#!/bin/bash
# Ad-hoc commands on the lab's real nodes (issue 27):
#   test_adhoc.sh run|limit|facts|putget|down|patterns
# run:      `run masters -- systemctl is-active UNIT`: one collapsed line, exit 0;
#           the unit stopped on node2: exit 4 naming node2
# limit:    --limit 'all:!node2' and `run 'all:!node2'` act on node1 and node3 only
# facts:    `facts all --json` is JSON, machine_id for every node, all different,
#           each the node's own /etc/machine-id
# putget:   put --mode 0640, checked with stat on the node; get brings it back
#           as DESTDIR/<node>/path with the same bytes
# getbig:   get of 120 MB from 3 nodes: streamed (peak RSS bounded), same bytes
#           and mode; killed -9 mid-way the old copy stays whole
# down:     node2 powered off: exit 4 naming node2 as unreachable, the others answer
# which:    without -i, the first line names what else matched (another lab, a lab
#           beside $KCMRUN_INVENTORY) and why this one won
# become:   logged in as deploy with become: run, put, get, facts as root
# varorigin: a wrong ca_cert/ca_key/ca_config names the variable and where it was set
# patterns: --limit etcd / masters:&etcd / node[1:2] on a playbook; a pattern that
#           matches nothing exits 2 listing groups and nodes; a hosts typo names file:line
set -e
. "$(dirname "$0")/../lib.sh"
eval "$("$KCMRUN" lab env)"
NODES=($KCMRUN_LAB_NODES)
SD=$T/state
UNIT=kcm-adhoc-probe
kcm() { run "$KCMRUN" --state-dir "$SD" "$@"; }
lx() { "$KCMRUN" lab exec "$@"; }
# a unit active on every node, for as long as the test needs it
probe_up() {
  for n in "${NODES[@]}"; do
    lx "$n" systemctl stop "$UNIT" >/dev/null 2>&1 || true
    lx "$n" systemctl reset-failed "$UNIT" >/dev/null 2>&1 || true
    lx "$n" systemd-run --quiet --unit="$UNIT" sleep 600
  done
}
probe_down() { for n in "${NODES[@]}"; do lx "$n" systemctl stop "$UNIT" >/dev/null 2>&1 || true; done; }

case "${1:?usage: test_adhoc.sh CASE}" in
run)
  trap 'probe_down; rm -rf "$T"' EXIT
  probe_up
  kcm run masters -- systemctl is-active "$UNIT"
  expect_rc 0 "run masters -- systemctl is-active"
  expect_out "^inventory: $KCMRUN_LAB_INVENTORY "
  expect_out "^node1\.\.node3 \(3\): active$"
  expect_out "^  exit 0 +node1\.\.node3 \(3\)$"
  [ "$(grep -c ': active' "$T/out")" = 1 ] || { cat "$T/out"; fail "nodes that agree were not collapsed into one line"; }
  # -q: still the inventory line and the answers
  kcm -q run masters -- systemctl is-active "$UNIT"
  expect_rc 0 "run -q"
  expect_out "^inventory: $KCMRUN_LAB_INVENTORY "
  lx node2 systemctl stop "$UNIT"
  kcm run masters -- systemctl is-active "$UNIT"
  expect_rc 4 "run with the unit stopped on node2"
  expect_out "^node1,node3 \(2\): active$"
  expect_out "^node2 \(1\) \[exit 3\]: inactive$"
  expect_out "^  exit 3 +node2 \(1\)$"
  expect_err "^kcmrun: run failed on node2 \(exit 3\)$"
  # the command's words reach the node as argv: nothing is a shell's
  kcm run node1 -- echo 'a  b;$(id)' '*'
  expect_rc 0 "argv"
  expect_out '^node1 \(1\): a  b;\$\(id\) \*$'
  # Ctrl-C: the recap says interrupted, exit 130
  "$KCMRUN" --state-dir "$SD" --grace 1 run masters -- sleep 60 >"$T/iout" 2>"$T/ierr" & P=$!
  for _ in $(seq 100); do lx node1 pgrep -f 'sleep 60' >/dev/null 2>&1 && break; sleep 0.1; done
  kill -INT "$P"; set +e; wait "$P"; IRC=$?; set -e
  [ "$IRC" = 130 ] || { cat "$T/iout" "$T/ierr"; fail "interrupted run: exit $IRC, expected 130"; }
  sed -n '/^RECAP/,$p' "$T/iout" | grep -q '^  interrupted' || { cat "$T/iout"; fail "the recap does not say interrupted"; }
  grep -q '^kcmrun: run failed on node1\.\.node3 (failed)$' "$T/ierr" || { cat "$T/ierr"; fail "the interrupted nodes are not named"; }
  # --check: nothing runs
  lx node1 rm -f /root/kcm-adhoc-check
  kcm -C run node1 -- touch /root/kcm-adhoc-check
  expect_rc 0 "run --check"; expect_out "^node1 \(1\): \(not run: --check\)$"
  ! lx node1 test -e /root/kcm-adhoc-check || fail "run -C ran the command"
  # usage errors: no command, no pattern
  kcm run masters
  expect_rc 2 "run without --"; expect_err "no command after --"
  pass "run: collapsed answers, recap by exit code, exit 4 naming node2 when its unit is stopped"
  ;;
limit)
  kcm run 'all:!node2' -- cat /proc/sys/kernel/hostname
  expect_rc 0 "run all:!node2"
  expect_out "^node1 \(1\): node1$"; expect_out "^node3 \(1\): node3$"
  ! grep -q node2 "$T/out" || { cat "$T/out"; fail "node2 was run on"; }
  cat > "$T/who.lua" <<'LUA'
local play = require("kcm").playbook { name = "who", hosts = "all" }
play:step("who", function(node) print("ran on " .. node:run({ "hostname" }).stdout:gsub("\n", "")) end)
return play
LUA
  kcm --limit 'all:!node2' "$T/who.lua"
  expect_rc 0 "--limit all:!node2"
  [ "$(grep '^ran on' "$T/out" | sort | tr '\n' ' ')" = "ran on node1 ran on node3 " ] ||
    { cat "$T/out"; fail "--limit 'all:!node2' did not run on exactly node1 and node3"; }
  pass "--limit 'all:!node2' and run 'all:!node2': node1 and node3 only"
  ;;
patterns)
  cat > "$T/who.lua" <<'LUA'
local play = require("kcm").playbook { name = "who", hosts = os.getenv("HOSTS") or "all" }
play:step("who", function(node) print("ran on " .. node.name) end)
return play
LUA
  ran() { grep '^ran on' "$T/out" | sort | sed 's/ran on //' | tr '\n' ' '; }
  for case in "etcd|node1 node2 node3 " "masters:&etcd:!node1|node2 node3 " "node[1:2]|node1 node2 " \
              "node*,!node3|node1 node2 " "masters[0]|node1 "; do
    kcm --limit "${case%%|*}" "$T/who.lua"
    expect_rc 0 "--limit ${case%%|*}"
    [ "$(ran)" = "${case#*|}" ] || { cat "$T/out"; fail "--limit '${case%%|*}' ran on '$(ran)', expected '${case#*|}'"; }
  done
  kcm --limit nodes "$T/who.lua"
  expect_rc 2 "--limit nodes"
  expect_err "^kcmrun: --limit 'nodes': it matches no node \('nodes' names no group or node\) in .*; groups: all, etcd, masters; nodes: node1, node2, node3$"
  kcm --limit '' "$T/who.lua"
  expect_rc 2 "--limit ''"; expect_err "groups: all, etcd, masters; nodes: node1, node2, node3"
  HOSTS=master kcm "$T/who.lua"
  expect_rc 2 "hosts = master"
  expect_err "^kcmrun: $T/who.lua:1: hosts 'master': it matches no node .*groups: all, etcd, masters; nodes: node1, node2, node3$"
  ! grep -q "builtin:" "$T/err" || fail "the error names kcmrun's own code"
  kcm run nodes -- true
  expect_rc 2 "run nodes"; expect_err "run 'nodes': it matches no node"
  pass "--limit: group, &, !, ranges, globs, subscripts; no match exits 2 listing groups and nodes; hosts typo names file:line"
  ;;
facts)
  # one login per node for the whole gathering (ten reads and a command), read from each
  # node's sshd journal (lab exec enters the node without logging in)
  for n in "${NODES[@]}"; do
    lx "$n" journalctl -u ssh -n 0 --show-cursor -q | sed -n 's/^-- cursor: //p' > "$T/cur-$n"
    [ -s "$T/cur-$n" ] || fail "$n: no journal cursor"
  done
  run "$KCMRUN" --state-dir "$SD" facts all --json
  expect_rc 0 "facts all --json"
  for n in "${NODES[@]}"; do
    c=$(lx "$n" journalctl -q -u ssh --after-cursor "$(cat "$T/cur-$n")" | grep -c "Accepted publickey" || true)
    [ "$c" = 1 ] || fail "$n: facts logged in $c times, expected once"
  done
  /usr/bin/python3 -m json.tool "$T/out" >/dev/null || { cat "$T/out"; fail "facts --json is not JSON"; }
  /usr/bin/python3 - "$T/out" "${NODES[@]}" <<'PY' || fail "facts --json"
import json, sys
f = json.load(open(sys.argv[1]))
nodes = sys.argv[2:]
assert sorted(f) == sorted(nodes), f.keys()
ids = [f[n]["machine_id"] for n in nodes]
assert all(len(i) == 32 for i in ids), ids
assert len(set(ids)) == len(ids), "machine_ids are not all different: %s" % ids
for n in nodes:
    assert f[n]["hostname"] == n, f[n]
    assert f[n]["init"] == "systemd" and isinstance(f[n]["systemd"], int), f[n]
    assert f[n]["cpus"] >= 1 and f[n]["memory_mb"] > 0 and f[n]["os_id"] and f[n]["kernel"], f[n]
    assert f[n]["ips"], f[n]
PY
  for n in "${NODES[@]}"; do
    id=$(lx "$n" cat /etc/machine-id)
    grep -q "\"$n\": .*\"machine_id\":\"$id\"" "$T/out" || { cat "$T/out"; fail "$n: machine_id is not its /etc/machine-id ($id)"; }
  done
  # node.facts in a playbook: gathered once per node for the run (one systemctl --version
  # each, however often it is read), and a step can branch on it
  cat > "$T/facts.lua" <<'LUA'
local play = require("kcm").playbook { name = "facts", hosts = "all" }
play:step("one", function(node) print(node.name .. " id " .. node.facts.machine_id) end)
play:step("two", function(node)
  if node.facts.init == "systemd" and node.facts.machine_id then print(node.name .. " again " .. node.facts.machine_id) end
end)
return play
LUA
  kcm -v "$T/facts.lua"
  expect_rc 0 "node.facts in a playbook"
  for n in "${NODES[@]}"; do
    a=$(sed -n "s/^$n id //p" "$T/out"); b=$(sed -n "s/^$n again //p" "$T/out")
    [ -n "$a" ] && [ "$a" = "$b" ] || { cat "$T/out"; fail "$n: node.facts.machine_id '$a' then '$b'"; }
  done
  [ "$(grep -c "run 'systemctl' '--version'" "$T/out")" = "${#NODES[@]}" ] ||
    { cat "$T/out"; fail "facts were not gathered exactly once per node"; }
  kcm facts 'node[1:2]'
  expect_rc 0 "facts table"
  expect_out "^node +os_id +os_version +kernel +arch +cpus +memory_mb +systemd +init +hostname +ips +machine_id$"
  expect_out "^node1 +[a-z]+ "; expect_out "^node2 +[a-z]+ "
  ! grep -q "^node3 " "$T/out" || fail "facts node[1:2] showed node3"
  pass "facts all --json: one login per node, JSON, a different machine_id per node (the node's own), node.facts gathered once; a table without --json"
  ;;
putget)
  trap 'for n in "${NODES[@]}"; do lx "$n" rm -f /root/kcm-adhoc.bin; done; rm -rf "$T"' EXIT
  head -c 70000 /dev/urandom > "$T/blob"
  chmod 0600 "$T/blob"
  kcm put all "$T/blob" /root/kcm-adhoc.bin --mode 0640
  expect_rc 0 "put"
  expect_out "^node1\.\.node3 \(3\): changed: /root/kcm-adhoc.bin$"
  for n in "${NODES[@]}"; do
    [ "$(lx "$n" stat -c '%a %s' /root/kcm-adhoc.bin)" = "640 70000" ] || fail "$n: mode or size after put --mode 0640"
  done
  kcm put all "$T/blob" /root/kcm-adhoc.bin --mode 0640
  expect_rc 0 "put again"; expect_out "^  ok +node1\.\.node3 \(3\)$"
  kcm put all "$T/blob" /root/kcm-adhoc.bin --mode 0604
  expect_rc 0 "put, new mode"; expect_out "^  changed +node1\.\.node3 \(3\)$"
  [ "$(lx node2 stat -c '%a' /root/kcm-adhoc.bin)" = 604 ] || fail "node2: mode after put --mode 0604"
  # into a folder that exists on the node: the file keeps its name there
  kcm put node1 "$T/blob" /root --mode 0600
  expect_rc 0 "put into a folder"; expect_out "^node1 \(1\): changed: /root/blob$"
  [ "$(lx node1 stat -c '%a %s' /root/blob)" = "600 70000" ] || fail "node1: put into /root did not make /root/blob 0600"
  lx node1 rm -f /root/blob
  kcm get 'all:!node3' /root/kcm-adhoc.bin "$T/got"
  expect_rc 0 "get"
  expect_out "^node1,node2 \(2\): $T/got/<node>/root/kcm-adhoc.bin \(70000 bytes\)$"
  for n in node1 node2; do
    cmp "$T/blob" "$T/got/$n/root/kcm-adhoc.bin" || fail "$n: get brought back other bytes"
    [ "$(stat -c %a "$T/got/$n/root/kcm-adhoc.bin")" = 604 ] || fail "$n: the local copy lacks the node's mode"
  done
  [ ! -e "$T/got/node3" ] || fail "get 'all:!node3' fetched from node3"
  kcm get all /root/no-such-file "$T/got"
  expect_rc 4 "get of a missing file"; expect_out "FAILED: get /root/no-such-file: no such file"
  kcm put all "$T/nope" /root/x
  expect_rc 2 "put of a missing local file"; expect_err "put: SRC $T/nope does not exist"
  pass "put --mode (stat on the nodes), idempotent, mode change; get lands as DESTDIR/<node>/path, same bytes and mode"
  ;;
getbig)
  # a real binary's size from every node: streamed to disk, never held in
  # memory (3 x 120 MB held would be > 360 MB); a failed fetch keeps the old copy
  trap 'for n in "${NODES[@]}"; do lx "$n" rm -f /root/kcm-big.bin; done; rm -rf "$T"' EXIT
  for n in "${NODES[@]}"; do
    lx "$n" sh -c "head -c 125829120 /dev/urandom > /root/kcm-big.bin && chmod 0750 /root/kcm-big.bin"
  done
  # ASan keeps freed blocks in a quarantine (256 MB by default): capped, so
  # the bound measures what kcmrun holds, under the sanitizers too
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
  peak() {   # runs the command; its peak RSS in MiB goes to $T/peak
    python3 -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1] + "/out", "w"), stderr=open(sys.argv[1] + "/err", "w"))
open(sys.argv[1] + "/peak", "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024))
sys.exit(rc)' "$T" "$@"
  }
  set +e; peak "$KCMRUN" --state-dir "$SD" get all /root/kcm-big.bin "$T/got"; RC=$?; set -e
  expect_rc 0 "get of 120 MB from 3 nodes"
  expect_out "^node1\.\.node3 \(3\): $T/got/<node>/root/kcm-big.bin \(125829120 bytes\)$"
  for n in "${NODES[@]}"; do
    [ "$(lx "$n" sha256sum /root/kcm-big.bin | cut -d' ' -f1)" = "$(sha256sum < "$T/got/$n/root/kcm-big.bin" | cut -d' ' -f1)" ] ||
      fail "$n: the local copy has other bytes"
    [ "$(stat -c %a "$T/got/$n/root/kcm-big.bin")" = 750 ] || fail "$n: the local copy lacks the node's mode"
  done
  echo "peak RSS of kcmrun get (3 x 120 MB): $(cat "$T/peak") MiB"
  # ASan's shadow memory included; holding the files would need > 360 MiB
  [ "$(cat "$T/peak")" -lt 200 ] || fail "kcmrun get held $(cat "$T/peak") MiB: the files went through memory"
  ! ls "$T/got"/*/root/ | grep -q "kcm-get" || fail "a temp file was left next to a fetched copy"
  # killed while it fetches a new content: the copy from the first fetch
  # stays whole; the next fetch removes the dead one's temp and lands whole
  old=$(sha256sum < "$T/got/node2/root/kcm-big.bin")
  lx node2 sh -c "head -c 125829120 /dev/urandom > /root/kcm-big.bin"
  "$KCMRUN" --state-dir "$SD" get node2 /root/kcm-big.bin "$T/got" > "$T/killed.out" 2>&1 &
  pid=$!
  for _ in $(seq 200); do ls "$T/got/node2/root/" | grep -q "kcm-big.bin.kcm-get-$pid-" && break; sleep 0.05; done
  ls "$T/got/node2/root/" | grep -q "kcm-big.bin.kcm-get-$pid-" || fail "no temp of the fetch appeared"
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  [ "$(sha256sum < "$T/got/node2/root/kcm-big.bin")" = "$old" ] || fail "a killed get touched the copy"
  kcm get node2 /root/kcm-big.bin "$T/got"
  expect_rc 0 "get after a killed get"
  [ "$(lx node2 sha256sum /root/kcm-big.bin | cut -d' ' -f1)" = "$(sha256sum < "$T/got/node2/root/kcm-big.bin" | cut -d' ' -f1)" ] ||
    fail "node2: the copy after the killed get has other bytes"
  ! ls -a "$T/got/node2/root/" | grep -q "kcm-get" || fail "the killed get's temp was not removed by the next get"
  pass "get of 120 MB from 3 nodes: same bytes and mode, peak RSS $(cat "$T/peak") MiB (not size x nodes), no temp left; a get killed -9 leaves the old copy whole and its temp is removed by the next"
  ;;
down)
  trap '"$KCMRUN" lab start node2 >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
  "$KCMRUN" lab stop node2 >/dev/null
  kcm run masters -- systemctl is-active ssh
  expect_rc 4 "run with node2 powered off"
  expect_out "^node1,node3 \(2\): active$"
  expect_out "^node2 \(1\) UNREACHABLE: "
  expect_out "^  unreachable +node2 \(1\)$"
  expect_err "^kcmrun: run failed on node2 \(unreachable\)$"
  pass "node2 powered off: exit 4 naming node2 unreachable; node1 and node3 answered"
  ;;
which)
  # without -i, when more than one inventory matches or another lab is up, the first
  # line says which one was picked and why, and names the others
  other=zq$((RANDOM % 100000))
  trap 'ip link del "kcm-$other" 2>/dev/null || true; rm -rf "$T"' EXIT
  ip link add "kcm-$other" type bridge    # what `lab up` leaves for a lab: its bridge
  run "$KCMRUN" --state-dir "$SD" hosts all
  expect_rc 0 "hosts, two labs up"
  expect_err "^inventory: $(readlink -f "$KCMRUN_LAB_DIR")/inventory.lua \(the running lab; also found: labs? [a-z0-9, ]*$other[a-z0-9, ]* up in another folder than $KCMRUN_LAB_DIR; picked as the first of -i, .*; -i picks another\)$"
  run env KCMRUN_INVENTORY="$KCMRUN_LAB_ENVIRONMENT" "$KCMRUN" --state-dir "$SD" -q run node1 -- true
  expect_rc 0 "KCMRUN_INVENTORY and a lab"
  expect_out "^inventory: $KCMRUN_LAB_ENVIRONMENT \(\\\$KCMRUN_INVENTORY; also found: $(readlink -f "$KCMRUN_LAB_DIR")/inventory.lua \(the running lab\); "
  # the procedure's environment.sh beside the lab, in a mount namespace of this
  # command only (the host's /opt, which the nodes share, is not touched)
  run unshare -m sh -c 'mount -t tmpfs kcm-test /opt && mkdir -p /opt/k8s/bin &&
    cp "$1" /opt/k8s/bin/environment.sh && shift && exec "$@"' sh "$KCMRUN_LAB_ENVIRONMENT" \
    "$KCMRUN" --state-dir "$SD" hosts all
  expect_rc 0 "hosts, environment.sh and a lab"
  expect_err "^inventory: /opt/k8s/bin/environment.sh \(the procedure's environment.sh; also found: $(readlink -f "$KCMRUN_LAB_DIR")/inventory.lua \(the running lab\); .*picked as the first of -i, .*; -i picks another\)$"
  [ ! -e /opt/k8s/bin/environment.sh ] || fail "the test's environment.sh reached the host"
  ip link del "kcm-$other"
  run "$KCMRUN" --state-dir "$SD" hosts all
  ! grep -q "$other" "$T/err" || fail "a removed lab is still named"
  pass "without -i: the picked inventory, why, and what else matched (another lab up, \$KCMRUN_INVENTORY beside a lab, environment.sh beside a lab), even with -q"
  ;;
become)
  # logged in as deploy (NOPASSWD sudo): become as the inventory says, for commands,
  # files and facts alike; -e become=false turns it off
  trap 'for n in "${NODES[@]}"; do lx "$n" sh -c "rm -f /etc/sudoers.d/kcm-adhoc /root/kcm-adhoc-b.txt; userdel -r deploy" >/dev/null 2>&1 || true; done; rm -rf "$T"' EXIT
  for n in "${NODES[@]}"; do
    lx "$n" sh -c 'id deploy >/dev/null 2>&1 || useradd -m -s /bin/sh deploy
      install -d -o deploy -g deploy -m 0700 /home/deploy/.ssh
      install -o deploy -g deploy -m 0600 /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys
      echo "deploy ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/kcm-adhoc && chmod 0440 /etc/sudoers.d/kcm-adhoc'
  done
  printf 'local inv = dofile("%s")\ninv.ssh.user = "deploy"\ninv.ssh.become = true\nreturn inv\n' "$KCMRUN_LAB_INVENTORY" > "$T/inv.lua"
  kcm -i "$T/inv.lua" run all -- id -un
  expect_rc 0 "run with become"; expect_out "^node1\.\.node3 \(3\): root$"
  kcm -i "$T/inv.lua" -e become=false run all -- id -un
  expect_rc 0 "run without become"; expect_out "^node1\.\.node3 \(3\): deploy$"
  echo secret > "$T/b.txt"
  kcm -i "$T/inv.lua" put all "$T/b.txt" /root/kcm-adhoc-b.txt --mode 0600
  expect_rc 0 "put into /root with become"
  [ "$(lx node3 stat -c '%a %U' /root/kcm-adhoc-b.txt)" = "600 root" ] || fail "node3: /root/kcm-adhoc-b.txt not 600 root"
  kcm -i "$T/inv.lua" get all /root/kcm-adhoc-b.txt "$T/got"
  expect_rc 0 "get from /root with become"
  cmp "$T/b.txt" "$T/got/node2/root/kcm-adhoc-b.txt" || fail "get with become brought back other bytes"
  kcm -i "$T/inv.lua" facts all --json
  expect_rc 0 "facts with become"
  /usr/bin/python3 -c 'import json,sys; f=json.load(open(sys.argv[1])); assert all(len(v["machine_id"]) == 32 and v["systemd"] for v in f.values()), f' "$T/out" ||
    fail "facts with become"
  pass "logged in as deploy: run, put, get and facts become root as the inventory says; -e become=false runs as deploy"
  ;;
varorigin)
  # a wrong CA path names the variable, where it was set (file:line, -e), and its value
  REPO=$(cd "$(dirname "$0")/../.." && pwd)
  sed 's|\["ca_cert"\] = "[^"]*"|["ca_cert"] = "/opt/k8s/work/nope-ca.pem"|' "$KCMRUN_LAB_INVENTORY" > "$T/inv.lua"
  line=$(grep -n '"ca_cert"' "$T/inv.lua" | cut -d: -f1)
  kcm -C -i "$T/inv.lua" "$REPO/playbooks/controller-manager.lua"
  expect_rc 4 "wrong ca_cert"
  expect_out "ca_cert \(from $T/inv.lua:$line\) = /opt/k8s/work/nope-ca.pem: no such file; set ca_cert"
  kcm -C -i "$KCMRUN_LAB_ENVIRONMENT" -e ca_key=/nonexistent/ca-key.pem "$REPO/playbooks/controller-manager.lua"
  expect_rc 4 "wrong ca_key"
  expect_out "ca_key \(from -e\) = /nonexistent/ca-key.pem: no such file"
  sed 's|^export ca_config=.*|export ca_config=/tmp|' "$KCMRUN_LAB_ENVIRONMENT" > "$T/environment.sh"
  line=$(grep -n '^export ca_config=' "$T/environment.sh" | cut -d: -f1)
  [ -n "$line" ] || fail "the lab's environment.sh sets no ca_config"
  kcm -C -i "$T/environment.sh" "$REPO/playbooks/controller-manager.lua"
  expect_rc 4 "ca_config a folder"
  expect_out "ca_config \(from $T/environment.sh:$line\) = /tmp: is a dir, not a file"
  # the same for a component's binary and the admin kubeconfig
  sed 's|\["kcm_binary"\] = "[^"]*"|["kcm_binary"] = "/opt/k8s/nope/kube-controller-manager"|' "$KCMRUN_LAB_INVENTORY" > "$T/inv2.lua"
  line=$(grep -n '"kcm_binary"' "$T/inv2.lua" | cut -d: -f1)
  kcm -C -i "$T/inv2.lua" --only binary "$REPO/playbooks/controller-manager.lua"
  expect_rc 4 "wrong kcm_binary"
  expect_out "kcm_binary \(from $T/inv2.lua:$line\) = /opt/k8s/nope/kube-controller-manager: no such file"
  kcm -C -e admin_kubeconfig=/nonexistent/admin.kubeconfig --only rbac "$REPO/playbooks/controller-manager.lua"
  expect_rc 4 "wrong admin_kubeconfig"
  expect_out "admin_kubeconfig \(from -e\) = /nonexistent/admin.kubeconfig: no such file"
  pass "a wrong CA, binary or kubeconfig path names the variable, where it was set (inventory.lua:N, environment.sh:N, -e) and its value"
  ;;
*) fail "unknown case $1" ;;
esac
