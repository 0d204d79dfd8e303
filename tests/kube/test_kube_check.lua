-- kcm.kube in --check mode (run as `kcmrun --check`): nothing is written, apply
-- still says whether it would change something.
local kube = require "kcm.kube"
local task = require "kcm.task"
assert(task.check(), "run me with kcmrun --check")
local dir = assert(os.getenv("KUBE_TEST_DIR"), "run me through with_apiserver.sh")
local c = kube.client { kubeconfig = dir .. "/admin.kubeconfig" }
local cms = "/api/v1/namespaces/default/configmaps"
local crbs = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"

-- apply of a missing object: would create, creates nothing
local changed = c:apply(cms, { metadata = { name = "check-me" }, data = { a = "1" } })
assert(changed == true)
assert(not pcall(c.get, c, cms .. "/check-me"), "check mode created an object")
-- apply of an object that is already as desired: no change
local cur = c:get(crbs .. "/cluster-admin")
changed = c:apply(crbs, { metadata = { name = "cluster-admin" }, roleRef = cur.roleRef, subjects = cur.subjects })
assert(changed == false)
-- ... and of one that differs: would change, changes nothing
changed = c:apply(crbs, { metadata = { name = "cluster-admin" }, roleRef = cur.roleRef,
                          subjects = { { kind = "User", name = "mallory", apiGroup = "rbac.authorization.k8s.io" } } })
assert(changed == true)
local after = c:get(crbs .. "/cluster-admin")
assert(after.metadata.resourceVersion == cur.metadata.resourceVersion and after.subjects[1].name == "system:masters")
-- raw writes are skipped
c:create(cms, { metadata = { name = "check-me-too" } })
assert(not pcall(c.get, c, cms .. "/check-me-too"))
c:delete(crbs .. "/cluster-admin")
assert(c:get(crbs .. "/cluster-admin").metadata.uid == cur.metadata.uid)
-- reads still work
assert(#c:list(crbs) > 0)
print("kube check: ok")
