-- Fuzz driver: pki.load_csr on a cfssl CSR JSON file, then the request it
-- gives through crypto.make_csr / crypto.hosts_sans (the C side of "hosts"
-- and "names"), as pki.init_ca / pki.issue would.
-- Invariants: every load error is "pki: <file>: ..."; a loaded request has
-- the documented shape; a request that loads builds a CSR or fails with a
-- "crypto: " message.
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local F = dofile(dir .. "/common.lua")
local pki = require "kcm.pki"
local crypto = require "kcm.native.crypto"

local PATH = "/fuzz/csr.json"
local KEY = crypto.generate_key("ecdsa", 256)

local function check_request(req)
  if type(req.CN) ~= "string" then F.violation("CN is a %s", type(req.CN)) end
  local algo, size = req.key.algo, req.key.size
  if not ((algo == "rsa" and math.type(size) == "integer") or
          (algo == "ecdsa" and (size == 256 or size == 384 or size == 521))) then
    F.violation("key %s/%s passed the checks", tostring(algo), tostring(size))
  end
  for i, h in ipairs(req.hosts) do
    if type(h) ~= "string" or h == "" then F.violation("hosts[%d] is %s", i, tostring(h)) end
  end
  for _, rdn in ipairs(req.subject) do
    for _, v in ipairs(rdn[2]) do
      if type(v) ~= "string" then F.violation("subject %s value is a %s", tostring(rdn[1]), type(v)) end
    end
  end
  if req.ca and req.ca.pathlen ~= nil and math.type(req.ca.pathlen) ~= "integer" then
    F.violation("ca.pathlen %s is not an integer", tostring(req.ca.pathlen))
  end
end

return function(data)
  F.files[PATH] = data
  local ok, req = pcall(pki.load_csr, PATH)
  if not ok then return F.expect_error(req, "pki: " .. PATH .. ": ") end
  check_request(req)
  local opts = req.ca and { ca = true, max_path_len = req.ca.pathlen, max_path_len_zero = req.ca.pathlenzero }
  local ok2, csr = pcall(crypto.make_csr, KEY, req.subject, req.hosts, opts)
  if not ok2 then return F.expect_error(csr, "crypto: ") end
  if not csr:find("-----BEGIN CERTIFICATE REQUEST-----", 1, true) then F.violation("make_csr gave no PEM CSR") end
  local ok3, err = pcall(crypto.hosts_sans, req.hosts)
  if not ok3 then F.expect_error(err, "crypto: ") end
end
