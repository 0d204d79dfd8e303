-- kubeconfig files: build them the way the procedure's four `kubectl config`
-- commands do, write them safely, and read an existing one (the admin's).
--
--   local kubeconfig = require "kcm.kubeconfig"
--   local cfg = kubeconfig.build {
--     cluster = "kubernetes", server = "https://10.0.0.1:6443", ca = "ca.pem",
--     user = "system:kube-controller-manager",
--     client_cert = cert_pem_or_path, client_key = key_pem_or_path,   -- and/or token = "..."
--     context = "system:kube-controller-manager",                     -- default: user
--     embed = true,                                                   -- default true
--   }
--   kubeconfig.write("/etc/kubernetes/x.kubeconfig", cfg)  -> changed (0600, atomic)
--   local r = kubeconfig.resolve("admin.kubeconfig" or cfg [, context])
--     -> { server, ca_pem, client_cert_pem, client_key_pem, token, insecure,
--          context, cluster, user, namespace }
--
-- build() gives the same content as
--   kubectl config set-cluster CLUSTER --certificate-authority=CA --embed-certs --server=URL
--   kubectl config set-credentials USER --client-certificate=C --client-key=K --embed-certs [--token=T]
--   kubectl config set-context CTX --cluster=CLUSTER --user=USER
--   kubectl config use-context CTX
-- (`kubectl config view --raw -o json` prints the same JSON for both files). PEM text
-- (anything containing "-----BEGIN ") is always embedded; a path is read and embedded
-- when embed is true, else stored as given (kubectl resolves a relative path against
-- the kubeconfig's folder, so pass absolute paths).
local yaml = require "kcm.yaml"
local fs = require "kcm.native.fs"

local M = {}

local null = yaml.null

local function val(v)
  if v == null then return nil end
  return v
end

local function is_pem(s)
  return type(s) == "string" and s:find("-----BEGIN ", 1, true) ~= nil
end

local function fail(fmt, ...)
  error("kubeconfig: " .. string.format(fmt, ...), 3)
end

-- Sets t[field .. "-data"] (embedded, base64) or t[field] (a path).
local function put_material(t, field, what, v, embed)
  if v == nil then return end
  if type(v) ~= "string" or v == "" then fail("%s must be a path or PEM text", what) end
  if is_pem(v) then
    t[field .. "-data"] = yaml.base64_encode(v)
  elseif embed then
    local data, err = fs.read(v)
    if not data then fail("%s: cannot read %s: %s", what, v, tostring(err)) end
    t[field .. "-data"] = yaml.base64_encode(data)
  else
    t[field] = v
  end
end

local function need(o, k)
  local v = o[k]
  if type(v) ~= "string" or v == "" then fail("build: %s is required (a non-empty string)", k) end
  return v
end

function M.build(o)
  if type(o) ~= "table" then fail("build expects a table of options") end
  local cluster_name = o.cluster or "kubernetes"
  local user_name = need(o, "user")
  local server = need(o, "server")
  local ctx_name = o.context or user_name
  local embed = o.embed ~= false

  local cluster = { server = server }
  put_material(cluster, "certificate-authority", "ca", o.ca, embed)
  if o.insecure then cluster["insecure-skip-tls-verify"] = true end

  local user = {}
  put_material(user, "client-certificate", "client_cert", o.client_cert, embed)
  put_material(user, "client-key", "client_key", o.client_key, embed)
  if o.token ~= nil then user.token = o.token end

  local context = { cluster = cluster_name, user = user_name }
  if o.namespace then context.namespace = o.namespace end

  return {
    apiVersion = "v1",
    kind = "Config",
    preferences = {},
    clusters = yaml.array { { name = cluster_name, cluster = cluster } },
    users = yaml.array { { name = user_name, user = user } },
    contexts = yaml.array { { name = ctx_name, context = context } },
    ["current-context"] = ctx_name,
  }
end

function M.encode(cfg)
  return yaml.encode(cfg)
end

--- write(path, cfg) -> changed. Mode 0600 (it holds a private key), atomic,
--- no change when the file already has this content; honours --check and
--- records the change for the step's report.
function M.write(path, cfg)
  return require("kcm.files").write(path, M.encode(cfg), { mode = "0600", mkdir = true })
end

-- Folder each loaded kubeconfig came from, for its relative paths.
local origin = setmetatable({}, { __mode = "k" })

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

function M.load(path)
  local text, err = fs.read(path)
  if not text then error(string.format("kubeconfig %s: cannot read: %s", path, tostring(err)), 2) end
  local cfg = yaml.decode(text, path)
  if cfg == nil then cfg = {} end
  if type(cfg) ~= "table" then
    error(string.format("kubeconfig %s: not a YAML mapping", path), 2)
  end
  origin[cfg] = { dir = dirname(path), path = path }
  return cfg
end

-- A field that must be a string when present (YAML gives numbers and
-- booleans for unquoted scalars): nil, the string, or an error naming it.
local function str(v, src, what)
  v = val(v)
  if v == nil or type(v) == "string" then return v end
  error(string.format("kubeconfig %s: %s must be a string, not %s", src, what, tostring(v)), 3)
end

local function find(cfg, list, name, src)
  local entries = val(cfg[list])
  for _, e in ipairs(type(entries) == "table" and entries or {}) do
    if type(e) == "table" and e.name == name then
      local kind = list:sub(1, -2) -- clusters -> cluster
      local t = val(e[kind])
      if t ~= nil and type(t) ~= "table" then
        error(string.format("kubeconfig %s: %s '%s' is not a mapping", src, kind, name), 3)
      end
      return t or {}
    end
  end
  error(string.format("kubeconfig %s: %s '%s' not found", src, list:sub(1, -2), name), 3)
end

-- Embedded *-data (base64) wins over a path, as in client-go.
local function material(t, field, base, src)
  local data = str(t[field .. "-data"], src, field .. "-data")
  if data ~= nil then
    local raw, err = yaml.base64_decode(data)
    if not raw then error(string.format("kubeconfig %s: %s-data: %s", src, field, err), 3) end
    return raw
  end
  local p = str(t[field], src, field)
  if p == nil or p == "" then return nil end
  if p:sub(1, 1) ~= "/" then p = base .. "/" .. p end
  local raw, err = fs.read(p)
  if not raw then error(string.format("kubeconfig %s: %s %s: %s", src, field, p, tostring(err)), 3) end
  return raw
end

-- "path:line" of the first line of a kubeconfig matching `pattern`, for
-- errors about what the operator wrote there; nil when unreadable.
local function line_of(path, pattern)
  local text = fs.read(path)
  if not text then return nil end
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match(pattern) then return path .. ":" .. n end
  end
end

--- resolve(cfg_or_path [, context]) -> everything needed to talk to the API server.
function M.resolve(cfg, context)
  if type(cfg) == "string" then cfg = M.load(cfg) end
  local o = origin[cfg] or { dir = ".", path = "(kubeconfig)" }
  local src = o.path
  local ctx_name = context or str(cfg["current-context"], src, "current-context")
  if ctx_name == nil or ctx_name == "" then
    error(string.format("kubeconfig %s: no context given and no current-context", src), 2)
  end
  local ctx = find(cfg, "contexts", ctx_name, src)
  local cluster_name = str(ctx.cluster, src, "context '" .. ctx_name .. "': cluster")
  local user_name = str(ctx.user, src, "context '" .. ctx_name .. "': user")
  if cluster_name == nil or cluster_name == "" then
    error(string.format("kubeconfig %s: context '%s' names no cluster", src, ctx_name), 2)
  end
  local cluster = find(cfg, "clusters", cluster_name, src)
  local user = {}
  if user_name ~= nil and user_name ~= "" then user = find(cfg, "users", user_name, src) end
  if val(user.username) ~= nil or val(user.password) ~= nil then
    error({ config = true, message = string.format(
      "%s: user '%s' has username/password: basic authentication is gone from Kubernetes (removed in " ..
      "1.19), so no credentials would be sent; give the user client-certificate/client-key or a token",
      line_of(src, "^%s*password:") or line_of(src, "^%s*username:") or src, tostring(user_name)) }, 0)
  end
  local server = str(cluster.server, src, "cluster '" .. cluster_name .. "': server")
  if server == nil or server == "" then
    error(string.format("kubeconfig %s: cluster '%s' has no server", src, cluster_name), 2)
  end
  local token = str(user.token, src, "user token")
  local token_file = str(user.tokenFile, src, "user tokenFile")
  if (token == nil or token == "") and token_file then
    local p = token_file
    if p:sub(1, 1) ~= "/" then p = o.dir .. "/" .. p end
    local raw, err = fs.read(p)
    if not raw then error(string.format("kubeconfig %s: tokenFile %s: %s", src, p, tostring(err)), 2) end
    token = raw:match("^%s*(.-)%s*$")
  end
  return {
    server = server,
    ca_pem = material(cluster, "certificate-authority", o.dir, src),
    client_cert_pem = material(user, "client-certificate", o.dir, src),
    client_key_pem = material(user, "client-key", o.dir, src),
    token = token,
    insecure = val(cluster["insecure-skip-tls-verify"]) == true,
    context = ctx_name,
    cluster = cluster_name,
    user = user_name,
    namespace = str(ctx.namespace, src, "context '" .. ctx_name .. "': namespace"),
  }
end

return M
