-- Fuzz driver: kubeconfig.load + kubeconfig.resolve on a kubeconfig file
-- (YAML), for the current context and for every context it names (at most 4).
-- Files it refers to do not exist (fs.read sees only the input), so the
-- input cannot make the loader read anything real.
-- Invariants: errors are messages naming the file (YAML errors
-- "<file>:line:col: ...", others "kubeconfig <file>: ..."); a resolved
-- config has a string server and string-or-nil credentials.
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local F = dofile(dir .. "/common.lua")
local kubeconfig = require "kcm.kubeconfig"

local PATH = "/fuzz/admin.kubeconfig"

local function expect(err)
  if F.budget_error(err) then return end
  if type(err) ~= "string" then F.violation("error is a %s", type(err)) end
  local function names_file(s)
    return s:sub(1, #PATH + 1) == PATH .. ":" or s:sub(1, 11 + #PATH) == "kubeconfig " .. PATH
  end
  if not names_file(err) and not names_file((err:gsub("^[^\n]-:%d+: ", "", 1))) then
    F.violation("error does not name the kubeconfig: %s", err)
  end
end

local function check(r)
  if type(r.server) ~= "string" then F.violation("server is a %s", type(r.server)) end
  for _, k in ipairs { "ca_pem", "client_cert_pem", "client_key_pem", "token", "namespace" } do
    if r[k] ~= nil and type(r[k]) ~= "string" then F.violation("%s is a %s", k, type(r[k])) end
  end
  if type(r.insecure) ~= "boolean" then F.violation("insecure is a %s", type(r.insecure)) end
end

return function(data)
  F.files[PATH] = data
  local ok, cfg = pcall(kubeconfig.load, PATH)
  if not ok then return expect(cfg) end
  local ok2, r = pcall(kubeconfig.resolve, cfg)
  if ok2 then check(r) else expect(r) end
  local n = 0
  for _, e in ipairs(type(cfg.contexts) == "table" and cfg.contexts or {}) do
    n = n + 1
    if n > 4 then break end
    if type(e) == "table" and type(e.name) == "string" then
      local ok3, r3 = pcall(kubeconfig.resolve, cfg, e.name)
      if ok3 then check(r3) else expect(r3) end
    end
  end
end
