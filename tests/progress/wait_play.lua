-- Waits on the control machine, for kcm.progress: a gate that turns true
-- after -e wait=<seconds>, and a fast one that never shows.
local kcm = require "kcm"
local task = require "kcm.task"
local rt = require "kcm.native.runtime"

local play = kcm.playbook { name = "progress" }

play:step("gate", { once = true }, function(ctx)
  local secs = tonumber(ctx.vars.wait or 0)
  local t0 = rt.now()
  local ok = task.retry { attempts = 60, interval = 0.5, what = "the test gate" } (function()
    return rt.now() - t0 >= secs
  end)
  if not ok then error("the gate never opened", 0) end
end)

play:step("fast", { once = true }, function()
  local n = 0
  task.retry { attempts = 5, interval = 0.1, what = "a quick flag" } (function() n = n + 1; return n >= 3 end)
end)

return play
