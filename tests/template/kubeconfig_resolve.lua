-- For test_kubeconfig.sh: resolves KC_IN (context KR_CONTEXT or current) and writes the
-- result as JSON (PEM fields base64) to KC_OUT.
local kubeconfig = require "kcm.kubeconfig"
local yaml = require "kcm.yaml"
local cjson = require "cjson"
local fs = require "kcm.native.fs"

local ctx = os.getenv("KR_CONTEXT")
if ctx == "" then ctx = nil end
local r = kubeconfig.resolve(assert(os.getenv("KC_IN")), ctx)
local function b(s) if s == nil then return cjson.null end return yaml.base64_encode(s) end
local out = {
  server = r.server, context = r.context, cluster = r.cluster, user = r.user,
  ca = b(r.ca_pem), cert = b(r.client_cert_pem), key = b(r.client_key_pem),
  token = r.token or cjson.null, insecure = r.insecure,
}
-- stable key order for a byte comparison
local keys = {}
for k in pairs(out) do keys[#keys + 1] = k end
table.sort(keys)
local parts = {}
for _, k in ipairs(keys) do parts[#parts + 1] = cjson.encode(k) .. ":" .. cjson.encode(out[k]) end
fs.write(assert(os.getenv("KC_OUT")), "{" .. table.concat(parts, ",") .. "}\n")
