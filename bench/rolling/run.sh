#!/bin/bash
# Rolling a flag change across a real 3-member etcd (Debian's) while a client
# that never retries writes: three ways side by side, --runs rounds each.
#
#   bench/rolling/run.sh [--runs 3] [--no-readme]
#
#   leader-aware  kcmrun playbooks/etcd.lua (followers first, leadership handed
#                 over, the leader last, each member caught up before the next)
#   inventory     the same with -e rolling_order=inventory (leader = false)
#   systemctl     the guide's way: the unit changed on every node, then
#                 `systemctl restart etcd` on node1, node2, node3 in a loop
# The writer (tests/etcd/writer.sh) runs on node1: one real `etcdctl put`
# every 100 ms against the three endpoints, each tried once. Per round: writes
# failed during the roll, the longest gap between two successful writes, the
# raft term's growth, the roll's wall time. Medians (min-max) go to
# bench/rolling/results/ and into bench/README.md between the rolling markers.
#
# Environment: KCMRUN (default build/kcmrun), KCMRUN_LAB_DIR (a lab to use;
# default: one of its own at $BENCH_LAB_BASE-rolling, brought up and down).
set -euo pipefail
export NO_COLOR=1
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
KCMRUN=$(readlink -f "${KCMRUN:-$REPO/build/kcmrun}")
RES=$HERE/results
RUNS=3 WRITE_README=1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --no-readme) WRITE_README=0; shift ;;
    *) echo "bench/rolling/run.sh: unknown option $1 (expected --runs N or --no-readme)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench/rolling/run.sh: needs root (the lab)" >&2; exit 2; }
mkdir -p "$RES"
log() { echo "[bench-rolling $(date +%T)] $*" >&2; }
OWN=0
if [ -z "${KCMRUN_LAB_DIR:-}" ]; then
  export KCMRUN_LAB_DIR=${BENCH_LAB_BASE:-/var/lib/kcmrun/bench}-rolling
  OWN=1
  "$KCMRUN" lab down >/dev/null 2>&1 || true
  "$KCMRUN" lab up --nodes 3 >/dev/null
  trap '"$KCMRUN" lab down >/dev/null 2>&1 || true' EXIT
fi
eval "$("$KCMRUN" lab env)"
INV=$KCMRUN_LAB_INVENTORY PB=$REPO/playbooks/etcd.lua SD=$KCMRUN_LAB_DIR/bench-rolling-state
NODES=($KCMRUN_LAB_NODES) IPS=($KCMRUN_LAB_NODE_IPS)
EPS=$(printf 'https://%s:2379,' "${IPS[@]}"); EPS=${EPS%,}
on() { ssh -F "$KCMRUN_LAB_SSH_CONFIG" "$@"; }
ctl() {
  on node1 ETCDCTL_API=3 /opt/k8s/bin/etcdctl --cacert=/etc/etcd/cert/ca.pem --cert=/etc/etcd/cert/etcd.pem \
    --key=/etc/etcd/cert/etcd-key.pem --command-timeout=5s --endpoints="$EPS" "$@"
}
term() { ctl endpoint status -w json | grep -o '"raft_term":[0-9]*' | cut -d: -f2 | sort -n | tail -1; }
inventory() {   # the lab's inventory with --snapshot-count=$1
  sed "s/^  vars = {\$/  vars = {\\n    etcd_extra_flags = { \"--snapshot-count=$1\" },/" "$INV"
}
kcm() { "$KCMRUN" --state-dir "$SD" "$@"; }
. "$HERE/ways.sh"

log "deploying etcd on $KCMRUN_LAB_DIR"
kcm -i "$INV" "$PB" > "$RES/deploy.out" || { cat "$RES/deploy.out"; exit 1; }
RAW=$RES/raw.tsv
printf 'way\trun\twrites\tfailed\tgap_s\tterm_growth\troll_s\n' > "$RAW"
count=10000
for run in $(seq "$RUNS"); do
  for way in leader-aware inventory systemctl; do
    count=$((count + 1))
    inventory "$count" > "$RES/inventory.lua"
    on node1 bash -s -- "$EPS" /tmp/bench-writer.log /tmp/bench-writer.stop < "$REPO/tests/etcd/writer.sh" &
    writer=$!
    sleep 2
    t_before=$(term)
    roll "$way" "$RES/inventory.lua" "$PB" "$RES/$way-$run.out" etcd
    t0=$ROLL_T0
    t1=$(date +%s.%N)
    sleep 2
    t_after=$(term)
    on node1 touch /tmp/bench-writer.stop; wait "$writer" || true
    # the systemctl way left kcmrun's restart due (kcmrun cannot prove a hand
    # restart came after every change): cleared by a kcmrun roll, after the
    # measurement, so the loop's figures are the loop's alone
    [ "$way" != systemctl ] || kcm -i "$RES/inventory.lua" "$PB" >> "$RES/$way-$run.out"
    on node1 cat /tmp/bench-writer.log > "$RES/$way-$run.writes"
    read -r writes failed gap < <(awk -v a="$t0" -v b="$t1" '
      $1 >= a && $1 <= b { n++; if ($3 != "ok") f++ }
      $3 == "ok" { if (last && $1 - last > g) g = $1 - last; last = $1 }
      END { printf "%d %d %.2f\n", n, f, g }' "$RES/$way-$run.writes")
    roll=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$way" "$run" "$writes" "$failed" "$gap" "$((t_after - t_before))" "$roll" >> "$RAW"
    log "$way run $run: $writes writes, $failed failed, longest gap ${gap}s, term +$((t_after - t_before)), roll ${roll}s"
  done
done
kcm -i "$INV" "$PB" > "$RES/restore.out" || true

# medians (min-max) per way
python3 "$REPO/bench/rolling/summary.py" etcd "$RAW" "$RES/summary.md" "$RUNS"
cat "$RES/summary.md"
if [ "$WRITE_README" = 1 ]; then
  python3 "$REPO/bench/readme_block.py" "$REPO/bench/README.md" "$RES/summary.md" "<!-- rolling:begin -->" "<!-- rolling:end -->"
fi
