-- 部署高可用 kube-controller-manager 集群: the procedure of
-- shared/seed/kube-controller-manager-ha.md, every section a step, run on all
-- masters in parallel.
--
--   kcmrun -i inventory.lua playbooks/controller-manager.lua
--   kcmrun -i environment.sh playbooks/controller-manager.lua -e kcm_binary=/opt/k8s/work/kube-controller-manager
--   kcmrun ... --only ha-test            (or -e ha_test=true after a deployment)
--
-- Variables (inventory vars, environment.sh or -e): KUBE_APISERVER, K8S_DIR,
-- SERVICE_CIDR, ca_cert, ca_key, ca_config (default /opt/k8s/work/*),
-- admin_kubeconfig (default ~/.kube/config), kcm_binary (local binary to
-- install), kcm_version (else read from the binary), bind_address (default:
-- the node's address), log_level, kube_controller_manager_extra_flags.
local kcm = require "kcm"
local component = require "kcm.component"

local kcm_component = component.new {
  name = "kube-controller-manager",
  user = "system:kube-controller-manager",          -- CN and O of its certificate
  lease = "kube-controller-manager",                -- kube-system/kube-controller-manager
  template = "templates/kube-controller-manager.service.in",
  secure_port = function(v) return v.minor <= 23 and 10252 or 10257 end,
  rbac = { name = "controller-manager:system:auth-delegator", clusterrole = "system:auth-delegator" },
  binary_var = "kcm_binary",
  version_var = "kcm_version",
}
local C = kcm_component

local play = kcm.playbook { name = "kube-controller-manager", hosts = "masters" }

-- 创建 kube-controller-manager 证书和私钥 (cfssl gencert -profile=kubernetes |
-- cfssljson -bare), then scp kube-controller-manager*.pem to every master.
play:step("certificate", { notify = "restart", prepare = function(ctx) C:issue_certificate(ctx) end },
  function(node, ctx) C:put_certificate(node, ctx) end)

-- 创建和分发 kubeconfig 文件 (kubectl config set-cluster / set-credentials /
-- set-context / use-context, embedded certs), scp to /etc/kubernetes/.
play:step("kubeconfig", { notify = "restart", prepare = function(ctx)
    if not (ctx[C.name] and ctx[C.name].cert) then C:issue_certificate(ctx) end
    C:build_kubeconfig(ctx)
  end },
  function(node, ctx) C:put_kubeconfig(node, ctx) end)

-- 准备工作: the binary in /opt/k8s/bin, only when its checksum differs.
play:step("binary", { notify = "restart" }, function(node, ctx) C:put_binary(node, ctx) end)

-- 创建和分发 systemd unit 文件: the heredoc, as a template; flags follow the version.
play:step("unit", { notify = "restart", prepare = function(ctx) C:compile_template(ctx) end },
  function(node, ctx) C:put_unit(node, ctx) end)

-- kube-controller-manager 的权限: kubectl create clusterrolebinding
-- controller-manager:system:auth-delegator --user system:kube-controller-manager
-- --clusterrole system:auth-delegator
play:step("rbac", { once = true }, function(ctx) C:apply_rbac(ctx) end)

-- 启动 kube-controller-manager 服务: mkdir the working dir, daemon-reload, enable,
-- restart (only where something it uses changed).
play:step("start", { handles = "restart" }, function(node, ctx, step) C:start(node, ctx, step) end)

-- 检查服务运行状态 + 查看输出的 metric: active (running), port listening,
-- /metrics with the admin certificate.
play:step("verify", function(node, ctx) C:verify(node, ctx) end)

-- 查看当前的 leader
play:step("leader", { once = true }, function(ctx) if not ctx.check then C:show_leader(ctx) end end)

-- 测试 kube-controller-manager 集群的高可用 (only when asked: -e ha_test=true or --only ha-test)
play:step("ha-test", { once = true, optional = true,
                       when = function(ctx) return ctx.vars.ha_test == true or ctx.vars.ha_test == "true" end },
  function(ctx) C:ha_test(ctx) end)

return play
