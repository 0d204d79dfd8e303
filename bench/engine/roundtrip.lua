-- Scheduler cost: one yield -> worker pool -> completion fd -> resume round
-- trip, measured with the cheapest job there is (a zero-length sleep).
local rt = require "kcm.native.runtime"
local task = require "kcm.task"

local N = tonumber(os.getenv("N") or "100000")
local C = tonumber(os.getenv("C") or "64")

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local seq, par = {}, {}
for run = 1, 5 do
  local t0 = rt.now()
  for _ = 1, N do rt.sleep(0) end
  seq[run] = (rt.now() - t0) / N * 1e6

  local per = N // C
  local fns = {}
  for i = 1, C do fns[i] = function() for _ = 1, per do rt.sleep(0) end end end
  t0 = rt.now()
  task.parallel(fns)
  par[run] = (rt.now() - t0) / (per * C) * 1e6
end
print(string.format("round trip, one coroutine:   median %.2f us (runs: %s)", median(seq),
  table.concat((function() local o = {} for i, v in ipairs(seq) do o[i] = string.format("%.2f", v) end return o end)(), " ")))
print(string.format("round trip, %d coroutines:   median %.2f us per job", C, median(par)))
