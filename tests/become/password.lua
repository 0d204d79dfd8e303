-- become with a sudo that wants a password (deploypw), given through
-- become_password_file / become_password_env: the password goes on sudo's
-- stdin only, and never reaches the command's own stdin.
local kcm = require "kcm"
local play = kcm.playbook { name = "become-password", hosts = "masters" }

local function eq(a, b, what)
  if a ~= b then error(string.format("%s: got %q, want %q", what, tostring(a), tostring(b)), 2) end
end

play:step("sudo", function(node)
  eq(node:run({ "id", "-u" }).stdout, "0\n", "run as root")
  eq(node:run({ "cat" }, { stdin = "only this" }).stdout, "only this", "the command's stdin is its own")
  eq(node:run({ "cat" }).stdout, "", "no stdin: the command reads nothing")
  eq(node:stat("/etc/shadow").uid, 0, "stat through sudo")
  assert(node:get("/etc/shadow"):find("deploypw:", 1, true), "get of a root-only file")
  eq(node:mkdir("/etc/kcm-become-pw/x"), true, "mkdir")
  eq(node:remove("/etc/kcm-become-pw", { recursive = true }), true, "remove")
end)

return play
