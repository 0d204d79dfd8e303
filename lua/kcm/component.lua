-- The steps every control-plane component of a hand-built cluster shares
-- (certificate, kubeconfig, binary, unit, rbac, start, verify, leader,
-- ha-test), parameterised by a component description. A playbook for a new
-- component is that description plus the steps it wants, in order.
local exec = require "kcm.exec"
local files = require "kcm.files"
local task = require "kcm.task"
local rt = require "kcm.native.runtime"

local M = {}
local C = {}
C.__index = C

--- component.new{ name=, user=, lease=, template=, secure_port=function(version)->port,
---   rbac={name=, clusterrole=} | nil, binary_var="kcm_binary", version_var="kcm_version" }
function M.new(spec)
  assert(spec.name and spec.user and spec.template, "component.new: name, user and template are required")
  return setmetatable(spec, C)
end

local function var(ctx, name, default)
  local v = ctx.vars[name]
  if v == nil or v == "" then return default end
  return v
end
M.var = var

--- Parses "Kubernetes v1.28.4" (or "1.23") -> {major, minor, patch, text}
function M.parse_version(s)
  local maj, min, pat = tostring(s):match("v?(%d+)%.(%d+)%.?(%d*)")
  if not maj then return nil end
  return { major = tonumber(maj), minor = tonumber(min), patch = tonumber(pat) or 0,
           text = string.format("v%s.%s%s", maj, min, pat ~= "" and ("." .. pat) or "") }
end

function C:paths(ctx)
  local k8s = var(ctx, "K8S_CONFIG_DIR", "/etc/kubernetes")
  return {
    cert_dir = k8s .. "/cert",
    cert = k8s .. "/cert/" .. self.name .. ".pem",
    key = k8s .. "/cert/" .. self.name .. "-key.pem",
    ca = k8s .. "/cert/ca.pem",
    ca_key = k8s .. "/cert/ca-key.pem",
    kubeconfig = k8s .. "/" .. self.name .. ".kubeconfig",
    bin = var(ctx, "K8S_BIN_DIR", "/opt/k8s/bin") .. "/" .. self.name,
    workdir = var(ctx, "K8S_DIR", "/data/k8s/k8s") .. "/" .. self.name,
  }
end

-- The control machine's folder for what the procedure keeps in /opt/k8s/work.
function M.work_dir(ctx)
  local ca = var(ctx, "ca_cert", "/opt/k8s/work/ca.pem")
  return var(ctx, "work_dir", ca:match("^(.*)/[^/]*$") or ".")
end

--- The CSR of the component: CN and O = its user, hosts = 127.0.0.1 + every
--- master (the group's members: --limit does not shrink the certificate).
function C:csr(ctx)
  local hosts = { "127.0.0.1" }
  for _, n in ipairs(ctx.members()) do hosts[#hosts + 1] = n.address end
  return {
    CN = self.user,
    key = { algo = "rsa", size = 2048 },
    hosts = hosts,
    names = { { C = "CN", ST = "BeiJing", L = "BeiJing", O = self.user, OU = var(ctx, "cert_ou", "4Paradigm") } },
  }
end

-- step "certificate", control part: cfssl gencert -profile=kubernetes | cfssljson -bare NAME
function C:issue_certificate(ctx)
  local pki = require "kcm.pki"
  local dir = M.work_dir(ctx)
  ctx[self.name] = ctx[self.name] or {}
  local st = ctx[self.name]
  st.cert = pki.issue {
    ca = var(ctx, "ca_cert", dir .. "/ca.pem"),
    ca_key = var(ctx, "ca_key", dir .. "/ca-key.pem"),
    config = var(ctx, "ca_config", dir .. "/ca-config.json"),
    profile = "kubernetes",
    csr = self:csr(ctx),
    dir = dir,
    name = self.name,
  }
  st.ca_pem = files.read(var(ctx, "ca_cert", dir .. "/ca.pem"))
  st.ca_key_pem = files.read(var(ctx, "ca_key", dir .. "/ca-key.pem"))
end

-- step "certificate", node part: scp NAME*.pem root@node:/etc/kubernetes/cert/
-- In --check a certificate that would be (re)issued does not exist yet: what
-- depends on it would change everywhere, and is reported so.
local function put_or_report(node, content, path, opts)
  if content == nil and task.check() then
    task.changed("put " .. path .. " (new content)")
    return true
  end
  return node:put({ content = content }, path, opts)
end

function C:put_certificate(node, ctx)
  local st, p = ctx[self.name], self:paths(ctx)
  node:mkdir(p.cert_dir, { mode = "0755" })
  node:put({ content = st.ca_pem }, p.ca, { mode = "0644" })
  node:put({ content = st.ca_key_pem }, p.ca_key, { mode = "0600" })
  put_or_report(node, st.cert.pem, p.cert, { mode = "0644" })
  put_or_report(node, st.cert.key, p.key, { mode = "0600" })
end

-- step "kubeconfig", control part: the four `kubectl config` calls
function C:build_kubeconfig(ctx)
  local kubeconfig = require "kcm.kubeconfig"
  local st = ctx[self.name]
  local server = var(ctx, "KUBE_APISERVER")
  if not server then error("KUBE_APISERVER is not set (inventory vars or -e KUBE_APISERVER=https://...)", 0) end
  local path = M.work_dir(ctx) .. "/" .. self.name .. ".kubeconfig"
  if st.cert.pem == nil and task.check() then
    st.kubeconfig = nil
    task.changed("write " .. path .. " (new certificate)")
    return
  end
  local cfg = kubeconfig.build {
    cluster = "kubernetes", server = server, ca = st.ca_pem,
    user = self.user, client_cert = st.cert.pem, client_key = st.cert.key,
    context = self.user, embed = true,
  }
  st.kubeconfig = kubeconfig.encode(cfg)
  files.write(path, st.kubeconfig, { mode = "0600" })
end

function C:put_kubeconfig(node, ctx)
  put_or_report(node, ctx[self.name].kubeconfig, self:paths(ctx).kubeconfig, { mode = "0600" })
end

-- step "binary": install the local binary when its checksum differs
function C:put_binary(node, ctx)
  local local_bin = var(ctx, self.binary_var)
  if not local_bin then
    task.log("no local " .. self.name .. " binary given (" .. self.binary_var .. "): keeping the node's")
    return
  end
  node:put(local_bin, self:paths(ctx).bin, { mode = "0755", mkdir = true })
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
  require("kcm.native.fs").write(c.path, require("cjson").encode(c.versions), { mode = tonumber("600", 8) })
  c.dirty = false
end

--- The version the unit is rendered for: given, or the binary's own --version.
function C:version(node, ctx)
  -- once per node and run: `unit` asks, `verify` reuses the answer
  local memo = ctx[self.name] and ctx[self.name].versions
  if memo and memo[node.name] then return memo[node.name] end
  local v = self:_version(node, ctx)
  ctx[self.name] = ctx[self.name] or {}
  ctx[self.name].versions = ctx[self.name].versions or {}
  ctx[self.name].versions[node.name] = v
  return v
end

function C:_version(node, ctx)
  local given = var(ctx, self.version_var)
  if given then
    local v = M.parse_version(given)
    if not v then error(self.version_var .. "=" .. tostring(given) .. " is not a version like 1.28 or v1.23.4", 0) end
    return v
  end
  -- `--version` of a binary is asked once per binary content, then remembered
  -- (in kcmrun's state folder) by its checksum: a sha256sum costs far less
  -- than starting the binary on every node on every run.
  local bin = self:paths(ctx).bin
  local sum = node:run({ "sha256sum", bin }, { readonly = true, ok_codes = { 0, 1 } })
  sum = sum.code == 0 and sum.stdout:match("^(%x+)")
  local cache = M.version_cache(ctx)
  if sum and cache.versions[sum] then return M.parse_version(cache.versions[sum]) end
  local r = node:run({ bin, "--version" }, { readonly = true, ok_codes = { 0, 1, 2, 126, 127 } })
  local v = r.code == 0 and M.parse_version(r.stdout)
  if v and sum then
    cache.versions[sum] = v.text
    cache.dirty = true
  end
  if not v and var(ctx, self.binary_var) then
    -- --check on a fresh node: the binary is not there yet; ask the local copy
    local lr = exec.run({ var(ctx, self.binary_var), "--version" }, { readonly = true, ok_codes = { 0, 1, 2, 126, 127 } })
    v = lr.code == 0 and M.parse_version(lr.stdout)
  end
  if not v then
    error(string.format("cannot tell the %s version: `%s --version` failed on %s; install the binary " ..
                        "(-e %s=PATH) or give -e %s=1.28", self.name, self:paths(ctx).bin, node.name,
                        self.binary_var, self.version_var), 0)
  end
  return v
end

-- step "unit": render the unit template for this node and version
function C:compile_template(ctx)
  local template = require "kcm.template"
  local path = self.template
  if not path:match("^/") then path = (ctx.playbook_dir or ".") .. "/" .. path end
  ctx[self.name] = ctx[self.name] or {}
  ctx[self.name].template = template.compile(files.read(path), path)
end

-- A value with a line break (or another control character) rendered into a
-- unit would start a new line there: a new directive such as ExecStartPre=,
-- run as root. Such values are refused, whatever variable they come from.
local function unit_safe(name, v)
  if type(v) == "string" and v:find("%c") then
    local shown = string.format("%q", v):gsub("\\\n", "\\n")
    error(string.format("unit: variable %s contains a line break or another control character (%s); " ..
                        "refusing to render it into a systemd unit, where it would add a line", name, shown), 0)
  end
  return v
end

function C:unit_vars(node, ctx, version)
  local vars = setmetatable({}, { __index = function(_, k) return unit_safe(tostring(k), ctx.vars[k]) end })
  local p = self:paths(ctx)
  vars.version = version
  -- environment.sh spells them upper case, the lab's Lua inventory lower case
  vars.K8S_DIR = var(ctx, "K8S_DIR", "/data/k8s/k8s")
  vars.SERVICE_CIDR = var(ctx, "SERVICE_CIDR", "10.254.0.0/16")
  vars.legacy = version.minor <= 23           -- the procedure's flag set
  vars.klog_legacy = version.minor <= 25      -- --logtostderr was removed in 1.26
  vars.SECURE_PORT = var(ctx, self.name:gsub("-", "_") .. "_secure_port", self.secure_port(version))
  vars.BIND_ADDRESS = var(ctx, "bind_address", node.host)
  vars.NODE_NAME = node.name
  vars.NODE_IP = node.host
  vars.BIN = p.bin
  vars.WORKDIR = p.workdir
  vars.KUBECONFIG = p.kubeconfig
  vars.CERT = p.cert
  vars.KEY = p.key
  vars.CA = p.ca
  vars.CA_KEY = p.ca_key
  vars.LOG_LEVEL = var(ctx, "log_level", "2")
  local extra = var(ctx, self.name:gsub("-", "_") .. "_extra_flags", {})
  if type(extra) == "string" then
    local t = {}
    for f in extra:gmatch("%S+") do t[#t + 1] = f end
    extra = t
  end
  local xname = self.name:gsub("-", "_") .. "_extra_flags"
  for i, f in ipairs(extra) do unit_safe(string.format("%s[%d]", xname, i), f) end
  vars.extra_flags = extra
  for k, v in pairs(vars) do unit_safe(k, v) end
  return vars
end

function C:put_unit(node, ctx)
  local version = self:version(node, ctx)
  M.save_version_cache(ctx)
  local st = ctx[self.name]
  local text = st.template:render(self:unit_vars(node, ctx, version))
  node:mkdir(self:paths(ctx).workdir, { mode = "0755" })
  require("kcm.systemd").unit(node, self.name):install(text)
end

-- The admin kubeconfig and whether an unverified apiserver is acceptable:
-- only when the operator says so (-e allow_insecure_kubeconfig=true), since
-- the admin credentials would go to whoever answers.
local function admin_kubeconfig(ctx)
  if ctx.admin_kubeconfig_resolved then return table.unpack(ctx.admin_kubeconfig_resolved) end
  local path = var(ctx, "admin_kubeconfig", (os.getenv("HOME") or "/root") .. "/.kube/config")
  local allow = var(ctx, "allow_insecure_kubeconfig") == true or var(ctx, "allow_insecure_kubeconfig") == "true"
  local r = require("kcm.kubeconfig").resolve(path)
  if r.insecure and not allow then
    error(string.format("admin_kubeconfig %s: cluster '%s' sets insecure-skip-tls-verify: refusing to send the " ..
                        "admin credentials to an apiserver whose certificate is not verified. Give the cluster " ..
                        "a certificate-authority, or accept the risk with -e allow_insecure_kubeconfig=true",
                        path, tostring(r.cluster)), 0)
  end
  ctx.admin_kubeconfig_resolved = { path, allow, r }   -- read once per run, not once per node
  return path, allow, r
end
M.admin_kubeconfig = admin_kubeconfig

-- step "rbac": kubectl create clusterrolebinding ... (idempotent, through the API)
function C:apply_rbac(ctx)
  if not self.rbac then return end
  local kube = require "kcm.kube"
  local path, allow = admin_kubeconfig(ctx)
  local c = kube.client { kubeconfig = path, allow_insecure = allow }
  c:apply("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion = "rbac.authorization.k8s.io/v1",
    kind = "ClusterRoleBinding",
    metadata = { name = self.rbac.name },
    roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = self.rbac.clusterrole },
    subjects = { { apiGroup = "rbac.authorization.k8s.io", kind = "User", name = self.user } },
  })
end

-- step "start": daemon-reload, enable, restart only when something it uses changed
function C:start(node, ctx, step)
  local svc = require("kcm.systemd").unit(node, self.name)
  node:mkdir(self:paths(ctx).workdir, { mode = "0755" })
  svc:daemon_reload()
  svc:enable()
  if step.notified then
    svc:restart()
  else
    svc:start()
  end
end

local function admin_client_creds(ctx)
  local _, allow, r = admin_kubeconfig(ctx)
  return setmetatable({ insecure = r.insecure and allow or nil }, { __index = r })
end

-- step "verify": active (running), port listening, /metrics 200 with the admin cert
function C:verify(node, ctx)
  local svc = require("kcm.systemd").unit(node, self.name)
  -- no settle wait here: the port and /metrics checks below take that time,
  -- and the final state check catches a process that died meanwhile
  svc:wait_active(tonumber(var(ctx, "start_timeout", 30)), 0)
  if task.check() then return end
  local version = self:version(node, ctx)
  local vars = self:unit_vars(node, ctx, version)
  local port = tonumber(vars.SECURE_PORT)
  -- the secure port listening on the node (netstat -lnpt | grep ...)
  local listening
  for _ = 1, 40 do
    local r = node:run({ "ss", "-Hltn", "sport = :" .. port }, { readonly = true })
    if r.stdout:find(":" .. port, 1, true) then listening = true break end
    task.sleep(0.25)
  end
  if not listening then
    error(string.format("%s: %s is active but nothing listens on port %d; last journal lines:\n%s",
                        node.name, self.name, port, svc:journal(20)), 0)
  end
  local creds = admin_client_creds(ctx)
  local http = require "kcm.native.http"
  local host = vars.BIND_ADDRESS
  if host == "0.0.0.0" then host = node.host end
  local url = string.format("https://%s:%d/metrics", host, port)
  local r
  for attempt = 1, 5 do
    r = http.request { method = "GET", url = url, ca_pem = creds.ca_pem, cert_pem = creds.client_cert_pem,
                       key_pem = creds.client_key_pem, insecure = creds.insecure, timeout = 10, connect_timeout = 5 }
    if r.status == 200 then break end
    task.sleep(0.5 * attempt)
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
  svc:wait_active(5, 0)
end

local function holder_node(ctx, holder)
  local host = holder and holder:match("^(.-)_") or holder
  for _, n in ipairs(ctx.hosts()) do
    if n.name == host then return n.name end
  end
  return host
end

function C:lease_info(ctx)
  local kube = require "kcm.kube"
  local path, allow = admin_kubeconfig(ctx)
  local c = kube.client { kubeconfig = path, allow_insecure = allow }
  return c:leader(self.lease, "kube-system")
end

-- step "leader": kubectl get endpoints/lease ... -> the leader's node
function C:show_leader(ctx)
  local l
  for _ = 1, 40 do
    l = self:lease_info(ctx)
    if l and l.holderIdentity and l.holderIdentity ~= "" then break end
    task.sleep(0.5)
  end
  if not (l and l.holderIdentity) then error("no leader holds the lease kube-system/" .. self.lease, 0) end
  local function num(x) return tostring(math.tointeger(x) or x) end
  task.info(string.format("leader: %s (holder %s, lease %ss, renewed %s, acquired %s, transitions %s)",
                          holder_node(ctx, l.holderIdentity), l.holderIdentity, num(l.leaseDurationSeconds),
                          tostring(l.renewTime), tostring(l.acquireTime), num(l.leaseTransitions)))
  ctx.leader = holder_node(ctx, l.holderIdentity)
  return l
end

local function wait_new_leader(self, ctx, old, stopped, budget)
  local t0 = rt.now()
  local last_report = 0
  while rt.now() - t0 < budget do
    local l = self:lease_info(ctx)
    local who = l and holder_node(ctx, l.holderIdentity)
    if who and who ~= old and not stopped[who] then return who, rt.now() - t0, l end
    if rt.now() - last_report >= 2 then
      task.info(string.format("  waiting for a new leader... %.0fs (lease held by %s)", rt.now() - t0, tostring(who)))
      last_report = rt.now()
    end
    task.sleep(0.2)
  end
  return nil, rt.now() - t0
end

-- step "ha-test": stop the leader, time the failover; then stop two, check the third
function C:ha_test(ctx)
  local systemd = require "kcm.systemd"
  local l = self:show_leader(ctx)
  local lease = tonumber(l.leaseDurationSeconds) or 15
  local retry = tonumber(var(ctx, "leader_elect_retry_period", 2))
  local margin = tonumber(var(ctx, "ha_margin", 3))
  local budget = lease + retry + margin
  local nodes = {}
  for _, n in ipairs(ctx.hosts()) do nodes[n.name] = n end
  local rows, failed = {}, false

  local function svc(name) return systemd.unit(nodes[name], self.name) end
  local function trial(label, stop)
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
    local cur = holder_node(ctx, self:lease_info(ctx).holderIdentity)
    local second
    for _, n in ipairs(ctx.hosts()) do if n.name ~= cur and n.name ~= other then second = n.name end end
    trial("stop two", { cur, second })
  end

  local lines = { string.format("%-18s %-16s %-8s %-8s %9s %9s", "trial", "stopped", "from", "to", "failover", "budget") }
  for _, r in ipairs(rows) do
    lines[#lines + 1] = string.format("%-18s %-16s %-8s %-8s %8.1fs %8.1fs", r.label, r.stopped, r.from, r.to, r.took, budget)
  end
  lines[#lines + 1] = string.format("(lease duration %gs + retry period %gs + margin %gs)", lease, retry, margin)
  for _, line in ipairs(lines) do task.info(line) end
  if failed then error("a failover took longer than lease duration + retry period + margin (or never happened)", 0) end
end

--- Adds the component's standard steps to a playbook, in the procedure's order.
function C:add_steps(play)
  local me = self
  play:step("certificate", { notify = "restart", prepare = function(ctx) me:issue_certificate(ctx) end },
            function(node, ctx) me:put_certificate(node, ctx) end)
  play:step("kubeconfig", { notify = "restart", prepare = function(ctx)
              if not (ctx[me.name] and ctx[me.name].cert) then me:issue_certificate(ctx) end
              me:build_kubeconfig(ctx) end },
            function(node, ctx) me:put_kubeconfig(node, ctx) end)
  play:step("binary", { notify = "restart" }, function(node, ctx) me:put_binary(node, ctx) end)
  play:step("unit", { notify = "restart", prepare = function(ctx) me:compile_template(ctx) end },
            function(node, ctx) me:put_unit(node, ctx) end)
  if self.rbac then
    play:step("rbac", { once = true }, function(ctx) me:apply_rbac(ctx) end)
  end
  play:step("start", { handles = "restart" }, function(node, ctx, step) me:start(node, ctx, step) end)
  play:step("verify", function(node, ctx) me:verify(node, ctx) end)
  play:step("leader", { once = true }, function(ctx) if not ctx.check then me:show_leader(ctx) end end)
  play:step("ha-test", { once = true, optional = true, when = function(ctx) return ctx.vars.ha_test == true or ctx.vars.ha_test == "true" end },
            function(ctx) me:ha_test(ctx) end)
  return play
end

return M
