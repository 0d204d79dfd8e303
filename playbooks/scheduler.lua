-- 部署高可用 kube-scheduler 集群: the same shape as the controller manager's
-- procedure (docs/procedure/kube-controller-manager-ha.md), every section a
-- step, run on all masters in parallel; restarts roll one master at a time,
-- the Lease holder last.
--
--   kcmrun -i inventory.lua playbooks/scheduler.lua [-e scheduler_binary=PATH]
--
-- Variables as in controller-manager.lua, with scheduler_binary and
-- scheduler_version. No CA key on the nodes: its unit signs nothing.
local kcm = require "kcm"
local component = require "kcm.component"
local kube = require "kcm.component.kube"

local scheduler = component.new {
  name = "kube-scheduler",
  user = "system:kube-scheduler",                   -- CN and O of its certificate
  lease = "kube-scheduler",                         -- kube-system/kube-scheduler
  template = "templates/kube-scheduler.service.in",
  values = kube.values,
  secure_port = function() return 10259 end,
  rbac = { name = "scheduler:system:auth-delegator", clusterrole = "system:auth-delegator" },
  binary_var = "scheduler_binary",
  version_var = "scheduler_version",
  checks = kube,                                    -- /metrics, Lease leader, HA test
}
local parts = scheduler:parts()                     -- its steps' functions, for play:step

local play = kcm.playbook { name = "kube-scheduler", hosts = "masters" }

-- 创建 kube-scheduler 证书和私钥, then scp kube-scheduler*.pem (and the CA) to every master
play:step("certificate", { notify = "restart", prepare = parts.issue_certificate }, parts.put_certificate)

-- 创建和分发 kubeconfig 文件 (embedded certs) to /etc/kubernetes/
play:step("kubeconfig", { notify = "restart", prepare = parts.build_kubeconfig }, parts.put_kubeconfig)

-- the binary in /opt/k8s/bin, only when its checksum differs
play:step("binary", { notify = "restart" }, parts.put_binary)

-- 创建 kube-scheduler systemd unit 模板文件, rendered per master
play:step("unit", { notify = "restart", prepare = parts.compile_template }, parts.put_unit)

-- its RBAC binding (system:auth-delegator)
play:step("rbac", { once = true }, parts.apply_rbac)

-- 启动 kube-scheduler 服务: every master not running, at once
play:step("start", parts.start_nowait)

-- a changed flag, certificate, kubeconfig or binary: the running masters one
-- at a time, the Lease holder last, each verified before the next
play:step("restart", component.rolling(parts), parts.rolling_restart)

-- 检查服务运行状态 + 查看输出的 metrics
play:step("verify", parts.verify)

-- 查看当前的 leader
play:step("leader", { once = true }, parts.show_leader)

-- 测试 kube-scheduler 集群的高可用 (only when asked: -e ha_test=true or --only ha-test)
play:step("ha-test", { once = true, optional = true, when = component.asked("ha_test") }, parts.ha_test)

return play
