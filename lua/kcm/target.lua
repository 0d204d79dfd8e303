-- What every target shares, the control machine (kcm.control) and each node
-- over SSH (kcm.node): the operations (run, put, get, stat, mkdir, remove)
-- answer in one shape, fail with one error object (kcm.error), and every
-- mutating one goes through target.change, the one place --check, --diff
-- and change reporting happen. A target only says what it would change and
-- how it changes it.
local task = require "kcm.task"
local E = require "kcm.error"

local M = {}

-- The run's mode, set once by kcm.main (--check, --diff): the one place it
-- lives. The C runtime knows nothing of it.
local mode = { check = false, diff = false }
function M.configure(o)
  mode.check = o.check and true or false
  mode.diff = o.diff and true or false
end
function M.check() return mode.check end
function M.diff() return mode.diff end

local function tail(s, n)
  s = (s or ""):gsub("%s+$", "")
  if #s > n then s = "..." .. s:sub(-n) end
  return s
end
M.tail = tail

--- target.change(what, apply[, diff]) -> changed
--- what: the change a step reports ("put /x"), or a list of them, or nil when
--- there is nothing to do; diff(): shows it under --diff; apply(): makes it,
--- after the write-ahead (task.before_change). apply may return false (it
--- found nothing to do after all) or a string (what it actually did).
--- In --check nothing is applied and the change is reported as planned.
function M.change(what, apply, diff)
  if what == nil then return false end
  if diff and mode.diff then diff() end
  if mode.check then
    for _, w in ipairs(type(what) == "table" and what or { what }) do task.changed(w) end
    return true
  end
  task.before_change()
  local r = apply()
  if r == false then return false end
  if type(r) == "string" then what = r end
  for _, w in ipairs(type(what) == "table" and what or { what }) do task.changed(w) end
  return true
end

--- target.run(t, shown, opts, exec) -> {code, stdout, stderr[, changed]}
--- The shared half of t:run: --check (a command that is not readonly does not
--- run and counts as a change), the allowed exit codes, the timeout, and the
--- `changed` predicate. exec(begin) runs the command, calling begin() right
--- before it starts (the write-ahead of a command that changes something),
--- and returns code, stdout, stderr, timed_out, timeout; t:_fail_exit(message, res) may rewrite a failure's
--- message (a node adds the hint that fixes a refusal). Messages start with
--- t.label ("node1: ") when the target has one.
function M.run(t, shown, opts, exec)
  if mode.check and not opts.readonly then
    task.changed("run " .. shown)
    return { code = 0, stdout = "", stderr = "", skipped = true }
  end
  local code, out, err, timed_out, timeout = exec(function()
    if not opts.readonly then task.before_change() end
  end)
  local prefix = t.label and (t.label .. ": ") or ""
  if timed_out then
    E.raise { kind = "timeout", node = t.name, op = "run",
              message = string.format("%s%s: timed out after %gs", prefix, shown, timeout) }
  end
  local ok = false
  for _, c in ipairs(opts.ok_codes or { 0 }) do if c == code then ok = true break end end
  local res = { code = code, stdout = out, stderr = err }
  if not ok then
    local msg = string.format("%s%s: exit code %d: %s", prefix, shown, code, tail(err, 400))
    if t._fail_exit then msg = t:_fail_exit(msg, res, opts) end
    E.raise { kind = "exit", node = t.name, op = "run", code = code, message = msg }
  end
  if opts.changed then
    -- the command says whether it changed something (its output, its code)
    local c = opts.changed(res)
    res.changed = c and true or false
    if c then task.changed(type(c) == "string" and c or ("run " .. shown)) end
  end
  return res
end

--- target.source(src, who, path, lvl) -> {src=path} | {data=string}
--- A put's source: a local path or {content=...}.
function M.source(src, who, path, lvl)
  if type(src) == "table" then
    if type(src.content) ~= "string" then error(who .. "put " .. path .. ": {content=...} must be a string", lvl + 1) end
    return { data = src.content }
  elseif type(src) == "string" then
    return { src = src }
  end
  error(who .. "put " .. path .. ": source must be a local path or {content=...}", lvl + 1)
end

return M
