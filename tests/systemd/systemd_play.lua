-- kcm.systemd against a real systemd (a lab node): honest changed-reporting,
-- state(), wait_active with the journal of a unit that does not come up.
local kcm = require "kcm"
local systemd = require "kcm.systemd"
local task = require "kcm.task"

local play = kcm.playbook { name = "systemd-test", hosts = "masters" }

local function changes()
  return #(task.current().changes or {})
end

local function clean(node)
  node:run({ "sh", "-c", "systemctl stop kcmsdtest kcmsdtest-bad 2>/dev/null; rm -f /etc/systemd/system/kcmsdtest*.service " ..
                         "/etc/systemd/system/multi-user.target.wants/kcmsdtest.service; systemctl daemon-reload; " ..
                         "systemctl reset-failed 2>/dev/null; true" })
end

play:step("unit", { node = "node1" }, function(node)
  clean(node)
  local svc = systemd.unit(node, "kcmsdtest")
  -- a flags table: one flag per ExecStart line, `\` continuations
  local unit = systemd.render { description = "kcmrun systemd test", exec = "/bin/sleep",
                                flags = { "1000", { "--x", nil } } }
  assert(unit:find("ExecStart=/bin/sleep \\\n  1000 \\\n  --x\n", 1, true), unit)
  unit = systemd.render { description = "kcmrun systemd test", exec = "/bin/sleep", flags = { "1000" } }
  assert(svc:install(unit) == true, "first install must change")
  assert(svc:install(unit) == false, "second install must not change")
  -- a new unit file is loaded on first use: systemd needs no reload for it
  svc:daemon_reload()
  assert(svc:enable() == true, "enable changes")
  assert(svc:enable() == false, "enable again: ok")
  assert(svc:start() == true, "start changes")
  svc:wait_active(20)
  assert(svc:start() == false, "start of an active unit: ok")
  local st = svc:state()
  assert(st.ActiveState == "active" and st.SubState == "running", st.ActiveState .. "/" .. st.SubState)
  assert(st.MainPID and st.MainPID > 0, "MainPID")
  assert(st.UnitFileState == "enabled", st.UnitFileState)
  -- the unit file changes under a loaded unit: now a reload is due, once
  assert(svc:install(unit:gsub("kcmrun systemd test", "kcmrun systemd test, edited")) == true)
  assert(svc:state().NeedDaemonReload == "yes", "systemd should want a reload")
  assert(svc:daemon_reload() == true, "daemon-reload after the unit changed")
  assert(svc:daemon_reload() == false, "no second daemon-reload")
  local pid = st.MainPID
  assert(svc:restart() == true)
  svc:wait_active(20)
  assert(svc:state().MainPID ~= pid, "restart gives a new main process")
  local ok, out = svc:verify()
  assert(ok, out)
  assert(svc:stop() == true, "stop changes")
  assert(svc:stop() == false, "stop again: ok")
  assert(svc:disable() == true and svc:disable() == false, "disable once")
  print("systemd unit lifecycle ok, " .. changes() .. " changes recorded")

  -- a unit whose ExecStart fails: wait_active names it and shows its journal
  local bad = systemd.unit(node, "kcmsdtest-bad")
  bad:install(systemd.render { description = "fails", exec = "/bin/sh",
                               flags = { "-c", "'echo kcm-boom-marker >&2; exit 3'" } })
  bad:daemon_reload()
  bad:start()
  local okw, err = pcall(bad.wait_active, bad, 20)
  assert(not okw, "wait_active must fail")
  err = tostring(err)
  assert(err:find("kcmsdtest-bad.service", 1, true), err)
  assert(err:find("kcm-boom-marker", 1, true), "journal lines missing: " .. err)
  assert(err:find("main exit status 3", 1, true), err)
  print("failing unit reported with its journal")
  clean(node)
end)

return play
