#!/bin/bash
# Runs a command against a fresh apiserver stand-in on 127.0.0.1 (a free port),
# then stops it. Exports KUBE_TEST_DIR (the cluster's state: ca.pem, admin.*),
# KUBE_APISERVER, and extra identities made with openssl:
#   alice.pem/alice-key.pem    CN=alice, O=devs: authenticated, no bindings
#   kcm.pem/kcm-key.pem        CN=O=system:kube-controller-manager (also kcm.kubeconfig)
#   other-ca.pem               a CA the apiserver does not trust
# Usage: with_apiserver.sh COMMAND ARGS...
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER=$HERE/../../lab/cluster.sh
DIR=$(mktemp -d /tmp/kcm-kube-test.XXXXXX)
cleanup() { bash "$CLUSTER" down "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT

out=
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 20000))
  if out=$(APISERVER_PORT=$port bash "$CLUSTER" up "$DIR" 127.0.0.1 2>"$DIR/up.err"); then break; fi
  out=
  bash "$CLUSTER" down "$DIR" >/dev/null 2>&1 || true
done
[ -n "$out" ] || { cat "$DIR/up.err" >&2; echo "cannot start the apiserver stand-in" >&2; exit 1; }
while IFS='=' read -r k v; do export "$k=$v"; done <<<"$out"
export KUBE_TEST_DIR=$DIR

cd "$DIR"
issue() { # NAME SUBJ CA CAKEY
  openssl req -new -newkey rsa:2048 -nodes -keyout "$1-key.pem" -subj "$2" -out "$1.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=IP:127.0.0.1\n' >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3" -CAkey "$4" -set_serial "0x$(openssl rand -hex 8)" \
    -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue alice "/O=devs/CN=alice" ca.pem ca-key.pem
issue kcm "/O=system:kube-controller-manager/CN=system:kube-controller-manager" ca.pem ca-key.pem
openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca-key.pem -out other-ca.pem -days 2 \
  -subj "/CN=other-ca" 2>/dev/null
issue stranger "/O=system:masters/CN=stranger" other-ca.pem other-ca-key.pem
sed -e "s/client-certificate-data: .*/client-certificate-data: $(base64 -w0 kcm.pem)/" \
    -e "s/client-key-data: .*/client-key-data: $(base64 -w0 kcm-key.pem)/" \
    -e "s/name: admin/name: system:kube-controller-manager/; s/user: admin/user: system:kube-controller-manager/" \
    admin.kubeconfig >kcm.kubeconfig
cd - >/dev/null
rc=0
"$@" || rc=$?
if [ $rc -ne 0 ]; then
  echo "--- apiserver log (tail)" >&2
  tail -n 30 "$DIR/apiserver.log" >&2 || true
fi
exit $rc
