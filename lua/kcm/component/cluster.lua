-- A component's members as its peers see them: every node of the play's
-- group (whatever --limit says: certificates and cluster lists name all of
-- them), their addresses, lists joined from them, and the HA test's table.
local M = {}

--- members(ctx, group): the runner's ctx.members, entries {name, host,
--- address (after ssh_config), port, vars, node}. Without it (a test's ctx)
--- the inventory's group.
function M.members(ctx, group)
  group = group or ctx.play.hosts
  if ctx.members then return ctx.members(group) end
  local out = {}
  for _, n in ipairs(ctx.inventory.groups[group] or { group }) do
    local node = assert(ctx.by_name[n], "no node " .. tostring(n))
    out[#out + 1] = { name = n, host = node.host, address = node.host, node = node }
  end
  return out
end

--- The address of a node as its peers and the control machine reach it: its
--- member entry's (ssh_config's HostName for an alias), else its host.
function M.address(ctx, node)
  for _, m in ipairs(M.members(ctx)) do
    if m.name == node.name then return m.address end
  end
  return node.host
end

--- "fmt" applied to every member (%name, %ip), joined by sep (",")
function M.join(members, fmt, sep)
  local out = {}
  for _, n in ipairs(members) do out[#out + 1] = fmt:gsub("%%name", n.name):gsub("%%ip", n.address) end
  return table.concat(out, sep or ",")
end

--- The HA test's table (same for every component):
--- rows = { {label=, stopped=, from=, to=, took=} }, budget seconds, note
function M.ha_table(rows, budget, note)
  local task = require "kcm.task"
  task.info(string.format("%-18s %-16s %-8s %-8s %9s %9s", "trial", "stopped", "from", "to", "failover", "budget"))
  for _, r in ipairs(rows) do
    task.info(string.format("%-18s %-16s %-8s %-8s %8.1fs %8.1fs", r.label, r.stopped, r.from, r.to or "-", r.took, budget))
  end
  if note then task.info(note) end
end

return M
