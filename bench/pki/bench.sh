#!/bin/bash
# Issue N RSA-2048 leaf certs (the procedure's kube-controller-manager CSR and
# ca-config.json) with kcmrun (one run, pki.issue under task.parallel) and with
# N `cfssl gencert | cfssljson -bare` runs, sequential as the procedure does and
# 2-wide with xargs -P for comparison. Median wall time of REPS batches each.
# usage: KCMRUN=build/kcmrun bench/pki/bench.sh [N] [REPS]
set -euo pipefail
N=${1:-100} REPS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
F=$HERE/../../tests/pki/fixtures
: "${KCMRUN:?set KCMRUN to the kcmrun binary}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cd "$W"
cfssl gencert -initca "$F/ca-csr.json" 2>/dev/null | cfssljson -bare ca

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

kcm_batch() {
  rm -rf "$W/k"; mkdir "$W/k"
  local t0=$(now)
  BENCH_N=$N BENCH_DIR="$W/k" BENCH_CA="$W/ca.pem" BENCH_CA_KEY="$W/ca-key.pem" \
    BENCH_CSR="$F/kube-controller-manager-csr.json" BENCH_CONFIG="$F/ca-config.json" \
    "$KCMRUN" -q "$HERE/issue100.lua" >/dev/null
  echo "$(now) - $t0" | bc
  [ "$(ls "$W/k"/*-key.pem | wc -l)" = "$N" ]
}
cfssl_one() {
  cfssl gencert -ca="$W/ca.pem" -ca-key="$W/ca-key.pem" -config="$F/ca-config.json" -profile=kubernetes \
    "$F/kube-controller-manager-csr.json" 2>/dev/null | cfssljson -bare "$W/c/leaf$1"
}
export -f cfssl_one; export W F
cfssl_batch() {   # cfssl_batch PARALLELISM
  rm -rf "$W/c"; mkdir "$W/c"
  local t0=$(now)
  seq "$N" | xargs -P "$1" -I{} bash -c 'cfssl_one {}'
  echo "$(now) - $t0" | bc
  [ "$(ls "$W/c"/*-key.pem | wc -l)" = "$N" ]
}

declare -a K C1 C2
for r in $(seq "$REPS"); do
  K+=("$(kcm_batch)"); C1+=("$(cfssl_batch 1)"); C2+=("$(cfssl_batch 2)")
done
mk=$(printf '%s\n' "${K[@]}" | median)
mc1=$(printf '%s\n' "${C1[@]}" | median)
mc2=$(printf '%s\n' "${C2[@]}" | median)
echo "host: $(nproc) cores, $(uname -sr), $(cfssl version | head -1), $(openssl version | cut -d' ' -f1-2)"
echo "N=$N certs per batch, $REPS batches each, median batch wall time:"
printf '  kcmrun pki.issue x%d (task.parallel)       %7.2f s\n' "$N" "$mk"
printf '  cfssl gencert|cfssljson x%d, sequential    %7.2f s   (kcmrun %.2fx faster)\n' "$N" "$mc1" "$(echo "$mc1 / $mk" | bc -l)"
printf '  cfssl gencert|cfssljson x%d, xargs -P2     %7.2f s   (kcmrun %.2fx faster)\n' "$N" "$mc2" "$(echo "$mc2 / $mk" | bc -l)"
echo "raw kcmrun: ${K[*]}"; echo "raw cfssl -P1: ${C1[*]}"; echo "raw cfssl -P2: ${C2[*]}"
