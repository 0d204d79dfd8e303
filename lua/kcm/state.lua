-- Run state that must survive any end of a run, kill -9 included, kept
-- where it is true: on the nodes. A run may come from another laptop, another
-- login user, another state folder, or name the node by an alias or an IP:
-- what a node holds is the same for all of them.
--
--   on each node (through its file channel: root-owned with become)
--     /var/lib/kcmrun/due.json   handlers due on this machine, per playbook.
--                                A handler is marked due, and the file written
--                                (temp, fsync, rename), before the first change
--                                a notifying step makes there; cleared once the
--                                handler succeeded there.
--     /run/lock/kcmrun.lock      flock held by this run's connection (the
--                                watcher, engine/ssh_watch.c): released when
--                                the connection ends, kill -9 included; the
--                                .note beside it names the holder.
--   Temp files on nodes carry the run id (".NAME.kcm-<run>.<rnd>.tmp"): the
--   run holding a node's lock is the only one working there, so every other
--   run's temp there is stale and goes; without the lock (--no-lock) none is
--   touched.
--   The control folder keeps only what is the control machine's: the CA
--   work folder, caches, and nodes/<user@host:port>.json of older versions,
--   moved onto the node at first contact.
local cjson = require "cjson"
local fs = require "kcm.native.fs"
local sd = require "kcm.native.statedir"
local sshconfig = require "kcm.native.sshconfig"
local rt = require "kcm.native.runtime"
local task = require "kcm.task"

local M = {}
local S = {}
S.__index = S

local DIR_MODE, FILE_MODE = tonumber("700", 8), tonumber("600", 8)
local current          -- the state folder of this run (for node.lua's temp files)

local function pid()
  return tonumber(((fs.read("/proc/self/stat")) or ""):match("^(%d+)")) or 0
end

local run_id
--- This process's run id: 16 hex digits, in its temp files' names.
function M.run_id()
  if not run_id then
    run_id = fs.sha256(table.concat({ pid(), rt.now(), os.time(), math.random(0, 0x7fffffff),
                                      tostring({}) }, "|")):sub(1, 16)
  end
  return run_id
end

-- The holder's command as other runs are shown it; -e values may be secrets
-- (a token, a password), so only their names are kept.
function M.command_line(raw)
  local words, prev = {}, nil
  raw = raw or fs.read("/proc/self/cmdline") or ""
  for w in (raw:gsub("%z$", "") .. "\0"):gmatch("([^%z]*)%z") do
    if prev == "-e" or prev == "--extra-var" then w = w:gsub("=.*", "=…")
    elseif w:match("^%-%-extra%-var=") then w = w:gsub("^(%-%-extra%-var=[^=]*)=.*", "%1=…")
    elseif w:match("^%-e.") then w = w:gsub("=.*", "=…") end
    words[#words + 1] = w
    prev = w
  end
  local c = table.concat(words, " ")
  if #c > 300 then c = c:sub(1, 300) .. "..." end
  return c
end

-- The local user's name (a login with no user anywhere uses it, as ssh(1)).
local function local_user()
  local _, name = sd.user()
  return name or os.getenv("USER") or os.getenv("LOGNAME") or "?"
end
M.local_user = local_user

--- The identity state and locks are keyed by: user@host:port where an ssh
--- session for this node goes, decided as the connection decides it (the
--- inventory's values over ssh_config's, read for the node's name like
--- `ssh NAME`; see engine/ssh_conn.c). spec: a node spec as
--- inventory.node_spec makes it. -> id, address | nil, err
function M.identity(spec)
  local ssh_opts = spec.ssh or {}
  local cfg, err = sshconfig.resolve(spec.name or spec.host, ssh_opts.config, spec.user, spec.host)
  if not cfg then return nil, tostring(spec.name) .. ": " .. tostring(err) end
  local host = spec.host or cfg.hostname or spec.name
  local port = tonumber(spec.port) or tonumber(cfg.port) or 22
  local user = spec.user or cfg.user or local_user()
  local h = host:find(":", 1, true) and ("[" .. host .. "]") or host
  return string.format("%s@%s:%d", user, h, math.tointeger(port) or port), host
end

-- A file name for an identity: readable when it can be, unique always.
local function file_key(id)
  local safe = id:gsub("[^%w@%.:_%-%[%]]", "_")
  if safe ~= id or safe:sub(1, 1) == "." then safe = safe .. "-" .. fs.sha256(id):sub(1, 8) end
  return safe
end

local NODE_DIR = "/var/lib/kcmrun"
local DUE = NODE_DIR .. "/due.json"

-- This machine and user, for the lock's note.
local function hostname()
  return ((fs.read("/proc/sys/kernel/hostname")) or "?"):gsub("%s+$", "")
end

--- state.open(dir, {check=, no_lock=, lock_wait=, warn=function(msg)}) -> state
--- Makes the folder (0700, also in --check) after checking it is ours.
function M.open(dir, opts)
  opts = opts or {}
  local self = setmetatable({ dir = dir, check = opts.check, no_lock = opts.no_lock,
                              lock_wait = math.tointeger(tonumber(opts.lock_wait) or 0) or 0,
                              warn = opts.warn or function(m) io.stderr:write("warning: ", m, "\n") end,
                              nodes = {}, locks = {}, node_of = {} }, S)
  local ok, err = sd.prepare(dir)
  if ok == nil then
    error({ usage = true, message = string.format("state folder %s: %s", dir, err) }, 0)
  end
  self.note = string.format("%s@%s pid %d run %s since %s: %s", local_user(), hostname(), pid(), M.run_id(),
                            os.date("!%Y-%m-%dT%H:%M:%SZ"), M.command_line())
  current = self
  return self
end

-- Nodes whose lock this process holds (node:lock; gone with the connection).
local held = {}
function M.held(name, yes) held[name] = yes or nil end

--- For node.lua: the run ids whose temp files on node `name` are not stale:
--- only this run's when it holds the node's lock, every run's ("*") when not.
function M.live_runs(name)
  if name and held[name] then return { M.run_id() } end
  return { "*" }
end

-- A holder's note: "<watcher pid> <user>@<host> pid <pid> run <id> since ...".
-- A holder on this very machine whose kcmrun is gone left its lock to a
-- connection the node has not seen die yet (the link was down when it was
-- killed): its watcher may be ended.
local function stale_holder(holder)
  local wpid, text = holder:match("^(%d+) (.*)$")
  if not wpid then return nil, holder end
  local host, p = text:match("^[^@ ]+@([^ ]+) pid (%d+) ")
  if host ~= hostname() or not p then return nil, text end
  local comm = fs.read("/proc/" .. p .. "/comm")
  if comm and comm:match("^kcmrun") then return nil, text end
  return wpid, text
end

--- Takes the lock of node `id` (its name) on the node itself, waiting up to
--- --lock-wait seconds. -> true | false, why, kind
function S:lock(id, node)
  self.node_of[id] = node
  if self.no_lock or self.locks[id] then return true end
  local E = require "kcm.error"
  for attempt = 1, 2 do
    -- after ending a gone run's watcher: its flock goes when the kernel has
    -- ended the process, which on a loaded node takes longer than the 0.2 s
    -- the kill waits; that run is known dead, so waiting for it is safe
    local wait = attempt == 1 and self.lock_wait or math.max(self.lock_wait or 0, 10)
    local ok, got, holder = pcall(node.lock, node, wait, self.note)
    if not ok then return false, tostring(got), E.kind(got) end
    if got then
      self.locks[id] = true
      return true
    end
    -- two names of one machine in this run: the machine is one node, and
    -- this run holds it already
    if (holder or ""):find(" run " .. M.run_id() .. " ", 1, true) then
      self.locks[id] = true
      return true
    end
    local wpid, text = stale_holder(holder or "")
    if not wpid or attempt == 2 then
      return false, string.format("locked by another kcmrun run (%s); wait for it (--lock-wait SECONDS), or use " ..
                                  "--no-lock", text ~= "" and text or "holder unknown"), "locked"
    end
    self.warn(string.format("%s: the lock of a kcmrun that is gone (%s) is still held by its old connection: ending it",
                            id, text))
    -- only kcmrun's own watcher (its command line names the lock file)
    pcall(node.run, node, { "sh", "-c", 'grep -qs kcmrun.lock "/proc/$1/cmdline" && kill -s KILL "$1"; sleep 0.2',
                            "unlock", wpid }, { become = node.become, readonly = true, ok_codes = { 0, 1 }, _raw = true })
  end
end

--- Does this run work on node `id` (holds its lock, or --no-lock)?
function S:holds(id)
  return self.no_lock or self.locks[id] ~= nil
end

--- Writes what is left; the node locks go with the connections.
function S:close()
  self:flush()
  if current == self then current = nil end
end

local function decode_due(data)
  local ok, t = pcall(cjson.decode, data)
  if not (ok and type(t) == "table" and type(t.due) == "table") then return nil, ok and "not a state record" or tostring(t) end
  local due = {}
  for pb, set in pairs(t.due) do
    if type(pb) == "string" and type(set) == "table" then
      due[pb] = {}
      for h, v in pairs(set) do if type(h) == "string" and v == true then due[pb][h] = true end end
    end
  end
  return due
end
M._decode_due = decode_due   -- for the state JSON fuzz driver (tests/fuzz/state_json.lua)

-- A node's record, read from the node on first use (after its lock was
-- taken). A file that cannot be read or decoded is not dropped silently: a
-- warning names it and what it may cost, and a corrupt one is kept aside.
-- A record an older kcmrun kept in this control folder moves onto the node.
function S:_record(id)
  local rec = self.nodes[id]
  if rec then return rec end
  local node = self.node_of[id]
  rec = { id = id, node = node, path = DUE, due = {}, gen = 0, saved = 0 }
  self.nodes[id] = rec
  if not node then return rec end
  local ok, data = pcall(node._read_state, node, DUE)
  if not ok then
    rec.broken = true
    self.warn(string.format("%s: state file %s cannot be read (%s): a restart an earlier run left due there may be " ..
                            "missed; fix it or restart the services there by hand", id, DUE, tostring(data)))
  elseif data then
    local due, why = decode_due(data)
    if due then
      rec.due = due
    else
      local aside = DUE .. ".corrupt-" .. os.date("!%Y%m%dT%H%M%SZ")
      local kept = not self.check and pcall(node._write_state, node, aside, data)
      self.warn(string.format("%s: state file %s is corrupt (%s): a restart an earlier run left due there may be " ..
                              "missed; %s. Restart the services there by hand if a run was interrupted",
                              id, DUE, why:sub(1, 120), kept and ("kept as " .. aside) or "left in place"))
      if kept then rec.dirty, rec.gen = true, 1 end
    end
  end
  self:_migrate(rec)
  for _, l in ipairs((self.legacy or {})[id] or {}) do self:mark_due(id, l[1], l[2], true) end
  return rec
end

-- nodes/<user@host:port>.json of an older kcmrun in this control folder:
-- its due handlers join the node's record, and the file goes once written.
function S:_migrate(rec)
  local node = rec.node
  if self.check or not node or not node.spec then return end
  local oid = M.identity(node.spec)
  if not oid then return end
  local old = self.dir .. "/nodes/" .. file_key(oid) .. ".json"
  local data, err = sd.read(old)
  if not data then
    if err then self.warn(string.format("%s: %s (not moved onto the node)", rec.id, err)) end
    return
  end
  for pb, set in pairs(decode_due(data) or {}) do
    rec.due[pb] = rec.due[pb] or {}
    for h in pairs(set) do rec.due[pb][h] = true end
  end
  rec.gen, rec.dirty = rec.gen + 1, true
  self:_sync(rec)
  pcall(fs.remove, old)
end

-- Makes the record durable up to its current content: one write per record
-- at a time (a later write may not be overtaken by an older snapshot);
-- whoever needs newer content than the write in flight waits for it.
function S:_sync(rec)
  local want = rec.gen
  while (rec.saved or 0) < want do
    if rec.writing then
      task.sleep(0.002)
    else
      rec.writing = true
      local g = rec.gen
      local due = {}
      for pb, set in pairs(rec.due) do if next(set) then due[pb] = set end end
      local ok, err = pcall(rec.node._write_state, rec.node, DUE, cjson.encode({ due = due }))
      rec.writing = false
      if not ok then error(err, 0) end
      rec.saved = g
    end
  end
  rec.dirty = nil
end

--- Handlers an older kcmrun's per-inventory state file left due on node
--- `id`: they join the node's record when the node is attached.
function S:legacy_due(id, playbook, handlers)
  self.legacy = self.legacy or {}
  self.legacy[id] = self.legacy[id] or {}
  table.insert(self.legacy[id], { playbook, handlers })
  if self.nodes[id] then self:mark_due(id, playbook, handlers, true) end
end

-- A node's record; the node is attached first (connected: its lock taken,
-- its record read) when this run has not reached it yet.
function S:_attached(id)
  local rec = self.nodes[id]
  if rec then return rec end
  local node = self.node_of[id]
  if node then node:session() end
  return self.nodes[id] or self:_record(id)
end

--- The runner's node objects, by name (attached when first connected).
function S:know(id, node) self.node_of[id] = node end

--- Is `handler` of `playbook` due on node `id`?
function S:is_due(id, playbook, handler)
  local set = self:_attached(id).due[playbook]
  return set ~= nil and set[handler] == true
end

--- Marks handlers due on a target, durably, before the change that needs
--- them (or, with `later`, at the next flush). Returns the handlers that
--- were not due yet. In --check only this run sees them (a handler step
--- then reports what it would do).
function S:mark_due(id, playbook, handlers, later)
  local rec = self:_attached(id)
  local set = rec.due[playbook] or {}
  local added = {}
  for _, h in ipairs(handlers) do
    if not set[h] then set[h] = true; added[#added + 1] = h end
  end
  if #added > 0 then
    rec.due[playbook] = set
    rec.gen = rec.gen + 1
    rec.dirty = true
  end
  -- also when nothing was added: a mark another task of this node is still
  -- writing must be on disk before our change
  if not self.check and not later then self:_sync(rec) end
  return added
end

--- Clears handlers on a target (they ran there, or nothing needed them);
--- written at the next flush (a clear lost to a kill costs one restart more).
function S:clear(id, playbook, handlers)
  local rec = self:_attached(id)
  local set = rec.due[playbook]
  if not set then return end
  for _, h in ipairs(handlers) do
    if set[h] then set[h] = nil; rec.gen = rec.gen + 1; rec.dirty = true end
  end
end

--- node name -> sorted handlers of `playbook` still due there (nodes this
--- run reached), for the recap.
function S:due_of(playbook)
  local out = {}
  for id, rec in pairs(self.nodes) do
    local hs = {}
    for h in pairs(rec.due[playbook] or {}) do hs[#hs + 1] = h end
    if #hs > 0 then table.sort(hs); out[id] = hs end
  end
  return out
end

--- Writes every record changed since the last flush, all at once.
function S:flush()
  if self.check then return end
  local recs = {}
  for _, rec in pairs(self.nodes) do if rec.dirty then recs[#recs + 1] = rec end end
  if #recs == 0 then return end
  local failed
  for _, t in ipairs(task.map(recs, 64, function(rec) self:_sync(rec) end)) do
    if not t.ok and not failed then failed = t.message end
  end
  if failed then self.warn("state: " .. failed) end
end

M.file_key = file_key
return M
