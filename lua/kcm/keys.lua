-- Known keys of option tables. A misspelt key (`host` for `hosts`, `mdoe`
-- for `mode`) would otherwise be ignored and the default used in silence,
-- so every table a playbook hands the engine is checked against the keys
-- its reader knows, and a stranger is named with the closest known one.
local M = {}

--- Edit distance (Damerau, optimal string alignment: a swap of two
--- neighbours counts one, so `mdoe` is one step from `mode`).
function M.distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

--- The known names close to `name`, closest first (at most `max`, default
--- 3): within a third of the longer name's length, at least 2 edits.
function M.close(name, known, max)
  name = tostring(name)
  local scored = {}
  for _, k in ipairs(known) do
    local dist = M.distance(name:lower(), k:lower())
    if dist <= math.max(2, math.max(#name, #k) // 3) then scored[#scored + 1] = { k = k, d = dist } end
  end
  table.sort(scored, function(x, y) if x.d ~= y.d then return x.d < y.d end return x.k < y.k end)
  local out = {}
  for i = 1, math.min(#scored, max or 3) do out[i] = scored[i].k end
  return out
end

--- "did you mean 'x'? " when a known name is close, else "".
function M.suggest(name, known)
  local c = M.close(name, known, 1)
  return c[1] and string.format("did you mean '%s'? ", c[1]) or ""
end

--- The first frame from `level` up that is the operator's code, not the
--- engine's embedded library: a node's operation may be reached through
--- wrappers, and the line to fix is the playbook's. -> "file:line" | nil
function M.user_line(level)
  for l = level + 1, level + 40 do
    local info = debug.getinfo(l, "Sl")
    if not info then return nil end
    if info.currentline and info.currentline > 0 and info.source:sub(1, 9) ~= "@builtin:"
       and info.source:sub(1, 1) == "@" then
      return info.short_src .. ":" .. info.currentline
    end
  end
end

--- keys.check(t, known, what, level): raises at `level` (as error() counts,
--- from the caller of check) when t has a key not in the list `known`:
---   "file:line: unknown option 'mdoe' for node:put (did you mean 'mode'? known: mode, owner, ...)"
--- The message starts (after the position) with "unknown option '", which
--- the runner counts as a playbook error (exit 3), not a node's failure.
function M.check(t, known, what, level)
  if type(t) ~= "table" then return end
  local set = known.set
  if not set then
    set = {}
    for _, k in ipairs(known) do set[k] = true end
    known.set = set
  end
  local bad = {}
  for k in pairs(t) do
    if not set[k] then bad[#bad + 1] = k end
  end
  if #bad == 0 then return end
  table.sort(bad, function(x, y) return tostring(x) < tostring(y) end)
  local k = bad[1]
  local shown = type(k) == "string" and string.format("'%s'", k) or string.format("[%s]", tostring(k))
  local msg = string.format("unknown option %s for %s (%sknown: %s)", shown, what,
                            type(k) == "string" and M.suggest(k, known) or "", table.concat(known, ", "))
  local at = M.user_line((level or 2) + 1)
  if at then error(at .. ": " .. msg, 0) end
  error(msg, (level or 2) + 1)
end

return M
