#!/bin/bash
# Each pki error names the file and the field; nothing is written on error.
set -e
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/common.sh"
D="$T/pki"
kcm PKI_OP=init_ca PKI_CSR="$F/ca-csr.json" PKI_DIR="$T/ca" PKI_NAME=ca; expect_rc 0 init_ca
kcm PKI_OP=init_ca PKI_CSR="$F/ca-ecdsa384-csr.json" PKI_DIR="$T/ca2" PKI_NAME=ca; expect_rc 0 init_ca
chmod 600 "$T/ca/ca-key.pem"
BASE=(PKI_CA="$T/ca/ca.pem" PKI_CA_KEY="$T/ca/ca-key.pem" PKI_CONFIG="$F/ca-config.json" PKI_PROFILE=kubernetes
      PKI_DIR="$D" PKI_NAME=kcm PKI_CSR="$F/kube-controller-manager-csr.json")
issue() { kcm "${BASE[@]}" "$@"; }
# must_fail LABEL REGEX VAR=VALUE...: the issue fails with REGEX on stderr and writes nothing
must_fail() {
  local label=$1 re=$2; shift 2
  issue "$@"
  expect_rc 3 "$label"
  expect_err "$re"
  ! ls "$D"/*.pem >/dev/null 2>&1 || fail "$label: files written despite the error"
  pass "$label: $(grep -o 'pki: .*' "$T/err" | head -1)"
}

printf '{\n  "CN": "x",\n  "key": { "algo": "rsa" "size": 2048 }\n}\n' >"$T/bad-json-csr.json"
must_fail "malformed CSR JSON" "bad-json-csr.json: malformed JSON at line 3, column 26" PKI_CSR="$T/bad-json-csr.json"
printf '{ "signing": { "profiles": { "kubernetes": { "usages": ["signing",] } } }' >"$T/bad-json-config.json"
must_fail "malformed config JSON" "bad-json-config.json: malformed JSON at line 1, column" PKI_CONFIG="$T/bad-json-config.json"

sed 's/"algo": "rsa"/"algo": "dsa"/' "$F/kube-controller-manager-csr.json" >"$T/dsa-csr.json"
must_fail "unknown algo" 'dsa-csr.json: key.algo: unknown key algorithm "dsa" \(rsa or ecdsa\)' PKI_CSR="$T/dsa-csr.json"
sed 's/"size": 2048/"size": 1024/' "$F/kube-controller-manager-csr.json" >"$T/rsa1024-csr.json"
must_fail "rsa size" 'rsa1024-csr.json: key.size: unsupported rsa key size 1024' PKI_CSR="$T/rsa1024-csr.json"
sed 's/"algo": "rsa"/"algo": "ecdsa"/' "$F/kube-controller-manager-csr.json" >"$T/ec2048-csr.json"
must_fail "ecdsa size" 'ec2048-csr.json: key.size: unsupported ecdsa key size 2048 \(256, 384 or 521\)' PKI_CSR="$T/ec2048-csr.json"
sed 's/"hosts": \[/"hosts": [ 42,/' "$F/kube-controller-manager-csr.json" >"$T/host-csr.json"
must_fail "bad hosts entry" 'host-csr.json: hosts\[1\]: expected a non-empty string' PKI_CSR="$T/host-csr.json"

must_fail "unknown profile" 'ca-config.json: signing.profiles: unknown profile "nope" \(have: kubernetes\)' PKI_PROFILE=nope
sed 's/"key encipherment"/"bogus"/' "$F/ca-config.json" >"$T/usage-config.json"
must_fail "unknown usage" 'usage-config.json: signing.profiles.kubernetes.usages\[2\]: unknown usage "bogus"' PKI_CONFIG="$T/usage-config.json"
sed 's/"876000h"/"10y"/' "$F/ca-config.json" >"$T/expiry-config.json"
must_fail "bad expiry" 'expiry-config.json: signing.profiles.kubernetes.expiry: bad expiry: unknown unit "y" in duration "10y"' PKI_CONFIG="$T/expiry-config.json"
sed 's/"876000h"/""/' "$F/ca-config.json" >"$T/noexpiry-config.json"
must_fail "empty expiry" 'noexpiry-config.json: signing.profiles.kubernetes.expiry: empty expiry string' PKI_CONFIG="$T/noexpiry-config.json"
sed 's/"876000h"/"h"/' "$F/ca-config.json" >"$T/noexpiry-config.json"
must_fail "expiry without number" 'signing.profiles.kubernetes.expiry: bad expiry: invalid duration "h"' PKI_CONFIG="$T/noexpiry-config.json"

must_fail "CA key mismatch" "CA key $T/ca2/ca-key.pem does not match CA certificate $T/ca/ca.pem" PKI_CA_KEY="$T/ca2/ca-key.pem"
must_fail "CA key missing" "CA key $T/nope-key.pem: cannot read: No such file or directory" PKI_CA_KEY="$T/nope-key.pem"
must_fail "CA key not a key" "CA key $T/ca/ca.pem: not a PEM private key" PKI_CA_KEY="$T/ca/ca.pem"
must_fail "CA cert not a cert" "CA certificate $T/ca/ca-key.pem: not a PEM certificate" PKI_CA="$T/ca/ca-key.pem"
must_fail "CSR missing" "pki: $T/none-csr.json: cannot read: No such file or directory" PKI_CSR="$T/none-csr.json"

# output folder: a regular file, below a regular file, and one that refuses new files
touch "$T/afile"
must_fail "output is a file" "output folder $T/afile is not a directory" PKI_DIR="$T/afile"
must_fail "output below a file" "output folder $T/afile/sub cannot be created" PKI_DIR="$T/afile/sub"
must_fail "output not writable" "output folder /proc/self is not writable" PKI_DIR=/proc/self

# a world-readable CA key is a warning, not an error
chmod 644 "$T/ca/ca-key.pem"
issue; expect_rc 0 "world-readable CA key"
grep -q "CA key $T/ca/ca-key.pem is world-readable (mode 0644)" "$T/out" "$T/err" || { cat "$T/out" "$T/err"; fail "no world-readable warning"; }
[ -f "$D/kcm.pem" ] || fail "issue with a world-readable CA key did not issue"
pass "world-readable CA key warns and still issues"
# no key material in any message
! grep -q 'PRIVATE KEY' "$T/out" "$T/err" || fail "key material in output"
