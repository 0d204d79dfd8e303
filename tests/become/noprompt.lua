-- Become with a password where sudo never asks for it (a NOPASSWD rule, a
-- root login): the password goes nowhere. Not to the command's stdin, not
-- into its output, errors, -v lines or --log-json (test_become.sh greps).
local kcm = require "kcm"
local play = kcm.playbook { name = "become-no-prompt", hosts = "masters" }

local function eq(a, b, what)
  if a ~= b then error(string.format("%s: got %d bytes, want %q", what, #tostring(a), tostring(b)), 2) end
end

play:step("stdin", function(node)
  eq(node:run({ "id", "-u" }).stdout, "0\n", "run as root")
  eq(node:run({ "cat" }).stdout, "", "no stdin: cat reads nothing")
  eq(node:run({ "cat" }, { stdin = "mine" }).stdout, "mine", "the command's stdin is its own")
  eq(node:run({ "sh", "-c", 'cat; printf %s "$X"' }, { env = { X = "x" } }).stdout, "x", "env, then stdin")
  eq(node:get("/etc/hostname"), node:run({ "cat", "/etc/hostname" }).stdout, "get")
end)

-- a failing command echoes whatever reached its stdin into the FAILED line
play:step("fails", function(node)
  node:run({ "sh", "-c", 'cat >&2; echo "X=$X" >&2; exit 3' }, { env = { X = "x" } })
end)

return play
