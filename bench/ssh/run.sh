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
  echo "Load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg). Produced by \`bench/ssh/run.sh\`; medians."
  echo
  echo "| measure | result |"
  echo "| --- | --- |"
  echo "$rows"
  cat <<'NOTES'

Reading the numbers:
- `node:run` = open a channel on the node's one session, exec, collect output and exit
  status. Most of it is the node's side (sshd forks a session process and execs the login
  shell); the client side is a job round trip plus two request/reply exchanges.
- OpenSSH as the procedure uses it (`ssh root@IP cmd`, one connection per command) pays key
  exchange, host key check and authentication every time; kcmrun pays them once per node per
  run (the "connection set-up" row).
- Fan-out: `sleep 0.2` on N nodes shows the fan-out itself (all nodes wait at once, wall
  time stays ~one node's). For `true`, every lab node shares this machine's cores, so N nodes' sshd/shell work competes
  for the same CPUs and wall time grows with N here; against real machines each node's side
  runs on its own hardware and only the client side (worker threads, one per node in flight)
  is shared.
NOTES
} > "$HERE/RESULTS.md"
cat "$HERE/RESULTS.md"
