-- Ad-hoc work on the nodes a pattern matches (kcmrun run|put|get|facts): a
-- one-step playbook run by kcm.runner like any other (the same inventory,
-- login, become, locks and state), whose per-node answers are shown grouped:
-- nodes that agree share one block (`node1..node3 (3): active`).
local fs = require "kcm.native.fs"
local kcm = require "kcm"

local M = {}

-- Every exit code is an answer to show, not an error of the command layer.
local ANY_CODE = {}
for c = 0, 255 do ANY_CODE[#ANY_CODE + 1] = c end

--- The play for `kind` ("run", "put", "get", "facts") on `hosts`, and the
--- table its step fills: node name -> {code=, out=, err=, facts=}.
function M.play(kind, hosts, a)
  local play = kcm.playbook { name = kind, hosts = hosts }
  play.defined_at = "kcmrun " .. kind
  local results = {}
  local fn
  if kind == "run" then
    fn = function(node)
      local r = node:run(a.argv, { ok_codes = ANY_CODE })
      results[node.name] = { code = r.code, out = r.skipped and "(not run: --check)" or r.stdout, err = r.stderr }
      if r.code ~= 0 then error(string.format("exit %d", r.code), 0) end
    end
  elseif kind == "put" then
    fn = function(node)
      -- into a folder that exists on the node, as cp and Ansible's copy do
      local dest = a.dest
      local st = node:stat(dest)
      if st and st.type == "dir" then dest = dest:gsub("/+$", "") .. "/" .. a.src:match("([^/]+)$") end
      local changed = node:put(a.src, dest, { mode = a.mode })
      results[node.name] = { out = changed and ("changed: " .. dest) or ("ok: " .. dest .. " (same)") }
    end
  elseif kind == "get" then
    fn = function(node)
      local st = node:stat(a.src)
      if not st then error(node.name .. ": get " .. a.src .. ": no such file", 0) end
      if st.type ~= "file" then error(node.name .. ": get " .. a.src .. ": is a " .. st.type .. ", not a file", 0) end
      local local_path = a.destdir .. "/" .. node.name .. "/" .. a.src:gsub("^/+", "")
      if require("kcm.task").check() then   -- nothing is written under --check, here either
        results[node.name] = { out = string.format("%s/<node>/%s (%d bytes; not fetched: --check)", a.destdir,
                                                   a.src:gsub("^/+", ""), st.size) }
        return
      end
      local ok, err = fs.mkdir(local_path:match("^(.*)/[^/]*$"))
      if ok == nil then error(node.name .. ": get " .. a.src .. ": " .. local_path .. ": " .. tostring(err), 0) end
      -- streamed (a 120 MB binary from every node never sits in memory);
      -- the node's permission bits, without set-id ones (a local copy is data)
      local got = node:fetch(a.src, local_path, { mode = st.mode & tonumber("777", 8), size = st.size })
      -- shown with <node> for the node's name, so nodes that agree collapse
      results[node.name] = { out = string.format("%s/<node>/%s (%d bytes)", a.destdir, a.src:gsub("^/+", ""), got) }
    end
  elseif kind == "facts" then
    fn = function(node) results[node.name] = { facts = node.facts } end
  else
    error("kcm.adhoc: unknown kind " .. tostring(kind))
  end
  play:step(kind, fn)
  play.steps[1].defined_at = play.defined_at
  return play, results
end

--- Names as the recap shows them: runs of one prefix with consecutive
--- numbers collapse (node1..node3), the rest are listed.
function M.names(list)
  local out, i = {}, 1
  while i <= #list do
    local p, n = list[i]:match("^(.-)(%d+)$")
    local j = i
    if p then
      while j < #list do
        local p2, n2 = list[j + 1]:match("^(.-)(%d+)$")
        if p2 ~= p or tonumber(n2) ~= tonumber(n) + (j + 1 - i) or #n2 ~= #n and n2:sub(1, 1) == "0" then break end
        j = j + 1
      end
    end
    if j - i >= 2 then out[#out + 1] = list[i] .. ".." .. list[j]
    else for k = i, j do out[#out + 1] = list[k] end end
    i = j + 1
  end
  return table.concat(out, ",") .. " (" .. #list .. ")"
end

-- Groups nodes by what they answered, in order of first appearance.
local function grouped(order, key_of)
  local groups, by_key = {}, {}
  for _, name in ipairs(order) do
    local k = key_of(name)
    if k then
      local g = by_key[k]
      if not g then g = { key = k, nodes = {} }; by_key[k] = g; groups[#groups + 1] = g end
      g.nodes[#g.nodes + 1] = name
    end
  end
  return groups
end

local function block(out, head, text, prefix)
  text = (text or ""):gsub("\n$", "")
  if text == "" then return end
  if not text:find("\n") and not head.multi then head.inline = (head.inline or "") .. prefix .. text; return end
  head.multi = true
  for l in (text .. "\n"):gmatch("(.-)\n") do out[#out + 1] = "    " .. prefix .. l end
end

--- The answers, grouped. order: node names in inventory order; status:
--- name -> {status=, error=} from the report. -> lines, failed names, codes
function M.render(order, results, status)
  local lines, failed = {}, {}
  local function key(name)
    local r, s = results[name], status[name] or {}
    if r and r.code then return string.format("%d\0%s\0%s", r.code, r.out or "", r.err or "") end
    if r and r.out then return "\0" .. r.out end
    if s.status == "failed" or s.status == "unreachable" then
      -- the error names the node; the rest of it is what nodes may share
      local e = (s.error or s.status):gsub("^" .. name:gsub("%p", "%%%0") .. "[^:]*: ", "")
      return s.status .. "\0" .. e
    end
  end
  for _, g in ipairs(grouped(order, key)) do
    local r = results[g.nodes[1]]
    local head = {}
    local body = {}
    local label
    if r and r.out and not r.code then
      block(body, head, r.out, "")
    elseif r and r.code then
      if r.code ~= 0 then label = string.format(" [exit %d]", r.code) end
      block(body, head, r.out, "")
      block(body, head, r.err, head.multi == nil and head.inline and " | stderr: " or "stderr: ")
    else
      local st, e = g.key:match("^([^%z]*)%z(.*)$")
      label = st == "unreachable" and " UNREACHABLE" or " FAILED"
      block(body, head, e, "")
    end
    local said = head.inline or head.multi
    lines[#lines + 1] = M.names(g.nodes) .. (label or "") .. (said and ":" or "") ..
                        (head.inline and not head.multi and (" " .. head.inline) or "")
    if head.multi and head.inline then table.insert(body, 1, "    " .. head.inline) end
    for _, l in ipairs(body) do lines[#lines + 1] = l end
  end
  for _, name in ipairs(order) do
    local s = status[name] or {}
    if s.status == "failed" or s.status == "unreachable" then failed[#failed + 1] = name end
  end
  return lines, failed
end

--- The recap: one line per exit code (or failure kind), its nodes collapsed.
function M.recap(order, results, status)
  local function key(name)
    local r, s = results[name], status[name] or {}
    if r and r.code then return string.format("exit %d", r.code) end
    return s.status or (r and "ok") or "not run"
  end
  local lines = {}
  for _, g in ipairs(grouped(order, key)) do
    lines[#lines + 1] = string.format("  %-12s %s", g.key, M.names(g.nodes))
  end
  return lines
end

--- The failed nodes for the last line: "node2 (exit 3)", "node1..node3 (unreachable)".
function M.failed_line(failed, results, status)
  local parts = {}
  for _, g in ipairs(grouped(failed, function(n)
    local r = results[n]
    return r and r.code and ("exit " .. r.code) or (status[n] or {}).status or "failed"
  end)) do
    parts[#parts + 1] = M.names(g.nodes):gsub(" %(%d+%)$", "") .. " (" .. g.key .. ")"
  end
  return table.concat(parts, ", ")
end

--- facts as a table (one row per node) or as JSON {node: {...}}.
function M.facts_table(order, results)
  local keys = require("kcm.facts").KEYS
  local rows = { { "node" } }
  for _, k in ipairs(keys) do rows[1][#rows[1] + 1] = k end
  for _, name in ipairs(order) do
    local f = results[name] and results[name].facts
    if f then
      local row = { name }
      for _, k in ipairs(keys) do
        local v = f[k]
        if type(v) == "table" then v = table.concat(v, ",") end
        row[#row + 1] = v == nil and "-" or tostring(v)
      end
      rows[#rows + 1] = row
    end
  end
  local width = {}
  for _, row in ipairs(rows) do
    for i, c in ipairs(row) do width[i] = math.max(width[i] or 0, #c) end
  end
  local lines = {}
  for _, row in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(row) do cells[i] = c .. string.rep(" ", i < #row and width[i] - #c or 0) end
    lines[#lines + 1] = table.concat(cells, "  ")
  end
  return lines
end

function M.facts_json(order, results)
  local cjson = require "cjson"
  local parts = {}
  for _, name in ipairs(order) do
    local f = results[name] and results[name].facts
    if f then
      local enc = cjson.encode(f)
      -- an empty address list must read [] (this cjson encodes {} for it)
      if f.ips and #f.ips == 0 then enc = enc:gsub('"ips":{}', '"ips":[]') end
      parts[#parts + 1] = "  " .. cjson.encode(name) .. ": " .. enc
    end
  end
  return "{\n" .. table.concat(parts, ",\n") .. "\n}"
end

return M
