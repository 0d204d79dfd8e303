-- What a run is waiting for, per node: a retry loop, a gate or a transfer
-- says it here (set/clear) and the report (kcm.report) shows it: a live line
-- per node on a TTY, throttled plain lines otherwise. Only state lives here,
-- so a step reports a wait without knowing how, or whether, it is shown.
local rt = require "kcm.native.runtime"

local M = {}

local waits = {}      -- node -> { text =, since =, co = }

--- The reporter: sink:progress(waits, now) -> seconds until it wants to
--- look again (nil: nothing to redraw). Set by kcm.main.
M.sink = nil

--- node is waiting for `text` since `since` (default: now, or when its
--- current wait began: a changing attempt count is the same wait). -> entry
function M.set(node, text, since)
  node = node or "localhost"
  local w = waits[node]
  if not w then
    w = { since = since or rt.now() }
    waits[node] = w
  elseif since and since < w.since then
    w.since = since
  end
  w.text, w.textfn, w.over = text, nil, nil
  -- a wait whose task died (an error out of a retry loop) must not linger
  w.co = coroutine.running()
  return w
end

--- The node's wait is over (only `entry`'s, when given: a nested wait that
--- ended leaves a newer one alone).
function M.clear(node, entry)
  node = node or "localhost"
  local w = waits[node]
  if not w or (entry and w ~= entry) then return end
  waits[node] = nil
  if M.sink then M.sink:progress(waits, rt.now()) end
end

local MIB = 1024 * 1024

--- A transfer of `size` bytes to node: the job adds to the returned counter
--- (runtime.counter, passed to the native put) and the line reads it.
--- -> counter, over() (the transfer ended; a failed one ends with its job).
function M.transfer(node, what, size)
  local counter, t0 = rt.counter(), rt.now()
  local w = M.set(node, what)
  w.over = function() return counter:done() end
  w.textfn = function(now)
    local sent = counter:bytes()
    local took = now - t0
    local rate = took > 0 and sent / MIB / took or 0
    return string.format("%s %.1f/%.1f MiB " .. (rate < 10 and "%.1f" or "%.0f") .. " MiB/s", what,
                         sent / MIB, (size or 0) / MIB, rate)
  end
  return counter, function() M.clear(node, w) end
end

-- Drops the waits of tasks that ended without clearing them (an error out
-- of a retry loop or a put), and reads the transfers' counters.
local function refresh(now)
  for node, w in pairs(waits) do
    if (w.co and coroutine.status(w.co) == "dead") or (w.over and w.over()) then
      waits[node] = nil
    elseif w.textfn then
      w.text = w.textfn(now)
    end
  end
end

--- Called by the scheduler (kcm.task) before it blocks. -> seconds until
--- the next call is wanted, or nil when nothing waits.
function M.tick()
  if not next(waits) or not M.sink then return nil end
  local now = rt.now()
  refresh(now)
  return M.sink:progress(waits, now)
end

--- Forgets every wait (the run ended; an interrupt left some behind).
function M.reset()
  waits = {}
  if M.sink then M.sink:progress(waits, rt.now()) end
end

return M
