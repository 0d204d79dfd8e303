-- The checks of etcd (pluggable part of kcm.component), native, without
-- etcdctl on the control machine: HTTPS /health with the issued client
-- certificate, leader and members through etcd's JSON gateway
-- (/v3/maintenance/status, /v3/cluster/member/list), writes through
-- /v3/kv/put, and the HA test.
local cjson = require "cjson"
local task = require "kcm.task"
local rt = require "kcm.native.runtime"
local inputs = require "kcm.component.inputs"
local cluster = require "kcm.component.cluster"
local var = inputs.var   -- one rule for "unset"

local M = {}

--- values(C, node, ctx, vars): the guide's environment.sh values, the
--- cluster lists from the members (never from --limit)
function M.values(self, node, ctx, vars)
  local members = cluster.members(ctx)
  vars.ETCD_DATA_DIR = var(ctx, "ETCD_DATA_DIR", "/data/k8s/etcd/data")
  vars.ETCD_WAL_DIR = var(ctx, "ETCD_WAL_DIR", "/data/k8s/etcd/wal")
  vars.ETCD_NODES = cluster.join(members, "%name=https://%ip:2380")
  vars.ETCD_ENDPOINTS = cluster.join(members, "https://%ip:2379")
  -- the guide's environment.sh spells the lists out: the members win
  for _, k in ipairs { "ETCD_NODES", "ETCD_ENDPOINTS" } do
    local given = rawget(ctx.vars, k) or ctx.vars[k]
    if given and given ~= vars[k] and not (self:state(ctx).warned or {})[k] then
      self:state(ctx).warned = self:state(ctx).warned or {}
      self:state(ctx).warned[k] = true
      task.warn(string.format("%s=%s differs from the members of '%s' (%s): using the members", k, given,
                              ctx.play.hosts, vars[k]))
    end
  end
  vars.BIN = self:paths(ctx).bin_dir .. "/etcd"
  vars.ETCD_INITIAL_CLUSTER_STATE = M.cluster_state(self, node, ctx)
end

--- The unit's --initial-cluster-state for a node: existing when the member
--- step has (re)added it to a running cluster; else what the node's unit
--- already says (etcd reads it only while its data folder is empty, so a
--- member that joined keeps "existing" and a rerun changes nothing); new
--- for a cluster being bootstrapped.
function M.cluster_state(self, node, ctx)
  local joining = (self:state(ctx).joining or {})[node.name]
  if joining then return "existing" end
  if task.check() and not node.run then return "new" end
  local r = node:run({ "sed", "-n", "s/.*--initial-cluster-state=\\([a-z]*\\).*/\\1/p",
                       require("kcm.systemd").unit(node, self.name):path() }, { readonly = true, ok_codes = { 0, 1, 2 } })
  local now = r.code == 0 and r.stdout:match("^(%a+)")
  return now == "existing" and "existing" or "new"
end

--- dirs(C, ctx, vars): mkdir -p ${ETCD_DATA_DIR} ${ETCD_WAL_DIR}
function M.dirs(_, _, vars) return { vars.ETCD_DATA_DIR, vars.ETCD_WAL_DIR } end

-- The client credentials: the certificate the run issued (or, for --only
-- leader / ha-test, the one in the work folder).
local function creds(self, ctx)
  local st = self:state(ctx)
  if not st.cert then self:issue_certificate(ctx) end
  return { ca_pem = st.ca_pem, cert_pem = st.cert.pem, key_pem = st.cert.key }
end

-- One request to a member's client URL -> status, decoded body | nil, error
local function call(self, ctx, node, method, path, body, timeout)
  local c = creds(self, ctx)
  local url = string.format("https://%s:2379%s", node.address or cluster.address(ctx, node), path)
  local ok, r, err, kind = pcall(require("kcm.native.http").request, {
    method = method, url = url, body = body and cjson.encode(body) or nil,
    headers = body and { ["Content-Type"] = "application/json" } or nil,
    ca_pem = c.ca_pem, cert_pem = c.cert_pem, key_pem = c.key_pem,
    timeout = timeout or 5, connect_timeout = 2 })
  if not ok then return nil, tostring(r) end
  if not r and (kind == "refused" or kind == "reset") then
    -- said the same way for every member and every check
    return nil, string.format("%s %s: nothing listens on %s:2379", method, url, url:match("^https://([^:/]+)")), kind
  end
  if not r then return nil, err, kind end
  local dok, v = pcall(cjson.decode, r.body)
  if r.status ~= 200 then return nil, string.format("%s %s -> %d: %s", method, url, r.status, r.body:sub(1, 200)) end
  if not dok then return nil, string.format("%s %s: not JSON: %s", method, url, r.body:sub(1, 200)) end
  return v
end
M.call = call

--- health of one member: true | false, why, kind
function M.health(self, ctx, node)
  local v, err, kind = call(self, ctx, node, "GET", "/health")
  if not v then return false, err, kind end
  if v.health ~= "true" and v.health ~= true then return false, "unhealthy: " .. cjson.encode(v) end
  return true
end

--- healthy(C, ctx[, batch]): waits (bounded, with progress) until every member is healthy
function M.healthy(self, ctx)
  if task.check() then return true end
  -- a member whose node left the play (unreachable or failed earlier in this
  -- run) is not waited for: that would cost the whole timeout for nothing
  local members = {}
  for _, n in ipairs(cluster.members(ctx)) do
    local gone = ctx.down and ctx.down[n.name]
    if gone then
      task.info(string.format("  etcd health: skipping %s (%s earlier in this run)", n.name, gone))
    else
      members[#members + 1] = n
    end
  end
  local timeout = tonumber(var(ctx, "etcd_health_timeout", 90))
  local t0 = rt.now()
  local bad, down = nil, {}
  local watch, looked = {}, rt.now()
  -- an unhealthy member's unit, looked at about once a second: one in a
  -- crash loop will not become healthy by waiting
  local function crash_looping()
    if rt.now() - looked < 1 then return end
    looked = rt.now()
    for _, n in ipairs(down) do
      if n.node then
        local svc = require("kcm.systemd").unit(n.node, self.name)
        watch[n.name] = watch[n.name] or svc:crash_watch()
        local st = svc:state(true)
        if watch[n.name]:looping(st) then return svc:crash_report(st) end
      end
    end
  end
  local looping
  -- the progress line (kcm.progress) says which members are not healthy yet
  local all = task.retry { timeout = timeout, interval = 0.3, what = function()
    return string.format("etcd health, %d/%d healthy: %s", #members - #(bad or {}), #members,
                         table.concat(bad or {}, "; "))
  end } (function()
    bad, down = {}, {}
    for _, n in ipairs(members) do
      local ok, why = M.health(self, ctx, n)
      if not ok then
        bad[#bad + 1] = n.name .. " (" .. why:gsub("^GET https://[^ ]+: ", "") .. ")"
        down[#down + 1] = n
      end
    end
    if #bad == 0 then return true end
    looping = crash_looping()
    if looping then return task.STOP end
  end)
  if looping then error(looping, 0) end
  if not all then
    error(string.format("etcd: not healthy after %ds: %s", timeout, table.concat(bad, "; ")), 0)
  end
  task.log(string.format("etcd: %d/%d endpoints healthy after %.1fs", #members, #members, rt.now() - t0))
  return true
end

--- verify(C, node, ctx): systemctl status etcd is active (running), and the endpoint is healthy
function M.verify(self, node, ctx)
  local svc = require("kcm.systemd").unit(node, self.name)
  svc:wait_active(tonumber(var(ctx, "start_timeout", 90)), 0)
  if task.check() then return end
  local ok, why, kind = M.health(self, ctx, node)
  local addr = cluster.address(ctx, node)
  if not ok and (kind == "refused" or kind == "reset") then error(svc:closed_port(addr, 2379), 0) end
  if not ok then error(string.format("%s: https://%s:2379/health: %s", node.name, addr, why), 0) end
  task.log(string.format("https://%s:2379 is healthy", addr))
end

-- etcd's uint64s come as decimal strings; etcdctl prints IDs in hex
local function hex(s)
  local v = 0
  for d in tostring(s or "0"):gmatch("%d") do v = v * 10 + tonumber(d) end   -- wraps like uint64
  return string.format("%x", v)
end
M.hex = hex

local function bytes(n)
  n = tonumber(n) or 0
  local units, i = { "B", "kB", "MB", "GB", "TB" }, 1
  while n >= 1000 and i < #units do n, i = n / 1000, i + 1 end
  return i == 1 and string.format("%d B", n) or string.format(n < 10 and "%.1f %s" or "%.0f %s", n, units[i])
end

--- status(C, ctx) -> rows {node, endpoint, id, version, db_size, leader(bool), raft_term, raft_index, error}, leader node name
function M.status(self, ctx, only)
  local rows, leader_id = {}, nil
  for _, n in ipairs(only or cluster.members(ctx)) do
    local v, err = call(self, ctx, n, "POST", "/v3/maintenance/status", {})
    local h = v and v.header or {}
    local r = { node = n.name, endpoint = "https://" .. n.address .. ":2379", error = err }
    if v then
      r.id, r.member_id, r.version = hex(h.member_id), h.member_id, v.version
      r.db_size = v.dbSize or v.db_size
      r.raft_term, r.raft_index = v.raftTerm or v.raft_term or h.raft_term, v.raftIndex or v.raft_index
      r.leader_id = hex(v.leader)
      leader_id = leader_id or r.leader_id
    end
    rows[#rows + 1] = r
  end
  local leader
  for _, r in ipairs(rows) do
    r.leader = r.id ~= nil and r.id == r.leader_id
    if r.leader then leader = r.node end
  end
  return rows, leader
end

-- etcdctl -w table endpoint status
local function table_lines(rows)
  local head = { "ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "RAFT TERM", "RAFT INDEX" }
  local data = {}
  for i, r in ipairs(rows) do
    data[i] = r.error and { r.endpoint, "error: " .. r.error:sub(1, 60), "", "", "", "", "" }
      or { r.endpoint, r.id, tostring(r.version), bytes(r.db_size), tostring(r.leader),
           tostring(r.raft_term), tostring(r.raft_index) }
  end
  local w = {}
  for c, h in ipairs(head) do
    w[c] = #h
    for _, d in ipairs(data) do w[c] = math.max(w[c], #d[c]) end
  end
  local function line(cells)
    local out = {}
    for c, s in ipairs(cells) do out[c] = " " .. s .. string.rep(" ", w[c] - #s) .. " " end
    return "|" .. table.concat(out, "|") .. "|"
  end
  local sep = {}
  for c in ipairs(head) do sep[c] = string.rep("-", w[c] + 2) end
  local bar = "+" .. table.concat(sep, "+") .. "+"
  local out = { bar, line(head), bar }
  for _, d in ipairs(data) do out[#out + 1] = line(d) end
  out[#out + 1] = bar
  return out
end

--- leader(C, ctx): the guide's `etcdctl endpoint status -w table`, and the members
function M.leader(self, ctx)
  local rows, leader = M.status(self, ctx)
  for _, l in ipairs(table_lines(rows)) do task.info(l) end
  local ml, err
  for _, n in ipairs(cluster.members(ctx)) do   -- the first member that answers
    ml, err = call(self, ctx, n, "POST", "/v3/cluster/member/list", {})
    if ml then break end
  end
  if not ml then error("etcd: no member answered the member list: " .. tostring(err), 0) end
  local started = 0
  for _, m in ipairs(ml.members or {}) do
    if m.name and m.name ~= "" then started = started + 1 end
  end
  task.info(string.format("leader: %s; members: %d, started: %d", tostring(leader), #(ml.members or {}), started))
  if not leader then error("etcd: no member reports itself leader", 0) end
  ctx.leader = leader
  return leader, rows
end

local function b64(s) return require("kcm.native.yaml").base64_encode(s) end

--- put(C, ctx, node, key, value) through one member: true | nil, error
function M.put(self, ctx, node, key, value)
  local v, err = call(self, ctx, node, "POST", "/v3/kv/put", { key = b64(key), value = b64(value) }, 3)
  return v ~= nil, err
end

local function pick(list, pred) for _, x in ipairs(list) do if pred(x) then return x end end end

local function quorum(n) return n // 2 + 1 end

--- healthy members now (one /health each) -> count, set of names
local function healthy_now(self, ctx, members)
  local count, up = 0, {}
  for _, n in ipairs(members) do
    if M.health(self, ctx, n) then count, up[n.name] = count + 1, true end
  end
  return count, up
end

-- whether a member's data was initialised: its write-ahead log has a
-- segment (as etcd itself decides). member/ alone says nothing: a member
-- crash-looping on an empty folder creates member/snap before it fails.
local function has_data(self, ctx, n)
  local wal = var({ vars = n.vars or ctx.vars }, "ETCD_WAL_DIR", "/data/k8s/etcd/wal")   -- as values() renders it
  local r = n.node:run({ "sh", "-c", 'for f in "$1"/*.wal; do [ -e "$f" ] && exit 0; done; exit 1', "has-wal", wal },
                       { readonly = true, ok_codes = { 0, 1 } })
  return r.code == 0
end

local function member_call(self, ctx, via, path, body)
  local v, err
  -- etcd refuses a reconfiguration ("unhealthy cluster", 503) until every
  -- member has been connected for a few seconds (its strict reconfig
  -- check): a cluster this run (or a test) just started is asked again
  task.retry { timeout = tonumber(var(ctx, "etcd_reconfig_timeout", 30)), interval = 1,
               what = "etcd to accept " .. path } (function()
    v, err = call(self, ctx, via, "POST", path, body, 10)
    return v ~= nil or not tostring(err):find("unhealthy cluster", 1, true)
  end)
  if not v then error(string.format("%s: %s through %s failed: %s", self.name, path, via.name, tostring(err)), 0) end
  return v
end

-- A removed member's etcd exits ("permanently removed") and its unit
-- (Restart=always) would start it again every few seconds for ever: on a node
-- of the inventory it is stopped and disabled; its data folder is kept for
-- the operator. Outside --limit, or unreachable: said, not forced.
local function retire(self, ctx, name)
  local node = name ~= "" and ctx.by_name and ctx.by_name[name]
  if not node then return end
  -- ctx.hosts(NAME): the node, unless --limit leaves it out
  if ctx.hosts and #ctx.hosts(name) == 0 then
    task.warn(string.format("%s: %s was removed from the cluster; its %s unit is left running (outside --limit): " ..
                            "systemctl disable --now %s there", self.name, name, self.name, self.name))
    return
  end
  local ok, err = pcall(function()
    local svc = require("kcm.systemd").unit(node, self.name)
    svc:stop()
    svc:disable()
  end)
  if not ok then
    task.warn(string.format("%s: %s was removed from the cluster, but stopping its %s failed: %s; " ..
                            "systemctl disable --now %s there", self.name, name, self.name, tostring(err), self.name))
  end
end

-- the member step's removal part: members of the cluster whose peer URL no
-- node of the group has
local function remove_others(self, ctx, ml, wanted, via, remove)
  local extra = {}
  for _, m in ipairs(ml.members or {}) do
    local ours = false
    for _, u in ipairs(m.peerURLs or {}) do if wanted[u] then ours = true end end
    if not ours then extra[#extra + 1] = m end
  end
  if #extra == 0 then return end
  if not remove then
    for _, m in ipairs(extra) do
      task.warn(string.format("%s: member %s (%s) is not in the group '%s': kept (remove it with -e etcd_remove_members=true)",
                              self.name, m.name ~= "" and m.name or hex(m.ID), table.concat(m.peerURLs or {}, ","), ctx.play.hosts))
    end
    return
  end
  -- every member of the cluster, reached at its client URL
  local everyone = {}
  for _, m in ipairs(ml.members or {}) do
    local host = (m.clientURLs or {})[1] and m.clientURLs[1]:match("^https?://([^:/]+)")
    everyone[#everyone + 1] = { m = m, n = { name = m.name ~= "" and m.name or hex(m.ID), address = host } }
  end
  local removed = {}
  for _, m in ipairs(extra) do
    local left, healthy = 0, 0
    for _, c in ipairs(everyone) do
      if c.m ~= m and not removed[c.m] then
        left = left + 1
        if c.n.address and M.health(self, ctx, c.n) then healthy = healthy + 1 end
      end
    end
    if healthy < quorum(left) then
      error(string.format("refusing: removing %s would leave %s with %d of %d members healthy, fewer than a quorum (%d)",
                          m.name ~= "" and m.name or hex(m.ID), self.name, healthy, left, quorum(left)), 0)
    end
    removed[m] = true
    require("kcm.target").change(string.format("remove member %s (%s)", m.name ~= "" and m.name or hex(m.ID), hex(m.ID)),
      function() member_call(self, ctx, via, "/v3/cluster/member/remove", { ID = m.ID }) end)
    retire(self, ctx, m.name)
  end
end

--- step "member" (once, before the unit): the running cluster's members
--- made to match the group. A member the cluster knows whose data folder
--- is empty (a wiped disk, a replaced machine) is removed and added again;
--- a node of the group the cluster does not know is added; both then start
--- with initial-cluster-state=existing. A member not in the group is
--- removed only with -e etcd_remove_members=true, and never when the
--- members left would have fewer than a quorum healthy. No running cluster
--- (a first deployment): nothing to do.
function M.reconcile_members(self, ctx)
  -- read (and checked) on every run, also one with nothing to remove
  local remove = require("kcm.value").bool(var(ctx, "etcd_remove_members"), "-e etcd_remove_members") == true
  local members = cluster.members(ctx)
  local via, ml
  for _, n in ipairs(members) do
    ml = call(self, ctx, n, "POST", "/v3/cluster/member/list", {})
    if ml then via = n; break end
  end
  if not ml then return end
  local st = self:state(ctx)
  st.joining = st.joining or {}
  local by_url, wanted = {}, {}
  for _, m in ipairs(ml.members or {}) do
    for _, u in ipairs(m.peerURLs or {}) do by_url[u] = m end
  end
  local systemd = require "kcm.systemd"
  local in_run = {}     -- a node --limit leaves out is not looked at
  for _, h in ipairs(ctx.hosts and ctx.hosts() or {}) do in_run[h.name] = true end
  for _, n in ipairs(members) do
    local url = "https://" .. n.address .. ":2380"
    wanted[url] = true
    local m = by_url[url]
    local gone = (ctx.down and ctx.down[n.name]) or not in_run[n.name]
    local data = not gone and n.node and n ~= via and has_data(self, ctx, n)
    if not gone and n.node and n ~= via and data and not m then
      -- it would start as a member of another (or a removed) cluster
      error(string.format("%s: %s is not a member of the running cluster but its data folder holds one: " ..
                          "wipe it on %s (systemctl stop %s; rm -rf the data and WAL folders) so it joins", self.name,
                          n.name, n.name, self.name), 0)
    end
    if not gone and n.node and n ~= via and not data then
      if m and m.name ~= "" then
        st.stopped = st.stopped or {}
        st.stopped[n.name] = true   -- the start step starts it, also under --check
        require("kcm.target").change(string.format("replace member %s (%s): its data folder is empty", n.name, hex(m.ID)),
          function()
            -- it cannot start on its own: stop its crash loop, forget the old identity
            systemd.unit(n.node, self.name):stop()
            member_call(self, ctx, via, "/v3/cluster/member/remove", { ID = m.ID })
            member_call(self, ctx, via, "/v3/cluster/member/add", { peerURLs = { url } })
          end)
      elseif not m then
        require("kcm.target").change(string.format("add member %s (%s)", n.name, url), function()
          member_call(self, ctx, via, "/v3/cluster/member/add", { peerURLs = { url } })
        end)
      end
      -- added (now or by an earlier run that stopped before its start): joins
      st.joining[n.name] = true
    end
  end
  remove_others(self, ctx, ml, wanted, via, remove)
end

--- may_stop(C, ctx, name): raises, in one line, when the cluster would lose
--- its quorum without `name` (counted from what answers /health now)
function M.may_stop(self, ctx, name)
  local members = cluster.members(ctx)
  local count, up = healthy_now(self, ctx, members)
  local left = count - (up[name] and 1 or 0)
  if left < quorum(#members) then
    error(string.format("refusing: %s has %d of %d members healthy; stopping %s would lose quorum",
                        self.name, count, #members, name), 0)
  end
  return count, #members
end

--- leader_node(C, ctx) -> the node name of the current leader (for a
--- rolling step's `leader`), nil when no member names one
function M.leader_node(self, ctx)
  local _, leader = M.status(self, ctx)
  return leader
end

--- move_leader(C, ctx, from): when `from` leads, hand leadership to the
--- most caught-up healthy follower (etcdctl move-leader, through the JSON
--- gateway), and wait until that follower leads
function M.move_leader(self, ctx, from)
  local members = cluster.members(ctx)
  local rows, leader = M.status(self, ctx)
  if leader ~= from then return end
  local best
  for _, r in ipairs(rows) do
    local n = pick(members, function(m) return m.name == r.node end)
    if r.node ~= from and not r.error and M.health(self, ctx, n)
       and (not best or (tonumber(r.raft_index) or 0) > (tonumber(best.raft_index) or 0)) then
      best = r
    end
  end
  if not best then error(string.format("refusing: no healthy follower to take the leadership of %s from %s", self.name, from), 0) end
  local t0 = rt.now()
  local lnode = pick(members, function(m) return m.name == from end)
  local term0 = (pick(rows, function(r) return r.node == from end) or {}).raft_term
  local _, err = call(self, ctx, lnode, "POST", "/v3/maintenance/transfer-leadership", { targetID = best.member_id }, 10)
  if err then error(string.format("%s: moving the leadership from %s to %s failed: %s", self.name, from, best.node, err), 0) end
  local now, term
  task.retry { timeout = 10, interval = 0.1 } (function()
    local rs
    rs, now = M.status(self, ctx)
    term = (pick(rs, function(r) return r.node == best.node end) or {}).raft_term
    return now == best.node
  end)
  if now ~= best.node then
    error(string.format("%s: leadership did not move from %s to %s within 10s (leader: %s)", self.name, from,
                        best.node, tostring(now)), 0)
  end
  task.info(string.format("  %s: leadership moved from %s to %s (raft index %s, term %s -> %s) in %.2fs", self.name,
                          from, best.node, tostring(best.raft_index), tostring(term0), tostring(term), rt.now() - t0))
end

--- before_stop(C, ctx, node): a rolling restart's last look before it stops
--- a member: the cluster must tolerate its loss, and a leader hands over first
function M.before_stop(self, ctx, node)
  -- members this run has just started are given their time to come up
  -- (a crash loop among them is reported) before the health count decides
  local st = self:state(ctx)
  if st.started and next(st.started) and not st.waited_started then
    st.waited_started = true
    M.healthy(self, ctx)
  end
  M.may_stop(self, ctx, node.name)
  if self:leader_aware(ctx) then M.move_leader(self, ctx, node.name) end
end

--- rolling_gate(C, ctx, batch): after a member's restart, before the next:
--- every member healthy (the restarted one among them), the restarted
--- members' raft index caught up with the leader's, and one more failure
--- tolerated
function M.rolling_gate(self, ctx, batch)
  M.healthy(self, ctx)
  if task.check() then return true end
  local members = cluster.members(ctx)
  local target, leader, last_rows
  local caught = task.retry { timeout = tonumber(var(ctx, "etcd_catchup_timeout", 30)), interval = 0.2 } (function()
    local rows, who = M.status(self, ctx)
    last_rows, leader = rows, who
    if not who then return false end
    -- the leader's index when first seen: a member that reaches it has every
    -- entry committed before its restart ended
    target = target or tonumber((pick(rows, function(r) return r.node == who end) or {}).raft_index)
    if not target then return false end
    for _, b in ipairs(batch) do
      local r = pick(rows, function(x) return x.node == b.name end)
      if not (r and tonumber(r.raft_index) and tonumber(r.raft_index) >= target) then return false end
    end
    return true
  end)
  local names, idx = {}, {}
  for i, b in ipairs(batch) do
    names[i] = b.name
    idx[i] = tostring((pick(last_rows or {}, function(x) return x.node == b.name end) or {}).raft_index)
  end
  if not caught then
    error(string.format("%s: %s did not catch up with the leader %s (raft index %s, the leader's %s)", self.name,
                        table.concat(names, ","), tostring(leader), table.concat(idx, ","), tostring(target)), 0)
  end
  local count = healthy_now(self, ctx, members)
  if count - 1 < quorum(#members) then
    error(string.format("%s: %d of %d members healthy after %s: one more failure would lose quorum", self.name,
                        count, #members, table.concat(names, ",")), 0)
  end
  task.info(string.format("  %s: %s caught up (raft index %s >= the leader's %s on %s); %d of %d healthy, tolerates %d failure(s)",
                          self.name, table.concat(names, ","), table.concat(idx, ","), tostring(target),
                          tostring(leader), count, #members, count - quorum(#members)))
  return true
end

-- step "ha-test": stop the leader's etcd; time until a new leader is elected
-- and a write through a surviving endpoint succeeds; start it again, check it rejoins.
function M.ha_test(self, ctx)
  local systemd = require "kcm.systemd"
  local members = cluster.members(ctx)
  local old = M.leader(self, ctx)
  local node = pick(members, function(n) return n.name == old end)
  local survivors = {}
  for _, n in ipairs(members) do if n.name ~= old then survivors[#survivors + 1] = n end end
  local budget = tonumber(var(ctx, "ETCD_ELECTION_TIMEOUT", 2000)) / 1000 + tonumber(var(ctx, "ha_margin", 3))
  local svc = systemd.unit(node.node, self.name)
  M.may_stop(self, ctx, old)
  local t0 = rt.now()
  svc:stop()
  task.info(string.format("stop the leader: stopped %s on %s", self.name, old))
  local new, wrote = nil, false
  -- within budget x 4 of stopping it
  task.retry { timeout = budget * 4 - (rt.now() - t0), interval = 0.1, what = "a new etcd leader and a write" } (function()
    local _, who = M.status(self, ctx, survivors)
    if who then
      new = who
      wrote = M.put(self, ctx, survivors[1], "/kcmrun/ha-test", os.date("!%Y-%m-%dT%H:%M:%SZ"))
    end
    return wrote
  end)
  local took = rt.now() - t0
  local rows = { { label = "stop the leader", stopped = old, from = old, to = wrote and new or "-", took = took } }
  -- start it again: it must rejoin (healthy, following the same leader)
  local t1 = rt.now()
  node.node:run({ "systemctl", "--no-block", "start", svc.name })
  M.healthy(self, ctx)
  local rs, leader = M.status(self, ctx)
  local back = pick(rs, function(r) return r.node == old end)
  task.info(string.format("rejoined: %s healthy after %.1fs, follows %s (raft index %s)", old, rt.now() - t1,
                          tostring(leader), tostring(back and back.raft_index)))
  cluster.ha_table(rows, budget, string.format("(election timeout %gms + margin %ss; failover = stop -> " ..
                       "new leader and a write through a surviving endpoint)", tonumber(var(ctx, "ETCD_ELECTION_TIMEOUT", 2000)),
                       var(ctx, "ha_margin", 3)))
  if not wrote then error(string.format("etcd: no new leader accepting writes within %.1fs of stopping %s", took, old), 0) end
  if took > budget then error(string.format("etcd: failover took %.1fs, more than the budget %.1fs", took, budget), 0) end
  if not (back and back.id and not back.error) then error("etcd: " .. old .. " did not rejoin", 0) end
end

return M
