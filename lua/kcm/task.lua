-- The scheduler: one coroutine per unit of work (a node's part of a step, a
-- `once` step, a task.parallel branch). Native calls yield with the runtime's
-- marker while their job runs on a worker thread; runtime.poll hands the
-- coroutine back when the job is done and we resume it here, on the main
-- thread. Nothing else ever touches the Lua state.
local rt = require "kcm.native.runtime"
local E = require "kcm.error"

local M = {}

local MARK = rt.marker
local WAIT = setmetatable({}, { __name = "kcm.task.wait" })

local tasks = {}          -- coroutine -> task
local ready, rhead, rtail = {}, 1, 0

local function push(co)
  rtail = rtail + 1
  ready[rtail] = co
end

local function builtin_source(src)
  return src:sub(1, 9) == "@builtin:" or src == "=[C]" or src:sub(1, 1) == "="
end

-- Where an error happened in the user's code: the innermost frame of the
-- failed coroutine that is not the engine's own library.
local function user_location(co)
  for level = 0, 60 do
    local info = debug.getinfo(co, level, "Sl")
    if not info then break end
    if info.currentline and info.currentline > 0 and not builtin_source(info.source) then
      return info.short_src .. ":" .. info.currentline
    end
  end
  return nil
end

local function finish(t, ok, res)
  t.done = true
  t.finished_at = rt.now()
  t.ok = ok
  if ok then
    t.results = res
  else
    local err = res
    t.error = err
    -- a target's error object says where in the playbook, as a message does
    if type(err) ~= "table" or (E.is(err) and err.kind ~= "unreachable") then
      local loc = user_location(t.co)
      local msg = E.describe(err)
      if loc and not msg:find(loc, 1, true) then
        msg = msg .. " (at " .. loc .. ")"
      end
      t.message = msg
    else
      local msg, by_fields = E.describe(err.message or err)
      local loc = by_fields and user_location(t.co)
      t.message = loc and (msg .. " (at " .. loc .. ")") or msg
    end
    t.where = user_location(t.co)
  end
  tasks[t.co] = nil
  for _, w in ipairs(t.waiters) do push(w) end
  t.waiters = {}
  if t.on_done then t.on_done(t) end
end

local function resume(co)
  local t = tasks[co]
  if not t then return end
  if not t.started_at then t.started_at = rt.now() end
  local r = table.pack(coroutine.resume(co))
  if not r[1] then
    finish(t, false, r[2])
  elseif coroutine.status(co) == "dead" then
    finish(t, true, table.pack(table.unpack(r, 2, r.n)))
  elseif r[2] == MARK or r[2] == WAIT then
    -- parked: a job or another task will wake it
  else
    finish(t, false, "coroutine.yield() called outside a coroutine of your own " ..
      "(kcm steps cannot yield to the engine)")
  end
end

--- Runs the scheduler until done() is true. Returns false when it gave up
--- because of an interrupt: nothing left to run, or work still in flight
--- when the grace after the first SIGINT/SIGTERM is over (M.abandoned).
function M.loop(done)
  while not done() do
    if rhead <= rtail then
      local co = ready[rhead]
      ready[rhead] = nil
      rhead = rhead + 1
      resume(co)
    elseif rt.pending() > 0 then
      -- a live progress line is redrawn while everything waits on jobs
      local tick = M.on_idle and M.on_idle()
      local sig, deadline = rt.signal()
      if sig then
        local left = deadline - rt.now()
        if left <= 0 then M.abandoned = true; return false end
        for _, co in ipairs(rt.poll(tick and math.min(tick, left) or left)) do push(co) end
      else
        for _, co in ipairs(rt.poll(tick)) do push(co) end
      end
    elseif rt.signal() then
      return false
    else
      error("kcm.task: nothing runnable and nothing in flight (a task waits forever)")
    end
  end
  return true
end

--- Starts fn(...) as a new task. ctx is the task's context (node, step,
--- changes); by default the caller's.
function M.spawn(fn, ctx, ...)
  local parent = tasks[coroutine.running()]
  local args = table.pack(...)
  local co = coroutine.create(function() return fn(table.unpack(args, 1, args.n)) end)
  rt.adopt(co)
  local t = { co = co, ctx = ctx or (parent and parent.ctx) or {}, done = false, waiters = {} }
  tasks[co] = t
  push(co)
  return t
end

-- Waits until w.done (w: a task or anything with `done` and `waiters`):
-- a task parks until woken; the top level runs the scheduler.
local function park_until(w)
  if w.done then return end
  local co, main = coroutine.running()
  if main or not tasks[co] then
    -- after an interrupt the loop lets work in flight finish within the grace
    M.loop(function() return w.done end)
  else
    while not w.done do
      w.waiters[#w.waiters + 1] = co
      coroutine.yield(WAIT)
    end
  end
end

--- Waits for a task.
function M.wait(t)
  park_until(t)
  return t
end

--- Runs fn(item) for every item with at most `limit` running at once.
--- Returns the list of tasks (in item order). `should_start(item)` may veto
--- starting more work (e.g. after SIGINT).
function M.map(items, limit, fn, ctx_of, should_start)
  local out, nexti, running = {}, 1, 0
  local all = { done = false, waiters = {} }
  local function launch()
    while running < limit and nexti <= #items do
      local i = nexti
      nexti = nexti + 1
      if should_start and not should_start(items[i]) then
        out[i] = { done = true, ok = false, skipped = true, message = "not started" }
      else
        running = running + 1
        local t = M.spawn(fn, ctx_of and ctx_of(items[i]) or nil, items[i])
        out[i] = t
        t.on_done = function()
          running = running - 1
          launch()
        end
        if t.done then t.on_done(t) end
      end
    end
    if running == 0 and nexti > #items and not all.done then
      all.done = true
      for _, w in ipairs(all.waiters) do push(w) end
    end
  end
  launch()
  park_until(all)
  return out
end

--- Runs the functions concurrently; returns their first results in order.
--- Raises the first error after all have finished.
function M.parallel(fns)
  local ts = {}
  for i, fn in ipairs(fns) do ts[i] = M.spawn(fn) end
  local results = {}
  local first_err
  for i, t in ipairs(ts) do
    M.wait(t)
    if t.ok then
      results[i] = t.results[1]
    elseif first_err == nil then
      first_err = t.error
    end
  end
  if first_err ~= nil then error(first_err, 0) end
  return results
end

--- Returned by a task.retry function to give up at once (no more attempts).
M.STOP = setmetatable({}, { __name = "kcm.task.stop" })

--- task.retry{attempts=, timeout=, interval=, backoff=, max_interval=, on_retry=}(fn)
--- Calls fn(attempt) until its first result is truthy and returns all its
--- results. A nil/false first result means "not yet": wait `interval`
--- seconds (default 1; times `backoff` after each attempt, at most
--- `max_interval`) and try again, until `attempts` calls were made or
--- `timeout` seconds passed (whichever comes first; neither: 3 attempts).
--- `interval` may be a function(attempt) -> the seconds to wait after that
--- attempt (a linear backoff: function(n) return 0.5 * n end).
--- fn returns task.STOP to give up at once. Giving up returns nil, a message
--- ("gave up after N attempts over Xs"). on_retry(attempt, wait) is called
--- before each wait. `what` names what is waited for: after the first
--- failed attempt the node's progress line (kcm.progress) reads "waiting for
--- <what> (attempt 3/30)" until the loop ends (default: the step's name;
--- a function(): asked at each retry, for what the last attempt saw).
--- Waits hold no worker thread (task.sleep).
local RETRY_OPTIONS = { "attempts", "timeout", "interval", "backoff", "max_interval", "on_retry", "what" }

-- "waiting for etcd health (attempt 3/30)"; with only a timeout, its bound
local function waiting_text(opts, attempt, attempts)
  local what = opts.what
  if type(what) == "function" then what = what() end
  if not what then
    local ctx = M.current()
    what = ctx and ctx.step and ("step '" .. ctx.step .. "'") or "a retry"
  end
  if attempts ~= math.huge then
    return string.format("waiting for %s (attempt %d/%d)", what, attempt, attempts)
  end
  return string.format("waiting for %s (attempt %d, up to %gs)", what, attempt, opts.timeout)
end

function M.retry(opts)
  opts = opts or {}
  require("kcm.keys").check(opts, RETRY_OPTIONS, "task.retry", 2)
  local attempts = opts.attempts or (opts.timeout and math.huge or 3)
  local interval, backoff = opts.interval or 1, opts.backoff or 1
  local by_attempt = type(interval) == "function"
  local progress = require "kcm.progress"
  return function(fn)
    local t0 = rt.now()
    local deadline = opts.timeout and t0 + opts.timeout
    local wait, attempt = not by_attempt and interval, 0
    local ctx = M.current()
    local node = ctx and ctx.node
    local shown   -- this loop's progress entry, once an attempt failed
    while true do
      attempt = attempt + 1
      local r = table.pack(fn(attempt))
      if r[1] == M.STOP then break end
      if r[1] then
        if shown then progress.clear(node, shown) end
        return table.unpack(r, 1, r.n)
      end
      if attempt >= attempts or (deadline and rt.now() > deadline) then break end
      if by_attempt then wait = interval(attempt) end
      if opts.on_retry then opts.on_retry(attempt, wait) end
      shown = progress.set(node, waiting_text(opts, attempt + 1, attempts), t0)
      M.sleep(wait)
      if not by_attempt then
        wait = wait * backoff
        if opts.max_interval and wait > opts.max_interval then wait = opts.max_interval end
      end
    end
    if shown then progress.clear(node, shown) end
    return nil, string.format("gave up after %d attempt%s over %.1fs", attempt, attempt == 1 and "" or "s",
                              rt.now() - t0)
  end
end

--- Sleeps `seconds` without holding a worker thread: the coroutine waits on
--- a timer of the main loop (engine/timers.c).
function M.sleep(seconds) rt.timer(seconds) end

function M.current()
  local t = tasks[coroutine.running()]
  return t and t.ctx or nil
end

-- the run's mode is kcm.target's (required here lazily: target needs task)
function M.check() return require("kcm.target").check() end
function M.diff() return require("kcm.target").diff() end

--- A primitive is about to change something for the current task (not in
--- --check): what must survive the change is made durable first (the runner
--- marks the handlers a notifying step makes due, write-ahead). Primitives
--- call it right before they commit (put: before the transfer and rename).
function M.before_change()
  local ctx = M.current()
  -- facts read earlier in this step (kcm.systemd's unit state) are stale now
  if ctx then ctx.mutations = (ctx.mutations or 0) + 1 end
  if M.on_before_change and not M.check() then M.on_before_change(ctx) end
end

--- A fact about the current node read once per step: fetch() runs on the
--- first ask, and again only after the step changed something on the node
--- (task.before_change) or when `fresh` is asked for (a wait that polls).
--- Outside a step nothing is cached.
function M.fact(node, key, fetch, fresh)
  local ctx = M.current()
  if not ctx then return fetch() end
  local f = node._facts
  if not f or f.ctx ~= ctx or f.gen ~= (ctx.mutations or 0) then
    f = { ctx = ctx, gen = ctx.mutations or 0, v = {} }
    node._facts = f
  end
  if fresh or f.v[key] == nil then f.v[key] = fetch() end
  return f.v[key]
end

--- Records that the current node/step changed (or, in --check, would change)
--- something.
function M.changed(desc)
  -- a primitive that did not announce its change still gets it recorded
  M.before_change()
  local ctx = M.current()
  if ctx then
    ctx.changes = ctx.changes or {}
    ctx.changes[#ctx.changes + 1] = desc or "changed"
  end
  if M.on_changed then M.on_changed(ctx, desc) end
end

function M.log(msg)
  if M.on_log then M.on_log(M.current(), msg, "log") end
end

--- A line the user should see (not only with -v).
function M.info(msg)
  if M.on_log then M.on_log(M.current(), msg, "info") else print(msg) end
end

function M.warn(msg)
  if M.on_log then M.on_log(M.current(), msg, "warn")
  else io.stderr:write("warning: ", tostring(msg), "\n") end
end

M.user_location = user_location
return M
