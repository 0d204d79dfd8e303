-- systemd units on a node, over node:run: honest changed-reporting (enable
-- only when not enabled, start only when not active), state from
-- `systemctl show`, and a wait that explains a unit that will not come up
-- with its own journal lines.
local task = require "kcm.task"

local M = {}
local Unit = {}
Unit.__index = Unit

local SHOW = { "ActiveState", "SubState", "MainPID", "ExecMainStatus", "ExecMainStartTimestampMonotonic",
               "NRestarts", "UnitFileState", "LoadState", "NeedDaemonReload", "Result",
               "ActiveEnterTimestampMonotonic" }

--- Renders a unit file from a Lua table:
--- { description=, documentation=, after=, working_directory=, exec=path, flags={...},
---   restart="on-failure", restart_sec=5, limit_nofile=, wanted_by="multi-user.target",
---   environment={...}, type= }
--- flags: array of "--a=b" strings or {name, value} pairs, one per ExecStart line.
function M.render(u)
  local lines = { "[Unit]" }
  local function add(k, v) if v ~= nil then lines[#lines + 1] = k .. "=" .. tostring(v) end end
  add("Description", u.description)
  add("Documentation", u.documentation)
  add("After", u.after)
  add("Requires", u.requires)
  lines[#lines + 1] = ""
  lines[#lines + 1] = "[Service]"
  add("Type", u.type)
  add("WorkingDirectory", u.working_directory)
  for _, e in ipairs(u.environment or {}) do add("Environment", e) end
  local exec = { u.exec }
  for _, f in ipairs(u.flags or {}) do
    if type(f) == "table" then f = f[2] == nil and f[1] or (f[1] .. "=" .. tostring(f[2])) end
    exec[#exec + 1] = "  " .. f
  end
  add("ExecStart", table.concat(exec, " \\\n"))
  add("Restart", u.restart or "on-failure")
  add("RestartSec", u.restart_sec or 5)
  add("LimitNOFILE", u.limit_nofile)
  lines[#lines + 1] = ""
  lines[#lines + 1] = "[Install]"
  add("WantedBy", u.wanted_by or "multi-user.target")
  return table.concat(lines, "\n") .. "\n"
end

--- systemd.unit(node, "name") -> handle
function M.unit(node, name)
  if not name:match("^[%w@%._:%-]+$") then error("systemd: bad unit name " .. name, 2) end
  local full = name:match("%.%w+$") and name or (name .. ".service")
  return setmetatable({ node = node, name = full }, Unit)
end

function Unit:path() return "/etc/systemd/system/" .. self.name end

local function systemctl(self, args, opts)
  -- under --check the caller's own line ("stop etcd.service") is the report;
  -- node:run would add "run 'systemctl' 'stop' ..." for the same change
  if task.check() and not (opts and opts.readonly) then return { code = 0, stdout = "", stderr = "", skipped = true } end
  local argv = { "systemctl" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return self.node:run(argv, opts or {})
end

--- Writes the unit file; returns changed. A mask (a symlink to /dev/null,
--- or any symlink) is removed first, so the file replaces the link instead
--- of being written through it.
function Unit:install(content)
  local st = self.node:stat(self:path())
  if st and st.type == "link" then
    if task.check() then task.changed("unmask and write " .. self:path()); return true end
    self.node:remove(self:path())
  end
  return self.node:put({ content = content }, self:path(), { mode = "0644", mkdir = true })
end

--- The unit's state: one `systemctl show` with every property any caller
--- needs, read once per step (start, gate and verify share it) and again
--- after the step changed something on the node, or when `fresh`.
function Unit:state(fresh)
  return task.fact(self.node, "unit:" .. self.name, function()
    local argv = { "show", self.name, "--no-pager" }
    for _, p in ipairs(SHOW) do argv[#argv + 1] = "-p" .. p end
    local r = systemctl(self, argv, { readonly = true })
    local st = {}
    for k, v in r.stdout:gmatch("([%w]+)=([^\n]*)") do st[k] = v end
    st.MainPID = tonumber(st.MainPID)
    st.NRestarts = tonumber(st.NRestarts)
    st.ExecMainStatus = tonumber(st.ExecMainStatus)
    st.ActiveEnterTimestampMonotonic = tonumber(st.ActiveEnterTimestampMonotonic)
    return st
  end, fresh)
end

function Unit:active(fresh)
  local st = self:state(fresh)
  return st.ActiveState == "active" and st.SubState == "running", st
end

--- Whether the main process of the state `st` still runs: a stat of
--- /proc/PID over the file channel (no process on the node) instead of
--- another `systemctl show`. False when it cannot tell (hidepid): the caller
--- then looks with systemctl.
function Unit:still_running(st)
  local pid = st and st.MainPID
  if not pid or pid <= 1 then return false end
  local ok, s = pcall(self.node.stat, self.node, "/proc/" .. math.tointeger(pid))
  return ok and s ~= nil and s.type == "dir"
end

function Unit:daemon_reload()
  local st = self:state()
  if st.NeedDaemonReload == "yes" or st.LoadState == "not-found" or st.LoadState == "masked" then
    systemctl(self, { "daemon-reload" })
    task.changed("daemon-reload")
    return true
  end
  return false
end

function Unit:enable()
  local st = self:state()
  if st.UnitFileState == "enabled" then return false end
  systemctl(self, { "enable", "--quiet", self.name })
  task.changed("enable " .. self.name)
  return true
end

function Unit:disable()
  local st = self:state()
  if st.UnitFileState ~= "enabled" then return false end
  systemctl(self, { "disable", "--quiet", self.name })
  task.changed("disable " .. self.name)
  return true
end

function Unit:start()
  if (self:active()) then return false end
  systemctl(self, { "start", self.name })
  task.changed("start " .. self.name)
  return true
end

function Unit:stop()
  local st = self:state()
  if st.ActiveState == "inactive" or st.ActiveState == "failed" then return false end
  systemctl(self, { "stop", self.name })
  task.changed("stop " .. self.name)
  return true
end

function Unit:restart()
  systemctl(self, { "restart", self.name })
  task.changed("restart " .. self.name)
  return true
end

--- The unit's last journal lines, redacted (a flag may carry a token or a
--- password, and these lines end up in the log and the recap).
function Unit:journal(n)
  local r = self.node:run({ "journalctl", "-u", self.name, "-n", tostring(n or 30), "--no-pager", "-o", "short" },
                          { readonly = true, ok_codes = { 0, 1 } })
  return require("kcm.redact").text(r.stdout)
end

--- "activating (auto-restart)", "failed (failed)", ... from a state
local function shown_state(st)
  local s = tostring(st.ActiveState)
  if st.SubState and st.SubState ~= "" then s = s .. " (" .. st.SubState .. ")" end
  return s
end

--- The one report of a unit that does not come up, for every component:
--- its state, how often systemd restarted it, its main exit status and its
--- last journal lines (redacted).
function Unit:crash_report(st, why)
  st = st or self:state(true)
  return string.format("%s: %s %s: %s, restarted %s time(s) by systemd, main exit status %s; last journal lines:\n%s",
                       self.node.name, self.name, why or "is crash-looping", shown_state(st),
                       tostring(st.NRestarts or 0), tostring(st.ExecMainStatus), (self:journal(20):gsub("%s+$", "")))
end

--- A watcher of a unit that should come up: watch:looping(st) is true once
--- systemd has restarted the main process since the watch began and it is
--- down again (activating (auto-restart)), or the unit failed for good. A
--- unit in a crash loop never comes up by waiting: the caller stops waiting
--- and raises Unit:crash_report.
function Unit:crash_watch()
  local first
  return { looping = function(_, st)
    if st.ActiveState == "failed" then return true end
    if st.SubState ~= "auto-restart" then return false end
    if not first then first = st.NRestarts or 0; return false end
    return (st.NRestarts or 0) > first
  end }
end

--- Waits until the unit is active (running) and stays so for `settle`
--- seconds; otherwise raises with its state and last journal lines.
function Unit:wait_active(timeout, settle)
  if task.check() then return true end
  timeout = timeout or 30
  settle = settle or 1
  local st
  local first = true
  local watch = self:crash_watch()
  local up = task.retry { timeout = timeout, interval = 0.25, what = self.name .. " to be active" } (function()
    local ok
    -- the first look may be this step's earlier one; every poll after it reads anew
    ok, st = self:active(not first)
    first = false
    if ok then
      if settle <= 0 then return true end
      task.sleep(settle)
      local ok2, st2 = self:active(true)
      if ok2 and st2.MainPID == st.MainPID then return true end
      st = st2
    elseif watch:looping(st) then
      -- failed for good, or systemd restarted it while we waited and it
      -- went down again: waiting longer will not bring it up
      return task.STOP
    end
  end)
  if up then return true end
  error(self:crash_report(st, "did not come up"), 0)
end

--- The message of a check whose port refused connections on a node that
--- answers SSH: the node is not unreachable, its service is not listening,
--- and the unit's state says why (a crash loop shows as activating with
--- restarts). One `systemctl show`.
function Unit:closed_port(host, port)
  local st = self:state(true)
  local state = tostring(st.ActiveState)
  if st.SubState and st.SubState ~= "" and st.SubState ~= st.ActiveState then
    state = state .. " (" .. st.SubState .. ")"
  end
  local restarts = ""
  if (st.NRestarts or 0) > 0 then
    restarts = string.format(", restarted %d time%s by systemd since its last start", st.NRestarts,
                             st.NRestarts == 1 and "" or "s")
  end
  return string.format("%s: nothing listens on %s:%s (%s is %s%s; journalctl -u %s)", self.node.name,
                       tostring(host), tostring(port), self.name, state, restarts, self.name:gsub("%.service$", ""))
end

--- `systemd-analyze verify` where present -> ok, output
function Unit:verify()
  local r = self.node:run({ "sh", "-c", 'command -v systemd-analyze >/dev/null || exit 127; systemd-analyze verify "$1" 2>&1',
                            "verify", self:path() }, { readonly = true, ok_codes = { 0, 1, 127 } })
  if r.code == 127 then return true, "systemd-analyze not present" end
  return r.code == 0, r.stdout
end

return M
