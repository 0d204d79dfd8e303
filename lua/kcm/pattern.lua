-- Host patterns as Ansible reads them, for --limit, `kcmrun run PATTERN` and a
-- playbook's `hosts`: group and node names, globs (node*), ranges (node[1:2],
-- or masters[0:1] by position in a group), unions (a,b or a:b), intersection
-- (masters:&etcd) and exclusion (all:!node2). Ansible's order applies: the
-- unions first, then the intersections, then the exclusions, whatever order
-- they were written in, so `!node2:all` means what `all:!node2` does.
local M = {}

-- Splits on ',' and ':' outside brackets (node[1:2] keeps its colon).
local function terms(pattern)
  local out, cur, depth = {}, {}, 0
  for ch in pattern:gmatch(".") do
    if ch == "[" then depth = depth + 1 elseif ch == "]" then depth = math.max(0, depth - 1) end
    if (ch == "," or ch == ":") and depth == 0 then
      out[#out + 1] = table.concat(cur); cur = {}
    else
      cur[#cur + 1] = ch
    end
  end
  out[#out + 1] = table.concat(cur)
  local kept = {}
  for _, t in ipairs(out) do
    t = t:match("^%s*(.-)%s*$")
    if t ~= "" then kept[#kept + 1] = t end
  end
  return kept
end

-- A shell glob (* ? [...]) as an anchored Lua pattern.
local function glob_to_lua(g)
  local out = { "^" }
  local i = 1
  while i <= #g do
    local c = g:sub(i, i)
    if c == "*" then out[#out + 1] = ".*"
    elseif c == "?" then out[#out + 1] = "."
    elseif c == "[" then
      local close = g:find("]", i + 1, true)
      if not close then out[#out + 1] = "%[" else
        local set = g:sub(i + 1, close - 1):gsub("^!", "^"):gsub("%%", "%%%%")
        out[#out + 1] = "[" .. set .. "]"
        i = close
      end
    else out[#out + 1] = c:gsub("%p", "%%%0") end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

-- The names one term selects, in inventory order. inv: {nodes = {names...},
-- groups = {name = {members...}}}.
local function select_term(inv, term)
  local groups, is_node = inv.groups, inv.is_node
  if groups[term] then return groups[term] end
  if is_node[term] then return { term } end
  -- name[a:b] / name[a]: by position in a group (Ansible's subscript, from
  -- 0, both ends included), else the nodes named prefix<a>..prefix<b>
  local base, a, b = term:match("^(.-)%[(%-?%d*):?(%-?%d*)%]$")
  if base and not term:find("[*?]") then
    local single = not term:find(":", 1, true)
    if groups[base] then
      local g = groups[base]
      local i = tonumber(a) or 0
      local j = single and i or (tonumber(b) or #g - 1)
      if i < 0 then i = #g + i end
      if j < 0 then j = #g + j end
      local out = {}
      for k = i, j do if g[k + 1] then out[#out + 1] = g[k + 1] end end
      return out
    end
    local lo, hi = tonumber(a), single and tonumber(a) or tonumber(b)
    if lo and hi then
      local width = (#a > 1 and a:sub(1, 1) == "0") and #a or 0
      local want = {}
      for k = lo, hi do want[base .. string.format("%0" .. width .. "d", k)] = true end
      local out = {}
      for _, n in ipairs(inv.nodes) do if want[n] then out[#out + 1] = n end end
      return out
    end
  end
  if term:find("[*?%[]") then
    local lp = glob_to_lua(term)
    local out, seen = {}, {}
    -- a glob matches node names and group names (as Ansible's does)
    for _, n in ipairs(inv.nodes) do
      if n:match(lp) then out[#out + 1] = n; seen[n] = true end
    end
    for _, g in ipairs(inv.group_names) do
      if g:match(lp) then
        for _, n in ipairs(groups[g]) do if not seen[n] then out[#out + 1] = n; seen[n] = true end end
      end
    end
    return out
  end
  return {}
end

--- M.view(inventory) -> what match() needs from a loaded inventory (kcm.inventory).
function M.view(inv)
  local names, is_node, gnames = {}, {}, {}
  for i, n in ipairs(inv.nodes or {}) do
    local name = type(n) == "table" and n.name or n
    names[i], is_node[name] = name, true
  end
  local groups = {}
  for g, members in pairs(inv.groups or {}) do
    local list = {}
    for i, m in ipairs(members) do list[i] = m end
    groups[g] = list
    gnames[#gnames + 1] = g
  end
  groups.all = groups.all or names
  table.sort(gnames)
  return { nodes = names, is_node = is_node, groups = groups, group_names = gnames }
end

-- one view per loaded inventory: ctx.hosts() asks for every step and node
local views = setmetatable({}, { __mode = "k" })
local function view_of(inv)
  if inv.is_node then return inv end
  local v = views[inv]
  if not v then v = M.view(inv); views[inv] = v end
  return v
end

--- M.match(inv, pattern) -> names (inventory order) | nil, why.
--- nil when the pattern is empty or a term names no group and no node (a
--- typo) and nothing matched; {}, why when the terms exist but select no
--- node (an empty group, all:!all). inv is a loaded inventory or M.view of one.
function M.match(inv, pattern)
  inv = view_of(inv)
  if type(pattern) ~= "string" then return nil, "a host pattern must be a string, not " .. type(pattern) end
  local list = terms(pattern)
  if #list == 0 then return nil, "the pattern is empty" end
  local unions, inters, excls = {}, {}, {}
  for _, t in ipairs(list) do
    local op, rest = t:match("^([!&])(.*)$")
    if op == "!" then excls[#excls + 1] = rest
    elseif op == "&" then inters[#inters + 1] = rest
    else unions[#unions + 1] = t end
  end
  if #unions == 0 then unions[1] = "all" end
  local set, empty = {}, {}
  local function sel(t)
    local names = select_term(inv, t)
    -- an empty group exists (a playbook on it has nothing to do); a name
    -- that is no group and no node is a typo
    if #names == 0 and not inv.groups[t] then empty[#empty + 1] = t end
    return names
  end
  for _, t in ipairs(unions) do for _, n in ipairs(sel(t)) do set[n] = true end end
  for _, t in ipairs(inters) do
    local keep = {}
    for _, n in ipairs(sel(t)) do keep[n] = set[n] end
    set = keep
  end
  for _, t in ipairs(excls) do for _, n in ipairs(sel(t)) do set[n] = nil end end
  local out = {}
  for _, n in ipairs(inv.nodes) do if set[n] then out[#out + 1] = n end end
  if #out == 0 and #empty > 0 then
    return nil, "it matches no node ('" .. table.concat(empty, "', '") .. "' name" .. (#empty == 1 and "s" or "") ..
                " no group or node)"
  end
  return out, #out == 0 and "it matches no node" or nil
end

--- What exists, for an error about a pattern that matched nothing.
function M.known(inv)
  inv = view_of(inv)
  local gs = {}
  for _, g in ipairs(inv.group_names) do gs[#gs + 1] = g end
  if not inv.groups.all or #gs == 0 then gs[#gs + 1] = "all" end
  return string.format("groups: %s; nodes: %s", table.concat(gs, ", "),
                       #inv.nodes > 0 and table.concat(inv.nodes, ", ") or "(none)")
end

return M
