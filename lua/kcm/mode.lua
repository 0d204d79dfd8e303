-- File modes as playbooks write them ("0644", "644" or 420) -> a number;
-- one reader for the control machine (kcm.files) and the nodes (kcm.node).
local M = {}

--- mode.parse(m, default) -> number; a malformed string raises at the
--- caller's caller (the playbook line that gave it).
function M.parse(m, default)
  if m == nil then return default end
  if type(m) == "number" then return m end
  local s = tostring(m)
  if type(m) ~= "string" or not s:match("^0?[0-7][0-7][0-7][0-7]?$") then
    error("bad mode '" .. s .. "' (want e.g. \"0644\")", 3)
  end
  return tonumber(s, 8)
end

--- mode.format(420) -> "0644"
function M.format(m) return ("%04o"):format(m) end

return M
