-- The command line: kcmrun [options] PLAYBOOK
local fs = require "kcm.native.fs"
local loader = require "kcm.native.loader"
local rt = require "kcm.native.runtime"

local EXIT = { ok = 0, internal = 1, usage = 2, playbook = 3, nodes = 4, sigint = 130, sigterm = 143 }

local USAGE = [[
usage: kcmrun [options] PLAYBOOK          a playbook file, or a name: NAME finds playbooks/NAME.lua
                                          here, then the installed playbooks
       kcmrun --list-playbooks
       kcmrun run PATTERN [options] -- CMD [ARGS...]   one command on the matching nodes
       kcmrun put PATTERN SRC DEST [--mode 0644]       a local file to the nodes
       kcmrun get PATTERN SRC DESTDIR                  a file from each node, as DESTDIR/<node>/SRC
       kcmrun facts PATTERN [--json]                   OS, kernel, arch, CPUs, memory, systemd, IPs, machine-id
       kcmrun hosts [PATTERN] | --graph                the nodes a pattern matches; the groups
       kcmrun lab up [--nodes N] | down | status | stop NODE | start NODE | ssh NODE [cmd] | exec NODE cmd | env

Runs PLAYBOOK's steps in order; each step runs on all its nodes in parallel.
A Lua file that does not return a playbook runs as a script.

options:
  -i, --inventory FILE   Lua inventory, or the procedure's environment.sh
                         (without -i, first found: $KCMRUN_INVENTORY, ./inventory.lua,
                         /opt/k8s/bin/environment.sh, the running lab's inventory)
  -e, --extra-var K=V    set a variable (repeatable; overrides the inventory)
      --list-steps       print the steps and exit
      --list-playbooks   print the playbooks found by name and exit
      --only A,B         run only these steps
      --skip C           skip these steps
      --start-at D       start at this step
      --limit PATTERN    only these nodes: names, groups, node*, node[1:2], a,b,
                         all:!node2, masters:&etcd (as Ansible's)
  -f, --forks N          at most N nodes in flight (default 64)
  -C, --check            change nothing; report what would change
  -D, --diff             show file diffs (key material redacted)
      --accept-new       record unknown ssh host keys (changed keys always fail)
      --ssh-config FILE  ssh_config to honour (default ~/.ssh/config)
      --known-hosts FILE known_hosts to check against (default ~/.ssh/known_hosts)
      --identity FILE    private key for ssh authentication
  -b, --become           run every node operation through sudo (as become_user, default root)
      --lua-path DIR     search DIR first for Lua modules (repeatable)
      --log-json FILE    write one JSON event per line
      --timeline F.svg   draw every node's steps on a time axis
      --state-dir DIR    where run state and locks live (default /var/lib/kcmrun/state
                         as root, else ~/.local/state/kcmrun)
      --no-lock          do not take the per-node locks (another run may work on them)
      --lock-wait S      wait up to S seconds for a node another run holds (default 0: fail at once)
      --grace S          after SIGINT/SIGTERM, wait S seconds (default 5) for work in
                         flight before abandoning it; a second signal stops at once
  -q, --quiet            only the inventory line, failures and the recap
  -v, --verbose          more detail: each remote command and transfer as it runs
                         (-vv: and tracebacks of errors)
  -V, --version          print the version
  -h, --help             this help

PATTERN (run, put, get, facts, hosts, --limit, a playbook's hosts), as Ansible's: a node or
group name, all, globs (node*), ranges (node[1:3], or masters[0:1] by position in a group),
unions (a,b or a:b), intersection (masters:&etcd), exclusion (all:!node2). Ad-hoc commands
run through the same inventory, login, become and locks as a playbook; their answers are
grouped (`node1..node3 (3): active`), then a recap by exit code; exit 4 when a node failed.
  --mode M               put: the file's mode on the nodes (octal, e.g. 0640)
  --json                 facts: one JSON object {node: {facts}} on stdout

lab: local nodes (real sshd and systemd in namespaces) to rehearse a deployment on;
`kcmrun lab up` prints the paths it wrote, and its inventory is then found without -i.
Needs root.

environment: KCMRUN_INVENTORY (inventory when -i is not given), KCMRUN_LAB_DIR (the lab's
state, default /var/lib/kcmrun/lab), KCMRUN_DATADIR (folder holding lab/ and playbooks/,
default <bin>/../share/kcmrun), KCMRUN_LUA_PATH (colon-separated module folders), NO_COLOR

exit codes:
  0    every step succeeded on every node
  2    usage or configuration error (bad option, no or bad inventory, no such playbook)
  3    playbook error (syntax or load error, script error)
  4    at least one node failed or was unreachable
  130  interrupted by SIGINT, 143 by SIGTERM (the recap is still printed,
       unless a second signal stopped the run at once)
]]

local function die(code, msg)
  io.stderr:write("kcmrun: ", msg, "\n")
  return code
end

local function split_csv(s)
  local out = {}
  for part in s:gmatch("[^,]+") do out[#out + 1] = part:match("^%s*(.-)%s*$") end
  return out
end

local function parse(argv)
  local o = { extra_vars = {}, lua_path = {}, verbosity = 0, forks = 64, ssh = {}, grace = 5 }
  local i = 1
  local function value(name)
    i = i + 1
    local v = argv[i]
    if v == nil then error({ usage = true, message = name .. " needs a value" }, 0) end
    return v
  end
  while i <= #argv do
    local a = argv[i]
    local long, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    if long then a = long; table.insert(argv, i + 1, inline) end
    if a == "-h" or a == "--help" then o.help = true
    elseif a == "-V" or a == "--version" then o.version = true
    elseif a == "-i" or a == "--inventory" then o.inventory = value(a)
    elseif a == "-e" or a == "--extra-var" then
      local kv = value(a)
      local k, v = kv:match("^([%a_][%w_]*)=(.*)$")
      if not k then error({ usage = true, message = "-e expects KEY=VALUE, got '" .. kv .. "'" }, 0) end
      -- kept as text: its reader asks for the type it needs (kcm.value)
      o.extra_vars[k] = v
    elseif a == "--list-steps" then o.list_steps = true
    elseif a == "--list-playbooks" then o.list_playbooks = true
    elseif a == "--only" then o.only = split_csv(value(a))
    elseif a == "--skip" then
      o.skip = o.skip or {}
      for _, s in ipairs(split_csv(value(a))) do o.skip[#o.skip + 1] = s end
    elseif a == "--start-at" then o.start_at = value(a)
    elseif a == "--limit" then o.limit = value(a)
    elseif a == "-f" or a == "--forks" then
      local n = math.tointeger(tonumber(value(a)))
      if not n or n < 1 then error({ usage = true, message = "--forks expects a positive integer" }, 0) end
      o.forks = n
    elseif a == "-C" or a == "--check" then o.check = true
    elseif a == "-D" or a == "--diff" then o.diff = true
    elseif a == "--accept-new" then o.ssh.accept_new = true
    elseif a == "--ssh-config" then o.ssh.config = value(a)
    elseif a == "--known-hosts" then o.ssh.known_hosts = value(a)
    elseif a == "--identity" then o.ssh.identity = value(a)
    elseif a == "-b" or a == "--become" then o.ssh.become = true
    elseif a == "--lua-path" then o.lua_path[#o.lua_path + 1] = value(a)
    elseif a == "--log-json" then o.log_json = value(a)
    elseif a == "--timeline" then o.timeline = value(a)
    elseif a == "--state-dir" then o.state_dir = value(a)
    elseif a == "--no-lock" then o.no_lock = true
    elseif a == "--lock-wait" then
      local v = value(a)
      o.lock_wait = math.tointeger(tonumber(v))
      if not o.lock_wait or o.lock_wait < 0 then
        error({ usage = true, message = "--lock-wait expects whole seconds (0 or more), got '" .. v .. "'" }, 0)
      end
    elseif a == "--grace" then
      local g = tonumber(value(a))
      if not g or g < 0 then error({ usage = true, message = "--grace expects a number of seconds >= 0" }, 0) end
      o.grace = g
    elseif a == "--mode" then o.mode = value(a)
    elseif a == "--json" then o.json = true
    elseif a == "-q" or a == "--quiet" then o.verbosity = -1
    elseif a == "--verbose" then o.verbosity = o.verbosity + 1
    elseif a:match("^%-v+$") then o.verbosity = math.max(o.verbosity, 0) + #a - 1
    elseif a == "--" then
      o.playbook = argv[i + 1]
      o.args = { table.unpack(argv, i + 2) }
      break
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      error({ usage = true, message = "unknown option " .. a .. " (see kcmrun --help)" }, 0)
    elseif not o.playbook then
      o.playbook = a           -- options may also follow the playbook
      o.args = {}
    else
      o.args[#o.args + 1] = a  -- a script's own arguments
    end
    i = i + 1
  end
  return o
end

local function dirname(p)
  return p:match("^(.*)/[^/]*$") or "."
end

-- Where kcmrun kept its state before it was per node (per user's home).
local function home_state_dir()
  local xdg = os.getenv("XDG_STATE_HOME")
  if xdg and xdg ~= "" then return xdg .. "/kcmrun" end
  return (os.getenv("HOME") or "/root") .. "/.local/state/kcmrun"
end

-- One folder per machine for root, whatever HOME or XDG_STATE_HOME the
-- shell has (sudo, su, a CI job): a restart left due by one run must be
-- seen by the next, however it is started.
local function state_dir(o)
  if o.state_dir then return o.state_dir end
  -- getuid(), not /proc/self's owner (root-owned under hardening)
  if require("kcm.native.statedir").user() == 0 then return "/var/lib/kcmrun/state" end
  return home_state_dir()
end

local function err_message(e)
  local describe = require("kcm.error").describe
  if type(e) == "table" then return describe(rawget(e, "message") or e) end
  return describe(e)
end

local function interrupted_code()
  local sig = rt.signal()
  return sig == 15 and EXIT.sigterm or EXIT.sigint
end

local function signame()
  return rt.signal() == 15 and "SIGTERM" or "SIGINT"
end

-- Where run state and locks go must be a folder we can write: one line
-- naming it and why not, instead of a failure deep in the run.
-- Subcommands: the first argument names one. A subcommand returns an exit code, or an
-- argv table that the host (engine/main.c) execs once the Lua state is closed.
local SUBCOMMANDS = {}
local first_word

function SUBCOMMANDS.lab(host, args)
  local script = host.datadir and host.datadir .. "/lab/kcmlab.sh"
  if not script or not fs.exists(script) then
    return die(EXIT.usage, "cannot find the lab: " .. (script and script .. " does not exist" or
      "no data folder (looked at $KCMRUN_DATADIR, " .. (host.exe ~= "" and dirname(host.exe) or "<bin>") ..
      "/../share/kcmrun and the build tree's " .. tostring(host.build_marker) .. ")") ..
      "; set KCMRUN_DATADIR to the folder holding lab/ and playbooks/")
  end
  local cmd = { "bash", script }
  for i = 1, #args do cmd[#cmd + 1] = args[i] end
  return cmd
end

local function list_playbooks(host)
  local discover = require "kcm.discover"
  for _, place in ipairs(discover.playbooks(host.datadir)) do
    print(place.dir .. "/")
    if #place.names == 0 then print("  (none)") end
    for _, n in ipairs(place.names) do print("  " .. n) end
  end
  return EXIT.ok
end

local function version_line(host)
  return string.format("kcmrun %s (%s)", host.version or "?", host.lua_release or _VERSION)
end

local function targets_hosts(play)
  for _, s in ipairs(play.steps) do
    if not s.once then return true end
  end
  return false
end

-- The inventory: -i, else the first found (kcm.discover). Only a playbook with steps
-- on hosts needs one; one whose steps all run `once` gets the empty inventory.
local function find_inventory(o, play)
  local discover = require "kcm.discover"
  if not o.inventory and not targets_hosts(play) then return nil end
  local path, why = discover.inventory(o.inventory)
  if not path then
    error({ usage = true, message = string.format(
      "no inventory for %s (its steps run on hosts '%s'); tried, in order:\n%s\n" ..
      "make one: `kcmrun lab up` (a local lab; its inventory is then found), " ..
      "or write one and pass `-i FILE` (see kcmrun --help)", o.playbook, tostring(play.hosts), table.concat(why, "\n")) }, 0)
  end
  return path, why
end

-- The playbook file, loaded and run as a task (so it may call natives), with
-- strict globals. -> play | nil, exit code (EXIT.ok: a script, it ran)

-- A module found in the playbook's folders (or --lua-path) is the
-- operator's code, as the playbook is: it runs in an environment of its own
-- (kcm.strict_env), so a global it mistypes is an error at its line, not a
-- silent nil, and what it assigns never lands in the engine's globals.
-- Built-in modules keep the engine's.
local strict_wrapped = false
local function strict_modules()
  if strict_wrapped then return end
  strict_wrapped = true
  local found = package.searchers[2]
  package.searchers[2] = function(name)
    local loader, where = found(name)
    if type(loader) == "function" and type(where) == "string" and not where:find("^builtin:") then
      -- a main chunk's one upvalue is its _ENV
      debug.setupvalue(loader, 1, require("kcm").strict_env())
    end
    return loader, where
  end
end

local function load_playbook(o)
  -- module search path: --lua-path, KCMRUN_LUA_PATH, the playbook's folder
  local path = {}
  for _, d in ipairs(o.lua_path) do path[#path + 1] = d end
  for d in (os.getenv("KCMRUN_LUA_PATH") or ""):gmatch("[^:]+") do path[#path + 1] = d end
  path[#path + 1] = dirname(o.playbook)
  loader.set_path(path)
  strict_modules()

  local task = require "kcm.task"
  local kcm = require "kcm"
  -- while loading nothing is in flight worth waiting for: an interrupt
  -- stops the loading at once (grace 0), Lua loops included
  require("kcm.target").configure { check = o.check, diff = o.diff }
  rt.configure({ max_workers = math.max(o.forks, 8) + 4, grace = 0 })

  -- load and run the playbook file (as a task, so it may call natives)
  -- strict globals, plus `arg` as the lua interpreter gives it to a script
  local env = kcm.strict_env()
  rawset(env, "arg", { [0] = o.playbook, table.unpack(o.args or {}) })
  local chunk, lerr = loadfile(o.playbook, "t", env)
  if not chunk then return nil, die(EXIT.playbook, lerr) end
  local t = task.wait(task.spawn(chunk, { step = "(load)", node = "localhost" }, table.unpack(o.args or {})))
  if rt.signal() then return nil, die(interrupted_code(), "interrupted by " .. signame() .. " while loading " .. o.playbook) end
  if not t.ok then
    local msg = t.message
    if o.verbosity > 1 then msg = debug.traceback(t.co, msg) end
    return nil, die(EXIT.playbook, msg)
  end
  local play = t.results[1]
  if not kcm.is_playbook(play) then
    return nil, EXIT.ok   -- a script: it ran
  end
  local verr = kcm.validate(play)
  if verr then return nil, die(EXIT.playbook, verr) end
  return play
end

local function list_steps(play)
  for _, s in ipairs(play.steps) do
    local target = s.once and "once" or (s.hosts or play.hosts)
    print(string.format("%-20s %-10s %s%s", s.name, target, s.defined_at,
                        s.optional and "  (optional)" or ""))
  end
  return EXIT.ok
end

-- The inventory (-i or found), loaded as a task; the empty one for a
-- playbook that needs none. -> inventory | nil, exit code
local function load_inventory(o, play)
  local task = require "kcm.task"
  local inventory = require "kcm.inventory"
  local fok, inv_path, inv_why = pcall(find_inventory, o, play)
  if not fok then return nil, die(EXIT.usage, err_message(inv_path)) end
  o.inventory = inv_path
  -- even with -q: a run never acts on a cluster it did not name
  -- (on stderr when stdout is JSON)
  if inv_path then (o.json and io.stderr or io.stdout):write(string.format("inventory: %s (%s)\n", inv_path, inv_why)) end
  local iok, inv
  if o.inventory then
    iok, inv = pcall(function() return task.wait(task.spawn(inventory.load, nil, o.inventory)) end)
    if rt.signal() then
      return nil, die(interrupted_code(), "interrupted by " .. signame() .. " while loading the inventory " .. o.inventory)
    end
    if iok then
      if not inv.ok then return nil, die(EXIT.usage, err_message(inv.error)) end
      inv = inv.results[1]
    else
      return nil, die(EXIT.usage, err_message(inv))
    end
  else
    inv = inventory.empty()
  end
  return inv
end

-- The state folder (checked writable) and the legacy state file.
-- -> dir, file | nil, exit code
local function state_paths(o)
  local sdir = state_dir(o)
  -- state-<key>.json: where kcmrun kept notifications per inventory and
  -- playbook before they were kept per target; the runner moves them over
  local abs_inv = o.inventory and (fs.realpath(o.inventory) or o.inventory) or "(none)"
  local pkey = fs.sha256(abs_inv .. "\0" .. (fs.realpath(o.playbook) or o.playbook)):sub(1, 16)
  -- ours, private, not a symlink (checked as ssh(1) checks ~/.ssh)
  local ok, serr = require("kcm.native.statedir").prepare(sdir)
  if not ok then return nil, die(EXIT.usage, string.format("state folder %s: %s", sdir, serr)) end
  return sdir, (o.state_dir or home_state_dir()) .. "/state-" .. pkey .. ".json"
end

-- The report, fed by the tasks' log lines and diffs. -> report | nil, exit code
local function open_report(o)
  local task = require "kcm.task"
  local rep_ok, report = pcall(require("kcm.report").new, { verbosity = o.verbosity, log_json = o.log_json, timeline = o.timeline })
  if not rep_ok then return nil, die(EXIT.usage, err_message(report)) end
  task.on_log = function(ctx, msg, kind) report:message(ctx and ctx.node, msg, kind) end
  -- what a run waits for (kcm.progress), shown by the report
  local progress = require "kcm.progress"
  progress.sink = report
  task.on_idle = progress.tick
  -- diffs are kept with the node's result, so nodes running at once do not interleave
  task.show_diff = function(text)
    local c = task.current()
    if c then c.diffs = c.diffs or {}; c.diffs[#c.diffs + 1] = text else report:diff(nil, text) end
  end
  return report
end

-- The exit code of a run from its summary; the recap and the last words.
local function finish_run(summary, report)
  local code = EXIT.ok
  if summary.failed then code = EXIT.nodes end
  if summary.playbook_error then code = EXIT.playbook end
  local sig = rt.signal()
  if sig then code = interrupted_code() end
  -- an -e name nothing read: the run did not do what was asked
  if summary.unread_extra and code == EXIT.ok then code = EXIT.usage end
  report:recap({ exit_code = code, interrupted = sig ~= nil or summary.interrupted, due = summary.due })
  if summary.stopped and not summary.playbook_error then
    io.stderr:write(string.format("kcmrun: every target of step '%s' failed: the play stopped there " ..
                                  "(a step with continue_on_failure = true lets it go on)\n", summary.stopped))
  end
  if summary.unread_extra and code == EXIT.usage then
    return die(EXIT.usage, summary.unread_extra .. " (a misspelt name? the run used the defaults instead)")
  end
  if summary.playbook_error and not sig then
    return die(EXIT.playbook, string.format("playbook error in step '%s': %s",
                                            summary.playbook_error.step, summary.playbook_error.message))
  end
  return code
end

-- The play on its inventory. -> exit code
local function run_play(o, play, inv, adhoc)
  local sdir, state_file = state_paths(o)
  if not sdir then return state_file end
  local report, rcode = open_report(o)
  if not report then return rcode end
  if adhoc then adhoc.watch(report) end

  local runner = require "kcm.runner"
  rt.configure({ grace = o.grace })
  local rok, summary = pcall(runner.run, play, {
    inventory = inv, report = report, forks = o.forks, only = o.only, skip = o.skip,
    start_at = o.start_at, limit = o.limit, check = o.check, diff = o.diff,
    extra_vars = o.extra_vars, ssh = o.ssh, playbook = o.playbook, grace = o.grace,
    playbook_dir = fs.realpath(dirname(o.playbook)) or dirname(o.playbook), state_dir = sdir,
    state_file = state_file,
    no_lock = o.no_lock, lock_wait = o.lock_wait,
  })
  if not rok then
    local e = summary
    if type(e) == "table" and (e.usage or e.config) then return die(EXIT.usage, e.message) end
    return die(EXIT.playbook, err_message(e))
  end
  if adhoc then return adhoc.finish(summary, report) end
  return finish_run(summary, report)
end

-- kcmrun run|put|get|facts PATTERN ...: a one-step play (kcm.adhoc) through
-- the same inventory, runner, login and become as a playbook's.
local ADHOC_USAGE = {
  run = "kcmrun run PATTERN [options] -- CMD [ARGS...]",
  put = "kcmrun put PATTERN SRC DEST [--mode 0644] [options]",
  get = "kcmrun get PATTERN SRC DESTDIR [options]   (files land as DESTDIR/<node>/SRC)",
  facts = "kcmrun facts PATTERN [--json] [options]",
}
local ADHOC_ARGS = { run = 0, put = 2, get = 2, facts = 0 }

-- The options that take a value (parse), to find the first word after them.
local VALUE_OPTIONS = {}
for o in ("-i --inventory -e --extra-var --only --skip --start-at --limit -f --forks --ssh-config --known-hosts " ..
          "--identity --lua-path --log-json --timeline --state-dir --lock-wait --grace --mode"):gmatch("%S+") do
  VALUE_OPTIONS[o] = true
end

function first_word(argv)
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then return nil end
    if a:sub(1, 1) ~= "-" or a == "-" then return i end
    if VALUE_OPTIONS[a] then i = i + 1 end
    i = i + 1
  end
end

-- The ad-hoc command's own arguments, checked before any connection.
-- -> {argv, src, dest, destdir, mode} | nil, exit code
local function adhoc_args(kind, o, argv)
  local usage = "usage: " .. ADHOC_USAGE[kind]
  if not o.playbook then return nil, die(EXIT.usage, "no PATTERN (a node, a group, all, node*, all:!node2); " .. usage) end
  if #o.args ~= ADHOC_ARGS[kind] then
    return nil, die(EXIT.usage, string.format("%s takes %s after PATTERN, got %d (%s); %s", kind,
      kind == "run" and "nothing but -- CMD" or "SRC and DEST", #o.args, table.concat(o.args, " "), usage))
  end
  if kind == "run" and (not argv or #argv == 0) then return nil, die(EXIT.usage, "no command after --; " .. usage) end
  if o.mode and kind ~= "put" then return nil, die(EXIT.usage, "--mode is for put only") end
  if o.json and kind ~= "facts" then return nil, die(EXIT.usage, "--json is for facts only") end
  local a = { argv = argv, src = o.args[1], dest = o.args[2], destdir = o.args[2], mode = o.mode }
  if kind == "put" then
    local st = fs.stat(a.src)
    if not st or st.type ~= "file" then
      return nil, die(EXIT.usage, "put: SRC " .. a.src .. (st and (" is a " .. st.type) or " does not exist") ..
                      "; give a local file")
    end
    if a.dest:sub(1, 1) ~= "/" then
      return nil, die(EXIT.usage, "put: DEST " .. a.dest .. " must be an absolute path on the nodes")
    end
    if a.dest:sub(-1) == "/" then a.dest = a.dest .. a.src:match("([^/]+)$") end
    if o.mode and not o.mode:match("^0?[0-7][0-7][0-7][0-7]?$") then
      return nil, die(EXIT.usage, "--mode expects octal permissions such as 0644, got '" .. o.mode .. "'")
    end
  elseif kind == "get" and a.src:sub(1, 1) ~= "/" then
    return nil, die(EXIT.usage, "get: SRC " .. a.src .. " must be an absolute path on the nodes")
  end
  return a
end

-- run_play's hooks for an ad-hoc run: the report keeps each node's status
-- and shows no step lines; the end shows the answers grouped, the recap by
-- exit code, and names the failed nodes.
local function adhoc_hooks(kind, o, names, results)
  local adhoc = require "kcm.adhoc"
  local status = {}
  return {
    watch = function(report)
      report.hide_steps = true
      if o.json then report.out = io.stderr end   -- stdout is the JSON alone
      local node_result = report.node_result
      report.node_result = function(self, step, node, r)
        status[node] = { status = r.status, error = r.error }
        return node_result(self, step, node, r)
      end
    end,
    finish = function(summary, report)
      local rcode = EXIT.ok
      if summary.failed then rcode = EXIT.nodes end
      if rt.signal() then rcode = interrupted_code() end
      if kind == "facts" and o.json then
        print(adhoc.facts_json(names, results))
      elseif kind == "facts" then
        for _, l in ipairs(adhoc.facts_table(names, results)) do print(l) end
      end
      local lines, failed = adhoc.render(names, results, status)
      if kind == "facts" then lines = select(1, adhoc.render(failed, results, status)) end
      for _, l in ipairs(lines) do if o.verbosity >= 0 or #failed > 0 then report:line(l) end end
      report:recap({ exit_code = rcode, interrupted = rt.signal() ~= nil or summary.interrupted,
                     lines = adhoc.recap(names, results, status) })
      if #failed > 0 then
        io.stderr:write("kcmrun: ", kind, " failed on ", adhoc.failed_line(failed, results, status), "\n")
      end
      return rcode
    end,
  }
end

local function adhoc_main(kind, _, args)
  local before, argv = args, nil
  if kind == "run" then
    for i, a in ipairs(args) do
      if a == "--" then before, argv = { table.unpack(args, 1, i - 1) }, { table.unpack(args, i + 1) }; break end
    end
  end
  local ok, o = pcall(parse, before)
  if not ok then return die(EXIT.usage, err_message(o)) end
  if o.help then print("usage: " .. ADHOC_USAGE[kind]); return EXIT.ok end
  local a, acode = adhoc_args(kind, o, argv)
  if not a then return acode end
  local pattern = o.playbook
  o.playbook, o.args = "kcmrun-" .. kind, {}
  -- what load_playbook sets for a playbook: the run's mode, workers for --forks
  require("kcm.target").configure { check = o.check, diff = o.diff }
  rt.configure({ max_workers = math.max(o.forks, 8) + 4, grace = 0 })
  local play, results = require("kcm.adhoc").play(kind, pattern, a)
  local inv, code = load_inventory(o, play)
  if not inv then return code end
  local P = require "kcm.pattern"
  local names, why = P.match(inv, pattern)
  if not names or #names == 0 then
    return die(EXIT.usage, string.format("%s '%s': %s in %s; %s", kind, pattern, why, tostring(inv.file), P.known(inv)))
  end
  return run_play(o, play, inv, adhoc_hooks(kind, o, names, results))
end

-- kcmrun hosts [PATTERN] | --graph: the nodes a pattern matches (ansible
-- PATTERN --list-hosts), or the groups and their nodes (ansible-inventory
-- --graph); bash completion reads the latter. The inventory line goes to
-- stderr: stdout is names only.
function SUBCOMMANDS.hosts(_, args)
  local graph = false
  local rest = {}
  for _, a in ipairs(args) do if a == "--graph" then graph = true else rest[#rest + 1] = a end end
  local ok, o = pcall(parse, rest)
  if not ok then return die(EXIT.usage, err_message(o)) end
  if o.help then print("usage: kcmrun hosts [PATTERN] | --graph [options]"); return EXIT.ok end
  local pat = o.playbook or "all"
  o.playbook, o.args, o.json = "kcmrun-hosts", {}, true
  local play = require("kcm").playbook { name = "hosts", hosts = pat }
  play:step("hosts", function() end)
  local inv, code = load_inventory(o, play)
  if not inv then return code end
  local P = require "kcm.pattern"
  if graph then
    local v = P.view(inv)
    for _, g in ipairs(v.group_names) do
      print("@" .. g .. ":")
      for _, n in ipairs(v.groups[g]) do print("  |--" .. n) end
    end
    return EXIT.ok
  end
  local names, why = P.match(inv, pat)
  if not names or #names == 0 then
    return die(EXIT.usage, string.format("hosts '%s': %s in %s; %s", pat, why, tostring(inv.file), P.known(inv)))
  end
  for _, n in ipairs(names) do print(n) end
  return EXIT.ok
end

for kind in pairs(ADHOC_ARGS) do
  SUBCOMMANDS[kind] = function(host, args) return adhoc_main(kind, host, args) end
end

local main

function main(argv, host)
  host = host or {}
  if SUBCOMMANDS[argv[1]] then return SUBCOMMANDS[argv[1]](host, { table.unpack(argv, 2) }) end
  -- options may come before an ad-hoc subcommand: kcmrun -i inv.lua run all -- uptime
  local at = first_word(argv)
  if at and (ADHOC_ARGS[argv[at]] or argv[at] == "hosts") then
    local rest = {}
    for i, a in ipairs(argv) do if i ~= at then rest[#rest + 1] = a end end
    return SUBCOMMANDS[argv[at]](host, rest)
  end
  local ok, o = pcall(parse, argv)
  if not ok then return die(EXIT.usage, err_message(o)) end
  if o.help then io.stdout:write(USAGE); return EXIT.ok end
  if o.version then print(version_line(host)); return EXIT.ok end
  if o.list_playbooks then return list_playbooks(host) end
  if not o.playbook then io.stderr:write(USAGE); return EXIT.usage end
  local found, perr = require("kcm.discover").playbook(o.playbook, host.datadir)
  if not found then return die(EXIT.usage, perr) end
  o.playbook = found

  local play, code = load_playbook(o)
  if not play then return code end
  if o.list_steps then return list_steps(play) end
  local inv
  inv, code = load_inventory(o, play)
  if not inv then return code end
  return run_play(o, play, inv)
end

return function(argv, host)
  local verbosity = 0
  for _, a in ipairs(argv) do
    if a == "--verbose" then verbosity = verbosity + 1 end
    if a:match("^%-v+$") then verbosity = verbosity + #a - 1 end
  end
  local ok, code = xpcall(main, function(e)
    local msg = err_message(e)
    -- a traceback is for developers: -vv
    if verbosity >= 2 then msg = debug.traceback(msg, 2) end
    return { message = msg, config = type(e) == "table" and (e.config or e.usage) }
  end, argv, host)
  if ok then return code end
  if rt.signal() then return die(interrupted_code(), "interrupted by " .. signame()) end
  return die(code.config and EXIT.usage or EXIT.internal, (code.config and "" or "internal error: ") .. code.message)
end
