-- The component layer: what every service of a hand-built cluster shares
-- (binary, certificate, per-node unit values, start, health, leader, HA
-- test), parameterised by a description. Kubernetes components and etcd
-- are both descriptions plus their checks:
--
--   kcm.component.steps   binary, version, unit, start, rolling restart
--   kcm.component.cert    certificate (issued for the members), kubeconfig, rbac
--   kcm.component.kube    checks of a Kubernetes component: /metrics, Lease leader, HA
--   kcm.component.etcd    checks of etcd: /health, status table, members, HA
--
--   kcm.component.inputs  variables, local files, unit-safe values, versions, work folder
--   kcm.component.cluster the members, their addresses, the HA test's table
--
--   local etcd = component.new { name = "etcd", template = "templates/etcd.service.in",
--                                cert = { CN = "etcd", O = "k8s" }, checks = require "kcm.component.etcd", ... }
--   local parts = etcd:parts()   -- parts.put_unit(node, ctx) ... bound, for play:step
local inputs = require "kcm.component.inputs"
local cluster = require "kcm.component.cluster"

local M = {}
local C = {}
C.__index = C
M.Component = C

local var = inputs.var
M.var, M.need_file, M.unit_safe = inputs.var, inputs.need_file, inputs.unit_safe
M.parse_version, M.work_dir = inputs.parse_version, inputs.work_dir
M.members, M.address, M.join, M.ha_table = cluster.members, cluster.address, cluster.join, cluster.ha_table

--- The guide's values, the defaults of every description's `subject` (the
--- CSR's names; O is the certificate's own) and `layout` (the folders the
--- parts use on the nodes). A description overrides them key by key; the
--- guide's environment.sh variables (K8S_DIR, K8S_BIN_DIR, K8S_CONFIG_DIR,
--- cert_ou) override both for one cluster.
M.GUIDE = {
  subject = { C = "CN", ST = "BeiJing", L = "BeiJing", OU = "4Paradigm" },
  layout = { config_dir = "/etc/kubernetes",     -- kubeconfigs; certificates in config_dir/cert
             bin_dir = "/opt/k8s/bin",           -- binaries
             data_dir = "/data/k8s/k8s" },       -- working folders (data_dir/NAME)
}
local PATH_VARS = { config_dir = "K8S_CONFIG_DIR", bin_dir = "K8S_BIN_DIR", data_dir = "K8S_DIR" }

--- component.new{ name=, template=, user= (CN and O of a Kubernetes component),
---   cert = { CN=, O= }, subject = { C=, ST=, L=, OU= } (default GUIDE.subject),
---   layout = { config_dir=, bin_dir=, data_dir=, cert_dir= } (default GUIDE.layout;
---   cert_dir: config_dir/cert),
---   ca_key_on_nodes = false (only a unit that signs with the CA needs it),
---   binaries = { {name=, var=}, ... } (default: the component's own, binary_var),
---   version_var=, values = function(C, node, ctx, vars) (component-specific unit values),
---   checks = { verify=, leader=, ha_test=, healthy= } (pluggable), lease=, rbac=, secure_port= }
local FIELDS = { "name", "template", "user", "cert", "ca_key_on_nodes", "binaries", "binary_var",
                 "version_var", "values", "checks", "lease", "rbac", "secure_port", "dirs", "dir_mode",
                 "subject", "layout", "leader" }
M.FIELDS = FIELDS
local CERT_FIELDS = { "CN", "O" }
local SUBJECT_FIELDS = { "C", "ST", "L", "OU" }
local LAYOUT_FIELDS = { "config_dir", "bin_dir", "data_dir", "cert_dir" }

-- the description's table over the guide's, key by key
local function over(given, defaults)
  local t = {}
  for k, v in pairs(defaults) do t[k] = v end
  for k, v in pairs(given or {}) do t[k] = v end
  return t
end

function M.new(spec)
  assert(type(spec) == "table" and spec.name and spec.template, "component.new: name and template are required")
  require("kcm.keys").check(spec, FIELDS, "component.new", 2)
  require("kcm.keys").check(spec.cert, CERT_FIELDS, "component.new cert", 2)
  require("kcm.keys").check(spec.subject, SUBJECT_FIELDS, "component.new subject", 2)
  require("kcm.keys").check(spec.layout, LAYOUT_FIELDS, "component.new layout", 2)
  spec.subject, spec.layout = over(spec.subject, M.GUIDE.subject), over(spec.layout, M.GUIDE.layout)
  spec.cert = spec.cert or { CN = spec.user, O = spec.user }
  assert(spec.cert.CN, "component.new: cert.CN (or user) is required")
  if not spec.binaries then
    spec.binaries = { { name = spec.name, var = spec.binary_var or (spec.name:gsub("-", "_") .. "_binary") } }
  end
  spec.checks = spec.checks or require "kcm.component.kube"
  return setmetatable(spec, C)
end

--- Where the component lives on the nodes: the description's layout, the
--- guide's variables over it
function C:paths(ctx)
  local p = {}
  for k, v in pairs(self.layout) do p[k] = PATH_VARS[k] and var(ctx, PATH_VARS[k], v) or v end
  local k8s, bin_dir = p.config_dir, p.bin_dir
  local cert_dir = p.cert_dir or (k8s .. "/cert")
  return {
    config_dir = k8s, data_dir = p.data_dir,
    cert_dir = cert_dir,
    cert = cert_dir .. "/" .. self.name .. ".pem",
    key = cert_dir .. "/" .. self.name .. "-key.pem",
    ca = cert_dir .. "/ca.pem",
    ca_key = cert_dir .. "/ca-key.pem",
    kubeconfig = k8s .. "/" .. self.name .. ".kubeconfig",
    bin_dir = bin_dir,
    bin = bin_dir .. "/" .. self.name,
    workdir = p.data_dir .. "/" .. self.name,
  }
end

--- Per-component run state (certificate, template, versions), kept in ctx.
function C:state(ctx)
  ctx[self.name] = ctx[self.name] or {}
  return ctx[self.name]
end

-- the pluggable checks
function C:verify(node, ctx) return self.checks.verify(self, node, ctx) end
-- the step "leader" shows who leads; in --check a fresh cluster has no
-- leader yet, and a check run asks nothing of one
function C:show_leader(ctx) if not ctx.check then return self.checks.leader(self, ctx) end end
function C:ha_test(ctx) return self.checks.ha_test(self, ctx) end
function C:healthy(ctx, batch) return self.checks.healthy(self, ctx, batch) end

--- Whether a rolling restart goes leader last: the component's `leader`
--- (default true; false: inventory order), which -e rolling_order=inventory
--- overrides for one run (bench/rolling compares both).
function C:leader_aware(ctx)
  local order = var(ctx, "rolling_order", "leader")
  if order ~= "leader" and order ~= "inventory" then
    error(string.format("-e rolling_order=%s: expected leader (the leader restarted last, after a " ..
                        "handover) or inventory (inventory order)", tostring(order)), 0)
  end
  return self.leader ~= false and order == "leader"
end

--- A rolling step's `leader`: the node restarted last (the etcd leader, the
--- Lease holder); false when the component rolls in inventory order
function C:leader_node(ctx)
  if not self:leader_aware(ctx) or not self.checks.leader_node then return false end
  return self.checks.leader_node(self, ctx)
end

--- A rolling step's gate: the component's own (etcd: healthy, caught up,
--- tolerates one more failure), else healthy
function C:reconcile_members(ctx) return self.checks.reconcile_members(self, ctx) end

function C:rolling_gate(ctx, batch)
  if self.checks.rolling_gate then return self.checks.rolling_gate(self, ctx, batch) end
  return self.checks.healthy(self, ctx, batch)
end

--- C:parts() -> the component's methods bound to it, to hand to play:step:
---   play:step("unit", { prepare = parts.compile_template }, parts.put_unit)
function C:parts()
  local me = self
  return setmetatable({}, { __index = function(t, k)
    local f = me[k]
    if type(f) ~= "function" then error("component " .. me.name .. " has no part '" .. tostring(k) .. "'", 2) end
    local bound = function(...) return f(me, ...) end
    rawset(t, k, bound)
    return bound
  end })
end

--- The options of a component's rolling restart step (a handler of
--- "restart"): one member at a time, the leader (etcd's, the Lease holder)
--- last, each gated by the component's rolling_gate
function M.rolling(parts)
  return { handles = "restart", serial = 1, gate = parts.rolling_gate, leader = parts.leader_node }
end

--- when = component.asked("ha_test"): true when -e ha_test=true
function M.asked(name)
  return function(ctx) return require("kcm.value").bool(ctx.vars[name], "-e " .. name) == true end
end

-- the parts, as methods
for _, mod in ipairs { "kcm.component.steps", "kcm.component.cert" } do
  for k, f in pairs(require(mod)) do C[k] = f end
end

return M
