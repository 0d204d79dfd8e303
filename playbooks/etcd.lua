-- 04.部署etcd集群: a three-member etcd cluster with TLS for clients and
-- peers (opsnull/follow-me-install-kubernetes-cluster), every section a step.
--
--   kcmrun -i inventory.lua playbooks/etcd.lua
--   kcmrun -i inventory.lua --only ha-test playbooks/etcd.lua
--
-- Variables: ca_cert, ca_key, ca_config (the cluster CA), etcd_binary and
-- etcdctl_binary (local binaries to install), ETCD_DATA_DIR, ETCD_WAL_DIR,
-- etcd_extra_flags, work_dir (where the certificate is issued),
-- etcd_remove_members (true: members gone from the group are removed from the
-- cluster), rolling_order (inventory: restarts in inventory order, not leader
-- last), etcd_health_timeout. The group `etcd` of the inventory lists the members.
local kcm = require "kcm"
local component = require "kcm.component"
local checks = require "kcm.component.etcd"

local etcd = component.new {
  name = "etcd",
  template = "templates/etcd.service.in",
  cert = { CN = "etcd", O = "k8s" },                    -- hosts: 127.0.0.1 + every member
  layout = { cert_dir = "/etc/etcd/cert" },             -- the rest as the guide's (component.GUIDE)
  binaries = { { name = "etcd", var = "etcd_binary" }, { name = "etcdctl", var = "etcdctl_binary" } },
  values = checks.values,          -- NODE_NAME, NODE_IP, ETCD_NODES, ETCD_DATA_DIR, ...
  dirs = checks.dirs, dir_mode = "0700",
  checks = checks,                 -- /health, endpoint status, HA test
}
local parts = etcd:parts()         -- its steps' functions, for play:step

local play = kcm.playbook { name = "etcd", hosts = "etcd" }

-- 下载和分发 etcd 二进制文件: etcd and etcdctl to /opt/k8s/bin (when they differ)
play:step("binary", { notify = "restart" }, parts.put_binary)

-- (before anything changes on the nodes) the running cluster's members made to match the group: a member whose
-- data folder is empty is removed and added again, a new node of the group
-- is added (both start with initial-cluster-state=existing); a member not in
-- the group is removed only with -e etcd_remove_members=true, never below quorum
play:step("member", { once = true }, parts.reconcile_members)

-- 创建 etcd 证书和私钥 (cfssl gencert -profile=kubernetes etcd-csr.json), then
-- 分发生成的证书和私钥到各 etcd 节点: etcd.pem, etcd-key.pem, ca.pem to /etc/etcd/cert
play:step("certificate", { notify = "restart", prepare = parts.issue_certificate }, parts.put_certificate)

-- 创建 etcd 的 systemd unit 模板文件, 为各节点创建和分发 etcd systemd unit 文件;
-- mkdir -p ${ETCD_DATA_DIR} ${ETCD_WAL_DIR}
play:step("unit", { notify = "restart", prepare = parts.compile_template }, parts.put_unit)

-- 启动 etcd 服务: daemon-reload, enable, and every stopped member started at
-- once without waiting (the first start of a member waits for a quorum)
play:step("start", parts.start_nowait)

-- a changed flag, certificate or binary: restart the running members one at
-- a time, followers first and the leader last (leadership handed to the most
-- caught-up follower just before its stop); none stopped unless the cluster
-- tolerates its loss; the next one only once the restarted member is healthy,
-- caught up with the leader's raft index, and one more failure is tolerated
play:step("restart", component.rolling(parts), parts.rolling_restart)

-- 验证服务状态: etcdctl endpoint health, for every endpoint (waits, bounded)
play:step("health", { once = true }, parts.healthy)

-- 检查启动结果: systemctl status etcd | grep Active
play:step("verify", parts.verify)

-- 查看当前的 leader: etcdctl endpoint status -w table
play:step("leader", { once = true }, parts.show_leader)

-- the HA test (only when asked: --only ha-test or -e ha_test=true)
play:step("ha-test", { once = true, optional = true, when = component.asked("ha_test") }, parts.ha_test)

return play
