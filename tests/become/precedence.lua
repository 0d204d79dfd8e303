-- Login settings layering, without a lab: -e > command line > node > group >
-- ssh table > ssh_config; overrides come back as notes (-v prints them);
-- aliases resolve to their HostName; bad become settings name the file.
local inventory = require "kcm.inventory"
local Node = require "kcm.node"

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local function write(name, text)
  local f = assert(io.open(dir .. "/" .. name, "w")); f:write(text); f:close()
  return dir .. "/" .. name
end
local function eq(a, b, what)
  if a ~= b then error(string.format("%s: got %s, want %s", what, tostring(a), tostring(b)), 2) end
end
local function has(notes, pat, what)
  for _, n in ipairs(notes) do if n:find(pat, 1, true) then return end end
  error(what .. ": no note '" .. pat .. "' in:\n" .. table.concat(notes, "\n"), 2)
end

local cfg = write("ssh_config", [[
Host a1
  HostName 10.1.0.1
Host a*
  User cfguser
  Port 2022
]])
local inv = inventory.load(write("inv.lua", string.format([[
return {
  ssh = { config = %q, user = "tableuser", become = false },
  nodes = { { name = "a1" }, { name = "a2", host = "10.1.0.2", user = "nodeuser", become = true, become_user = "svc" },
            { name = "a3", host = "10.1.0.3", ssh = { user = "nodessh" } }, { name = "a4", host = "10.1.0.4" } },
  groups = { masters = { "a1", "a2", "a3", ssh = { user = "groupuser", become = true } } },
}]], cfg)))

-- the alias: no host in the inventory, the address from ssh_config
eq(inv.by_name.a1.host, "10.1.0.1", "alias resolved at load")
local s, notes = inventory.node_spec(inv, inv.by_name.a1, {}, {})
eq(s.address, "10.1.0.1", "address of the alias")
eq(s.user, "groupuser", "group > ssh table > ssh_config")
eq(s.become, true, "group become > ssh table")
has(notes, 'a1: ssh user = "groupuser" (group masters) overrides "tableuser" (ssh table)', "group note")
-- a4 is in no group: the ssh table wins over ssh_config
s = inventory.node_spec(inv, inv.by_name.a4, {}, {})
eq(s.user, "tableuser", "ssh table > ssh_config")
eq(s.become, false, "ssh table become")
eq(s.port, nil, "ssh_config's Port is left to the ssh layer")
-- the node's own fields beat its group, and say so
s, notes = inventory.node_spec(inv, inv.by_name.a2, {}, {})
eq(s.user, "nodeuser", "node > group")
eq(s.become_user, "svc", "node become_user")
has(notes, 'a2: ssh user = "nodeuser" (node a2) overrides "groupuser" (group masters)', "node note")
s = inventory.node_spec(inv, inv.by_name.a3, {}, {})
eq(s.user, "nodessh", "node ssh table > group")
-- the command line beats the node, -e beats everything
s, notes = inventory.node_spec(inv, inv.by_name.a2, { become = false }, { ssh_user = "euser" })
eq(s.become, false, "--become=false from the command line > node")
eq(s.user, "euser", "-e ssh_user > node")
has(notes, 'a2: ssh user = "euser" (-e) overrides "nodeuser" (node a2)', "-e note")
s = inventory.node_spec(inv, inv.by_name.a4, { become = true }, {})
eq(s.become, true, "--become")
local n = Node.new(s)
eq(n.become_user, "root", "become_user defaults to root")
eq(table.concat(n:_become_argv(), " "), "sudo -n -u root --", "argv prefix")
eq(n:_become_argv({ become = false }), nil, "a call's become=false")
-- --ssh-config on the command line re-resolves an alias
local cfg2 = write("ssh_config2", "Host a1\n  HostName 10.2.0.1\n")
s = inventory.node_spec(inv, inv.by_name.a1, { config = cfg2 }, {})
eq(s.address, "10.2.0.1", "alias resolved with --ssh-config")

-- bad become settings: errors naming the file
for _, case in ipairs {
  { 'ssh = { become_method = "su" }', 'ssh: become_method "su" is not supported' },
  { 'ssh = { become = "yes" }', "become must be true or false" },
  { 'groups = { g = { "x", ssh = { become_method = "doas" } } }', 'group g ssh: become_method "doas"' },
} do
  local f = write("bad.lua", "return { nodes = { { name = 'x', host = '10.0.0.9' } }, " .. case[1] .. " }")
  local ok, err = pcall(inventory.load, f)
  assert(not ok, case[1] .. " was accepted")
  local msg = type(err) == "table" and err.message or tostring(err)
  assert(msg:find(f, 1, true) and msg:find(case[2], 1, true), "error for " .. case[1] .. ": " .. msg)
end
os.execute("rm -rf '" .. dir .. "'")
print("ok: precedence -e > command line > node > group > ssh table > ssh_config, notes, aliases, bad become settings")
