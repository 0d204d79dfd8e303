-- The checks of a Kubernetes component (pluggable part of kcm.component):
-- its unit values (version-dependent flags), verify (active, port listening,
-- /metrics with the admin certificate), the leader from its Lease, and the
-- HA test (stop the leader, time the failover; then stop two).
local task = require "kcm.task"
local E = require "kcm.error"
local rt = require "kcm.native.runtime"
local inputs = require "kcm.component.inputs"
local cluster = require "kcm.component.cluster"
local var = inputs.var   -- one rule for "unset"

local M = {}

--- values(C, node, ctx, vars): the unit values of a Kubernetes component
function M.values(self, node, ctx, vars)
  local version = self:version(node, ctx)
  vars.version = version
  vars.K8S_DIR = self:paths(ctx).data_dir
  vars.SERVICE_CIDR = var(ctx, "SERVICE_CIDR", "10.254.0.0/16")
  vars.legacy = version.minor <= 23           -- the procedure's flag set
  vars.klog_legacy = version.minor <= 25      -- --logtostderr was removed in 1.26
  vars.SECURE_PORT = var(ctx, self.name:gsub("-", "_") .. "_secure_port", self.secure_port(version))
  vars.BIND_ADDRESS = var(ctx, "bind_address", node.host)
end

--- healthy(C, ctx, batch): the gate of a rolling restart: every node of the batch verifies
function M.healthy(self, ctx, batch)
  for _, node in ipairs(batch) do M.verify(self, node, ctx) end
  return true
end

local function admin_client_creds(ctx)
  local _, allow, r = require("kcm.component.cert").admin_kubeconfig(ctx)
  return setmetatable({ insecure = r.insecure and allow or nil }, { __index = r })
end

-- step "verify": active (running), /metrics 200 with the admin cert on
-- its secure port. The port may open a moment after the unit turns active,
-- so a refused or reset connection is retried (bounded); one that stays so is a
-- FAILED check that names the unit's state (a node that answers SSH is never
-- unreachable because its service is not listening).
function M.verify(self, node, ctx)
  local svc = require("kcm.systemd").unit(node, self.name)
  -- no settle wait here: the /metrics check below takes that time, and the
  -- final state check catches a process that died meanwhile
  svc:wait_active(tonumber(var(ctx, "start_timeout", 30)), 0)
  if task.check() then return end
  local vars = self:unit_vars(node, ctx)
  local port = tonumber(vars.SECURE_PORT)
  local creds = admin_client_creds(ctx)
  local http = require "kcm.native.http"
  local host = vars.BIND_ADDRESS
  if host == "0.0.0.0" then host = node.host end
  local url = string.format("https://%s:%d/metrics", host, port)
  local r, msg, kind
  local answers = 0     -- an answer other than 200 is retried a few times only
  task.retry { timeout = tonumber(var(ctx, "port_timeout", 12)), what = url,
               interval = function(attempt) return math.min(0.25 * attempt, 2) end } (function()
    r, msg, kind = http.request { method = "GET", url = url, ca_pem = creds.ca_pem, cert_pem = creds.client_cert_pem,
                                  key_pem = creds.client_key_pem, insecure = creds.insecure, timeout = 10,
                                  connect_timeout = 5 }
    if r then
      answers = answers + 1
      return r.status == 200 or (answers >= 5 and task.STOP)
    end
    -- a certificate that does not verify will not verify on the next try
    if kind ~= "refused" and kind ~= "timeout" and kind ~= "reset" then return task.STOP end
  end)
  if not r and (kind == "refused" or kind == "reset") then
    -- a port that resets every connection is as closed as a refusing one
    error(svc:closed_port(host, port), 0)
  elseif not r then
    E.raise { kind = kind, node = node.name, op = "GET", path = url, message = node.name .. ": " .. tostring(msg) }
  end
  if r.status == 403 then
    error(string.format("%s: GET %s -> 403 Forbidden: the request reached %s as the anonymous user " ..
                        "(system:anonymous), so the client certificate was not accepted. Check that " ..
                        "--authentication-kubeconfig is set in the unit and that the admin certificate is " ..
                        "signed by the cluster CA.\n%s", node.name, url, self.name, r.body:sub(1, 300)), 0)
  elseif r.status == 500 and r.body:find("subjectaccessreviews", 1, true) and
         (r.body:find("dial tcp", 1, true) or r.body:find("connection refused", 1, true) or
          r.body:find("i/o timeout", 1, true) or r.body:find("no route to host", 1, true)) then
    -- not an RBAC problem: the component could not reach the apiserver to ask
    error(string.format("%s: GET %s -> 500: %s could not reach the apiserver to authorize the request " ..
                        "(is the apiserver down or unreachable from %s?)\n%s", node.name, url, self.name,
                        node.name, r.body:sub(1, 300)), 0)
  elseif r.status == 500 and r.body:find("subjectaccessreviews", 1, true) then
    error(string.format("%s: GET %s -> 500: %s cannot create subjectaccessreviews, so it cannot authorize " ..
                        "anyone: the ClusterRoleBinding %s (user %s -> ClusterRole %s) is missing. Fix: run " ..
                        "the rbac step (kcmrun ... --only rbac).\n%s", node.name, url, self.name,
                        self.rbac and self.rbac.name or "?", self.user,
                        self.rbac and self.rbac.clusterrole or "system:auth-delegator", r.body:sub(1, 300)), 0)
  elseif r.status ~= 200 then
    error(string.format("%s: GET %s -> %d: %s", node.name, url, r.status, r.body:sub(1, 300)), 0)
  end
  if not r.body:find("leader_election_master_status", 1, true) then
    error(string.format("%s: GET %s -> 200 but the metrics lack leader_election_master_status", node.name, url), 0)
  end
  -- a process that died while /metrics was read: its /proc entry, and a
  -- fresh look only when it is gone
  if not svc:still_running(svc:state()) and not (svc:active(true)) then svc:wait_active(5, 0) end
end

local function holder_node(ctx, holder)
  local host = holder and holder:match("^(.-)_") or holder
  for _, n in ipairs(cluster.members(ctx)) do
    if n.name == host then return n.name end
  end
  return host
end

local function lease_info(self, ctx)
  local kube = require "kcm.kube"
  local path, allow = require("kcm.component.cert").admin_kubeconfig(ctx)
  local c = kube.client { kubeconfig = path, allow_insecure = allow }
  return c:leader(self.lease, "kube-system")
end

--- leader_node(C, ctx) -> the node holding the component's Lease (one look:
--- a rolling restart's `leader`, so the holder is restarted last and a roll
--- moves the Lease once), nil when nobody holds it
function M.leader_node(self, ctx)
  local l = lease_info(self, ctx)
  if l and l.holderIdentity and l.holderIdentity ~= "" then return holder_node(ctx, l.holderIdentity) end
  return nil
end

-- step "leader": kubectl get endpoints/lease ... -> the leader's node
function M.leader(self, ctx)
  local l
  task.retry { attempts = 40, interval = 0.5, what = "a holder of lease kube-system/" .. self.lease } (function()
    l = lease_info(self, ctx)
    return l and l.holderIdentity and l.holderIdentity ~= ""
  end)
  if not (l and l.holderIdentity) then error("no leader holds the lease kube-system/" .. self.lease, 0) end
  local function num(x) return tostring(math.tointeger(x) or x) end
  task.info(string.format("leader: %s (holder %s, lease %ss, renewed %s, acquired %s, transitions %s)",
                          holder_node(ctx, l.holderIdentity), l.holderIdentity, num(l.leaseDurationSeconds),
                          tostring(l.renewTime), tostring(l.acquireTime), num(l.leaseTransitions)))
  ctx.leader = holder_node(ctx, l.holderIdentity)
  return l
end

--- may_stop(C, ctx, names): raises, in one line, unless another member
--- keeps running to hold the Lease once `names` (a list) are stopped
function M.may_stop(self, ctx, names)
  local stopping = {}
  for _, n in ipairs(names) do stopping[n] = true end
  local running, total, left = 0, 0, 0
  -- the run's own nodes only (never one --limit leaves out), an unreachable one not running
  local function active(node)
    local ok, up = pcall(function() return (require("kcm.systemd").unit(node, self.name):active(true)) end)
    return ok and up
  end
  for _, m in ipairs(ctx.hosts and ctx.hosts() or {}) do
    total = total + 1
    if not (ctx.down and ctx.down[m.name]) and active(m) then
      running = running + 1
      if not stopping[m.name] then left = left + 1 end
    end
  end
  if left < 1 then
    error(string.format("refusing: %s has %d of %d members running; stopping %s would leave none to hold the lease",
                        self.name, running, total, table.concat(names, ",")), 0)
  end
end

--- before_stop(C, ctx, node): a rolling restart stops no member whose loss
--- leaves nobody to lead
function M.before_stop(self, ctx, node) M.may_stop(self, ctx, { node.name }) end

local function wait_new_leader(self, ctx, old, stopped, budget)
  local t0 = rt.now()
  local l, who
  local found = task.retry { timeout = budget, interval = 0.2, what = function()
    return string.format("a new leader of kube-system/%s (held by %s)", self.lease, tostring(who))
  end } (function()
    l = lease_info(self, ctx)
    who = l and holder_node(ctx, l.holderIdentity)
    return who and who ~= old and not stopped[who]
  end)
  if found then return who, rt.now() - t0, l end
  return nil, rt.now() - t0
end

-- step "ha-test": stop the leader, time the failover; then stop two, check the third
function M.ha_test(self, ctx)
  local systemd = require "kcm.systemd"
  local l = M.leader(self, ctx)
  local lease = tonumber(l.leaseDurationSeconds) or 15
  local retry = tonumber(var(ctx, "leader_elect_retry_period", 2))
  local margin = tonumber(var(ctx, "ha_margin", 3))
  local budget = lease + retry + margin
  local nodes = {}
  for _, n in ipairs(ctx.hosts()) do nodes[n.name] = n end
  local rows, failed = {}, false

  local function svc(name) return systemd.unit(nodes[name], self.name) end
  local function trial(label, stop)
    M.may_stop(self, ctx, stop)
    -- a member stopped by hand (the Lease may still name it) is neither
    -- "stopped" by the trial nor started again after it
    for _, name in ipairs(stop) do
      local ok, up = pcall(function() return (svc(name):active(true)) end)
      if not (ok and up) then
        error(string.format("refusing: %s is not running on %s; the HA test stops (and starts again) only running members",
                            self.name, name), 0)
      end
    end
    local stopped = {}
    for _, name in ipairs(stop) do svc(name):stop(); stopped[name] = true end
    task.info(string.format("%s: stopped %s on %s", label, self.name, table.concat(stop, ", ")))
    local who, took = wait_new_leader(self, ctx, stop[1], stopped, budget * 2)
    rows[#rows + 1] = { label = label, stopped = table.concat(stop, ","), from = stop[1], to = who or "-", took = took }
    if not who or took > budget then failed = true end
    for _, name in ipairs(stop) do svc(name):start() end
    for _, name in ipairs(stop) do svc(name):wait_active(30) end
    return who
  end

  local first = ctx.leader
  local new = trial("stop the leader", { first })
  if #ctx.hosts() >= 3 and new then
    local other
    for _, n in ipairs(ctx.hosts()) do if n.name ~= new and n.name ~= first then other = n.name end end
    -- stop the current leader and one more: the third must take over
    local cur = holder_node(ctx, lease_info(self, ctx).holderIdentity)
    local second
    for _, n in ipairs(ctx.hosts()) do if n.name ~= cur and n.name ~= other then second = n.name end end
    trial("stop two", { cur, second })
  end

  cluster.ha_table(rows, budget, string.format("(lease duration %gs + retry period %gs + margin %gs)", lease, retry, margin))
  if failed then error("a failover took longer than lease duration + retry period + margin (or never happened)", 0) end
end

return M
