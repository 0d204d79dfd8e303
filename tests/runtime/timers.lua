-- Sleeps hold no worker thread: with a pool of ONE worker, every node sleeps
-- 0.5 s at the same time and the step takes ~0.5 s, not nodes x 0.5 s.
local kcm = require "kcm"
local task = require "kcm.task"
local rt = require "kcm.native.runtime"

local play = kcm.playbook { name = "timers", hosts = "all" }
local SLEEP = 0.5

play:step("one worker", { once = true }, function(ctx)
  rt.configure { max_workers = 1 }
  rt.reset_stats()
  ctx.t0 = rt.now()
end)

play:step("sleep", function(node, ctx)
  task.sleep(SLEEP)
end)

play:step("measure", { once = true }, function(ctx)
  local took = rt.now() - ctx.t0
  print(string.format("nodes=%d sleep=%.1f took=%.2f workers=%d", #ctx.nodes, SLEEP, took,
                      rt.stats().workers))
  -- deadlines wake in order, and a worker job runs while timers wait
  local order = {}
  local t0 = rt.now()
  task.parallel {
    function() task.sleep(0.3); order[#order + 1] = "late" end,
    function() task.sleep(0.1); order[#order + 1] = "early" end,
    function() task.sleep(0); order[#order + 1] = "zero" end,
    function() local v = rt.sleep(0.2, "job"); order[#order + 1] = v end,
  }
  print(string.format("order=%s took=%.2f", table.concat(order, ","), rt.now() - t0))
end)

return play
