-- ssh_config read exactly as OpenSSH reads it: for every case, what
-- kcm.native.sshconfig resolves (host, user, port, identities, host key
-- alias, proxy) equals what `ssh -G -F CONFIG [-l USER] NAME` prints.
-- Env: SSHCFG_DIR (a scratch folder). Cases marked "audit" are the five
-- differences of issue 25 (exec ran, patterns past the 63rd, Match user,
-- case and [sets], HostKeyAlias).
local sshconfig = require "kcm.native.sshconfig"

local DIR = assert(os.getenv("SSHCFG_DIR"), "SSHCFG_DIR not set")
local HOME = os.getenv("HOME") or ""

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local LOCAL_USER = sh("id -un"):gsub("%s+$", "")

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local many = {}
for i = 1, 70 do many[#many + 1] = "p" .. i end

write(DIR .. "/inc.conf", "Host inc*\n  HostName 10.9.9.9\n  Port 2299\n")

-- { name of the case, config text, { queries: "name" or {name, user} } }
local CASES = {
  { "audit (d): Host patterns are case-sensitive, no [sets]",
    "Host NODE1\n  HostName one.example\nHost [n]ode2\n  HostName two.example\nHost node3\n  Port 2203\n",
    { "node1", "NODE1", "node2", "[n]ode2", "NoDe3", "node3" } },
  { "audit (b): patterns after the 63rd on a Host line",
    "Host " .. table.concat(many, " ") .. " late\n  HostName late.example\n  Port 2270\n",
    { "late", "p64", "p70", "p1", "p71" } },
  { "audit (c): Match user sees the login user",
    "Match user deploy\n  Port 2201\n  IdentityFile /keys/%r\nMatch user ad*,!admin\n  Port 2202\nHost *\n  User fromconfig\n",
    { { "n1", "deploy" }, { "n1", "adx" }, { "n1", "admin" }, { "n1", "Deploy" }, "n1" } },
  { "audit (e): HostKeyAlias",
    "Host a1\n  HostKeyAlias Shared-Alias\n  HostName 10.0.0.1\nHost *\n  HostKeyAlias other\n",
    { "a1", "b1" } },
  { "audit (a): Match exec never matches (exec false: OpenSSH agrees)",
    "Match exec false\n  Port 2209\n  ProxyCommand touch /nonexistent/never\nHost *\n  Port 2210\n",
    { "x" } },
  { "first value wins, trailing wildcard",
    "Host m1\n  HostName 10.9.0.1\nHost m*\n  HostName wild.%h\n  Port 2222\n  User deploy\nHost *\n  Port 2023\n",
    { "m1", "mzz", "other" } },
  { "negation vetoes a block",
    "Host m3 !m3x\n  HostName 10.9.0.3\nHost !only\n  Port 2400\nHost * !skip*\n  User u1\n",
    { "m3", "m3x", "only", "skipme" } },
  { "'=' syntax, quotes, tabs, comments, keyword case",
    "# comment\nHost=eq\n\tHostName=10.1.1.1\n  pOrT 2500\n  User \"q user\"\n  IDENTITYFILE \"/k/with space\"\n",
    { "eq" } },
  { "Include",
    "Include " .. DIR .. "/inc.conf\nHost *\n  Port 2023\n",
    { "inc1", "other" } },
  { "%-tokens in HostName and IdentityFile",
    "Host t*\n  HostName %h.lab\n  IdentityFile ~/.ssh/id_%h_%r_%p\n  IdentityFile /k/%n/%u/%%\n  Port 2600\n",
    { "t1", "T2", { "t3", "ops" } } },
  { "HostName is lowercased",
    "Host up\n  HostName BIG.Example\nMatch host big*\n  User bigu\n",
    { "up" } },
  { "Match originalhost folds case",
    "Match originalhost AB*\n  Port 2701\nMatch originalhost xy*\n  Port 2702\n",
    { "abc", "ABC", "XYZ", "q" } },
  { "Match host sees the substituted HostName",
    "Host alias\n  HostName real.example\nMatch host real.*\n  Port 2801\nMatch host alias\n  Port 2802\n",
    { "alias", "real.example" } },
  { "Match all, !user, localuser",
    "Match !user nobody\n  Port 2901\nMatch localuser " .. LOCAL_USER .. "\n  User viaLocal\nMatch all\n  HostKeyAlias all\n",
    { "z1", { "z2", "nobody" } } },
  { "ProxyCommand verbatim, first of Command/Jump wins",
    "Host pc\n  ProxyCommand nc -q0 %h %p   \n  ProxyJump j0\nHost pj\n  ProxyJump u@j1:2222,j2\n  ProxyCommand foo\n",
    { "pc", "pj" } },
  { "ProxyCommand none stops a later ProxyJump",
    "Host pn\n  ProxyCommand none\nHost *\n  ProxyJump j3\n",
    { "pn", "other" } },
  { "comma lists on a Host line are literal",
    "Host a,b\n  Port 3001\nHost c\n  Port 3002\n",
    { "a", "b", "c" } },
  { "? matches one character",
    "Host n?\n  Port 3101\nHost n??\n  Port 3102\n",
    { "n1", "n12", "n123" } },
  { "IdentityFile accumulates, UserKnownHostsFile first wins",
    "Host k\n  IdentityFile /a\n  UserKnownHostsFile /kh/%h\nHost *\n  IdentityFile /b\n  UserKnownHostsFile /other\n",
    { "k", "l" } },
  { "User from the command line beats the config",
    "Host *\n  User cfguser\n  Port 3201\n",
    { { "u1", "cliuser" }, "u1" } },
  { "Match on a later line sees User from an earlier block",
    "Host w\n  User early\nMatch user early\n  Port 3301\n",
    { "w", { "w", "late" } } },
  { "Host * first, specific later (first still wins)",
    "Host *\n  Port 3401\nHost s1\n  Port 3402\n  HostName s1.example\n",
    { "s1" } },
}

local DEFAULT_IDS = { "~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519",
                      "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa" }

-- ssh -G prints IdentityFile unexpanded: expand as ssh does when it uses it
local function expand(v, g, name)
  local map = { h = g.hostname, r = g.user, p = g.port, n = name, u = LOCAL_USER, d = HOME, ["%"] = "%" }
  v = v:gsub("^~/", HOME .. "/")
  return (v:gsub("%%(.)", function(c) return map[c] or ("%" .. c) end))
end

local function ssh_g(cfg, name, user)
  local out = sh("ssh -G -F " .. q(cfg) .. (user and (" -l " .. q(user)) or "") .. " -- " .. q(name) .. " 2>&1")
  local g = { identityfile = {} }
  for line in out:gmatch("[^\n]+") do
    local k, v = line:match("^(%S+) (.*)$")
    if k == "identityfile" then g.identityfile[#g.identityfile + 1] = v
    elseif k then g[k] = v end
  end
  assert(g.hostname, "ssh -G failed for " .. name .. ": " .. out)
  return g
end

local checked, failures = 0, {}
for ci, case in ipairs(CASES) do
  local cfg = string.format("%s/config-%02d", DIR, ci)
  write(cfg, case[2])
  for _, query in ipairs(case[3]) do
    local name, user = query, nil
    if type(query) == "table" then name, user = query[1], query[2] end
    local g = ssh_g(cfg, name, user)
    local k = assert(sshconfig.resolve(name, cfg, user))
    local ours = {
      hostname = k.hostname or name:lower(),
      user = k.user or LOCAL_USER,
      port = tostring(k.port or 22),
      hostkeyalias = k.hostkeyalias,
      proxycommand = k.proxycommand,
      proxyjump = k.proxyjump,
      identityfile = table.concat(k.identities, " | "),
    }
    local ids = {}
    local defaults = table.concat(g.identityfile, " ") == table.concat(DEFAULT_IDS, " ")
    if not defaults then
      for _, v in ipairs(g.identityfile) do ids[#ids + 1] = expand(v, g, name) end
    end
    local theirs = {
      hostname = g.hostname, user = g.user, port = g.port, hostkeyalias = g.hostkeyalias,
      proxycommand = g.proxycommand, proxyjump = g.proxyjump, identityfile = table.concat(ids, " | "),
    }
    for _, f in ipairs { "hostname", "user", "port", "identityfile", "hostkeyalias", "proxycommand", "proxyjump" } do
      if ours[f] ~= theirs[f] then
        failures[#failures + 1] = string.format("case %d (%s), %s%s: %s is %q, ssh -G says %q", ci, case[1],
          user and (user .. "@") or "", name, f, tostring(ours[f]), tostring(theirs[f]))
      end
    end
    checked = checked + 1
  end
end
if #failures > 0 then
  io.stderr:write(table.concat(failures, "\n"), "\n")
  os.exit(1)
end
print(string.format("ok: %d configs, %d names resolve as ssh -G does (host, user, port, identities, "
                    .. "host key alias, proxy)", #CASES, checked))
