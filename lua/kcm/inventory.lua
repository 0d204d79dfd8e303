-- Inventories: a Lua file (nodes, groups, vars, ssh settings) or the
-- procedure's own environment.sh, evaluated by bash itself.
local exec = require "kcm.native.exec"
local E = require "kcm.error"
local sshconfig = require "kcm.native.sshconfig"

local M = {}

local function fail(fmt, ...)
  error({ config = true, message = string.format(fmt, ...) }, 0)
end

local check_become
local value = require "kcm.value"

-- The line of `file` where a hostile value was written (best effort: the
-- first line holding it verbatim, or `fallback`), for "file:LINE:" in errors.
local function line_of(file, value, fallback)
  local f = type(value) == "string" and value ~= "" and io.open(file, "rb")
  if f then
    local n = 0
    for line in f:lines() do
      n = n + 1
      if line:find(value, 1, true) or (fallback and line:find(fallback, 1, true)) then
        f:close()
        return file .. ":" .. n
      end
    end
    f:close()
  end
  return file
end

-- What OpenSSH accepts for a user name it expands into %r (ProxyCommand,
-- LocalCommand, ...): anything else could be a shell command there.
local USER = "^[%a_][%w%._%-]*$"
local USER_RULE = "letters, digits, '.', '_', '-', not starting with a digit, '.' or '-'"
-- Hosts reach ssh_config's %h and error messages: names and addresses only.
local HOST = "^[%w_%-%.:%[%]%%]+$"

-- become_method: only sudo; become: a boolean (a typo'd "yes" must not pass).
check_become = function(t, file, where)
  if t.become_method ~= nil and t.become_method ~= "sudo" then
    fail("%s: %s: become_method %q is not supported (only \"sudo\"; for doas/su wrap them in sudo rules)",
         file, where, tostring(t.become_method))
  end
  if t.become ~= nil and type(t.become) ~= "boolean" then
    fail("%s: %s: become must be true or false, not %s", file, where, tostring(t.become))
  end
  for _, k in ipairs { "become_user", "become_password_file", "become_password_env", "user" } do
    if t[k] ~= nil and type(t[k]) ~= "string" then fail("%s: %s: %s must be a string", file, where, k) end
  end
  for _, k in ipairs { "user", "become_user" } do
    local v = t[k]
    if v ~= nil and (not v:match(USER) or #v > 64) then
      fail("%s: %s: ssh %s %q is not a user name (%s): it would reach ssh_config's %%r and remote commands",
           line_of(file, v), where, k, v, USER_RULE)
    end
  end
  for _, k in ipairs { "identity", "known_hosts", "config" } do
    local v = t[k]
    if v ~= nil and (type(v) ~= "string" or v == "" or v:find("%c")) then
      fail("%s: %s: ssh %s %q must be a file path without control characters", line_of(file, v), where, k, tostring(v))
    end
  end
end

-- One entry of `nodes`, checked and completed (host from ssh_config for an
-- alias, port a number, vars a table) -> the node table.
local function validate_node(inv, file, n, i, by_name)
  if type(n) == "string" then n = { name = n } end   -- host: ssh_config HostName, else the name
  if type(n) ~= "table" then fail("%s: nodes[%d] must be a table {name=, host=}", file, i) end
  n.name = n.name or n.host
  if type(n.name) ~= "string" or not n.name:match("^[%w][%w%._%-]*$") then
    fail("%s: nodes[%d]: name %q is not a valid node name (letters, digits, '.', '_', '-')", line_of(file, n.name), i, tostring(n.name))
  end
  if by_name[n.name] then fail("%s: nodes[%d]: duplicate node name %q", file, i, n.name) end
  if n.host == nil then
    -- an ssh_config alias: the address is its HostName (certificates and
    -- bind addresses need the address, not the alias)
    -- the login user as far as known here, for `Match user` (ssh -l USER)
    local user = n.user or (type(n.ssh) == "table" and n.ssh.user) or inv.ssh.user
    local cfg, err = sshconfig.resolve(n.name, inv.ssh.config, type(user) == "string" and user or nil)
    if not cfg then fail("%s: node %s: %s", file, n.name, err) end
    n.host = cfg.hostname or n.name
    n.alias = true
  end
  if type(n.host) ~= "string" or not n.host:match(HOST) or n.host:find("^%-") then
    fail("%s: node %s: host %q is not a host name or address", line_of(file, n.host), n.name, tostring(n.host))
  end
  if n.port ~= nil and (math.type(tonumber(n.port)) ~= "integer" or tonumber(n.port) < 1 or tonumber(n.port) > 65535) then
    fail("%s: node %s: port %q is not a TCP port", file, n.name, tostring(n.port))
  end
  n.port = n.port and tonumber(n.port)
  n.vars = n.vars or {}
  if type(n.vars) ~= "table" then fail("%s: node %s: vars must be a table", file, n.name) end
  if n.ssh ~= nil and type(n.ssh) ~= "table" then fail("%s: node %s: ssh must be a table", file, n.name) end
  check_become(n, file, "node " .. n.name)
  if n.ssh then check_become(n.ssh, file, "node " .. n.name .. " ssh") end
  return n
end

-- groups (members known, ssh settings) and group variables: groups.masters.vars
-- (beside groups.masters.ssh) or group_vars = { masters = { log_level = "3" } },
-- between the inventory's vars and a node's own (see kcm.vars)
local function validate_groups(inv, file, by_name)
  for g, members in pairs(inv.groups) do
    if type(members) ~= "table" then fail("%s: group %s must be an array of node names", file, g) end
    for _, m in ipairs(members) do
      if not by_name[m] then fail("%s: group %s names unknown node %q", file, g, tostring(m)) end
    end
    if members.ssh ~= nil then
      if type(members.ssh) ~= "table" then fail("%s: group %s: ssh must be a table", file, g) end
      check_become(members.ssh, file, "group " .. g .. " ssh")
    end
  end
  check_become(inv.ssh, file, "ssh")
  inv.group_vars = inv.group_vars or {}
  if type(inv.group_vars) ~= "table" then fail("%s: `group_vars` must be a table {group = {key = value}}", file) end
  for g, gv in pairs(inv.group_vars) do
    if not inv.groups[g] then fail("%s: group_vars.%s: no group named %q", file, tostring(g), tostring(g)) end
    if type(gv) ~= "table" then fail("%s: group_vars.%s must be a table of variables", file, g) end
  end
  for g, members in pairs(inv.groups) do
    if members.vars ~= nil then
      if type(members.vars) ~= "table" then fail("%s: group %s: vars must be a table", file, g) end
      if inv.group_vars[g] then fail("%s: group %s: vars given both in groups.%s.vars and group_vars.%s; keep one", file, g, g, g) end
      inv.group_vars[g] = members.vars
    end
  end
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
  check_become(inv.ssh, file, "ssh")
  if inv.allow_insecure_http ~= nil and type(inv.allow_insecure_http) ~= "boolean" then
    fail("%s: allow_insecure_http must be true or false, not %q", line_of(file, "allow_insecure_http"),
         tostring(inv.allow_insecure_http))
  end
  local by_name, order = {}, {}
  for i, n in ipairs(inv.nodes) do
    n = validate_node(inv, file, n, i, by_name)
    by_name[n.name] = n
    order[#order + 1] = n
  end
  inv.nodes = order
  inv.by_name = by_name
  local all = {}
  for _, n in ipairs(order) do all[#all + 1] = n.name end
  inv.groups.all = inv.groups.all or all
  validate_groups(inv, file, by_name)
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
  local _, untrusted = require("kcm.discover").trusted(file, "inventory")
  if untrusted then fail("%s", untrusted) end
  local chunk, err = loadfile(file, "t", require("kcm").strict_env())
  if not chunk then fail("%s", with_file(file, err)) end
  local ok, inv = pcall(chunk)
  if not ok then fail("%s", with_file(file, inv)) end
  return validate(inv, file)
end

-- bash sources the file and prints every variable it defined as
-- NUL-separated records: S name value | A name count items...
-- It runs under `env -i` (PATH, HOME, USER, LOGNAME only), and "defined" means
-- differs from that clean baseline: the values always come from the file,
-- whatever the caller exported or sourced before (`set -a; . environment.sh`
-- of an older copy, an exported SERVICE_CIDR).
local DUMP = [==[
declare -A __kcm_base
for __kcm_v in $(compgen -v); do
  case "$__kcm_v" in __kcm_*) continue ;; esac
  __kcm_base[$__kcm_v]=$(declare -p "$__kcm_v" 2>/dev/null)
done
set -a
source "$1" >/dev/null || { echo "__kcm_status=$?" >&2; exit 3; }
set +a
for __kcm_v in $(compgen -v); do
  case "$__kcm_v" in
    __kcm_*|BASH_*|FUNCNAME|PIPESTATUS|RANDOM|SRANDOM|SECONDS|LINENO|EPOCHSECONDS|EPOCHREALTIME|BASHPID|HISTCMD|_|PWD|OLDPWD|SHLVL) continue ;;
  esac
  if [[ -v "__kcm_base[$__kcm_v]" && "$(declare -p "$__kcm_v" 2>/dev/null)" == "${__kcm_base[$__kcm_v]}" ]]; then continue; fi
  if [[ "$(declare -p "$__kcm_v" 2>/dev/null)" =~ ^declare\ -[[:alpha:]]*a ]]; then
    eval "__kcm_n=\${#$__kcm_v[@]}"
    printf 'A\0%s\0%s\0' "$__kcm_v" "$__kcm_n"
    eval "printf '%s\0' \"\${$__kcm_v[@]}\""
  else
    printf 'S\0%s\0%s\0' "$__kcm_v" "${!__kcm_v}"
  fi
done
]==]

local CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
  local home = os.getenv("HOME") or "/"
  local user = os.getenv("USER") or os.getenv("LOGNAME") or ""
  local r = E.ok(exec.run { argv = { "env", "-i", "PATH=" .. CLEAN_PATH, "HOME=" .. home, "USER=" .. user,
                                "LOGNAME=" .. user, "bash", "--noprofile", "--norc", "-c", DUMP, "kcm-env", file },
                       timeout = 30 })
  if r.timed_out then
    fail("%s: sourcing it with bash timed out after 30 s (does it wait for input or the network?)", file)
  end
  if r.code ~= 0 then
    local err = (r.stderr or ""):gsub("%s+$", "")
    local status = err:match("__kcm_status=(%d+)$")
    err = err:gsub("\n?__kcm_status=%d+$", "")
    if #err > 300 then err = "..." .. err:sub(-300) end
    err = err:gsub("\n", " | ")
    if status then
      fail("%s: sourcing it with bash failed: its last command exited with status %s%s", file, status,
           err ~= "" and ("; stderr: " .. err) or " (nothing on stderr)")
    end
    fail("%s: sourcing it with bash failed: it exited with status %d%s", file, r.code,
         err ~= "" and ("; stderr: " .. err) or " (nothing on stderr)")
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
    nodes[i] = { name = name, host = ip }
    members[i] = name
  end
  local u = vars.KCMRUN_SSH_USER
  if u ~= nil and (type(u) ~= "string" or not u:match(USER)) then
    fail("%s: KCMRUN_SSH_USER %q is not a user name (%s): it would reach ssh_config's %%r and remote commands",
         line_of(file, u, "KCMRUN_SSH_USER"), tostring(u), USER_RULE)
  end
  local ssh = {
    known_hosts = vars.KCMRUN_KNOWN_HOSTS,
    identity = vars.KCMRUN_SSH_IDENTITY,
    config = vars.KCMRUN_SSH_CONFIG,
    user = vars.KCMRUN_SSH_USER or "root",
    become = value.bool(vars.KCMRUN_BECOME, line_of(file, "KCMRUN_BECOME") .. ": KCMRUN_BECOME"),
  }
  local inv = validate({ vars = vars, nodes = nodes, ssh = ssh, groups = { masters = members, etcd = members } }, file)
  -- what the loader itself used is not reported as unread (kcm.vars)
  inv.consumed = { NODE_IPS = true, NODE_NAMES = true, KCMRUN_SSH_USER = true, KCMRUN_KNOWN_HOSTS = true,
                   KCMRUN_SSH_IDENTITY = true, KCMRUN_SSH_CONFIG = true }
  return inv
end

-- What a layer may say about a node's login (beside the ssh table's
-- transport settings: identity, known_hosts, config, timeouts, accept_new).
local NODE_KEYS = { "user", "port", "become", "become_user", "become_method",
                    "become_password_file", "become_password_env" }

local function shown(k, v)
  if k:match("password") then return "(set)" end
  return type(v) == "string" and string.format("%q", v) or tostring(v)
end

--- The login settings of one node, layered low to high: ssh_config (read by
--- the ssh layer, matched against the node's name), the inventory's `ssh`
--- table, the `ssh` tables of the node's groups (in group-name order), the
--- node (its own `ssh` table, then its user/port/become... fields), the
--- command line (--become, --ssh-config, --identity, --known-hosts, and
--- -e ssh_user= / ssh_port= / become= / become_user=).
--- -> node spec for Node.new, notes on values the node or the command line
---    overrides (reported with -v: nothing overrides silently)
function M.node_spec(inv, spec, cli, extra_vars)
  local merged, from = {}, {}
  local notes = {}
  local function layer(t, label, keys, report)
    if not t then return end
    local function set(k, v)
      if v == nil then return end
      if report and merged[k] ~= nil and merged[k] ~= v then
        notes[#notes + 1] = string.format("ssh %s = %s (%s) overrides %s (%s)", k, shown(k, v), label,
                                          shown(k, merged[k]), from[k])
      end
      merged[k], from[k] = v, label
    end
    if keys then for _, k in ipairs(keys) do set(k, t[k]) end
    else
      local ks = {}
      for k in pairs(t) do ks[#ks + 1] = k end
      table.sort(ks)
      for _, k in ipairs(ks) do set(k, t[k]) end
    end
  end
  -- ssh_config's own values, so an override of them is reported too
  local config = (cli and cli.config) or (spec.ssh and spec.ssh.config) or inv.ssh.config
  local cfg = sshconfig.resolve(spec.name, config) or {}
  local base = { user = cfg.user, port = cfg.port }
  layer(base, "ssh_config", { "user", "port" })
  layer(inv.ssh, "ssh table", nil, true)
  local gnames = {}
  for g, members in pairs(inv.groups) do
    if type(members) == "table" and members.ssh then
      for _, m in ipairs(members) do if m == spec.name then gnames[#gnames + 1] = g break end end
    end
  end
  table.sort(gnames)
  for _, g in ipairs(gnames) do layer(inv.groups[g].ssh, "group " .. g, nil, true) end
  layer(spec.ssh, "node " .. spec.name .. " ssh", nil, true)
  layer(spec, "node " .. spec.name, NODE_KEYS, true)
  local ev = extra_vars or {}
  local from_e = { user = ev.ssh_user, port = value.port(ev.ssh_port, "-e ssh_port"), identity = ev.ssh_identity,
                   known_hosts = ev.ssh_known_hosts, become = value.bool(ev.become, "-e become"),
                   become_user = ev.become_user }
  layer(cli, "command line", nil, true)
  layer(from_e, "-e", nil, true)
  if merged.become_method ~= nil and merged.become_method ~= "sudo" then
    fail("%s: become_method %q is not supported (only \"sudo\")", spec.name, tostring(merged.become_method))
  end
  if merged.become_password_file ~= nil then
    local ok, why = require("kcm.native.loader").secret_file(tostring(merged.become_password_file))
    if not ok then fail("%s: become_password_file %s (from %s)", spec.name, why, from.become_password_file) end
  end
  -- read now and dropped from the environment: no local child inherits it
  if type(merged.become_password_env) == "string" then exec.take_env(merged.become_password_env) end
  -- an alias resolved against another ssh_config than the inventory's
  local host = spec.host
  if spec.alias and config ~= inv.ssh.config then host = cfg.hostname or spec.name end
  -- keep only what a layer above ssh_config said: the ssh layer applies
  -- ssh_config itself (and knows Host blocks' identity/known_hosts)
  local user = from.user ~= "ssh_config" and merged.user or nil
  local port = from.port ~= "ssh_config" and merged.port or nil
  if port ~= nil then port = value.port(port, spec.name .. ": port (" .. tostring(from.port) .. ")") end
  if merged.become ~= nil then merged.become = value.bool(merged.become, spec.name .. ": become (" .. tostring(from.become) .. ")") end
  merged.user, merged.port = nil, nil
  for i, n in ipairs(notes) do notes[i] = spec.name .. ": " .. n end
  return { name = spec.name, host = host, address = host, port = port and tonumber(port), user = user,
           vars = spec.vars or {}, ssh = merged, become = merged.become, become_user = merged.become_user,
           become_method = merged.become_method, become_password_file = merged.become_password_file,
           become_password_env = merged.become_password_env }, notes
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
