-- Every known_hosts file OpenSSH reads, from ssh_config lists: a different
-- key in any (here a global file) is a changed key, also with --accept-new,
-- which then records nothing; a key in the second file of a list is found.
local T = require "sshtest"
local Node = require "kcm.node"
local DIR, TMP = assert(os.getenv("KCM_SSH_DIR")), assert(os.getenv("KCM_T"))
local inv = T.inventory()
local spec = inv.nodes[1]
local name = "[" .. spec.host .. "]:" .. spec.port
local real = T.read(DIR .. "/host_key.pub"):match("^(%S+ %S+)")
T.local_run({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", TMP .. "/other" })
local other = T.read(TMP .. "/other.pub"):match("^(%S+ %S+)")
local other_fp = T.keygen_fp(TMP .. "/other.pub")

local function node(n, cfg, accept)
  return Node.new { name = "hk" .. n, host = spec.host, port = spec.port, user = spec.user,
                    ssh = { identity = inv.ssh.identity, config = cfg, accept_new = accept, connect_timeout = 5 } }
end
local function config(n, text)
  local p = TMP .. "/ssh_config" .. n
  T.write(p, text)
  return p
end

-- 1. user files u1 u2 (key in u2), global g1 g2 (nothing): connects
local u1, u2, g1, g2 = TMP .. "/u1", TMP .. "/u2", TMP .. "/g1", TMP .. "/g2"
T.write(u2, name .. " " .. real .. "\n")
local cfg = config(1, ("Host *\n  UserKnownHostsFile %s %s\n  GlobalKnownHostsFile %s %s\n"):format(u1, u2, g1, g2))
local n = node(1, cfg, false)
assert(n:run({ "echo", "ok" }).stdout == "ok\n", "key in the second UserKnownHostsFile not found")
n:close()

-- 2. user files empty, a different key in the second global file: changed, --accept-new records nothing
os.remove(u2)
T.write(g2, "# global\n" .. name .. " " .. other .. "\n")
for _, accept in ipairs { false, true } do
  n = node(accept and 3 or 2, cfg, accept)
  local err = T.raises(n.run, n, { "true" })
  T.contains(err, "HOST KEY CHANGED for " .. name, "changed key (accept_new=" .. tostring(accept) .. ")")
  T.contains(err, g2 .. ":2", "the global file and line")
  T.contains(err, other_fp, "the recorded fingerprint")
  assert(T.read(u1) == nil and T.read(u2) == nil, "--accept-new recorded a key for a host known elsewhere")
  n:close()
end

-- 3. the right key in a user file and a different one in a global file: still changed
T.write(u1, name .. " " .. real .. "\n")
n = node(4, cfg, false)
T.contains(T.raises(n.run, n, { "true" }), "HOST KEY CHANGED", "mismatch in any file")
n:close()

-- 4. no file knows the host: --accept-new records it in the first user file only
os.remove(u1); os.remove(g2)
n = node(5, cfg, true)
assert(n:run({ "echo", "ok" }).stdout == "ok\n")
n:close()
T.contains(T.read(u1) or "", name .. " " .. real, "recorded in the first user file")
assert(T.read(u2) == nil and T.read(g1) == nil and T.read(g2) == nil, "recorded elsewhere")

-- 5. Host blocks: the lists apply to the node they name only
cfg = config(2, ("Host nomatch\n  GlobalKnownHostsFile %s\nHost *\n  UserKnownHostsFile %s\n  GlobalKnownHostsFile %s\n"):format(
  TMP .. "/bad", u1, g1))
T.write(TMP .. "/bad", name .. " " .. other .. "\n")
n = node(6, cfg, false)
assert(n:run({ "echo", "ok" }).stdout == "ok\n", "a Host block for another name was applied")
n:close()
print("ok: hostkeys")
