-- kcm.kube against the apiserver stand-in: CRUD, apply idempotency, Status
-- errors with their reasons (NotFound, AlreadyExists, Conflict, Forbidden),
-- anonymous requests, leader() from a Lease and from the Endpoints annotation.
local kube = require "kcm.kube"
local fs = require "kcm.native.fs"

local dir = assert(os.getenv("KUBE_TEST_DIR"), "run me through with_apiserver.sh")
local server = assert(os.getenv("KUBE_APISERVER"))
local function read(name) return assert(fs.read(dir .. "/" .. name)) end

local function expect_error(reason, fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected " .. reason .. ", got success")
  assert(kube.is_error(e), "not a kube error: " .. tostring(e))
  assert(e.reason == reason, "expected " .. reason .. ", got " .. tostring(e))
  return e
end

local c = kube.client { kubeconfig = dir .. "/admin.kubeconfig" }

-- CRUD on configmaps
local cms = "/api/v1/namespaces/default/configmaps"
local created = c:create(cms, { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "t1" }, data = { a = "1" } })
assert(created.metadata.uid and created.metadata.resourceVersion and created.data.a == "1")
local e = expect_error("AlreadyExists", c.create, c, cms, { metadata = { name = "t1" }, data = { a = "2" } })
assert(e.code == 409 and e.status_message == 'configmaps "t1" already exists', tostring(e))
assert(tostring(e):find("POST " .. server .. cms, 1, true), tostring(e))
local got = c:get(cms .. "/t1")
assert(got.data.a == "1" and got.metadata.uid == created.metadata.uid)
got.data.b = "2"
local upd = c:update(cms .. "/t1", got)
assert(upd.data.b == "2" and upd.metadata.resourceVersion ~= created.metadata.resourceVersion)
-- stale resourceVersion: Conflict with the apiserver's words
got.data.c = "3"
e = expect_error("Conflict", c.update, c, cms .. "/t1", got)
assert(e.code == 409 and e.status_message:find("the object has been modified", 1, true), tostring(e))
local p = c:patch(cms .. "/t1", { data = { a = "patched", c = "x" } })
assert(p.data.a == "patched" and p.data.b == "2" and p.data.c == "x")
p = c:patch(cms .. "/t1", { data = { c = require("cjson").null } }, "strategic")
assert(p.data.c == nil and p.data.b == "2")
p = c:patch(cms .. "/t1", { { op = "remove", path = "/data/b" } }, "json")
assert(p.data.b == nil and p.data.a == "patched")
local items = c:list(cms)
assert(#items == 1 and items[1].metadata.name == "t1", #items)
c:delete(cms .. "/t1")
e = expect_error("NotFound", c.get, c, cms .. "/t1")
assert(e.code == 404 and e.status_message == 'configmaps "t1" not found')
expect_error("NotFound", c.delete, c, cms .. "/t1")
assert(#c:list(cms) == 0)

-- apply: create, then no change, then a real change, then no change again
local crbs = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
local function binding(user, role)
  return { apiVersion = "rbac.authorization.k8s.io/v1", kind = "ClusterRoleBinding",
           metadata = { name = "controller-manager:system:auth-delegator" },
           roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = role },
           subjects = { { apiGroup = "rbac.authorization.k8s.io", kind = "User", name = user } } }
end
local changed, obj = c:apply(crbs, binding("system:kube-controller-manager", "system:auth-delegator"))
assert(changed == true and obj.metadata.uid, "first apply must create")
local rv = obj.metadata.resourceVersion
changed, obj = c:apply(crbs, binding("system:kube-controller-manager", "system:auth-delegator"))
assert(changed == false and obj.metadata.resourceVersion == rv, "second apply must change nothing")
changed, obj = c:apply(crbs, binding("someone-else", "system:auth-delegator"))
assert(changed == true and obj.subjects[1].name == "someone-else")
changed = c:apply(crbs, binding("someone-else", "system:auth-delegator"))
assert(changed == false)
-- roleRef cannot be updated: apply replaces the binding
changed, obj = c:apply(crbs, binding("someone-else", "system:basic-user"))
assert(changed == true and obj.roleRef.name == "system:basic-user")
assert(c:get(crbs .. "/controller-manager:system:auth-delegator").roleRef.name == "system:basic-user")
changed = c:apply(crbs, binding("system:kube-controller-manager", "system:auth-delegator"))
assert(changed == true)
-- creating it again the kubectl way: AlreadyExists
expect_error("AlreadyExists", c.create, c, crbs, binding("x", "system:auth-delegator"))
-- list sees it among the bootstrap bindings
local names = {}
for _, b in ipairs(c:list(crbs)) do names[b.metadata.name] = true end
assert(names["controller-manager:system:auth-delegator"] and names["cluster-admin"])

-- Forbidden: an authenticated user without bindings, and the anonymous user
local alice = kube.client { server = server, ca_pem = read("ca.pem"), cert_pem = read("alice.pem"),
                            key_pem = read("alice-key.pem") }
e = expect_error("Forbidden", alice.get, alice, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x")
assert(e.code == 403 and e.status_message == 'leases.coordination.k8s.io "x" is forbidden: User "alice" ' ..
       'cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "kube-system"',
       e.status_message)
e = expect_error("Forbidden", alice.create, alice, crbs, binding("alice", "cluster-admin"))
assert(e.status_message:find('User "alice" cannot create resource "clusterrolebindings" in API group ' ..
       '"rbac.authorization.k8s.io" at the cluster scope', 1, true), e.status_message)
assert(alice:get("/version").gitVersion)      -- public info is public
local anon = kube.client { server = server, ca_pem = read("ca.pem") }
e = expect_error("Forbidden", anon.list, anon, "/api/v1/namespaces")
assert(e.status_message:find('User "system:anonymous"', 1, true), e.status_message)

-- the kcm's SubjectAccessReview: forbidden without the auth-delegator binding
local kcm = kube.client { kubeconfig = dir .. "/kcm.kubeconfig" }
local sar = { apiVersion = "authorization.k8s.io/v1", kind = "SubjectAccessReview",
              spec = { user = "admin", groups = { "system:masters" },
                       nonResourceAttributes = { path = "/metrics", verb = "get" } } }
local sars = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
local r = kcm:request("POST", sars, sar)
assert(r.status.allowed == true)
c:delete(crbs .. "/controller-manager:system:auth-delegator")
e = expect_error("Forbidden", kcm.request, kcm, "POST", sars, sar)
assert(e.status_message == 'subjectaccessreviews.authorization.k8s.io is forbidden: User ' ..
       '"system:kube-controller-manager" cannot create resource "subjectaccessreviews" in API group ' ..
       '"authorization.k8s.io" at the cluster scope', e.status_message)

-- leases: resourceVersion, Conflict on a stale update, leader()
local leases = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
assert(c:leader("kube-controller-manager") == nil)
local lease = c:create(leases, { apiVersion = "coordination.k8s.io/v1", kind = "Lease",
  metadata = { name = "kube-controller-manager" },
  spec = { holderIdentity = "node1_1b4e28ba-2fa1-11d2-883f-0016d3cca427", leaseDurationSeconds = 15,
           acquireTime = "2024-01-01T00:00:00.000000Z", renewTime = "2024-01-01T00:00:10.000000Z",
           leaseTransitions = 3 } })
local l = c:leader("kube-controller-manager", "kube-system")
assert(l.source == "lease" and l.holderIdentity == "node1_1b4e28ba-2fa1-11d2-883f-0016d3cca427")
assert(l.leaseDurationSeconds == 15 and l.leaseTransitions == 3 and l.renewTime == "2024-01-01T00:00:10.000000Z")
local stale = c:get(leases .. "/kube-controller-manager")
lease.spec.holderIdentity = "node2_x"
c:update(leases .. "/kube-controller-manager", lease)
stale.spec.holderIdentity = "node3_y"
expect_error("Conflict", c.update, c, leases .. "/kube-controller-manager", stale)
assert(c:leader("kube-controller-manager").holderIdentity == "node2_x")
-- the kcm user may work on its own lease only
expect_error("Forbidden", kcm.get, kcm, leases .. "/kube-scheduler")
assert(kcm:get(leases .. "/kube-controller-manager").spec.holderIdentity == "node2_x")

-- old clusters: the Endpoints annotation
c:create("/api/v1/namespaces/kube-system/endpoints", { metadata = { name = "kube-scheduler", annotations = {
  ["control-plane.alpha.kubernetes.io/leader"] = '{"holderIdentity":"m7-autocv-gpu02_084534e2-6cc4-11e8-a418-5254001f5b65",' ..
    '"leaseDurationSeconds":15,"acquireTime":"2018-06-10T15:40:33Z","renewTime":"2018-06-10T16:19:08Z","leaderTransitions":12}' } } })
l = c:leader("kube-scheduler", "kube-system")
assert(l.source == "endpoints" and l.holderIdentity:match("^m7%-autocv%-gpu02_") and l.leaseTransitions == 12)
assert(l.renewTime == "2018-06-10T16:19:08Z" and l.leaseDurationSeconds == 15)

-- a kubeconfig that skips TLS verification is refused unless asked for
local kc = assert(fs.read(dir .. "/admin.kubeconfig"))
local insecure = dir .. "/insecure.kubeconfig"
fs.write(insecure, (kc:gsub("certificate%-authority%-data: %S+", "insecure-skip-tls-verify: true")),
         { mode = tonumber("600", 8) })
local ok, err = pcall(kube.client, { kubeconfig = insecure })
assert(not ok and tostring(err):find("insecure-skip-tls-verify", 1, true), tostring(err))
assert(kube.client({ kubeconfig = insecure, allow_insecure = true }):get("/version").gitVersion)

-- reads are retried, then the transport error surfaces with the URL
local dead = kube.client { server = "https://127.0.0.1:1", ca_pem = read("ca.pem"), retries = 2, backoff = 0.01 }
ok, err = pcall(dead.get, dead, "/version")
assert(not ok and not kube.is_error(err) and tostring(err):find("https://127.0.0.1:1/version", 1, true), tostring(err))

-- state survives an apiserver restart: checked by the shell wrapper after this script
c:apply("/api/v1/namespaces/default/configmaps", { metadata = { name = "persisted" }, data = { k = "v" } })
print("kube: ok")
