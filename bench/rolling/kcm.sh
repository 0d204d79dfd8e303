#!/bin/bash
# Rolling a flag change across the controller manager on 3 masters (the lab's
# stand-ins: kube-apiserver, kube-controller-manager): how often the Lease
# moves. Three ways side by side, interleaved round by round, --runs each:
#
#   bench/rolling/kcm.sh [--runs 3] [--lease 15,1] [--no-readme]
#
#   leader-aware  kcmrun playbooks/controller-manager.lua (one master at a
#                 time, each verified, the Lease holder last)
#   inventory     the same with -e rolling_order=inventory
#   systemctl     the guide's way: the unit changed (--only unit), then
#                 `systemctl daemon-reload && systemctl restart
#                 kube-controller-manager` on node1, node2, node3 in a loop
# Each round changes log_level (--v) to a new value. --lease: the Lease
# durations to roll under, in seconds, one after the other (15: the playbook's
# defaults, 15 s lease, 10 s renew deadline, 2 s retry; any other L: L s,
# 0.75 L, 0.25 L through kube_controller_manager_extra_flags). A stopped
# holder keeps the Lease until it expires: a roll shorter than the lease is
# over before anyone can take it, so the order shows only when the roll
# outlasts the lease (1 s here). Per round: leaseTransitions before the roll
# and once a live member has renewed the Lease after it (Lease moves = after -
# before); the longest time between two renewals (a 0.2 s poll,
# bench/rolling/lease_poll.py); the roll's wall time; how long after the roll
# a live leader renewed. Medians (min-max) go to
# bench/rolling/results/{raw,summary}-kcm.* and into bench/README.md between
# the rolling-kcm markers.
#
# Environment: KCMRUN (default build/kcmrun), KCMRUN_LAB_DIR (a lab to use,
# with its cluster stand-ins; default: one of its own at
# $BENCH_LAB_BASE-rolling-kcm, brought up and down).
set -euo pipefail
export NO_COLOR=1
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
KCMRUN=$(readlink -f "${KCMRUN:-$REPO/build/kcmrun}")
RES=$HERE/results
RUNS=3 WRITE_README=1 LEASES=15,1
die() { echo "bench/rolling/kcm.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--runs needs a number of rounds (1 or more), got '${2:-}'"
            RUNS=$2; shift 2 ;;
    --lease) [[ ${2:-} =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--lease needs lease durations in seconds, e.g. 15,1, got '${2:-}'"
             LEASES=$2; shift 2 ;;
    --no-readme) WRITE_README=0; shift ;;
    -h|--help) sed -n "2,$(( $(grep -n '^set -euo' "$0" | cut -d: -f1) - 1 ))p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (expected --runs N, --lease S[,S...] or --no-readme)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "needs root (the lab)"
[ -x "$KCMRUN" ] || die "no kcmrun at $KCMRUN (build it, or set KCMRUN)"
mkdir -p "$RES"
log() { echo "[bench-rolling-kcm $(date +%T)] $*" >&2; }
OWN=0 poller=
cleanup() {
  # an interrupted round leaves its poller waiting for the stop file
  [ -z "$poller" ] || kill "$poller" 2>/dev/null || true
  [ "$OWN" = 0 ] || "$KCMRUN" lab down >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [ -z "${KCMRUN_LAB_DIR:-}" ]; then
  export KCMRUN_LAB_DIR=${BENCH_LAB_BASE:-/var/lib/kcmrun/bench}-rolling-kcm
  OWN=1
  "$KCMRUN" lab down >/dev/null 2>&1 || true
  "$KCMRUN" lab up --nodes 3 >/dev/null
fi
eval "$("$KCMRUN" lab env)"
[ -n "${KCMRUN_LAB_KUBE_APISERVER:-}" ] || die "the lab at $KCMRUN_LAB_DIR has no apiserver stand-in"
INV=$KCMRUN_LAB_INVENTORY PB=$REPO/playbooks/controller-manager.lua SD=$KCMRUN_LAB_DIR/bench-rolling-kcm-state
read -r -a NODES <<<"$KCMRUN_LAB_NODES"
on() { ssh -F "$KCMRUN_LAB_SSH_CONFIG" "$@"; }
kcm() { "$KCMRUN" --state-dir "$SD" "$@"; }
. "$HERE/ways.sh"
# the Lease as tests/kube/leader.lua reads it: "holder transitions source renewTime" or "none"
lease() { ADMIN_KUBECONFIG=$KCMRUN_LAB_ADMIN_KUBECONFIG "$KCMRUN" "$REPO/tests/kube/leader.lua"; }
inventory() {   # the lab's inventory with log_level = $1 under a lease of $2 s
  local x=""
  [ "$2" = 15 ] || x="kube_controller_manager_extra_flags = { \"--leader-elect-lease-duration=${2}s\", \"--leader-elect-renew-deadline=$(($2 * 750))ms\", \"--leader-elect-retry-period=$(($2 * 250))ms\" },"
  sed "s/^  vars = {\$/  vars = {\\n    log_level = \"$1\", $x/" "$INV"
}
# Waits until a member renews the Lease after $1 (epoch seconds): every member
# running then is one the roll left, so the holder is live and the Lease stays.
# Prints "transitions epoch-of-that-renewal".
settled() {
  local since=$1 l rt e
  for _ in $(seq 300); do
    l=$(lease 2>/dev/null) || l=none
    if [ "$l" != none ]; then
      rt=$(cut -d' ' -f4 <<<"$l")
      e=$(date -d "$rt" +%s.%N 2>/dev/null) || e=0
      if awk -v e="$e" -v s="$since" 'BEGIN { exit !(e > s) }'; then
        echo "$(cut -d' ' -f2 <<<"$l") $e"; return 0
      fi
    fi
    sleep 0.2
  done
  echo "bench/rolling/kcm.sh: no member renewed the Lease within 60 s of $since" >&2
  return 1
}

RAW=$RES/raw-kcm.tsv
printf 'lease_s\tway\trun\tmoves\trenew_gap_s\troll_s\tleader_back_s\n' > "$RAW"
level=2     # the playbook's default; every round a new value, so every round changes the unit
for lease_s in ${LEASES//,/ }; do
  log "deploying the controller manager on $KCMRUN_LAB_DIR, lease ${lease_s}s"
  inventory "$level" "$lease_s" > "$RES/inventory-kcm.lua"
  kcm -i "$RES/inventory-kcm.lua" "$PB" > "$RES/kcm-deploy-$lease_s.out" || { cat "$RES/kcm-deploy-$lease_s.out"; exit 1; }
  for run in $(seq "$RUNS"); do
    for way in leader-aware inventory systemctl; do
      level=$((level + 1))
      inventory "$level" "$lease_s" > "$RES/inventory-kcm.lua"
      grep -q "log_level = \"$level\"" "$RES/inventory-kcm.lua" || die "could not derive the inventory from $INV"
      s=$(settled "$(date +%s.%N)") || exit 1
      read -r before _ <<<"$s"
      rm -f "$RES/kcm.stop"
      python3 "$HERE/lease_poll.py" "$RES/kcm-$lease_s-$way-$run.lease" "$RES/kcm.stop" &
      poller=$!
      sleep 1
      roll "$way" "$RES/inventory-kcm.lua" "$PB" "$RES/kcm-$lease_s-$way-$run.out" kube-controller-manager
      t0=$ROLL_T0
      t1=$(date +%s.%N)
      s=$(settled "$t1") || exit 1
      read -r after back <<<"$s"
      touch "$RES/kcm.stop"; wait "$poller" || true; poller=
      for n in "${NODES[@]}"; do
        on "$n" grep -q -- "--v=$level" /etc/systemd/system/kube-controller-manager.service ||
          die "$way run $run: $n's unit lacks --v=$level"
      done
      # the loop left kcmrun's restart due (notified by --only unit): cleared
      # here, outside the measured window, since it rolls every member again
      [ "$way" != systemctl ] || kcm -i "$RES/inventory-kcm.lua" "$PB" > "$RES/kcm-$lease_s-$way-$run.clear.out"
      # the longest time between two renewals, from the last one before the
      # roll to the first one after it (settled's: the poll may stop before
      # its next sample sees it)
      gap=$( { awk '$4 != "-" { print $4 }' "$RES/kcm-$lease_s-$way-$run.lease"; echo "$back"; } | sort -un |
            awk -v a="$t0" -v b="$back" '
              $1 <= a { last = $1; next }
              $1 > b { exit }
              { if (last && $1 - last > g) g = $1 - last; last = $1 }
              END { printf "%.1f\n", g }')
      roll=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
      lb=$(awk -v a="$t1" -v b="$back" 'BEGIN { printf "%.1f", b - a }')
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$lease_s" "$way" "$run" "$((after - before))" "$gap" "$roll" "$lb" >> "$RAW"
      log "lease ${lease_s}s, $way run $run (--v=$level): Lease moved $((after - before))x ($before -> $after), longest without a renewal ${gap}s, roll ${roll}s, leader renewing ${lb}s after it"
    done
  done
done
rm -f "$RES/kcm.stop"
kcm -i "$INV" "$PB" > "$RES/kcm-restore.out" || true

# medians (min-max) per way
python3 "$REPO/bench/rolling/summary.py" kcm "$RAW" "$RES/summary-kcm.md" "$RUNS"
cat "$RES/summary-kcm.md"
if [ "$WRITE_README" = 1 ]; then
  python3 "$REPO/bench/readme_block.py" "$REPO/bench/README.md" "$RES/summary-kcm.md" "<!-- rolling-kcm:begin -->" "<!-- rolling-kcm:end -->"
fi
