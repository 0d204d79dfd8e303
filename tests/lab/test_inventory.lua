-- The files `kcmrun lab up` writes are inventories kcmrun itself loads, and they agree:
-- same nodes, same addresses, ssh files that exist. Run: kcmrun test_inventory.lua
-- with KCMRUN_LAB_DIR naming an up lab.
local inventory = require "kcm.inventory"
local fs = require "kcm.native.fs"

local dir = assert(os.getenv("KCMRUN_LAB_DIR"), "KCMRUN_LAB_DIR is not set")
local lua_inv = inventory.load(dir .. "/inventory.lua")
local sh_inv = inventory.load(dir .. "/environment.sh")

assert(#lua_inv.nodes >= 1, "no nodes in inventory.lua")
assert(#lua_inv.nodes == #sh_inv.nodes,
  ("inventory.lua has %d nodes, environment.sh %d"):format(#lua_inv.nodes, #sh_inv.nodes))
local subnet = assert(lua_inv.vars.subnet, "vars.subnet missing"):match("^(169%.254%.%d+)%.0/24$")
assert(subnet, "subnet is not a 169.254.x.0/24: " .. tostring(lua_inv.vars.subnet))
for i, n in ipairs(lua_inv.nodes) do
  assert(n.name == "node" .. i, "node " .. i .. " is named " .. n.name)
  assert(n.host == ("%s.%d"):format(subnet, 100 + i), n.name .. " has address " .. n.host)
  -- the login user comes from the ssh table: a per-node user would override ssh.user
  assert(n.port == 22 and n.user == nil and lua_inv.ssh.user == "root", n.name .. ": port/user")
  assert(sh_inv.nodes[i].name == n.name and sh_inv.nodes[i].host == n.host,
    "environment.sh disagrees on " .. n.name)
  local st = fs.stat(n.vars.lab_upper)
  assert(st and st.type == "dir", n.name .. ": lab_upper is not a directory")
end
assert(#lua_inv.groups.masters == #lua_inv.nodes, "masters is not every node")

for _, inv in ipairs { lua_inv, sh_inv } do
  assert(inv.ssh.config == dir .. "/ssh_config", inv.file .. ": ssh.config " .. tostring(inv.ssh.config))
  assert(inv.ssh.known_hosts == dir .. "/known_hosts", inv.file .. ": ssh.known_hosts")
  assert(inv.ssh.identity == dir .. "/id_ed25519", inv.file .. ": ssh.identity")
  for _, f in ipairs { inv.ssh.config, inv.ssh.known_hosts, inv.ssh.identity } do
    assert(fs.stat(f), inv.file .. ": " .. f .. " does not exist")
  end
end
assert(fs.stat(dir .. "/id_ed25519").mode & 0x1ff == tonumber("600", 8), "client key is not 0600")
assert(lua_inv.ssh.connect_timeout == 5, "connect_timeout")
assert(sh_inv.vars.K8S_DIR == "/data/k8s/k8s" and sh_inv.vars.SERVICE_CIDR == "10.254.0.0/16",
  "environment.sh lacks the procedure's K8S_DIR/SERVICE_CIDR")
-- the lab writes only the documented names; the library has no lower-case fallbacks
assert(lua_inv.vars.K8S_DIR == "/data/k8s/k8s" and lua_inv.vars.SERVICE_CIDR == "10.254.0.0/16",
  "inventory.lua lacks K8S_DIR/SERVICE_CIDR")
assert(lua_inv.vars.k8s_dir == nil and lua_inv.vars.service_cidr == nil,
  "inventory.lua still writes the undocumented k8s_dir/service_cidr")
assert(sh_inv.vars.KUBE_APISERVER == lua_inv.vars.KUBE_APISERVER or lua_inv.vars.KUBE_APISERVER == nil,
  "KUBE_APISERVER differs between inventory.lua and environment.sh")
print(("ok: %d nodes on %s.0/24 in both inventories"):format(#lua_inv.nodes, subnet))
