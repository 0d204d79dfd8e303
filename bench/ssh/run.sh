#!/bin/bash
# ssh transport benchmark: brings up a 10-node lab of its own, measures,
# writes bench/ssh/RESULTS.md, takes the lab down.
#   KCMRUN=path/to/kcmrun bench/ssh/run.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
KCMRUN=${KCMRUN:-$HERE/../../build/kcmrun}
export KCMRUN_LAB_DIR=${KCMRUN_LAB_DIR:-$HERE/../../build/bench-ssh-lab}
NODES=${NODES:-10}
trap '"$KCMRUN" lab down >/dev/null 2>&1 || true' EXIT
"$KCMRUN" lab down >/dev/null 2>&1 || true
t0=$(date +%s)
"$KCMRUN" lab up --nodes "$NODES" >/dev/null
echo "lab of $NODES nodes up in $(( $(date +%s) - t0 ))s" >&2
rows=$(KCM_BENCH_INV=$KCMRUN_LAB_DIR/inventory.lua "$KCMRUN" "$HERE/bench.lua")
{
  echo "# ssh transport benchmark"
  echo
  echo "$(date -u +%F), $(nproc) cores, $(uname -r), libssh $(pkg-config --modversion libssh),"
  echo "$(ssh -V 2>&1). Lab of $NODES nodes (real sshd + systemd per node, own network namespace)."
  echo "Produced by \`bench/ssh/run.sh\`; medians."
  echo
  echo "| measure | result |"
  echo "| --- | --- |"
  echo "$rows"
} > "$HERE/RESULTS.md"
cat "$HERE/RESULTS.md"
