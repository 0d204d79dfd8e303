-- ssh transport and node primitives against a throwaway local sshd
-- (tests/ssh/sshd.sh). Env: KCM_SSH_INV (inventory), KCM_SSH_DIR (its files),
-- KCM_SSH_CASE (one case, or all).
local T = require "sshtest"
local task = require "kcm.task"
local fs = require "kcm.native.fs"

local DIR = assert(os.getenv("KCM_SSH_DIR"), "KCM_SSH_DIR not set")
local inv = T.inventory()
local CASE = os.getenv("KCM_SSH_CASE") or "all"
local R = DIR .. "/remote-" .. CASE     -- remote scratch folder (same machine)

local cases = {}

function cases.run()
  local n = T.node(inv)
  local r = n:run("echo out; echo err >&2; exit 3", { ok_codes = { 3 } })
  assert(r.code == 3 and r.stdout == "out\n" and r.stderr == "err\n", "run result")
  local err = T.raises(n.run, n, "echo some-diagnostic >&2; exit 7")
  T.contains(err, n.name .. ": ", "error")
  T.contains(err, "exit 7", "error (command)")
  T.contains(err, "exit code 7", "error (code)")
  T.contains(err, "some-diagnostic", "error (stderr tail)")
  -- stdin, large both ways
  local big = string.rep("0123456789abcdef", 65536) -- 1 MiB
  r = n:run({ "sha256sum" }, { stdin = big })
  assert(r.stdout:match("^(%x+)") == fs.sha256(big), "stdin reached the command intact")
  r = n:run({ "head", "-c", "3000000", "/dev/zero" })
  assert(#r.stdout == 3000000, "3 MB of stdout")
  -- env, string and argv form
  r = n:run("printf %s \"$A_B\"", { env = { A_B = "x 'y' $(z)" } })
  assert(r.stdout == "x 'y' $(z)", "env in string form: " .. r.stdout)
  r = n:run({ "sh", "-c", 'printf %s "$V"' }, { env = { V = "a\nb;c" } })
  assert(r.stdout == "a\nb;c", "env in argv form")
  -- per-command timeout; the session stays usable
  err = T.raises(n.run, n, "sleep 20", { timeout = 0.5 })
  T.contains(err, "timed out", "timeout error")
  assert(n:run("echo still").stdout == "still\n", "session usable after a timeout")
end

function cases.argv()
  local n = T.node(inv)
  local marker = R .. "/pwned"
  n:mkdir(R)
  local hostile = {
    "it's", '"double"', "$(touch " .. marker .. ")", "`touch " .. marker .. "`",
    "a; touch " .. marker, "line1\nline2\n", "&& touch " .. marker, "| cat", "$HOME",
    "*", "\\", "-n", "", " lead and trail ", "tab\there", "'", "''", "'\\''", "#comment",
    "> " .. marker, "${IFS}", "!", "~", "\r\n",
  }
  local argv = { "printf", "%s\\0" }
  for _, v in ipairs(hostile) do argv[#argv + 1] = v end
  local r = n:run(argv)
  local got = {}
  for item in r.stdout:gmatch("(.-)%z") do got[#got + 1] = item end
  assert(#got == #hostile, "argument count " .. #got .. " vs " .. #hostile)
  for i, v in ipairs(hostile) do
    assert(got[i] == v, string.format("argument %d arrived as %q, sent %q", i, got[i], v))
  end
  assert(not n:stat(marker), "a hostile argument was executed")
  -- also through env + sh -c layering
  r = n:run({ "printf", "%s", "$(id)" }, { env = { X = "1" } })
  assert(r.stdout == "$(id)", "argv with env")
  -- sudo layering (a stand-in that insists on `-n -u root --` and runs the
  -- rest, put first on PATH for this command)
  local Node = require "kcm.node"
  local bin = R .. "/bin"
  n:mkdir(bin)
  n:put({ content = '#!/bin/sh\n[ "$1" = -n ] && [ "$2" = -u ] && [ "$3" = root ] && [ "$4" = -- ] || exit 99\nshift 4\nexec "$@"\n' },
        bin .. "/sudo", { mode = "0755" })
  local line = Node._build({ "printf", "%s\\0", table.unpack(hostile) }, { sudo = true, env = { K = "v'v" } })
  r = n:run({ "sh", "-c", 'PATH="$1:$PATH"; eval "$2"', "sh", bin, line })
  got = {}
  for item in r.stdout:gmatch("(.-)%z") do got[#got + 1] = item end
  assert(#got == #hostile, "sudo layering: argument count")
  for i, v in ipairs(hostile) do assert(got[i] == v, "sudo layering: argument " .. i) end
  local env_in
  line, env_in = Node._build('printf %s "$K"', { sudo = true, env = { K = "v'v $(x)" } })
  assert(not line:find("v'v", 1, true), "env value on the command line: " .. line)
  r = n:run({ "sh", "-c", 'PATH="$1:$PATH"; eval "$2"', "sh", bin, line }, { stdin = env_in })
  assert(r.stdout == "v'v $(x)", "sudo + env in string form: " .. r.stdout)
  assert(not n:stat(marker), "a hostile argument was executed")
end

function cases.files()
  local n = T.node(inv)
  n:remove(R, { recursive = true })
  local p = R .. "/etc/a.conf"
  assert(n:stat(p) == nil, "stat of a missing file is nil")
  assert(n:put({ content = "one\n" }, p, { mode = "0600" }) == true, "first put changes")
  assert(n:put({ content = "one\n" }, p, { mode = "0600" }) == false, "same put is unchanged")
  local st = assert(n:stat(p))
  assert(st.type == "file" and st.size == 4 and st.mode == tonumber("600", 8), "stat after put")
  -- the real tool agrees
  assert(n:run({ "stat", "-c", "%a %s %F", p }).stdout == "600 4 regular file\n", "stat(1) after put")
  assert(n:get(p) == "one\n", "get")
  -- mode only differs -> changed, content kept
  assert(n:put({ content = "one\n" }, p, { mode = "0640" }) == true, "mode change is a change")
  assert(n:run({ "stat", "-c", "%a", p }).stdout == "640\n", "mode fixed")
  -- owner/group
  assert(n:put({ content = "one\n" }, p, { mode = "0640", owner = "nobody", group = "nogroup" }) == true)
  assert(n:run({ "stat", "-c", "%U:%G %a", p }).stdout == "nobody:nogroup 640\n", "owner applied")
  assert(n:put({ content = "one\n" }, p, { mode = "0640", owner = "nobody", group = "nogroup" }) == false)
  -- new content with owner and 0600 from the start
  assert(n:put({ content = "two\n" }, p, { mode = "0600", owner = "nobody", group = "nogroup" }) == true)
  assert(n:run({ "stat", "-c", "%U:%G %a", p }).stdout == "nobody:nogroup 600\n", "owner+mode on new content")
  assert(n:get(p) == "two\n")
  -- from a local file, empty content, binary content
  local lf = DIR .. "/local-" .. CASE
  local bin = {}
  for i = 0, 255 do bin[#bin + 1] = string.char(i) end
  T.write(lf, table.concat(bin):rep(300))
  assert(n:put(lf, R .. "/bin.dat") == true)
  assert(n:get(R .. "/bin.dat") == T.read(lf), "binary round trip")
  assert(n:run({ "sha256sum", R .. "/bin.dat" }).stdout:match("^%x+") == fs.sha256(T.read(lf)))
  assert(n:put({ content = "" }, R .. "/empty") == true and n:get(R .. "/empty") == "")
  assert(n:put({ content = "" }, R .. "/empty") == false)
  -- no temp files left behind
  local ls = n:run({ "ls", "-A", R .. "/etc" }).stdout
  assert(ls == "a.conf\n", "leftovers in the target folder: " .. ls)
  -- mkdir / remove
  assert(n:mkdir(R .. "/d1/d2/d3", { mode = "0750" }) == true)
  assert(n:mkdir(R .. "/d1/d2/d3", { mode = "0750" }) == false)
  assert(n:run({ "stat", "-c", "%a %F", R .. "/d1/d2/d3" }).stdout == "750 directory\n")
  assert(n:stat(R .. "/d1").type == "dir")
  assert(n:remove(R .. "/d1/d2/d3") == true and n:remove(R .. "/d1/d2/d3") == false)
  assert(n:remove(R .. "/d1", { recursive = true }) == true and n:stat(R .. "/d1") == nil)
  -- failures: context, no content, temp removed
  local secret = "SECRET-CONTENT-" .. fs.sha256(tostring(os.time()))
  local err = T.raises(n.put, n, { content = secret }, R .. "/nodir/x", { mkdir = false })
  T.contains(err, n.name .. ": put " .. R .. "/nodir/x: ", "put error")
  assert(not tostring(err):find(secret, 1, true), "error carries file content")
  err = T.raises(n.put, n, { content = secret }, R .. "/etc", {})
  T.contains(err, "put " .. R .. "/etc: exists and is a dir", "put over a directory")
  err = T.raises(n.get, n, R .. "/missing")
  T.contains(err, n.name .. ": read " .. R .. "/missing: no such file", "get error")
  err = T.raises(n.mkdir, n, p .. "/sub")
  T.contains(err, "mkdir " .. p .. "/sub", "mkdir under a file")
  -- a chown to an unknown owner fails and leaves the old file and no temp
  err = T.raises(n.put, n, { content = "three\n" }, p, { owner = "no-such-user-kcm" })
  T.contains(err, "no user named 'no-such-user-kcm'")
  assert(n:get(p) == "two\n")
  assert(n:run({ "ls", "-A", R .. "/etc" }).stdout == "a.conf\n", "temp left after failure")
end

-- put's temp file is created with the final mode (not chmod-ed later): the
-- fixture's sftp server logs every open with its flags and mode.
function cases.tempmode()
  local n = T.node(inv)
  n:remove(R, { recursive = true })
  n:mkdir(R)
  for _, m in ipairs({ "0600", "0640" }) do
    local target = R .. "/key-" .. m .. ".pem"
    assert(n:put({ content = "k" }, target, { mode = m }) == true)
    local log = assert(T.read(DIR .. "/sftp.log"))
    local pat = 'open "' .. (R .. "/.key-" .. m .. ".pem.kcm-"):gsub("%p", "%%%0") ..
                '[%x.]+%.tmp" flags (%S+) mode (%d+)'
    local flags, mode = log:match(pat)
    assert(mode, "no open of the temp file in the sftp log")
    assert(mode == m, "temp file created with mode " .. mode .. ", want " .. m)
    assert(flags:find("EXCL", 1, true) and flags:find("CREATE", 1, true), "open flags " .. flags)
    assert(n:run({ "stat", "-c", "%a", target }).stdout == m:sub(2) .. "\n")
  end
end

function cases.hostkeys()
  local pub = DIR .. "/host_key.pub"
  local want = T.keygen_fp(pub)
  local kh = DIR .. "/kh-" .. CASE
  os.remove(kh)
  -- unknown + strict
  local n = T.node(inv, 1, { known_hosts = kh })
  local err = T.raises(n.run, n, "true")
  T.contains(err, want, "unknown-key error (fingerprint)")
  T.contains(err, "--accept-new", "unknown-key error (how to accept)")
  assert(T.read(kh) == nil, "strict mode wrote known_hosts")
  -- accept_new records it, in a form OpenSSH reads
  n = T.node(inv, 1, { known_hosts = kh, accept_new = true })
  assert(n:run("echo ok").stdout == "ok\n")
  local node = inv.nodes[1]
  local hostname = (node.port or 22) == 22 and node.host or ("[" .. node.host .. "]:" .. node.port)
  local r = T.local_run({ "ssh-keygen", "-F", hostname, "-f", kh })
  T.contains(r.stdout, (T.read(pub):match("^(%S+ %S+)")), "recorded key")
  n:close()
  -- now known: strict works
  n = T.node(inv, 1, { known_hosts = kh })
  assert(n:run("echo ok").stdout == "ok\n")
  n:close()
  -- hashed entries (ssh-keygen -H) are understood
  T.local_run({ "ssh-keygen", "-H", "-f", kh })
  assert(T.read(kh):match("^|1|"), "ssh-keygen -H hashed the file")
  n = T.node(inv, 1, { known_hosts = kh .. "" }, { name = "hashed" })
  assert(n:run("echo ok").stdout == "ok\n", "hashed known_hosts entry matched")
  n:close()
  -- a replaced host key: both fingerprints, also with accept_new
  local other = DIR .. "/other-" .. CASE
  os.remove(other); os.remove(other .. ".pub")
  T.local_run({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other })
  local oldfp = T.keygen_fp(other .. ".pub")
  T.write(kh, "# comment\n" .. hostname .. " " .. T.read(other .. ".pub"):match("^(%S+ %S+)") .. "\n")
  T.local_run({ "ssh-keygen", "-H", "-f", kh })
  for _, accept in ipairs({ false, true }) do
    n = T.node(inv, 1, { known_hosts = kh, accept_new = accept }, { name = "changed" .. tostring(accept) })
    err = T.raises(n.run, n, "true")
    T.contains(err, "HOST KEY CHANGED", "changed-key error")
    T.contains(err, oldfp, "changed-key error (old fingerprint)")
    T.contains(err, want, "changed-key error (new fingerprint)")
  end
  assert(not T.read(kh):find(T.read(pub):match("^%S+ (%S+)"), 1, true), "changed key was recorded")
end

function cases.auth()
  local n = T.node(inv, 1, { identity = DIR .. "/wrong_key" })
  local node = inv.nodes[1]
  local err = T.raises(n.run, n, "true")
  T.contains(err, "authentication failed for root@" .. node.host .. ":" .. node.port, "auth error (user@host)")
  T.contains(err, "publickey " .. DIR .. "/wrong_key (rejected)", "auth error (key tried)")
  T.contains(err, "ssh-agent", "auth error (agent tried)")
  local E = require "kcm.error"
  assert(E.is(err, "auth"), "auth failure is kind 'auth', not 'unreachable': " .. E.kind(err))
  assert(err.node == n.name and err.op == "connect", "the error says where: " .. tostring(err.node) .. " " .. tostring(err.op))
  n = T.node(inv, 1, { identity = DIR .. "/no-such-key" }, { name = "nokey" })
  err = T.raises(n.run, n, "true")
  T.contains(err, "no-such-key (cannot load: no such file)")
end

function cases.unreachable()
  -- a port where nothing listens
  local n = T.node(inv, 1, { connect_timeout = 3 }, { name = "down1", port = 1 })
  local err = T.raises(n.run, n, "true")
  assert(require("kcm.error").is(err, "unreachable"), "unreachable error object")
  T.contains(tostring(err), "down1 (" .. inv.nodes[1].host .. ":1): unreachable: ", "unreachable message")
  T.contains(tostring(err), "refused")
  -- every primitive raises the same way
  for _, f in ipairs({ function() return n:put({ content = "x" }, "/tmp/x") end,
                       function() return n:stat("/") end, function() return n:get("/etc/hostname") end }) do
    local e = T.raises(f)
    assert(require("kcm.error").is(e, "unreachable"), "primitive raised " .. tostring(e))
  end
end

-- The connection dies mid-run (its sshd process is killed): the next call
-- raises "unreachable: connection lost", and a later one reconnects.
function cases.lost()
  local n = T.node(inv)
  -- the command runs under the connection's watcher (engine/ssh_agent.c),
  -- whose subshell is gone once it returns: find the sshd above it from
  -- inside the command
  local ppid = n:run([[p=$PPID; while [ "$p" -gt 1 ]; do
      case $(cat /proc/$p/comm) in sshd*) echo "$p"; exit 0 ;; esac
      p=$(cut -d' ' -f4 /proc/$p/stat); done]]).stdout:match("%d+")
  assert(ppid, "no sshd above the remote shell")
  local comm = T.read("/proc/" .. ppid .. "/cmdline") or ""
  assert(comm:find("sshd", 1, true), "not sshd: " .. comm)
  T.local_run({ "kill", ppid })
  local err = T.raises(n.run, n, "true")
  assert(require("kcm.error").is(err, "unreachable"), "not unreachable: " .. tostring(err))
  T.contains(tostring(err), n.name .. " (", "lost message")
  T.contains(tostring(err), "unreachable: connection lost", "lost message")
  assert(n:run("echo back").stdout == "back\n", "reconnects on the next call")
end

-- Session-sharing and concurrency on one node: many coroutines, one session.
function cases.shared()
  local n = T.node(inv)
  local fns = {}
  for i = 1, 20 do
    fns[i] = function() return n:run({ "sh", "-c", 'echo "$SSH_CONNECTION $0"', tostring(i) }).stdout end
  end
  local res = task.parallel(fns)
  local conn
  for i, line in ipairs(res) do
    local c, idx = line:match("^(.-) (%d+)\n$")
    assert(tonumber(idx) == i, "result order")
    conn = conn or c
    assert(c == conn, "one TCP connection for every command: " .. c .. " vs " .. conn)
  end
end

-- ssh_config is honoured (HostName, Port, User, IdentityFile,
-- UserKnownHostsFile); values the inventory gives win over it.
function cases.config()
  local node = inv.nodes[1]
  local cfg = DIR .. "/ssh_config-" .. CASE
  T.write(cfg, table.concat({
    "Host cfgnode",
    "  LogLevel DEBUG3",
    "  HostName " .. node.host,
    "  Port " .. node.port,
    "  User root",
    "  IdentityFile " .. DIR .. "/client_key",
    "  UserKnownHostsFile " .. DIR .. "/known_hosts",
    "Host wrongnode",
    "  HostName " .. node.host,
    "  Port 1",
    "  User nobody",
    "  IdentityFile " .. DIR .. "/wrong_key",
    "  UserKnownHostsFile " .. DIR .. "/no-such-known-hosts",
    "" }, "\n"))
  local Node = require "kcm.node"
  -- everything from ssh_config
  local n = Node.new { name = "cfgnode", ssh = { config = cfg } }
  assert(n:run("whoami").stdout == "root\n", "ssh_config alone is enough")
  -- the inventory overrides each value ssh_config gives
  n = Node.new { name = "wrongnode", host = node.host, port = node.port, user = "root",
                 ssh = { config = cfg, identity = DIR .. "/client_key", known_hosts = DIR .. "/known_hosts" } }
  assert(n:run("whoami").stdout == "root\n", "inventory values win over ssh_config")
  -- and ssh_config values are really used (not defaults)
  n = Node.new { name = "wrongnode", ssh = { config = cfg, connect_timeout = 3 } }
  local err = T.raises(n.run, n, "true")
  T.contains(tostring(err), "wrongnode (" .. node.host .. ":1): unreachable", "Port from ssh_config")
  n = Node.new { name = "wrongnode", port = node.port, ssh = { config = cfg } }
  err = T.raises(n.run, n, "true")
  T.contains(tostring(err), "no-such-known-hosts", "UserKnownHostsFile from ssh_config")
  n = Node.new { name = "wrongnode", port = node.port, ssh = { config = cfg, known_hosts = DIR .. "/known_hosts" } }
  err = T.raises(n.run, n, "true")
  T.contains(tostring(err), "authentication failed for nobody@", "User from ssh_config")
  T.contains(tostring(err), "wrong_key", "IdentityFile from ssh_config")
  -- ProxyCommand (what libssh 0.10 turns ProxyJump into): hop through the
  -- same sshd with OpenSSH's -W; the proxy script leaves a mark when used
  local mark, proxy = DIR .. "/proxy-used-" .. CASE, DIR .. "/proxy-" .. CASE .. ".sh"
  os.remove(mark)
  T.write(proxy, "#!/bin/sh\necho \"$1:$2\" > " .. mark .. "\nexec ssh -i " .. DIR .. "/client_key " ..
          "-o BatchMode=yes -o UserKnownHostsFile=" .. DIR .. "/known_hosts -p \"$2\" -W \"$1:$2\" root@\"$1\"\n")
  T.local_run({ "chmod", "755", proxy })
  local pcfg = DIR .. "/ssh_config-proxy-" .. CASE
  T.write(pcfg, table.concat({
    "Host viaproxy",
    "  HostName " .. node.host,
    "  Port " .. node.port,
    "  User root",
    "  IdentityFile " .. DIR .. "/client_key",
    "  UserKnownHostsFile " .. DIR .. "/known_hosts",
    "  ProxyCommand " .. proxy .. " %h %p",
    "" }, "\n"))
  n = Node.new { name = "viaproxy", ssh = { config = pcfg } }
  assert(n:run("echo ok").stdout == "ok\n", "through ProxyCommand")
  assert(T.read(mark) == node.host .. ":" .. node.port .. "\n", "ProxyCommand not used")
  err = T.raises(Node.new { name = "x", ssh = { config = DIR .. "/missing-config" } }.run,
                 Node.new { name = "x", ssh = { config = DIR .. "/missing-config" } }, "true")
  T.contains(tostring(err), "missing-config: no such file")
end

-- HostKeyAlias names the known_hosts entry, bare, as OpenSSH uses it: a
-- different key recorded under the alias is a changed key even with
-- --accept-new (nothing is recorded, no connection); an unknown alias is
-- recorded under the alias. known_hosts that is not a regular file is refused.
function cases.hostkeyalias()
  local node = inv.nodes[1]
  local kh = DIR .. "/kh-alias-" .. CASE
  local cfg = DIR .. "/ssh_config-" .. CASE
  T.write(cfg, table.concat({
    "Host hka",
    "  HostName " .. node.host,
    "  Port " .. node.port,
    "  User root",
    "  IdentityFile " .. DIR .. "/client_key",
    "  HostKeyAlias Shared.Alias",
    "  UserKnownHostsFile " .. kh,
    "" }, "\n"))
  local other = DIR .. "/other-" .. CASE
  os.remove(other); os.remove(other .. ".pub")
  T.local_run({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other })
  local oldfp = T.keygen_fp(other .. ".pub")
  -- the real host:port is known, but the alias records another key
  local real = "[" .. node.host .. "]:" .. node.port
  local hostkey = T.read(DIR .. "/host_key.pub"):match("^(%S+ %S+)")
  local before = real .. " " .. hostkey .. "\nshared.alias " .. T.read(other .. ".pub"):match("^(%S+ %S+)") .. "\n"
  T.write(kh, before)
  local Node = require "kcm.node"
  local n = Node.new { name = "hka", ssh = { config = cfg, accept_new = true } }
  local err = T.raises(n.run, n, "true")
  T.contains(err, "HOST KEY CHANGED for shared.alias", "HostKeyAlias lookup")
  T.contains(err, oldfp, "the alias's recorded key")
  assert(T.read(kh) == before, "known_hosts changed on a HOST KEY CHANGED")
  -- an unknown alias is recorded under the alias (what ssh-keygen -F finds)
  T.write(kh, "")
  n = Node.new { name = "hka", ssh = { config = cfg, accept_new = true } }
  assert(n:run("echo ok").stdout == "ok\n", "accept-new under an alias")
  n:close()
  local r = T.local_run({ "ssh-keygen", "-F", "shared.alias", "-f", kh })
  T.contains(r.stdout, hostkey, "recorded under the alias")
  assert(not T.read(kh):find(node.host, 1, true), "recorded under the address, not the alias")
  n = Node.new { name = "hka", ssh = { config = cfg } }
  assert(n:run("echo ok").stdout == "ok\n", "the alias's entry is used")
  n:close()
  -- known_hosts /dev/zero: one line, no memory growth
  n = T.node(inv, 1, { known_hosts = "/dev/zero" })
  err = T.raises(n.run, n, "true")
  T.contains(err, "known_hosts /dev/zero: not a regular file", "known_hosts /dev/zero")
  -- a line over 64 KiB: refused with its file:line, not read into memory
  local long = DIR .. "/kh-long-" .. CASE
  T.write(long, "# x\nhost ssh-ed25519 " .. ("A"):rep(70000) .. "\n")
  n = T.node(inv, 1, { known_hosts = long })
  err = T.raises(n.run, n, "true")
  T.contains(err, "known_hosts " .. long .. ":2: line longer than 64 KiB", "known_hosts long line")
end

-- ssh-agent (the driver starts one holding client_key, and points HOME at
-- an empty folder so no ~/.ssh key can be what logs in)
function cases.agent()
  local node = inv.nodes[1]
  local Node = require "kcm.node"
  local n = Node.new { name = "viaagent", host = node.host, port = node.port, user = "root",
                       ssh = { known_hosts = inv.ssh.known_hosts } }
  assert(n:run("whoami").stdout == "root\n", "agent auth")
  -- an inventory key that is rejected falls back to the agent
  n = Node.new { name = "viaagent2", host = node.host, port = node.port, user = "root",
                 ssh = { known_hosts = inv.ssh.known_hosts, identity = DIR .. "/wrong_key" } }
  assert(n:run("whoami").stdout == "root\n", "agent after a rejected key")
end

-- One target interface: the control machine (kcm.control) and a node answer
-- the same operations with the same results, and fail with the same error
-- object (kind, node, op, path, message). The test sshd runs on this
-- machine, so both work on local folders side by side.
function cases.target()
  local E = require "kcm.error"
  local control = require "kcm.control"
  local n = T.node(inv)
  for _, t in ipairs { control, n } do
    local who = t == control and "control" or "node"
    local d = R .. "/" .. who
    t:remove(d, { recursive = true })
    local function same(a, b, what) assert(a == b, who .. ": " .. what .. ": " .. tostring(a) .. " vs " .. tostring(b)) end
    -- run: one result shape, exit codes allowed or not, one error object
    local r = t:run({ "sh", "-c", "echo out; echo err >&2; exit 3" }, { ok_codes = { 3 } })
    same(r.code, 3, "code"); same(r.stdout, "out\n", "stdout"); same(r.stderr, "err\n", "stderr")
    local err = T.raises(t.run, t, { "sh", "-c", "echo nope >&2; exit 9" })
    assert(E.is(err, "exit") and err.code == 9 and err.op == "run" and err.node == t.name,
           who .. ": exit failure: " .. E.kind(err) .. " " .. tostring(err))
    T.contains(err, "exit code 9: nope", who .. " exit message")
    r = t:run({ "true" }, { changed = function(res) return res.code == 0 and "made it" end })
    same(r.changed, true, "changed predicate")
    -- files: mkdir, put, stat, get, remove; each says whether it changed
    same(t:mkdir(d, { mode = "0750" }), true, "mkdir"); same(t:mkdir(d, { mode = "0750" }), false, "mkdir again")
    same(t:put({ content = "one\n" }, d .. "/f", { mode = "0600" }), true, "put")
    same(t:put({ content = "one\n" }, d .. "/f", { mode = "0600" }), false, "put again")
    same(t:put({ content = "two\n" }, d .. "/f", { mode = "0600" }), true, "put new content")
    local st = t:stat(d .. "/f")
    same(st.type, "file", "stat type"); same(st.size, 4, "stat size"); same(st.mode, tonumber("600", 8), "stat mode")
    assert(math.type(st.uid) == "integer" and math.type(st.mtime) == "integer", who .. ": stat ids and mtime")
    same(t:stat(d .. "/absent"), nil, "stat of a missing file")
    same(t:get(d .. "/f"), "two\n", "get")
    err = T.raises(t.get, t, d .. "/absent")
    assert(E.is(err, "noent") and err.op == "get" and err.node == t.name,
           who .. ": get of a missing file: " .. E.kind(err) .. " op " .. tostring(err.op) .. ": " .. tostring(err))
    err = T.raises(t.mkdir, t, d .. "/f")
    assert(E.is(err, "exists") and err.op == "mkdir" and err.path == d .. "/f", who .. ": mkdir over a file: " .. tostring(err))
    same(t:remove(d .. "/f"), true, "remove"); same(t:remove(d .. "/f"), false, "remove again")
  end
end

local names = {}
for k in pairs(cases) do names[#names + 1] = k end
table.sort(names)
for _, name in ipairs(names) do
  if (CASE == "all" and name ~= "agent") or CASE == name then
    cases[name]()
    print("ok: " .. name)
  end
end
require("kcm.node").close_all()
