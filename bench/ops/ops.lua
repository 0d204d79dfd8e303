-- bench/ops: per-operation costs on every node of the lab, timed inside the
-- engine (the connection is made first, so only the operations count).
-- Works with this engine and the older one bench/ops/run.sh builds from git.
--   KCM_OPS_SYNC=<dir>: before "measure" the run writes <dir>/ready and waits
--   for <dir>/go (the bench attaches its process counter meanwhile), and
--   writes <dir>/done after it.
local kcm = require "kcm"
local rt = require "kcm.native.runtime"
local task = require "kcm.task"
local play = kcm.playbook { name = "bench-ops", hosts = "masters" }
local sync = os.getenv("KCM_OPS_SYNC")
if sync == "" then sync = nil end
local what = os.getenv("KCM_OPS") or "true10"
local small = string.rep("kubeconfig line\n", 384)   -- 6 KiB, like a kubeconfig

local function exists(p) local f = io.open(p) if f then f:close() return true end return false end

play:step("warm", function(node)
  -- the connection, the watcher, the file session: set up once per run
  node:run({ "true" })
  node:stat("/tmp")
  node:mkdir("/tmp/kcm-ops", { mode = "0755" })
end)

play:step("wait", { once = true }, function()
  if not sync then return end
  io.open(sync .. "/ready", "w"):close()
  while not exists(sync .. "/go") do task.sleep(0.05) end
end)

play:step("measure", function(node)
  local t0 = rt.now()
  if what == "true10" then
    for _ = 1, 10 do node:run({ "true" }) end
  elseif what == "put" then
    node:put({ content = small .. tostring(rt.now()) }, "/tmp/kcm-ops/small", { mode = "0600" })
  elseif what == "stat" then
    node:stat("/tmp/kcm-ops/small")
  end
  print(string.format("ops %s %s %.1f", what, node.name, (rt.now() - t0) * 1000))
end)

play:step("done", { once = true }, function()
  if sync then io.open(sync .. "/done", "w"):close() end
end)
return play
