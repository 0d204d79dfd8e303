-- What the user sees: live lines per step and node, the recap, and the
-- JSONL event log. Secrets never reach here: primitives report paths and
-- actions, not contents, and messages pass through redact() anyway.
local cjson = require "cjson"
local rt = require "kcm.native.runtime"
local fs = require "kcm.native.fs"
local redact = require "kcm.redact"

local M = {}
M.__index = M

local COLORS = { ok = "32", changed = "33", failed = "31", unreachable = "35", skipped = "36", bold = "1" }

--- Removes anything that looks like key material or a token from a message
--- (kcm.redact holds the rules, shared with --diff).
M.redact = redact.text

function M.new(opts)
  local self = setmetatable({}, M)
  self.out = opts.out or io.stdout
  self.verbosity = opts.verbosity or 0
  local nocolor = os.getenv("NO_COLOR")
  self.color = rt.isatty(1) and not (nocolor and nocolor ~= "") and os.getenv("TERM") ~= "dumb"
  self.nodes = {}     -- name -> {ok, changed, failed, skipped, unreachable, first_error}
  self.order = {}
  self.steps = {}
  self.t0 = rt.now()
  self.spans = {}
  self.timeline = opts.timeline
  if opts.timeline then
    -- written the way the recap writes it (temp file + rename), so a path
    -- that cannot take it fails now rather than after the run did its work
    local ok, err = fs.write(opts.timeline, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
                             { mode = tonumber("600", 8) })
    if ok == nil then error({ config = true, message = "--timeline: " .. tostring(err) }, 0) end
  end
  if opts.log_json then
    -- never through a symlink planted at the path; 0600 (events carry errors)
    local f, err = fs.open_private(opts.log_json)
    if not f then error({ config = true, message = "--log-json: " .. err }, 0) end
    self.json = f
  end
  return self
end

function M:paint(kind, s)
  if not self.color or not COLORS[kind] then return s end
  return "\27[" .. COLORS[kind] .. "m" .. s .. "\27[0m"
end

-- Fields that are lists: an empty one must read [] (this lua-cjson has no
-- array metatable and encodes every empty table as {}).
local LISTS = { targets = true, changes = true }
local EMPTY = "\1kcm-empty-list\1"

function M:event(ev)
  if not self.json then return end
  ev.time = rt.time()
  if ev.error then ev.error = M.redact(ev.error) end
  if ev.changes then
    local c = {}
    for i, v in ipairs(ev.changes) do c[i] = M.redact(v) end
    ev.changes = c
  end
  local empty = false
  for k in pairs(LISTS) do
    if type(ev[k]) == "table" and next(ev[k]) == nil then ev[k] = EMPTY; empty = true end
  end
  local line = cjson.encode(ev)
  if empty then line = line:gsub('"\\u0001kcm%-empty%-list\\u0001"', "[]") end
  self.json:write(line, "\n")
  self.json:flush()
end

function M:line(s)
  -- result lines go above the live progress lines, never between them
  local live = self.live
  if live then self:erase_live() end
  self.out:write(s, "\n")
  if live then self:draw_live(live) end
  self.out:flush()
end

-- Progress (kcm.progress): what a run waits for, once a wait passed 2 s.
-- A TTY gets one live line per node, redrawn in place twice a second and
-- erased when the wait ends; anything else (CI logs, pipes) a plain line per
-- node at most every 10 s; -q nothing. --log-json gets the plain lines' events
-- (also with -q).
local SHOW_AFTER, PLAIN_EVERY, REDRAW_EVERY = 2, 10, 0.5

local function progress_text(node, w, now)
  return string.format("%s: %s %ds", node, w.text, math.floor(now - w.since))
end

function M:erase_live()
  if self.live then self.out:write(("\27[A\27[2K"):rep(#self.live), "\r") end
  self.live = nil
end

function M:draw_live(lines)
  -- a line that wrapped would take two rows and the erase only one
  local width = math.max(20, (rt.columns(self.out == io.stderr and 2 or 1) or 80) - 1)
  for _, l in ipairs(lines) do self.out:write("\27[2K", l:sub(1, width), "\n") end
  self.live = #lines > 0 and lines or nil
end

--- waits: node -> {text, since} (kcm.progress). -> seconds until the next
--- look is wanted, nil when nothing waits.
function M:progress(waits, now)
  -- -q: no lines, but --log-json still gets the events
  local show = self.verbosity >= 0
  if not show and not self.json then return nil end
  if self.live_tty == nil then
    self.live_tty = rt.isatty(self.out == io.stderr and 2 or 1) and os.getenv("TERM") ~= "dumb"
    self.progress_at = {}
  end
  local nodes, next_look = {}, nil
  for node, w in pairs(waits) do
    local age = now - w.since
    if age >= SHOW_AFTER then
      nodes[#nodes + 1] = node
    else
      next_look = math.min(next_look or math.huge, SHOW_AFTER - age)
    end
  end
  table.sort(nodes)
  local lines = {}
  for _, node in ipairs(nodes) do
    local w = waits[node]
    local text = M.redact(progress_text(node, w, now))
    lines[#lines + 1] = text
    local last = self.progress_at[node]
    if not last or now - last >= PLAIN_EVERY then
      self.progress_at[node] = now
      self:event({ event = "progress", node = node, message = M.redact(w.text), waited = now - w.since })
      if show and not self.live_tty then self.out:write("  progress ", text, "\n") end
    end
    local due = self.live_tty and REDRAW_EVERY or PLAIN_EVERY - (now - self.progress_at[node])
    next_look = math.min(next_look or math.huge, due)
  end
  if show and self.live_tty and not self.hide_live then
    self:erase_live()
    self:draw_live(lines)
  end
  self.out:flush()
  return next_look
end

function M:node_stats(name)
  local n = self.nodes[name]
  if not n then
    n = { ok = 0, changed = 0, failed = 0, skipped = 0, unreachable = 0 }
    self.nodes[name] = n
    self.order[#self.order + 1] = name
  end
  return n
end

function M:run_start(info)
  self:event({ event = "run_start", playbook = info.playbook, inventory = info.inventory,
               check = info.check, nodes = info.nodes })
  if self.verbosity >= 0 and not self.hide_steps then
    self:line(self:paint("bold", string.format("PLAY %s%s", info.name, info.check and " (check mode)" or "")))
  end
end

function M:step_start(step, targets)
  self.steps[#self.steps + 1] = { name = step.name, t0 = rt.now() }
  self:event({ event = "step_start", step = step.name, targets = targets })
  if self.verbosity >= 0 and not self.hide_steps then
    self:line(self:paint("bold", "== " .. step.name) .. (step.once and " (once)" or ""))
  end
end

function M:step_end(step)
  local s = self.steps[#self.steps]
  s.duration = rt.now() - s.t0
  self:event({ event = "step_end", step = step.name, duration = s.duration })
end

local function fmt_duration(d)
  if d < 1 then return string.format("%4dms", math.floor(d * 1000 + 0.5)) end
  return string.format("%5.2fs", d)
end

--- status: ok | changed | failed | skipped | unreachable
function M:node_result(step, node, r)
  local n = self:node_stats(node)
  n[r.status] = n[r.status] + 1
  if r.t0 and r.t1 then
    self.spans[#self.spans + 1] = { node = node, step = step.name, t0 = r.t0, t1 = r.t1, status = r.status }
  end
  if (r.status == "failed" or r.status == "unreachable") and not n.first_error then
    n.first_error = M.redact(r.error or r.status)
    n.first_error_step = step.name
  end
  local err = r.error and M.redact(r.error)
  self:event({ event = "node_result", step = step.name, node = node, status = r.status,
               changed = r.status == "changed", duration = r.duration, error = err,
               where = r.where, changes = r.changes })
  local show = self.verbosity >= 0 and (self.verbosity > 0 or r.status ~= "skipped")
  if self.verbosity < 0 then show = r.status == "failed" or r.status == "unreachable" end
  if show and not self.hide_steps then
    local label = r.status == "failed" and "FAILED" or r.status == "unreachable" and "UNREACHABLE" or r.status
    local line = string.format("  %s %-16s %s", self:paint(r.status, string.format("%-11s", label)),
                               node, fmt_duration(r.duration or 0))
    if r.changes and #r.changes > 0 and (self.verbosity > 0 or #r.changes <= 3) then
      line = line .. "  " .. M.redact(table.concat(r.changes, ", "))
    elseif r.changes and #r.changes > 3 then
      line = line .. string.format("  %d changes", #r.changes)
    end
    self:line(line)
    for _, d in ipairs(r.diffs or {}) do self:diff(node, d) end
    if err then
      for l in (err .. "\n"):gmatch("(.-)\n") do self:line("      " .. l) end
    end
  end
end

function M:message(node, msg, kind)
  if kind == "warn" then
    self:line(self:paint("changed", "  warning") .. (node and (" " .. node) or "") .. ": " .. M.redact(msg))
  elseif kind == "info" and self.verbosity >= 0 then
    self:line("    " .. (node and (node .. ": ") or "") .. M.redact(msg))
  elseif self.verbosity > 0 then
    self:line("    " .. (node and (node .. ": ") or "") .. M.redact(msg))
  end
  self:event({ event = kind, node = node, message = M.redact(msg) })
end

--- A unified diff from --diff (already redacted by its maker; redacted again).
function M:diff(node, text)
  if self.verbosity < 0 then return end
  for l in (M.redact(text):gsub("\n?$", "\n")):gmatch("(.-)\n") do
    local kind = l:sub(1, 1) == "+" and "ok" or l:sub(1, 1) == "-" and "failed" or nil
    self:line("      " .. (kind and self:paint(kind, l) or l))
  end
end

function M:recap(info)
  local total = rt.now() - self.t0
  -- an interrupt may leave waits behind: the recap is the last word
  self:erase_live()
  self.hide_live = true
  self:line("")
  self:line(self:paint("bold", "RECAP") .. string.format("  (%s)", fmt_duration(total):gsub("^%s+", "")))
  -- an ad-hoc run (kcm.adhoc) brings its own lines: its nodes by exit code
  for _, l in ipairs(info.lines or {}) do self:line(l) end
  if not info.lines then
    self:line(string.format("  %-16s %4s %8s %7s %8s %12s", "node", "ok", "changed", "failed", "skipped", "unreachable"))
  end
  for _, name in ipairs(info.lines and {} or self.order) do
    local n = self.nodes[name]
    local status = (n.unreachable > 0 and "unreachable") or (n.failed > 0 and "failed")
                   or (n.changed > 0 and "changed") or "ok"
    self:line(string.format("  %s %4d %8d %7d %8d %12d", self:paint(status, string.format("%-16s", name)),
                            n.ok, n.changed, n.failed, n.skipped, n.unreachable))
    if n.first_error then
      self:line("      first error (" .. n.first_error_step .. "): " .. (n.first_error:match("^[^\n]*")))
    end
    local due = info.due and info.due[name]
    if due then
      self:line("      still due: " .. table.concat(due, ", ") .. " (kept on the node: the next run does it)")
    end
  end
  if info.interrupted then
    self:line("  " .. self:paint("failed", "interrupted") ..
              (info.due and next(info.due) and ": the work still due is kept on each node above" or ""))
  end
  if self.verbosity >= 0 and #self.steps > 0 and not info.lines then
    local parts = {}
    for _, s in ipairs(self.steps) do
      parts[#parts + 1] = string.format("%s %s", s.name, fmt_duration(s.duration or 0):gsub("^%s+", ""))
    end
    self:line("  steps: " .. table.concat(parts, ", "))
  end
  local recap = {}
  for _, name in ipairs(self.order) do
    local n = self.nodes[name]
    recap[name] = { ok = n.ok, changed = n.changed, failed = n.failed, skipped = n.skipped,
                    unreachable = n.unreachable, first_error = n.first_error }
  end
  self:event({ event = "run_end", duration = total, exit_code = info.exit_code, recap = recap,
               interrupted = info.interrupted, due = info.due })
  if self.json then self.json:close(); self.json = nil end
  if self.timeline then
    local svg = M.redact(require("kcm.timeline").svg(self.spans, self.t0, rt.now()))
    -- temp file + rename: a symlink at the path is replaced, never followed
    local ok, err = fs.write(self.timeline, svg, { mode = tonumber("600", 8) })
    if ok == nil then io.stderr:write("kcmrun: cannot write " .. self.timeline .. ": " .. tostring(err) .. "\n") end
  end
end

return M
