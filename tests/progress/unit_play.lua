-- A gate on the lab's nodes: every node waits until the unit -e unit=NAME is
-- active (kcm.systemd wait_active); the test starts it late on node2 only.
local kcm = require "kcm"
local systemd = require "kcm.systemd"

local play = kcm.playbook { name = "progress-unit", hosts = "all" }

play:step("wait", function(node, ctx)
  systemd.unit(node, ctx.vars.unit):wait_active(40, 0)
end)

return play
