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
--   local C = component.new { name = "etcd", template = "templates/etcd.service.in",
--                             cert = { CN = "etcd", O = "k8s" }, checks = require "kcm.component.etcd", ... }
--   local E = C:parts()      -- E.put_unit(node, ctx) ... bound, for play:step
local M = {}
local C = {}
C.__index = C
M.Component = C

local function var(ctx, name, default)
  local v = ctx.vars[name]
  if v == nil or v == "" then return default end
  return v
end
M.var = var

--- need_file(ctx, key, path, fix): the local file variable `key` names must
--- exist; if not, the error names the variable, where it was set and its
--- value, so the fix is that line:
---   ca_cert (from inventory.lua:4) = /opt/k8s/work/ca.pem: no such file
function M.need_file(ctx, key, path, fix)
  local st = require("kcm.native.fs").stat(path)
  local why = not st and "no such file" or st.type ~= "file" and ("is a " .. st.type .. ", not a file") or nil
  if not why then return path end
  local origin = require("kcm.vars").origin(ctx.vars, key)
  error(string.format("%s (from %s) = %s: %s; %s", key, origin, path, why,
                      fix or ("set " .. key .. " to the right file (-e " .. key .. "=PATH or the inventory)")), 0)
end

--- component.new{ name=, template=, user= (CN and O of a Kubernetes component),
---   cert = { CN=, O=, dir= } (dir on the nodes; default K8S_CONFIG_DIR/cert),
---   ca_key_on_nodes = false (only a unit that signs with the CA needs it),
---   binaries = { {name=, var=}, ... } (default: the component's own, binary_var),
---   version_var=, values = function(C, node, ctx, vars) (component-specific unit values),
---   checks = { verify=, leader=, ha_test=, healthy= } (pluggable), lease=, rbac=, secure_port= }
local FIELDS = { "name", "template", "user", "cert", "ca_key_on_nodes", "binaries", "binary_var",
                 "version_var", "values", "checks", "lease", "rbac", "secure_port", "dirs", "dir_mode" }
M.FIELDS = FIELDS
local CERT_FIELDS = { "CN", "O", "dir" }

function M.new(spec)
  assert(type(spec) == "table" and spec.name and spec.template, "component.new: name and template are required")
  require("kcm.keys").check(spec, FIELDS, "component.new", 2)
  require("kcm.keys").check(spec.cert, CERT_FIELDS, "component.new cert", 2)
  spec.cert = spec.cert or { CN = spec.user, O = spec.user }
  assert(spec.cert.CN, "component.new: cert.CN (or user) is required")
  if not spec.binaries then
    spec.binaries = { { name = spec.name, var = spec.binary_var or (spec.name:gsub("-", "_") .. "_binary") } }
  end
  spec.checks = spec.checks or require "kcm.component.kube"
  return setmetatable(spec, C)
end

--- Parses "Kubernetes v1.28.4" (or "1.23") -> {major, minor, patch, text}
function M.parse_version(s)
  local maj, min, pat = tostring(s):match("v?(%d+)%.(%d+)%.?(%d*)")
  if not maj then return nil end
  return { major = tonumber(maj), minor = tonumber(min), patch = tonumber(pat) or 0,
           text = string.format("v%s.%s%s", maj, min, pat ~= "" and ("." .. pat) or "") }
end

--- The component's members: every node of the play's group in the inventory,
--- whatever --limit says (certificates and cluster lists name all of them):
--- the runner's ctx.members, entries {name, host, address (after ssh_config),
--- port, vars, node}. Without it (a test's ctx) the inventory's group.
function M.members(ctx, group)
  group = group or ctx.play.hosts
  if ctx.members then return ctx.members(group) end
  local out = {}
  for _, n in ipairs(ctx.inventory.groups[group] or { group }) do
    local node = assert(ctx.by_name[n], "no node " .. tostring(n))
    out[#out + 1] = { name = n, host = node.host, address = node.host, node = node }
  end
  return out
end

--- The address of a node as its peers and the control machine reach it: its
--- member entry's (ssh_config's HostName for an alias), else its host.
function M.address(ctx, node)
  for _, m in ipairs(M.members(ctx)) do
    if m.name == node.name then return m.address end
  end
  return node.host
end

--- "fmt" applied to every member (name, host), joined by sep (",")
function M.join(members, fmt, sep)
  local out = {}
  for _, n in ipairs(members) do out[#out + 1] = fmt:gsub("%%name", n.name):gsub("%%ip", n.address) end
  return table.concat(out, sep or ",")
end

function C:paths(ctx)
  local k8s = var(ctx, "K8S_CONFIG_DIR", "/etc/kubernetes")
  local cert_dir = self.cert.dir or (k8s .. "/cert")
  local bin_dir = var(ctx, "K8S_BIN_DIR", "/opt/k8s/bin")
  return {
    cert_dir = cert_dir,
    cert = cert_dir .. "/" .. self.name .. ".pem",
    key = cert_dir .. "/" .. self.name .. "-key.pem",
    ca = cert_dir .. "/ca.pem",
    ca_key = cert_dir .. "/ca-key.pem",
    kubeconfig = k8s .. "/" .. self.name .. ".kubeconfig",
    bin_dir = bin_dir,
    bin = bin_dir .. "/" .. self.name,
    workdir = var(ctx, "K8S_DIR", "/data/k8s/k8s") .. "/" .. self.name,
  }
end

--- The control machine's folder for what the procedure makes in /opt/k8s/work
--- (issued certificates, kubeconfigs): `work_dir`, else one per cluster CA in
--- kcmrun's state folder (a copy of the inventory, or environment.sh for the
--- same cluster, finds the same certificates). Never the CA's folder.
function M.work_dir(ctx)
  local w = var(ctx, "work_dir")
  if w then return w end
  local fs = require "kcm.native.fs"
  local ca = var(ctx, "ca_cert", "/opt/k8s/work/ca.pem")
  return (ctx.state_dir or ".") .. "/work-" .. fs.sha256(fs.realpath(ca) or ca):sub(1, 16)
end

-- A value with a line break (or another control character) rendered into a
-- unit would start a new line there: a new directive such as ExecStartPre=,
-- run as root. Such values are refused, whatever variable they come from.
function M.unit_safe(name, v)
  if type(v) == "string" and v:find("%c") then
    local shown = string.format("%q", v):gsub("\\\n", "\\n")
    error(string.format("unit: variable %s contains a line break or another control character (%s); " ..
                        "refusing to render it into a systemd unit, where it would add a line", name, shown), 0)
  end
  return v
end

--- Per-component run state (certificate, template, versions), kept in ctx.
function C:state(ctx)
  ctx[self.name] = ctx[self.name] or {}
  return ctx[self.name]
end

-- the pluggable checks
function C:verify(node, ctx) return self.checks.verify(self, node, ctx) end
function C:show_leader(ctx) return self.checks.leader(self, ctx) end
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
---   play:step("unit", { prepare = E.compile_template }, E.put_unit)
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

--- The HA test's table (same for every component):
--- rows = { {label=, stopped=, from=, to=, took=} }, budget seconds, note
function M.ha_table(rows, budget, note)
  local task = require "kcm.task"
  task.info(string.format("%-18s %-16s %-8s %-8s %9s %9s", "trial", "stopped", "from", "to", "failover", "budget"))
  for _, r in ipairs(rows) do
    task.info(string.format("%-18s %-16s %-8s %-8s %8.1fs %8.1fs", r.label, r.stopped, r.from, r.to or "-", r.took, budget))
  end
  if note then task.info(note) end
end

--- Adds a Kubernetes component's standard steps to a playbook, in the procedure's order.
function C:add_steps(play)
  local E = self:parts()
  play:step("certificate", { notify = "restart", prepare = E.issue_certificate }, E.put_certificate)
  play:step("kubeconfig", { notify = "restart", prepare = E.build_kubeconfig }, E.put_kubeconfig)
  play:step("binary", { notify = "restart" }, E.put_binary)
  play:step("unit", { notify = "restart", prepare = E.compile_template }, E.put_unit)
  if self.rbac then play:step("rbac", { once = true }, E.apply_rbac) end
  play:step("start", E.start_nowait)
  play:step("restart", M.rolling(E), E.rolling_restart)
  play:step("verify", E.verify)
  play:step("leader", { once = true }, function(ctx) if not ctx.check then E.show_leader(ctx) end end)
  play:step("ha-test", { once = true, optional = true, when = M.asked("ha_test") }, E.ha_test)
  return play
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
