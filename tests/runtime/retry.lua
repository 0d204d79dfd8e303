-- task.retry: a linear backoff (interval as a function of the attempt), the
-- multiplicative one, a timeout, task.STOP, and the results of the attempt
-- that succeeded. A plain script: kcmrun runs it as a task.
local task = require "kcm.task"
local rt = require "kcm.native.runtime"

local function waits_of(opts, fn)
  local waits = {}
  opts.on_retry = function(attempt, wait) waits[#waits + 1] = string.format("%d:%.2f", attempt, wait) end
  local t0 = rt.now()
  local r = table.pack(task.retry(opts)(fn))
  return table.concat(waits, ","), rt.now() - t0, r
end

-- linear: 0.1 s after attempt 1, 0.2 s after 2, 0.3 s after 3; gives up after 4
local w, took, r = waits_of({ attempts = 4, interval = function(n) return 0.1 * n end }, function() return false end)
print(string.format("linear waits=%s took=%.2f result=%s msg=%s", w, took, tostring(r[1]), tostring(r[2])))

-- multiplicative, capped: 0.05, 0.1, 0.15, 0.15
w, took = waits_of({ attempts = 5, interval = 0.05, backoff = 2, max_interval = 0.15 }, function() return nil end)
print(string.format("backoff waits=%s took=%.2f", w, took))

-- succeeds on attempt 3: all its results come back
w, took, r = waits_of({ attempts = 5, interval = function(n) return 0.05 * n end },
                      function(n) if n == 3 then return "up", n, "extra" end end)
print(string.format("third waits=%s results=%s,%s,%s n=%d", w, tostring(r[1]), tostring(r[2]), tostring(r[3]), r.n))

-- a timeout bounds the attempts, whatever the interval function says
w, took, r = waits_of({ timeout = 0.3, interval = function() return 0.1 end }, function() return false end)
print(string.format("timeout took=%.2f gave_up=%s", took, tostring(r[1] == nil)))

-- task.STOP: no more attempts, no wait
w, took, r = waits_of({ attempts = 5, interval = function() return 1 end },
                      function(n) if n == 2 then return task.STOP end end)
print(string.format("stop waits=%s msg=%s", w, tostring(r[2])))
