-- A Kubernetes API client over the http module: what the procedure does with
-- `kubectl create clusterrolebinding` and `kubectl get endpoints -o yaml`.
--
--   local kube = require "kcm.kube"
--   local c = kube.client { kubeconfig = "admin.kubeconfig" [, context = "x"] [, allow_insecure = true] }
--   local c = kube.client { server = "https://...:6443", ca_pem = , cert_pem = , key_pem = [, token = ] }
--   c:get(path) -> obj                      c:list(path) -> items, list
--   c:create(path, obj) -> obj              c:update(path, obj) -> obj
--   c:patch(path, obj [, "merge"|"strategic"|"json"]) -> obj
--   c:delete(path) -> status
--   c:apply(collection_path, obj) -> changed, obj
--   c:leader(name [, namespace]) -> { holderIdentity, leaseDurationSeconds, acquireTime,
--                                     renewTime, leaseTransitions, source = "lease"|"endpoints" } | nil
--
-- A non-2xx reply raises a kube error: a table with code, reason (NotFound,
-- AlreadyExists, Conflict, Forbidden, Unauthorized, Invalid, ...), message
-- (the apiserver's words), details, method, url; tostring() gives one line.
-- kube.is_error(e [, reason]) tells them apart from other errors.
-- Reads are retried with backoff on connection errors and 5xx/429; writes
-- are not (a retried POST could act twice). Writes go through
-- kcm.target.change like every target's: in --check nothing is written and
-- the change is reported.
local http = require "kcm.native.http"
local target = require "kcm.target"
local E = require "kcm.error"
local cjson = require "cjson"
local task = require "kcm.task"

local M = {}

-- The run's policy for credentials over http:// (the runner sets it from the
-- inventory's allow_insecure_http); a client's own allow_insecure_http wins.
M.allow_insecure_http = false

local REASONS = {
  [400] = "BadRequest", [401] = "Unauthorized", [403] = "Forbidden", [404] = "NotFound",
  [405] = "MethodNotAllowed", [406] = "NotAcceptable", [409] = "Conflict", [410] = "Expired",
  [415] = "UnsupportedMediaType", [422] = "Invalid", [429] = "TooManyRequests",
  [500] = "InternalError", [503] = "ServiceUnavailable", [504] = "Timeout",
}

-- An apiserver's refusal is the one error object too (kind "api"), with
-- the Status it answered: code, reason, status_message, details.
local function kube_error(method, url, code, reason, message, details)
  return E.new { kind = "api", op = method, path = url, code = code, reason = reason,
                 status_message = message, details = details, method = method, url = url,
                 message = string.format("%s %s: %s (%d): %s", method, url, reason, code, message) }
end

--- Is `e` an error from the apiserver (optionally with this reason)?
function M.is_error(e, reason)
  return E.is(e, "api") and (reason == nil or e.reason == reason)
end

function M.is_not_found(e) return M.is_error(e, "NotFound") end

local Client = {}
Client.__index = Client

--- kube.client{kubeconfig=, context=, allow_insecure=} or {server=, ca_pem=, cert_pem=, key_pem=, token=}
function M.client(opts)
  assert(type(opts) == "table", "kube.client: expects a table of options")
  local c = setmetatable({ timeout = opts.timeout or 30, connect_timeout = opts.connect_timeout or 10,
                           retries = opts.retries or 4, backoff = opts.backoff or 0.25 }, Client)
  if opts.kubeconfig then
    local r = require("kcm.kubeconfig").resolve(opts.kubeconfig, opts.context)
    if r.insecure and not opts.allow_insecure then
      error(string.format("kube: kubeconfig %s: cluster '%s' sets insecure-skip-tls-verify; refusing to " ..
                          "talk to it without verifying the server (pass allow_insecure = true)",
                          tostring(opts.kubeconfig), tostring(r.cluster)), 2)
    end
    c.server, c.ca_pem, c.cert_pem, c.key_pem = r.server, r.ca_pem, r.client_cert_pem, r.client_key_pem
    c.token, c.insecure, c.namespace = r.token, r.insecure, r.namespace
    c.source = tostring(opts.kubeconfig)
  else
    if type(opts.server) ~= "string" or opts.server == "" then
      error("kube.client: give kubeconfig= or server=", 2)
    end
    c.server, c.ca_pem, c.cert_pem, c.key_pem = opts.server, opts.ca_pem, opts.cert_pem, opts.key_pem
    c.ca_file, c.cert_file, c.key_file = opts.ca_file, opts.cert_file, opts.key_file
    c.token, c.insecure = opts.token, opts.insecure and opts.allow_insecure or false
    c.source = opts.server
  end
  if (c.cert_pem == nil) ~= (c.key_pem == nil) then
    error("kube.client: a client certificate needs its key (and the other way round)", 2)
  end
  c.server = c.server:gsub("/+$", "")
  -- Credentials never travel in clear: an http:// server with a token or a
  -- client certificate is refused unless the operator allowed it (inventory
  -- allow_insecure_http = true), and then it is said on every run.
  if not c.server:lower():match("^https://") then
    local creds = (c.token and c.token ~= "" and "a bearer token") or ((c.cert_pem or c.cert_file) and "a client certificate")
    if creds then
      local allow = opts.allow_insecure_http
      if allow == nil then allow = M.allow_insecure_http end
      if not allow then
        error(string.format("kube: %s: server %s is plain http: refusing to send %s in clear. Use an https:// " ..
                            "server, or accept the risk with allow_insecure_http = true in the inventory",
                            c.source, c.server, creds), 2)
      end
      task.warn(string.format("kube: %s: sending %s over plain http to %s (allow_insecure_http = true)",
                              c.source, creds, c.server))
      c.insecure_http = true
    end
  end
  return c
end

local function decode(body)
  if body == nil or body == "" then return nil end
  local ok, v = pcall(cjson.decode, body)
  if ok then return v end
  return nil
end

local function is_read(method) return method == "GET" or method == "HEAD" end

--- One API call. Returns the decoded reply (or nil for an empty body) and the
--- HTTP status; raises a kube error on a non-2xx reply.
function Client:request(method, path, body, opts)
  opts = opts or {}
  local url = self.server .. path
  local headers = { ["Accept"] = "application/json", ["User-Agent"] = "kcmrun" }
  local payload
  if body ~= nil then
    payload = type(body) == "string" and body or cjson.encode(body)
    headers["Content-Type"] = opts.content_type or "application/json"
  end
  if self.token and self.token ~= "" then headers["Authorization"] = "Bearer " .. self.token end
  local req = {
    method = method, url = url, headers = headers, body = payload,
    ca_pem = self.ca_pem, cert_pem = self.cert_pem, key_pem = self.key_pem,
    ca_file = self.ca_file, cert_file = self.cert_file, key_file = self.key_file,
    insecure = self.insecure or nil, insecure_http = self.insecure_http or nil, timeout = opts.timeout or self.timeout,
    connect_timeout = self.connect_timeout,
  }
  local retry = is_read(method) or opts.idempotent
  local attempts = retry and self.retries or 1
  local r, err
  local rt = require "kcm.native.runtime"
  local t0 = rt.now()
  task.retry { attempts = attempts, interval = self.backoff, backoff = 2, what = method .. " " .. url,
               on_retry = function(_, wait)
                 task.log(string.format("kube: %s %s: %s; retrying in %.2fs", method, url,
                                        err and tostring(err) or ("HTTP " .. tostring(r and r.status)), wait))
               end } (function()
    local res, msg, kind = http.request(req)
    if res then
      r, err = res, nil
      return not (retry and (res.status >= 500 or res.status == 429))
    end
    -- a certificate that does not verify will not verify on the next try
    if kind == "tls" then
      E.raise { kind = kind, op = method, path = url,
                message = msg .. " (check that the kubeconfig's certificate-authority signed the apiserver's certificate)" }
    end
    r, err = nil, msg
    return false
  end)
  if not r then
    -- the apiserver never answered: say so, and that it was retried
    local why = tostring(err):gsub("^" .. method .. " " .. url:gsub("%p", "%%%0") .. ": ", "")
    if attempts > 1 then
      error(string.format("%s %s: the apiserver did not answer (%d attempts over %.1fs, with backoff): %s",
                          method, url, attempts, rt.now() - t0, why), 0)
    end
    error(string.format("%s %s: the apiserver did not answer: %s", method, url, why), 0)
  end
  if r.status < 200 or r.status > 299 then
    local st = decode(r.body)
    if type(st) == "table" and st.kind == "Status" then
      error(kube_error(method, url, r.status, st.reason ~= cjson.null and st.reason or
                       REASONS[r.status] or "Unknown", tostring(st.message or ""), st.details), 0)
    end
    local text = (r.body or ""):gsub("%s+$", "")
    if #text > 400 then text = text:sub(1, 400) .. "..." end
    error(kube_error(method, url, r.status, REASONS[r.status] or "Unknown", text), 0)
  end
  return decode(r.body), r.status
end

function Client:get(path) return (self:request("GET", path)) end

function Client:list(path)
  local l = self:request("GET", path)
  return (l and l.items ~= cjson.null and l.items) or {}, l
end

-- The apiserver is a target like the nodes: every write goes through
-- kcm.target.change, which decides --check (nothing sent, the change
-- reported) and records the change.
function Client:create(path, obj)
  local res = obj
  target.change("create " .. path .. "/" .. tostring(obj.metadata and obj.metadata.name),
                function() res = self:request("POST", path, obj) end)
  return res
end

function Client:update(path, obj)
  local res = obj
  target.change("update " .. path, function() res = self:request("PUT", path, obj) end)
  return res
end

local PATCH_TYPES = {
  merge = "application/merge-patch+json",
  strategic = "application/strategic-merge-patch+json",
  json = "application/json-patch+json",
}

function Client:patch(path, obj, ptype)
  local ct = PATCH_TYPES[ptype or "merge"]
  if not ct then error("kube: patch type must be merge, strategic or json, not " .. tostring(ptype), 2) end
  local res = obj
  target.change("patch " .. path, function() res = self:request("PATCH", path, obj, { content_type = ct }) end)
  return res
end

function Client:delete(path)
  local res
  target.change("delete " .. path, function() res = self:request("DELETE", path) end)
  return res
end

-- Does `cur` already hold every field `want` sets? Maps are compared on the
-- keys `want` gives (the server adds defaults and metadata); arrays must match
-- element by element.
local function covers(want, cur)
  if type(want) ~= "table" then return want == cur end
  if type(cur) ~= "table" then return false end
  if #want > 0 then
    if #cur ~= #want then return false end
    for i = 1, #want do
      if not covers(want[i], cur[i]) then return false end
    end
    return true
  end
  for k, v in pairs(want) do
    if not covers(v, cur[k]) then return false end
  end
  return true
end
M._covers = covers

local function desired_differs(want, cur)
  for k, v in pairs(want) do
    if k == "metadata" then
      for mk in pairs({ labels = true, annotations = true }) do
        if v[mk] ~= nil and not covers(v[mk], (cur.metadata or {})[mk]) then return true end
      end
    elseif k ~= "kind" and k ~= "apiVersion" and k ~= "status" then
      if not covers(v, cur[k]) then return true end
    end
  end
  return false
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local o = {}
  for k, v in pairs(t) do o[k] = copy(v) end
  return o
end

--- create, or update only when the desired fields differ. Returns changed, obj.
function Client:apply(collection, obj)
  assert(type(obj) == "table" and type(obj.metadata) == "table" and obj.metadata.name,
         "kube.apply: the object needs metadata.name")
  local name = obj.metadata.name
  local path = collection:gsub("/+$", "") .. "/" .. name
  for _ = 1, 3 do
    local ok, cur = pcall(self.get, self, path)
    if not ok and not M.is_not_found(cur) then error(cur, 0) end
    if not ok then
      local res, exists = obj, false
      target.change("create " .. path, function()
        local cok, r = pcall(self.request, self, "POST", collection, obj)
        -- somebody created it meanwhile: compare against theirs
        if not cok and not M.is_error(r, "AlreadyExists") then error(r, 0) end
        if not cok then exists = true; return false end
        res = r
      end)
      if not exists then return true, res end
    elseif not desired_differs(obj, cur) then
      return false, cur
    else
      local done, res = false, cur
      target.change("update " .. path, function()
        local what
        done, res, what = self:_update(collection, path, obj, cur)
        return done and (what or true)
      end)
      if target.check() or done then return true, res end
      -- changed under us: read again and redo the comparison
    end
  end
  error(string.format("kube.apply %s: still conflicting after 3 attempts", path), 2)
end

-- The update half of apply (the change is recorded by target.change):
-- true, object[, what it did]; or false when the object changed under us
-- (Conflict).
function Client:_update(collection, path, obj, cur)
  -- A binding's roleRef cannot change: the apiserver refuses, so the
  -- binding is replaced (what `kubectl auth reconcile` does).
  if obj.roleRef and not covers(obj.roleRef, cur.roleRef) then
    self:request("DELETE", path)
    return true, self:request("POST", collection, obj), "replace " .. path .. " (roleRef changed)"
  end
  local new = copy(cur)
  for k, v in pairs(obj) do
    if k == "metadata" then
      for mk, mv in pairs(v) do new.metadata[mk] = copy(mv) end
      new.metadata.resourceVersion = cur.metadata.resourceVersion
    else
      new[k] = copy(v)
    end
  end
  local uok, res = pcall(self.request, self, "PUT", path, new)
  if uok then return true, res end
  if not M.is_error(res, "Conflict") then error(res, 0) end
  return false
end

local function nonnull(v)
  if v == cjson.null then return nil end
  return v
end

--- The current leader of a leader-elected component: the Lease, or on old
--- clusters the Endpoints annotation control-plane.alpha.kubernetes.io/leader.
function Client:leader(name, namespace)
  namespace = namespace or "kube-system"
  local ok, lease = pcall(self.get, self, string.format(
    "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", namespace, name))
  if ok and type(lease) == "table" then
    local s = nonnull(lease.spec) or {}
    return {
      holderIdentity = nonnull(s.holderIdentity),
      leaseDurationSeconds = nonnull(s.leaseDurationSeconds),
      acquireTime = nonnull(s.acquireTime),
      renewTime = nonnull(s.renewTime),
      leaseTransitions = nonnull(s.leaseTransitions) or 0,
      resourceVersion = lease.metadata and lease.metadata.resourceVersion,
      source = "lease",
    }
  end
  if not ok and not M.is_not_found(lease) then error(lease, 0) end
  local eok, ep = pcall(self.get, self, string.format("/api/v1/namespaces/%s/endpoints/%s", namespace, name))
  if not eok then
    if M.is_not_found(ep) then return nil end
    error(ep, 0)
  end
  local ann = ep.metadata and nonnull(ep.metadata.annotations)
  local raw = ann and nonnull(ann["control-plane.alpha.kubernetes.io/leader"])
  if not raw then return nil end
  local rec = decode(raw)
  if type(rec) ~= "table" then
    error(string.format("kube.leader: endpoints %s/%s: the leader annotation is not JSON", namespace, name), 2)
  end
  return {
    holderIdentity = nonnull(rec.holderIdentity),
    leaseDurationSeconds = nonnull(rec.leaseDurationSeconds),
    acquireTime = nonnull(rec.acquireTime),
    renewTime = nonnull(rec.renewTime),
    leaseTransitions = nonnull(rec.leaderTransitions) or 0,
    resourceVersion = ep.metadata.resourceVersion,
    source = "endpoints",
  }
end

return M
