-- `require "kcm"`: the playbook model.
--
--   local play = kcm.playbook { name = "kube-controller-manager", hosts = "masters" }
--   play:step("certificate", { once = true }, function(ctx) ... end)
--   play:step("distribute", { notify = "restart" }, function(node, ctx) ... end)
--   play:step("start", { handles = "restart" }, function(node, ctx, step)
--     if step.notified then ... end
--   end)
--   return play
local keys = require "kcm.keys"

local M = {}

local Playbook = {}
Playbook.__index = Playbook
M.Playbook = Playbook

local function caller_location(level)
  local info = debug.getinfo(level + 1, "Sl")
  return info and (info.short_src .. ":" .. (info.currentline or 0)) or "?"
end

-- The fields of kcm.playbook{} (a `host = ...` typo would run on every node).
local PLAYBOOK_FIELDS = { "name", "hosts", "vars" }

function M.playbook(spec)
  if type(spec) ~= "table" then error("kcm.playbook: expected a table {name=, hosts=}", 2) end
  keys.check(spec, PLAYBOOK_FIELDS, "kcm.playbook", 2)
  local p = setmetatable({
    name = spec.name or "playbook",
    hosts = spec.hosts or "all",
    vars = spec.vars or {},
    steps = {},
    by_name = {},
    defined_at = caller_location(2),
  }, Playbook)
  return p
end

function M.is_playbook(v)
  return getmetatable(v) == Playbook
end

-- What a playbook or inventory file reads beyond its own globals: Lua's
-- standard libraries and base functions, and `kcm` (the allow-list idea of
-- Redis's script_lua.c). The engine's own globals are not among them, and
-- what a file assigns stays in its environment, so a playbook that names
-- a global like an engine function cannot replace it. package is in (a
-- playbook may drop a module from package.loaded to load its own copy, as
-- trust_modules does); load, loadfile and dofile are
-- bound to the file's environment, so a file it runs shares its globals.
local ALLOWED = {}
for _, k in ipairs { "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "print", "select",
                     "tonumber", "tostring", "type", "rawequal", "rawget", "rawset", "rawlen", "setmetatable",
                     "getmetatable", "require", "collectgarbage", "warn", "_VERSION",
                     "string", "table", "math", "utf8", "coroutine", "os", "io", "debug", "package" } do
  ALLOWED[k] = true
end
M.ENV_ALLOWED = ALLOWED

--- The environment of a playbook or inventory file: its own globals (a
--- file's assignments land here, never in the engine's _G), reads falling
--- back to the allow-list above (looked up in _G when read: a fuzzer may
--- point _G at a narrower table), and reading anything else is an error at
--- that line (a typo such as `return paly` would otherwise pass as nil).
function M.strict_env()
  local env = {}
  -- text only unless the file asks otherwise (a binary chunk is unchecked)
  local function bound(f)
    return function(chunk, a, b, e)
      if f == load then return load(chunk, a, b or "t", e == nil and env or e) end
      return f(chunk, a or "t", b == nil and env or b)
    end
  end
  local own = {
    kcm = function() return _G.require and _G.require("kcm") end,
    load = function() return _G.load and bound(load) end,
    loadfile = function() return _G.loadfile and bound(loadfile) end,
    dofile = function()
      if not _G.loadfile then return nil end
      return function(path)
        local chunk, err = loadfile(path, "t", env)
        if not chunk then error(err, 2) end
        return chunk()
      end
    end,
  }
  return setmetatable(env, {
    __index = function(_, k)
      local v
      if k == "_G" then v = env
      elseif own[k] then v = own[k]()
      elseif ALLOWED[k] then v = _G[k] end
      if v == nil then
        local why = _G[k] ~= nil and " (a playbook or inventory sees Lua's standard libraries and kcm; " ..
                    "the engine's own globals are not reachable)" or ""
        error(string.format("undefined global '%s'%s", tostring(k), why), 2)
      end
      return v
    end,
  })
end

--- Checks a loaded playbook as a whole: every notify has a step handling it.
--- Returns nil or "file:line: message".
function M.validate(play)
  local handled = {}
  for _, s in ipairs(play.steps) do if s.handles then handled[s.handles] = true end end
  for _, s in ipairs(play.steps) do
    for _, h in ipairs(s.notify) do
      if not handled[h] then
        return string.format("%s: step '%s' notifies '%s', but no step handles it " ..
                             "(give the step that reacts handles = %q)", s.defined_at, s.name, h, h)
      end
    end
  end
end

-- The options play:step knows (the API reference, docs/api.md, lists them
-- too). retries/delay/until: see with_retries below.
local STEP_OPTIONS = { "once", "hosts", "node", "prepare", "notify", "handles", "when", "optional",
                       "become", "serial", "gate", "max_fail", "leader", "continue_on_failure",
                       "retries", "delay", "until" }
M.STEP_OPTIONS = STEP_OPTIONS

-- retries=N, delay=s, until=function(result, ...) -> bool (as Ansible's
-- `until`): the step's function runs again, `delay` seconds later (default
-- 5, no worker held), while it raises or `until` rejects what it returned, at
-- most N more times; then the last error (or "until not met") fails it.
local function with_retries(name, fn, retries, delay, cond)
  if not retries and not cond then return fn end
  local task = require "kcm.task"
  retries = retries or 3
  return function(...)
    local args = table.pack(...)
    local last
    local r = table.pack(task.retry {
      attempts = retries + 1, interval = delay or 5,
      what = function() return string.format("step '%s' (last: %s)", name, tostring(last)) end,
      on_retry = function(attempt, wait)
        task.log(string.format("%s: attempt %d of %d failed (%s); again in %gs", name, attempt,
                               retries + 1, tostring(last), wait))
      end,
    } (function()
      local res = table.pack(pcall(fn, table.unpack(args, 1, args.n)))
      if not res[1] then last = res[2]; return false end
      if cond and not cond(table.unpack(res, 2, res.n)) then last = "until not met"; return false end
      return true, table.unpack(res, 2, res.n)
    end))
    if r[1] then return table.unpack(r, 2, r.n) end
    if type(last) == "string" and last == "until not met" then
      error(string.format("step '%s': until not met after %d attempts", name, retries + 1), 0)
    end
    error(last, 0)
  end
end

--- play:step(name, [opts], fn)
--- opts: once=true (control machine), hosts="group"|"node", node="node1",
---       prepare=function(ctx) (once, on the control machine, before the nodes),
---       notify="handler" | {...}, handles="handler", when=function(ctx)->bool,
---       become=true|false (elevate this step's node operations, or not,
---       whatever the inventory says),
---       serial=N|"P%" (rolling: batches of N nodes / P% of them), gate=function(ctx, batch)
---       (health check after a batch that changed something; false/error stops the step),
---       max_fail=N (failed nodes tolerated before a serial step stops; default 0),
---       leader=function(ctx)->node name (a serial step: that node goes last, the
---       others keep inventory order; false: inventory order),
---       continue_on_failure=true (later steps run even when every target of
---       this one failed; by default the play stops then),
---       optional=true (only when named by --only or its `when` says so),
---       retries=N, delay=seconds, ["until"]=function(result, node, ctx)->bool
function Playbook:step(name, opts, fn)
  if type(opts) == "function" then opts, fn = {}, opts end
  if type(name) ~= "string" or name == "" then error("play:step: name must be a non-empty string", 2) end
  if type(fn) ~= "function" then error("play:step " .. name .. ": missing function", 2) end
  if self.by_name[name] then error("play:step: duplicate step name '" .. name .. "'", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("play:step " .. name .. ": options must be a table", 2) end
  keys.check(opts, STEP_OPTIONS, "play:step " .. name, 2)
  if opts.serial ~= nil then
    local ok, err = pcall(require("kcm.runner").batch_size, opts.serial, 1)
    if not ok then error("play:step " .. name .. ": " .. tostring(err), 2) end
  end
  if opts.gate ~= nil and type(opts.gate) ~= "function" then error("play:step " .. name .. ": gate must be a function(ctx, batch)", 2) end
  if opts.leader ~= nil and opts.leader ~= false and type(opts.leader) ~= "function" then
    error("play:step " .. name .. ": leader must be a function(ctx) -> the leader's node name, or false " ..
          "(inventory order)", 2)
  end
  if opts.leader and opts.serial == nil then
    error("play:step " .. name .. ": leader = ... orders a rolling step: give serial = 1 too", 2)
  end
  local s = {
    name = name,
    fn = with_retries(name, fn, opts.retries, opts.delay, opts["until"]),
    once = opts.once and true or false,
    hosts = opts.node or opts.hosts,
    notify = type(opts.notify) == "string" and { opts.notify } or opts.notify or {},
    handles = opts.handles,
    when = opts.when,
    optional = opts.optional,
    become = opts.become,
    serial = opts.serial,
    gate = opts.gate,
    max_fail = opts.max_fail,
    leader = opts.leader or nil,
    prepare = opts.prepare,     -- runs once on the control machine before the node part
    continue_on_failure = opts.continue_on_failure and true or false,
    defined_at = caller_location(2),
  }
  self.steps[#self.steps + 1] = s
  self.by_name[name] = s
  return s
end

--- Calls fn(play, ...) so a shared library (a component) adds its steps to
--- this playbook.
function Playbook:include(fn, ...)
  fn(self, ...)
  return self
end

return M
