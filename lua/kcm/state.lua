-- Run state that must survive any end of a run, kill -9 included. One state
-- folder, keyed by the target itself (user@host:port after ssh_config), so
-- every inventory form that reaches the same machines (inventory.lua,
-- environment.sh, an ssh_config alias) shares due handlers and locks:
--
--   nodes/<target>.json  handlers due on that target, per playbook. A handler
--                        is marked due, and the file fsync'ed, before the
--                        first change a notifying step makes there; it is
--                        cleared once the handler succeeded there.
--   nodes/<target>.lock  flock of the run working on that target; the file
--                        names the holder (pid, run id, command).
--   runs/<run>.lock      flock each live run holds. Temp files on nodes carry
--                        the run id (".NAME.kcm-<run>.<rnd>.tmp"): one whose
--                        run holds no lock here is stale and may go.
local cjson = require "cjson"
local fs = require "kcm.native.fs"
local sd = require "kcm.native.statedir"
local ssh = require "kcm.native.ssh"
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
local local_user_name
local function local_user()
  if local_user_name then return local_user_name end
  local me = fs.stat("/proc/self")
  local uid = me and me.uid
  for line in ((fs.read("/etc/passwd")) or ""):gmatch("[^\n]+") do
    local name, id = line:match("^([^:]*):[^:]*:(%d+):")
    if uid and tonumber(id) == uid then local_user_name = name break end
  end
  local_user_name = local_user_name or os.getenv("USER") or os.getenv("LOGNAME") or "?"
  return local_user_name
end

--- The identity state and locks are keyed by: user@host:port where an ssh
--- session for this node goes, decided as the connection decides it (the
--- inventory's values over ssh_config's, read for the node's name like
--- `ssh NAME`; see engine/ssh_conn.c). spec: a node spec as
--- inventory.node_spec makes it. -> id, address | nil, err
function M.identity(spec)
  local ssh_opts = spec.ssh or {}
  local cfg, err = ssh.resolve_config(spec.name or spec.host, ssh_opts.config)
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

--- state.open(dir, {check=, no_lock=, warn=function(msg)}) -> state
--- Makes the folder (0700, also in --check) and registers this run as live.
function M.open(dir, opts)
  opts = opts or {}
  local self = setmetatable({ dir = dir, check = opts.check, no_lock = opts.no_lock,
                              warn = opts.warn or function(m) io.stderr:write("warning: ", m, "\n") end,
                              nodes = {}, locks = {}, live_at = -1 }, S)
  for _, d in ipairs { dir, dir .. "/nodes", dir .. "/runs" } do
    local ok, err = fs.mkdir(d, DIR_MODE)
    if ok == nil then
      error({ usage = true, message = string.format("state folder %s: %s (give another with --state-dir DIR)",
                                                    dir, err) }, 0)
    end
  end
  self.note = string.format("pid %d\nrun %s\nstarted %s\ncommand %s\n", pid(), M.run_id(),
                            os.date("!%Y-%m-%dT%H:%M:%SZ"), M.command_line())
  local lock, err = sd.acquire(dir .. "/runs/" .. M.run_id() .. ".lock", self.note)
  if not lock then
    error({ usage = true, message = string.format("state folder %s: %s", dir, tostring(err)) }, 0)
  end
  self.run_lock = lock
  self:_prune_runs()
  current = self
  return self
end

-- Entries of runs that ended more than an hour ago (never of a run that may
-- be starting: it creates and locks its file at once, and is young).
function S:_prune_runs()
  if self.check then return end
  local runs = self.dir .. "/runs"
  for _, name in ipairs(sd.list(runs) or {}) do
    local id = name:match("^(%x+)%.lock$")
    if id and id ~= M.run_id() then
      local p = runs .. "/" .. name
      local st = fs.stat(p)
      if st and os.time() - st.mtime > 3600 and sd.held(p) == false then pcall(fs.remove, p) end
    end
  end
end

--- Ids of the runs still going, this one included (cached for half a second).
function S:live_runs()
  local now = rt.now()
  if self.live and now - self.live_at < 0.5 then return self.live end
  local live, seen = { M.run_id() }, { [M.run_id()] = true }
  local runs = self.dir .. "/runs"
  for _, name in ipairs(sd.list(runs) or {}) do
    local id = name:match("^(%x+)%.lock$")
    -- a lock file we cannot probe counts as live: never delete on a doubt
    if id and not seen[id] and sd.held(runs .. "/" .. name) ~= false then
      live[#live + 1] = id
      seen[id] = true
    end
  end
  self.live, self.live_at = live, now
  return live
end

--- For node.lua: the run ids whose temp files are not stale.
function M.live_runs()
  if current then return current:live_runs() end
  return { M.run_id() }
end

local function holder_text(note)
  local p = note:match("pid (%d+)")
  local cmd = note:match("command ([^\n]*)")
  local started = note:match("started ([^\n]*)")
  if not p then return "another kcmrun run" end
  return string.format("another kcmrun (pid %s%s%s)", p, started and (", since " .. started) or "",
                       cmd and cmd ~= "" and (": " .. cmd) or "")
end

--- Takes the lock of a target for the rest of the run. -> true | false, why
function S:lock(id)
  if self.no_lock or self.locks[id] then return true end
  local l, note, kind = sd.acquire(self.dir .. "/nodes/" .. file_key(id) .. ".lock", self.note)
  if l then
    self.locks[id] = l
    return true
  end
  if kind == "held" then
    return false, string.format("%s is locked by %s; wait for it, or use --no-lock", id, holder_text(note))
  end
  return false, tostring(note)
end

--- Does this run work on target `id` (holds its lock, or --no-lock)?
function S:holds(id)
  return self.no_lock or self.locks[id] ~= nil
end

--- Releases every lock this run holds (also done by the process's exit).
function S:close()
  self:flush()
  for id, l in pairs(self.locks) do l:release(); self.locks[id] = nil end
  if self.run_lock then self.run_lock:release(); self.run_lock = nil end
  if current == self then current = nil end
end

-- A target's record, read on first use (after its lock was taken). A file
-- that cannot be read or decoded is not dropped silently: a warning names it
-- and what it may cost, and a corrupt one is kept aside.
function S:_record(id)
  local rec = self.nodes[id]
  if rec then return rec end
  local path = self.dir .. "/nodes/" .. file_key(id) .. ".json"
  rec = { id = id, path = path, due = {}, gen = 0, saved = 0 }
  self.nodes[id] = rec
  local data, err = fs.read(path)
  if not data then
    if fs.exists(path) then
      self.warn(string.format("state file %s cannot be read (%s): a restart an earlier run left due on %s " ..
                              "may be missed; fix its permissions or restart the services there by hand",
                              path, tostring(err), id))
    end
    return rec
  end
  local ok, t = pcall(cjson.decode, data)
  if ok and type(t) == "table" and type(t.due) == "table" then
    for pb, set in pairs(t.due) do
      if type(pb) == "string" and type(set) == "table" then
        rec.due[pb] = {}
        for h, v in pairs(set) do if type(h) == "string" and v == true then rec.due[pb][h] = true end end
      end
    end
    return rec
  end
  local aside = path .. ".corrupt-" .. os.date("!%Y%m%dT%H%M%SZ")
  local kept = not self.check and fs.write(aside, data, { mode = FILE_MODE }) and fs.remove(path)
  self.warn(string.format("state file %s is corrupt (%s): a restart an earlier run left due on %s may be " ..
                          "missed; %s. Restart the services there by hand if a run was interrupted",
                          path, ok and "not a state record" or tostring(t):sub(1, 120), id,
                          kept and ("kept as " .. aside) or "left in place"))
  return rec
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
      -- temp file, fsync, rename, fsync of the folder; on a worker thread
      local ok, done, err = pcall(sd.write, rec.path, cjson.encode({ identity = rec.id, due = due }), FILE_MODE)
      rec.writing = false
      if not ok then error(tostring(done), 0) end
      if not done then error(err, 0) end
      rec.saved = g
    end
  end
  rec.dirty = nil
end

--- Is `handler` of `playbook` due on target `id`?
function S:is_due(id, playbook, handler)
  local set = self:_record(id).due[playbook]
  return set ~= nil and set[handler] == true
end

--- Marks handlers due on a target, durably, before the change that needs
--- them (or, with `later`, at the next flush). Returns the handlers that
--- were not due yet. In --check only this run sees them (a handler step
--- then reports what it would do).
function S:mark_due(id, playbook, handlers, later)
  local rec = self:_record(id)
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
  local rec = self:_record(id)
  local set = rec.due[playbook]
  if not set then return end
  for _, h in ipairs(handlers) do
    if set[h] then set[h] = nil; rec.gen = rec.gen + 1; rec.dirty = true end
  end
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
