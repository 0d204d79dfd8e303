-- Local commands on the control machine: an argv list run without a shell (or
-- one string, run by /bin/sh -c, that the playbook wrote itself), on a worker.
local native = require "kcm.native.exec"
local task = require "kcm.task"

local M = {}

local function tail(s, n)
  s = s or ""
  if #s > n then s = "..." .. s:sub(-n) end
  return (s:gsub("%s+$", ""))
end

local function quote(a)
  if a:match("^[%w%._/:=@%-]+$") then return a end
  return "'" .. a:gsub("'", "'\\''") .. "'"
end

function M.cmdline(argv)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = quote(tostring(a)) end
  return table.concat(parts, " ")
end

--- exec.run(argv, {stdin, env, cwd, timeout, ok_codes={0}, readonly=false, changed})
--- -> {code, stdout, stderr, timed_out[, changed]}; changed=function(res) as in
--- node:run: a truthy answer records a change.
function M.run(argv, opts)
  opts = opts or {}
  if type(argv) == "string" then argv = { "/bin/sh", "-c", argv } end
  if task.check() and not opts.readonly then
    task.changed("run " .. M.cmdline(argv))
    return { code = 0, stdout = "", stderr = "", skipped = true }
  end
  local r = native.run { argv = argv, stdin = opts.stdin, env = opts.env, cwd = opts.cwd,
                         timeout = opts.timeout }
  local ok_codes = opts.ok_codes or { 0 }
  local ok = false
  for _, c in ipairs(ok_codes) do if c == r.code then ok = true end end
  if r.timed_out then
    error(string.format("%s: timed out after %gs", M.cmdline(argv), opts.timeout), 2)
  end
  if not ok then
    error(string.format("%s: exit code %d: %s", M.cmdline(argv), r.code, tail(r.stderr, 400)), 2)
  end
  if opts.changed then
    local c = opts.changed(r)
    r.changed = c and true or false
    if c then task.changed(type(c) == "string" and c or ("run " .. M.cmdline(argv))) end
  end
  return r
end

return M
