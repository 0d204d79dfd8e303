-- For test_yaml_oracle.sh: decodes $YAML_IN, writes a canonical dump of the value to
-- $CANON_OUT and yaml.encode(value) to $ENC_OUT. Python (PyYAML) checks both.
local yaml = require "kcm.yaml"
local fs = require "kcm.native.fs"

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

local function canon(v)
  local t = type(v)
  if v == nil or v == yaml.null then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type(v) == "integer" then return string.format("i:%d", v) end
    return string.format("f:%.17g", v)
  end
  if t == "string" then return "s:" .. hex(v) end
  assert(t == "table", "unexpected " .. t)
  local parts = {}
  if getmetatable(v) == yaml.array_mt then
    for i = 1, #v do parts[i] = canon(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, x in pairs(v) do parts[#parts + 1] = canon(k) .. "=>" .. canon(x) end
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end

local path = assert(os.getenv("YAML_IN"))
local value = yaml.read_file(path)
fs.write(assert(os.getenv("CANON_OUT")), canon(value) .. "\n")
fs.write(assert(os.getenv("ENC_OUT")), yaml.encode(value))
