#!/bin/bash
# Tests of the lab itself. Usage: test_lab.sh CASE
# Environment: KCMRUN (the binary), KCMRUN_LAB_DIR (the fixture's lab, up; except for `updown`,
# which makes and removes a lab of its own).
set -euo pipefail
CASE=${1:?case}
: "${KCMRUN:?KCMRUN must name the kcmrun binary}"

fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
ok() { echo "ok [$CASE]: $*"; }

lab() { "$KCMRUN" lab "$@"; }
load_env() { eval "$(lab env)"; SSHC=(ssh -F "$KCMRUN_LAB_SSH_CONFIG" -o BatchMode=yes); }
on() { local n=$1; shift; "${SSHC[@]}" "$n" "$@"; }

token() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }

case_ssh() {
  load_env
  local n out i=0
  for n in $KCMRUN_LAB_NODES; do
    i=$((i + 1))
    out=$(on "$n" hostname) || fail "ssh -F ssh_config $n failed"
    [ "$out" = "$n" ] || fail "$n answered hostname '$out'"
    # strict checking is in force: the recorded key is what the node presents
    out=$(ssh -F "$KCMRUN_LAB_SSH_CONFIG" -o BatchMode=yes -o StrictHostKeyChecking=yes "$n" 'cat /etc/ssh/ssh_host_ed25519_key.pub')
    grep -q "^$n,[0-9.]* $(echo "$out" | cut -d' ' -f1,2)\$" "$KCMRUN_LAB_KNOWN_HOSTS" ||
      fail "$n's host key is not the one in known_hosts"
  done
  [ "$i" -ge 2 ] || fail "the fixture lab has fewer than 2 nodes"
  # ... and it can fail: an empty known_hosts makes the same login fail
  local empty; empty=$(mktemp)
  if ssh -F "$KCMRUN_LAB_SSH_CONFIG" -o BatchMode=yes -o UserKnownHostsFile="$empty" node1 true 2>"$empty.err"; then
    rm -f "$empty" "$empty.err"; fail "login succeeded with an empty known_hosts"
  fi
  grep -q 'Host key verification failed' "$empty.err" || { cat "$empty.err" >&2; rm -f "$empty" "$empty.err"; fail "unexpected error without known_hosts"; }
  rm -f "$empty" "$empty.err"
  # the client key is private
  [ "$(stat -c %a "$KCMRUN_LAB_IDENTITY")" = 600 ] || fail "client key mode is not 0600"
  # `kcmrun lab ssh` is the same thing
  out=$(lab ssh node2 hostname) || fail "kcmrun lab ssh node2 failed"
  [ "$out" = node2 ] || fail "kcmrun lab ssh node2 answered '$out'"
  ok "strict ssh to $KCMRUN_LAB_NODES"
}

case_isolation() {
  load_env
  local t f out id1 id2
  t=$(token); f=/root/kcmlab-iso-$t
  on node1 "echo $t > $f"
  [ "$(on node1 "cat $f")" = "$t" ] || fail "node1 cannot read back $f"
  if on node2 "test -e $f"; then fail "$f written on node1 exists on node2"; fi
  [ ! -e "$f" ] || fail "$f written on node1 exists on the host"
  # the node's disk is its overlay upper dir
  out=$(awk -v n=node1 '$0 ~ "name = \"" n "\"" {getline; print}' "$KCMRUN_LAB_INVENTORY" | sed 's/.*lab_upper = "\([^"]*\)".*/\1/')
  [ "$(cat "$out$f")" = "$t" ] || fail "$f is not in node1's upper dir $out"
  on node1 "rm $f"
  # identity: hostname, machine-id, address, PID 1
  id1=$(on node1 cat /etc/machine-id); id2=$(on node2 cat /etc/machine-id)
  [ -n "$id1" ] && [ "$id1" != "$id2" ] || fail "node1 and node2 share machine-id $id1"
  [ "$id1" != "$(cat /etc/machine-id 2>/dev/null || true)" ] || fail "node1 has the host's machine-id"
  [ "$(on node1 'cat /proc/1/comm')" = systemd ] || fail "PID 1 of node1 is not systemd"
  # network: link-local only, no default route, the lab's own address
  out=$(on node1 'ip -4 -o addr show; ip -4 route show')
  echo "$out" | grep -q 'inet 169\.254\.[0-9]*\.101/24' || fail "node1 has no 169.254.x.101 address: $out"
  if echo "$out" | grep -q '^default'; then fail "node1 has a default route: $out"; fi
  if echo "$out" | grep 'inet ' | grep -v -e 'inet 127\.' -e 'inet 169\.254\.' >/dev/null; then fail "node1 has a non-link-local address: $out"; fi
  # node2 reaches node1 on the bridge, by name
  on node2 'timeout 3 bash -c "exec 3<>/dev/tcp/node1/22"' || fail "node2 cannot reach node1:22"
  # the lab's state (client key) is hidden inside a node
  if on node1 "test -e $KCMRUN_LAB_IDENTITY"; then fail "the client key is visible inside node1"; fi
  # the host's own host keys are not
  if on node1 'ls /etc/ssh/ | grep -q -e rsa -e ecdsa'; then fail "host keys of the host are visible in node1"; fi
  ok "node1 and node2 are separate machines"
}

case_systemd() {
  load_env
  local u st
  u=kcmlab-probe-$(token)
  st=$(on node1 'systemctl is-system-running --wait' || true)
  [ "$st" = running ] || fail "node1 is '$st', not running: $(on node1 'systemctl --failed --no-legend' || true)"
  on node1 "printf '[Service]\nExecStart=/bin/sh -c \"echo probe-started; exec sleep infinity\"\n' > /etc/systemd/system/$u.service"
  on node1 "systemctl daemon-reload && systemctl start $u"
  [ "$(on node1 "systemctl is-active $u")" = active ] || fail "$u is not active"
  on node1 "for i in \$(seq 1 50); do journalctl -u $u --no-pager | grep -q probe-started && exit 0; sleep 0.1; done; exit 1" ||
    fail "journalctl -u $u does not show the unit's output"
  on node1 "systemctl stop $u"
  st=$(on node1 "systemctl is-active $u" || true)
  [ "$st" = inactive ] || fail "$u is '$st' after stop"
  # the unit is node1's alone
  if on node2 "systemctl cat $u" >/dev/null 2>&1; then fail "$u is known on node2"; fi
  on node1 "rm /etc/systemd/system/$u.service && systemctl daemon-reload"
  ok "systemctl and journalctl work in node1"
}

case_stopstart() {
  load_env
  local t f n=node3 out
  echo " $KCMRUN_LAB_NODES " | grep -q " $n " || n=node2
  t=$(token); f=/root/kcmlab-keep-$t
  on $n "echo $t > $f && sync"
  out=$(on $n cat /etc/machine-id)
  lab stop $n
  lab status | grep -Eq "^$n .* stopped" || fail "status does not show $n stopped"
  if "${SSHC[@]}" -o ConnectTimeout=3 $n true 2>/dev/null; then fail "$n still answers ssh after stop"; fi
  lab start $n
  lab status | grep -Eq "^$n .* running" || fail "status does not show $n running"
  [ "$(on $n cat "$f")" = "$t" ] || fail "$f did not survive stop/start"
  [ "$(on $n cat /etc/machine-id)" = "$out" ] || fail "machine-id changed across stop/start"
  on $n "rm $f"
  ok "$n powered off and booted again with its files"
}

# A lab of its own (1 node, stub cluster hook): everything it made exists while up and is gone
# after down. Other labs and programs may run on the host meanwhile, so the snapshot keeps what
# can belong to this lab: its name, its state dir, its subnet.
snapshot() {
  local pat=$1 p
  {
    echo "## netns"; ip netns list 2>/dev/null | awk '{print $1}'
    echo "## links"; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//'
    echo "## addrs"; ip -4 -o addr show | awk '{print $2, $4}'
    echo "## routes"; ip -4 route show
    echo "## mounts"; awk '{print $1, $2, $3}' /proc/mounts
    echo "## cgroups"; find /sys/fs/cgroup -maxdepth 3 -type d -name 'kcm-*' 2>/dev/null
    echo "## procs"
    for p in /proc/[0-9]*; do
      grep -q '^State:.*Z' "$p/status" 2>/dev/null && continue
      grep -q 'kcm-' "$p/cgroup" 2>/dev/null && echo "${p#/proc/} $(cat "$p/cgroup" 2>/dev/null | tr '\n' ' ')"
    done
  } | grep -E "^## |$pat" | sort
  echo "## inotify"
  if [ -z "$(ls -A /run/kcmrun/labs 2>/dev/null)" ]; then cat /proc/sys/fs/inotify/max_user_instances; fi
}

case_updown() {
  local dir=${KCMRUN_LAB_TEST_DIR:?} name=kupdown before after stub
  export KCMRUN_LAB_DIR=$dir
  lab down >/dev/null 2>&1 || true
  rm -rf "$dir"; mkdir -p "$dir.stub"
  # stub of the cluster stand-ins: leaves a daemon behind and "forgets" to stop it in down
  stub=$dir.stub/cluster.sh
  cat >"$stub" <<'EOF'
#!/bin/bash
case $1 in
  up) mkdir -p "$2"; setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $! >"$2/daemon.pid"
      echo "noise line"
      echo "KUBE_APISERVER=https://$3:6443"
      echo "ca_cert=$2/ca.pem" ;;
  down) exit 0 ;;
esac
EOF
  export KCMRUN_LAB_CLUSTER_SH=$stub
  # whatever happens below, the lab goes away
  trap '"$KCMRUN" lab down >/dev/null 2>&1 || "$KCMRUN" lab down --name '$name' >/dev/null 2>&1 || true' EXIT
  local pat="kcm-$name|$dir"
  before=$(snapshot "$pat")
  out=$(lab up --nodes 1 --name $name) || fail "lab up failed"
  echo "$out"
  # the lab exists
  ip netns list | grep -q "^kcm-$name-node1" || fail "no netns kcm-$name-node1"
  ip link show kcm-$name >/dev/null || fail "no bridge kcm-$name"
  ip link show kcm-$name-1 >/dev/null || fail "no veth kcm-$name-1"
  local cgr; cgr=$(awk -F= '/^LAB_CGROUP=/{print $2}' "$dir/lab.state")
  grep -q '^populated 1' "$cgr/node1/cgroup.events" || fail "node1's cgroup $cgr/node1 is empty"
  local daemon; daemon=$(cat "$dir/cluster/daemon.pid")
  kill -0 "$daemon" || fail "the stub's daemon is not running"
  # the paths printed exist; the hook's lines reached inventory and environment.sh
  local p
  for p in inventory ssh_config known_hosts identity environment; do
    f=$(echo "$out" | awk -v k=$p '$1 == k {print $2}')
    [ -n "$f" ] && [ -f "$f" ] || fail "up did not print an existing $p path"
  done
  grep -q "\[\"ca_cert\"\] = \"$dir/cluster/ca.pem\"" "$dir/inventory.lua" || fail "ca_cert not in the inventory"
  grep -q '\["KUBE_APISERVER"\] = "https://169\.254\.' "$dir/inventory.lua" || fail "KUBE_APISERVER not in the inventory"
  if grep -q noise "$dir/inventory.lua"; then fail "a non KEY=VALUE line reached the inventory"; fi
  (source "$dir/environment.sh" && [ "${#NODE_IPS[@]}" = 1 ] && [ "${NODE_NAMES[0]}" = node1 ] &&
    [[ $KUBE_APISERVER == https://169.254.*:6443 ]] && [ "$ca_cert" = "$dir/cluster/ca.pem" ] &&
    [ "$K8S_DIR" = /data/k8s/k8s ] && [ "$SERVICE_CIDR" = 10.254.0.0/16 ]) || fail "environment.sh is not as expected"
  [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -ge 1024 ] || fail "inotify instances not raised"
  # up again refuses, clearly
  if lab up --nodes 1 --name $name 2>"$dir.err"; then fail "a second up succeeded"; fi
  grep -q 'already up' "$dir.err" || fail "second up: $(cat "$dir.err")"
  lab status | grep -Eq '^node1 .* running' || fail "status does not show node1 running"
  local net; net=$(awk -F= '/^LAB_NET=/{print $2}' "$dir/lab.state" | sed 's/\./\\./g')
  during=$(snapshot "$pat|$net\\.")
  [ "$(echo "$during" | grep -c "kcm-$name")" -ge 4 ] || { echo "$during" >&2; fail "the snapshot does not see the lab"; }
  echo "$during" | grep -q "^[0-9]* .*kcm-$name/node1" || { echo "$during" >&2; fail "no process in node1's cgroup"; }
  echo "$during" | grep -q "^[0-9]* .*kcm-$name/cluster" || { echo "$during" >&2; fail "the stub's daemon is not in the lab's cgroup"; }

  lab down || fail "lab down failed"
  after=$(snapshot "$pat")
  if { ip -4 -o addr show; ip -4 route show; } | grep -E "$net\\."; then fail "the lab's subnet is still on the host"; fi
  if [ "$before" != "$after" ]; then
    diff <(echo "$before") <(echo "$after") >&2 || true
    fail "the host differs after down"
  fi
  # gone, or a zombie; a process killed by down may still be exiting for an
  # instant (its /proc entry vanished between two looks once in CI)
  alive() { local st; st=$(cat "/proc/$daemon/status" 2>/dev/null) && ! grep -q '^State:.*[ZX]' <<<"$st"; }
  for _ in $(seq 20); do alive || break; sleep 0.1; done
  if alive; then fail "the stub's daemon survived down"; fi
  [ ! -e "$dir" ] || fail "$dir still exists after down"
  # down again: nothing to do, success
  lab down >/dev/null || fail "a second down failed"
  rm -rf "$dir.stub" "$dir.err"
  ok "up made bridge, netns, veth, cgroup, processes; down removed them all"
}

case_nonroot() {
  local out
  if out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$KCMRUN" lab status 2>&1); then
    fail "lab status as nobody succeeded: $out"
  fi
  echo "$out" | grep -q 'needs root' || fail "no 'needs root' message: $out"
  ok "refuses without root: $out"
}

# lab up on a machine without some of its tools: a PATH of links to every command here
# but those, so the real machine stays as it is; the check comes before anything is made.
case_missingtool() {
  local T d out rc=0
  T=$(mktemp -d)
  # T is local: expand it now, the trap runs after this function returned
  # shellcheck disable=SC2064
  trap "rm -rf '$T'" EXIT
  mkdir "$T/bin"
  # in PATH order: the first of a name wins (ln refuses the later ones)
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    ln -s "$d"/* "$T/bin/" 2>/dev/null || true
  done
  rm -f "$T/bin/ip" "$T/bin/ssh-keygen"
  out=$(env PATH="$T/bin" KCMRUN_LAB_DIR="$T/lab" "$KCMRUN" lab up --name zq9miss 2>&1) || rc=$?
  [ "$rc" = 1 ] || fail "lab up without ip and ssh-keygen: exit $rc, not 1: $out"
  echo "$out" | grep -qx 'kcmrun lab: up: ip not found on PATH: apt-get install iproute2' ||
    fail "no line naming iproute2 for ip: $out"
  echo "$out" | grep -qx 'kcmrun lab: up: ssh-keygen not found on PATH: apt-get install openssh-client' ||
    fail "no line naming openssh-client for ssh-keygen: $out"
  echo "$out" | grep -qx 'kcmrun lab: up: tools missing on this machine; install them with: apt-get install iproute2 openssh-client' ||
    fail "no line installing both: $out"
  [ "$(echo "$out" | wc -l)" = 3 ] || fail "more than the three lines (a tool found was called missing?): $out"
  [ ! -e "$T/lab" ] || fail "lab up made $T/lab before its tools were checked"
  ! ip link show kcm-zq9miss >/dev/null 2>&1 || fail "lab up made a bridge"
  ok "missing tools named with their packages: $(echo "$out" | tr '\n' '|')"
}

"case_$CASE"
