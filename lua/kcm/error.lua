-- The one error object of target operations and native failures. Natives
-- return `nil, message, kind` for an operational failure (misuse raises);
-- the target layer turns that into an error carrying what callers branch on
-- (kind) and where it happened (node, op, path), so no caller ever parses a
-- message back. tostring(e) is the message people read.
--
-- Kinds: "unreachable" (the node's link is gone or never came up),
-- "denied", "noent", "timeout", "tls", "hostkey", "auth", "exit" (a command
-- ended with a code it was not allowed), "sudo" (become itself failed),
-- "api" (the Kubernetes apiserver refused: code, reason), "exists",
-- "refused" (an HTTP port that nothing listens on), "reset" (the server
-- dropped the connection mid-request, as a process that exits does),
-- "resolve" (a name that does not resolve),
-- "error" (anything else).
local M = {}

local E = {}
E.__index = E
E.__tostring = function(e) return e.message end
E.__name = "kcm.error"

--- error.new{kind, node, op, path, message[, address, code, stderr]} -> e
function M.new(t)
  assert(type(t) == "table" and type(t.message) == "string", "error.new: {message=string} expected")
  t.kind = t.kind or "error"
  return setmetatable(t, E)
end

--- error.is(v[, kind]) -> is v an error object (of that kind)?
function M.is(v, kind)
  return getmetatable(v) == E and (kind == nil or v.kind == kind)
end

--- error.raise(t) raises error.new(t) (level 0: the message says where).
function M.raise(t) error(M.new(t), 0) end

--- error.kind(v) -> the kind of an error value ("error" for a plain one).
function M.kind(v)
  if getmetatable(v) == E then return v.kind end
  return "error"
end

--- error.check(ctx, v, message, kind, ...) -> v, ... when v ~= nil or no
--- message came; else raises an error object built from ctx {node, op,
--- path} and the native's message and kind. The way a caller that wants
--- failures raised consumes a native's `nil, message, kind`.
function M.check(ctx, v, message, kind, ...)
  if v == nil and message ~= nil then
    M.raise { kind = kind, node = ctx and ctx.node, op = ctx and ctx.op, path = ctx and ctx.path,
              message = tostring(message) }
  end
  return v, message, kind, ...
end

--- error.ok(v, message, kind, ...) -> v, ... : a native's result, or its
--- failure raised as an error object (no context beyond the message).
function M.ok(...) return M.check(nil, ...) end

-- A field's value as an error line shows it: scalars as written, anything
-- else by its type (a table's own __tostring may be what failed).
local function field(v)
  if type(v) == "string" then
    return (string.format("%q", #v > 200 and v:sub(1, 200) .. "..." or v):gsub("\\\n", "\\n"))
  end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return type(v)
end

--- error.describe(v) -> text, shown_by_fields: tostring(v), or, when
--- that raises or gives no string (a playbook's own error object with a
--- broken __tostring), its fields, so the operator still sees what failed.
function M.describe(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  local why = ok and "its __tostring gave no string" or ("its __tostring failed: " .. (type(s) == "string" and s or type(s)))
  if type(v) ~= "table" then return string.format("a %s error value (%s)", type(v), why), true end
  local keys = {}
  local k = next(v)            -- next, not pairs: __pairs may be broken too
  while k ~= nil and #keys < 20 do
    keys[#keys + 1] = k
    k = next(v, k)
  end
  table.sort(keys, function(a, b) return field(a) < field(b) end)
  local parts = {}
  for i, key in ipairs(keys) do
    local name = type(key) == "string" and key:match("^[%a_][%w_]*$") and key or "[" .. field(key) .. "]"
    parts[i] = name .. " = " .. field(rawget(v, key))
  end
  return string.format("error object { %s } (%s)", table.concat(parts, ", "), why), true
end

return M
