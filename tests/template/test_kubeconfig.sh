#!/bin/bash
# kubeconfig.build/write/resolve against kubectl itself:
#  - the file kcmrun writes and the file the procedure's four `kubectl config`
#    commands write give the same `kubectl config view --raw -o json`;
#  - `kubectl config current-context` reads kcmrun's file;
#  - kubeconfig.resolve finds the same server, CA, cert, key and token as
#    `kubectl config view --raw --flatten` (which reads referenced files,
#    relative to the kubeconfig's folder, and embeds them).
set -eu
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
command -v kubectl >/dev/null || fail "kubectl is required (apt-get install kubernetes-client)"
command -v openssl >/dev/null || fail "openssl is required"

# Real key material, made by openssl.
P=$T/pki
mkdir -p "$P"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/ca-key.pem" -out "$P/ca.pem" \
  -subj /CN=kubernetes-ca -days 2 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$P/kcm-key.pem" -out "$P/kcm.csr" \
  -subj "/O=system:kube-controller-manager/CN=system:kube-controller-manager" 2>/dev/null
openssl x509 -req -in "$P/kcm.csr" -CA "$P/ca.pem" -CAkey "$P/ca-key.pem" -CAcreateserial \
  -out "$P/kcm.pem" -days 2 2>/dev/null

view() { kubectl config view --raw -o json --kubeconfig "$1"; }
flat() { kubectl config view --raw --flatten -o json --kubeconfig "$1"; }
same_json() { # A B what
  $PY -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a!=b)' "$1" "$2" ||
    { diff "$1" "$2" | head -30; fail "$3"; }
}
build() { # OUT, with KC_* in the environment
  run env KC_OUT="$1" "$KCMRUN" "$HERE/kubeconfig_build.lua"
  expect_rc 0 "kcmrun kubeconfig_build.lua ($1)"
}
# kubectl's view of the current context, as resolve() reports it
kubectl_resolved() { # KUBECONFIG OUT
  flat "$1" >"$T/flat.json"
  $PY - "$T/flat.json" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
cur = c["current-context"]
ctx = next(x["context"] for x in c["contexts"] if x["name"] == cur)
cl = next(x["cluster"] for x in c["clusters"] if x["name"] == ctx["cluster"])
us = next((x["user"] for x in c.get("users") or [] if x["name"] == ctx.get("user")), {})
out = {"server": cl["server"], "context": cur, "cluster": ctx["cluster"], "user": ctx.get("user"),
       "ca": cl.get("certificate-authority-data"), "cert": us.get("client-certificate-data"),
       "key": us.get("client-key-data"), "token": us.get("token"),
       "insecure": bool(cl.get("insecure-skip-tls-verify", False))}
json.dump(out, open(sys.argv[2], "w"))
PY
}
resolve_same() { # KUBECONFIG what [cwd]
  kubectl_resolved "$1" "$T/want.json"
  (cd "${3:-/}" && run env KC_IN="$1" KC_OUT="$T/got.json" "$KCMRUN" "$HERE/kubeconfig_resolve.lua"
   expect_rc 0 "kcmrun kubeconfig_resolve.lua $1")
  same_json "$T/want.json" "$T/got.json" "$2: kubeconfig.resolve differs from kubectl's flattened view"
}

# --- A: the procedure's kubeconfig (embedded certs) -------------------------
A=$T/a
mkdir -p "$A"
SERVER=https://127.0.0.1:6443
USER_=system:kube-controller-manager
kubectl config set-cluster kubernetes --certificate-authority="$P/ca.pem" --embed-certs=true \
  --server="$SERVER" --kubeconfig="$A/kubectl.kubeconfig" >/dev/null
kubectl config set-credentials "$USER_" --client-certificate="$P/kcm.pem" \
  --client-key="$P/kcm-key.pem" --embed-certs=true --kubeconfig="$A/kubectl.kubeconfig" >/dev/null
kubectl config set-context "$USER_" --cluster=kubernetes --user="$USER_" \
  --kubeconfig="$A/kubectl.kubeconfig" >/dev/null
kubectl config use-context "$USER_" --kubeconfig="$A/kubectl.kubeconfig" >/dev/null

export KC_CLUSTER=kubernetes KC_SERVER=$SERVER KC_CA=$P/ca.pem KC_USER=$USER_ \
       KC_CERT=$P/kcm.pem KC_KEY=$P/kcm-key.pem KC_CONTEXT=$USER_ KC_TOKEN= KC_EMBED=true KC_AS_PEM=
build "$A/kcmrun.kubeconfig"
view "$A/kubectl.kubeconfig" >"$A/kubectl.json"
view "$A/kcmrun.kubeconfig" >"$A/kcmrun.json"
same_json "$A/kubectl.json" "$A/kcmrun.json" "embedded kubeconfig: kubectl config view differs"
grep -q '"client-key-data"' "$A/kcmrun.json" || fail "kcmrun's kubeconfig has no embedded key"
pass "embedded: kubectl config view --raw -o json is identical"

[ "$(kubectl --kubeconfig "$A/kcmrun.kubeconfig" config current-context)" = "$USER_" ] ||
  fail "kubectl config current-context does not print $USER_"
pass "kubectl config current-context reads kcmrun's file"

[ "$(stat -c %a "$A/kcmrun.kubeconfig")" = 600 ] || fail "kubeconfig mode is $(stat -c %a "$A/kcmrun.kubeconfig"), want 600"
expect_file "$A/kcmrun.kubeconfig.result" "^first=true second=false$"
pass "written 0600; writing the same kubeconfig again reports no change"

# PEM text instead of paths gives the same file
KC_AS_PEM=1 build "$A/pem.kubeconfig"
cmp -s "$A/kcmrun.kubeconfig" "$A/pem.kubeconfig" || fail "PEM text and file paths give different kubeconfigs"
pass "PEM text embeds like a path"

# a changed input is a change; --check reports it but leaves the file alone
cp "$A/kcmrun.kubeconfig" "$A/before"
KC_SERVER=https://127.0.0.2:6443 KC_CHECK=1 run env KC_OUT="$A/kcmrun.kubeconfig" "$KCMRUN" --check "$HERE/kubeconfig_build.lua"
expect_rc 0 "kcmrun --check kubeconfig_build.lua"
cmp -s "$A/before" "$A/kcmrun.kubeconfig" || fail "--check modified the kubeconfig"
expect_out "first=true second=true"
KC_SERVER=https://127.0.0.2:6443 build "$A/kcmrun.kubeconfig"
expect_file "$A/kcmrun.kubeconfig.result" "^first=true second=false$"
grep -q "127.0.0.2" "$A/kcmrun.kubeconfig" || fail "changed server not written"
pass "a changed kubeconfig is rewritten; --check writes nothing"

resolve_same "$A/kubectl.kubeconfig" "embedded (kubectl's file)"
pass "resolve: embedded data decoded like kubectl"

# --- B: token, certificate paths not embedded --------------------------------
B=$T/b
mkdir -p "$B"
kubectl config set-cluster lab --certificate-authority="$P/ca.pem" --server=https://127.0.0.1:8443 \
  --kubeconfig="$B/kubectl.kubeconfig" >/dev/null
kubectl config set-credentials admin --client-certificate="$P/kcm.pem" --client-key="$P/kcm-key.pem" \
  --token=abc.0123456789abcdef --kubeconfig="$B/kubectl.kubeconfig" >/dev/null
kubectl config set-context admin@lab --cluster=lab --user=admin --kubeconfig="$B/kubectl.kubeconfig" >/dev/null
kubectl config use-context admin@lab --kubeconfig="$B/kubectl.kubeconfig" >/dev/null
KC_CLUSTER=lab KC_SERVER=https://127.0.0.1:8443 KC_USER=admin KC_CONTEXT=admin@lab \
  KC_TOKEN=abc.0123456789abcdef KC_EMBED=false build "$B/kcmrun.kubeconfig"
view "$B/kubectl.kubeconfig" >"$B/kubectl.json"
view "$B/kcmrun.kubeconfig" >"$B/kcmrun.json"
same_json "$B/kubectl.json" "$B/kcmrun.json" "path+token kubeconfig: kubectl config view differs"
pass "paths and token: kubectl config view --raw -o json is identical"
resolve_same "$B/kcmrun.kubeconfig" "absolute paths"

# --- C: relative paths resolve against the kubeconfig's folder ---------------
C=$T/c
mkdir -p "$C/certs"
cp "$P/ca.pem" "$P/kcm.pem" "$P/kcm-key.pem" "$C/certs/"
(cd "$C" &&
  kubectl config set-cluster kubernetes --certificate-authority=certs/ca.pem --server=$SERVER \
    --kubeconfig=rel.kubeconfig >/dev/null &&
  kubectl config set-credentials u --client-certificate=certs/kcm.pem --client-key=certs/kcm-key.pem \
    --kubeconfig=rel.kubeconfig >/dev/null &&
  kubectl config set-context c --cluster=kubernetes --user=u --kubeconfig=rel.kubeconfig >/dev/null &&
  kubectl config use-context c --kubeconfig=rel.kubeconfig >/dev/null)
grep -q "certificate-authority: certs/ca.pem" "$C/rel.kubeconfig" || fail "kubectl did not keep the relative path"
resolve_same "$C/rel.kubeconfig" "relative paths" /
pass "resolve: relative paths found from another working directory, like kubectl"

# --- errors ------------------------------------------------------------------
printf 'apiVersion: v1\nclusters:\n- name: x\n  cluster: {server: "https://h"\n' >"$T/bad.kubeconfig"
(cd / && run env KC_IN="$T/bad.kubeconfig" KC_OUT="$T/x.json" "$KCMRUN" "$HERE/kubeconfig_resolve.lua"
 expect_rc 3 "resolve of a broken kubeconfig"
 expect_err "bad.kubeconfig:5:1: did not find expected ',' or '}'")
(cd / && run env KC_IN="$A/kubectl.kubeconfig" KR_CONTEXT=nope KC_OUT="$T/x.json" "$KCMRUN" "$HERE/kubeconfig_resolve.lua"
 expect_rc 3 "resolve of a missing context"
 expect_err "context 'nope' not found")
pass "errors name the file, line and column / the missing context"
