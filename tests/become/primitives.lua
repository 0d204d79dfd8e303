-- Every node primitive as the login user `deploy` with become = true (from the
-- inventory), against root-owned places deploy cannot touch on its own.
-- Any failed assertion fails its node: the run exits 4.
local kcm = require "kcm"
local systemd = require "kcm.systemd"
local play = kcm.playbook { name = "become-primitives", hosts = "masters" }
local D = "/etc/kcm-become-test"

local function eq(a, b, what)
  if a ~= b then error(string.format("%s: got %q, want %q", what, tostring(a), tostring(b)), 2) end
end

local function fails(fn, pat, what)
  local ok, err = pcall(fn)
  if ok then error(what .. ": did not fail", 2) end
  if not tostring(err):find(pat, 1, true) then error(what .. ": error lacks '" .. pat .. "': " .. tostring(err), 2) end
end

play:step("clean", function(node) node:remove(D, { recursive = true }) end)

play:step("run", function(node)
  eq(node:run({ "id", "-u" }).stdout, "0\n", node.name .. ": argv run as root")
  eq(node:run("id -u").stdout, "0\n", node.name .. ": string run as root")
  eq(node:run({ "id", "-un" }, { become = false }).stdout, "deploy\n", "become=false per call")
  eq(node:run({ "id", "-u" }, { sudo = true }).stdout, "0\n", "sudo=true is become=true")
  -- argv kept through sudo: every word arrives as it was sent
  local hostile = { "a b", "$(touch /tmp/kcm-become-pwned)", "'q'", ";id", "`id`", "*", "", "--", "x\ny" }
  local argv = { "printf", "%s\\0" }
  for _, h in ipairs(hostile) do argv[#argv + 1] = h end
  local got = {}
  for item in node:run(argv).stdout:gmatch("(.-)%z") do got[#got + 1] = item end
  eq(#got, #hostile, "argument count through sudo")
  for i, h in ipairs(hostile) do eq(got[i], h, "argument " .. i .. " through sudo") end
  eq(node:stat("/tmp/kcm-become-pwned"), nil, "a hostile argument was executed")
  eq(node:run({ "sh", "-c", 'printf %s "$K"' }, { env = { K = "v'v $(x)" } }).stdout, "v'v $(x)", "env through sudo")
  eq(node:run({ "cat" }, { stdin = "from stdin" }).stdout, "from stdin", "stdin through sudo")
  eq(node:run({ "id", "-un" }, { become_user = "deploypw" }).stdout, "deploypw\n", "become_user per call")
end)

play:step("files", function(node)
  eq(node:stat(D), nil, "stat of a missing path")
  eq(node:mkdir(D .. "/a/b", { mode = "0750" }), true, "mkdir -p")
  for _, p in ipairs { D, D .. "/a", D .. "/a/b" } do
    local st = node:stat(p)
    eq(st.type, "dir", p .. " type")
    eq(st.mode, tonumber("750", 8), p .. " mode (every created level)")
    eq(st.uid, 0, p .. " owner")
  end
  eq(node:mkdir(D .. "/a/b", { mode = "0750" }), false, "mkdir again")
  eq(node:mkdir(D .. "/a/b", { mode = "0700" }), true, "mkdir with another mode")
  eq(node:stat(D .. "/a/b").mode, tonumber("700", 8), "mode fixed")
  node:run({ "sh", "-c", 'umask 077; printf "secret\\n" > "$1"', "sh", D .. "/a/key" })
  eq(node:get(D .. "/a/key"), "secret\n", "get of a root 0600 file")
  local st = node:stat(D .. "/a/key")
  eq(st.type, "file", "file type"); eq(st.size, 7, "size"); eq(st.mode, tonumber("600", 8), "mode")
  eq(st.uid, 0, "uid"); eq(st.gid, 0, "gid")
  -- the same answer, in the same shape, as SFTP gives the login user
  local a, b = node:stat("/etc/hostname"), node:stat("/etc/hostname", { become = false })
  for _, k in ipairs { "type", "size", "mode", "uid", "gid", "mtime" } do eq(a[k], b[k], "stat " .. k .. " sudo vs sftp") end
  for k in pairs(b) do if a[k] == nil then error("stat through sudo lacks " .. k) end end
  eq(node:stat("/etc/ssh", { become = false }).type, node:stat("/etc/ssh").type, "dir type")
  eq(node:get("/etc/hostname"), node:get("/etc/hostname", { become = false }), "get sudo vs sftp")
  fails(function() node:get(D .. "/missing") end, node.name .. ": read " .. D .. "/missing: no such file", "get missing")
  fails(function() node:get(D .. "/a/key", { become = false }) end,
        "permission denied (login user deploy; set become = true)", "get without become")
  eq(node:remove(D .. "/a/key"), true, "remove file")
  eq(node:remove(D .. "/a/key"), false, "remove again")
  eq(node:remove(D .. "/a/b"), true, "remove empty dir")
  node:mkdir(D .. "/a/c/d")
  eq(node:remove(D .. "/a", { recursive = true }), true, "remove -r")
  eq(node:stat(D .. "/a"), nil, "gone")
end)

-- the systemd helper elevates through node:run (a unit deploy could not start)
play:step("systemd", function(node)
  local unit = "[Unit]\nDescription=kcm become test\n[Service]\nExecStart=/bin/sleep 600\n"
  node:run({ "sh", "-c", 'printf %s "$1" > /etc/systemd/system/kcm-become-test.service', "sh", unit })
  local svc = systemd.unit(node, "kcm-become-test")
  svc:daemon_reload()
  eq(svc:start(), true, "start")
  eq((svc:active()), true, "active")
  eq(svc:restart(), true, "restart")
  eq((svc:active()), true, "active after restart")
end)

play:step("systemd-off", { become = false }, function(node)
  eq(node:run({ "id", "-un" }).stdout, "deploy\n", "step become=false")
  eq(node:run({ "id", "-u" }, { become = true }).stdout, "0\n", "call become=true in a become=false step")
  local svc = systemd.unit(node, "kcm-become-test")
  fails(function() svc:stop() end, "(login user deploy; set become = true)", "systemctl stop without become")
end)

play:step("cleanup", function(node)
  local svc = systemd.unit(node, "kcm-become-test")
  svc:stop()
  node:remove("/etc/systemd/system/kcm-become-test.service")
  svc:daemon_reload()
  node:remove(D, { recursive = true })
end)

return play
