#!/bin/bash
# issue 26: a fourth node added to the etcd group joins the running cluster
# (member add, initial-cluster-state=existing). A lab of its own with 4
# nodes (the suite's labs have 3), taken down at the end.
set -e
. "$(dirname "$0")/../lib.sh"
: "${KCMRUN_LAB_DIR:?KCMRUN_LAB_DIR must name the lab folder of this test}"
export KCMRUN_LAB_DIR
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PB="$REPO/playbooks/etcd.lua"
"$KCMRUN" lab down >/dev/null 2>&1 || true
trap '"$KCMRUN" lab down >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
"$KCMRUN" lab up --nodes 4 >/dev/null
eval "$("$KCMRUN" lab env)"
INV="$KCMRUN_LAB_INVENTORY"
SD="$KCMRUN_LAB_DIR/etcd-state"
IPS=($KCMRUN_LAB_NODE_IPS)
on() { ssh -F "$KCMRUN_LAB_SSH_CONFIG" "$1" "${@:2}"; }
kcmrun() { run "$KCMRUN" --state-dir "$SD" "$@"; }
changed_steps() { awk '/^== /{s=$2} /^  changed /{print s}' "$T/out" | sort -u | tr '\n' ' '; }
ctl() {
  local n=$1; shift
  on "$n" ETCDCTL_API=3 /opt/k8s/bin/etcdctl --cacert=/etc/etcd/cert/ca.pem --cert=/etc/etcd/cert/etcd.pem \
    --key=/etc/etcd/cert/etcd-key.pem --command-timeout=5s "$@"
}
eps() { local e; e=$(printf 'https://%s:2379,' "${IPS[@]:0:$1}"); echo "${e%,}"; }
members_ok() {   # N healthy endpoints and N started members
  local h m
  h=$(ctl node1 --endpoints="$(eps "$1")" endpoint health 2>&1) || { echo "$h"; fail "etcdctl endpoint health failed"; }
  [ "$(grep -c 'is healthy: successfully committed proposal' <<<"$h")" = "$1" ] || { echo "$h"; fail "not $1 healthy endpoints"; }
  m=$(ctl node1 --endpoints="$(eps "$1")" member list -w simple)
  [ "$(grep -c ', started, ' <<<"$m")" = "$1" ] || { echo "$m"; fail "not $1 started members"; }
}

grep -q '    etcd = { "node1", "node2", "node3", "node4", },' "$INV" || fail "the lab's etcd group is not node1-4"
sed 's/^    etcd = { "node1", "node2", "node3", "node4", },$/    etcd = { "node1", "node2", "node3", },/' "$INV" > "$T/inventory-3.lua"
kcmrun -i "$T/inventory-3.lua" "$PB"
expect_rc 0 "a group of 3 first"
members_ok 3
v="written-by-three-$RANDOM"
ctl node1 --endpoints="$(eps 3)" put /kcmrun/four "$v" >/dev/null
# node4 into the group: it is added, starts with initial-cluster-state=existing
kcmrun -i "$INV" "$PB"
cat "$T/out"
expect_rc 0 "node4 added to the group"
expect_out "changed +localhost .*add member node4 \(https://${IPS[3]}:2380\)"
on node4 grep -q -- '--initial-cluster-state=existing' /etc/systemd/system/etcd.service || fail "node4: not initial-cluster-state=existing"
on node1 grep -q -- '--initial-cluster-state=new' /etc/systemd/system/etcd.service || fail "node1: its unit lost initial-cluster-state=new"
members_ok 4
got=$(ctl node4 --endpoints="https://${IPS[3]}:2379" get /kcmrun/four --print-value-only)
[ "$got" = "$v" ] || fail "read '$got' through node4, wrote '$v' before it joined"
kcmrun -i "$INV" "$PB"
expect_rc 0 "a rerun"
[ -z "$(changed_steps)" ] || { cat "$T/out"; fail "a rerun changed: $(changed_steps)"; }
pass "node4 added to a running 3-member etcd: member add, initial-cluster-state=existing, 4 healthy and started, data readable through it; a rerun changed nothing"
