-- Shared by the Lua fuzz drivers (loaded with dofile from each driver).
local F = {}

--- Raises the marker the C harness turns into a crash report.
function F.violation(fmt, ...)
  error({ fuzz_invariant = string.format(fmt, ...) }, 0)
end

-- Errors any code may raise under the harness's budgets: not findings.
local function budget_error(err)
  local s = tostring(err)
  return s:find("not enough memory", 1, true) or s:find("fuzz: instruction budget exhausted", 1, true)
end
F.budget_error = budget_error

--- A string error that starts with `prefix` (after an optional "file:line: "
--- position); anything else is a finding: users must be told what is wrong where.
function F.expect_error(err, prefix)
  if budget_error(err) then return end
  if type(err) ~= "string" then F.violation("error is a %s, not a message: %s", type(err), tostring(err)) end
  if err:sub(1, #prefix) == prefix then return end   -- a value like "8e:0: f1" is no position
  local s = err:gsub("^[^\n]-:%d+: ", "", 1)
  if s:sub(1, #prefix) ~= prefix then
    F.violation("error does not start with %q: %s", prefix, err)
  end
end

-- fs.read stands in for the disk: the fuzz input is the only file there is,
-- so an input can never make the code under test read /dev/zero or a key.
local fs = require "kcm.native.fs"
F.files = {}
fs.read = function(path)
  local d = F.files[path]
  if d then return d end
  return nil, tostring(path) .. ": No such file or directory"
end

return F
