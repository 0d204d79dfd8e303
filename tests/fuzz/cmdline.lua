-- Fuzz driver: the command line (lua/kcm/main.lua's parse), on argv made
-- of the input's NUL- or newline-separated words. Only the parser runs:
-- nothing is loaded, connected or written.
-- Invariants: it returns an options table or raises a usage error
-- ({usage = true, message}) of one line; nothing else (an internal error).
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local F = dofile(dir .. "/common.lua")

-- main.lua exposes only its entry point; its parser is an upvalue of it
-- (or of a function it calls)
local function find_upvalue(fn, name, seen)
  seen = seen or {}
  if seen[fn] then return nil end
  seen[fn] = true
  for i = 1, 255 do
    local n, v = debug.getupvalue(fn, i)
    if not n then break end
    if n == name and type(v) == "function" then return v end
    if type(v) == "function" then
      local f = find_upvalue(v, name, seen)
      if f then return f end
    end
  end
end
local parse = assert(find_upvalue(require "kcm.main", "parse"), "main.lua has no parse function")

return function(data)
  local argv = {}
  for w in (data .. "\0"):gmatch("([^%z\n]*)[%z\n]") do argv[#argv + 1] = w end
  if argv[#argv] == "" then argv[#argv] = nil end
  local ok, res = pcall(parse, argv)
  if ok then
    if type(res) ~= "table" then F.violation("parse returned a %s", type(res)) end
    return
  end
  if F.budget_error(res) then return end
  if type(res) ~= "table" or not res.usage or type(res.message) ~= "string" then
    F.violation("not a usage error: %s", type(res) == "table" and tostring(res.message) or tostring(res))
  end
  if res.message:find("\n") then F.violation("usage error of several lines: %s", res.message) end
end
