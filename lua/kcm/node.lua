-- A node reached over SSH: one libssh session per node for the whole run,
-- opened on first use and shared by every step. Every primitive is
-- idempotent, says whether it changed something, and in --check changes
-- nothing and reports what it would do.
local ssh = require "kcm.native.ssh"
local fs = require "kcm.native.fs"
local task = require "kcm.task"
local state = require "kcm.state"
local redact = require "kcm.redact"
local E = require "kcm.error"
local target = require "kcm.target"

local Node = {}
-- node.facts: gathered on first read (kcm.facts), then kept on the node
Node.__index = function(self, k)
  if k ~= "facts" then return Node[k] end
  local f = require("kcm.facts").gather(self)
  rawset(self, "facts", f)
  return f
end

local sessions = {}     -- "user@host:port|name" -> native session, shared by Node objects
local all_nodes = setmetatable({}, { __mode = "k" })

-- No remote command may hang a run: one that has not finished after this many
-- seconds is killed and fails its node (inventory ssh.command_timeout, or a
-- run's own {timeout=}). A link that carries nothing for ssh.io_timeout
-- seconds (60) counts as dead, which bounds transfers and stuck sessions.
local DEFAULT_COMMAND_TIMEOUT = 600

local function q(s) return ssh.quote(tostring(s)) end

local function cmdline(cmd)
  if type(cmd) == "table" then
    local parts = {}
    for i, a in ipairs(cmd) do parts[i] = q(a) end
    return table.concat(parts, " ")
  end
  return cmd
end

local function tail(s, n)
  s = s or ""
  s = s:gsub("%s+$", "")
  if #s > n then s = "..." .. s:sub(-n) end
  return s
end

local octal = require("kcm.mode").parse

--- Node.new{name, host, port, user, vars, become, become_user, ssh = {identity,
--- known_hosts, config, connect_timeout, accept_new, command_timeout, io_timeout,
--- become, become_user, become_method, become_password_file, become_password_env}}
function Node.new(spec)
  assert(type(spec) == "table", "Node.new: spec table expected")
  assert(spec.name or spec.host, "Node.new: name or host required")
  local o = spec.ssh or {}
  local become = spec.become
  if become == nil then become = o.become end
  local method = spec.become_method or o.become_method or "sudo"
  if method ~= "sudo" then
    error(string.format("%s: become_method %q is not supported (only \"sudo\")", tostring(spec.name or spec.host),
                        tostring(method)), 2)
  end
  local self = setmetatable({
    name = spec.name or spec.host,
    label = spec.name or spec.host,   -- the "node1: " of messages (kcm.target)
    host = spec.host,
    address = spec.address or spec.host,
    port = spec.port,
    user = spec.user or o.user,
    vars = spec.vars or {},
    ssh_opts = o,
    command_timeout = tonumber(o.command_timeout) or DEFAULT_COMMAND_TIMEOUT,
    ids = {},     -- owner/group name -> numeric id (per node)
    sums = {},    -- path -> sha256 of what this run put there (node:put_sum)
    become = become and true or false,
    become_user = spec.become_user or o.become_user or "root",
    become_password_file = spec.become_password_file or o.become_password_file,
    become_password_env = spec.become_password_env or o.become_password_env,
  }, Node)
  local key = table.concat({ self.name, tostring(self.user), tostring(self.host),
                             tostring(self.port), tostring(o.identity), tostring(o.config),
                             tostring(o.known_hosts), tostring(o.accept_new) }, "|")
  self.key = key
  all_nodes[self] = true
  return self
end

-- Whether this operation elevates: the call's opts.become (true/false), else
-- the running step's `become` option, else the node's (inventory / --become).
function Node:_becomes(opts)
  if opts and opts.become ~= nil then return opts.become and true or false end
  if opts and opts.sudo then return true end      -- the old spelling of become = true
  local c = task.current()
  if c and c.become ~= nil then return c.become and true or false end
  return self.become
end

-- The become password, read on the control machine when first needed (from
-- become_password_file or the variable become_password_env names); it only
-- ever travels on sudo's stdin, never on argv, in logs or in errors.
local function become_password(self)
  if self._become_pw ~= nil then return self._become_pw or nil end
  local pw = false
  if self.become_password_file then
    local f, err = io.open(self.become_password_file, "rb")
    if not f then error(string.format("%s: become_password_file: %s", self.name, err), 0) end
    pw = (f:read("a") or ""):match("^([^\r\n]*)")
    f:close()
  elseif self.become_password_env then
    local v = require("kcm.native.exec").take_env(self.become_password_env)
    if v == nil then
      error(string.format("%s: become_password_env: the environment variable %s is not set", self.name,
                          self.become_password_env), 0)
    end
    pw = v:match("^([^\r\n]*)")
  end
  self._become_pw = pw
  return pw or nil
end

-- Become (sudo) is a property of the node: the inventory's become /
-- become_user (CLI > node > group > ssh table, or --become) set self.become; a
-- step's `become` option or a call's own opts.become (true/false) overrides
-- it. Returns the argv prefix that elevates a command
-- ({"sudo", "-n", "-u", user, "--"}), or nil when the operation runs as the
-- login user. Every primitive asks here; callers never build sudo lines.
-- With a become password the prefix is {"sudo", "-k", "-S", "-p", PROMPT,
-- "-u", user, "--", "sh", "-c", <print READY on stderr, exec the command>,
-- "sh"} and carries `secret`, `prompt` and `ready`: the native exec sends the
-- password only after it has read sudo's own PROMPT, and never once READY
-- came first (a NOPASSWD rule, a root login), so the password can never
-- reach the command's own input. The markers are random per run.
local markers
local function become_markers()
  if not markers then
    local h = require("kcm.native.fs").sha256(state.run_id() .. tostring(math.random(0, 0x7fffffff)) .. tostring({}))
    markers = { prompt = "[kcm-sudo-" .. h:sub(1, 16) .. "]", ready = "[kcm-ready-" .. h:sub(17, 32) .. "]" }
  end
  return markers
end

function Node:_become_argv(opts)
  if not self:_becomes(opts) then return nil end
  local user = self.become_user or "root"
  if (opts and opts.become_user) then user = opts.become_user end
  local pw = become_password(self)
  if pw then
    local m = become_markers()
    return { "sudo", "-k", "-S", "-p", m.prompt, "-u", user, "--",
             "sh", "-c", "printf '%s\\n' '" .. m.ready .. "' >&2; exec \"$@\"", "sh",
             user = user, secret = pw, prompt = m.prompt, ready = m.ready }
  end
  return { "sudo", "-n", "-u", user, "--", user = user }
end

function Node:__tostring() return "node(" .. self.name .. ")" end

local function where(self)
  return self.name .. " (" .. (self.addr or ((self.host or self.name) .. ":" .. (self.port or 22))) .. ")"
end

-- What the runner does once per node when its connection is first made
-- (kcm.state: take the node's lock, read what is due there). A failure is
-- every later operation's on that node.
Node.on_connect = nil
local attached = {}     -- session key -> true (done) | "busy" | error

--- node:session() -> the connected session, after the run attached to the
--- node (on_connect). An unreachable node raises an error object of kind
--- "unreachable" (the runner counts it apart); host key and auth failures
--- are errors of their own kinds; a node another run holds, kind "locked".
function Node:session()
  local s, fresh = self:_connect()
  -- a new connection (the first, or after the link came back) holds no lock
  if fresh and attached[self.key] == true then attached[self.key] = nil end
  local a = attached[self.key]
  if a == true or not Node.on_connect then return s end
  if a == nil then
    attached[self.key] = "busy"
    local ok, err = pcall(Node.on_connect, self)
    attached[self.key] = ok or err
  else
    -- another task of this node is attaching: wait for its outcome
    while attached[self.key] == "busy" do task.sleep(0.005) end
  end
  a = attached[self.key]
  if a ~= true then error(a, 0) end
  return s
end

-- Opens (once) and returns the session, nothing more (kcm.state's own I/O
-- uses it while attaching).
function Node:_connect()
  local s = sessions[self.key]
  if not s then
    local o = self.ssh_opts
    s = ssh.session {
      name = self.name, host = self.host, port = self.port, user = self.user,
      identity = o.identity, known_hosts = o.known_hosts, config = o.config,
      connect_timeout = o.connect_timeout, io_timeout = tonumber(o.io_timeout),
      accept_new = o.accept_new and true or false,
    }
    sessions[self.key] = s
  end
  if s:alive() then return s, false end
  -- connect is idempotent and pinned: concurrent callers for one node
  -- queue behind the first and see it connected.
  local ok, msg, kind = s:connect()
  local new = ok and msg
  if not ok then
    local h, port = s:resolved()
    local addr = (h or self.name) .. ":" .. tostring(port)
    self.addr = addr
    if kind == "unreachable" then
      E.raise { kind = kind, node = self.name, op = "connect", address = addr,
                message = self.name .. " (" .. addr .. "): unreachable: " .. msg }
    end
    E.raise { kind = kind, node = self.name, op = "connect", address = addr,
              message = self.name .. " (" .. addr .. "): " .. msg }
  end
  return s, new
end

-- Calls a session method (natives return `nil, message, kind` on failure);
-- a failure that killed the connection (node powered off or network gone
-- mid-run) becomes an "unreachable" error. ctx names the op and path.
function Node:_call(s, method, ...)
  return self:_native(s, method, nil, ...)
end

function Node:_native(s, method, ctx, ...)
  local r = table.pack(s[method](s, ...))
  if r[1] ~= nil or r[2] == nil then return table.unpack(r, 1, r.n) end
  local msg, kind = r[2], r[3]
  ctx = ctx or {}
  if kind == "unreachable" or not s:alive() then
    local addr = self.addr or ((self.host or self.name) .. ":" .. (self.port or 22))
    E.raise { kind = "unreachable", node = self.name, op = ctx.op, path = ctx.path, address = addr,
              message = self.name .. " (" .. addr .. "): unreachable: connection lost: " .. msg }
  end
  msg = self.name .. ": " .. msg
  -- a refusal the login user met, where nothing asked for become
  local becoming = ctx.becoming
  if becoming == nil then becoming = self:_becomes(nil) end
  E.raise { kind = kind, node = self.name, op = ctx.op, path = ctx.path,
            message = self:_denied_hint(msg, becoming, kind) }
end

-- Environment values never travel on the remote command line (`ps` on the
-- node shows argv to every user): ENV_WRAPPER, a fixed script, reads
-- NAME=value lines from stdin (backslash and newline escaped, undone by
-- printf %b) up to an empty line, exports them and execs the command; the
-- caller's own stdin follows the empty line.
local ENV_WRAPPER = 'while IFS= read -r l && [ -n "$l" ]; do v=$(printf "%bx" "${l#*=}"); ' ..
                    'export "${l%%=*}=${v%x}"; done; unset l v; exec "$@"'

local function env_block(env)
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
  local lines = {}
  for _, k in ipairs(names) do
    if not tostring(k):match("^[%a_][%w_]*$") then error("bad environment variable name '" .. tostring(k) .. "'", 4) end
    local v = tostring(env[k])
    if v:find("\0", 1, true) then error("environment variable " .. k .. ": a value cannot hold a NUL byte", 4) end
    lines[#lines + 1] = k .. "=" .. v:gsub("\\", "\\\\"):gsub("\n", "\\n") .. "\n"
  end
  return table.concat(lines) .. "\n"
end

-- Remote command line with env and become applied. `become` is the argv
-- prefix from Node:_become_argv (nil: as the login user). An argv stays an
-- argv: every word is quoted, sudo runs it directly; only a string command
-- (the caller's own shell code) goes through `sh -c`. Second result: what
-- goes to the command's stdin ahead of the caller's (the env values).
local function build(cmd, opts, become)
  if become == nil and opts.sudo then become = { "sudo", "-n", "-u", "root", "--" } end
  local words = {}
  if become then for _, w in ipairs(become) do words[#words + 1] = q(w) end end
  local env_in
  if opts.env and next(opts.env) then
    env_in = env_block(opts.env)
    for _, w in ipairs { "sh", "-c", ENV_WRAPPER, "sh" } do words[#words + 1] = q(w) end
  end
  -- the native execs the line in the login shell (engine/ssh_exec.c): a
  -- string command is shell code, so it gets a shell of its own. Third
  -- result: the line without the become prefix, for the watcher, which
  -- runs as the target user already (engine/ssh_agent.c)
  local bare = type(cmd) == "table" and cmdline(cmd) or ("sh -c " .. q(cmd))
  if #words == 0 then return bare, env_in, bare end
  return table.concat(words, " ") .. " " .. bare, env_in, not env_in and bare or nil
end

-- The login user, for messages: the inventory's, else what ssh_config gave.
function Node:login_user()
  if self.user then return self.user end
  local s = sessions[self.key]
  if s and s.resolved then
    local _, _, u = s:resolved()
    if u and u ~= "?" then return u end
  end
  return "?"
end

-- A failure of sudo itself (not of the command it was to run) -> the error
-- that names the node and the fix; nil when stderr is the command's own.
local function sudo_failure(self, become, err)
  local u, bu = self:login_user(), become.user
  if err:find("sudo: a password is required", 1, true) then
    return string.format("%s: sudo requires a password for %s: give %s NOPASSWD sudo, or set " ..
                         "become_password_file (or become_password_env)", self.name, u, u)
  end
  if err:match("sudo: %d+ incorrect password attempt") or err:find("sudo: no password was provided", 1, true)
     or err:find("Sorry, try again", 1, true) or err:find("sudo: incorrect password", 1, true) then
    return string.format("%s: sudo rejected the become password for %s (check become_password_file / " ..
                         "become_password_env)", self.name, u)
  end
  if err:match("sudo: [^\n]*not in the sudoers file") or err:match("sudo: [^\n]*is not allowed to execute")
     or err:match("Sorry, user [^\n]* may not run sudo") then
    return string.format("%s: %s may not use sudo to become %s: %s", self.name, u, bu, tail(err, 200))
  end
  if err:match("sudo: not found") or err:match("sudo: command not found") then
    return string.format("%s: become needs sudo, which is not installed on the node", self.name)
  end
  return nil
end

-- A native file call (put, get, stat, ...) made as `become`: a refusal by sudo
-- itself names the node and the fix, as node:run does.
local function files_as(self, become, op, path, s, method, ...)
  local r = table.pack(pcall(self._native, self, s, method, { op = op, path = path, becoming = become ~= nil }, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  local err = r[2]
  if become and E.is(err) and err.kind ~= "unreachable" then
    local why = sudo_failure(self, become, err.message)
    if why then E.raise { kind = "sudo", node = self.name, op = op, path = path, message = why } end
  end
  error(err, 0)
end

-- Without become, a refusal the login user met gets the hint that fixes it:
-- a native's refusal says so by its kind ("denied"); a command's refusal
-- only by what the command wrote on stderr (kind "exit").
local DENIED = { "[Pp]ermission denied", "Interactive authentication required", "Access denied",
                 "[Oo]peration not permitted", "must be root", "[Nn]ot permitted" }
function Node:_denied_hint(msg, becoming, kind)
  if becoming or msg:find("set become = true", 1, true) then return msg end
  if kind ~= "denied" and kind ~= "exit" then return msg end
  local u = self:login_user()
  if u == "root" then return msg end
  local hint = "permission denied (login user " .. u .. "; set become = true)"
  local head = msg:match("^(.-)[Pp]ermission denied$")
  if head then return head .. hint end
  if kind == "denied" then return msg .. "\n(" .. hint .. ")" end
  for _, pat in ipairs(DENIED) do
    if msg:find(pat) then return msg .. "\n(" .. hint .. ")" end
  end
  return msg
end

--- node:run(cmd | argv, {stdin, env, become, become_user, ok_codes={0}, timeout, readonly, changed})
--- -> {code, stdout, stderr[, changed]}   (opts.sudo = true is the old spelling of become = true)
--- changed=function(res) -> bool|string: a truthy answer records a change (the
--- string, or "run <cmd>"), so the step reports "changed" instead of "ok".
function Node:run(cmd, opts)
  require("kcm.op_keys").check("node", "run", opts)
  opts = opts or {}
  if type(cmd) == "table" and #cmd == 0 then error("node:run: empty argv", 2) end
  local shown = cmdline(cmd)
  return target.run(self, shown, opts, function(begin)
    local become = self:_become_argv(opts)
    local line, env_in, bare = build(cmd, opts, become)
    local stdin = opts.stdin
    if env_in then stdin = env_in .. (stdin or "") end
    -- -v: the argv as given (environment values and stdin are never shown)
    task.log("run " .. shown)
    -- _raw: kcm.state's own command while it attaches to the node
    local s = opts._raw and self:_connect() or self:session()
    begin()
    local timeout = opts.timeout or self.command_timeout
    local r = table.pack(pcall(self._native, self, s, "exec", { op = "run" }, line, stdin, timeout, become,
                                  not opts.sudo and bare or nil))
    if not r[1] then
      -- sudo refused before the command started (the watcher's or the
      -- command's own handshake): the error that names the fix
      local e = r[2]
      local why = become and E.is(e) and e.kind ~= "unreachable" and sudo_failure(self, become, e.message)
      if why then E.raise { kind = "sudo", node = self.name, op = "run", message = why } end
      error(e, 0)
    end
    local code, out, err, timed_out = r[2], r[3], r[4], r[5]
    if become and code ~= 0 and not timed_out then
      local why = sudo_failure(self, become, err)
      if why then E.raise { kind = "sudo", node = self.name, op = "run", message = why } end
    end
    return code, out, err, timed_out, timeout
  end)
end

-- A command that failed without become gets the hint when its stderr says
-- it was refused.
function Node:_fail_exit(msg, _, opts)
  return self:_denied_hint(msg, self:_becomes(opts), "exit")
end

-- owner/group -> numeric id on this node (cached); numbers pass through.
-- /etc/passwd and /etc/group are read over the file channel (no process on
-- the node); a name they lack (LDAP, sssd) is asked of NSS with one command.
function Node:_id(kind, name)
  if name == nil then return nil end
  if tonumber(name) then return math.tointeger(tonumber(name)) end
  local key = kind .. ":" .. name
  if self.ids[key] == nil then
    local file = kind == "user" and "/etc/passwd" or "/etc/group"
    if not self.ids[file] then
      self.ids[file] = true
      local ok, text = pcall(self.get, self, file)
      for line in (ok and text or ""):gmatch("[^\n]+") do
        local n, id = line:match("^([^:]+):[^:]*:(%d+):")
        if n and self.ids[kind .. ":" .. n] == nil then self.ids[kind .. ":" .. n] = math.tointeger(tonumber(id)) end
      end
    end
  end
  if self.ids[key] == nil then
    local r
    if kind == "user" then
      r = self:run({ "id", "-u", "--", name }, { readonly = true, ok_codes = { 0, 1 } })
    else
      r = self:run({ "getent", "group", "--", name }, { readonly = true, ok_codes = { 0, 1, 2 } })
    end
    local v
    if kind == "user" then v = tonumber(r.stdout:match("^(%d+)"))
    else v = tonumber(r.stdout:match("^[^:]*:[^:]*:(%d+):")) end
    if r.code ~= 0 or not v then
      error(string.format("%s: no %s named '%s'", self.name, kind, name), 0)
    end
    self.ids[key] = math.tointeger(v)
  end
  return self.ids[key]
end

-- Lines of private key blocks and credential fields never reach a diff
-- (kcm.redact: the one set of rules, shared with the report).
local redact_lines = redact.lines

local function is_text(s)
  return not s:find("\0", 1, true) and #s <= 1024 * 1024
end

-- Unified diff from an LCS table; fine for config-sized files.
local function unified(a, b, name, ctxn)
  ctxn = ctxn or 3
  local n, m = #a, #b
  if n * m > 4000000 then return nil end
  local L = {}
  for i = n + 1, 1, -1 do
    L[i] = {}
    for j = m + 1, 1, -1 do
      if i > n or j > m then L[i][j] = 0
      elseif a[i] == b[j] then L[i][j] = L[i + 1][j + 1] + 1
      else L[i][j] = math.max(L[i + 1][j], L[i][j + 1]) end
    end
  end
  local ops, i, j = {}, 1, 1
  while i <= n or j <= m do
    if i <= n and j <= m and a[i] == b[j] then ops[#ops + 1] = { " ", a[i], i, j }; i, j = i + 1, j + 1
    elseif j <= m and (i > n or L[i][j + 1] >= L[i + 1][j]) then ops[#ops + 1] = { "+", b[j], i, j }; j = j + 1
    else ops[#ops + 1] = { "-", a[i], i, j }; i = i + 1 end
  end
  local out = { "--- " .. name .. " (remote)", "+++ " .. name .. " (new)" }
  local changes = {}
  for x, op in ipairs(ops) do if op[1] ~= " " then changes[#changes + 1] = x end end
  local c = 1
  while c <= #changes do
    local first, last = changes[c], changes[c]
    while c < #changes and changes[c + 1] - last <= 2 * ctxn + 1 do c = c + 1; last = changes[c] end
    c = c + 1
    local s, e = math.max(1, first - ctxn), math.min(#ops, last + ctxn)
    local ca, cb = 0, 0
    for x = s, e do
      if ops[x][1] ~= "+" then ca = ca + 1 end
      if ops[x][1] ~= "-" then cb = cb + 1 end
    end
    local sa, sb = ops[s][3], ops[s][4]
    if ca == 0 then sa = sa - 1 end
    if cb == 0 then sb = sb - 1 end
    out[#out + 1] = string.format("@@ -%d,%d +%d,%d @@", sa, ca, sb, cb)
    for x = s, e do out[#out + 1] = ops[x][1] .. ops[x][2] end
  end
  return table.concat(out, "\n") .. "\n"
end

-- Larger or binary files get sizes and checksums, never a computed diff.
local DIFF_MAX = 1024 * 1024

local function show_diff(self, path, p)
  local text
  local lsize, rsize = p.lcl.size, p.rm.exists and p.rm.size or nil
  local old, new
  if redact.is_secret(p.mode, p.opts) then
    -- by mode (& 077 == 0) or secret = true: never shown, only summarised
    local old_sha = p.rm.sha
    if rsize and not old_sha and rsize <= DIFF_MAX then old_sha = fs.sha256(self:get(path, { become = p.become ~= nil })) end
    text = string.format("%s: %s: %s\n", self.name, path, redact.summary(old_sha or (rsize and "?"), p.lcl.sha, lsize))
    if task.show_diff then task.show_diff(text) else io.stdout:write(text); io.stdout:flush() end
    return
  end
  if lsize <= DIFF_MAX and (rsize or 0) <= DIFF_MAX then
    new = p.data
    if not new then
      local f = io.open(p.src, "rb")
      new = f and f:read(DIFF_MAX + 1)
      if f then f:close() end
    end
    if new and rsize then old = self:get(path, { become = p.become ~= nil }) end
  end
  if new and (not rsize or old) and is_text(new) and (not old or is_text(old)) then
    text = unified(old and redact_lines(old) or {}, redact_lines(new), self.name .. ":" .. path)
  end
  if not text then
    local function side(size, sha) return size and string.format("%d bytes, sha256 %s", size, sha or "?") or "absent" end
    text = string.format("%s: %s: binary or large content differs: remote %s; new %s\n", self.name, path,
                         side(rsize, p.rm.sha), side(lsize, p.lcl.sha))
  end
  if task.show_diff then task.show_diff(text) else io.stdout:write(text); io.stdout:flush() end
end

-- .<name>.kcm-<run id>.<random>.tmp next to the target (same filesystem, so
-- the final rename is atomic). The run id says whose it is: after a put,
-- engine/ssh_sync.c removes this target's temp files whose run is not in
-- state.live_runs(node) (left by a killed or cut-off run), never one in flight.
local function tmp_name(path)
  local dir, base = path:match("^(.*)/([^/]+)$")
  if not dir then error("put: remote path must be absolute: " .. path, 3) end
  local rnd = {}
  for i = 1, 2 do rnd[i] = string.format("%04x", math.random(0, 0xffff)) end
  return (dir == "" and "" or dir) .. "/." .. base .. ".kcm-" .. state.run_id() .. "." .. table.concat(rnd) .. ".tmp"
end

-- Temps of a target whose run may still be going are never removed as
-- stale: with this node's lock held that is only this run's, without it
-- ("*", --no-lock) every run's.
local function live_runs(self) return table.concat(state.live_runs(self.name), ",") end

-- A sync call of plan p.
function Node:_sync(p, method, args)
  return files_as(self, p.become, "put", p.path, p.s, method, args)
end

-- What a put would do: the local side hashed (a local file once per run,
-- shared by every node), the node's copy hashed on the node. Nothing moves.
function Node:_put_plan(src, path, opts, lvl)
  opts = opts or {}
  lvl = (lvl or 2) + 1
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error(self.name .. ": put: remote path must be absolute, got " .. tostring(path), lvl)
  end
  local p = target.source(src, self.name .. ": ", path, lvl)
  p.path, p.opts, p.become = path, opts, self:_become_argv(opts)
  p.mode = octal(opts.mode, tonumber("644", 8))
  p.s = self:session()
  p.uid = self:_id("user", opts.owner)
  p.gid = self:_id("group", opts.group)
  p.lcl, p.rm = self:_sync(p, "sync_probe", { src = p.src, data = p.data, path = path, become = p.become,
                                              live = live_runs(self) })
  local rm = p.rm
  if rm.exists and rm.type ~= "file" then
    E.raise { kind = "exists", node = self.name, op = "put", path = path,
              message = string.format("%s: put %s: exists and is a %s, not a file", self.name, path, rm.type) }
  end
  p.same = rm.sha ~= nil and rm.sha == p.lcl.sha
  p.fix_mode = rm.exists and rm.mode ~= p.mode
  p.fix_owner = rm.exists and ((p.uid and rm.uid ~= p.uid) or (p.gid and rm.gid ~= p.gid))
  if p.same then
    p.what = "put " .. path .. " (" .. (p.fix_mode and "mode" or "") ..
             ((p.fix_mode and p.fix_owner) and "+" or "") .. (p.fix_owner and "owner" or "") .. ")"
  else
    p.what = "put " .. path
  end
  return p
end

-- Sends the content to a temp next to the target; renames it unless staged.
function Node:_put_send(p, stage)
  p.tmp = tmp_name(p.path)
  -- the node's progress line (kcm.progress) reads the bytes sent so far
  local sent, over = require("kcm.progress").transfer(self.name, "put " .. p.path, p.lcl.size)
  self:_sync(p, "sync_put", {
    src = p.src, data = p.data, path = p.path, tmp = p.tmp, mode = p.mode, uid = p.uid, gid = p.gid,
    mkdir = p.opts.mkdir ~= false and not p.rm.dir, become = p.become, rename = not stage,
    expect = p.src and p.lcl or nil, live = live_runs(self), progress = sent,
  })
  over()
end

function Node:_put_attrs(p)
  self:_sync(p, "sync_attrs", { path = p.path, mode = p.mode, uid = p.uid, gid = p.gid, become = p.become })
end

--- node:put(local_path | {content=...}, remote_path, {mode="0644", owner, group, mkdir=true, become})
--- -> changed. A local file is streamed (never loaded whole), compared by
--- checksums computed on each side, replaced atomically.
function Node:put(src, path, opts)
  require("kcm.op_keys").check("node", "put", opts)
  local p = self:_put_plan(src, path, opts, 2)
  if p.same and not p.fix_mode and not p.fix_owner then
    if p.rm.stale and not task.check() then
      self:_sync(p, "sync_clean", { path = path, become = p.become, live = live_runs(self) })
    end
    self.sums[path] = p.lcl.sha
    return false
  end
  return target.change(p.what, function()
    if not p.same then
      local n = p.lcl.size or 0
      task.log(string.format("put %s (%s)", path, n >= 1024 and string.format("%d KiB", n // 1024) or string.format("%d B", n)))
      self:_put_send(p)
    else
      self:_put_attrs(p)
    end
    self.sums[path] = p.lcl.sha
  end, not p.same and function() show_diff(self, path, p) end or nil)
end

--- node:put_sum(path) -> the sha256 (hex) of what this run's put left at
--- path (checked or sent), or nil: lets a step skip hashing the file again.
function Node:put_sum(path) return self.sums[path] end

--- node:put_pair{ {src, path, opts}, {src, path, opts} } -> changed
--- A certificate (first) and its key (second), installed as a pair: when
--- either differs from the local one both are sent to temps first, then the
--- key is renamed, then the certificate. A run that dies between the two
--- renames leaves a pair that differs from the local one, which the next
--- run reinstalls whole.
function Node:put_pair(pair)
  if type(pair) ~= "table" or #pair ~= 2 then error(self.name .. ": put_pair: want { {src, path, opts}, {src, path, opts} }", 2) end
  local plans = {}
  for i = 1, 2 do
    local e = pair[i]
    if type(e) ~= "table" then error(self.name .. ": put_pair: entry " .. i .. " must be {src, path, opts}", 2) end
    plans[i] = self:_put_plan(e[1], e[2], e[3], 2)
  end
  local whole = not (plans[1].same and plans[2].same)
  local whats = {}
  for _, p in ipairs(plans) do
    if whole then p.what = "put " .. p.path end
    if whole or p.fix_mode or p.fix_owner then
      whats[#whats + 1] = p.what
    elseif p.rm.stale and not task.check() then
      self:_sync(p, "sync_clean", { path = p.path, become = p.become, live = live_runs(self) })
    end
  end
  if #whats == 0 then return false end
  local function diff()
    for _, p in ipairs(plans) do if not p.same then show_diff(self, p.path, p) end end
  end
  return target.change(whats, function()
    if not whole then
      for _, p in ipairs(plans) do if p.fix_mode or p.fix_owner then self:_put_attrs(p) end end
      return
    end
    local ok, err = pcall(function()
      for _, p in ipairs(plans) do self:_put_send(p, true) end
    end)
    if not ok then
      -- staged temps of this pair go; the targets are untouched
      for _, p in ipairs(plans) do
        if p.tmp and p.s:alive() then
          pcall(self._sync, self, p, "sync_clean", { path = p.path, become = p.become, live = live_runs(self), tmp = p.tmp })
        end
      end
      error(err, 0)
    end
    self:_sync(plans[2], "sync_commit", { tmp = plans[2].tmp, path = plans[2].path, become = plans[2].become, live = live_runs(self) })
    self:_sync(plans[1], "sync_commit", { tmp = plans[1].tmp, path = plans[1].path, become = plans[1].become, live = live_runs(self) })
  end, whole and diff or nil)
end

--- node:lock(wait_s, note) -> true | false, holder's note
--- The node's lock (flock on /run/lock/kcmrun.lock, held by this run's
--- connection until it ends, kill -9 included; engine/ssh_watch.c), taken
--- with the node's own privilege (its become, not a step's).
function Node:lock(wait, note)
  local become = self.become and self:_become_argv({ become = true }) or nil
  local s = self:_connect()
  local got, holder = self:_native(s, "lock", { op = "lock", becoming = become ~= nil }, math.tointeger(wait) or 0,
                                   note, become)
  if got then state.held(self.name, true) end
  return got, holder
end

-- kcmrun's own state on the node (kcm.state): read and written with the
-- node's own privilege, atomically, never as a change a step reports.
local STATE_DIR_MODE = tonumber("700", 8)
function Node:_state_become()
  return self.become and self:_become_argv({ become = true }) or nil
end

--- node:_read_state(path) -> content | nil (no such file)
function Node:_read_state(path)
  local b = self:_state_become()
  local s = self:_connect()
  local st = self:_native(s, "stat", { op = "get", path = path }, path, b)
  if not st then return nil end
  return self:_native(s, "read", { op = "get", path = path }, path, b)
end

--- node:_write_state(path, content): temp, fsync, rename; 0600 in a 0700 folder
function Node:_write_state(path, content)
  local b = self:_state_become()
  local s = self:_connect()
  local dir = path:match("^(.*)/[^/]+$")
  self:_native(s, "mkdir", { op = "mkdir", path = dir }, dir, STATE_DIR_MODE, b)
  local tmp = tmp_name(path)
  self:_native(s, "sync_put", { op = "put", path = path }, {
    data = content, path = path, tmp = tmp, mode = tonumber("600", 8), become = b, mkdir = false,
    live = live_runs(self) })
end

--- node:transfer_stats() -> {bytes_sent, bytes_received} of this run's connection (TCP counters)
function Node:transfer_stats()
  return self:_call(self:session(), "stats")
end

-- Files go through the connection's file session of the identity the
-- operation runs as (engine/ssh_files.c): with become, an sftp-server run
-- under the same privilege prefix as commands, so stat, get, mkdir, chmod and
-- remove start no process on the node, whoever the target user is.
function Node:_files(method, op, path, opts, ...)
  local become = self:_become_argv(opts)
  local args = table.pack(...)
  args.n = args.n + 1
  args[args.n] = become
  return files_as(self, become, op, path, self:session(), method, path, table.unpack(args, 1, args.n))
end

--- node:get(path, {become}) -> content
function Node:get(path, opts)
  require("kcm.op_keys").check("node", "get", opts)
  task.log("get " .. path)
  return self:_files("read", "get", path, opts)
end

--- node:fetch(path, local_path, {mode="0600", size, become}) -> bytes: the
--- node's file streamed into a local one (a temp next to it, fsynced,
--- renamed: never half a file), memory the same whatever its size; with
--- `size` (from a stat) a progress line shows the transfer
function Node:fetch(path, local_path, opts)
  require("kcm.op_keys").check("node", "fetch", opts)
  opts = opts or {}
  task.log("get " .. path .. " -> " .. local_path)
  local become = self:_become_argv(opts)
  local counter, over = require("kcm.progress").transfer(self.name, "get " .. path, opts.size)
  local ok, n = pcall(files_as, self, become, "get", path, self:session(), "fetch",
                      { path = path, dest = local_path, mode = octal(opts.mode, tonumber("600", 8)),
                        become = become, progress = counter })
  over()
  if not ok then error(n, 0) end
  return n
end

--- node:stat(path, {become}) -> {type,size,mode,uid,gid,mtime} | nil
function Node:stat(path, opts)
  return self:_files("stat", "stat", path, opts)
end

--- node:mkdir(path, {mode="0755", become}) -> changed
function Node:mkdir(path, opts)
  require("kcm.op_keys").check("node", "mkdir", opts)
  opts = opts or {}
  local mode = octal(opts.mode, tonumber("755", 8))
  local st = self:stat(path, opts)
  if st then
    if st.type ~= "dir" then
      E.raise { kind = "exists", node = self.name, op = "mkdir", path = path,
                message = string.format("%s: mkdir %s: exists and is a %s", self.name, path, st.type) }
    end
    if opts.mode == nil or st.mode == mode then return false end
    return target.change("chmod " .. path, function() self:_files("chmod", "mkdir", path, opts, mode) end)
  end
  return target.change("mkdir " .. path, function() return self:_files("mkdir", "mkdir", path, opts, mode) end)
end

--- node:remove(path, {recursive=false, become}) -> changed
function Node:remove(path, opts)
  require("kcm.op_keys").check("node", "remove", opts)
  opts = opts or {}
  local st = self:stat(path, opts)
  if not st then return false end
  return target.change("remove " .. path, function()
    self:_files("remove", "remove", path, opts, opts.recursive and true or false)
  end)
end

--- node:close(): drops this node's connection (a later call reconnects).
function Node:close()
  local s = sessions[self.key]
  if s then
    sessions[self.key] = nil
    -- the node's lock goes with the connection: the next one takes it again
    attached[self.key] = nil
    state.held(self.name, nil)
    s:close()
  end
end

--- Closes every session (the runner calls it at the end of the run).
function Node.close_all()
  for k, s in pairs(sessions) do
    sessions[k] = nil
    attached[k] = nil
    pcall(s.close, s)
  end
  for n in pairs(all_nodes) do state.held(n.name, nil) end
end

-- A refusal the login user met gets its fix, whichever put path met it.
for _, m in ipairs { "put", "put_pair" } do
  local f = Node[m]
  Node[m] = function(self, ...)
    local r = table.pack(pcall(f, self, ...))
    if r[1] then return table.unpack(r, 2, r.n) end
    local err = r[2]
    local opts = m == "put" and select(3, ...) or nil
    if E.is(err) then
      err.message = self:_denied_hint(err.message, self:_becomes(type(opts) == "table" and opts or nil), err.kind)
    end
    error(err, 0)
  end
end

-- For tests: the command line node:run would send for argv/opts.
Node._build = build

return Node
