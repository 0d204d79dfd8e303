#!/bin/bash
# The lab's cluster stand-ins: cluster CA, admin credentials, the apiserver
# stand-in, and the kube-controller-manager / kube-scheduler stand-in binaries.
#
#   cluster.sh up STATE_DIR BRIDGE_IP    create what is missing, start the apiserver
#                                        on BRIDGE_IP:6443, print KEY=VALUE lines
#   cluster.sh down STATE_DIR            stop the apiserver (files are kept)
#   cluster.sh status STATE_DIR          print the KEY=VALUE lines again (exit 1 if down)
#   cluster.sh binary NAME VERSION OUT   build a stand-in binary NAME (kube-controller-manager
#                                        or kube-scheduler) reporting VERSION, at OUT
#
# Certificates are made with the openssl CLI, independent of kcmrun's pki, so
# the lab can check kcmrun's certificates against a CA it did not make.
# Environment: APISERVER_PORT (6443), KUBE_STANDIN_VERSION (v1.28.4).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STANDINS=$HERE/standins
PY=/usr/bin/python3
PORT=${APISERVER_PORT:-6443}
VERSION=${KUBE_STANDIN_VERSION:-v1.28.4}

die() { echo "cluster.sh: $*" >&2; exit 1; }

# Builds a self-contained executable (a Python zip application) so that the
# playbook can install the single file on a node like the real binary.
build_binary() {
  local name=$1 version=$2 out=$3 stage
  case $name in kube-controller-manager|kube-scheduler) ;; *) die "unknown component $name";; esac
  [[ $version =~ ^v?[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "bad version $version (want vX.Y.Z)"
  stage=$(mktemp -d)
  cp "$STANDINS/standin_common.py" "$STANDINS/component.py" "$stage/"
  printf 'NAME = "%s"\nVERSION = "%s"\n' "$name" "v${version#v}" >"$stage/standin_build.py"
  printf 'import component\ncomponent.main()\n' >"$stage/__main__.py"
  mkdir -p "$(dirname "$out")"
  "$PY" -m zipapp "$stage" -p "$PY -u" -o "$out.tmp"
  chmod 0755 "$out.tmp"
  mv -f "$out.tmp" "$out"
  rm -rf "$stage"
}

sign() { # sign NAME SUBJ EXTFILE_CONTENT  (in $S)
  local name=$1 subj=$2 ext=$3
  openssl req -new -newkey rsa:2048 -nodes -keyout "$S/$name-key.pem" -subj "$subj" \
    -out "$S/$name.csr" 2>/dev/null
  chmod 0600 "$S/$name-key.pem"
  printf '%s\n' "$ext" >"$S/$name.ext"
  openssl x509 -req -in "$S/$name.csr" -CA "$S/ca.pem" -CAkey "$S/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 -extfile "$S/$name.ext" \
    -out "$S/$name.pem" 2>/dev/null
  rm -f "$S/$name.csr" "$S/$name.ext"
}

make_pki() {
  umask 077
  if [ ! -s "$S/ca.pem" ] || [ ! -s "$S/ca-key.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$S/ca-key.pem" -out "$S/ca.pem" \
      -days 3650 -sha256 -subj "/C=CN/ST=BeiJing/L=BeiJing/O=k8s/OU=4Paradigm/CN=kubernetes-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign" 2>/dev/null
    rm -f "$S/admin.pem" "$S/apiserver.pem"
  fi
  chmod 0600 "$S/ca-key.pem"
  chmod 0644 "$S/ca.pem"
  cat >"$S/ca-config.json" <<'EOF'
{
  "signing": {
    "default": {
      "expiry": "87600h"
    },
    "profiles": {
      "kubernetes": {
        "usages": [
          "signing",
          "key encipherment",
          "server auth",
          "client auth"
        ],
        "expiry": "876000h"
      }
    }
  }
}
EOF
  chmod 0644 "$S/ca-config.json"
  if [ ! -s "$S/admin.pem" ]; then
    sign admin "/C=CN/ST=BeiJing/L=BeiJing/O=system:masters/OU=4Paradigm/CN=admin" \
      "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  fi
  # The serving certificate names the bridge address: remake it when that changes.
  if [ ! -s "$S/apiserver.pem" ] || [ "$(cat "$S/apiserver.ip" 2>/dev/null)" != "$IP" ]; then
    sign apiserver "/C=CN/ST=BeiJing/L=BeiJing/O=k8s/OU=4Paradigm/CN=kubernetes" \
      "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    echo "$IP" >"$S/apiserver.ip"
  fi
  chmod 0644 "$S/admin.pem" "$S/apiserver.pem"
  # kubeconfig with embedded certificates, as `kubectl config ... --embed-certs` writes it
  cat >"$S/admin.kubeconfig.tmp" <<EOF
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 "$S/ca.pem")
    server: https://$IP:$PORT
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: admin
  name: kubernetes
current-context: kubernetes
kind: Config
preferences: {}
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 "$S/admin.pem")
    client-key-data: $(base64 -w0 "$S/admin-key.pem")
EOF
  chmod 0600 "$S/admin.kubeconfig.tmp"
  mv -f "$S/admin.kubeconfig.tmp" "$S/admin.kubeconfig"
  umask 022
}

running() {
  local pid
  pid=$(cat "$S/apiserver.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    grep -q apiserver.py "/proc/$pid/cmdline" 2>/dev/null
}

healthy() {
  curl -sf --noproxy '*' --max-time 2 --cacert "$S/ca.pem" "https://$IP:$PORT/healthz" >/dev/null 2>&1
}

print_vars() {
  echo "KUBE_APISERVER=https://$IP:$PORT"
  echo "ca_cert=$S/ca.pem"
  echo "ca_key=$S/ca-key.pem"
  echo "ca_config=$S/ca-config.json"
  echo "admin_kubeconfig=$S/admin.kubeconfig"
  echo "admin_cert=$S/admin.pem"
  echo "admin_key=$S/admin-key.pem"
  echo "kcm_binary=$S/bin/kube-controller-manager"
  echo "scheduler_binary=$S/bin/kube-scheduler"
  echo "kube_version=$(cat "$S/bin/version")"
  echo "apiserver_log=$S/apiserver.log"
}

up() {
  mkdir -p "$S"
  S=$(cd "$S" && pwd)
  make_pki
  mkdir -p "$S/bin"
  build_binary kube-controller-manager "$VERSION" "$S/bin/kube-controller-manager"
  build_binary kube-scheduler "$VERSION" "$S/bin/kube-scheduler"
  echo "v${VERSION#v}" >"$S/bin/version"
  if ! running; then
    # setsid: the apiserver outlives this script and ignores its terminal
    setsid "$PY" -u "$STANDINS/apiserver.py" \
      --bind-address="$IP" --secure-port="$PORT" \
      --tls-cert-file="$S/apiserver.pem" --tls-private-key-file="$S/apiserver-key.pem" \
      --client-ca-file="$S/ca.pem" --standin-state-file="$S/apiserver-state.json" \
      --standin-version="$VERSION" \
      </dev/null >>"$S/apiserver.log" 2>&1 &
    echo $! >"$S/apiserver.pid"
  fi
  for _ in $(seq 1 100); do
    healthy && break
    running || { tail -n 20 "$S/apiserver.log" >&2; die "the apiserver stand-in exited"; }
    sleep 0.1
  done
  healthy || { tail -n 20 "$S/apiserver.log" >&2; die "no /healthz from https://$IP:$PORT"; }
  echo "$IP" >"$S/bridge_ip"
  print_vars
}

down() {
  [ -d "$S" ] || return 0
  if running; then
    local pid
    pid=$(cat "$S/apiserver.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$S/apiserver.pid"
}

cmd=${1:-}
case $cmd in
  up)
    [ $# -eq 3 ] || die "usage: cluster.sh up STATE_DIR BRIDGE_IP"
    S=$2 IP=$3
    up ;;
  down)
    [ $# -eq 2 ] || die "usage: cluster.sh down STATE_DIR"
    S=$2
    down ;;
  status)
    [ $# -eq 2 ] || die "usage: cluster.sh status STATE_DIR"
    S=$(cd "$2" && pwd)
    IP=$(cat "$S/bridge_ip" 2>/dev/null) || die "not up"
    running || die "the apiserver stand-in is not running"
    print_vars ;;
  binary)
    [ $# -eq 4 ] || die "usage: cluster.sh binary NAME VERSION OUT"
    build_binary "$2" "$3" "$4" ;;
  *) die "usage: cluster.sh up STATE_DIR BRIDGE_IP | down STATE_DIR | status STATE_DIR | binary NAME VERSION OUT" ;;
esac
