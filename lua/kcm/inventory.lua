-- Inventories: a Lua file (nodes, groups, vars, ssh settings) or the
-- procedure's own environment.sh, evaluated by bash itself.
local exec = require "kcm.native.exec"

local M = {}

local function fail(fmt, ...)
  error({ config = true, message = string.format(fmt, ...) }, 0)
end

local function validate(inv, file)
  if type(inv) ~= "table" then fail("%s: the inventory must return a table {nodes=..., groups=..., vars=...}", file) end
  inv.vars = inv.vars or {}
  inv.ssh = inv.ssh or {}
  inv.groups = inv.groups or {}
  for _, k in ipairs { "vars", "ssh", "groups" } do
    if type(inv[k]) ~= "table" then fail("%s: `%s` must be a table, not %s", file, k, type(inv[k])) end
  end
  if type(inv.nodes) ~= "table" then fail("%s: `nodes` must be an array of {name=, host=, ...}", file) end
  local by_name, order = {}, {}
  for i, n in ipairs(inv.nodes) do
    if type(n) == "string" then n = { name = n, host = n } end
    if type(n) ~= "table" then fail("%s: nodes[%d] must be a table {name=, host=}", file, i) end
    n.name = n.name or n.host
    if type(n.name) ~= "string" or not n.name:match("^[%w][%w%._%-]*$") then
      fail("%s: nodes[%d]: name %q is not a valid node name (letters, digits, '.', '_', '-')", file, i, tostring(n.name))
    end
    if by_name[n.name] then fail("%s: nodes[%d]: duplicate node name %q", file, i, n.name) end
    n.host = n.host or n.name
    if type(n.host) ~= "string" or n.host:find("[%s'\"`$;|&<>\\]") then
      fail("%s: node %s: host %q is not a host name or address", file, n.name, tostring(n.host))
    end
    if n.port ~= nil and (math.type(tonumber(n.port)) ~= "integer" or tonumber(n.port) < 1 or tonumber(n.port) > 65535) then
      fail("%s: node %s: port %q is not a TCP port", file, n.name, tostring(n.port))
    end
    n.port = n.port and tonumber(n.port)
    n.vars = n.vars or {}
    if type(n.vars) ~= "table" then fail("%s: node %s: vars must be a table", file, n.name) end
    by_name[n.name] = n
    order[#order + 1] = n
  end
  inv.nodes = order
  inv.by_name = by_name
  local all = {}
  for _, n in ipairs(order) do all[#all + 1] = n.name end
  inv.groups.all = inv.groups.all or all
  for g, members in pairs(inv.groups) do
    if type(members) ~= "table" then fail("%s: group %s must be an array of node names", file, g) end
    for _, m in ipairs(members) do
      if not by_name[m] then fail("%s: group %s names unknown node %q", file, g, tostring(m)) end
    end
  end
  inv.file = file
  return inv
end

-- Lua's own messages usually start with "file:line:", but not all do
-- ("C stack overflow" from the parser, error("x", 0) in the file).
local function with_file(file, msg)
  msg = tostring(msg)
  if msg:find(file, 1, true) then return msg end
  return file .. ": " .. msg
end

function M.load_lua(file)
  local chunk, err = loadfile(file, "t", setmetatable({}, { __index = _G }))
  if not chunk then fail("%s", with_file(file, err)) end
  local ok, inv = pcall(chunk)
  if not ok then fail("%s", with_file(file, inv)) end
  return validate(inv, file)
end

-- bash sources the file and prints every variable it defined as
-- NUL-separated records: S name value | A name count items...
local DUMP = [==[
__kcm_before=" $(compgen -v | tr '\n' ' ') "
set -a
source "$1" >/dev/null || exit 3
set +a
for __kcm_v in $(compgen -v); do
  case "$__kcm_before" in *" $__kcm_v "*) continue ;; esac
  case "$__kcm_v" in __kcm_*|BASH_*|FUNCNAME|PIPESTATUS) continue ;; esac
  if [[ "$(declare -p "$__kcm_v" 2>/dev/null)" =~ ^declare\ -[[:alpha:]]*a ]]; then
    eval "__kcm_n=\${#$__kcm_v[@]}"
    printf 'A\0%s\0%s\0' "$__kcm_v" "$__kcm_n"
    eval "printf '%s\0' \"\${$__kcm_v[@]}\""
  else
    printf 'S\0%s\0%s\0' "$__kcm_v" "${!__kcm_v}"
  fi
done
]==]

--- Parses the importer's output (exposed for tests and fuzzing).
function M.parse_env_dump(out)
  local fields, i = {}, 1
  for f in out:gmatch("([^%z]*)%z") do fields[#fields + 1] = f end
  local vars = {}
  while i <= #fields do
    local kind, name = fields[i], fields[i + 1]
    if not name or not name:match("^[%a_][%w_]*$") then return nil, "malformed record at field " .. i end
    if kind == "S" then
      if fields[i + 2] == nil then return nil, "truncated record for " .. name end
      vars[name] = fields[i + 2]
      i = i + 3
    elseif kind == "A" then
      local n = tonumber(fields[i + 2])
      if not n or n < 0 or i + 2 + n > #fields then return nil, "bad array record for " .. name end
      local arr = {}
      for k = 1, n do arr[k] = fields[i + 2 + k] end
      vars[name] = arr
      i = i + 3 + n
    else
      return nil, "unknown record kind at field " .. i
    end
  end
  return vars
end

function M.load_env_sh(file)
  local r = exec.run { argv = { "bash", "--noprofile", "--norc", "-c", DUMP, "kcm-env", file },
                       env = { BASH_ENV = "" }, timeout = 30 }
  if r.code ~= 0 then
    fail("%s: bash could not source it (exit %d): %s", file, r.code, (r.stderr or ""):sub(1, 500))
  end
  local vars, err = M.parse_env_dump(r.stdout)
  if not vars then fail("%s: %s", file, err) end
  local ips, names = vars.NODE_IPS, vars.NODE_NAMES
  if type(ips) ~= "table" or #ips == 0 then
    fail("%s: NODE_IPS must be a bash array of the masters' addresses, e.g. NODE_IPS=(10.0.0.1 10.0.0.2)", file)
  end
  if names ~= nil and (type(names) ~= "table" or #names ~= #ips) then
    fail("%s: NODE_NAMES must be a bash array with as many names as NODE_IPS (%d)", file, #ips)
  end
  local nodes, members = {}, {}
  for i, ip in ipairs(ips) do
    local name = names and names[i] or ip
    nodes[i] = { name = name, host = ip, user = vars.KCMRUN_SSH_USER or "root" }
    members[i] = name
  end
  local ssh = {
    known_hosts = vars.KCMRUN_KNOWN_HOSTS,
    identity = vars.KCMRUN_SSH_IDENTITY,
    config = vars.KCMRUN_SSH_CONFIG,
  }
  return validate({ vars = vars, nodes = nodes, ssh = ssh, groups = { masters = members } }, file)
end

function M.load(file)
  if file:match("%.sh$") then return M.load_env_sh(file) end
  return M.load_lua(file)
end

--- A single-node inventory for running a playbook on the control machine only.
function M.empty()
  return validate({ nodes = {} }, "(no inventory)")
end

return M
