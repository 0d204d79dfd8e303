#!/bin/bash
# kcmrun's certificates against real cfssl's, same inputs: equal content.
set -e
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/common.sh"
mkdir -p "$T/cf" "$T/kc"
C="$T/cf" K="$T/kc"

# --- CAs: cfssl gencert -initca vs pki.init_ca
for ca in ca ca-rsa4096 ca-ecdsa384; do
  cfssl_gen "$C" "$ca" -initca "$F/$ca-csr.json"
  kcm PKI_OP=init_ca PKI_CSR="$F/$ca-csr.json" PKI_DIR="$K" PKI_NAME="$ca"; expect_rc 0 "init_ca $ca"; expect_out 'changed=true'
  same_text "CA $ca" x509 "$C/$ca.pem" "$K/$ca.pem"
  same_asn1 "CA $ca" "$C/$ca.pem" "$K/$ca.pem"
  same_text "CA $ca CSR" req "$C/$ca.csr" "$K/$ca.csr"
  same_validity "CA $ca" "$C/$ca.pem" "$K/$ca.pem"
  [ "$(head -1 "$C/$ca-key.pem")" = "$(head -1 "$K/$ca-key.pem")" ] || fail "CA $ca: key PEM type differs"
  check_pair "CA $ca (kcmrun)" "$K/$ca.pem" "$K/$ca-key.pem" "$K/$ca.pem"
done

# --- leaves: each case CSR|config|profile|CA dir|CA name
# ca from cfssl: kcmrun signs with cfssl's CA; ca from kcmrun: cfssl signs with kcmrun's CA
while IFS='|' read -r label csr config profile cadir caname; do
  [ -n "$label" ] || continue
  CA="$cadir/$caname.pem" CAKEY="$cadir/$caname-key.pem"
  cfssl_gen "$C" "$label" -ca="$CA" -ca-key="$CAKEY" -config="$F/$config" -profile="$profile" "$F/$csr"
  kcm PKI_CSR="$F/$csr" PKI_CA="$CA" PKI_CA_KEY="$CAKEY" PKI_CONFIG="$F/$config" PKI_PROFILE="$profile" \
      PKI_DIR="$K" PKI_NAME="$label"
  expect_rc 0 "issue $label"; expect_out 'changed=true'
  same_text "$label" x509 "$C/$label.pem" "$K/$label.pem"
  same_asn1 "$label" "$C/$label.pem" "$K/$label.pem"
  same_text "$label CSR" req "$C/$label.csr" "$K/$label.csr"
  same_validity "$label" "$C/$label.pem" "$K/$label.pem"
  check_pair "$label (cfssl)" "$C/$label.pem" "$C/$label-key.pem" "$CA"
  check_pair "$label (kcmrun)" "$K/$label.pem" "$K/$label-key.pem" "$CA"
  [ "$(head -1 "$C/$label-key.pem")" = "$(head -1 "$K/$label-key.pem")" ] || fail "$label: key PEM type differs"
  # AKI is the CA's SKI, SKI is SHA-1 of the public key bits (as cfssl computes it)
  ca_ski=$(openssl x509 -in "$CA" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' ')
  aki=$(openssl x509 -in "$K/$label.pem" -noout -ext authorityKeyIdentifier | tail -1 | tr -d ' ' | sed 's/^keyid://')
  [ "$aki" = "$ca_ski" ] || fail "$label: AKI $aki is not the CA's SKI $ca_ski"
  ski=$(openssl x509 -in "$K/$label.pem" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' ')
  pass "$label: AKI = CA SKI"
done <<CASES
kube-controller-manager|kube-controller-manager-csr.json|ca-config.json|kubernetes|$C|ca
kcm-by-kcmrun-ca|kube-controller-manager-csr.json|ca-config.json|kubernetes|$K|ca
mixed|mixed-csr.json|ca-config.json|kubernetes|$C|ca
admin-everything|rsa3072-csr.json|profiles-config.json|everything|$C|ca
etcd-short|ecdsa384-csr.json|profiles-config.json|short|$K|ca-rsa4096
intermediate|ecdsa384-csr.json|profiles-config.json|intermediate|$K|ca-ecdsa384
default-profile|kube-controller-manager-csr.json|profiles-config.json|default|$C|ca
CASES

# --- a URI in hosts (spiffe://..., https://...; other schemes are refused): a URI SAN, as cfssl >= 1.4 does
# (signer.OverrideHosts: IP, e-mail, url.ParseRequestURI, else DNS). Debian's
# cfssl 1.2.0 here predates that and writes them as DNS SANs, which RFC 5280
# forbids (a DNS SAN is an RFC 1035 name). So: everything but the SAN line
# equal to cfssl's certificate, and the SAN line as the newer cfssl writes it.
label=uri-san
cfssl_gen "$C" "$label" -ca="$C/ca.pem" -ca-key="$C/ca-key.pem" -config="$F/ca-config.json" -profile=kubernetes "$F/uri-csr.json"
kcm PKI_CSR="$F/uri-csr.json" PKI_CA="$C/ca.pem" PKI_CA_KEY="$C/ca-key.pem" PKI_CONFIG="$F/ca-config.json" \
    PKI_PROFILE=kubernetes PKI_DIR="$K" PKI_NAME="$label"
expect_rc 0 "issue $label"
sans() { openssl x509 -in "$1" -noout -ext subjectAltName | tail -1 | sed 's/^ *//'; }
cf_sans=$(sans "$C/$label.pem"); kc_sans=$(sans "$K/$label.pem")
[ "$cf_sans" = "DNS:spiffe://cluster.local/ns/kube-system/sa/x, DNS:node1.example, DNS:https://issuer.example/workload, IP Address:10.0.0.1" ] ||
  fail "$label: cfssl $(cfssl version | head -1) SANs changed: $cf_sans (revisit this case)"
[ "$kc_sans" = "DNS:node1.example, IP Address:10.0.0.1, URI:spiffe://cluster.local/ns/kube-system/sa/x, URI:https://issuer.example/workload" ] ||
  fail "$label: kcmrun SANs: $kc_sans"
masked_text x509 "$C/$label.pem" | grep -v -e 'DNS:' -e 'URI:' >"$T/a.txt"
masked_text x509 "$K/$label.pem" | grep -v -e 'DNS:' -e 'URI:' >"$T/b.txt"
diff -u "$T/a.txt" "$T/b.txt" || fail "$label: certificates differ beyond the SAN line"
check_pair "$label (kcmrun)" "$K/$label.pem" "$K/$label-key.pem" "$C/ca.pem"
pass "$label: URIs become URI SANs (cfssl >= 1.4); the rest equals cfssl's certificate"

# the etcd playbook's own certificate step (members from the inventory's group,
# run as if --limit node1) vs cfssl on the guide's etcd-csr.json
cfssl_gen "$C" etcd -ca="$C/ca.pem" -ca-key="$C/ca-key.pem" -config="$F/ca-config.json" -profile=kubernetes "$F/etcd-csr.json"
mkdir -p "$T/etcd-work"
run env PKI_PLAYBOOK="$(cd "$(dirname "$0")/../.." && pwd)/playbooks/etcd.lua" PKI_DIR="$T/etcd-work" PKI_CA="$C/ca.pem" \
    PKI_CA_KEY="$C/ca-key.pem" PKI_CONFIG="$F/ca-config.json" "$KCMRUN" "$(dirname "$0")/etcd_playbook_cert.lua"
expect_rc 0 "etcd playbook certificate step"
same_text "etcd (playbook)" x509 "$C/etcd.pem" "$T/etcd-work/etcd.pem"
same_asn1 "etcd (playbook)" "$C/etcd.pem" "$T/etcd-work/etcd.pem"
same_text "etcd (playbook) CSR" req "$C/etcd.csr" "$T/etcd-work/etcd.csr"
same_validity "etcd (playbook)" "$C/etcd.pem" "$T/etcd-work/etcd.pem"
check_pair "etcd (playbook)" "$T/etcd-work/etcd.pem" "$T/etcd-work/etcd-key.pem" "$C/ca.pem"
[ "$(ls "$T/etcd-work")" = "$(printf 'etcd-key.pem\netcd.csr\netcd.pem')" ] \
  || fail "the playbook wrote more than etcd.pem/etcd-key.pem/etcd.csr into its work folder: $(ls "$T/etcd-work")"

# serials: positive, at most 159 bits, random
s1=$(openssl x509 -in "$K/kube-controller-manager.pem" -noout -serial | cut -d= -f2)
s2=$(openssl x509 -in "$K/kcm-by-kcmrun-ca.pem" -noout -serial | cut -d= -f2)
[ "$s1" != "$s2" ] || fail "two certificates share serial $s1"
for s in $s1 $s2; do
  [ ${#s} -le 40 ] && [[ "$s" =~ ^[0-7] || ${#s} -lt 40 ]] || fail "serial $s exceeds 159 bits"
done
pass "serials distinct, <= 159 bits"

# notBefore: now rounded to the minute, minus 5 minutes
nb=$(epoch "$K/kube-controller-manager.pem" startdate); now=$(date +%s)
[ $((nb % 60)) = 0 ] || fail "notBefore $nb not on a minute"
d=$((now - nb)); [ $d -ge 240 ] && [ $d -le 400 ] || fail "notBefore is $d s before now, want ~300"
pass "notBefore = rounded now - 5 min"

# key file: PKCS#1 RSA key, 0600; RSA modulus matches the certificate
[ "$(stat -c %a "$K/kube-controller-manager-key.pem")" = 600 ] || fail "key file mode is not 600"
[ "$(stat -c %a "$K/kube-controller-manager.pem")" = 644 ] || fail "cert file mode is not 644"
head -1 "$K/kube-controller-manager-key.pem" | grep -q 'BEGIN RSA PRIVATE KEY' || fail "not a PKCS#1 key"
head -1 "$K/mixed-key.pem" | grep -q 'BEGIN EC PRIVATE KEY' || fail "not a SEC1 key"
[ "$(openssl x509 -in "$K/kube-controller-manager.pem" -noout -modulus)" = \
  "$(openssl rsa -in "$K/kube-controller-manager-key.pem" -noout -modulus)" ] || fail "modulus mismatch"
openssl rsa -in "$K/kube-controller-manager-key.pem" -check -noout >/dev/null || fail "openssl rsa -check"
pass "key files: PKCS#1/SEC1, 0600, modulus matches"

# signature algorithm follows the CA key like cfssl: rsa4096 -> sha512, P-384 -> ecdsa-with-SHA384
openssl x509 -in "$K/etcd-short.pem" -noout -text | grep -q 'Signature Algorithm: sha512WithRSAEncryption' || fail "etcd-short sig alg"
openssl x509 -in "$K/intermediate.pem" -noout -text | grep -q 'Signature Algorithm: ecdsa-with-SHA384' || fail "intermediate sig alg"
openssl x509 -in "$K/intermediate.pem" -noout -text | grep -q 'CA:TRUE, pathlen:2' || fail "intermediate CA constraint"
pass "signature algorithms and CA constraint as cfssl"

# inspection agrees with openssl
kcm PKI_OP=inspect PKI_CERT="$C/kube-controller-manager.pem" PKI_CA="$C/ca.pem" PKI_KEY="$C/kube-controller-manager-key.pem"
expect_rc 0 inspect
expect_out '^cn=system:kube-controller-manager$'
expect_out '^ip=127.0.0.1,169.254.77.101,169.254.77.102,169.254.77.103$'
expect_out '^key=rsa-2048$'
expect_out '^is_ca=false$'
expect_out '^usages=digital signature,key encipherment,server auth,client auth$'
expect_out '^verify=true$'
expect_out '^key_matches=true$'
fp=$(openssl x509 -in "$C/kube-controller-manager.pem" -noout -fingerprint -sha256 | cut -d= -f2)
expect_out "^fingerprint=$fp\$"
ser=$(openssl x509 -in "$C/kube-controller-manager.pem" -noout -serial | cut -d= -f2)
expect_out "^serial=$ser\$"
[ "$(grep '^not_after=' "$T/out" | cut -d= -f2)" = "$(epoch "$C/kube-controller-manager.pem" enddate)" ] || fail "inspect not_after"
kcm PKI_OP=inspect PKI_CERT="$C/kube-controller-manager.pem" PKI_CA="$K/ca.pem" PKI_KEY="$K/kube-controller-manager-key.pem"
expect_rc 0 inspect; expect_out '^verify=false$'; expect_out '^key_matches=false$'
pass "inspect/verify/key_matches agree with openssl"
