-- CSR names (issue 25): what cfssl and Go's x509 refuse, kcmrun refuses
-- too, with one line naming the file and field; the CSR loader (pki.lua)
-- and the signer's own net (crypto.make_csr) apply one rule.
local pki = require "kcm.pki"
local crypto = require "kcm.native.crypto"

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local key = crypto.generate_key("ecdsa", 256)

local function csr_file(host)
  local path = dir .. "/csr.json"
  local f = assert(io.open(path, "w"))
  f:write(string.format('{"CN":"x","hosts":["ok.example",%q],"key":{"algo":"ecdsa","size":256}}', host))
  f:close()
  return path
end

-- {hosts entry, text of the refusal}
local REFUSED = {
  { "999.1.1.1", 'IP address "999.1.1.1" looks like an IP address but is not a valid one' },
  { "1.2.3", 'IP address "1.2.3" looks like an IP address but is not a valid one' },
  { "-a.com", "DNS name \"-a.com\" has the label '-a': a label neither starts nor ends with '-'" },
  { "a-.com", "DNS name \"a-.com\" has the label 'a-': a label neither starts nor ends with '-'" },
  { "host.123", 'DNS name "host.123" ends in an all-digit label' },
  { "fe80::1%eth0", 'IP address "fe80::1%eth0" has an IPv6 zone: a certificate holds no zone' },
  { "fe80::1%25eth0", 'IP address "fe80::1%25eth0" has an IPv6 zone' },
  { "URI:file:///etc/passwd", 'URI "URI:file:///etc/passwd" is not allowed: URI SANs take only spiffe://' },
  { "file:///etc/passwd", 'URI "file:///etc/passwd" is not allowed' },
  { "/etc/passwd", 'URI "/etc/passwd" is not allowed' },
  { "http://x.example/", 'URI "http://x.example/" is not allowed' },
  { "https:///nohost", 'URI "https:///nohost" is not allowed' },
  { "*", "DNS name \"*\" has the label '*'" },
  { "a.*.example", "DNS name \"a.*.example\" has the label '*'" },
}
for _, c in ipairs(REFUSED) do
  local path = csr_file(c[1])
  local ok, err = pcall(pki.load_csr, path)
  assert(not ok, "pki.load_csr accepted " .. c[1])
  err = tostring(type(err) == "table" and err.message or err)
  local want = path .. ": hosts[2]: " .. c[2]
  assert(err:find(want, 1, true), string.format("%s: got %q, want %q", c[1], err, want))
  assert(not err:find("\n"), "one line")
  -- the signer's net: the same rule, the same words
  local ok2, err2 = pcall(crypto.make_csr, key, { { "CN", { "x" } } }, { c[1] })
  assert(not ok2, "crypto.make_csr accepted " .. c[1])
  local what, why = c[2]:match('^(.-) ".-" (.*)$')
  assert(tostring(err2):find(what .. " '", 1, true) and tostring(err2):find(why, 1, true),
         string.format("make_csr %s: %q lacks %q/%q", c[1], tostring(err2), what, why))
end

-- still issued: the shapes a cluster uses
local OK = { "node1.example", "*.svc.example", "k8s_x.example", "10.0.0.1", "::1", "fd00::1",
             "spiffe://cluster.local/ns/x/sa/y", "https://issuer.example/path", "admin@example.com",
             "kubernetes", "a1-b2.example" }
for _, h in ipairs(OK) do
  local path = csr_file(h)
  local req = pki.load_csr(path)
  assert(req.hosts[2] == h, h)
  assert(crypto.make_csr(key, { { "CN", { "x" } } }, { h }), h)
end
os.execute("rm -rf '" .. dir .. "'")
print(string.format("ok: %d hostile names refused by the CSR loader and the signer alike; %d good ones issued",
                    #REFUSED, #OK))
