#!/bin/bash
# pki.issue / pki.init_ca are idempotent: same request -> no change; a changed
# request, an expiring cert, a broken pair or another CA -> reissue.
set -e
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/common.sh"
D="$T/pki"
kcm PKI_OP=init_ca PKI_CSR="$F/ca-csr.json" PKI_DIR="$D" PKI_NAME=ca; expect_rc 0 init_ca; expect_out 'changed=true'
BASE=(PKI_CA="$D/ca.pem" PKI_CA_KEY="$D/ca-key.pem" PKI_CONFIG="$F/ca-config.json" PKI_PROFILE=kubernetes PKI_DIR="$D")
issue() { kcm "${BASE[@]}" "$@"; }
state() { (cd "$D" && stat -c '%n %i %Y %a' kcm.pem kcm-key.pem kcm.csr && sha256sum kcm.pem kcm-key.pem kcm.csr); }
serial() { openssl x509 -in "$D/kcm.pem" -noout -serial; }

issue PKI_CSR="$F/kube-controller-manager-csr.json" PKI_NAME=kcm
expect_rc 0 "first issue"; expect_out '^changed=true$'; expect_out 'reason=no certificate yet'
before=$(state)
issue PKI_CSR="$F/kube-controller-manager-csr.json" PKI_NAME=kcm
expect_rc 0 "second issue"; expect_out '^changed=false$'
[ "$(state)" = "$before" ] || fail "second issue touched the files"
pass "second issue is a no-op (same inode, mtime, content)"

kcm PKI_OP=init_ca PKI_CSR="$F/ca-csr.json" PKI_DIR="$D" PKI_NAME=ca; expect_rc 0 init_ca; expect_out '^changed=false$'
pass "second init_ca is a no-op"

# the name defaults to the CSR file name without -csr.json, like the procedure's -bare NAME
( cd "$T" && env "${BASE[@]}" PKI_DIR="$D" PKI_CSR="$F/kube-controller-manager-csr.json" "$KCMRUN" "$DRIVER" >"$T/out" 2>"$T/err" ) || fail "issue without name"
[ -f "$D/kube-controller-manager.pem" ] || fail "default name not derived from the CSR file"
pass "default NAME from the CSR file name"

# changed hosts: --check reports and changes nothing, then a real run reissues
sed 's/"169.254.77.103"/"169.254.77.103", "169.254.77.104"/' "$F/kube-controller-manager-csr.json" >"$T/more-hosts-csr.json"
run env "${BASE[@]}" PKI_CSR="$T/more-hosts-csr.json" PKI_NAME=kcm "$KCMRUN" --check "$DRIVER"
expect_rc 0 "check run"; expect_out '^changed=true$'; expect_out 'reason=SAN 169.254.77.104 missing'
[ "$(state)" = "$before" ] || fail "--check changed files"
pass "--check reports the reissue and writes nothing"
old=$(serial)
issue PKI_CSR="$T/more-hosts-csr.json" PKI_NAME=kcm
expect_rc 0 "hosts changed"; expect_out '^changed=true$'; expect_out 'reason=SAN 169.254.77.104 missing'
[ "$(serial)" != "$old" ] || fail "not reissued"
openssl x509 -in "$D/kcm.pem" -noout -ext subjectAltName | grep -q '169.254.77.104' || fail "new host not in SAN"
check_pair "reissued" "$D/kcm.pem" "$D/kcm-key.pem" "$D/ca.pem"
issue PKI_CSR="$T/more-hosts-csr.json" PKI_NAME=kcm; expect_rc 0; expect_out '^changed=false$'
pass "changed hosts reissue, then stable"

# subject change
sed 's/"OU": "4Paradigm"/"OU": "lab"/' "$T/more-hosts-csr.json" >"$T/subject-csr.json"
issue PKI_CSR="$T/subject-csr.json" PKI_NAME=kcm; expect_rc 0; expect_out 'reason=subject changed'
openssl x509 -in "$D/kcm.pem" -noout -subject | grep -q 'OU = lab' || fail "subject not updated"
pass "changed subject reissues"

# near expiry: renew_before longer than the remaining validity
issue PKI_CSR="$T/subject-csr.json" PKI_NAME=kcm PKI_RENEW_BEFORE=$((900000 * 3600))
expect_rc 0; expect_out '^changed=true$'; expect_out 'reason=expires in'
issue PKI_CSR="$T/subject-csr.json" PKI_NAME=kcm; expect_rc 0; expect_out '^changed=false$'
# a 90-minute profile is always inside the default 30-day renew window
kcm "${BASE[@]}" PKI_CONFIG="$F/profiles-config.json" PKI_PROFILE=short PKI_CSR="$F/ecdsa384-csr.json" PKI_NAME=short
expect_rc 0; expect_out '^changed=true$'
kcm "${BASE[@]}" PKI_CONFIG="$F/profiles-config.json" PKI_PROFILE=short PKI_CSR="$F/ecdsa384-csr.json" PKI_NAME=short
expect_rc 0; expect_out '^changed=true$'; expect_out 'reason=expires in'
pass "expiring certificates reissue"

# usages changed by another profile
kcm "${BASE[@]}" PKI_CONFIG="$F/profiles-config.json" PKI_PROFILE=default PKI_CSR="$T/subject-csr.json" PKI_NAME=kcm
expect_rc 0; expect_out 'reason=usages changed'
openssl x509 -in "$D/kcm.pem" -noout -ext extendedKeyUsage | grep -q 'Server' && fail "server auth still present"
pass "changed usages reissue"

# key algorithm/size change
sed 's/"size": 2048/"size": 3072/' "$T/subject-csr.json" >"$T/rsa3072-csr.json"
kcm "${BASE[@]}" PKI_CONFIG="$F/profiles-config.json" PKI_PROFILE=default PKI_CSR="$T/rsa3072-csr.json" PKI_NAME=kcm
expect_rc 0; expect_out 'reason=key is rsa-2048, want rsa-3072'
pass "changed key size reissues"

# a key file made world-readable is put back to 0600 without reissuing;
# --check only says so (the repair is a change like any other)
before=$(serial); chmod 644 "$D/kcm-key.pem"
run env "${BASE[@]}" PKI_CONFIG="$F/profiles-config.json" PKI_PROFILE=default PKI_CSR="$T/rsa3072-csr.json" \
    PKI_NAME=kcm "$KCMRUN" --check "$DRIVER"
expect_rc 0 "check run (key mode)"; expect_out '^changed=true$'
[ "$(stat -c %a "$D/kcm-key.pem")" = 644 ] || fail "--check repaired the key's mode"
kcm "${BASE[@]}" PKI_CONFIG="$F/profiles-config.json" PKI_PROFILE=default PKI_CSR="$T/rsa3072-csr.json" PKI_NAME=kcm
expect_rc 0; expect_out '^changed=true$'
[ "$(stat -c %a "$D/kcm-key.pem")" = 600 ] || fail "key mode not repaired"
[ "$(serial)" = "$before" ] || fail "mode repair reissued the cert"
pass "key mode repaired in place"

# a key that does not belong to the cert, or a missing key, reissues
cp "$D/ca-key.pem" "$D/kcm-key.pem"
kcm "${BASE[@]}" PKI_CONFIG="$F/profiles-config.json" PKI_PROFILE=default PKI_CSR="$T/rsa3072-csr.json" PKI_NAME=kcm
expect_rc 0; expect_out 'reason=key mismatch'
rm "$D/kcm-key.pem"
kcm "${BASE[@]}" PKI_CONFIG="$F/profiles-config.json" PKI_PROFILE=default PKI_CSR="$T/rsa3072-csr.json" PKI_NAME=kcm
expect_rc 0; expect_out 'reason=.*kcm-key.pem is missing'
check_pair "after repair" "$D/kcm.pem" "$D/kcm-key.pem" "$D/ca.pem"
pass "broken pairs reissue"

# another CA
kcm PKI_OP=init_ca PKI_CSR="$F/ca-ecdsa384-csr.json" PKI_DIR="$T/ca2" PKI_NAME=ca; expect_rc 0
kcm "${BASE[@]}" PKI_CA="$T/ca2/ca.pem" PKI_CA_KEY="$T/ca2/ca-key.pem" PKI_CONFIG="$F/profiles-config.json" \
    PKI_PROFILE=default PKI_CSR="$T/rsa3072-csr.json" PKI_NAME=kcm
expect_rc 0; expect_out 'reason=CA changed \(not valid under the CA'
check_pair "new CA" "$D/kcm.pem" "$D/kcm-key.pem" "$T/ca2/ca.pem"
pass "another CA reissues"

# many at once through task.parallel (keygen and signing are jobs)
kcm "${BASE[@]}" PKI_OP=parallel PKI_CSR="$F/kube-controller-manager-csr.json" PKI_NAMES="p1 p2 p3 p4 p5 p6"
expect_rc 0 parallel
[ "$(grep -c 'changed=true' "$T/out")" = 6 ] || { cat "$T/out"; fail "parallel issue"; }
for n in p1 p2 p3 p4 p5 p6; do check_pair "parallel $n" "$D/$n.pem" "$D/$n-key.pem" "$D/ca.pem"; done
kcm "${BASE[@]}" PKI_OP=parallel PKI_CSR="$F/kube-controller-manager-csr.json" PKI_NAMES="p1 p2 p3 p4 p5 p6"
expect_rc 0; [ "$(grep -c 'changed=false' "$T/out")" = 6 ] || fail "parallel second run not a no-op"
pass "parallel issue and no-op"

# --check before the CA exists (an earlier step would create it): reports, no error
run env "${BASE[@]}" PKI_CA="$T/none/ca.pem" PKI_CA_KEY="$T/none/ca-key.pem" PKI_CSR="$F/kube-controller-manager-csr.json" \
    PKI_NAME=later "$KCMRUN" --check "$DRIVER"
expect_rc 0 "check without CA"; expect_out '^changed=true$'; expect_out 'reason=CA does not exist yet'
[ ! -e "$D/later.pem" ] || fail "--check wrote a file"
pass "--check with a CA that does not exist yet"
