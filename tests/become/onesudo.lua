-- A run as deploypw (sudo asks a password) whose commands have no stdin:
-- the connection's watcher is its one sudo; commands run through it and
-- the file session is started by it (engine/ssh_agent.c, ssh_files.c).
local kcm = require "kcm"
local play = kcm.playbook { name = "become-onesudo", hosts = "masters" }

play:step("ops", function(node)
  assert(node:run({ "id", "-u" }).stdout == "0\n", "run as root")
  assert(node:run("echo $((6 * 7))").stdout == "42\n", "a shell command")
  assert(node:get("/etc/shadow"):find("deploypw:", 1, true), "get of a root-only file")
  node:put({ content = "x\n" }, "/etc/kcm-onesudo/f", { mode = "0600" })
  assert(node:stat("/etc/kcm-onesudo/f").uid == 0, "a put owned by root")
  assert(node:remove("/etc/kcm-onesudo", { recursive = true }), "remove")
end)

return play
