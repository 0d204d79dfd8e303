-- Hostile ssh_config shapes, each refused with one line or made harmless:
-- `Match exec` and the ProxyCommand of its block never run (libssh reads no
-- config file itself), and a config that is not a regular file or has a
-- line over 64 KiB is refused before anything grows.
-- Env: SSHCFG_DIR (a scratch folder).
local sshconfig = require "kcm.native.sshconfig"
local Node = require "kcm.node"

local DIR = assert(os.getenv("SSHCFG_DIR"), "SSHCFG_DIR not set")
local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end
local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end
local function expect(got, want, what)
  if not tostring(got):find(want, 1, true) then
    error(string.format("%s: got %q, want it to contain %q", what, tostring(got), want), 0)
  end
end

-- (a) a connection attempt through a config whose Match exec would touch a
-- file and whose block's ProxyCommand would touch another: neither runs,
-- and the node is simply unreachable on 127.0.0.1:1
local ran_exec, ran_proxy = DIR .. "/exec-ran", DIR .. "/proxy-ran"
os.remove(ran_exec); os.remove(ran_proxy)
local cfg = DIR .. "/exec.conf"
write(cfg, table.concat({
  'Match exec "touch ' .. ran_exec .. '"',
  "  ProxyCommand touch " .. ran_proxy,
  "Match !exec \"touch " .. ran_exec .. "\"",
  "  ProxyCommand touch " .. ran_proxy,
  "Host *",
  "  HostName 127.0.0.1",
  "  Port 1",
  "" }, "\n"))
local n = Node.new { name = "execnode", ssh = { config = cfg, connect_timeout = 3 } }
local ok, err = pcall(n.run, n, "true")
assert(not ok, "a connection to 127.0.0.1:1 succeeded")
expect(err, "unreachable", "Match exec config")
assert(not exists(ran_exec), "a Match exec command ran")
assert(not exists(ran_proxy), "the ProxyCommand of a Match exec block ran")

-- not a regular file: /dev/zero, a FIFO, a folder
local fifo = DIR .. "/fifo"
os.remove(fifo)
assert(os.execute("mkfifo " .. fifo))
for _, path in ipairs { "/dev/zero", fifo, DIR } do
  local r, msg = sshconfig.resolve("x", path)
  assert(r == nil, path .. " was read as an ssh_config")
  expect(msg, "ssh config " .. path .. ": not a regular file", path)
  assert(not msg:find("\n"), "one line")
end
os.remove(fifo)
-- /dev/null stays the usual empty config (ssh -F /dev/null)
assert(sshconfig.resolve("x", "/dev/null"), "/dev/null refused as an empty ssh_config")

-- a line over 64 KiB (a regular file)
local long = DIR .. "/long.conf"
write(long, "Host x\n  HostName " .. ("a"):rep(70000) .. "\n")
local r, msg = sshconfig.resolve("x", long)
assert(r == nil, "a 70 KB line was accepted")
expect(msg, long .. ":2: line longer than 64 KiB", "long line")
-- 64 KiB exactly is still read
write(long, "Host x\n  HostName " .. ("b"):rep(65536 - 12) .. "\n")
assert(sshconfig.resolve("x", long), "a line of exactly 64 KiB was refused")

-- an Include of /dev/zero is refused the same way
local inc = DIR .. "/inc-zero.conf"
write(inc, "Include /dev/zero\n")
r, msg = sshconfig.resolve("x", inc)
assert(r == nil, "Include /dev/zero was read")
expect(msg, "/dev/zero: not a regular file", "Include /dev/zero")

-- a ProxyJump that is not a list of hops would be pasted into a shell
local pj = DIR .. "/jump.conf"
write(pj, "Host x\n  ProxyJump j1;touch$IFS/tmp/x\n")
r, msg = sshconfig.resolve("x", pj)
assert(r == nil, "a ProxyJump with shell syntax was accepted")
expect(msg, pj .. ":2: ProxyJump j1;touch$IFS/tmp/x: not a list of [user@]host[:port] hops", "ProxyJump")
print("ok: Match exec and its ProxyCommand never run; /dev/zero, a FIFO, a folder, a 70 KB line, "
      .. "Include /dev/zero and a shell-syntax ProxyJump are refused with one line")
