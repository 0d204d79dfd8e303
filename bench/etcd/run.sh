#!/bin/bash
# playbooks/etcd.lua against 04.部署etcd集群's own shell commands
# (bench/etcd/procedure.sh), on labs of N nodes with Debian's real etcd.
#
#   bench/etcd/run.sh [--nodes 3,10] [--runs 5] [--no-readme]
#
# For each N: a lab of N nodes ($BENCH_LAB_BASE-etcd-N), one warm-up and --runs
# measured rounds of
#   kcmrun fresh     kcmrun -i inventory.lua playbooks/etcd.lua, nodes emptied first
#   kcmrun rerun     the same again (asserts 0 changed)
#   procedure fresh  bench/etcd/procedure.sh, nodes emptied first
#   procedure rerun  the same again (the procedure has no other way to converge)
# "emptied": etcd stopped, its files, data and unit removed, the unit masked
# again, through `lab exec` (no ssh). Each under /usr/bin/time: wall, user+sys
# CPU, peak RSS. Medians (min-max) go to bench/etcd/results/ and into
# bench/README.md between the etcd markers.
set -euo pipefail
export NO_COLOR=1
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
KCMRUN=$(readlink -f "${KCMRUN:-$REPO/build/kcmrun}")
BASE=${BENCH_LAB_BASE:-/var/lib/kcmrun/bench}
RES=$HERE/results
NODES_LIST=3,10 RUNS=5 WRITE_README=1
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES_LIST=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --no-readme) WRITE_README=0; shift ;;
    *) echo "bench/etcd/run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench/etcd/run.sh: needs root (the lab)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/etcd/run.sh: needs /usr/bin/time" >&2; exit 2; }
mkdir -p "$RES"
log() { echo "[bench-etcd $(date +%T)] $*" >&2; }
lab() { KCMRUN_LAB_DIR=$LAB_DIR "$KCMRUN" lab "$@"; }

empty_nodes() {
  seq 1 "$N" | xargs -P 8 -I{} env KCMRUN_LAB_DIR="$LAB_DIR" "$KCMRUN" lab exec node{} sh -c '
    systemctl stop etcd 2>/dev/null; systemctl disable etcd 2>/dev/null
    rm -rf /data/k8s/etcd /etc/etcd /opt/k8s/bin/etcd /opt/k8s/bin/etcdctl /etc/systemd/system/etcd.service
    ln -s /dev/null /etc/systemd/system/etcd.service; systemctl daemon-reload' >/dev/null 2>&1
}

# timed CASE CMD...: one row "N case wall cpu rss_mib" in raw-N.tsv
timed() {
  local case=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$RES/time.out" "$@" >"$RES/last-$N-${case// /-}.log" 2>&1 ||
    { cat "$RES/last-$N-${case// /-}.log" >&2; log "$case failed"; return 1; }
  read -r wall u s rss <"$RES/time.out"
  [ "$WARM" = 1 ] || printf '%s\t%s\t%s\t%s\t%s\n' "$N" "$case" "$wall" "$(echo "$u + $s" | bc)" "$((rss / 1024))" >>"$RES/raw-$N.tsv"
}

median() { sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f (%.2f–%.2f)", m, a[1], a[NR]}'; }

for N in ${NODES_LIST//,/ }; do
  LAB_DIR=$BASE-etcd-$N
  lab down >/dev/null 2>&1 || true
  log "lab of $N nodes"
  lab up --nodes "$N" >"$RES/lab-up-$N.log" 2>&1 || { cat "$RES/lab-up-$N.log" >&2; exit 1; }
  : >"$RES/raw-$N.tsv"
  for r in $(seq 0 "$RUNS"); do
    WARM=$([ "$r" = 0 ] && echo 1 || echo 0)
    SD=$(mktemp -d); W=$(mktemp -d)
    empty_nodes
    timed "kcmrun fresh" "$KCMRUN" --state-dir "$SD" -i "$LAB_DIR/inventory.lua" "$REPO/playbooks/etcd.lua"
    timed "kcmrun rerun" "$KCMRUN" --state-dir "$SD" -i "$LAB_DIR/inventory.lua" "$REPO/playbooks/etcd.lua"
    grep -qE '^  changed ' "$RES/last-$N-kcmrun-rerun.log" && { log "rerun changed something"; exit 1; }
    empty_nodes
    timed "procedure fresh" bash "$HERE/procedure.sh" "$LAB_DIR/environment.sh" "$W"
    timed "procedure rerun" bash "$HERE/procedure.sh" "$LAB_DIR/environment.sh" "$W"
    rm -rf "$SD" "$W"
    log "N=$N round $r done"
  done
  empty_nodes
  lab down >/dev/null 2>&1 || true
done

{
  echo "Produced by \`bench/etcd/run.sh --nodes $NODES_LIST --runs $RUNS\` on $(date -u '+%Y-%m-%d %H:%M') UTC;"
  echo "medians over $RUNS measured rounds (after one warm-up), min–max in brackets; $(nproc) cores, shared."
  echo
  echo "| nodes | case | wall s | CPU s (user+sys) | peak RSS MiB |"
  echo "|---:|---|---:|---:|---:|"
  for N in ${NODES_LIST//,/ }; do
    for c in "kcmrun fresh" "kcmrun rerun" "procedure fresh" "procedure rerun"; do
      rows=$(awk -F'\t' -v c="$c" '$2 == c' "$RES/raw-$N.tsv")
      printf '| %s | %s | %s | %s | %s |\n' "$N" "$c" "$(cut -f3 <<<"$rows" | median)" \
        "$(cut -f4 <<<"$rows" | median)" "$(cut -f5 <<<"$rows" | median)"
    done
  done
  echo
  for N in ${NODES_LIST//,/ }; do
    kf=$(awk -F'\t' '$2 == "kcmrun fresh"{print $3}' "$RES/raw-$N.tsv" | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
    kr=$(awk -F'\t' '$2 == "kcmrun rerun"{print $3}' "$RES/raw-$N.tsv" | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
    pf=$(awk -F'\t' '$2 == "procedure fresh"{print $3}' "$RES/raw-$N.tsv" | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
    pr=$(awk -F'\t' '$2 == "procedure rerun"{print $3}' "$RES/raw-$N.tsv" | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
    echo "- $N nodes: procedure / kcmrun wall, fresh **$(echo "scale=1; $pf / $kf" | bc)x**, rerun **$(echo "scale=1; $pr / $kr" | bc)x**."
  done
} >"$RES/summary.md"
cat "$RES/summary.md"
if [ "$WRITE_README" = 1 ]; then
  awk -v f="$RES/summary.md" '
    /<!-- bench\/etcd begin -->/ {print; while ((getline l < f) > 0) print l; skip = 1; next}
    /<!-- bench\/etcd end -->/ {skip = 0}
    !skip' "$HERE/../README.md" >"$HERE/../README.md.tmp" && mv "$HERE/../README.md.tmp" "$HERE/../README.md"
fi
