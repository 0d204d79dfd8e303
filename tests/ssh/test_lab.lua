-- Node primitives on the 3 lab nodes at once (KCMRUN_LAB_DIR/inventory.lua):
-- parallel run/put/get/stat/mkdir, per-node isolation, changed/unchanged,
-- mode and owner, hostile argv, strict host keys from the lab's known_hosts.
local T = require "sshtest"
local task = require "kcm.task"
local Node = require "kcm.node"

local inv = T.inventory(os.getenv("KCM_SSH_INV"))
assert(#inv.nodes >= 3, "the lab has fewer than 3 nodes")
local nodes = {}
for i = 1, 3 do nodes[i] = T.node(inv, i) end
local R = "/tmp/kcm-ssh-lab"

local function each(fn)
  local fns = {}
  for i, n in ipairs(nodes) do fns[i] = function() return fn(n, i) end end
  return task.parallel(fns)
end

-- each node is itself: hostname, address
local res = each(function(n) return n:run("hostname; echo $SSH_CONNECTION").stdout end)
for i, out in ipairs(res) do
  local host, conn = out:match("^(%S+)\n(.-)\n$")
  assert(host == inv.nodes[i].name, "node" .. i .. " says it is " .. tostring(host))
  assert(conn:match("%S+ %d+ " .. inv.nodes[i].host:gsub("%.", "%%.") .. " 22$"), "connected to " .. conn)
end

each(function(n) n:remove(R, { recursive = true }) end)
res = each(function(n) return n:mkdir(R .. "/sub", { mode = "0750" }) end)
for i = 1, 3 do assert(res[i] == true, "mkdir changed on node" .. i) end

-- a file put on node1 only is absent on node2 and node3
assert(nodes[1]:put({ content = "only on node1\n" }, R .. "/only1") == true)
res = each(function(n) return n:stat(R .. "/only1") ~= nil end)
assert(res[1] == true and res[2] == false and res[3] == false, "file leaked between nodes")

-- same put on all: changed, then unchanged; 0600 and owner applied
local function put_all()
  return each(function(n)
    return n:put({ content = "secret of " .. n.name .. "\n" }, R .. "/sub/key.pem",
                 { mode = "0600", owner = "nobody", group = "nogroup" })
  end)
end
res = put_all()
for i = 1, 3 do assert(res[i] == true, "first put changed on node" .. i) end
res = put_all()
for i = 1, 3 do assert(res[i] == false, "second put unchanged on node" .. i) end
res = each(function(n)
  return { n:run({ "stat", "-c", "%a %U:%G", R .. "/sub/key.pem" }).stdout, n:get(R .. "/sub/key.pem"),
           n:stat(R .. "/sub/key.pem"), n:run({ "stat", "-c", "%a", R .. "/sub" }).stdout }
end)
for i, r in ipairs(res) do
  assert(r[1] == "600 nobody:nogroup\n", "node" .. i .. ": " .. r[1])
  assert(r[2] == "secret of node" .. i .. "\n", "node" .. i .. " content")
  assert(r[3].type == "file" and r[3].mode == tonumber("600", 8) and r[3].size == #r[2])
  assert(r[4] == "750\n", "mkdir mode on node" .. i)
end

-- hostile argv reaches the remote command literally on every node
local hostile = { "it's", '"q"', "$(touch " .. R .. "/pwned)", "`touch " .. R .. "/pwned`",
                  "a; touch " .. R .. "/pwned", "l1\nl2", "$HOME", "*", "\\", "" }
res = each(function(n)
  local argv = { "printf", "%s\\0" }
  for _, v in ipairs(hostile) do argv[#argv + 1] = v end
  return { n:run(argv).stdout, n:stat(R .. "/pwned") }
end)
for i, r in ipairs(res) do
  local k = 0
  for item in r[1]:gmatch("(.-)%z") do
    k = k + 1
    assert(item == hostile[k], string.format("node%d arg %d: %q", i, k, item))
  end
  assert(k == #hostile and r[2] == nil, "node" .. i .. ": hostile argv")
end

each(function(n) n:remove(R, { recursive = true }) end)
Node.close_all()
print("ok: lab")
