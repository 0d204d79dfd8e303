-- Variables as a playbook sees them in ctx.vars, layered, highest first:
--
--   what code assigns to ctx.vars (on a node: that node's own assignments,
--   then the control machine's) > -e > node vars > group vars (groups in
--   name order, later wins; "all" lowest) > inventory vars > playbook defaults
--
-- A node's step sees its own layering (so a unit rendered for node2 gets
-- node2's log_level); control-machine code (once steps, prepare, when) sees
-- the play's group's. Every read is recorded, so a run can name the
-- inventory keys nothing read (a typo, or a setting that does not exist).
local M = {}
local V = {}
V.__index = V

-- view -> {chain, labels}: where each layer came from, for M.origin
local layers_of = setmetatable({}, { __mode = "k" })

local function view(chain, reads, written, labels)
  local v = setmetatable({}, {
    __index = function(_, k)
      reads[k] = true
      for i = 1, #chain do
        local v = chain[i][k]
        if v ~= nil then return v end
      end
      return nil
    end,
    __newindex = function(_, k, v) written[k] = v end,
    __pairs = function()
      local merged = {}
      for i = #chain, 1, -1 do
        for k, v in pairs(chain[i]) do merged[k] = v end
      end
      for k in pairs(merged) do reads[k] = true end
      return next, merged, nil
    end,
    __name = "kcm.vars",
  })
  layers_of[v] = { chain = chain, labels = labels or {} }
  return v
end

-- The first line of `file` that sets `key` (key = ..., ["key"] = ..., KEY=...).
local function line_of(file, key)
  local f = type(file) == "string" and io.open(file, "rb")
  if not f then return nil end
  local n = 0
  local pat = "%f[%w_]" .. key:gsub("%p", "%%%0") .. "%f[^%w_][\"%]]*%s*="
  for line in f:lines() do
    n = n + 1
    if line:find(pat) then f:close(); return n end
  end
  f:close()
end

--- origin(ctx.vars, key) -> where that key's value comes from, for an error
--- that names the variable to fix: "inventory.lua:4", "-e", "group_vars.masters
--- (inventory.lua:9)", "the playbook's defaults", or "kcmrun's default" when
--- no layer sets it.
function M.origin(vars, key)
  local l = layers_of[vars]
  if not l then return "kcmrun's default" end
  for i, layer in ipairs(l.chain) do
    local v = layer[key]
    if v ~= nil and v ~= "" then
      local label = l.labels[i]
      if type(label) == "table" then
        local line = line_of(label.file, key)
        local at = label.file and (label.file .. (line and (":" .. line) or "")) or "the inventory"
        return label.what and (label.what .. " (" .. at .. ")") or at
      end
      return label or "the playbook"
    end
  end
  return "kcmrun's default"
end

--- vars.new(inventory, play, extra_vars) -> layering for one run
function M.new(inv, play, extra)
  local self = setmetatable({ inv = inv, defaults = play.vars or {}, extra = extra or {},
                              group_vars = inv.group_vars or {}, reads = {}, written = {},
                              node_groups = {} }, V)
  -- the groups of each node, lowest precedence first
  local names = {}
  for g in pairs(inv.groups or {}) do if g ~= "all" then names[#names + 1] = g end end
  table.sort(names)
  table.insert(names, 1, "all")
  for _, g in ipairs(names) do
    for _, n in ipairs(inv.groups[g] or {}) do
      local list = self.node_groups[n] or {}
      list[#list + 1] = g
      self.node_groups[n] = list
    end
  end
  return self
end

--- The view of control-machine code: the play's group's vars apply.
function V:control(group)
  local file = self.inv.file
  local chain, labels = { self.written, self.extra }, { "set by the playbook", "-e" }
  local function add(t, label) chain[#chain + 1] = t; labels[#chain] = label end
  if group and self.group_vars[group] then add(self.group_vars[group], { what = "group_vars." .. group, file = file }) end
  if group ~= "all" and self.group_vars.all then add(self.group_vars.all, { what = "group_vars.all", file = file }) end
  add(self.inv.vars or {}, { file = file })
  add(self.defaults, "the playbook's defaults")
  return view(chain, self.reads, self.written, labels)
end

--- The view of one node's steps.
function V:node(name)
  local spec = self.inv.by_name and self.inv.by_name[name] or {}
  local own, file = {}, self.inv.file
  local chain = { own, self.written, self.extra, spec.vars or {} }
  local labels = { "set by the playbook", "set by the playbook", "-e", { what = "node " .. name .. " vars", file = file } }
  local groups = self.node_groups[name] or {}
  for i = #groups, 1, -1 do
    local gv = self.group_vars[groups[i]]
    if gv then chain[#chain + 1] = gv; labels[#chain] = { what = "group_vars." .. groups[i], file = file } end
  end
  chain[#chain + 1] = self.inv.vars or {}
  labels[#chain] = { file = file }
  chain[#chain + 1] = self.defaults
  labels[#chain] = "the playbook's defaults"
  return view(chain, self.reads, own, labels)
end

--- Inventory keys no code read during the run, as "where.key" strings
--- (keys the inventory loader itself consumed are not listed).
function V:unread()
  local out, consumed = {}, self.inv.consumed or {}
  local function scan(t, where)
    local keys = {}
    for k in pairs(t or {}) do
      if type(k) == "string" and not self.reads[k] and not consumed[k] then keys[#keys + 1] = k end
    end
    table.sort(keys)
    for _, k in ipairs(keys) do out[#out + 1] = where .. k end
  end
  scan(self.inv.vars, "vars.")
  local groups = {}
  for g in pairs(self.group_vars) do groups[#groups + 1] = g end
  table.sort(groups)
  for _, g in ipairs(groups) do scan(self.group_vars[g], "group_vars." .. g .. ".") end
  for _, n in ipairs(self.inv.nodes or {}) do scan(n.vars, n.name .. ".vars.") end
  return out
end

--- -e names no code read during the run (a misspelt name would otherwise
--- be ignored while the default it meant to replace is used), each with the
--- known names close to it: what the run read, what the inventory and the
--- playbook define, and `consumed` (names read outside the views, such as
--- the login settings). A name the inventory or the playbook's vars define
--- is never listed. -> { {name=, close={...}}, ... } sorted by name
function V:unread_extra(consumed)
  local keys = require "kcm.keys"
  local known, seen, defined = {}, {}, {}
  local function add(t, def)
    for k in pairs(t or {}) do
      if type(k) == "string" then
        if def then defined[k] = true end
        if not seen[k] and self.extra[k] == nil then seen[k] = true; known[#known + 1] = k end
      end
    end
  end
  add(self.reads); add(consumed); add(self.inv.vars, true); add(self.defaults, true)
  for _, gv in pairs(self.group_vars) do add(gv, true) end
  for _, n in ipairs(self.inv.nodes or {}) do add(n.vars, true) end
  table.sort(known)
  local out = {}
  for k in pairs(self.extra) do
    -- a name the playbook or inventory defines overrides a known setting,
    -- even when this run had no use for it
    if not self.reads[k] and not (consumed or {})[k] and not defined[k] then
      out[#out + 1] = { name = k, close = keys.close(k, known, 3) }
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

return M
