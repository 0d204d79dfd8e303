#!/bin/bash
# "Real payload": a 120 MB random file as the controller-manager binary, to N nodes.
#
#   bench/payload/run.sh [--nodes 3,10,50] [--runs 3] [--mb 120]
#
# For each N: a lab of N nodes (KCMRUN_LAB_DIR=$BENCH_LAB_BASE-payload-N), then --runs
# measured rounds, each on nodes emptied of the file (through `lab exec`, no ssh):
#   (a) put     kcmrun -i <lab> --only binary -e kcm_binary=FILE playbooks/controller-manager.lua
#   (b) rerun   the same again (nothing to change: asserts 0 changed)
#   (c) scp-parallel N OpenSSH `scp -F <lab ssh_config>` of the file, all at once (wait for all)
#   (d) scp-loop     the procedure's own loop: for each node, `ssh mkdir -p` then `scp`, one after
#               the other (bench/baseline/procedure.sh, "binary" part)
# each under /usr/bin/time (wall, peak RSS of the largest process: kcmrun, or one scp/ssh).
# Round 1 of (a) and (b) also writes a --timeline SVG. Rows: bench/results/payload-N.tsv;
# the medians: bench/results/payload-summary.md.
#
# Environment: KCMRUN (default build/kcmrun), BENCH_LAB_BASE (default /var/lib/kcmrun/bench).
set -euo pipefail
export NO_COLOR=1
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
KCMRUN=$(readlink -f "${KCMRUN:-$REPO/build/kcmrun}")
PB=$REPO/playbooks/controller-manager.lua
RES=$REPO/bench/results
BASE=${BENCH_LAB_BASE:-/var/lib/kcmrun/bench}
NODES_LIST=3,10,50
RUNS=3
MB=120
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES_LIST=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --mb) MB=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/payload/run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$KCMRUN" ] || { echo "no kcmrun at $KCMRUN (set KCMRUN)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (the lab)" >&2; exit 2; }
mkdir -p "$RES"
log() { echo "[payload $(date +%T)] $*" >&2; }
median() { sort -n | awk '{a[NR]=$1} END{if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

PAYLOAD=$RES/payload-$MB.bin
[ "$(stat -c %s "$PAYLOAD" 2>/dev/null || echo 0)" = $((MB * 1000 * 1000)) ] ||
  head -c $((MB * 1000 * 1000)) /dev/urandom >"$PAYLOAD"
WANT=$(sha256sum <"$PAYLOAD" | cut -c1-64)
DST=/opt/k8s/bin/kube-controller-manager
SUMMARY=$RES/payload-summary.md
: >"$SUMMARY.new"

for N in ${NODES_LIST//,/ }; do
  LAB_DIR=$BASE-payload-$N
  export KCMRUN_LAB_DIR=$LAB_DIR
  "$KCMRUN" lab down >/dev/null 2>&1 || true
  log "lab of $N nodes"
  "$KCMRUN" lab up --nodes "$N" >"$RES/payload-lab-$N.log" 2>&1
  eval "$("$KCMRUN" lab env)"
  IPS=($KCMRUN_LAB_NODE_IPS)
  NODES=($KCMRUN_LAB_NODES)
  SD=$RES/payload-state-$N
  rm -rf "$SD"; mkdir -p "$SD"
  TSV=$RES/payload-$N.tsv
  printf 'run\tcase\twall_s\tpeak_rss_kib\tchanged\n' >"$TSV"
  empty() { printf '%s\n' "${NODES[@]}" | xargs -P 8 -I{} "$KCMRUN" lab exec {} rm -f $DST /opt/k8s/bin/kcm-scp.bin; }
  check() {   # every node has the payload at $1
    for n in "${NODES[@]}"; do
      [ "$("$KCMRUN" lab exec "$n" sh -c "sha256sum < $1 | cut -c1-64")" = "$WANT" ] || { log "$n: $1 differs"; exit 1; }
    done
  }
  kcm() {   # kcmrun once; prints "wall rss changed"
    local tl=()
    [ "$2" = 1 ] && tl=(--timeline "$RES/payload-timeline-$N-$1.svg")
    /usr/bin/time -o "$RES/payload-time" -f '%e %M' "$KCMRUN" --state-dir "$SD" -i "$KCMRUN_LAB_INVENTORY" \
      "${tl[@]}" --only binary -e "kcm_binary=$PAYLOAD" "$PB" >"$RES/payload-out-$N-$1-$2.txt" 2>&1 ||
      { cat "$RES/payload-out-$N-$1-$2.txt" >&2; exit 1; }
    local ch
    ch=$(awk '/^RECAP/{r=1} r && $1 ~ /^node/ {s+=$3} END{print s+0}' "$RES/payload-out-$N-$1-$2.txt")
    echo "$(cat "$RES/payload-time") $ch"
  }
  for r in $(seq 1 "$RUNS"); do
    empty
    read -r w m c < <(kcm put "$r"); printf '%s\tput\t%s\t%s\t%s\n' "$r" "$w" "$m" "$c" >>"$TSV"
    check $DST
    [ "$c" = "$N" ] || { log "put changed $c of $N"; exit 1; }
    read -r w m c < <(kcm rerun "$r"); printf '%s\trerun\t%s\t%s\t%s\n' "$r" "$w" "$m" "$c" >>"$TSV"
    [ "$c" = 0 ] || { log "rerun changed $c"; exit 1; }
    empty
    /usr/bin/time -o "$RES/payload-time" -f '%e %M' bash -c '
      f=$1 cfg=$2; shift 2
      for ip; do scp -q -F "$cfg" "$f" root@"$ip":/opt/k8s/bin/kcm-scp.bin & done; wait' \
      scp "$PAYLOAD" "$KCMRUN_LAB_SSH_CONFIG" "${IPS[@]}"
    read -r w m <"$RES/payload-time"; printf '%s\tscp-parallel\t%s\t%s\t-\n' "$r" "$w" "$m" >>"$TSV"
    check /opt/k8s/bin/kcm-scp.bin
    empty
    /usr/bin/time -o "$RES/payload-time" -f '%e %M' bash -c '
      f=$1 cfg=$2 dst=$3; shift 3
      for ip; do ssh -F "$cfg" root@"$ip" "mkdir -p /opt/k8s/bin" && scp -q -F "$cfg" "$f" root@"$ip":"$dst"; done' \
      loop "$PAYLOAD" "$KCMRUN_LAB_SSH_CONFIG" $DST "${IPS[@]}"
    read -r w m <"$RES/payload-time"; printf '%s\tscp-loop\t%s\t%s\t-\n' "$r" "$w" "$m" >>"$TSV"
    check $DST
    log "N=$N round $r: $(tail -4 "$TSV" | awk '{printf "%s %ss %sKiB; ", $2, $3, $4}')"
  done
  {
    echo "### $N nodes, ${MB} MB ($RUNS rounds, load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "| case | wall s (median) | peak RSS MiB (median) |"
    echo "| --- | --- | --- |"
    for cs in put rerun scp-parallel scp-loop; do
      w=$(awk -v c="$cs" -F'\t' '$2==c {print $3}' "$TSV" | median)
      m=$(awk -v c="$cs" -F'\t' '$2==c {print $4}' "$TSV" | median)
      printf '| %s | %s | %s |\n' "$cs" "$w" "$(awk -v k="$m" 'BEGIN{printf "%.1f", k/1024}')"
    done
    echo
  } >>"$SUMMARY.new"
  "$KCMRUN" lab down >/dev/null 2>&1 || true
done
mv "$SUMMARY.new" "$SUMMARY"
cat "$SUMMARY"
