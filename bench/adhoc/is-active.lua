-- What `kcmrun run all -- systemctl is-active ssh` does, as the 9-line
-- playbook an operator would write instead (bench/adhoc/run.sh times both).
local kcm = require "kcm"
local play = kcm.playbook { name = "is-active", hosts = "all" }
play:step("is-active", function(node)
  local r = node:run({ "systemctl", "is-active", "ssh" })
  print(node.name .. ": " .. r.stdout:gsub("\n$", ""))
end)
return play
