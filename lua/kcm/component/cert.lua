-- A component's credentials: its certificate (issued on the control machine
-- for every member, put on the nodes with the CA certificate), the
-- kubeconfig of a Kubernetes component, and its RBAC binding. Methods of
-- kcm.component objects (self = the component).
local files = require "kcm.files"
local task = require "kcm.task"
local inputs = require "kcm.component.inputs"
local cluster = require "kcm.component.cluster"
local var = inputs.var   -- one rule for "unset"

local M = {}

--- The CSR: CN and O from the description, its subject's other names (the
--- guide's by default; -e cert_ou= for one cluster), hosts = 127.0.0.1 +
--- every member (not only the nodes of this run's --limit).
function M:csr(ctx)
  local hosts = { "127.0.0.1" }
  for _, n in ipairs(cluster.members(ctx)) do hosts[#hosts + 1] = n.address end
  return {
    CN = self.cert.CN,
    key = { algo = "rsa", size = 2048 },
    hosts = hosts,
    names = { { C = self.subject.C, ST = self.subject.ST, L = self.subject.L, O = self.cert.O or self.cert.CN,
                OU = var(ctx, "cert_ou", self.subject.OU) } },
  }
end

local function ca_paths(ctx)
  local ca = var(ctx, "ca_cert", "/opt/k8s/work/ca.pem")
  local dir = ca:match("^(.*)/[^/]*$") or "."
  return ca, var(ctx, "ca_key", dir .. "/ca-key.pem"), var(ctx, "ca_config", dir .. "/ca-config.json")
end

--- A CA file that is missing is named by the variable that points at it and
--- where that was set (component.need_file). PEM text given in place of a
--- path is left to kcm.pki.
function M.check_ca_files(ctx, paths)
  for _, key in ipairs { "ca_cert", "ca_key", "ca_config" } do
    local path = paths[key]
    if type(path) == "string" and not path:find("-----BEGIN", 1, true) then
      inputs.need_file(ctx, key, path, "set " .. key .. " to the cluster CA's file (-e " .. key ..
                            "=PATH or the inventory)")
    end
  end
end

-- The certificate and key already installed on the run's nodes (read in
-- parallel, over each node's file channel): candidates pki.issue adopts
-- when its work folder has no good pair.
local function installed(self, ctx)
  return function()
    local p, out = self:paths(ctx), {}
    local nodes = ctx.hosts and ctx:hosts() or {}
    local got = task.map(nodes, 16, function(node)
      local ok, pem = pcall(node.get, node, p.cert)
      local ok2, key = pcall(node.get, node, p.key)
      if ok and ok2 then return { pem = pem, key = key, from = node.name } end
    end)
    for _, t in ipairs(got) do
      if t.ok and t.results and t.results[1] then out[#out + 1] = t.results[1] end
    end
    return out
  end
end

-- step "certificate", control part: cfssl gencert -profile=kubernetes | cfssljson -bare NAME,
-- in the work folder (component.work_dir), never in the CA's; a valid pair
-- the nodes already hold is adopted instead (the cluster is the truth).
function M:issue_certificate(ctx)
  local st = self:state(ctx)
  if st.cert then return st.cert end
  local ca, ca_key, config = ca_paths(ctx)
  M.check_ca_files(ctx, { ca_cert = ca, ca_key = ca_key, ca_config = config })
  st.cert = require("kcm.pki").issue {
    ca = ca, ca_key = ca_key, config = config, profile = var(ctx, "cert_profile", "kubernetes"),
    csr = self:csr(ctx), dir = inputs.work_dir(ctx), name = self.name,
    renew_before = (tonumber(var(ctx, "cert_renew_before", 30)) or 30) * 86400,   -- days
    adopt = installed(self, ctx),
  }
  st.ca_pem = files.read(ca)
  if self.ca_key_on_nodes then st.ca_key_pem = files.read(ca_key) end
  return st.cert
end

-- In --check a certificate that would be (re)issued does not exist yet: what
-- depends on it would change everywhere, and is reported so.
local function put_or_report(node, content, path, opts)
  if content == nil and task.check() then
    task.changed("put " .. path .. " (new content)")
    return true
  end
  return node:put({ content = content }, path, opts)
end

-- step "certificate", node part: scp NAME*.pem ca.pem root@node:CERT_DIR/
-- (and ca-key.pem only for a unit that signs with the CA)
function M:put_certificate(node, ctx)
  local st, p = self:state(ctx), self:paths(ctx)
  node:mkdir(p.cert_dir, { mode = "0755" })
  node:put({ content = st.ca_pem }, p.ca, { mode = "0644" })
  if self.ca_key_on_nodes then node:put({ content = st.ca_key_pem }, p.ca_key, { mode = "0600" }) end
  if st.cert.pem == nil then
    put_or_report(node, nil, p.cert, { mode = "0644" })
    put_or_report(node, nil, p.key, { mode = "0600" })
    return
  end
  -- as a pair: both sent first, the key renamed before the certificate, a
  -- pair left half-installed by a dead run reinstalled whole by the next.
  -- The key goes from its file (streamed, hashed natively), also in --check.
  -- an adopted key not written to the work folder (--check) goes as content
  local key = (rawget(st.cert, "key") and { content = st.cert.key }) or rawget(st.cert, "key_path")
              or { content = st.cert.key }
  node:put_pair { { { content = st.cert.pem }, p.cert, { mode = "0644" } },
                  { key, p.key, { mode = "0600" } } }
end

-- step "kubeconfig", control part: the four `kubectl config` calls
function M:build_kubeconfig(ctx)
  local kubeconfig = require "kcm.kubeconfig"
  local st = self:state(ctx)
  self:issue_certificate(ctx)
  local server = var(ctx, "KUBE_APISERVER")
  if not server then error("KUBE_APISERVER is not set (inventory vars or -e KUBE_APISERVER=https://...)", 0) end
  local path = inputs.work_dir(ctx) .. "/" .. self.name .. ".kubeconfig"
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
  -- the work folder is a cache of what the nodes get: writing it is no
  -- change of the cluster (a run from an empty state folder changes nothing)
  local fs = require "kcm.native.fs"
  if fs.read(path) ~= st.kubeconfig and not task.check() then
    task.log("write " .. path)
    require("kcm.error").ok(fs.write(path, st.kubeconfig, { mode = tonumber("600", 8) }))
  end
end

function M:put_kubeconfig(node, ctx)
  put_or_report(node, self:state(ctx).kubeconfig, self:paths(ctx).kubeconfig, { mode = "0600" })
end

-- The admin kubeconfig and whether an unverified apiserver is acceptable:
-- only when the operator says so (-e allow_insecure_kubeconfig=true), since
-- the admin credentials would go to whoever answers.
function M.admin_kubeconfig(ctx)
  if ctx.admin_kubeconfig_resolved then return table.unpack(ctx.admin_kubeconfig_resolved) end
  local path = var(ctx, "admin_kubeconfig", (os.getenv("HOME") or "/root") .. "/.kube/config")
  inputs.need_file(ctx, "admin_kubeconfig", path)
  local allow = require("kcm.value").bool(var(ctx, "allow_insecure_kubeconfig"), "allow_insecure_kubeconfig") == true
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

-- step "rbac": kubectl create clusterrolebinding ... (idempotent, through the API)
function M:apply_rbac(ctx)
  if not self.rbac then return end
  local path, allow = M.admin_kubeconfig(ctx)
  local c = require("kcm.kube").client { kubeconfig = path, allow_insecure = allow }
  c:apply("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion = "rbac.authorization.k8s.io/v1",
    kind = "ClusterRoleBinding",
    metadata = { name = self.rbac.name },
    roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = self.rbac.clusterrole },
    subjects = { { apiGroup = "rbac.authorization.k8s.io", kind = "User", name = self.user } },
  })
end

return M
