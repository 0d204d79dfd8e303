-- Fuzz driver: inventory.load_lua on a temp file (the Lua inventory), which
-- runs the file in a sandbox without io/os/load (an inventory is code; the
-- fuzzer must not delete files) and then validates what it returned.
-- Invariants: every failure is the loader's {config=true, message=...};
-- a loaded inventory is consistent (valid unique names, string hosts, ports
-- 1..65535, groups naming known nodes, an `all` group).
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local F = dofile(dir .. "/common.lua")
local inventory = require "kcm.inventory"

local FILE = FUZZ_TMPDIR .. "/inventory.lua"

-- inventory.lua gives the chunk an environment whose __index is the global
-- `_G`; point that name at a sandbox (the real globals stay reachable here).
local G = _G
local sandbox = {
  string = string, table = table, math = math, utf8 = utf8,
  pairs = pairs, ipairs = ipairs, next = next, select = select, type = type,
  tostring = tostring, tonumber = tonumber, error = error, assert = assert, pcall = pcall,
  os = { getenv = os.getenv, time = os.time },
}
sandbox._G = sandbox

local function check(inv)
  local seen = {}
  for i, n in ipairs(inv.nodes) do
    if type(n.name) ~= "string" or not n.name:match("^[%w][%w%._%-]*$") then
      F.violation("nodes[%d]: bad name %s survived", i, tostring(n.name))
    end
    if seen[n.name] then F.violation("duplicate node %s survived", n.name) end
    seen[n.name] = true
    if inv.by_name[n.name] ~= n then F.violation("by_name[%s] is not the node", n.name) end
    if type(n.host) ~= "string" or n.host:find("[%s'\"`$;|&<>\\]") then
      F.violation("node %s: host %s survived", n.name, tostring(n.host))
    end
    if n.port ~= nil and (math.type(n.port) ~= "integer" or n.port < 1 or n.port > 65535) then
      F.violation("node %s: port %s survived", n.name, tostring(n.port))
    end
  end
  if type(inv.groups) ~= "table" or type(inv.groups.all) ~= "table" then F.violation("no group `all`") end
  for g, members in pairs(inv.groups) do
    for _, m in ipairs(members) do
      if not seen[m] then F.violation("group %s names unknown node %s", tostring(g), tostring(m)) end
    end
  end
end

local function expect_config_error(err)
  if F.budget_error(err) then return end
  if type(err) ~= "table" or err.config ~= true or type(err.message) ~= "string" then
    F.violation("inventory error is not a config error: %s", type(err) == "table" and tostring(err.message) or tostring(err))
  end
  if not err.message:find(FILE, 1, true) and not F.budget_error(err.message) then
    F.violation("inventory error does not name the file: %s", err.message)
  end
end

return function(data)
  local f = assert(io.open(FILE, "wb"))
  f:write(data)
  f:close()
  G._G = sandbox
  local ok, inv = pcall(inventory.load_lua, FILE)
  G._G = G
  os.remove(FILE)
  if not ok then return expect_config_error(inv) end
  check(inv)
end
