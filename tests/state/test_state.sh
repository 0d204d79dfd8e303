#!/bin/bash
# Operator-proof state (issue 16, points 1-5) on the lab:
#   test_state.sh killrename|killtransfer|killbetween|crossinv|locks|envsh|limit|nodevars|corrupt|anyone|folders
# anyone:  kill -9 after the unit changed; the rerun comes from another state
#          folder, through ssh_config aliases, or as another login user with
#          become: each time every node is restarted onto the new flags (the
#          due restart is kept on the node, issue 24).
# folders: two state folders: a run with state B while a run with state A
#          transfers 120 MB fails naming A's holder; A completes; after kill -9
#          of a holder the next run gets the node at once.
# Each case starts from a converged lab (the controller-manager playbook, exit
# 0), and puts the lab back on exit (no shaping, holds released, the lab's
# own binary and values deployed again), also when it fails.
set -e
. "$(dirname "$0")/../lib.sh"
eval "$("$KCMRUN" lab env)"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SD=$KCMRUN_LAB_DIR/state-tests
NODES=($KCMRUN_LAB_NODES)
LABINV=$KCMRUN_LAB_INVENTORY
ENVSH=$KCMRUN_LAB_ENVIRONMENT
CLUSTER=$KCMRUN_LAB_DIR/cluster
UNIT=/etc/systemd/system/kube-controller-manager.service
BIN=/opt/k8s/bin/kube-controller-manager

# the playbook folder, plus hold.lua next to it (templates resolve from there)
mkdir -p "$T/pb"
cp -r "$REPO/playbooks/." "$T/pb/"
cp "$REPO/tests/faults/hold.lua" "$T/pb/"
PB=$T/pb/controller-manager.lua
HOLD=$T/pb/hold.lua
BIGPUT=$REPO/tests/faults/bigput.lua
luaq() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

lx() { "$KCMRUN" lab exec "$@"; }
veth() { echo "kcm-$KCMRUN_LAB_NAME-${1#node}"; }
shape() { for n in "$@"; do tc qdisc add dev "$(veth "$n")" root tbf rate 4mbit burst 32kbit latency 400ms; done; }
unshape() { for n in "${NODES[@]}"; do tc qdisc del dev "$(veth "$n")" root 2>/dev/null || true; done; }
kcm() { run "$KCMRUN" --state-dir "$SD" "$@"; }
BG=
bg() { "$KCMRUN" --state-dir "$SD" "$@" >"$T/bgout" 2>"$T/bgerr" & BG=$!; }
wait_bg() {
  local end=$((SECONDS + $1))
  while kill -0 "$BG" 2>/dev/null; do
    [ $SECONDS -lt $end ] || { cat "$T/bgout" "$T/bgerr"; fail "kcmrun still running after $1 s"; }
    sleep 0.2
  done
  set +e; wait "$BG"; BGRC=$?; set -e
  BG=
}
kill9() { kill -9 "$BG"; set +e; wait "$BG" 2>/dev/null; set -e; BG=; }
# wait_node NODE CMD...: until CMD succeeds inside NODE (30 s)
wait_node() {
  local n=$1; shift
  for _ in $(seq 1 300); do lx "$n" "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$T/bgout" "$T/bgerr" 2>/dev/null; fail "$n: never saw: $*"
}
clear_holds() {
  for n in "${NODES[@]}"; do lx "$n" touch /run/kcm-release; done
  sleep 0.5
  for n in "${NODES[@]}"; do lx "$n" rm -f /run/kcm-holding /run/kcm-release /run/kcm-after-ran; done
}
sha_on() { lx "$1" sh -c "sha256sum < '$2' 2>/dev/null | cut -c1-64"; }
pid_on() { lx "$1" systemctl show -p MainPID --value kube-controller-manager; }
pids() { for n in "${NODES[@]}"; do printf '%s ' "$(pid_on "$n")"; done; }
tmp_left() { lx "$1" sh -c "ls -a '$2' | grep -E '^\..*\.kcm-[0-9a-f.]+\.tmp$'" || true; }
# every node's kcm has another MainPID than in "$1" (a list from pids)
expect_restarted() {
  local before=($1) i=0
  for n in "${NODES[@]}"; do
    local now; now=$(pid_on "$n")
    [ "$now" != 0 ] || fail "$2: $n: kube-controller-manager is not running"
    [ "$now" != "${before[$i]}" ] || { cat "$T/out"; fail "$2: $n was not restarted (MainPID ${before[$i]})"; }
    i=$((i + 1))
  done
}
status_of() { sed -n "/^== $1\( \|$\)/,/^== \|^RECAP/p" "$T/out" | awk -v n="$2" '$2 == n {print $1}'; }
changed_rows() { awk '/^== /{s=$2} /^  changed /{print s ":" $2}' "$T/out" | sort | tr '\n' ' '; }
# the login user deploy (NOPASSWD sudo, the lab key) on every node, and
# $T/inv-deploy.lua logging in as deploy with become
deploy_user() {
  for n in "${NODES[@]}"; do
    lx "$n" sh -c 'id deploy >/dev/null 2>&1 || useradd -m -s /bin/sh deploy
      install -d -o deploy -g deploy -m 0700 /home/deploy/.ssh
      install -o deploy -g deploy -m 0600 /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys
      echo "deploy ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/kcm-deploy && chmod 0440 /etc/sudoers.d/kcm-deploy'
  done
  printf 'local inv = dofile(%s)\ninv.ssh = inv.ssh or {}\ninv.ssh.user = "deploy"\ninv.ssh.become = true\nreturn inv\n' \
    "$(luaq "$LABINV")" >"$T/inv-deploy.lua"
}
converge() {
  kcm -i "$LABINV" "$PB"
  [ "$RC" = 0 ] || { cat "$T/out" "$T/err"; fail "${1:-setup}: the playbook does not converge on the lab"; }
}
# a kube-controller-manager stand-in of the lab's version padded with $2 MiB:
# another checksum, same behaviour (built like lab/cluster.sh builds it)
make_binary() {
  local out=$1 stage=$T/stage-$RANDOM
  mkdir -p "$stage"
  cp "$REPO/lab/standins/standin_common.py" "$REPO/lab/standins/component.py" "$stage/"
  printf 'NAME = "kube-controller-manager"\nVERSION = "%s"\n' "$(cat "$CLUSTER/bin/version")" >"$stage/standin_build.py"
  printf 'import component\ncomponent.main()\n' >"$stage/__main__.py"
  head -c "$2M" /dev/urandom >"$stage/padding.bin"
  /usr/bin/python3 -m zipapp "$stage" -p "/usr/bin/python3 -u" -o "$out"
  chmod 0755 "$out"
  rm -rf "$stage"
}
# what is due on a node lives on the node (whoever runs next reads it there)
DUE=/var/lib/kcmrun/due.json
due_on() { lx "$1" cat $DUE 2>/dev/null || true; }
node_ip() { bash -c '. "$1"; i=${2#node}; echo "${NODE_IPS[$((i-1))]}"' _ "$ENVSH" "$1"; }

restore() {
  set +e
  [ -n "$BG" ] && kill -9 "$BG" 2>/dev/null
  unshape
  clear_holds
  for n in "${NODES[@]}"; do lx "$n" rm -f /etc/kubernetes/kcm-big.bin; done
  "$KCMRUN" --state-dir "$SD" -i "$LABINV" "$PB" >/dev/null 2>&1 ||
    "$KCMRUN" --state-dir "$SD" -i "$LABINV" "$PB" >/dev/null 2>&1 || echo "warning: the lab did not converge back" >&2
  rm -rf "$T"
}
trap restore EXIT
clear_holds
unshape

# kill9_case LABEL: the rerun after the kill restarts every node and exits 0;
# $1 = the binary the killed run was deploying
rerun_after_kill() {
  local label=$1 bin=$2
  unshape
  kcm -i "$LABINV" -e kcm_binary="$bin" "$PB"
  expect_rc 0 "$label: the rerun"
  expect_restarted "$BEFORE" "$label"
  local want; want=$(sha256sum <"$bin" | cut -c1-64)
  for n in "${NODES[@]}"; do
    [ "$(sha_on "$n" $BIN)" = "$want" ] || fail "$label: $n does not run the new binary"
    [ -z "$(tmp_left "$n" /opt/k8s/bin)" ] || fail "$label: $n: temp file left: $(tmp_left "$n" /opt/k8s/bin)"
  done
}

case "$1" in
killrename)
  # 1a. kill -9 right after the first node's rename: node1's new binary is in
  # place, node2/node3 are still receiving theirs over a 4 Mbit/s link
  converge
  BEFORE=$(pids)
  make_binary "$T/kcm-a" 24
  want=$(sha256sum <"$T/kcm-a" | cut -c1-64)
  shape node2 node3
  bg -i "$LABINV" -e kcm_binary="$T/kcm-a" "$PB"
  for _ in $(seq 1 600); do [ "$(sha_on node1 $BIN)" = "$want" ] && break; sleep 0.1; done
  kill9
  [ "$(sha_on node1 $BIN)" = "$want" ] || fail "node1 never got the new binary: the kill came at another instant"
  for n in node2 node3; do
    [ "$(sha_on "$n" $BIN)" != "$want" ] || fail "$n already had the new binary: the kill came at another instant"
  done
  due_on node1 | grep -q '"kube-controller-manager":{"restart":true}' ||
    fail "node1's restart is not in its state file on the node after kill -9: $(due_on node1)"
  rerun_after_kill "kill -9 after node1's rename" "$T/kcm-a"
  pass "kill -9 after node1's rename (node2/3 mid-transfer): node1's restart was on disk; the rerun restarted all 3 (MainPIDs $BEFORE-> $(pids)), exit 0, no temp file left"
  ;;
killtransfer)
  # 1b. kill -9 mid-transfer on every node
  converge
  BEFORE=$(pids)
  make_binary "$T/kcm-b" 24
  shape "${NODES[@]}"
  bg -i "$LABINV" -e kcm_binary="$T/kcm-b" "$PB"
  wait_node node1 sh -c "ls -la /opt/k8s/bin | awk '/\.kube-controller-manager\.kcm-.*\.tmp$/ && \$5 > 1000000 {f=1} END {exit !f}'"
  kill9
  for n in "${NODES[@]}"; do
    due_on "$n" | grep -q '"kube-controller-manager":{"restart":true}' ||
      fail "$n: the restart was not marked due on the node before the transfer: $(due_on "$n")"
  done
  [ -n "$(tmp_left node1 /opt/k8s/bin)" ] || fail "no temp file of the killed run on node1: the kill came at another instant"
  rerun_after_kill "kill -9 mid-transfer" "$T/kcm-b"
  pass "kill -9 mid-transfer on 3 nodes: restarts were marked due first; the rerun restarted all 3, exit 0, the killed run's temp files are gone"
  ;;
killbetween)
  # 1c. kill -9 between steps: every file changed, the restart not yet run
  converge
  BEFORE=$(pids)
  make_binary "$T/kcm-c" 1
  KCM_HOLD_BEFORE=start bg -i "$LABINV" -e kcm_binary="$T/kcm-c" "$HOLD"
  for n in "${NODES[@]}"; do wait_node "$n" test -e /run/kcm-holding; done
  kill9
  clear_holds
  rerun_after_kill "kill -9 between steps" "$T/kcm-c"
  pass "kill -9 between the binary and start steps: the rerun restarted all 3, exit 0"
  ;;
crossinv)
  # a restart left due by an inventory.lua run is done by an environment.sh run
  converge
  BEFORE=$(pids)
  KCM_HOLD_BEFORE=start bg -i "$LABINV" -e log_level=3 "$HOLD"
  for n in "${NODES[@]}"; do wait_node "$n" test -e /run/kcm-holding; done
  kill9
  clear_holds
  for n in "${NODES[@]}"; do lx "$n" grep -q -- "--v=3" $UNIT || fail "$n: the killed run had not changed the unit"; done
  kcm -i "$ENVSH" -e log_level=3 "$PB"
  expect_rc 0 "environment.sh run"
  [ "$(status_of unit node1)" = ok ] || { cat "$T/out"; fail "the unit changed again: the restart would not prove the state was shared"; }
  expect_restarted "$BEFORE" "environment.sh run after a killed inventory.lua run"
  pass "a restart due from an -i inventory.lua run (killed) was done by the next -i environment.sh run ($BEFORE-> $(pids))"
  ;;
locks)
  converge
  # 2a. two runs through different inventory files: the second one reports
  # the nodes the first one holds as locked, and leaves them alone
  bg -i "$LABINV" "$HOLD"
  first=$BG
  for n in "${NODES[@]}"; do wait_node "$n" test -e /run/kcm-holding; done
  kcm -i "$ENVSH" "$PB"
  expect_rc 4 "a second run through environment.sh"
  for n in "${NODES[@]}"; do
    grep -qE "^  FAILED +$n " "$T/out" || { cat "$T/out"; fail "$n is not reported locked"; }
    expect_out "$n: locked by another kcmrun run \([^ ]+@[^ ]+ pid $first run [0-9a-f]+ since [^:]+:[^:]+:[^:]+: .*kcmrun --state-dir $SD -i $LABINV $HOLD\); wait for it \(--lock-wait SECONDS\), or use --no-lock"
    ! grep -qE "^  changed +$n " "$T/out" || fail "the second run changed locked $n"
  done
  clear_holds
  wait_bg 120
  [ "$BGRC" = 0 ] || { cat "$T/bgout"; fail "the first run failed ($BGRC)"; }
  # 2b. a --no-lock run putting the same file while the first run's transfer
  # to node1 is in flight: its clean-up leaves the live run's temp file alone
  head -c 8M /dev/urandom >"$T/big.bin"
  head -c 16k /dev/urandom >"$T/small.bin"
  shape node1
  KCM_BIGPUT_SRC=$T/big.bin bg -i "$LABINV" --limit node1 "$BIGPUT"
  first=$BG
  wait_node node1 sh -c 'ls -a /etc/kubernetes | grep -q "^\.kcm-big\.bin\.kcm-"'
  KCM_BIGPUT_SRC=$T/small.bin kcm --no-lock -i "$ENVSH" --limit node1 "$BIGPUT"
  expect_rc 0 "the --no-lock run"
  [ -n "$(tmp_left node1 /etc/kubernetes)" ] || fail "the first run's temp file is gone after the second run's put"
  wait_bg 120
  [ "$BGRC" = 0 ] || { cat "$T/bgout" "$T/bgerr"; fail "the first run failed ($BGRC): its temp file was deleted under it?"; }
  [ "$(sha_on node1 /etc/kubernetes/kcm-big.bin)" = "$(sha256sum <"$T/big.bin" | cut -c1-64)" ] || fail "node1 holds a wrong file"
  unshape
  # a temp file of a run that is gone (a run id with no live lock) is stale
  lx node1 sh -c 'head -c 100 /dev/zero >/etc/kubernetes/.kcm-big.bin.kcm-00000000deadbeef.0000.tmp'
  KCM_BIGPUT_SRC=$T/small.bin kcm -i "$LABINV" --limit node1 "$BIGPUT"
  expect_rc 0 "a put after a dead run"
  [ -z "$(tmp_left node1 /etc/kubernetes)" ] || fail "a dead run's temp file was left: $(tmp_left node1 /etc/kubernetes)"
  pass "a run through environment.sh reports the nodes an inventory.lua run holds as locked (pid $first and its command) and touches nothing; a --no-lock put beside a live transfer keeps its temp file (the live run ends 0); a dead run's temp file goes"
  ;;
envsh)
  converge
  sed 's|^export SERVICE_CIDR=.*|export SERVICE_CIDR="10.96.0.0/16"|' "$ENVSH" >"$T/env-new.sh"
  grep -q 'SERVICE_CIDR="10.96.0.0/16"' "$T/env-new.sh" || fail "could not derive the environment.sh"
  # an exported SERVICE_CIDR of another value: the file's wins
  SERVICE_CIDR=10.77.0.0/16 kcm -i "$T/env-new.sh" "$PB"
  expect_rc 0 "exported SERVICE_CIDR"
  for n in "${NODES[@]}"; do
    lx "$n" grep -q -- "--service-cluster-ip-range=10.96.0.0/16" $UNIT || fail "$n: the unit lacks the file's SERVICE_CIDR"
  done
  converge "back to the lab's values"
  lx node1 grep -q -- "--service-cluster-ip-range=10.254.0.0/16" $UNIT || fail "not back"
  # after `set -a; . environment.sh` of the older file, every value still comes from the new one
  set +e
  ( set -a; . "$ENVSH"; set +a; exec "$KCMRUN" --state-dir "$SD" -i "$T/env-new.sh" "$PB" ) >"$T/out" 2>"$T/err"
  RC=$?
  set -e
  expect_rc 0 "after set -a; . environment.sh (older)"
  for n in "${NODES[@]}"; do
    lx "$n" grep -q -- "--service-cluster-ip-range=10.96.0.0/16" $UNIT || fail "$n: the unit lacks the file's SERVICE_CIDR after set -a"
  done
  pass "environment.sh values come from the file: SERVICE_CIDR exported as 10.77.0.0/16, and after set -a; . of the older file, the unit got 10.96.0.0/16"
  ;;
limit)
  converge
  ips=$(bash -c '. "$1"; echo "${NODE_IPS[@]}"' _ "$ENVSH")
  sans_ok() {
    local sans; sans=$(lx node1 openssl x509 -noout -ext subjectAltName -in /etc/kubernetes/cert/kube-controller-manager.pem)
    for ip in 127.0.0.1 $ips; do grep -q "IP Address:$ip\b" <<<"$sans" || fail "$1: the certificate on node1 lacks $ip: $sans"; done
  }
  # on a deployed lab
  BEFORE=$(pids)
  kcm -i "$LABINV" --limit node1 "$PB"
  expect_rc 0 "--limit node1 on a deployed lab"
  [ -z "$(changed_rows)" ] || { cat "$T/out"; fail "--limit node1 changed: $(changed_rows)"; }
  sans_ok "deployed"
  kcm -i "$LABINV" "$PB"
  expect_rc 0 "full run after --limit"
  [ -z "$(changed_rows)" ] || { cat "$T/out"; fail "the full run after --limit node1 changed: $(changed_rows)"; }
  [ "$(pids)" = "$BEFORE" ] || fail "the controller manager was restarted ($BEFORE-> $(pids))"
  # on a fresh lab: no certificate on the control machine, none on the nodes
  for n in "${NODES[@]}"; do
    lx "$n" sh -c "systemctl disable --now kube-controller-manager 2>/dev/null; rm -f /etc/kubernetes/cert/kube-controller-manager*.pem /etc/kubernetes/kube-controller-manager.kubeconfig $UNIT $BIN; systemctl daemon-reload"
  done
  rm -f "$CLUSTER"/kube-controller-manager*.pem "$CLUSTER"/kube-controller-manager.csr "$CLUSTER"/kube-controller-manager.kubeconfig
  kcm -i "$LABINV" --limit node1 "$PB"
  expect_rc 0 "--limit node1 on a fresh lab"
  sans_ok "fresh"
  kcm -i "$LABINV" "$PB"
  expect_rc 0 "full run after --limit on a fresh lab"
  for s in certificate kubeconfig; do
    [ "$(status_of $s node1)" = ok ] || { cat "$T/out"; fail "the full run reissued the certificate ($s on node1: $(status_of $s node1))"; }
  done
  kcm -i "$LABINV" "$PB"
  expect_rc 0 "second full run"
  [ -z "$(changed_rows)" ] || { cat "$T/out"; fail "the second full run changed: $(changed_rows)"; }
  pass "--limit node1, deployed and fresh: the certificate on node1 lists 127.0.0.1 $ips; the full runs afterwards reissue nothing and report 0 changed"
  ;;
nodevars)
  converge
  u1=$(sha_on node1 $UNIT); u3=$(sha_on node3 $UNIT)
  printf 'local inv = dofile(%s)\ninv.nodes[2].vars.log_level = "4"\ninv.vars.no_such_setting = "x"\nreturn inv\n' "$(luaq "$LABINV")" >"$T/inv-node.lua"
  kcm -v -i "$T/inv-node.lua" "$PB"
  expect_rc 0 "node2 vars.log_level"
  [ "$(changed_rows)" = "restart:node2 start:node2 unit:node2 " ] || { cat "$T/out"; fail "expected only node2's unit and restart, got: $(changed_rows)"; }
  lx node2 grep -q -- "--v=4" $UNIT || fail "node2: --v=4 not in its unit"
  [ "$(sha_on node1 $UNIT)" = "$u1" ] && [ "$(sha_on node3 $UNIT)" = "$u3" ] || fail "node1/node3's unit changed"
  expect_out "inventory keys nothing read \(.*\): .*vars\.no_such_setting"
  ! grep "inventory keys nothing read" "$T/out" | grep -q "log_level" || fail "log_level reported as unread"
  kcm -i "$T/inv-node.lua" "$PB"
  ! grep -q "inventory keys nothing read" "$T/out" || fail "unread keys reported without -v"
  # the layers: -e > node vars > group vars > inventory vars (checked with --check --diff)
  printf 'local inv = dofile(%s)\ninv.vars.log_level = "1"\ninv.group_vars = { masters = { log_level = "3" } }\ninv.nodes[2].vars.log_level = "6"\nreturn inv\n' "$(luaq "$LABINV")" >"$T/inv-layers.lua"
  levels() { awk '/^      --- node[0-9]+:.*kube-controller-manager.service/ {split($2, a, ":"); n=a[1]} /^      \+  --v=/ {print n "=" $2}' "$T/out" | tr '\n' ' '; }
  kcm -C -D -i "$T/inv-layers.lua" "$PB"
  expect_rc 0 "--check with layers"
  [ "$(levels)" = "node1=--v=3 node2=--v=6 node3=--v=3 " ] || { cat "$T/out"; fail "layers: $(levels)"; }
  kcm -C -D -i "$T/inv-layers.lua" -e log_level=5 "$PB"
  [ "$(levels)" = "node1=--v=5 node2=--v=5 node3=--v=5 " ] || { cat "$T/out"; fail "-e over the layers: $(levels)"; }
  pass "node2's vars.log_level=4 changed only node2's unit (and restarted only it); group vars beat inventory vars, node vars beat group vars, -e beats all; an unread inventory key is named with -v"
  ;;
corrupt)
  converge
  lx node2 sh -c "printf '{\"due\": {\"kube-controller-manager\": ' >$DUE"
  kcm -i "$LABINV" "$PB"
  expect_rc 0 "a run with a corrupt state file"
  expect_out "warning: node2: state file $DUE is corrupt .*a restart an earlier run left due there may be missed; kept as $DUE.corrupt-"
  lx node2 sh -c "ls $DUE.corrupt-*" >/dev/null 2>&1 || fail "no copy kept aside on node2"
  lx node2 sh -c "cat $DUE.corrupt-*" | grep -q '^{"due": {"kube-controller-manager": $' || fail "the copy is not the corrupt file"
  lx node2 sh -c "rm -f $DUE.corrupt-*"
  pass "a corrupt state file: a warning names it and what it may cost, a copy is kept aside, the run goes on"
  ;;
anyone)
  deploy_user
  # names only: every node reached through the lab's ssh_config alias
  printf 'local inv = dofile(%s)\nfor _, n in ipairs(inv.nodes) do n.host = nil end\ninv.ssh = inv.ssh or {}\ninv.ssh.config = %s\nreturn inv\n' \
    "$(luaq "$LABINV")" "$(luaq "$KCMRUN_LAB_SSH_CONFIG")" >"$T/inv-alias.lua"
  converge
  lvl=3
  for how in statedir alias deploy; do
    lvl=$((lvl + 1))
    BEFORE=$(pids)
    KCM_HOLD_BEFORE=start bg -i "$LABINV" -e log_level=$lvl "$HOLD"
    for n in "${NODES[@]}"; do wait_node "$n" test -e /run/kcm-holding; done
    kill9
    clear_holds
    for n in "${NODES[@]}"; do lx "$n" grep -q -- "--v=$lvl" $UNIT || fail "$how: $n: the killed run had not changed the unit"; done
    case $how in
      statedir) run "$KCMRUN" --state-dir "$T/other-state" -i "$LABINV" -e log_level=$lvl "$PB" ;;
      alias) run "$KCMRUN" --state-dir "$T/alias-state" -i "$T/inv-alias.lua" -e log_level=$lvl "$PB" ;;
      deploy) run "$KCMRUN" --state-dir "$T/deploy-state" -i "$T/inv-deploy.lua" -e log_level=$lvl "$PB" ;;
    esac
    expect_rc 0 "$how: the rerun"
    expect_restarted "$BEFORE" "$how: the rerun after kill -9"
    for n in "${NODES[@]}"; do
      lx "$n" sh -c "tr '\\0' ' ' </proc/\$(systemctl show -p MainPID --value kube-controller-manager)/cmdline" | grep -q -- "--v=$lvl" ||
        fail "$how: $n does not run with --v=$lvl"
    done
    pass "kill -9 after the unit changed, rerun from $how: every node restarted onto --v=$lvl"
  done
  ;;
folders)
  converge
  head -c 120M /dev/urandom >"$T/big.bin"
  want=$(sha256sum <"$T/big.bin" | cut -c1-64)
  shape node1
  KCM_BIGPUT_SRC=$T/big.bin "$KCMRUN" --state-dir "$T/state-a" -i "$LABINV" --limit node1 "$BIGPUT" >"$T/bgout" 2>"$T/bgerr" & BG=$!
  first=$BG
  wait_node node1 sh -c 'ls -a /etc/kubernetes | grep -q "^\.kcm-big\.bin\.kcm-"'
  t0=$SECONDS
  run "$KCMRUN" --state-dir "$T/state-b" -i "$ENVSH" --limit node1 "$PB"
  expect_rc 4 "a run from state folder B while A holds node1"
  expect_out "node1: locked by another kcmrun run \([^ ]+ pid $first run [0-9a-f]+ since .*--state-dir $T/state-a .*\); wait for it \(--lock-wait SECONDS\)"
  ! grep -qE "^  changed +node1 " "$T/out" || fail "B changed node1 while A held it"
  unshape
  wait_bg 300
  [ "$BGRC" = 0 ] || { cat "$T/bgout" "$T/bgerr"; fail "A failed ($BGRC) while B ran"; }
  [ "$(sha_on node1 /etc/kubernetes/kcm-big.bin)" = "$want" ] || fail "node1 holds a wrong 120 MB file after A"
  pass "state folder B is refused node1 while A transfers 120 MB (naming A's pid and folder); A completes with the right checksum"
  # a holder killed with -9: its connection goes, and so does the lock
  KCM_HOLD_BEFORE=start bg -i "$LABINV" "$HOLD"
  for n in "${NODES[@]}"; do wait_node "$n" test -e /run/kcm-holding; done
  kill9
  clear_holds
  t0=$SECONDS
  run "$KCMRUN" --state-dir "$T/state-b" --lock-wait 30 -i "$LABINV" "$PB"
  expect_rc 0 "the run after the holder was killed"
  [ $((SECONDS - t0)) -lt 30 ] || fail "the killed holder's lock was not released within 30 s"
  pass "after kill -9 of the holder the next run (another state folder) got every node in $((SECONDS - t0)) s"
  # two control identities (another $HOME, state folder and ssh user) exclude each other on the nodes
  deploy_user
  mkdir -p "$T/home-a" "$T/home-b"
  KCM_HOLD_BEFORE=start HOME=$T/home-a bg -i "$LABINV" "$HOLD"
  first=$BG
  for n in "${NODES[@]}"; do wait_node "$n" test -e /run/kcm-holding; done
  HOME=$T/home-b run "$KCMRUN" --state-dir "$T/home-b/state" -i "$T/inv-deploy.lua" "$PB"
  expect_rc 4 "another identity while the first holds the nodes"
  for n in "${NODES[@]}"; do
    expect_out "$n: locked by another kcmrun run \([^ ]+ pid $first run "
  done
  clear_holds
  wait_bg 120
  [ "$BGRC" = 0 ] || { cat "$T/bgout" "$T/bgerr"; fail "the first identity's run failed ($BGRC)"; }
  pass "two control identities (other HOME, state folder, ssh user deploy with become): the second is refused every node, naming the first"
  ;;
certs)
  # issue 24 point 4: the certificates on the nodes are the truth. A run
  # from an empty state folder adopts them: nothing changes, nothing
  # restarts. A real reason (a new member's address) reissues once, named.
  converge
  BEFORE=$(pids)
  run "$KCMRUN" --state-dir "$T/empty-state" -v -i "$LABINV" "$PB"
  expect_rc 0 "a run from an empty state folder"
  [ -z "$(changed_rows)" ] || { cat "$T/out"; fail "a run from an empty state folder changed: $(changed_rows)"; }
  expect_out "pki: adopted node[0-9]'s certificate of kube-controller-manager"
  ! grep -q "pki: issue" "$T/out" || { cat "$T/out"; fail "a certificate was issued although the nodes hold a valid one"; }
  [ "$(pids)" = "$BEFORE" ] || fail "a member restarted: $BEFORE-> $(pids)"
  pass "from an empty state folder: the nodes' certificate adopted, 0 changed, no restart"
  # a 4th member, left out of this run with --limit: its address is a SAN
  # the installed certificate lacks
  printf 'local inv = dofile(%s)\ntable.insert(inv.nodes, { name = "node4", host = "169.254.250.250" })\ntable.insert(inv.groups.masters, "node4")\nreturn inv\n' \
    "$(luaq "$LABINV")" >"$T/inv4.lua"
  run "$KCMRUN" --state-dir "$T/empty-state" -i "$T/inv4.lua" --limit node1,node2,node3 "$PB"
  expect_rc 0 "with a 4th member"
  expect_out "pki: issue .*kube-controller-manager\.pem \(SAN 169\.254\.250\.250 missing\)"
  [ "$(grep -c 'pki: issue' "$T/out")" = 1 ] || { cat "$T/out"; fail "not issued exactly once"; }
  run "$KCMRUN" --state-dir "$T/empty-state" -i "$T/inv4.lua" --limit node1,node2,node3 "$PB"
  expect_rc 0 "again with a 4th member"
  ! grep -q "pki: issue" "$T/out" || fail "reissued a second time"
  converge "back to 3 members"
  pass "a new member's address: reissued once, the reason named (SAN 169.254.250.250 missing); the rerun keeps it"
  ;;
interrupted)
  # Ctrl-C after the unit changed: the recap says interrupted and lists the
  # restarts still due, per node (they are kept on the nodes)
  converge
  KCM_HOLD_BEFORE=start bg -i "$LABINV" -e log_level=7 "$HOLD"
  for n in "${NODES[@]}"; do wait_node "$n" test -e /run/kcm-holding; done
  kill -INT "$BG"
  wait_bg 60
  clear_holds
  # the recap's own line, not any word of the run's output; and the exit of SIGINT
  sed -n "/^RECAP/,\$p" "$T/bgout" | grep -qE "^  interrupted" || { cat "$T/bgout"; fail "the recap does not say interrupted"; }
  [ "$BGRC" = 130 ] || { cat "$T/bgout" "$T/bgerr"; fail "interrupted run: exit $BGRC, expected 130"; }
  for n in "${NODES[@]}"; do
    sed -n "/^RECAP/,\$p" "$T/bgout" | grep -A3 -E "^  $n " | grep -q "still due: restart" ||
      { cat "$T/bgout"; fail "$n: the recap does not list its due restart"; }
  done
  converge "after the interrupted run"
  pass "interrupted run: the recap says interrupted and lists each node's due restart; the next run does it"
  ;;
*) fail "unknown case $1" ;;
esac
