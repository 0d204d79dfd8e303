-- The one builder of the remote command line (Node:_become_argv, then
-- Node._build), without a lab: its exact output for no become, NOPASSWD,
-- a become password and another become_user. The password is never a
-- word of the line; the prompt and ready markers are random per run.
local Node = require "kcm.node"

local function eq(a, b, what)
  if a ~= b then error(string.format("%s:\n got  %s\n want %s", what, tostring(a), tostring(b)), 2) end
end

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local pwfile = dir .. "/pw"
local f = assert(io.open(pwfile, "w")); f:write("Pa-ss!' $(x)\n"); f:close()

-- no become: the argv as it is, every word quoted
local plain = Node.new { name = "n1", host = "10.0.0.1" }
eq(plain:_become_argv(), nil, "no become: no prefix")
eq((Node._build({ "systemctl", "show", "a b" }, {}, plain:_become_argv())), "'systemctl' 'show' 'a b'", "no become: line")
eq((Node._build("echo $HOME", {}, nil)), "sh -c 'echo $HOME'", "no become: a string command is shell code")

-- NOPASSWD sudo (become, no password configured)
local nopw = Node.new { name = "n2", host = "10.0.0.2", become = true }
local b = nopw:_become_argv()
eq(table.concat(b, " "), "sudo -n -u root --", "NOPASSWD: prefix")
eq(b.user, "root", "NOPASSWD: target user")
eq(b.secret, nil, "NOPASSWD: no secret")
eq((Node._build({ "id", "-u" }, {}, b)), "'sudo' '-n' '-u' 'root' '--' 'id' '-u'", "NOPASSWD: line")
eq((Node._build("echo $HOME", {}, b)), "'sudo' '-n' '-u' 'root' '--' sh -c 'echo $HOME'", "NOPASSWD: a string command")

-- another become_user
local svc = Node.new { name = "n3", host = "10.0.0.3", become = true, become_user = "etcd" }
eq(table.concat(svc:_become_argv(), " "), "sudo -n -u etcd --", "become_user: prefix")
eq(table.concat(nopw:_become_argv({ become_user = "nobody" }), " "), "sudo -n -u nobody --", "a call's become_user")
eq(nopw:_become_argv({ become = false }), nil, "a call's become=false")

-- a become password: sudo reads it from the channel (-S) after its own
-- random prompt (-p), never cached (-k); the elevated side prints the ready
-- marker before exec'ing the command
local pw = Node.new { name = "n4", host = "10.0.0.4", become = true, become_password_file = pwfile }
b = pw:_become_argv()
eq(b.secret, "Pa-ss!' $(x)", "password: the secret (first line of the file)")
assert(b.prompt:match("^%[kcm%-sudo%-%x+%]$"), "password: prompt marker " .. tostring(b.prompt))
assert(b.ready:match("^%[kcm%-ready%-%x+%]$"), "password: ready marker " .. tostring(b.ready))
eq(table.concat(b, " "), "sudo -k -S -p " .. b.prompt .. " -u root -- sh -c printf '%s\\n' '" .. b.ready ..
   "' >&2; exec \"$@\" sh", "password: prefix")
local line = Node._build({ "cat" }, {}, b)
eq(line, "'sudo' '-k' '-S' '-p' '" .. b.prompt .. "' '-u' 'root' '--' 'sh' '-c' 'printf '\\''%s\\n'\\'' '\\''" ..
   b.ready .. "'\\'' >&2; exec \"$@\"' 'sh' 'cat'", "password: line")
assert(not line:find("Pa-ss", 1, true), "the password is a word of the command line")
for _, w in ipairs(b) do assert(not w:find("Pa-ss", 1, true), "the password is in the prefix") end
-- the markers are the run's: the same for every node and call
eq(Node.new({ name = "n5", host = "10.0.0.5", become = true, become_password_file = pwfile }):_become_argv().prompt,
   b.prompt, "one prompt marker per run")

-- environment values travel on stdin, never on the line
local env_in
line, env_in = Node._build({ "printenv", "K" }, { env = { K = "v'v" } }, b)
assert(not line:find("v'v", 1, true) and env_in == "K=v'v\n\n", "env value on the line: " .. line)
os.remove(pwfile)
os.remove(dir)
print("ok: command lines for no become, NOPASSWD, password, become_user")
