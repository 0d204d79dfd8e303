-- A node's facts, gathered on first use of node.facts and kept for the run.
-- What the kernel and /etc say is read over the file channel (its sftp-server
-- is already running: no process starts on the node); only the systemd
-- version needs a command, one `systemctl --version`. Cost per node: 10 file
-- reads, 1 process.
local M = {}

local FILES = {
  os_release = "/etc/os-release",
  meminfo = "/proc/meminfo",
  machine_id = "/etc/machine-id",
  hostname = "/proc/sys/kernel/hostname",
  kernel = "/proc/sys/kernel/osrelease",
  arch = "/proc/sys/kernel/arch",             -- Linux 6.1 and later
  cpus = "/sys/devices/system/cpu/online",
  init = "/proc/1/comm",
  fib_trie = "/proc/net/fib_trie",
  inet6 = "/proc/net/if_inet6",
}

local function chomp(s) return s and (s:gsub("%s+$", "")) or nil end

local function os_release(text)
  local t = {}
  for k, v in (text or ""):gmatch("([%w_]+)=([^\n]*)") do
    t[k] = v:gsub('^"(.*)"$', "%1"):gsub("^'(.*)'$", "%1")
  end
  return t
end

-- "0-3,6" -> 5
local function count_cpus(list)
  local n = 0
  for part in (list or ""):gmatch("[^,%s]+") do
    local a, b = part:match("^(%d+)%-(%d+)$")
    if a then n = n + tonumber(b) - tonumber(a) + 1 elseif part:match("^%d+$") then n = n + 1 end
  end
  return n > 0 and n or nil
end

-- The node's own IPv4 addresses: the /32 host LOCAL leaves of the main
-- table, loopback left out. The trie lists each address under the prefixes
-- it belongs to, so each is kept once.
local function ipv4(trie)
  local out, seen, last = {}, {}, nil
  for line in (trie or ""):gmatch("[^\n]+") do
    local a = line:match("|%-%-%s+(%d+%.%d+%.%d+%.%d+)")
    if a then last = a
    elseif line:find("/32 host LOCAL", 1, true) and last and not last:match("^127%.") and not seen[last] then
      seen[last] = true
      out[#out + 1] = last
    end
  end
  return out
end

-- Global IPv6 addresses (scope 00) from /proc/net/if_inet6.
local function ipv6(text)
  local out = {}
  for hex, scope in (text or ""):gmatch("(%x+)%s+%x+%s+%x+%s+(%x+)%s+%x+%s+%S+") do
    if #hex == 32 and scope == "00" then
      local g = {}
      for i = 1, 32, 4 do g[#g + 1] = (hex:sub(i, i + 3):gsub("^0+(%x)", "%1")) end
      out[#out + 1] = table.concat(g, ":")
    end
  end
  return out
end

--- gather(node) -> facts table. A file that cannot be read leaves its fact
--- out (nil), it does not fail the node; the one command failing does not
--- either (systemd is then nil).
function M.gather(node)
  -- the other reads and the one command in flight together: two round
  -- trips' wait per node instead of eleven
  local task = require "kcm.task"
  local raw, jobs = {}, { "systemd" }
  -- the first read alone: it opens the file channel (with become, its
  -- sftp-server) that the others then share
  local ok1, first = pcall(node.get, node, FILES.os_release)
  raw.os_release = ok1 and first or nil
  for k in pairs(FILES) do if k ~= "os_release" then jobs[#jobs + 1] = k end end
  local ctx = task.current()
  local systemd_out
  task.map(jobs, #jobs, function(k)
    if k == "systemd" then
      local ok, r = pcall(node.run, node, { "systemctl", "--version" }, { readonly = true, ok_codes = { 0 } })
      systemd_out = ok and r.stdout or nil
    else
      local ok, text = pcall(node.get, node, FILES[k])
      raw[k] = ok and text or nil
    end
  end, function() return ctx end)
  local osr = os_release(raw.os_release)
  local mem_kb = tonumber((raw.meminfo or ""):match("MemTotal:%s*(%d+)"))
  local ips = ipv4(raw.fib_trie)
  for _, a in ipairs(ipv6(raw.inet6)) do ips[#ips + 1] = a end
  local systemd = systemd_out and tonumber(systemd_out:match("^systemd (%d+)"))
  local arch = chomp(raw.arch)
  if not arch and raw.kernel then   -- before Linux 6.1: Debian's kernel flavours name it
    local flavour = raw.kernel:match("%-(%w+)%s*$")
    arch = ({ amd64 = "x86_64", arm64 = "aarch64", ["686"] = "i686", armmp = "armv7l" })[flavour]
  end
  return {
    os_id = osr.ID, os_version = osr.VERSION_ID, os_name = osr.PRETTY_NAME,
    kernel = chomp(raw.kernel), arch = arch,
    cpus = count_cpus(raw.cpus), memory_mb = mem_kb and mem_kb // 1024,
    systemd = systemd, init = chomp(raw.init),
    hostname = chomp(raw.hostname), ips = ips, machine_id = chomp(raw.machine_id),
  }
end

--- The facts' keys, in the order a table shows them.
M.KEYS = { "os_id", "os_version", "kernel", "arch", "cpus", "memory_mb", "systemd", "init", "hostname",
           "ips", "machine_id" }

M._ipv4, M._ipv6, M._cpus = ipv4, ipv6, count_cpus   -- for tests

return M
