-- Runs a playbook against an inventory: steps in order, each step's node
-- parts in parallel (at most `forks` at once), failures confined to their
-- node, notifications kept across runs.
local cjson = require "cjson"
local fs = require "kcm.native.fs"
local rt = require "kcm.native.runtime"
local task = require "kcm.task"
local state = require "kcm.state"
local E = require "kcm.error"
local pattern = require "kcm.pattern"

local M = {}

local CONTROL = "localhost"

-- A Lua error in a step (a typo, a missing method or field, a bad argument
-- to a library call) is a playbook error, exit 3. error("...") and
-- assert(ok, msg) are how a step says a node failed: exit 4, that node only.
-- An unknown option of an operation (kcm.keys) is a typo too.
local VM_ERRORS = { "attempt to ", "undefined global '", "bad argument #", "stack overflow",
                    "table index is ", "number has no integer representation", "'for' ",
                    "unknown option '" }
local function script_error(t)
  local e = t.error
  -- what the operator configured is wrong (a kubeconfig, an -e value):
  -- no node is to blame
  if type(e) == "table" and not E.is(e) and e.config then return true end
  -- an error object that cannot say what it is: the playbook's own bug
  if type(e) == "table" and not E.is(e) and select(2, E.describe(e)) then return true end
  if type(e) ~= "string" then return false end
  local msg = e:match("^[^\n:]+:%d+: (.*)")
  if not msg then return false end
  for _, p in ipairs(VM_ERRORS) do
    if msg:sub(1, #p) == p then return true end
  end
  return false
end

local function abandoned(opts)
  return string.format("interrupted: still running after the %gs grace, abandoned", opts.grace or 5)
end

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

-- Notifications a run of an older kcmrun left in its per-inventory state
-- file (keyed by node name) move to the per-target state, once.
local function migrate_legacy(path, st, play, ids, check)
  local data = path and not check and fs.read(path)
  if not data then return end
  local ok, old = pcall(cjson.decode, data)
  if ok and type(old) == "table" and type(old.notify) == "table" then
    for name, set in pairs(old.notify) do
      if ids[name] and type(set) == "table" then
        local hs = {}
        for h, v in pairs(set) do if v == true then hs[#hs + 1] = h end end
        st:legacy_due(ids[name], play.name, hs)
      end
    end
  end
  st:flush()
  pcall(fs.remove, path)
end

--- The batches of a serial step: `serial` = N nodes or "P%" of them (at least one).
function M.batch_size(serial, n)
  if serial == nil then return math.max(n, 1) end
  local pct = type(serial) == "string" and tonumber(serial:match("^(%d+%.?%d*)%%$"))
  local size = pct and math.ceil(n * pct / 100) or tonumber(serial)
  if not size or size < 1 then
    error(string.format("step option serial = %q: expected a number of nodes (1) or a percentage (\"34%%\")",
                        tostring(serial)), 0)
  end
  return math.max(1, math.floor(size))
end

--- A rolling step: batch after batch; after a batch that changed or failed
--- something the step's gate(ctx, batch) runs on the control machine (a
--- health check: false or an error stops the step); more failed nodes than
--- max_fail (default 0) stop it too. Nodes not reached are skipped(node, why).
--- Returns false when the step was stopped.
function M.run_batches(step, targets, run_batch, on_control, skipped)
  local size = M.batch_size(step.serial, #targets)
  local max_fail = step.max_fail or (step.serial and 0 or math.huge)
  local failed, i = 0, 1
  while i <= #targets do
    local batch = { table.unpack(targets, i, math.min(i + size - 1, #targets)) }
    i = i + size
    local out = run_batch(batch)
    failed = failed + out.failed
    local why
    if failed > max_fail then
      why = string.format("not started: %d node(s) of the rolling step failed (max_fail = %d)", failed, max_fail)
    elseif step.gate and (out.changed or out.failed > 0) then
      -- after the last batch too: a rolling step ends with a healthy service
      local ok = on_control(function(ctx)
        if step.gate(ctx, batch) == false then
          local names = {}
          for k, n in ipairs(batch) do names[k] = n.name end
          error("the health gate after " .. table.concat(names, ",") .. " said no", 0)
        end
      end)
      if not ok then why = "not started: the health gate after the previous batch failed" end
    end
    if why then
      for k = i, #targets do skipped(targets[k], why) end
      return false
    end
    if rt.signal() then return true end
  end
  return true
end

--- The order of a rolling step whose `leader` names a node: every other
--- node first (inventory order), the leader last -> targets, the log line.
function M.leader_last(targets, leader)
  local out, last = {}, nil
  for _, n in ipairs(targets) do
    if n.name == leader then last = n else out[#out + 1] = n end
  end
  local names = {}
  for i, n in ipairs(out) do names[i] = n.name end
  if not last then
    return targets, string.format("order: %s (inventory order: the leader %s is not among them)",
                                  table.concat(names, ", "), tostring(leader))
  end
  out[#out + 1] = last
  names[#names + 1] = last.name .. " (the leader, last)"
  return out, "order: " .. table.concat(names, ", ") .. "; leader last"
end

-- A run: the play, its options and what the phases below share.
--   select:  the nodes (--limit), their ctx, ctx.hosts / ctx.members
--   prepare: state, locks, the write-ahead of notifications
--   run:     the steps (the control machine's part, the nodes' batches)
--   record:  each node's result into the state and the report; the recap

-- credentials over plain http only when the inventory (or -e) says so
local function allow_insecure_http(inv, opts)
  local ev = opts.extra_vars or {}
  local iv = inv.vars or {}
  local value = require "kcm.value"
  if inv.allow_insecure_http == true or value.bool(ev.allow_insecure_http, "-e allow_insecure_http")
     or value.bool(iv.allow_insecure_http, "vars.allow_insecure_http") then
    require("kcm.kube").allow_insecure_http = true
  end
end

-- select: every node of the inventory made from its spec (login settings
-- layered: command line > node > group > ssh table > ssh_config); those
-- --limit keeps are the run's nodes.
local function select_nodes(run)
  local inv, opts, ctx = run.inv, run.opts, run.ctx
  local limit
  if opts.limit then
    local pat = type(opts.limit) == "table" and table.concat(opts.limit, ",") or opts.limit
    local names, why = pattern.match(inv, pat)
    if not names or #names == 0 then
      error({ usage = true, message = string.format("--limit '%s': %s in %s; %s", pat, why,
                                                    tostring(inv.file), pattern.known(inv)) }, 0)
    end
    limit = split_set(names)
  end
  local specs = {}      -- node name -> the spec its Node was made from
  for _, spec in ipairs(inv.nodes) do
    local nspec, notes = require("kcm.inventory").node_spec(inv, spec, opts.ssh, opts.extra_vars)
    for _, note in ipairs(notes) do run.report:message(nil, note, "log") end
    specs[spec.name] = nspec
    local node = run.Node.new(nspec)
    ctx.by_name[spec.name] = node
    if not limit or limit[spec.name] then ctx.nodes[#ctx.nodes + 1] = node end
  end
  run.limit, run.specs = limit, specs
end

-- what a node's steps see as ctx: the run's ctx, with that node's vars
local function node_contexts(run)
  local node_ctx = {}
  return function(node)
    local c = node_ctx[node.name]
    if not c then
      c = setmetatable({ vars = run.layering:node(node.name) }, { __index = run.ctx, __newindex = run.ctx })
      node_ctx[node.name] = c
    end
    return c
  end
end

-- select: ctx.hosts and ctx.members, the groups as steps see them.
local function add_group_lookups(run)
  local ctx, inv, play, limit, specs = run.ctx, run.inv, run.play, run.limit, run.specs
  -- a step's (or the play's) hosts pattern; a typo names where it was written
  local function group_names(target, where)
    target = target or play.hosts
    local names, why = pattern.match(inv, target)
    if not names then
      error({ usage = true, message = string.format("%s: hosts '%s': %s in %s; %s", where or play.defined_at,
                                                    tostring(target), why, tostring(inv.file), pattern.known(inv)) }, 0)
    end
    return names
  end
  run.group_names = group_names
  local function caller()
    local info = debug.getinfo(3, "Sl")
    return info and info.short_src .. ":" .. (info.currentline or 0) or "?"
  end

  --- ctx.hosts("group") -> node objects of a group (or one node by name), --limit applied:
  --- where steps run.
  function ctx.hosts(a, b)
    local target = a
    if type(a) == "table" then target = b end     -- ctx:hosts(...)
    local out = {}
    for _, n in ipairs(group_names(target, caller())) do
      if not limit or limit[n] then out[#out + 1] = ctx.by_name[n] end
    end
    return out
  end

  --- ctx.members("group") (or ctx:members("group")) -> every member of a group,
  --- whatever --limit says: for what describes the whole group (certificate
  --- hosts, peer lists, --initial-cluster). Entries: {name, host (as in the
  --- inventory), address (after ssh_config), port, vars (that node's), node}.
  local member_cache = {}
  function ctx.members(a, b)
    local target = a
    if type(a) == "table" then target = b end
    local out = {}
    for _, n in ipairs(group_names(target, caller())) do
      local m = member_cache[n]
      if not m then
        local spec = specs[n]
        local _, address = state.identity(spec)
        m = { name = n, host = spec.host, address = address or spec.host, port = spec.port,
              vars = run.ctx_for(ctx.by_name[n]).vars, node = ctx.by_name[n] }
        member_cache[n] = m
      end
      out[#out + 1] = m
    end
    return out
  end
end

-- prepare: the run's state. A node is attached when its connection is first
-- made (kcm.node's on_connect): its lock taken on the node itself, what an
-- earlier run left due there read from it. A node no step connects to is
-- never locked.
local function open_state(run)
  local opts, report = run.opts, run.report
  local st = state.open(opts.state_dir or (fs.tempdir() .. "/state"), {
    check = opts.check, no_lock = opts.no_lock, lock_wait = opts.lock_wait,
    warn = function(msg) report:message(nil, msg, "warn") end,
  })
  local ids = {}
  for _, node in ipairs(run.ctx.nodes) do
    ids[node.name] = node.name
    node.spec = run.specs[node.name]
    st:know(node.name, node)
  end
  run.Node.on_connect = function(node)
    node.spec = node.spec or run.specs[node.name]
    local ok, why, kind = st:lock(node.name, node)
    if not ok then
      -- a connection error names the node already ("node2 (addr): ...")
      if why:sub(1, #node.name) ~= node.name then why = node.name .. ": " .. why end
      E.raise { kind = kind, node = node.name, op = "lock", message = why }
    end
    st:_record(node.name)   -- what an earlier run left due there
  end
  migrate_legacy(opts.state_file, st, run.play, ids, opts.check)

  -- Write-ahead: the first change a notifying step is about to make on a
  -- node marks that node's handlers due, durably, before it happens.
  task.on_before_change = function(c)
    local w = c and c.notify_due
    if not w or w.marked or task.check() then return end
    w.marked = true
    w.added = st:mark_due(w.id, run.play.name, w.handlers)
  end
  run.st, run.ids = st, ids
  return {}
end

-- record: a node another run holds (or whose ssh settings do not resolve)
-- is left alone; the others go on
local function record_locked_out(run, locked_out)
  if #locked_out == 0 then return end
  local report = run.report
  local lstep = { name = "lock" }
  local names = {}
  for i, l in ipairs(locked_out) do names[i] = l.node end
  report:step_start(lstep, names)
  for _, l in ipairs(locked_out) do
    report:node_result(lstep, l.node, { status = l.status or "failed", error = l.error, duration = 0 })
    run.down[l.node] = l.status or "failed"
  end
  report:step_end(lstep)
  run.summary.failed = true
end

-- run: the control machine's part of a step, fn(ctx); reported. -> ok
local function on_control(run, step, fn)
  local summary = run.summary
  local sctx = { node = CONTROL, step = step.name, changes = {} }
  local t0 = rt.now()
  local t = task.wait(task.spawn(fn, sctx, run.ctx))
  local r = { duration = rt.now() - t0, changes = sctx.changes, t0 = t0, t1 = rt.now(), diffs = sctx.diffs }
  if t.ok then
    r.status = #sctx.changes > 0 and "changed" or "ok"
  elseif not t.done then
    r.status, r.error = "failed", abandoned(run.opts)
    summary.interrupted = true
  elseif script_error(t) and not rt.signal() then
    r.status, r.error, r.where = "failed", "script error (reported below)", t.where
    summary.playbook_error = summary.playbook_error or { step = step.name, message = t.message }
  else
    r.status, r.error, r.where = "failed", t.message, t.where
  end
  run.report:node_result(step, CONTROL, r)
  return t.ok
end

-- record: a node's step went through: its notifications, in the state
local function record_ok(run, step, node, t, r, outcome)
  local st, play = run.st, run.play
  local changes = t.ctx.changes
  r.changes = changes
  r.status = #changes > 0 and "changed" or "ok"
  if #changes > 0 then outcome.changed = true end
  local id, w = run.ids[node.name], t.ctx.notify_due
  if #changes > 0 and #step.notify > 0 then
    st:mark_due(id, play.name, step.notify, true)   -- done ahead, unless a primitive did not say
  elseif w and w.added and #w.added > 0 then
    st:clear(id, play.name, w.added)            -- marked ahead, but nothing changed after all
  end
  if step.handles and t.ctx.info and t.ctx.info.notified then st:clear(id, play.name, { step.handles }) end
end

-- record: a node's step failed (or its node was unreachable): it leaves the play
local function record_failed(run, step, node, t, r, outcome)
  local summary = run.summary
  local err = t.error
  if E.is(err, "unreachable") then
    r.status = "unreachable"
  else
    r.status = "failed"
  end
  r.error, r.where = t.message, t.where
  if r.status == "failed" and script_error(t) and not rt.signal() then
    summary.playbook_error = summary.playbook_error or { step = step.name, message = t.message }
    r.error = "script error (reported below)"
  end
  -- what this node changed before failing still needs its handlers
  if t.ctx.changes and #t.ctx.changes > 0 and #step.notify > 0 then
    -- kept on the node, when it can still be reached
    pcall(run.st.mark_due, run.st, run.ids[node.name], run.play.name, step.notify, true)
  end
  run.down[node.name] = r.status
  summary.failed = true
  outcome.failed = outcome.failed + 1
end

-- record: the task of a node's part of a step -> its result, reported
local function record_node(run, step, node, t, outcome)
  local summary = run.summary
  local t1 = t.finished_at or rt.now()     -- abandoned: still running
  local r = { duration = t.started_at and (t1 - t.started_at) or 0,
              t0 = t.started_at, t1 = t.started_at and t1, diffs = t.ctx and t.ctx.diffs }
  if t.skipped then
    r.status = "skipped"
    summary.interrupted = true
  elseif not t.done then
    r.status, r.error = "failed", abandoned(run.opts)
    summary.interrupted, summary.failed = true, true
    run.down[node.name] = "failed"
    outcome.failed = outcome.failed + 1
  elseif t.ok then
    record_ok(run, step, node, t, r, outcome)
  else
    record_failed(run, step, node, t, r, outcome)
  end
  run.report:node_result(step, node.name, r)
end

-- run: one batch of the step's nodes (all of them unless the step is serial)
-- -> { changed = any node changed, failed = how many failed }
local function run_batch(run, step, batch)
  local st, play = run.st, run.play
  local outcome = { changed = false, failed = 0 }
  local tasks = task.map(batch, run.opts.forks or 64, function(node)
    local c = task.current()
    local id = run.ids[node.name]
    local info = { name = step.name, notified = false }
    if step.handles then info.notified = st:is_due(id, play.name, step.handles) end
    if #step.notify > 0 then c.notify_due = { id = id, handlers = step.notify } end
    c.info = info
    return step.fn(node, run.ctx_for(node), info)
  end, function(node)
    return { node = node.name, step = step.name, changes = {}, become = step.become }
  end, function() return not rt.signal() end)
  for i, t in ipairs(tasks) do record_node(run, step, batch[i], t, outcome) end
  st:flush()
  return outcome
end

-- run: a `once` step, on the control machine. -> false: stop the play
local function run_once_step(run, step)
  run.report:step_start(step, { CONTROL })
  local ok = on_control(run, step, step.fn)
  run.report:step_end(step)
  if not ok then
    -- later steps use what a control-machine step made: stop here
    run.summary.failed = true
    return false
  end
  return true
end

-- run: a rolling step with `leader`: asked on the control machine, once,
-- when some target has work (a handler due on it); the order is logged.
local function wants_order(run, step, targets)
  if not (type(step.leader) == "function" and #targets > 1) or run.opts.check then return false end
  if not step.handles then return true end
  for _, n in ipairs(targets) do
    if run.st:is_due(run.ids[n.name], run.play.name, step.handles) then return true end
  end
  return false
end

local function order_targets(run, step, targets)
  local out = targets
  on_control(run, step, function(ctx)
    local ok, leader = pcall(step.leader, ctx)
    if ok and leader == false then return end    -- the component rolls in inventory order
    if not ok or not leader then
      task.log(string.format("%s order: inventory (no leader known: %s)", step.name,
                              ok and "none reported" or tostring(leader)))
      return
    end
    local line
    out, line = M.leader_last(targets, leader)
    task.info(step.name .. " " .. line)
  end)
  return out
end

-- run: a step on the nodes still in the play (its `prepare` first, on the
-- control machine). -> false: stop the play
local function run_node_step(run, step)
  local report, summary, down = run.report, run.summary, run.down
  local targets = {}
  local where = step.hosts and step.defined_at or run.play.defined_at
  for _, n in ipairs(run.group_names(step.hosts, where)) do
    local node = run.ctx.by_name[n]
    if (not run.limit or run.limit[n]) and not down[n] then targets[#targets + 1] = node end
  end
  -- one step_start naming both parts: the control machine's, the nodes'
  local ordered = wants_order(run, step, targets)
  local names = (step.prepare or ordered) and { CONTROL } or {}
  for _, x in ipairs(targets) do names[#names + 1] = x.name end
  report:step_start(step, names)
  if step.prepare and not on_control(run, step, step.prepare) then
    report:step_end(step)
    summary.failed = true
    return false
  end
  if ordered then targets = order_targets(run, step, targets) end
  if not M.run_batches(step, targets, function(batch) return run_batch(run, step, batch) end,
                       function(fn) return on_control(run, step, fn) end, function(node, why)
    report:node_result(step, node.name, { status = "skipped", error = why, duration = 0 })
  end) then summary.failed = true end
  report:step_end(step)
  -- a playbook error stops the play, as does a step no target survived
  -- (what later steps build on is missing), unless the step says
  -- continue_on_failure = true
  if summary.playbook_error then return false end
  local survived = #targets == 0
  for _, node in ipairs(targets) do if not down[node.name] then survived = true end end
  if not survived and not step.continue_on_failure and not rt.signal() then
    summary.stopped = step.name
    return false
  end
  return true
end

-- run: whether a selected step runs: an optional one only when named by
-- --only or when its `when` says so; any other when its `when` (if any) does.
local function wanted(sel, ctx)
  local step, run_it = sel.step, sel.selected
  if run_it and step.optional and not sel.explicit then
    run_it = step.when and step.when(ctx) or false
  elseif run_it and step.when and not step.optional then
    run_it = step.when(ctx) and true or false
  end
  return run_it
end

-- run: the steps in order, until one stops the play or a signal came
local function run_steps(run)
  for _, sel in ipairs(M.select_steps(run.play, run.opts)) do
    local step = sel.step
    if rt.signal() then run.summary.interrupted = true; break end
    if wanted(sel, run.ctx) then
      local go_on
      if step.once then go_on = run_once_step(run, step) else go_on = run_node_step(run, step) end
      if not go_on then break end
    end
  end
end

-- -e names the run never read in summary.unread_extra, one line; only
-- when every step ran to its end (a step --only left out, or one a failure
-- stopped, may be the one that reads a name), else a note with -v.
local LOGIN_VARS = { ssh_user = true, ssh_port = true, ssh_identity = true, ssh_known_hosts = true,
                     become = true, become_user = true, allow_insecure_http = true }
local function unread_extra(run)
  local list = run.layering:unread_extra(LOGIN_VARS)
  if #list == 0 then return end
  local parts = {}
  for _, u in ipairs(list) do
    parts[#parts + 1] = string.format("-e %s: no step read it (%s)", u.name, #u.close > 0 and
                                      ("close known names: " .. table.concat(u.close, ", ")) or "no known name is close")
  end
  local line = table.concat(parts, "; ")
  local o, sm = run.opts, run.summary
  local whole = not (o.only or o.skip or o.start_at) and not sm.failed and not sm.playbook_error
                and not sm.stopped and not sm.interrupted and not rt.signal()
  if whole then sm.unread_extra = line
  else run.report:message(nil, line .. " (not an error: not every step ran)", "log") end
end

-- record: the recap (unread inventory keys, per-node stats); sessions and
-- locks released. -> the run's summary
local function finish(run)
  local report, summary = run.report, run.summary
  if rt.signal() then summary.interrupted = true end
  task.on_before_change = nil
  local unread = run.layering:unread()
  if #unread > 0 then
    report:message(nil, string.format("inventory keys nothing read (%s): %s", tostring(run.inv.file),
                                      table.concat(unread, ", ")), "log")
  end
  unread_extra(run)
  for _, node in ipairs(run.ctx.nodes) do
    report:node_stats(node.name)
    -- abandoned work still holds its session on a worker: exit closes them
    if node.close and not task.abandoned then pcall(node.close, node) end
  end
  local Node = run.Node
  if Node and Node.close_all and not task.abandoned then pcall(Node.close_all) end
  run.st:close()
  summary.down = run.down
  -- what a later run must still do, per node (kept on the nodes; told here)
  summary.due = run.st:due_of(run.play.name)
  return summary
end

function M.run(play, opts)
  local inv, report = opts.inventory, opts.report
  local run = { play = play, opts = opts, inv = inv, report = report,
                layering = require("kcm.vars").new(inv, play, opts.extra_vars),
                down = {},       -- node name -> "failed" | "unreachable": it left the play
                summary = { failed = false, playbook_error = false, interrupted = false } }
  allow_insecure_http(inv, opts)
  run.ctx = { vars = run.layering:control(play.hosts), inventory = inv, check = opts.check, diff = opts.diff,
              play = play, nodes = {}, by_name = {}, playbook_dir = opts.playbook_dir,
              state_dir = opts.state_dir,
              down = run.down }  -- read by health gates: a node that left the play is not waited for
  run.Node = require "kcm.node"
  select_nodes(run)
  run.ctx_for = node_contexts(run)
  add_group_lookups(run)
  local locked_out = open_state(run)

  report:run_start({ name = play.name, playbook = opts.playbook, inventory = inv.file, check = opts.check,
                     nodes = #run.ctx.nodes })
  record_locked_out(run, locked_out)
  run_steps(run)
  return finish(run)
end

return M
