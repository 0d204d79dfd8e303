-- Values from the command line (-e) and environment.sh arrive as text; the
-- code that reads one says which type it needs, and text that is not a
-- value of that type is an error naming where it came from (a `yes` read
-- as "not true" turned become off in silence).
local M = {}

local function fail(where, fmt, ...)
  error({ config = true, message = string.format("%s: " .. fmt, where, ...) }, 0)
end

local BOOL = { ["true"] = true, yes = true, on = true, ["1"] = true,
               ["false"] = false, no = false, off = false, ["0"] = false }

--- value.bool(v, where) -> true | false | nil (v nil). Booleans pass; text
--- is one of true/false/yes/no/on/off/1/0 in any case, else an error.
function M.bool(v, where)
  if v == nil or type(v) == "boolean" then return v end
  local b = BOOL[tostring(v):lower()]
  if b == nil then
    fail(where, "%q is not a boolean (use true/false, yes/no, on/off or 1/0)", tostring(v))
  end
  return b
end

--- value.port(v, where) -> integer 1..65535 | nil (v nil), else an error.
function M.port(v, where)
  if v == nil then return nil end
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 or n > 65535 or (type(v) == "string" and not v:match("^%d+$")) then
    fail(where, "%q is not a TCP port (1-65535)", tostring(v))
  end
  return n
end

return M
