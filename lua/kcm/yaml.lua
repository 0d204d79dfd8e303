-- YAML on libyaml (native: engine/yaml.c).
--
--   yaml.decode(text [, name]) -> value   one document; mappings -> tables, sequences ->
--                                         arrays (marked with yaml.array_mt), scalars typed
--                                         as YAML 1.1 readers do (int, float, bool); null
--                                         -> yaml.null inside tables (the same value as
--                                         cjson.null), nil at the top. Duplicate keys,
--                                         bad syntax: "name:line:col: ..." errors.
--   yaml.encode(value) -> text            block style, keys sorted, strings quoted when
--                                         they would read back as another type; a table is
--                                         a sequence if marked or keyed exactly 1..n.
--   yaml.read_file(path) / yaml.array(t)
local native = require "kcm.native.yaml"
local fs = require "kcm.native.fs"

local M = {
  decode = native.decode,
  encode = native.encode,
  null = native.null,
  array_mt = native.array_mt,
  base64_encode = native.base64_encode,
  base64_decode = native.base64_decode,
}

--- Marks t as a sequence (so an empty one encodes as []) and returns it.
function M.array(t)
  return setmetatable(t or {}, native.array_mt)
end

function M.read_file(path)
  local text, err = fs.read(path)
  if not text then error(string.format("%s: cannot read: %s", path, tostring(err)), 2) end
  return native.decode(text, path)
end

return M
