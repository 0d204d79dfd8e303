#!/bin/bash
# issue 26: the member lifecycle on 4 nodes (lab_etcd4, brought up with 4
# nodes by its fixture; the cases run in order). fourth: a node added to the
# etcd group joins the running cluster (member add,
# initial-cluster-state=existing). remove: taken out of the group again, it
# is removed from the cluster only with -e etcd_remove_members=true.
set -e
. "$(dirname "$0")/../lib.sh"
: "${KCMRUN_LAB_DIR:?KCMRUN_LAB_DIR must name the lab folder of this test}"
export KCMRUN_LAB_DIR
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PB="$REPO/playbooks/etcd.lua"
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
pids() { for n in node1 node2 node3 node4; do on "$n" systemctl show -p MainPID --value etcd; done | tr '\n' ' '; }

case "$1" in
fourth)
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
  ;;
remove)
  # node4 out of the group again (inventory-3: node4 stays a lab node)
  members_ok 4
  before=$(pids)
  unit4=$(on node4 sha256sum /etc/systemd/system/etcd.service)
  # (a) without the flag: kept, one line says so
  kcmrun -i "$T/inventory-3.lua" "$PB"
  cat "$T/out"
  expect_rc 0 "node4 out of the group, no etcd_remove_members"
  [ "$(grep -c "member node4 .*is not in the group" "$T/out")" = 1 ] || fail "not one line about the kept member node4"
  expect_out "etcd: member node4 \(https://${IPS[3]}:2380\) is not in the group 'etcd': kept \(remove it with -e etcd_remove_members=true\)"
  ! grep -q "remove member" "$T/out" || fail "a member was removed without etcd_remove_members"
  members_ok 4
  # node1..3's certificate and unit follow the group (node4's SAN and peer URL
  # go, a rolling restart); node4, out of the play, is left running as it was
  [ "$(cut -d' ' -f4 <<<"$(pids)")" = "$(cut -d' ' -f4 <<<"$before")" ] || fail "node4's etcd restarted ($before -> $(pids))"
  # (b) --check with the flag: the removal and node4's stop are reported, not done
  before=$(pids)
  kcmrun -i "$T/inventory-3.lua" -e etcd_remove_members=true --check -v "$PB"
  cat "$T/out"
  expect_rc 0 "--check: node4 removed with -e etcd_remove_members=true"
  [ "$(grep -cE "changed +localhost .*remove member node4 \([0-9a-f]+\)" "$T/out")" = 1 ] || fail "--check: not one 'remove member node4'"
  expect_out "changed +localhost .*remove member node4 \([0-9a-f]+\), stop etcd.service, disable etcd.service$"
  members_ok 4
  [ "$(pids)" = "$before" ] || fail "--check restarted or stopped an etcd ($before -> $(pids))"
  [ "$(on node4 systemctl is-enabled etcd)" = enabled ] || fail "--check disabled node4's etcd"
  # (c) with the flag: node4's member is removed through node1..3's cluster
  kcmrun -i "$T/inventory-3.lua" -e etcd_remove_members=true "$PB"
  cat "$T/out"
  expect_rc 0 "node4 removed with -e etcd_remove_members=true"
  [ "$(grep -cE "changed +localhost .*remove member node4 \([0-9a-f]+\)" "$T/out")" = 1 ] || fail "not one 'remove member node4' change"
  ! grep -q "is not in the group" "$T/out" || fail "the member was kept with etcd_remove_members=true"
  members_ok 3
  m=$(ctl node1 --endpoints="$(eps 3)" member list -w simple)
  [ "$(wc -l <<<"$m")" = 3 ] || { echo "$m"; fail "member list on node1 does not list 3 members"; }
  ! grep -q "${IPS[3]}" <<<"$m" || { echo "$m"; fail "node4 is still a member"; }
  # node4's etcd would exit ("permanently removed") and Restart=always start it
  # again for ever: kcmrun stops and disables it; its unit file and data stay
  [ "$(on node4 systemctl is-active etcd)" = inactive ] || fail "node4's etcd still runs after its removal"
  [ "$(on node4 systemctl is-enabled etcd)" = disabled ] || fail "node4's etcd is still enabled after its removal"
  expect_out "changed +localhost .*stop etcd"
  sleep 6   # longer than the unit's RestartSec: nothing starts it again
  [ "$(on node4 systemctl is-active etcd)" = inactive ] || fail "node4's etcd came back"
  [ "$(on node4 sha256sum /etc/systemd/system/etcd.service)" = "$unit4" ] || fail "node4's unit changed"
  on node4 'ls /data/k8s/etcd/wal/*.wal' >/dev/null || fail "node4's WAL is gone"
  # (d) a rerun with the flag: nothing more to remove, nothing changed
  kcmrun -i "$T/inventory-3.lua" -e etcd_remove_members=true "$PB"
  expect_rc 0 "a rerun with etcd_remove_members=true"
  [ -z "$(changed_steps)" ] || { cat "$T/out"; fail "a rerun changed: $(changed_steps)"; }
  ! grep -qE "remove member|is not in the group" "$T/out" || { cat "$T/out"; fail "a rerun looked at node4 again"; }
  members_ok 3
  pass "node4 out of the group: kept without the flag (one line, 4 members), --check reports the removal and changes nothing, removed with -e etcd_remove_members=true (3 members, 3 healthy; node4's etcd stopped and disabled, its data kept), a rerun 0 changed"
  ;;
*) fail "unknown case $1" ;;
esac
