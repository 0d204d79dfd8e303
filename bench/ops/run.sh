#!/bin/bash
# What a node pays per operation (issue 23): this engine against an older one built
# from git, and against OpenSSH with a ControlMaster, on one lab of 3 nodes, in one run.
#
#   bench/ops/run.sh [--runs 5] [--old f57b2c1]
#
# Measures (each --runs times; medians, spread min–max):
#   true10x3   ten `node:run{"true"}` in sequence on each of 3 nodes at once, timed inside
#              kcmrun after the connection was made (the slowest node's time)
#   true10mux  ten `ssh node1 true` in sequence through an OpenSSH ControlMaster (master up)
#   procs      processes started on node1 while an operation runs, counted by strace -f on
#              every sshd process of node1 (forks and execs under sshd: sessions, shells,
#              commands, sudo, sftp-server): a small put (6 KiB) and a stat on a warm
#              connection, and a whole converged controller-manager rerun (its own connection
#              included: sshd's 2 processes per login)
#   fresh / rerun  the controller-manager playbook on emptied nodes, then again (0 changed)
#   rerun-pw   the rerun as a login user whose sudo asks a password, and as one with NOPASSWD
# Engines: KCMRUN (default build/kcmrun; playbooks from this tree) and --old (a git commit,
# built into bench/results/ops-old; playbooks from that commit). Results: bench/results/ops.md.
set -euo pipefail
export NO_COLOR=1
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
KCMRUN=$(readlink -f "${KCMRUN:-$REPO/build/kcmrun}")
RES=$REPO/bench/results
RUNS=5
OLD=f57b2c1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --old) OLD=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/ops/run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "needs root (the lab)" >&2; exit 2; }
command -v strace >/dev/null || { echo "needs strace (apt-get install strace)" >&2; exit 2; }
mkdir -p "$RES"
log() { echo "[ops $(date +%T)] $*" >&2; }
median() { sort -n | awk '{a[NR]=$1} END{if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
spread() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END{if (NR) printf "%s–%s", lo, hi}'; }
now_ms() { date +%s%3N; }

# ---- the older engine, built from git
OLDSRC=$RES/ops-old-src
OLDBIN=$RES/ops-old/kcmrun
if [ ! -x "$OLDBIN" ] || [ "$(cat "$RES/ops-old/commit" 2>/dev/null)" != "$(git -C "$REPO" rev-parse "$OLD")" ]; then
  log "building $OLD"
  rm -rf "$OLDSRC" "$RES/ops-old"
  mkdir -p "$OLDSRC"
  git -C "$REPO" archive "$OLD" | tar -x -C "$OLDSRC"
  cmake -S "$OLDSRC" -B "$RES/ops-old" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$RES/ops-old" -j2 --target kcmrun >/dev/null
  git -C "$REPO" rev-parse "$OLD" >"$RES/ops-old/commit"
fi

# ---- one lab for everything
export KCMRUN_LAB_DIR=${BENCH_LAB_BASE:-/var/lib/kcmrun/bench}-ops
"$KCMRUN" lab down >/dev/null 2>&1 || true
trap '"$KCMRUN" lab down >/dev/null 2>&1 || true; ssh -O exit -o ControlPath="$RES/ops-cm" node1 >/dev/null 2>&1 || true' EXIT
log "lab of 3 nodes"
"$KCMRUN" lab up --nodes 3 >"$RES/ops-lab.log" 2>&1
eval "$("$KCMRUN" lab env)"
INV=$KCMRUN_LAB_INVENTORY
CFG=$KCMRUN_LAB_SSH_CONFIG
lx() { "$KCMRUN" lab exec "$@"; }

# users for the password rerun: deploypw (sudo asks a password) and deploy (NOPASSWD)
PW=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$PW" >"$RES/ops-pw"; chmod 600 "$RES/ops-pw"
pub=$(cut -d' ' -f1,2 "$KCMRUN_LAB_IDENTITY.pub")
for n in $KCMRUN_LAB_NODES; do
  printf '%s\n' "$PW" | lx "$n" bash -c '
    set -e; pw=$(cat); pub=$1
    for u in deploy deploypw; do
      id -u "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"
      install -d -m 0700 -o "$u" -g "$u" "/home/$u/.ssh"
      printf "%s\n" "$pub" > "/home/$u/.ssh/authorized_keys"
      chown "$u:$u" "/home/$u/.ssh/authorized_keys"; chmod 600 "/home/$u/.ssh/authorized_keys"
    done
    printf "deploypw:%s\n" "$pw" | chpasswd
    printf "deploy ALL=(ALL) NOPASSWD: ALL\n" > /etc/sudoers.d/kcm-deploy
    printf "deploypw ALL=(ALL) ALL\n" > /etc/sudoers.d/kcm-deploypw
    chmod 0440 /etc/sudoers.d/kcm-deploy /etc/sudoers.d/kcm-deploypw' users "$pub"
done
luaq() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
inv_as() {   # inv_as USER [pw] -> an inventory logging in as USER with become
  local f=$RES/ops-inv-$1.lua
  { printf 'local inv = dofile(%s)\ninv.ssh = inv.ssh or {}\ninv.ssh.user = %s\ninv.ssh.become = true\n' "$(luaq "$INV")" "$(luaq "$1")"
    if [ "${2:-}" = pw ]; then printf 'inv.ssh.become_password_file = %s\n' "$(luaq "$RES/ops-pw")"; fi
    echo 'return inv'; } >"$f"
  echo "$f"
}
INV_NOPW=$(inv_as deploy)
INV_PW=$(inv_as deploypw pw)

# ---- process counting on node1
STRACE_OUT=/tmp/kcm-ops.strace
count_start() {
  lx node1 rm -f "$STRACE_OUT"
  ATTACHED=$(lx node1 pgrep -x sshd | tr '\n' ' ')
  lx node1 sh -c 'exec strace -f -qq -e trace=%process -o '"$STRACE_OUT"' $(for p in '"$ATTACHED"'; do printf -- "-p %s " "$p"; done)' \
    >/dev/null 2>&1 &
  SPID=$!
  sleep 1   # attached
}
count_stop() {   # -> processes started under sshd while counting (bench/ops/count.py)
  sleep 0.3
  lx node1 pkill -INT -x strace || true
  wait "$SPID" 2>/dev/null || true
  # shellcheck disable=SC2086
  lx node1 python3 "$HERE/count.py" "$STRACE_OUT" $ATTACHED >"$RES/ops-count"
  head -1 "$RES/ops-count"
}
# commands among them: what each new process last exec'd, other than sshd, shells, sudo,
# setsid, sftp-server and the login's PAM motd scripts (count.py)
count_cmds() {
  sed -n 2p "$RES/ops-count" | cut -d' ' -f2- >"$RES/ops-cmds.txt"
  sed -n 2p "$RES/ops-count" | cut -d' ' -f1
}

# ops ENGINE WHAT [SYNC]: the ops playbook once; prints its "ops" lines
ops() {
  local bin=$1 what=$2 sync=${3:-}
  KCM_OPS=$what KCM_OPS_SYNC=$sync "$bin" --state-dir "$RES/ops-state-$(basename "$(dirname "$bin")")" -i "$INV" \
    "$HERE/ops.lua" >"$RES/ops-out.txt" 2>&1 || { cat "$RES/ops-out.txt" >&2; exit 1; }
  grep '^ops ' "$RES/ops-out.txt"
}

# counted ENGINE WHAT: processes node1 started for one operation on a warm connection
counted() {
  local sync=$RES/ops-sync n
  rm -rf "$sync"; mkdir -p "$sync"
  ops "$1" "$2" "$sync" >/dev/null &
  local p=$!
  for _ in $(seq 1 600); do [ -e "$sync/ready" ] && break; sleep 0.05; done
  count_start
  touch "$sync/go"
  for _ in $(seq 1 600); do [ -e "$sync/done" ] && break; sleep 0.05; done
  n=$(count_stop)
  wait "$p"
  echo "$n"
}

reset_nodes() {
  for n in $KCMRUN_LAB_NODES; do
    lx "$n" sh -c '
      systemctl disable --now kube-controller-manager >/dev/null 2>&1 || true
      systemctl reset-failed kube-controller-manager >/dev/null 2>&1 || true
      rm -rf /etc/kubernetes /opt/k8s /data/k8s /etc/systemd/system/kube-controller-manager.service
      systemctl daemon-reload'
  done
  kubectl --kubeconfig "$KCMRUN_LAB_DIR/cluster/admin.kubeconfig" delete clusterrolebinding \
    controller-manager:system:auth-delegator >/dev/null 2>&1 || true
}
# play ENGINE PLAYBOOK INV STATE -> "wall_ms changed"
play() {
  local t0 t1 out=$RES/ops-play.txt
  t0=$(now_ms)
  "$1" --state-dir "$4" -i "$3" "$2" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
  t1=$(now_ms)
  echo "$((t1 - t0)) $(awk '/^RECAP/{r=1} r && $1 ~ /^node/ {s+=$3} END{print s+0}' "$out")"
}

declare -A V
add() { V[$1]="${V[$1]:-} $2"; }
ssh -F "$CFG" -o ControlMaster=yes -o ControlPath="$RES/ops-cm" -o ControlPersist=600 -fN node1
for r in $(seq 1 "$RUNS"); do
  log "round $r/$RUNS"
  for e in new old; do
    bin=$KCMRUN; pb=$REPO/playbooks/controller-manager.lua
    [ $e = old ] && { bin=$OLDBIN; pb=$OLDSRC/playbooks/controller-manager.lua; }
    add "true10x3-$e" "$(ops "$bin" true10 | awk '{ if ($4 > m) m = $4 } END { print m }')"
    add "procs-put-$e" "$(counted "$bin" put)"
    add "procs-stat-$e" "$(counted "$bin" stat)"
    reset_nodes
    sd=$RES/ops-state-cm-$e-$r; rm -rf "$sd"
    read -r ms ch < <(play "$bin" "$pb" "$INV" "$sd"); add "fresh-$e" "$ms"
    read -r ms ch < <(play "$bin" "$pb" "$INV" "$sd"); add "rerun-$e" "$ms"
    [ "$ch" = 0 ] || { log "$e rerun changed $ch"; exit 1; }
    count_start
    play "$bin" "$pb" "$INV" "$sd" >/dev/null
    add "procs-rerun-$e" "$(count_stop)"
    add "cmds-rerun-$e" "$(count_cmds)"
    [ $e = new ] && cp "$RES/ops-cmds.txt" "$RES/ops-cmds-new.txt"
    # become: the old engine predates it
    if [ $e = new ]; then
      read -r ms ch < <(play "$bin" "$pb" "$INV_NOPW" "$sd"); add "rerun-nopw-$e" "$ms"
      read -r ms ch < <(play "$bin" "$pb" "$INV_PW" "$sd"); add "rerun-pw-$e" "$ms"
    fi
  done
  t0=$(date +%s%N)
  for _ in $(seq 1 10); do ssh -F "$CFG" -o ControlPath="$RES/ops-cm" node1 true; done
  add true10mux "$(( ($(date +%s%N) - t0) / 1000000 ))"
done

m() { echo ${V[$1]:-} | tr ' ' '\n' | grep . | median; }
s() { echo ${V[$1]:-} | tr ' ' '\n' | grep . | spread; }
row() { printf '| %s | %s (%s) | %s (%s) |\n' "$1" "$(m "$2-new")" "$(s "$2-new")" "$(m "$2-old")" "$(s "$2-old")"; }
ratio() { awk -v a="$(m "$1")" -v b="$(m "$2")" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
  echo "Produced by \`bench/ops/run.sh --runs $RUNS --old $OLD\` on $(date -u '+%F %H:%M') UTC; $(nproc) cores,"
  echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg). One lab of 3 nodes for everything; medians (min–max)."
  echo "This engine: $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet || echo '+changes'); old: $OLD."
  echo
  echo "| measure | this engine | $OLD |"
  echo "|---|---:|---:|"
  row "ten \`true\` on 3 nodes at once, ms" true10x3
  echo "| ten \`true\` through an OpenSSH ControlMaster, one node, ms | $(m true10mux) ($(s true10mux)) | |"
  row "processes on node1: a small put (warm connection)" procs-put
  row "processes on node1: a stat (warm connection)" procs-stat
  row "processes on node1: a converged rerun (its login included)" procs-rerun
  row "commands among them (not sshd, shells, sudo, setsid, sftp-server, the login's PAM motd)" cmds-rerun
  row "controller-manager, fresh, ms" fresh
  row "controller-manager, rerun (root login), ms" rerun
  row "rerun as deploy (NOPASSWD sudo), ms" rerun-nopw
  row "rerun as deploypw (sudo asks a password), ms" rerun-pw
  echo
  echo "Ratios (medians): ten \`true\` on 3 nodes / through the mux on one node: $(ratio true10x3-new true10mux) (target ≤ 1);"
  echo "fresh this/old: $(ratio fresh-new fresh-old) (target ≤ 1); rerun this/old: $(ratio rerun-new rerun-old) (target ≤ 0.6);"
  echo "password rerun / NOPASSWD rerun: $(ratio rerun-pw-new rerun-nopw-new) (target ≤ 1.3; $OLD has no become)."
  echo
  echo "Commands of this engine's converged rerun on node1 (last round): $(cat "$RES/ops-cmds-new.txt")."
} | tee "$RES/ops.md"
