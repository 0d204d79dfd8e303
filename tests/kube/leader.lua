-- Prints the current leader of a lease as "holder transitions source" (or "none"),
-- for the shell tests. Env: ADMIN_KUBECONFIG or KUBE_TEST_DIR, LEASE (default kube-controller-manager).
local kube = require "kcm.kube"
local c = kube.client { kubeconfig = os.getenv("ADMIN_KUBECONFIG") or (os.getenv("KUBE_TEST_DIR") .. "/admin.kubeconfig") }
local l = c:leader(os.getenv("LEASE") or "kube-controller-manager", "kube-system")
if not l then print("none") return end
print(string.format("%s %d %s %s", l.holderIdentity or "-", l.leaseTransitions, l.source, tostring(l.renewTime)))
