-- kube-scheduler, deployed like the controller manager: the component's
-- description, then the shared steps (certificate, kubeconfig, binary, unit,
-- start, verify, leader, ha-test). Variables as in controller-manager.lua,
-- with scheduler_binary / scheduler_version.
local kcm = require "kcm"
local component = require "kcm.component"

local scheduler = component.new {
  name = "kube-scheduler",
  user = "system:kube-scheduler",
  lease = "kube-scheduler",
  template = "templates/kube-scheduler.service.in",
  secure_port = function() return 10259 end,
  rbac = { name = "scheduler:system:auth-delegator", clusterrole = "system:auth-delegator" },
  binary_var = "scheduler_binary",
  version_var = "scheduler_version",
}

local play = kcm.playbook { name = "kube-scheduler", hosts = "masters" }
return scheduler:add_steps(play)
