-- Strict text templates (native: engine/template*.c).
--
--   local template = require "kcm.template"
--   local tpl = template.compile(text, "name.in")    -- once
--   local out = tpl:render(vars)                      -- per node
--   template.render_file(path, vars)                  -- compile (cached) + render
--
-- Syntax
--   ${NAME} ${a.b} ${list.1}   value of vars.NAME, vars.a.b, vars.list[1]; an undefined
--                              name is an error, never an empty string. Strings, numbers
--                              and booleans substitute; tables are an error. Names are
--                              [A-Za-z_][A-Za-z0-9_-]*.
--   ${NAME:-default}           as in the shell: default (plain text up to "}") when
--                              NAME is undefined or "". No other shell operators.
--   $${  {%%  {##              a literal "${", "{%", "{#".
--   {% if EXPR %} ... {% elif EXPR %} ... {% else %} ... {% end %}
--   {% for v in LIST %} ... {% end %}        v = LIST[1..#LIST]
--   {% for k, v in TABLE %} ... {% end %}    keys sorted (numbers, then strings bytewise)
--                              inside a loop: loop.index, loop.index0, loop.first,
--                              loop.last, loop.length
--   {# comment #}
--   EXPR: name.path, "str", 'str', 12, 1.5, true, false, nil, defined(name.path),
--         == != < <= > >=, not, and, or, ( ). False are nil, false, "" and {}.
-- Whitespace: a tag or comment alone on its line removes that whole line;
-- "{%-" / "-%}" also remove the whitespace (newlines too) before / after it.
-- Nothing else is special. In particular a backslash is literal: where the
-- procedure's heredoc says "\\" the template says "\", as the file should read.
--
-- vars are read with ordinary Lua indexing, so template.layer(node.vars, vars)
-- (or any __index metatable) layers variables; template text never runs code.
-- Errors read "name:line:col: message".
local native = require "kcm.native.template"
local fs = require "kcm.native.fs"

local M = {}

M.compile = native.compile

--- render(text, vars [, name]): compile and render once.
M.render = native.render

local cache = {}

--- load(path) -> compiled template, reusing the compiled form while the file's
--- text is unchanged.
function M.load(path)
  local text, err = fs.read(path)
  if not text then error(string.format("%s: cannot read template: %s", path, tostring(err)), 2) end
  local c = cache[path]
  if c and c.text == text then return c.tpl end
  local tpl = native.compile(text, path)
  cache[path] = { text = text, tpl = tpl }
  return tpl
end

function M.render_file(path, vars)
  return M.load(path):render(vars)
end

--- layer(t1, t2, ...) -> a read-only view looking names up in t1, then t2...
function M.layer(...)
  local layers = table.pack(...)
  return setmetatable({}, {
    __index = function(_, k)
      for i = 1, layers.n do
        local t = layers[i]
        if t ~= nil then
          local v = t[k]
          if v ~= nil then return v end
        end
      end
    end,
    __newindex = function() error("template.layer: read-only", 2) end,
  })
end

return M
