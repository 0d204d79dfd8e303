# Helpers for the pki tests (sourced after tests/lib.sh).
F=$(cd "$(dirname "$0")/fixtures" && pwd)
DRIVER=$(cd "$(dirname "$0")" && pwd)/pki.lua
command -v cfssl >/dev/null && command -v cfssljson >/dev/null || fail "cfssl/cfssljson not installed (apt-get install golang-cfssl)"

# kcm VAR=VALUE... : run the pki driver with PKI_* settings
kcm() { run env "$@" "$KCMRUN" "$DRIVER"; }

# cfssl_gen DIR NAME ARGS...: `cfssl gencert ARGS | cfssljson -bare NAME` inside DIR
cfssl_gen() {
  local dir=$1 name=$2; shift 2
  (cd "$dir" && cfssl gencert "$@" 2>"$T/cfssl.err" | cfssljson -bare "$name") || { cat "$T/cfssl.err"; fail "cfssl gencert $*"; }
}

# `openssl x509|req -text` with the values that must differ masked: serial,
# key and signature bytes, key ids, dates. Runs of hex lines collapse to one.
masked_text() {
  local kind=$1 file=$2
  openssl "$kind" -in "$file" -noout -text | awk '
    /^ +([0-9a-fA-F][0-9a-fA-F]:)+[0-9a-fA-F]*$/ { if (!inhex) print "    <hex>"; inhex = 1; next }
    { inhex = 0 }
    /Not (Before|After)/ { sub(/: .*/, ": <date>") }
    { print }'
}

# DER structure with types and names/strings kept, numbers/bits/times/key ids masked.
masked_asn1() {
  openssl asn1parse -in "$1" | awk '
    {
      sub(/^ *[0-9]+:/, ""); sub(/hl= *[0-9]+ l= *[0-9]+ /, "")
      if ($0 ~ /OBJECT/) last = $0
      if ($0 ~ /(INTEGER|BIT STRING|UTCTIME|GENERALIZEDTIME)/) sub(/:.*$/, ":<masked>")
      if ($0 ~ /OCTET STRING/ && last ~ /Key Identifier/) sub(/\[HEX DUMP\]:.*/, "<keyid>")
      print
    }'
}

same_text() {   # same_text LABEL KIND FILE_A FILE_B
  masked_text "$2" "$3" >"$T/a.txt"; masked_text "$2" "$4" >"$T/b.txt"
  diff -u "$T/a.txt" "$T/b.txt" >"$T/diff" || { cat "$T/diff"; fail "$1: openssl $2 -text differs ($3 vs $4)"; }
  pass "$1: openssl $2 -text equal after masking"
}

same_asn1() {   # same_asn1 LABEL FILE_A FILE_B
  masked_asn1 "$2" >"$T/a.asn"; masked_asn1 "$3" >"$T/b.asn"
  diff -u "$T/a.asn" "$T/b.asn" >"$T/diff" || { cat "$T/diff"; fail "$1: DER structure differs ($2 vs $3)"; }
  pass "$1: DER structure and string types equal"
}

epoch() { date -d "$(openssl x509 -in "$1" -noout "-$2" | cut -d= -f2)" +%s; }

same_validity() {   # same_validity LABEL CERT_A CERT_B
  local la=$(( $(epoch "$2" enddate) - $(epoch "$2" startdate) ))
  local lb=$(( $(epoch "$3" enddate) - $(epoch "$3" startdate) ))
  [ "$la" = "$lb" ] || fail "$1: validity length $la != $lb"
  pass "$1: validity length $la s in both"
}

check_pair() {   # check_pair LABEL CERT KEY CA
  openssl verify -CAfile "$4" "$2" >/dev/null 2>"$T/verify.err" || { cat "$T/verify.err"; fail "$1: openssl verify -CAfile $4 $2"; }
  [ "$(openssl x509 -in "$2" -noout -pubkey | sha256sum)" = "$(openssl pkey -in "$3" -pubout | sha256sum)" ] \
    || fail "$1: public key of $2 does not match $3"
  openssl x509 -in "$2" -noout -checkend 600 >/dev/null || fail "$1: $2 expires within 10 minutes"
  pass "$1: verifies against $4, key matches, not expiring"
}
