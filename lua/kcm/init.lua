-- `require "kcm"`: the playbook model.
--
--   local play = kcm.playbook { name = "kube-controller-manager", hosts = "masters" }
--   play:step("certificate", { once = true }, function(ctx) ... end)
--   play:step("distribute", { notify = "restart" }, function(node, ctx) ... end)
--   play:step("start", { handles = "restart" }, function(node, ctx, step)
--     if step.notified then ... end
--   end)
--   return play
local M = {}

local Playbook = {}
Playbook.__index = Playbook
M.Playbook = Playbook

local function caller_location(level)
  local info = debug.getinfo(level + 1, "Sl")
  return info and (info.short_src .. ":" .. (info.currentline or 0)) or "?"
end

function M.playbook(spec)
  if type(spec) ~= "table" then error("kcm.playbook: expected a table {name=, hosts=}", 2) end
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

--- play:step(name, [opts], fn)
--- opts: once=true (control machine), hosts="group"|"node", node="node1",
---       prepare=function(ctx) (once, on the control machine, before the nodes),
---       notify="handler" | {...}, handles="handler", when=function(ctx)->bool,
---       become=true|false (elevate this step's node operations, or not,
---       whatever the inventory says),
---       serial=N|"P%" (rolling: batches of N nodes / P% of them), gate=function(ctx, batch)
---       (health check after a batch that changed something; false/error stops the step),
---       max_fail=N (failed nodes tolerated before a serial step stops; default 0),
---       tags={...}
function Playbook:step(name, opts, fn)
  if type(opts) == "function" then opts, fn = {}, opts end
  if type(name) ~= "string" or name == "" then error("play:step: name must be a non-empty string", 2) end
  if type(fn) ~= "function" then error("play:step " .. name .. ": missing function", 2) end
  if self.by_name[name] then error("play:step: duplicate step name '" .. name .. "'", 2) end
  opts = opts or {}
  if opts.serial ~= nil then
    local ok, err = pcall(require("kcm.runner").batch_size, opts.serial, 1)
    if not ok then error("play:step " .. name .. ": " .. tostring(err), 2) end
  end
  if opts.gate ~= nil and type(opts.gate) ~= "function" then error("play:step " .. name .. ": gate must be a function(ctx, batch)", 2) end
  local s = {
    name = name,
    fn = fn,
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
    prepare = opts.prepare,     -- runs once on the control machine before the node part   -- runs only when asked for by --only or its `when`
    defined_at = caller_location(2),
  }
  self.steps[#self.steps + 1] = s
  self.by_name[name] = s
  return s
end

--- Includes the steps of another playbook-like table ({steps=...}) or calls
--- fn(play) to add shared steps (a component library).
function Playbook:include(fn, ...)
  fn(self, ...)
  return self
end

return M
