-- ssh transport benchmark against a lab (KCM_BENCH_INV = the lab inventory).
-- Prints markdown rows; bench/ssh/run.sh assembles RESULTS.md.
local Node = require "kcm.node"
local task = require "kcm.task"
local exec = require "kcm.exec"
local rt = require "kcm.native.runtime"

local inv = assert(dofile(assert(os.getenv("KCM_BENCH_INV"), "KCM_BENCH_INV not set")))
local SSHCFG = inv.ssh.config
local REPS = tonumber(os.getenv("KCM_BENCH_REPS") or "200")

local function median(xs)
  table.sort(xs)
  local n = #xs
  if n % 2 == 1 then return xs[(n + 1) // 2] end
  return (xs[n // 2] + xs[n // 2 + 1]) / 2
end

local seq = 0
local function fresh(i)
  -- a new Node name = a new session (sessions are keyed by name)
  seq = seq + 1
  local n = inv.nodes[i]
  local ssh = {}
  for k, v in pairs(inv.ssh) do ssh[k] = v end
  ssh.config = nil
  return Node.new { name = n.name .. "-b" .. seq, host = n.host, port = n.port, user = n.user, ssh = ssh }
end

local function ms(t) return string.format("%.2f", t * 1000) end

local out = {}
local function row(...) out[#out + 1] = "| " .. table.concat({ ... }, " | ") .. " |" end

-- 1. connection set-up (connect + host key + auth), one node, sequential
local setup = {}
for _ = 1, 20 do
  local n = fresh(1)
  local t0 = rt.now()
  n:session()
  setup[#setup + 1] = rt.now() - t0
  n:close()
end
row("connection set-up, one node (median of 20)", ms(median(setup)) .. " ms")

-- 2. node:run("true") over the open session
local n1 = fresh(1)
n1:run("true")
local lat = {}
for _ = 1, REPS do
  local t0 = rt.now()
  n1:run("true")
  lat[#lat + 1] = rt.now() - t0
end
local run_lat = median(lat)
row(string.format("node:run(\"true\") on an open session (median of %d)", REPS), ms(run_lat) .. " ms")

-- 3. OpenSSH client, one connection per command as the procedure does
local os_lat = {}
for _ = 1, 20 do
  local t0 = rt.now()
  exec.run({ "ssh", "-F", SSHCFG, "-o", "BatchMode=yes", inv.nodes[1].name, "true" })
  os_lat[#os_lat + 1] = rt.now() - t0
end
local ossh = median(os_lat)
row("`ssh node1 true` (OpenSSH, new connection per command, median of 20)", ms(ossh) .. " ms")
row("ratio OpenSSH per command / node:run", string.format("%.0fx", ossh / run_lat))

-- 3b. OpenSSH with a multiplexed master connection (ControlMaster): the
-- fairest "open session" comparison for the OpenSSH client
local ctl = os.tmpname()
os.remove(ctl)
local base = { "ssh", "-F", SSHCFG, "-o", "BatchMode=yes", "-o", "ControlPath=" .. ctl }
local function sshc(extra, ...)
  local argv = {}
  for _, a in ipairs(base) do argv[#argv + 1] = a end
  for _, a in ipairs(extra) do argv[#argv + 1] = a end
  argv[#argv + 1] = inv.nodes[1].name
  for _, a in ipairs({ ... }) do argv[#argv + 1] = a end
  return exec.run(argv)
end
sshc({ "-o", "ControlMaster=yes", "-o", "ControlPersist=120" }, "true")
local mux = {}
for _ = 1, 50 do
  local t0 = rt.now()
  sshc({}, "true")
  mux[#mux + 1] = rt.now() - t0
end
sshc({ "-O", "exit" })
local muxl = median(mux)
row("`ssh node1 true` over an OpenSSH ControlMaster connection (median of 50)", ms(muxl) .. " ms")
row("ratio OpenSSH multiplexed / node:run", string.format("%.1fx", muxl / run_lat))

-- 4. fan-out over N nodes: connect all, then 20 rounds of run("true") on all
local function fanout(N)
  local nodes = {}
  for i = 1, N do nodes[i] = fresh(i) end
  local fns = {}
  for i = 1, N do fns[i] = function() nodes[i]:session() end end
  local t0 = rt.now()
  task.parallel(fns)
  local conn = rt.now() - t0
  local rounds = {}
  for i = 1, N do fns[i] = function() nodes[i]:run("true") end end
  for _ = 1, 20 do
    t0 = rt.now()
    task.parallel(fns)
    rounds[#rounds + 1] = rt.now() - t0
  end
  -- a command that waits instead of burning CPU: shows the fan-out itself
  for i = 1, N do fns[i] = function() nodes[i]:run("sleep 0.2") end end
  t0 = rt.now()
  task.parallel(fns)
  local sleep = rt.now() - t0
  for i = 1, N do nodes[i]:close() end
  return conn, median(rounds), sleep
end

local c1, r1, s1 = fanout(1)
row("connect 1 node (wall)", ms(c1) .. " ms")
row("run(\"true\") on 1 node (wall, median of 20)", ms(r1) .. " ms")
row("run(\"sleep 0.2\") on 1 node (wall)", ms(s1) .. " ms")
for _, N in ipairs({ 3, 10 }) do
  if #inv.nodes >= N then
    local cN, rN, sN = fanout(N)
    row(string.format("connect %d nodes in parallel (wall)", N), string.format("%s ms (%.1fx one node)", ms(cN), cN / c1))
    row(string.format("run(\"true\") on %d nodes in parallel (wall, median of 20)", N),
        string.format("%s ms (%.1fx one node)", ms(rN), rN / r1))
    row(string.format("run(\"sleep 0.2\") on %d nodes in parallel (wall)", N),
        string.format("%s ms (%.2fx one node)", ms(sN), sN / s1))
  end
end
print(table.concat(out, "\n"))
Node.close_all()
