-- Fuzz driver: pki.load_config on a cfssl ca-config.json, then every profile
-- it gives (at most 4) signs a self-signed certificate the way pki.issue
-- does (usages, expiry, backdate, ca_constraint).
-- Invariants: every load error is "pki: <file>: ..."; a loaded profile has a
-- positive integer expiry; a certificate that signs parses back with the
-- validity that was asked for.
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local F = dofile(dir .. "/common.lua")
local pki = require "kcm.pki"
local crypto = require "kcm.native.crypto"

local PATH = "/fuzz/ca-config.json"
local KEY = crypto.generate_key("ecdsa", 256)
local CSR = crypto.make_csr(KEY, { { "CN", { "fuzz" } } }, { "127.0.0.1", "fuzz.local" })
local NOW = os.time()

local function try_profile(name, prof)
  if math.type(prof.expiry) ~= "integer" or prof.expiry <= 0 then
    F.violation("profile %s: expiry %s", tostring(name), tostring(prof.expiry))
  end
  if prof.backdate ~= nil and math.type(prof.backdate) ~= "integer" then
    F.violation("profile %s: backdate %s", tostring(name), tostring(prof.backdate))
  end
  local nb = (NOW + 30) // 60 * 60 - (prof.backdate or 300)
  local na = nb + prof.expiry
  local ok, pem = pcall(crypto.sign, {
    csr = CSR, ca_key = KEY, hosts = { "127.0.0.1" }, ku = prof.ku, eku = prof.eku,
    is_ca = prof.is_ca, max_path_len = prof.max_path_len, max_path_len_zero = prof.max_path_len_zero,
    not_before = nb, not_after = na,
  })
  if not ok then return F.expect_error(pem, "crypto: ") end
  local cert = crypto.parse_cert(pem)
  if not cert then F.violation("profile %s: signed certificate does not parse", tostring(name)) end
  local info = cert:info()
  if info.not_after ~= na or info.not_before ~= nb then
    F.violation("profile %s: asked %d..%d, certificate says %s..%s", tostring(name), nb, na,
      tostring(info.not_before), tostring(info.not_after))
  end
end

return function(data)
  F.files[PATH] = data
  local ok, cfg = pcall(pki.load_config, PATH)
  if not ok then return F.expect_error(cfg, "pki: " .. PATH .. ": ") end
  try_profile("default", cfg.default)
  local n = 0
  for name, prof in pairs(cfg.profiles) do
    n = n + 1
    if n > 4 then break end
    try_profile(name, prof)
  end
end
