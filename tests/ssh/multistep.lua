-- A multi-step playbook touching every primitive; each step records
-- $SSH_CONNECTION so the driver can prove one connection per node.
local kcm = require "kcm"
local play = kcm.playbook { name = "ssh-multistep", hosts = "all" }
local R = os.getenv("KCM_SSH_REMOTE") or "/tmp/kcm-ssh-multistep"

local function mark(node, step)
  node:run("echo \"" .. step .. " $SSH_CONNECTION\" >> " .. R .. "/conn-" .. node.name)
end

play:step("prepare", function(node)
  node:mkdir(R, { mode = "0755" })
  node:run({ "rm", "-f", R .. "/conn-" .. node.name })
  mark(node, "prepare")
end)
play:step("put", function(node)
  node:put({ content = "hello " .. node.name .. "\n" }, R .. "/f-" .. node.name, { mode = "0600" })
  mark(node, "put")
end)
play:step("inspect", function(node)
  assert(node:get(R .. "/f-" .. node.name) == "hello " .. node.name .. "\n")
  assert(node:stat(R .. "/f-" .. node.name).mode == tonumber("600", 8))
  mark(node, "inspect")
end)
play:step("cleanup", function(node)
  node:remove(R .. "/f-" .. node.name)
  mark(node, "cleanup")
end)
return play
