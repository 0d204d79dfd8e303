-- Fuzz driver: the environment.sh importer's output parsing. The input
-- stands for what bash printed (NUL-separated S/A records): first
-- inventory.parse_env_dump on it, then inventory.load_env_sh with bash
-- replaced by the input, which builds the nodes and validates them.
-- Invariants: parse_env_dump never raises and returns vars or nil, message;
-- parsed vars written back in the same format parse to the same vars;
-- load_env_sh fails only with {config=true, message naming the file}.
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local F = dofile(dir .. "/common.lua")
local inventory = require "kcm.inventory"
local exec = require "kcm.native.exec"

local FILE = "/fuzz/environment.sh"
local output
exec.run = function() return { code = 0, stdout = output, stderr = "" } end

local function dump(vars)
  local names, out = {}, {}
  for k in pairs(vars) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local v = vars[k]
    if type(v) == "table" then
      out[#out + 1] = "A\0" .. k .. "\0" .. #v .. "\0"
      for _, item in ipairs(v) do out[#out + 1] = item .. "\0" end
    else
      out[#out + 1] = "S\0" .. k .. "\0" .. v .. "\0"
    end
  end
  return table.concat(out)
end

local function same(a, b)
  for k, v in pairs(a) do
    local w = b[k]
    if type(v) ~= type(w) then return false end
    if type(v) == "table" then
      if #v ~= #w then return false end
      for i = 1, #v do if v[i] ~= w[i] then return false end end
    elseif v ~= w then
      return false
    end
  end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

return function(data)
  local ok, vars, err = pcall(inventory.parse_env_dump, data)
  if not ok then
    if F.budget_error(vars) then return end
    F.violation("parse_env_dump raised: %s", tostring(vars))
  end
  if vars == nil then
    if type(err) ~= "string" then F.violation("parse_env_dump failed without a message") end
  else
    if type(vars) ~= "table" then F.violation("parse_env_dump returned a %s", type(vars)) end
    local again, err2 = inventory.parse_env_dump(dump(vars))
    if not again then F.violation("re-dumped vars do not parse: %s", tostring(err2)) end
    if not same(vars, again) then F.violation("re-dumped vars parse differently") end
  end
  output = data
  local ok2, inv = pcall(inventory.load_env_sh, FILE)
  if not ok2 then
    if F.budget_error(inv) then return end
    if type(inv) ~= "table" or inv.config ~= true or type(inv.message) ~= "string" or
       not inv.message:find(FILE, 1, true) then
      F.violation("load_env_sh error is not a config error naming the file: %s",
        type(inv) == "table" and tostring(inv.message) or tostring(inv))
    end
    return
  end
  if #inv.nodes == 0 or #inv.groups.masters ~= #inv.nodes then
    F.violation("load_env_sh gave %d nodes, %d masters", #inv.nodes, #inv.groups.masters)
  end
end
