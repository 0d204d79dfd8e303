#!/bin/bash
# The ad-hoc form against the same work as a playbook, on the running lab,
# alternated N times (default 9) so both meet the same machine load; prints
# each one's median wall time. Usage: KCMRUN=build/kcmrun bench/adhoc/run.sh [N]
set -eu
: "${KCMRUN:?KCMRUN must point to the kcmrun binary}"
N=${1:-9}
HERE=$(cd "$(dirname "$0")" && pwd)
SD=$(mktemp -d); trap 'rm -rf "$SD"' EXIT
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
for _ in $(seq "$N"); do
  echo "adhoc $(t "$KCMRUN" --state-dir "$SD" -q run all -- systemctl is-active ssh)"
  echo "playbook $(t "$KCMRUN" --state-dir "$SD" -q "$HERE/is-active.lua")"
done > "$SD/times"
for k in adhoc playbook; do
  printf '%-9s median %.2f s of %d (%s)\n' "$k" "$(awk -v k=$k '$1==k{print $2}' "$SD/times" | median)" "$N" \
    "$(awk -v k=$k '$1==k{printf "%.2f ", $2}' "$SD/times")"
done
