-- 部署高可用 kube-controller-manager 集群: the procedure of
-- docs/procedure/kube-controller-manager-ha.md, every section a step, run on all
-- masters in parallel; restarts roll one master at a time, the Lease holder last.
--
--   kcmrun -i inventory.lua playbooks/controller-manager.lua
--   kcmrun -i environment.sh playbooks/controller-manager.lua -e kcm_binary=/opt/k8s/work/kube-controller-manager
--   kcmrun ... --only ha-test            (or -e ha_test=true after a deployment)
--
-- Variables (inventory vars, environment.sh or -e): KUBE_APISERVER, K8S_DIR,
-- SERVICE_CIDR, ca_cert, ca_key, ca_config (default /opt/k8s/work/*),
-- admin_kubeconfig (default ~/.kube/config), kcm_binary (local binary to
-- install), kcm_version (else read from the binary), bind_address (default:
-- the node's address), log_level, kube_controller_manager_extra_flags, work_dir.
local kcm = require "kcm"
local component = require "kcm.component"
local kube = require "kcm.component.kube"

local controller_manager = component.new {
  name = "kube-controller-manager",
  user = "system:kube-controller-manager",          -- CN and O of its certificate
  ca_key_on_nodes = true,                           -- --cluster-signing-key-file needs the CA key
  lease = "kube-controller-manager",                -- kube-system/kube-controller-manager
  template = "templates/kube-controller-manager.service.in",
  values = kube.values,                             -- version-dependent flags, secure port
  secure_port = function(v) return v.minor <= 23 and 10252 or 10257 end,
  rbac = { name = "controller-manager:system:auth-delegator", clusterrole = "system:auth-delegator" },
  binary_var = "kcm_binary",
  version_var = "kcm_version",
  checks = kube,                                    -- /metrics, Lease leader, HA test
  -- subject (C=CN, ST=BeiJing, L=BeiJing, OU=4Paradigm) and layout (/etc/kubernetes,
  -- /opt/k8s/bin, /data/k8s/k8s): the guide's, component.GUIDE; set them here to change them
}
local parts = controller_manager:parts()          -- its steps' functions, for play:step

local play = kcm.playbook { name = "kube-controller-manager", hosts = "masters" }

-- 创建 kube-controller-manager 证书和私钥 (cfssl gencert -profile=kubernetes |
-- cfssljson -bare), then scp kube-controller-manager*.pem (and the CA) to every master.
play:step("certificate", { notify = "restart", prepare = parts.issue_certificate }, parts.put_certificate)

-- 创建和分发 kubeconfig 文件 (kubectl config set-cluster / set-credentials /
-- set-context / use-context, embedded certs), scp to /etc/kubernetes/.
play:step("kubeconfig", { notify = "restart", prepare = parts.build_kubeconfig }, parts.put_kubeconfig)

-- 准备工作: the binary in /opt/k8s/bin, only when its checksum differs.
play:step("binary", { notify = "restart" }, parts.put_binary)

-- 创建和分发 systemd unit 文件: the heredoc, as a template; flags follow the version.
play:step("unit", { notify = "restart", prepare = parts.compile_template }, parts.put_unit)

-- kube-controller-manager 的权限: kubectl create clusterrolebinding
-- controller-manager:system:auth-delegator --user system:kube-controller-manager
-- --clusterrole system:auth-delegator
play:step("rbac", { once = true }, parts.apply_rbac)

-- 启动 kube-controller-manager 服务: daemon-reload, enable, start every master
-- not running (at once, not waiting: verify waits)
play:step("start", parts.start_nowait)

-- a changed flag, certificate, kubeconfig or binary: restart the running
-- masters one at a time, the Lease holder last (so the roll moves the Lease
-- once), each verified before the next (component.rolling)
play:step("restart", component.rolling(parts), parts.rolling_restart)

-- 检查服务运行状态 + 查看输出的 metric: active (running), port listening,
-- /metrics with the admin certificate.
play:step("verify", parts.verify)

-- 查看当前的 leader
play:step("leader", { once = true }, parts.show_leader)

-- 测试 kube-controller-manager 集群的高可用 (only when asked: -e ha_test=true or --only ha-test)
play:step("ha-test", { once = true, optional = true, when = component.asked("ha_test") }, parts.ha_test)

return play
