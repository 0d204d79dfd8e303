#!/bin/bash
# Faults, bad input and hostile input against the lab (issue 8, points 1-8):
#   test_faults.sh linkdown|cmdtimeout|sshd|apiserver|diskfull|signal|lock|secrets|insecure|hostile
# Every case first converges the lab (the controller-manager playbook, exit 0),
# injects its fault, checks what kcmrun reported and left behind, and puts the
# lab back (links up, no shaping, sshd and the apiserver running, no tmpfs)
# on exit, also when it fails: other tests share the lab.
set -e
. "$(dirname "$0")/../lib.sh"
eval "$("$KCMRUN" lab env)"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/tests/faults
SD=$KCMRUN_LAB_DIR/faults-state
NODES=($KCMRUN_LAB_NODES)
LABINV=$KCMRUN_LAB_INVENTORY
CLUSTER=$KCMRUN_LAB_DIR/cluster

# the playbook folder, plus hold.lua next to it (templates resolve from there)
mkdir -p "$T/pb"
cp -r "$REPO/playbooks/." "$T/pb/"
cp "$HERE/hold.lua" "$T/pb/"
PB=$T/pb/controller-manager.lua
HOLD=$T/pb/hold.lua
BIGPUT=$HERE/bigput.lua
# the lab's inventory with a short io_timeout: a dead link is noticed in ~6 s
# luaq S: S as a Lua string literal
luaq() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
INV=$T/inv.lua
printf 'local inv = dofile(%s)\ninv.ssh.io_timeout = 6\nreturn inv\n' "$(luaq "$LABINV")" >"$INV"

lx() { "$KCMRUN" lab exec "$@"; }
veth() { echo "kcm-$KCMRUN_LAB_NAME-${1#node}"; }
kcm() { run "$KCMRUN" --state-dir "$SD" "$@"; }
BG=
# bg ARGS...: kcmrun in the background; wait_bg SECS waits for it (a run that
# is still going after SECS hangs: that is the failure this suite is about)
bg() { "$KCMRUN" --state-dir "$SD" "$@" >"$T/out" 2>"$T/err" & BG=$!; }
wait_bg() {
  local end=$((SECONDS + $1))
  while kill -0 "$BG" 2>/dev/null; do
    [ $SECONDS -lt $end ] || { cat "$T/out" "$T/err"; fail "kcmrun still running after $1 s (hung)"; }
    sleep 0.2
  done
  set +e; wait "$BG"; RC=$?; set -e
  BG=
}
# wait_node NODE CMD...: until CMD succeeds inside NODE
wait_node() {
  local n=$1; shift
  for _ in $(seq 1 300); do lx "$n" "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$T/out" "$T/err" 2>/dev/null; fail "$n: never saw: $*"
}
release() { for n in "$@"; do lx "$n" touch /run/kcm-release; done; }
line_of() { grep -E "^  [A-Za-z]+ +$2 " <(sed -n "/^== $1/,/^== \|^RECAP/p" "$T/out") || true; }
status_of() { line_of "$1" "$2" | awk '{print $1}'; }
# a step's status on every node is one of the given ones
expect_status() {
  local step=$1 want=$2; shift 2
  for n in "$@"; do
    [[ "$(status_of "$step" "$n")" =~ ^($want)$ ]] || { cat "$T/out"; fail "$step on $n: '$(status_of "$step" "$n")', expected $want"; }
  done
}
converge() {
  kcm -i "$LABINV" "$PB"
  [ "$RC" = 0 ] || { cat "$T/out" "$T/err"; fail "${1:-setup}: the playbook does not converge on the lab"; }
}
sha_on() { lx "$1" sh -c "sha256sum < '$2' 2>/dev/null | cut -c1-64"; }
tmp_left() { lx "$1" sh -c "ls -a '$2' | grep -E '^\..*\.kcm-[0-9a-f.]+\.tmp$'" || true; }

# A component that (re)started while it could not reach the apiserver (the
# lease holder exits when it cannot renew) runs without its authentication
# configuration, as the real one does, and answers every request as
# anonymous (403) until restarted: the operator's restart to make after an
# outage, not the next case's fault. Restarts it where this process says so.
reauth() {
  for n in "${NODES[@]}"; do
    lx "$n" sh -c 'id=$(systemctl show -p InvocationID --value kube-controller-manager) && [ -n "$id" ] &&
      journalctl _SYSTEMD_INVOCATION_ID="$id" --no-pager -o cat | grep -q "Continuing without authentication configuration" &&
      systemctl restart kube-controller-manager' >/dev/null 2>&1 || true
  done
}

restore() {
  set +e
  # a run still going is stopped; it ends once its hold commands are released below
  [ -n "$BG" ] && kill "$BG" 2>/dev/null
  for n in "${NODES[@]}"; do
    lx "$n" ip link set eth0 up
    tc qdisc del dev "$(veth "$n")" root 2>/dev/null
    lx "$n" sh -c 'mountpoint -q /etc/kubernetes && umount -l /etc/kubernetes; rm -f /run/kcm-holding /run/kcm-release /run/kcm-after-ran /etc/kubernetes/kcm-big.bin /etc/kubernetes/.kcm-big.bin.kcm-*.tmp'
    lx "$n" sh -c 'systemctl is-active -q ssh || { systemctl reset-failed ssh; systemctl start ssh; }'
  done
  clear_holds
  bash "$REPO/lab/cluster.sh" status "$CLUSTER" >/dev/null 2>&1 ||
    bash "$REPO/lab/cluster.sh" up "$CLUSTER" "$KCMRUN_LAB_BRIDGE_IP" >/dev/null
  for n in "${NODES[@]}"; do
    for _ in $(seq 1 100); do ssh -F "$KCMRUN_LAB_SSH_CONFIG" "$n" true 2>/dev/null && break; sleep 0.1; done
  done
  reauth
  [ -n "$BG" ] && wait "$BG" 2>/dev/null
  [ -n "${RESTORE_EXTRA:-}" ] && eval "$RESTORE_EXTRA"
  rm -rf "$T"
}
trap restore EXIT
# a hold command that outlived its run (the ssh 'signal' request does not stop
# it) ends when /run/kcm-release appears: release, then clear
clear_holds() {
  for n in "${NODES[@]}"; do lx "$n" touch /run/kcm-release; done
  sleep 0.5
  for n in "${NODES[@]}"; do lx "$n" rm -f /run/kcm-holding /run/kcm-release /run/kcm-after-ran; done
}
clear_holds

case "$1" in
linkdown)
  converge
  # 1. the link goes down while a command runs on node2
  bg -i "$INV" "$HOLD"
  wait_node node2 test -e /run/kcm-holding
  lx node2 ip link set eth0 down
  release node1 node3
  wait_bg 120
  expect_rc 4 "link down mid-command"
  expect_status hold UNREACHABLE node2
  expect_out "node2 .*unreachable: connection lost"
  expect_status hold ok node1 node3
  expect_status verify ok node1 node3
  [ -z "$(line_of verify node2)" ] || fail "node2 went on after it became unreachable"
  lx node2 ip link set eth0 up
  clear_holds
  # 2. the link goes down while a file is in transit to node2 (shaped to 4 Mbit/s)
  head -c 8M /dev/urandom >"$T/big.bin"
  tc qdisc add dev "$(veth node2)" root tbf rate 4mbit burst 32kbit latency 200ms
  export KCM_BIGPUT_SRC=$T/big.bin; bg -i "$INV" "$BIGPUT"
  wait_node node2 sh -c 'ls -a /etc/kubernetes | grep -q "^\.kcm-big\.bin\.kcm-"'
  lx node2 ip link set eth0 down
  wait_bg 120
  expect_rc 4 "link down mid-transfer"
  expect_status bigput UNREACHABLE node2
  expect_out "node2 .*unreachable: connection lost: put /etc/kubernetes/kcm-big.bin"
  expect_status bigput changed node1 node3
  lx node2 ip link set eth0 up
  tc qdisc del dev "$(veth node2)" root
  # the rerun converges; the temp file the cut left is gone with it
  kcm -i "$INV" "$BIGPUT"
  expect_rc 0 "rerun after the link is back"
  [ "$(sha_on node2 /etc/kubernetes/kcm-big.bin)" = "$(sha256sum <"$T/big.bin" | cut -c1-64)" ] || fail "node2: file differs after rerun"
  [ -z "$(tmp_left node2 /etc/kubernetes)" ] || fail "node2: temp file left: $(tmp_left node2 /etc/kubernetes)"
  reauth
  converge "after link down"
  pass "link cut mid-command and mid-transfer: node2 unreachable within io_timeout, node1/node3 finished; rerun converges, no temp file left"
  ;;
cmdtimeout)
  converge
  printf 'local inv = dofile(%s)\ninv.ssh.command_timeout = 3\nreturn inv\n' "$(luaq "$LABINV")" >"$T/inv-ct.lua"
  bg -i "$T/inv-ct.lua" "$HOLD"
  wait_node node2 test -e /run/kcm-holding
  release node1 node3          # node2's command never ends by itself
  wait_bg 120
  expect_rc 4 "a command that never ends"
  expect_status hold FAILED node2
  expect_out "node2: 'sh' '-c' .*: timed out after 3s"
  expect_status verify ok node1 node3
  # the command is ended on the node with its channel (its wrapper sees EOF)
  sleep 1
  ! lx node2 pgrep -f "kcm-release" >/dev/null || fail "the timed-out command still runs on node2"
  clear_holds
  converge "after the timeout"
  pass "a command over ssh.command_timeout fails its node with 'timed out after 3s' and is ended there; the others finish"
  ;;
sshd)
  converge
  bg -i "$INV" "$HOLD"
  wait_node node2 test -e /run/kcm-holding
  lx node2 systemctl kill -s KILL ssh       # the listener ...
  lx node2 pkill -9 -x sshd                 # ... and the session's own sshd (this node's pid namespace only)
  release node1 node3
  wait_bg 120
  expect_rc 4 "sshd killed mid-step"
  expect_status hold "UNREACHABLE|FAILED" node2
  expect_out "node2 .*(connection lost|unreachable)"
  expect_status verify ok node1 node3
  [ -z "$(line_of verify node2)" ] || fail "node2 went on after losing sshd"
  lx node2 sh -c 'systemctl reset-failed ssh; systemctl start ssh'
  for _ in $(seq 1 100); do ssh -F "$KCMRUN_LAB_SSH_CONFIG" node2 true 2>/dev/null && break; sleep 0.1; done
  converge "rerun after sshd is back"
  pass "sshd killed on node2 mid-step: node2 reported with the reason, node1/node3 complete, the rerun converges"
  ;;
apiserver)
  converge
  bash "$REPO/lab/cluster.sh" down "$CLUSTER"
  kcm -i "$LABINV" "$PB"
  expect_rc 4 "apiserver down"
  for s in certificate kubeconfig binary unit; do expect_status $s ok "${NODES[@]}"; done
  expect_status rbac FAILED localhost
  expect_out "GET https://[^ ]*/clusterrolebindings/[^ ]*: the apiserver did not answer \(4 attempts over [0-9.]+s, with backoff\)"
  # the node steps that do not need the apiserver still run and succeed
  kcm -i "$LABINV" --skip rbac,verify "$PB"
  expect_rc 4 "apiserver down, without rbac"
  # the lease holder exits once it cannot renew (as the real one does), so
  # by now systemd may be restarting it and start may start it: at most that
  # one node changes
  expect_status start "ok|changed" "${NODES[@]}"
  [ "$(for n in "${NODES[@]}"; do status_of start "$n"; done | grep -c changed)" -le 1 ] ||
    { cat "$T/out"; fail "start changed more than the lease holder"; }
  expect_status leader FAILED localhost
  expect_out "leases/kube-controller-manager: the apiserver did not answer \(4 attempts"
  # verify: once the component's authorization cache has expired (10 s) it
  # cannot authorize /metrics; the message must not blame RBAC
  sleep 11
  kcm -i "$LABINV" --only verify "$PB"
  expect_rc 4 "verify with the apiserver down"
  # Every node answers SSH, so every node is FAILED, never UNREACHABLE, and
  # says why in one of the ways that can be true at that instant: the lease
  # holder exits when it cannot renew (as the real one does) and systemd
  # restarts it, so its port may be closed (whichever node leads, however
  # fast the machine); the others cannot authorize /metrics.
  expect_status verify FAILED "${NODES[@]}"
  ! grep -q "UNREACHABLE" "$T/out" || { cat "$T/out"; fail "a node that answers SSH was reported UNREACHABLE"; }
  for n in "${NODES[@]}"; do
    # (the crash report of a unit systemd is restarting: "did not come up:
    # activating (auto-restart), restarted N time(s) ...", or "is crash-looping")
    grep -qE "$n: (GET [^ ]+ -> 500: kube-controller-manager could not reach the apiserver|nothing listens on [0-9.]+:10257 \(kube-controller-manager.service is |kube-controller-manager.service (is|did not come up:|is crash-looping:) ?(activating|failed|inactive))" "$T/out" ||
      { cat "$T/out"; fail "$n: verify with the apiserver down gave none of the expected reasons"; }
  done
  ! grep -q "ClusterRoleBinding .* is missing" "$T/out" || { cat "$T/out"; fail "verify blamed RBAC for an apiserver that is down"; }
  bash "$REPO/lab/cluster.sh" up "$CLUSTER" "$KCMRUN_LAB_BRIDGE_IP" >/dev/null
  converge "after the apiserver is back"
  # A port that refuses connections on a node that answers SSH is a FAILED
  # check that says nothing listens there and what to look at (here: the
  # check asked on a port the component does not serve).
  kcm -i "$LABINV" --only verify -e kube_controller_manager_secure_port=10999 -e port_timeout=3 "$PB"
  expect_rc 4 "verify on a closed port"
  expect_status verify FAILED "${NODES[@]}"
  ! grep -q "UNREACHABLE" "$T/out" || { cat "$T/out"; fail "a closed port was reported UNREACHABLE"; }
  for n in "${NODES[@]}"; do
    expect_out "$n: nothing listens on [0-9.]+:10999 \(kube-controller-manager.service is active \(running\)[^;]*; journalctl -u kube-controller-manager\)"
  done
  pass "apiserver down: rbac/leader fail after 4 attempts with backoff, verify FAILED (not UNREACHABLE) with the apiserver or the closed port named, cert/kubeconfig/binary/unit/start ok; converges once it is back; a closed port is FAILED 'nothing listens on'"
  ;;
diskfull)
  converge
  head -c 16k /dev/urandom >"$T/old.bin"
  head -c 200k /dev/urandom >"$T/new.bin"
  lx node2 mount -t tmpfs -o size=256k,mode=0755 kcm-faults /etc/kubernetes
  export KCM_BIGPUT_SRC=$T/old.bin; kcm -i "$INV" --limit node2 "$BIGPUT"
  expect_rc 0 "old file on the small tmpfs"
  old=$(sha_on node2 /etc/kubernetes/kcm-big.bin)
  [ "$old" = "$(sha256sum <"$T/old.bin" | cut -c1-64)" ] || fail "old file not in place"
  lx node2 sh -c 'dd if=/dev/zero of=/etc/kubernetes/filler bs=4k 2>/dev/null; true'
  export KCM_BIGPUT_SRC=$T/new.bin; kcm -i "$INV" --limit node2 "$BIGPUT"
  expect_rc 4 "put on a full disk"
  expect_status bigput FAILED node2
  expect_out "node2: put /etc/kubernetes/kcm-big.bin: .*(no space|failure)"
  [ "$(sha_on node2 /etc/kubernetes/kcm-big.bin)" = "$old" ] || fail "the old file was damaged"
  [ -z "$(tmp_left node2 /etc/kubernetes)" ] || fail "temp file left: $(tmp_left node2 /etc/kubernetes)"
  [ "$(status_of after node2)" = "" ] || fail "the next step ran on the failed node"
  lx node2 umount /etc/kubernetes
  converge "after the disk-full fault"
  pass "disk full under /etc/kubernetes: put fails with the reason, the old file is intact, no temp file left"
  ;;
signal)
  converge
  head -c 16k /dev/urandom >"$T/old.bin"
  head -c 4M /dev/urandom >"$T/new.bin"
  oldsum=$(sha256sum <"$T/old.bin" | cut -c1-64); newsum=$(sha256sum <"$T/new.bin" | cut -c1-64)
  for sig in INT TERM; do
    export KCM_BIGPUT_SRC=$T/old.bin; kcm -i "$INV" "$BIGPUT"
    expect_rc 0 "old file"
    for n in "${NODES[@]}"; do lx "$n" rm -f /run/kcm-after-ran; tc qdisc add dev "$(veth "$n")" root tbf rate 4mbit burst 32kbit latency 200ms; done
    # a grace longer than the transfer (~8 s at 4 Mbit/s): the put in flight finishes
    export KCM_BIGPUT_SRC=$T/new.bin; bg -i "$INV" --grace 60 "$BIGPUT"
    wait_node node1 sh -c 'ls -a /etc/kubernetes | grep -q "^\.kcm-big\.bin\.kcm-"'
    kill -$sig "$BG"
    wait_bg 120
    want=130; [ $sig = TERM ] && want=143
    expect_rc $want "SIG$sig during a put"
    expect_out "^RECAP"
    for n in "${NODES[@]}"; do
      tc qdisc del dev "$(veth "$n")" root
      ! lx "$n" test -e /run/kcm-after-ran || fail "SIG$sig: the next step started on $n"
      s=$(sha_on "$n" /etc/kubernetes/kcm-big.bin)
      [ "$s" = "$oldsum" ] || [ "$s" = "$newsum" ] || fail "SIG$sig: $n holds a partial file"
      [ -z "$(tmp_left "$n" /etc/kubernetes)" ] || fail "SIG$sig: $n: temp file left: $(tmp_left "$n" /etc/kubernetes)"
    done
  done
  pass "SIGINT/SIGTERM during a 4 MiB put on 3 nodes: exit 130/143 with the recap, no next step, each file old or new, no temp file"
  ;;
lock)
  converge
  bg -i "$LABINV" "$HOLD"
  wait_node node1 test -e /run/kcm-holding
  first=$BG
  kcm -i "$LABINV" "$PB"
  expect_rc 4 "a second run at once"
  for n in "${NODES[@]}"; do
    # the lock is on the node: taken when the run first reaches it
    grep -qE "^  FAILED +$n " "$T/out" || { cat "$T/out"; fail "$n is not reported locked"; }
    expect_out "$n: locked by another kcmrun run \([^ ]+@[^ ]+ pid $first run [0-9a-f]+ since .*\); wait for it \(--lock-wait SECONDS\), or use --no-lock"
  done
  kcm -i "$LABINV" --no-lock --check "$PB"
  expect_rc 0 "--no-lock"
  release "${NODES[@]}"
  wait_bg 120
  expect_rc 0 "the first run"
  pass "a second run against the lab's nodes reports each one locked, with the first one's pid ($first); --no-lock runs"
  ;;
secrets)
  converge
  # the control machine's work folder: one per cluster CA in kcmrun's state folder (component.work_dir)
  W=$SD/work-$(printf %s "$(readlink -f "$CLUSTER/ca.pem")" | sha256sum | cut -c1-16)
  [ -f "$W/kube-controller-manager-key.pem" ] || fail "no kube-controller-manager-key.pem in the work folder $W"
  [ ! -e "$CLUSTER/kube-controller-manager.pem" ] || fail "the certificate was issued into the CA's folder"
  cp "$W/kube-controller-manager-key.pem" "$T/old-kcm-key.pem"
  # a fresh certificate (renewed: "expires within 100000 days"; the nodes'
  # pair is adopted otherwise): new key material flows to every node, in every diff
  kcm -i "$LABINV" -e cert_renew_before=100000 --check --diff -v --log-json "$T/check.jsonl" --timeline "$T/check.svg" "$PB"
  expect_rc 0 "--check --diff"
  cat "$T/out" "$T/err" >"$T/all"
  kcm -i "$LABINV" -e cert_renew_before=100000 -v --diff --log-json "$T/run.jsonl" --timeline "$T/run.svg" "$PB"
  expect_rc 0 "-v --diff run"
  expect_out "put /etc/kubernetes/cert/kube-controller-manager-key.pem"
  # keys and kubeconfigs are 0600: their diffs are checksum lines (secret by mode)
  grep -q "kube-controller-manager-key.pem: secret: sha256 " "$T/out" || fail "no secret summary for the key: the test would prove nothing"
  cat "$T/out" "$T/err" >>"$T/all"
  # a failing run: a corrupt client key in the admin kubeconfig
  sed -E 's/(client-key-data: .{60}).{8}/\1AAAAAAAA/' "$KCMRUN_LAB_ADMIN_KUBECONFIG" >"$T/bad.kubeconfig"
  kcm -i "$LABINV" -v -e admin_kubeconfig="$T/bad.kubeconfig" --log-json "$T/bad.jsonl" "$PB"
  [ "$RC" != 0 ] || fail "a corrupt admin key went unnoticed"
  cat "$T/out" "$T/err" "$T"/*.jsonl "$T"/*.svg >>"$T/all"
  for n in "${NODES[@]}"; do lx "$n" cat /var/lib/kcmrun/due.json >>"$T/all" 2>/dev/null || true; done
  # distinctive 40-char slices of every private key the run used or made
  pem_slices() { awk '/BEGIN .*PRIVATE KEY/{k=1;next} /END .*PRIVATE KEY/{k=0} k && length($0)>=60 {print substr($0,11,40)}' "$1" | sed -n '1p;4p;8p'; }
  b64_slices() { local v; v=$(sed -n "s/^ *$2: *//p" "$1" | head -1); [ ${#v} -gt 200 ] || fail "$1: no $2"; echo "${v:20:40}"; echo "${v:100:40}"; echo "${v:160:40}"; }
  : >"$T/needles"
  for k in "$CLUSTER/ca-key.pem" "$CLUSTER/admin-key.pem" "$W/kube-controller-manager-key.pem" "$T/old-kcm-key.pem" "$KCMRUN_LAB_IDENTITY"; do
    [ "$(stat -c %a "$k")" = 600 ] || fail "$k is not 0600"
    pem_slices "$k" >>"$T/needles"
  done
  b64_slices "$W/kube-controller-manager.kubeconfig" client-key-data >>"$T/needles"
  b64_slices "$KCMRUN_LAB_ADMIN_KUBECONFIG" client-key-data >>"$T/needles"
  [ "$(wc -l <"$T/needles")" -ge 18 ] || fail "too few key slices: $(wc -l <"$T/needles")"
  if grep -F -f "$T/needles" "$T/all" >"$T/leaks"; then fail "key material in the output: $(head -c 300 "$T/leaks")"; fi
  # what holds secrets is 0600, on the control machine and on the nodes
  for f in "$W/kube-controller-manager-key.pem" "$W/kube-controller-manager.kubeconfig"; do
    [ "$(stat -c %a "$f")" = 600 ] || fail "$f: mode $(stat -c %a "$f")"
  done
  for n in "${NODES[@]}"; do
    [ "$(lx "$n" stat -c %a /var/lib/kcmrun)" = 700 ] || fail "$n:/var/lib/kcmrun is not 0700"
    for f in /etc/kubernetes/cert/kube-controller-manager-key.pem /etc/kubernetes/cert/ca-key.pem /etc/kubernetes/kube-controller-manager.kubeconfig /var/lib/kcmrun/due.json; do
      [ "$(lx "$n" stat -c %a "$f")" = 600 ] || fail "$n:$f is not 0600"
    done
  done
  converge "after the new certificate"
  pass "no slice of 5 private keys or 2 client-key-data values in stdout/stderr/--log-json/--timeline/state of --check --diff, -v --diff and a failing run; key files 0600"
  ;;
insecure)
  converge
  sed -E 's/^( *)certificate-authority-data: .*/\1insecure-skip-tls-verify: true/' "$KCMRUN_LAB_ADMIN_KUBECONFIG" >"$T/insecure.kubeconfig"
  grep -q insecure-skip-tls-verify "$T/insecure.kubeconfig" || fail "could not make the insecure kubeconfig"
  kcm -i "$LABINV" -e admin_kubeconfig="$T/insecure.kubeconfig" "$PB"
  expect_rc 4 "insecure kubeconfig"
  expect_status rbac FAILED localhost
  expect_out "sets insecure-skip-tls-verify: refusing to send the admin credentials .* -e allow_insecure_kubeconfig=true"
  kcm -i "$LABINV" -e admin_kubeconfig="$T/insecure.kubeconfig" --skip rbac "$PB"
  expect_rc 4 "insecure kubeconfig, verify"
  expect_status verify FAILED "${NODES[@]}"
  [ "$(grep -c "refusing to send the admin credentials" "$T/out")" -ge 3 ] || { cat "$T/out"; fail "verify did not refuse"; }
  # every target of verify failed: the play stops there, so leader is asked on its own
  ! grep -q "^== leader" "$T/out" || { cat "$T/out"; fail "the play went on after every node failed verify"; }
  kcm -i "$LABINV" -e admin_kubeconfig="$T/insecure.kubeconfig" --only leader "$PB"
  expect_rc 4 "insecure kubeconfig, leader"
  expect_status leader FAILED localhost
  expect_out "refusing to send the admin credentials"
  kcm -i "$LABINV" -e admin_kubeconfig="$T/insecure.kubeconfig" -e allow_insecure_kubeconfig=true "$PB"
  expect_rc 0 "insecure kubeconfig explicitly allowed"
  pass "an admin kubeconfig with insecure-skip-tls-verify is refused by rbac/verify/leader unless -e allow_insecure_kubeconfig=true"
  ;;
hostile)
  converge
  M=/tmp/kcm-pwned-$$
  markers() {
    for n in "${NODES[@]}"; do lx "$n" sh -c "ls -d $M* 2>/dev/null" && fail "$n: a marker exists: something was executed"; done
    ls -d $M* 2>/dev/null && fail "host: a marker exists: something was executed"
    true
  }
  unit_sums() { for n in "${NODES[@]}"; do sha_on "$n" /etc/systemd/system/kube-controller-manager.service; done; }
  # node names and hosts: the inventory refuses them
  i=0
  for name in "../../etc/x" "node1/../../x" "n\$(touch $M-n1)" "n;touch $M-n2" "n\`touch $M-n3\`" "n'q" 'n"q' $'n\ntouch' ".."; do
    i=$((i + 1))
    printf 'local inv = dofile(%s)\ninv.nodes[1].name = %s\ninv.groups = {}\nreturn inv\n' "$(luaq "$LABINV")" "$(luaq "$name")" >"$T/bad$i.lua"
    kcm -i "$T/bad$i.lua" "$PB"
    expect_rc 2 "node name $name"
    expect_err "is not a valid node name"
  done
  printf 'local inv = dofile(%s)\ninv.nodes[1].host = %s\nreturn inv\n' "$(luaq "$LABINV")" "$(luaq "169.254.0.1\$(touch $M-h)")" >"$T/badhost.lua"
  kcm -i "$T/badhost.lua" "$PB"
  expect_rc 2 "hostile host"
  expect_err "is not a host name or address"
  # a newline in a value rendered into the unit: refused, unit untouched
  before=$(unit_sums)
  kcm -i "$LABINV" -e $'log_level=2\nExecStartPre=/bin/touch '"$M-u1" "$PB"
  expect_rc 4 "newline in log_level"
  expect_status unit FAILED "${NODES[@]}"
  expect_out "unit: variable LOG_LEVEL contains a line break"
  printf 'local inv = dofile(%s)\ninv.vars.kube_controller_manager_extra_flags = { "--concurrent-deployment-syncs=5", %s }\nreturn inv\n' "$(luaq "$LABINV")" "$(luaq $'--x=1\nExecStartPre=/bin/touch '"$M-u2")" >"$T/flags.lua"
  kcm -i "$T/flags.lua" "$PB"
  expect_rc 4 "newline in an extra flag"
  expect_out "unit: variable kube_controller_manager_extra_flags\[2\] contains a line break"
  [ "$(unit_sums)" = "$before" ] || fail "a refused unit changed a node"
  # shell metacharacters in a path and in flags: used literally, inside the target folder
  RESTORE_EXTRA='for n in "${NODES[@]}"; do lx "$n" sh -c "rm -rf /data/k8s/k8s\\;*"; done'
  hostile_dir="/data/k8s/k8s;touch $M-p1 \`touch $M-p2\` \$(touch $M-p3) 'q\"; touch $M-p4"
  kcm -i "$LABINV" -e "K8S_DIR=$hostile_dir" -e "kube_controller_manager_extra_flags=--a=\$(touch $M-f1) --b=\`touch $M-f2\`;touch" "$PB"
  for n in "${NODES[@]}"; do
    lx "$n" test -d "$hostile_dir/kube-controller-manager" || { cat "$T/out"; fail "$n: the hostile K8S_DIR was not used literally"; }
  done
  lx node1 grep -qF -- '--a=$(touch' /etc/systemd/system/kube-controller-manager.service || fail "flag not literal in the unit"
  sleep 1          # give anything that might have been started a moment
  markers
  converge "after the hostile values"
  markers
  pass "hostile node names/hosts refused (rc 2); newlines in unit values refused, unit untouched; \$(...), backticks, ';' and quotes in a path and flags used literally under /data/k8s; no marker on any node or the host"
  ;;
*) fail "unknown case $1" ;;
esac
