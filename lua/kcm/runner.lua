-- Runs a playbook against an inventory: steps in order, each step's node
-- parts in parallel (at most `forks` at once), failures confined to their
-- node, notifications kept across runs.
local cjson = require "cjson"
local fs = require "kcm.native.fs"
local rt = require "kcm.native.runtime"
local task = require "kcm.task"

local M = {}

local CONTROL = "localhost"

local function split_set(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

--- Which steps run, in order, given --only/--skip/--start-at.
function M.select_steps(play, opts)
  local only, skip = split_set(opts.only), split_set(opts.skip)
  for name in pairs(only) do
    if not play.by_name[name] then error({ usage = true, message = "--only: no step named '" .. name .. "'" }, 0) end
  end
  for name in pairs(skip) do
    if not play.by_name[name] then error({ usage = true, message = "--skip: no step named '" .. name .. "'" }, 0) end
  end
  if opts.start_at and not play.by_name[opts.start_at] then
    error({ usage = true, message = "--start-at: no step named '" .. opts.start_at .. "'" }, 0)
  end
  local out, started = {}, opts.start_at == nil
  for _, s in ipairs(play.steps) do
    if s.name == opts.start_at then started = true end
    local selected
    if next(only) then selected = only[s.name] == true
    else selected = started and not skip[s.name] end
    out[#out + 1] = { step = s, selected = selected, explicit = only[s.name] == true }
  end
  return out
end

local function load_state(path)
  local data = path and fs.read(path)
  if not data then return { notify = {} } end
  local ok, st = pcall(cjson.decode, data)
  if not ok or type(st) ~= "table" then return { notify = {} } end
  st.notify = st.notify or {}
  return st
end

function M.run(play, opts)
  local inv, report = opts.inventory, opts.report
  local vars = {}
  for k, v in pairs(inv.vars or {}) do vars[k] = v end
  for k, v in pairs(play.vars or {}) do if vars[k] == nil then vars[k] = v end end
  for k, v in pairs(opts.extra_vars or {}) do vars[k] = v end

  local ctx = { vars = vars, inventory = inv, check = opts.check, diff = opts.diff, play = play,
                nodes = {}, by_name = {}, playbook_dir = opts.playbook_dir,
                state_dir = opts.state_dir }

  local ok_node, Node = pcall(require, "kcm.node")
  if not ok_node then Node = nil end
  local limit = opts.limit and split_set(opts.limit)
  if limit then
    for name in pairs(limit) do
      if not inv.by_name[name] then error({ usage = true, message = "--limit: no node named '" .. name .. "' in the inventory" }, 0) end
    end
  end
  for _, spec in ipairs(inv.nodes) do
    -- login settings layered (command line > node > group > ssh table > ssh_config)
    local nspec, notes = require("kcm.inventory").node_spec(inv, spec, opts.ssh, opts.extra_vars)
    for _, note in ipairs(notes) do report:message(nil, note, "log") end
    local node = Node and Node.new(nspec) or { name = spec.name, host = spec.host, vars = nspec.vars }
    ctx.by_name[spec.name] = node
    if not limit or limit[spec.name] then ctx.nodes[#ctx.nodes + 1] = node end
  end

  --- ctx.hosts("group") -> node objects of a group (or one node by name), --limit applied
  function ctx.hosts(target)
    target = target or play.hosts
    local names = inv.groups[target]
    if not names then
      if inv.by_name[target] then names = { target }
      else error("no group or node named '" .. tostring(target) .. "' in " .. tostring(inv.file), 2) end
    end
    local out = {}
    for _, n in ipairs(names) do
      if not limit or limit[n] then out[#out + 1] = ctx.by_name[n] end
    end
    return out
  end

  local state = load_state(opts.state_file)
  local function save_state()
    if opts.check or not opts.state_file then return end
    fs.write(opts.state_file, cjson.encode(state), { mode = tonumber("600", 8), mkdir = true })
  end

  local down = {}       -- node name -> "failed" | "unreachable": it left the play
  local summary = { failed = false, playbook_error = false, interrupted = false }

  report:run_start({ name = play.name, playbook = opts.playbook, inventory = inv.file, check = opts.check,
                     nodes = #ctx.nodes })

  for _, sel in ipairs(M.select_steps(play, opts)) do
    local step = sel.step
    if rt.signal() then summary.interrupted = true; break end
    local run_it = sel.selected
    if run_it and step.optional and not sel.explicit then
      run_it = step.when and step.when(ctx) or false
    elseif run_it and step.when and not step.optional then
      run_it = step.when(ctx) and true or false
    end
    if not run_it then goto continue end

    local function on_control(fn)
      local sctx = { node = CONTROL, step = step.name, changes = {} }
      local t0 = rt.now()
      local t = task.wait(task.spawn(fn, sctx, ctx))
      local r = { duration = rt.now() - t0, changes = sctx.changes, t0 = t0, t1 = rt.now(), diffs = sctx.diffs }
      if t.ok then
        r.status = #sctx.changes > 0 and "changed" or "ok"
      else
        r.status, r.error, r.where = "failed", t.message, t.where
      end
      report:node_result(step, CONTROL, r)
      return t.ok
    end
    if step.once then
      report:step_start(step, { CONTROL })
      local ok = on_control(step.fn)
      report:step_end(step)
      if not ok then
        -- later steps use what a control-machine step made: stop here
        summary.failed = true
        break
      end
    else
      if step.prepare then
        report:step_start(step, { CONTROL })
        if not on_control(step.prepare) then
          report:step_end(step)
          summary.failed = true
          break
        end
      end
      local targets = {}
      for _, node in ipairs(ctx.hosts(step.hosts)) do
        if not down[node.name] then targets[#targets + 1] = node end
      end
      if not step.prepare then
        report:step_start(step, (function() local n = {} for i, x in ipairs(targets) do n[i] = x.name end return n end)())
      end
      local tasks = task.map(targets, opts.forks or 64, function(node)
        local c = task.current()
        local info = { name = step.name, notified = false }
        if step.handles then
          info.notified = (state.notify[node.name] or {})[step.handles] == true
        end
        c.info = info
        return step.fn(node, ctx, info)
      end, function(node)
        return { node = node.name, step = step.name, changes = {}, become = step.become }
      end, function() return not rt.signal() end)
      for i, t in ipairs(tasks) do
        local node = targets[i]
        local r = { duration = t.started_at and (t.finished_at - t.started_at) or 0,
                    t0 = t.started_at, t1 = t.finished_at, diffs = t.ctx.diffs }
        if t.skipped then
          r.status = "skipped"
          summary.interrupted = true
        elseif t.ok then
          local changes = t.ctx.changes
          r.changes = changes
          r.status = #changes > 0 and "changed" or "ok"
          local pending = state.notify[node.name] or {}
          if #changes > 0 then
            for _, h in ipairs(step.notify) do pending[h] = true end
          end
          if step.handles and t.ctx.info and t.ctx.info.notified then pending[step.handles] = nil end
          state.notify[node.name] = next(pending) and pending or nil
        else
          local err = t.error
          if type(err) == "table" and err.unreachable then
            r.status = "unreachable"
          else
            r.status = "failed"
          end
          r.error, r.where = t.message, t.where
          -- what this node changed before failing still needs its handlers
          if t.ctx.changes and #t.ctx.changes > 0 and #step.notify > 0 then
            local pending = state.notify[node.name] or {}
            for _, h in ipairs(step.notify) do pending[h] = true end
            state.notify[node.name] = pending
          end
          down[node.name] = r.status
          summary.failed = true
        end
        report:node_result(step, node.name, r)
      end
      save_state()
      report:step_end(step)
    end
    ::continue::
  end
  if rt.signal() then summary.interrupted = true end
  for _, node in ipairs(ctx.nodes) do
    report:node_stats(node.name)
    if node.close then pcall(node.close, node) end
  end
  if Node and Node.close_all then pcall(Node.close_all) end
  summary.down = down
  return summary
end

return M
