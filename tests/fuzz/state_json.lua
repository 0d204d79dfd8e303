-- Fuzz driver: the state record a node keeps (JSON, lua/kcm/state.lua's
-- decode_due), read back on every run: a file another run or a crash left.
-- Invariants: it never raises; it returns a table of playbook -> host set
-- (every value true) or nil and a message; what it returns, encoded the way
-- the state is written, decodes to the same sets.
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local F = dofile(dir .. "/common.lua")
local state = require "kcm.state"
local cjson = require "cjson"

local function count(due)
  local n = 0
  for pb, set in pairs(due) do
    if type(pb) ~= "string" or type(set) ~= "table" then F.violation("entry %s is a %s", tostring(pb), type(set)) end
    for h, v in pairs(set) do
      if type(h) ~= "string" or v ~= true then F.violation("%s: host %s = %s", pb, tostring(h), tostring(v)) end
      n = n + 1
    end
  end
  return n
end

return function(data)
  local ok, due, err = pcall(state._decode_due, data)
  if not ok then
    if F.budget_error(due) then return end
    F.violation("decode raised: %s", tostring(due))
  end
  if due == nil then
    if type(err) ~= "string" or err == "" then F.violation("no message for an unreadable record") end
    return
  end
  local n = count(due)
  local again = state._decode_due(cjson.encode({ due = due }))
  if not again or count(again) ~= n then F.violation("re-encoded record reads differently") end
end
