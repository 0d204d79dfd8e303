-- kcm.pattern against Ansible's meaning of host patterns (run as a kcmrun script).
local pattern = require "kcm.pattern"

local inv = {
  nodes = { { name = "node1" }, { name = "node2" }, { name = "node3" }, { name = "web01" }, { name = "web02" } },
  groups = { masters = { "node1", "node2", "node3" }, etcd = { "node2", "node3" }, webservers = { "web01", "web02" }, empty = {} },
}
inv.groups.all = { "node1", "node2", "node3", "web01", "web02" }

local failures = 0
local function check(pat, want)
  local got, why = pattern.match(inv, pat)
  local shown = got and (#got > 0 and table.concat(got, ",") or "{}: " .. tostring(why)) or ("nil: " .. tostring(why))
  if shown ~= want then
    failures = failures + 1
    print(string.format("FAIL %-22s got %s, want %s", "'" .. pat .. "'", shown, want))
  else
    print(string.format("ok   %-22s %s", "'" .. pat .. "'", shown))
  end
end

check("etcd", "node2,node3")                      -- a group
check("node2", "node2")                           -- a node
check("all", "node1,node2,node3,web01,web02")
check("node*", "node1,node2,node3")               -- glob on node names
check("w*", "web01,web02")                        -- glob on node and group names
check("webservers[1]", "web02")                   -- a group subscript wins over a name range
check("node[1:2]", "node1,node2")                 -- a name range
check("web[01:02]", "web01,web02")                -- zero-padded range
check("masters[0:1]", "node1,node2")              -- a group's subscript, from 0
check("masters[-1]", "node3")
check("node1,web02", "node1,web02")               -- union, inventory order
check("web02:node1", "node1,web02")
check("all:!node2", "node1,node3,web01,web02")    -- exclusion
check("!node2:all", "node1,node3,web01,web02")    -- Ansible's order: unions first
check("!webservers", "node1,node2,node3")                -- only exclusions: from all
check("masters:&etcd", "node2,node3")             -- intersection
check("masters:&etcd:!node3", "node2")
check(" masters , !node1 ", "node2,node3")        -- spaces around terms
check("nodes", "nil: it matches no node ('nodes' names no group or node)")
check("master", "nil: it matches no node ('master' names no group or node)")
check("", "nil: the pattern is empty")
check(",", "nil: the pattern is empty")
check("node2:!node2", "{}: it matches no node")   -- no typo: nothing to do, the caller decides
check("empty", "{}: it matches no node")          -- an empty group exists
check("node[7:9]", "nil: it matches no node ('node[7:9]' names no group or node)")
check("node%", "nil: it matches no node ('node%' names no group or node)")   -- a Lua magic char is literal
local known = pattern.known(inv)
if known ~= "groups: all, empty, etcd, masters, webservers; nodes: node1, node2, node3, web01, web02" then
  failures = failures + 1
  print("FAIL known: " .. known)
end
if failures > 0 then error(failures .. " pattern case(s) failed", 0) end
print("pattern: all cases pass")
