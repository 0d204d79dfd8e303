-- node:run{env=} values travel on stdin to a fixed wrapper, never on the
-- remote command line: while `sleep` runs with a secret in its environment,
-- no process on the node shows the secret in /proc/*/cmdline.
local T = require "sshtest"
local task = require "kcm.task"
local inv = T.inventory()
local SECRET = "s3cr3t-" .. string.format("%08x", math.random(0, 0x7fffffff)) .. " 'q' $(x)\nline2\\n"
local a = T.node(inv, 1, nil, { name = "env-a" })
local b = T.node(inv, 1, nil, { name = "env-b" })   -- a second connection to look with
local seen
-- the probe looks until it sees the command running (bounded), not after a
-- fixed pause: on a loaded machine the first connection may take a while
task.parallel {
  function() a:run({ "sleep", "6.25" }, { env = { KCM_SECRET = SECRET } }) end,
  function()
    for _ = 1, 40 do
      -- one cat over every cmdline (the host's sshd may see a busy machine's
      -- thousands of processes: a process per entry would outlast the sleep)
      local r = b:run({ "sh", "-c", 'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "' })
      seen = r.stdout
      if seen:find("sleep 6.25", 1, true) then break end
      task.sleep(0.1)
    end
  end,
}
assert(seen:find("sleep 6.25", 1, true), "the probe did not see the running command")
assert(not seen:find("s3cr3t", 1, true), "env value on a command line:\n" .. seen)
-- the value arrived intact (quotes, $(), newline, backslashes), string and argv form, with stdin after it
local r = a:run({ "sh", "-c", 'printf %s "$KCM_SECRET"; cat' }, { env = { KCM_SECRET = SECRET }, stdin = "STDIN" })
assert(r.stdout == SECRET .. "STDIN", "value or stdin changed: " .. r.stdout)
r = a:run('printf %s "$KCM_SECRET"', { env = { KCM_SECRET = SECRET } })
assert(r.stdout == SECRET, "string form: " .. r.stdout)
-- the remote command line itself carries no value
local line, env_in = require("kcm.node")._build({ "true" }, { env = { KCM_SECRET = SECRET } })
assert(not line:find("s3cr3t", 1, true) and env_in:find("s3cr3t", 1, true), line)
print("ok: env")
require("kcm.node").close_all()
