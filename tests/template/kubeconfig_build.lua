-- For test_kubeconfig.sh: builds a kubeconfig from KC_* variables, writes it to KC_OUT
-- twice and records both "changed" results in KC_OUT.result.
local kubeconfig = require "kcm.kubeconfig"
local fs = require "kcm.native.fs"

local function env(k) local v = os.getenv(k); if v == "" then return nil end; return v end

local function material(k)
  local v = env(k)
  if v and env("KC_AS_PEM") then v = assert(fs.read(v)) end -- pass PEM text, not a path
  return v
end

local cfg = kubeconfig.build {
  cluster = env("KC_CLUSTER"),
  server = env("KC_SERVER"),
  ca = material("KC_CA"),
  user = env("KC_USER"),
  client_cert = material("KC_CERT"),
  client_key = material("KC_KEY"),
  token = env("KC_TOKEN"),
  context = env("KC_CONTEXT"),
  embed = env("KC_EMBED") ~= "false",
}
local out = assert(env("KC_OUT"))
local first = kubeconfig.write(out, cfg)
local second = kubeconfig.write(out, cfg)
-- encode is what write stores
assert(fs.read(out) == kubeconfig.encode(cfg) or os.getenv("KC_CHECK"), "file differs from encode()")
local result = string.format("first=%s second=%s", first, second)
print(result) -- --check writes no files, so the result goes to stdout too
fs.write(out .. ".result", result .. "\n")
