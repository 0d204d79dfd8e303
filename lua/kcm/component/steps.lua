-- A component's step actions on the nodes: binaries, version, unit file,
-- start (quorum-aware: never blocks on peers) and the restart of a rolling
-- handler. Methods of kcm.component objects (self = the component).
local exec = require "kcm.exec"
local files = require "kcm.files"
local task = require "kcm.task"
local target = require "kcm.target"
local E = require "kcm.error"
local inputs = require "kcm.component.inputs"
local cluster = require "kcm.component.cluster"
local var = inputs.var   -- one rule for "unset"

local M = {}

-- step "binary": install each local binary when its checksum differs
-- (scp etcd* root@node:/opt/k8s/bin/; chmod +x)
function M:put_binary(node, ctx)
  local dir = self:paths(ctx).bin_dir
  for _, b in ipairs(self.binaries) do
    local local_bin = var(ctx, b.var)
    if local_bin then
      inputs.need_file(ctx, b.var, local_bin)
      node:put(local_bin, dir .. "/" .. b.name, { mode = "0755", mkdir = true })
    else
      task.log("no local " .. b.name .. " binary given (" .. b.var .. "): keeping the node's")
    end
  end
end

function M.version_cache(ctx)
  if ctx.version_cache then return ctx.version_cache end
  local cjson = require "cjson"
  local path = ctx.state_dir and (ctx.state_dir .. "/versions.json")
  local c = { path = path, versions = {} }
  local data = path and require("kcm.native.fs").read(path)
  if data then
    local ok, t = pcall(cjson.decode, data)
    if ok and type(t) == "table" then c.versions = t end
  end
  ctx.version_cache = c
  return c
end

function M.save_version_cache(ctx)
  local c = ctx.version_cache
  if not (c and c.dirty and c.path) or task.check() then return end
  E.ok(require("kcm.native.fs").write(c.path, require("cjson").encode(c.versions), { mode = tonumber("600", 8) }))
  c.dirty = false
end

--- The version the unit is rendered for: given, or the binary's own --version
--- (once per node and run: `unit` asks, `verify` reuses the answer).
function M:version(node, ctx)
  local st = self:state(ctx)
  st.versions = st.versions or {}
  if not st.versions[node.name] then st.versions[node.name] = self:_version(node, ctx) end
  return st.versions[node.name]
end

function M:_version(node, ctx)
  local parse = inputs.parse_version
  local given = var(ctx, self.version_var)
  if given then
    local v = parse(given)
    if not v then error(self.version_var .. "=" .. tostring(given) .. " is not a version like 1.28 or v1.23.4", 0) end
    return v
  end
  -- `--version` of a binary is asked once per binary content, then remembered
  -- (in kcmrun's state folder) by its checksum: a sha256sum costs far less
  -- than starting the binary on every node on every run.
  local bin, bvar = self:paths(ctx).bin, self.binaries[1].var
  -- the binary step of this run already knows the node's copy's checksum
  local sum = node:put_sum(bin)
  if not sum then
    local r = node:run({ "sha256sum", bin }, { readonly = true, ok_codes = { 0, 1 } })
    sum = r.code == 0 and r.stdout:match("^(%x+)")
  end
  local cache = M.version_cache(ctx)
  if sum and cache.versions[sum] then return parse(cache.versions[sum]) end
  local r = node:run({ bin, "--version" }, { readonly = true, ok_codes = { 0, 1, 2, 126, 127 } })
  local v = r.code == 0 and parse(r.stdout)
  if v and sum then
    cache.versions[sum] = v.text
    cache.dirty = true
  end
  if not v and var(ctx, bvar) then
    -- --check on a fresh node: the binary is not there yet; ask the local copy
    local lr = exec.run({ var(ctx, bvar), "--version" }, { readonly = true, ok_codes = { 0, 1, 2, 126, 127 } })
    v = lr.code == 0 and parse(lr.stdout)
  end
  if not v then
    error(string.format("cannot tell the %s version: `%s --version` failed on %s; install the binary " ..
                        "(-e %s=PATH) or give -e %s=1.28", self.name, bin, node.name, bvar,
                        tostring(self.version_var)), 0)
  end
  return v
end

-- step "unit", control part: the unit template, compiled once
function M:compile_template(ctx)
  local template = require "kcm.template"
  local path = self.template
  if not path:match("^/") then path = (ctx.playbook_dir or ".") .. "/" .. path end
  self:state(ctx).template = template.compile(files.read(path), path)
end

--- The values a node's unit is rendered with: the node's own (NODE_NAME,
--- NODE_IP), the members (cluster lists), the paths, then the component's
--- values(); every inventory variable underneath. None may hold a line break.
function M:unit_vars(node, ctx)
  local safe = inputs.unit_safe
  local vars = setmetatable({}, { __index = function(_, k) return safe(tostring(k), ctx.vars[k]) end })
  local p = self:paths(ctx)
  vars.NODE_NAME, vars.NODE_IP = node.name, cluster.address(ctx, node)
  vars.members = {}
  for i, n in ipairs(cluster.members(ctx)) do vars.members[i] = { name = n.name, ip = n.address } end
  vars.BIN, vars.WORKDIR, vars.KUBECONFIG = p.bin, p.workdir, p.kubeconfig
  vars.CERT, vars.KEY, vars.CA, vars.CA_KEY = p.cert, p.key, p.ca, p.ca_key
  vars.LOG_LEVEL = var(ctx, "log_level", "2")
  local xname = self.name:gsub("-", "_") .. "_extra_flags"
  local extra = var(ctx, xname, {})
  if type(extra) == "string" then
    local t = {}
    for f in extra:gmatch("%S+") do t[#t + 1] = f end
    extra = t
  end
  for i, f in ipairs(extra) do safe(string.format("%s[%d]", xname, i), f) end
  vars.extra_flags = extra
  if self.values then self.values(self, node, ctx, vars) end
  for k, v in pairs(vars) do safe(k, v) end
  return vars
end

-- step "unit": render the template for this node; create the folders it names
function M:put_unit(node, ctx)
  local vars = self:unit_vars(node, ctx)
  M.save_version_cache(ctx)
  local text = self:state(ctx).template:render(vars)
  for _, d in ipairs(self.dirs and self.dirs(self, ctx, vars) or { self:paths(ctx).workdir }) do
    node:mkdir(d, { mode = self.dir_mode or "0755" })
  end
  require("kcm.systemd").unit(node, self.name):install(text)
end

-- step "start": daemon-reload, enable, restart only when something it uses changed
function M:start(node, ctx, step)
  local svc = require("kcm.systemd").unit(node, self.name)
  node:mkdir(self:paths(ctx).workdir, { mode = "0755" })
  svc:daemon_reload()
  svc:enable()
  if step.notified then svc:restart() else svc:start() end
end

-- Waits until the unit runs a main process other than `old_pid`; a unit
-- that crash-loops meanwhile is reported at once, not after the timeout.
local function wait_new_process(svc, old_pid, timeout)
  local st
  local watch = svc:crash_watch()
  local up = task.retry { timeout = timeout, interval = 0.2, what = svc.name .. " to run a new process" } (function()
    local ok
    ok, st = svc:active(true)
    if watch:looping(st) then return task.STOP end
    return ok and st.MainPID ~= old_pid and st.MainPID ~= 0
  end)
  if up then return st end
  if watch:looping(st) then error(svc:crash_report(st), 0) end
  error(svc:crash_report(st, string.format("did not come back within %ds", timeout)), 0)
end
M.wait_new_process = wait_new_process

--- step "start" of a quorum service: every member not running is started
--- without waiting for it (`systemctl --no-block restart`): its first start
--- only completes once a quorum of members has started, so waiting here would
--- deadlock a --forks 1 run. Running members are left to the rolling restart.
function M:start_nowait(node, ctx)
  local svc = require("kcm.systemd").unit(node, self.name)
  svc:daemon_reload()
  svc:enable()
  if not (svc:active()) then
    local st = svc:state()
    -- a member on its way up is left alone; one waiting for systemd's next
    -- try (auto-restart: it crashed, maybe on what this run just fixed, or
    -- while the apiserver was away) is started now, with its new files. So
    -- is one a step of this run stopped (state.stopped: etcd's member step
    -- replacing it); under --check it was not, and this is what a real run does
    local stopped = (self:state(ctx).stopped or {})[node.name]
    if stopped or st.ActiveState ~= "activating" or st.SubState == "auto-restart" then
      target.change("start " .. svc.name .. " (not waiting)",
                    function() node:run({ "systemctl", "--no-block", "restart", svc.name }) end)
    end
    self:state(ctx).started = self:state(ctx).started or {}
    self:state(ctx).started[node.name] = true
  end
end

--- step "restart" (a rolling handler: serial = 1, gate = healthy): restart
--- a member whose files changed, unless this run just started it; returns
--- when a new process runs (the gate then waits for the cluster's health).
function M:rolling_restart(node, ctx, step)
  if not step.notified or (self:state(ctx).started or {})[node.name] then return end
  local svc = require("kcm.systemd").unit(node, self.name)
  local old
  target.change("restart " .. svc.name, function()
    -- the component's own safety: refuse a stop the cluster cannot take,
    -- hand leadership away from a member about to stop
    if self.checks.before_stop then self.checks.before_stop(self, ctx, node) end
    old = svc:state().MainPID
    node:run({ "systemctl", "--no-block", "restart", svc.name })
  end)
  if old then wait_new_process(svc, old, tonumber(var(ctx, "start_timeout", 60))) end
end

return M
