#!/bin/bash
# kcmrun against the procedure's own shell commands, on labs of N nodes.
#
#   bench/run.sh [--nodes 3,10,50] [--runs 5] [--runs-large R] [--fresh auto|lab|reset] [--no-readme]
#   (--runs-large: measured runs for N > 10, default --runs)
#
# For each N: a lab of N nodes (KCMRUN_LAB_DIR=$BENCH_LAB_BASE-N), then a warm-up run and
# --runs measured runs of
#   (a) full  kcmrun, playbooks/controller-manager.lua (no ha-test), from a fresh lab
#   (b) rerun the same command again: nothing to change (asserts 0 changed)
#   (c) base  bench/baseline/procedure.sh (the procedure's commands) on the same lab,
#             after its nodes were emptied of what (a) made (through `lab exec`, no ssh)
# each under /usr/bin/time -v: wall time, user+sys CPU, peak RSS; SSH logins counted as
# "Accepted publickey" lines in every node's journal before and after; the nodes' CPU from
# their cgroup2 cpu.stat (the lab floor). Raw rows: bench/results/raw-N.tsv; the table:
# bench/results/summary.md, also written into bench/README.md between the markers.
#
# Fresh lab: --fresh lab = `lab down` + `lab up` before every (a); --fresh reset = one lab,
# emptied before every (a) through `lab exec` (files, unit, the lab's issued certificate,
# the apiserver's binding and lease). auto = lab up to 10 nodes, reset above.
#
# Environment: KCMRUN (default build/kcmrun), BENCH_LAB_BASE (default /var/lib/kcmrun/bench).
set -euo pipefail
export NO_COLOR=1
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
KCMRUN=${KCMRUN:-$REPO/build/kcmrun}
KCMRUN=$(readlink -f "$KCMRUN")
PB=$REPO/playbooks/controller-manager.lua
RES=$HERE/results
BASE=${BENCH_LAB_BASE:-/var/lib/kcmrun/bench}
NODES_LIST=3,10,50
RUNS=5
RUNS_LARGE=
FRESH=auto
WRITE_README=1
LOGIN_SAMPLES=10
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES_LIST=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --runs-large) RUNS_LARGE=$2; shift 2 ;;
    --fresh) FRESH=$2; shift 2 ;;
    --no-readme) WRITE_README=0; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$KCMRUN" ] || { echo "bench/run.sh: no kcmrun at $KCMRUN (set KCMRUN)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/run.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: needs root (the lab)" >&2; exit 2; }
mkdir -p "$RES"
CORES=$(nproc)

log() { echo "[bench $(date +%T)] $*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
lab() { KCMRUN_LAB_DIR=$LAB_DIR "$KCMRUN" lab "$@"; }

# ------------------------------------------------------------ lab helpers

lab_up() {
  local t0 t1
  t0=$(now_ms)
  lab up --nodes "$N" >"$RES/lab-up-$N.log" 2>&1 || { cat "$RES/lab-up-$N.log" >&2; return 1; }
  # shellcheck disable=SC1090
  . "$LAB_DIR/lab.state"
  CG=$LAB_CGROUP
  # a booted node may still run boot jobs: wait until every node's systemd is settled
  seq 1 "$N" | xargs -P 8 -I{} env KCMRUN_LAB_DIR="$LAB_DIR" "$KCMRUN" lab exec node{} \
    timeout 60 systemctl is-system-running --wait >/dev/null 2>&1 || true
  t1=$(now_ms)
  LAB_UPS+=("$(( t1 - t0 ))")
  log "lab of $N nodes up in $(( t1 - t0 )) ms"
}

lab_down() { lab down >/dev/null 2>&1 || true; }

# every node's count of accepted logins (sshd writes one line per authenticated connection)
ssh_logins() {
  seq 1 "$N" | xargs -P 8 -I{} env KCMRUN_LAB_DIR="$LAB_DIR" "$KCMRUN" lab exec node{} \
    sh -c 'journalctl -u ssh --no-pager -o cat | grep -c "Accepted publickey"' 2>/dev/null |
    awk '{s += $1} END{print s + 0}'
}

# usage_usec of a list of cgroup dirs (missing ones count 0)
cg_usec() {
  local d sum=0 v
  for d in "$@"; do
    v=$(awk '$1 == "usage_usec" {print $2}' "$d/cpu.stat" 2>/dev/null || true)
    sum=$(( sum + ${v:-0} ))
  done
  echo "$sum"
}
# node-side CPU: all nodes; their sshd + login sessions; the apiserver stand-in
cpu_snapshot() {
  local all=() ssh=() i
  for i in $(seq 1 "$N"); do
    all+=("$CG/node$i")
    ssh+=("$CG/node$i/system.slice/ssh.service" "$CG/node$i/user.slice")
  done
  echo "$(cg_usec "${all[@]}") $(cg_usec "${ssh[@]}") $(cg_usec "$CG/cluster")"
}

# Empty the nodes of what a deployment made, without ssh (so no login is counted).
reset_nodes() {
  local full=$1
  seq 1 "$N" | xargs -P 8 -I{} env KCMRUN_LAB_DIR="$LAB_DIR" "$KCMRUN" lab exec node{} sh -c '
    systemctl disable --now kube-controller-manager >/dev/null 2>&1 || true
    systemctl reset-failed kube-controller-manager >/dev/null 2>&1 || true
    rm -rf /etc/kubernetes /opt/k8s /data/k8s /etc/systemd/system/kube-controller-manager.service
    systemctl daemon-reload'
  kubectl --kubeconfig "$LAB_DIR/cluster/admin.kubeconfig" delete clusterrolebinding \
    controller-manager:system:auth-delegator >/dev/null 2>&1 || true
  if [ "$full" = 1 ]; then
    rm -f "$LAB_DIR"/cluster/kube-controller-manager*.pem "$LAB_DIR"/cluster/kube-controller-manager*.kubeconfig
    kubectl --kubeconfig "$LAB_DIR/cluster/admin.kubeconfig" -n kube-system delete lease \
      kube-controller-manager >/dev/null 2>&1 || true
    kubectl --kubeconfig "$LAB_DIR/cluster/admin.kubeconfig" -n kube-system delete endpoints \
      kube-controller-manager >/dev/null 2>&1 || true
  fi
}

# ------------------------------------------------------------ one measurement

# measure CASE RUN CMD...: one row of raw-N.tsv
measure() {
  local case=$1 run=$2 out=$RES/out-$N-$1-$2 rc=0 t0 t1 l0 l1 c0 c1 load changed
  shift 2
  l0=$(ssh_logins); c0=$(cpu_snapshot)
  load=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(now_ms)
  /usr/bin/time -v -o "$out.time" "$@" >"$out.log" 2>&1 || rc=$?
  t1=$(now_ms)
  c1=$(cpu_snapshot); l1=$(ssh_logins)
  if [ "$rc" != 0 ]; then
    log "$case run $run on $N nodes failed (exit $rc): see $out.log"
    tail -n 30 "$out.log" >&2
    return 1
  fi
  changed=-
  if [ "$case" != base ]; then
    # the recap's "changed" column, summed over the nodes and localhost
    changed=$(awk '/^RECAP/{r=1; next} r && NF == 6 && $2 ~ /^[0-9]+$/ {s += $3} END{print s + 0}' "$out.log")
  fi
  read -r a0 s0 p0 <<<"$c0"; read -r a1 s1 p1 <<<"$c1"
  # run case N wall_ms user_s sys_s rss_kb logins changed node_cpu_ms node_ssh_cpu_ms apiserver_cpu_ms load1
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$case" "$N" "$(( t1 - t0 ))" \
    "$(awk -F': ' '/User time/{print $2}' "$out.time")" \
    "$(awk -F': ' '/System time/{print $2}' "$out.time")" \
    "$(awk -F': ' '/Maximum resident/{print $2}' "$out.time")" \
    "$(( l1 - l0 ))" "$changed" "$(( (a1 - a0) / 1000 ))" "$(( (s1 - s0) / 1000 ))" "$(( (p1 - p0) / 1000 ))" \
    "$load" >>"$RAW"
  tail -n 1 "$RAW" | awk -F'\t' '{printf "[bench] %-6s run %s N=%s: %s ms wall, %.2f s cpu, %d KiB, %s logins, changed %s, nodes %s ms cpu, load %s\n", $2, $1, $3, $4, $5 + $6, $7, $8, $9, $10, $13}' >&2
}


# The node's CPU for one OpenSSH login that runs `true` (sshd, the session, logind and
# systemd making the session scope), measured now on node1 with its kcm stopped.
per_login_cpu() {
  local b a i
  lab exec node1 systemctl stop kube-controller-manager >/dev/null 2>&1 || true
  sleep 0.5
  b=$(cg_usec "$CG/node1")
  for i in $(seq 1 "$LOGIN_SAMPLES"); do ssh -F "$LAB_DIR/ssh_config" node1 true; done
  sleep 0.5
  a=$(cg_usec "$CG/node1")
  echo $(( (a - b) / LOGIN_SAMPLES / 1000 ))
}

bench_n() {
  N=$1
  LAB_DIR=$BASE-$N
  RAW=$RES/raw-$N.tsv
  LAB_UPS=()
  local mode=$FRESH r sd runs=$RUNS
  if [ "$N" -gt 10 ] && [ -n "$RUNS_LARGE" ]; then runs=$RUNS_LARGE; fi
  if [ "$mode" = auto ]; then if [ "$N" -le 10 ]; then mode=lab; else mode=reset; fi; fi
  : >"$RAW"
  rm -rf "$RES/state-$N" "$RES"/out-"$N"-*
  lab_down
  trap 'lab_down' EXIT
  for r in $(seq 0 "$runs"); do
    if [ "$r" = 0 ] || [ "$mode" = lab ]; then
      lab_down
      lab_up
    else
      reset_nodes 1
    fi
    sd=$RES/state-$N/$r
    local tl=()
    if [ "$r" = 1 ]; then tl=(--timeline "$RES/timeline-$N-full.svg"); fi
    measure full "$r" "$KCMRUN" --state-dir "$sd" -i "$LAB_DIR/inventory.lua" "${tl[@]}" "$PB"
    if [ "$r" = 1 ]; then tl=(--timeline "$RES/timeline-$N-rerun.svg"); fi
    measure rerun "$r" "$KCMRUN" --state-dir "$sd" -i "$LAB_DIR/inventory.lua" "${tl[@]}" "$PB"
    reset_nodes 0
    rm -rf "$RES/work-$N"
    measure base "$r" "$HERE/baseline/procedure.sh" "$LAB_DIR/environment.sh" "$RES/work-$N"
  done
  PER_LOGIN=$(per_login_cpu)
  echo "$N	$mode	$PER_LOGIN	${LAB_UPS[*]}" >"$RES/meta-$N.tsv"
  lab_down
  trap - EXIT
}

# ------------------------------------------------------------ report

machine() {
  echo "- $(nproc) cores: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
  echo "- memory: $(awk '/^MemTotal/{printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); kernel $(uname -r); $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "- kcmrun $("$KCMRUN" --version 2>&1 | head -1) ($(basename "$(dirname "$KCMRUN")")); $(ssh -V 2>&1); cfssl $(cfssl version 2>/dev/null | awk '/^Version/{print $2}'); kubectl $(kubectl version --client 2>/dev/null | awk '/Client Version/{print $3}')"
}

summary() {
  local n
  echo "Produced by \`bench/run.sh --nodes $NODES_LIST --runs $RUNS${RUNS_LARGE:+ --runs-large $RUNS_LARGE}\` on $(date -u '+%F %H:%M') UTC."
  echo "Medians over the measured runs (after one warm-up), spread as min–max."
  echo
  machine
  echo
  for n in ${NODES_LIST//,/ }; do
    [ -s "$RES/raw-$n.tsv" ] || continue
    /usr/bin/python3 - "$RES/raw-$n.tsv" "$RES/meta-$n.tsv" "$CORES" <<'PY'
import sys, statistics as st
raw, meta, cores = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [l.rstrip("\n").split("\t") for l in open(raw) if l.strip()]
n, mode, per_login, *ups = open(meta).read().split()
n, per_login = int(n), int(per_login)
cases = {"full": "kcmrun, fresh lab", "rerun": "kcmrun, rerun", "base": "procedure's commands"}
data = {}
for r in rows:
    run, case = int(r[0]), r[1]
    if run == 0:
        continue
    d = data.setdefault(case, {k: [] for k in ("wall", "cpu", "rss", "logins", "changed", "node", "nssh", "api", "load")})
    d["wall"].append(int(r[3]) / 1000)
    d["cpu"].append(float(r[4]) + float(r[5]))
    d["rss"].append(int(r[6]) / 1024)
    d["logins"].append(int(r[7]))
    d["changed"].append(r[8])
    d["node"].append(int(r[9]) / 1000)
    d["nssh"].append(int(r[10]) / 1000)
    d["api"].append(int(r[11]) / 1000)
    d["load"].append(float(r[12]))
runs = len(data.get("full", {}).get("wall", []))
def med(v): return st.median(v)
def sp(v, f): return f"{f(med(v))} ({f(min(v))}–{f(max(v))})"
s = lambda x: f"{x:.2f}"
ms = lambda x: f"{x * 1000:.0f}"
mib = lambda x: f"{x:.1f}"
print(f"### {n} nodes\n")
ups = [int(u) / 1000 for u in ups]
fresh = ("`lab down` + `lab up` before every fresh run" if mode == "lab"
         else "one lab, emptied through `lab exec` before every fresh run")
print(f"{runs} measured runs; fresh = {fresh}; lab up took {sp(ups, lambda x: f'{x:.1f}')} s. "
      f"Load average (1 min) at the start of the runs: {sp(sum((d['load'] for d in data.values()), []), lambda x: f'{x:.2f}')}.\n")
print("| case | wall s | CPU s (user+sys) | CPU ms / node | peak RSS MiB | SSH logins / run | changed | nodes' CPU s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for c in ("full", "rerun", "base"):
    if c not in data: continue
    d = data[c]
    ch = ",".join(sorted(set(d["changed"]))) if c != "base" else "—"
    print(f"| {cases[c]} | {sp(d['wall'], s)} | {sp(d['cpu'], s)} | {sp([x / n for x in d['cpu']], ms)} | "
          f"{sp(d['rss'], mib)} | {sp(d['logins'], lambda x: f'{x:g}')} | {ch} | {sp(d['node'], s)} |")
print()
if "base" in data and "full" in data:
    b, f, r = (med(data[k]["wall"]) for k in ("base", "full", "rerun"))
    bc, fc, rc = (med(data[k]["cpu"]) for k in ("base", "full", "rerun"))
    bn, fn = med(data["base"]["node"]), med(data["full"]["node"])
    print(f"Ratios (procedure / kcmrun, medians): wall **{b / f:.1f}x** vs the fresh run, **{b / r:.1f}x** vs the rerun; "
          f"control-side CPU {bc / fc:.1f}x / {bc / rc:.1f}x; node-side CPU {bn / fn:.1f}x. "
          f"SSH logins per node per run: kcmrun {med(data['full']['logins']) / n:g}, procedure {med(data['base']['logins']) / n:g}.\n")
    fl = n * per_login / 1000 / cores
    nodefloor = med(data["full"]["node"]) / cores
    print(f"Lab floor: one OpenSSH login costs the node {per_login} ms CPU (sshd, session, logind, systemd; "
          f"the whole node1 cgroup over 10 `ssh node1 true` after the runs, its kcm stopped); N × that / {cores} cores = **{fl:.2f} s**. All the nodes' CPU during the "
          f"fresh kcmrun run (sshd, sessions, systemd, the Python kcm stand-ins starting) = {fn:.2f} s, "
          f"/ {cores} cores = **{nodefloor:.2f} s**; the apiserver stand-in used {med(data['full']['api']):.2f} s "
          f"more. kcmrun's fresh wall time is {f:.2f} s.\n")
PY
  done
}

for n in ${NODES_LIST//,/ }; do
  log "=== $n nodes"
  bench_n "$n"
done
summary >"$RES/summary.md"
cat "$RES/summary.md"
if [ "$WRITE_README" = 1 ] && [ -f "$HERE/README.md" ] && grep -q '<!-- bench/run.sh begin -->' "$HERE/README.md"; then
  /usr/bin/python3 - "$HERE/README.md" "$RES/summary.md" <<'PY'
import sys, re
readme, summ = sys.argv[1], open(sys.argv[2]).read()
t = open(readme).read()
t = re.sub(r"(<!-- bench/run.sh begin -->\n).*?(<!-- bench/run.sh end -->)",
           lambda m: m.group(1) + summ + m.group(2), t, flags=re.S)
open(readme, "w").write(t)
PY
  log "bench/README.md updated"
fi
