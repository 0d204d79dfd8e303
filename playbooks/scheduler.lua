-- kube-scheduler, deployed like the controller manager: the component's
-- description, then the shared steps (certificate, kubeconfig, binary, unit,
-- rbac, start, verify, leader, ha-test). Variables as in controller-manager.lua,
-- with scheduler_binary / scheduler_version. No CA key on the nodes: its
-- unit does not sign anything.
local kcm = require "kcm"
local component = require "kcm.component"
local kube = require "kcm.component.kube"

local scheduler = component.new {
  name = "kube-scheduler",
  user = "system:kube-scheduler",
  lease = "kube-scheduler",
  template = "templates/kube-scheduler.service.in",
  values = kube.values,
  secure_port = function() return 10259 end,
  rbac = { name = "scheduler:system:auth-delegator", clusterrole = "system:auth-delegator" },
  binary_var = "scheduler_binary",
  version_var = "scheduler_version",
  checks = kube,
}

local play = kcm.playbook { name = "kube-scheduler", hosts = "masters" }
return scheduler:add_steps(play)
