/* crypto: key generation (RSA, ECDSA P-256/P-384), CSRs, a CA and a leaf it
 * signs, PEM parsing, and bad input. The openssl command line is the
 * oracle: it verifies the CSR signature and the chain, and reads back the
 * subject, SANs, fingerprint and public key. */
#include "cunit.h"

static const char CHUNK[] =
    "local crypto = require 'kcm.native.crypto'\n"
    "local fs = require 'kcm.native.fs'\n"
    "local exec = require 'kcm.native.exec'\n"
    "local dir = fs.tempdir()\n"
    "local function put(name, data) fs.write(dir .. '/' .. name, data, { mode = tonumber('600', 8) }) return dir .. '/' .. name end\n"
    "local function openssl(...)\n"
    "  local r = exec.run { argv = { 'openssl', ... } }\n"
    "  if r.code ~= 0 then error('openssl ' .. table.concat({ ... }, ' ') .. ': ' .. r.stderr, 2) end\n"
    "  return r.stdout\n"
    "end\n"
    /* keys */
    "local rsa = crypto.generate_key('rsa', 2048)\n"
    "local ec = crypto.generate_key('ecdsa', 256)\n"
    "local ec384 = crypto.generate_key('ecdsa', 384)\n"
    "assert(rsa:info().type == 'rsa' and rsa:info().bits == 2048)\n"
    "assert(ec:info().type == 'ecdsa' and ec:info().bits == 256)\n"
    "assert(ec384:info().bits == 384)\n"
    "for name, k in pairs { rsa = rsa, ec = ec, ec384 = ec384 } do\n"
    "  local pem = k:pem()\n"
    "  assert(pem:find('-----BEGIN ', 1, true), name .. ': not PEM')\n"
    "  local path = put(name .. '-key.pem', pem)\n"
    "  local pub = openssl('pkey', '-in', path, '-pubout')\n"
    "  local again = assert(crypto.load_key(pem))\n"
    "  assert(again:public_id() == k:public_id(), name .. ': reloaded key differs')\n"
    "  assert(#pub > 0)\n"
    "end\n"
    "assert(ec:public_id() ~= ec384:public_id())\n"
    /* CA: self-signed from a CA CSR */
    "local now = os.time()\n"
    "local ca_csr = crypto.make_csr(rsa, { { 'C', { 'CN' } }, { 'O', { 'k8s' } }, { 'CN', { 'kubernetes-ca' } } }, nil, { ca = true })\n"
    "openssl('req', '-in', put('ca.csr', ca_csr), '-noout', '-verify')\n"
    "local ca_pem = crypto.sign { csr = ca_csr, ca_key = rsa, is_ca = true, ku = (1 << 5) | (1 << 6),\n"
    "                             not_before = now - 300, not_after = now + 86400 }\n"
    "local ca = assert(crypto.parse_cert(ca_pem))\n"
    "local ci = ca:info()\n"
    "assert(ci.is_ca and ci.self_signed, 'CA flags')\n"
    "assert(ci.not_before == now - 300 and ci.not_after == now + 86400, 'validity')\n"
    "assert(ca:matches_key(rsa) and not ca:matches_key(ec))\n"
    "local ca_path = put('ca.pem', ca_pem)\n"
    "local subj = openssl('x509', '-in', ca_path, '-noout', '-subject', '-nameopt', 'RFC2253')\n"
    "assert(subj == 'subject=CN=kubernetes-ca,O=k8s,C=CN\\n', 'openssl subject: ' .. subj)\n"
    /* leaf with SANs, signed by the CA */
    "local hosts = { '127.0.0.1', 'kcm.example', '::1', 'ops@example.com' }\n"
    "local csr = crypto.make_csr(ec, { { 'O', { 'system:kube-controller-manager' } }, { 'CN', { 'system:kube-controller-manager' } } }, hosts)\n"
    "openssl('req', '-in', put('leaf.csr', csr), '-noout', '-verify')\n"
    "local leaf_pem = crypto.sign { csr = csr, ca_cert = ca, ca_key = rsa, hosts = hosts, ku = 1 | (1 << 2),\n"
    "                               eku = { '1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2' },\n"
    "                               not_before = now - 300, not_after = now + 3600 }\n"
    "local leaf = assert(crypto.parse_cert(leaf_pem))\n"
    "local li = leaf:info()\n"
    "assert(not li.is_ca and not li.self_signed)\n"
    "assert(leaf:verify(ca) == true, 'verify against the CA')\n"
    "local other_csr = crypto.make_csr(ec384, { { 'CN', { 'other-ca' } } }, nil, { ca = true })\n"
    "local other = crypto.parse_cert(crypto.sign { csr = other_csr, ca_key = ec384, is_ca = true, ku = 1 << 5,\n"
    "                                              not_before = now - 300, not_after = now + 86400 })\n"
    "local ok, why = leaf:verify(other)\n"
    "assert(ok == false and type(why) == 'string', 'verify against another CA fails with a reason')\n"
    "assert(leaf:verify(ca, now + 7200) == false, 'expired at a later time')\n"
    "local leaf_path = put('leaf.pem', leaf_pem)\n"
    "assert(openssl('verify', '-CAfile', ca_path, leaf_path) == leaf_path .. ': OK\\n')\n"
    "local san = openssl('x509', '-in', leaf_path, '-noout', '-ext', 'subjectAltName')\n"
    "for _, want in ipairs { 'DNS:kcm.example', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1', 'email:ops@example.com' } do\n"
    "  assert(san:find(want, 1, true), 'SAN ' .. want .. ' missing: ' .. san)\n"
    "end\n"
    "assert(li.sans.dns[1] == 'kcm.example' and li.sans.ip[1] == '127.0.0.1')\n"
    "local fp = openssl('x509', '-in', leaf_path, '-noout', '-fingerprint', '-sha256'):match('=(%S+)')\n"
    "assert(fp == li.fingerprint_sha256, 'fingerprint ' .. tostring(li.fingerprint_sha256) .. ' vs openssl ' .. fp)\n"
    "local eku = openssl('x509', '-in', leaf_path, '-noout', '-ext', 'extendedKeyUsage')\n"
    "assert(eku:find('TLS Web Server Authentication', 1, true) and eku:find('TLS Web Client Authentication', 1, true), eku)\n"
    "assert(leaf:pem() == leaf_pem)\n"
    /* bad input: nil + message, or a 'crypto: ' error; never a crash */
    "local k, e = crypto.load_key('-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n')\n"
    "assert(k == nil and type(e) == 'string')\n"
    "assert(crypto.parse_cert('garbage') == nil)\n"
    "assert(crypto.parse_cert(csr) == nil, 'a CSR is not a certificate')\n"
    "local ok2, err2 = pcall(crypto.sign, { csr = 'nope', ca_key = rsa })\n"
    "assert(not ok2 and tostring(err2):find('crypto: sign', 1, true), tostring(err2))\n"
    "local ok3, err3 = pcall(crypto.sign, { csr = csr, ca_key = rsa })\n"
    "assert(not ok3 and tostring(err3):find('does not match', 1, true), 'self-signing with a foreign key: ' .. tostring(err3))\n"
    "local ok4, err4 = pcall(crypto.make_csr, ec, { { 'CN', { 'x' } } }, { 'b\\195\\169d.example' })\n"
    "assert(not ok4 and tostring(err4):find('ASCII', 1, true), tostring(err4))\n"
    "local ok5 = pcall(crypto.generate_key, 'dsa', 1024)\n"
    "assert(not ok5, 'unknown algorithm')\n"
    "exec.run { argv = { 'rm', '-rf', dir } }\n";

int main(void)
{
    lua_State *L = kcm_lua_new();
    CHECK(L != NULL);
    cunit_lua(L, "=crypto", CHUNK);
    lua_close(L);
    printf("crypto: ok\n");
    return 0;
}
