-- What the command line leaves out: which inventory (first found wins) and where a
-- playbook named without a path lives. Every answer comes with the reason, and every
-- miss with what was tried, so the user sees why and what to do.
local fs = require "kcm.native.fs"
local loader = require "kcm.native.loader"

local M = {}

M.ENVIRONMENT_SH = "/opt/k8s/bin/environment.sh"   -- the procedure's own, where it keeps it
M.DEFAULT_LAB_DIR = "/var/lib/kcmrun/lab"

local function is_file(p)   -- symlinks followed
  local real = fs.realpath(p)
  local st = real and fs.stat(real)
  return st ~= nil and st.type == "file"
end

--- The lab in `dir` is up when its state file names a lab whose bridge exists: the
--- inventory.lua of a lab torn down by a reboot is not a running lab.
function M.lab_state(dir)
  local state = fs.read(dir .. "/lab.state")
  if not state then return false, "no lab is up in " .. dir end
  local name = state:match("\nLAB_NAME=([%w]+)\n") or state:match("^LAB_NAME=([%w]+)\n")
  if not name then return false, dir .. "/lab.state names no lab" end
  if not fs.exists("/sys/class/net/kcm-" .. name) then
    return false, "lab " .. name .. " in " .. dir .. " is not running (no bridge kcm-" .. name .. ")"
  end
  if not is_file(dir .. "/inventory.lua") then return false, "lab " .. name .. " is still coming up" end
  return true, name
end

-- Labs up on this machine (their bridges kcm-NAME), whichever folder they live in.
local function running_labs()
  local out = {}
  for _, dev in ipairs(fs.list("/sys/class/net") or {}) do
    local name = dev:match("^kcm%-(%w+)$")
    if name and fs.exists("/sys/class/net/" .. dev .. "/bridge") then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

-- The reason a found inventory was picked, naming what else would have
-- matched (a lab and environment.sh, two labs up): a run never acts on a
-- cluster the operator did not expect without saying so.
local function with_others(path, why, others)
  if #others == 0 then return path, why end
  return path, string.format("%s; also found: %s; picked as the first of -i, $KCMRUN_INVENTORY, " ..
                             "./inventory.lua, environment.sh, the lab; -i picks another", why, table.concat(others, "; "))
end

--- inventory(cli_value) -> path, reason | nil, {tried lines}
function M.inventory(cli)
  local tried = {}
  local function miss(what, why) tried[#tried + 1] = string.format("  %-34s %s", what, why) end
  if cli then return cli, "-i" end
  miss("-i FILE", "not given")
  local found = {}   -- {path, why} in the order they win
  local env = os.getenv("KCMRUN_INVENTORY")
  if env and env ~= "" then found[#found + 1] = { env, "$KCMRUN_INVENTORY" } else miss("$KCMRUN_INVENTORY", "not set") end
  if is_file("inventory.lua") then
    found[#found + 1] = { fs.realpath("inventory.lua") or "inventory.lua", "./inventory.lua in the current folder" }
  else
    miss("./inventory.lua", "not found in " .. (fs.getcwd()))
  end
  if is_file(M.ENVIRONMENT_SH) then found[#found + 1] = { M.ENVIRONMENT_SH, "the procedure's environment.sh" }
  else miss(M.ENVIRONMENT_SH, "not found") end
  local lab_dir = os.getenv("KCMRUN_LAB_DIR")
  if not lab_dir or lab_dir == "" then lab_dir = M.DEFAULT_LAB_DIR end
  local up, why = M.lab_state(lab_dir)
  local lab_name
  if up then
    lab_name = why
    found[#found + 1] = { (fs.realpath(lab_dir) or lab_dir) .. "/inventory.lua", "the running lab" }
  else
    miss(lab_dir .. "/inventory.lua", why)
  end
  if #found == 0 then return nil, tried end
  local others = {}
  for i = 2, #found do others[#others + 1] = found[i][1] .. " (" .. found[i][2] .. ")" end
  local labs = {}
  for _, name in ipairs(running_labs()) do if name ~= lab_name then labs[#labs + 1] = name end end
  if #labs > 0 then
    others[#others + 1] = string.format("lab%s %s up in another folder than %s", #labs > 1 and "s" or "",
                                        table.concat(labs, ", "), lab_dir)
  end
  return with_others(found[1][1], found[1][2], others)
end

--- trusted(path, what) -> path | nil, message: code kcmrun runs (as root,
--- often) follows the rule for module overrides: owned by root or you, not
--- group- or world-writable. A missing file is left to the loader's message.
function M.trusted(path, what)
  if not fs.exists(path) then return path end
  local ok, why = loader.trusted(path)
  if ok then return path end
  return nil, string.format("refusing to run %s %s: %s (code kcmrun runs must be owned by root or you and "
                            .. "writable only by its owner)", what, path, why)
end

local function strip(name) return (name:gsub("%.lua$", "")) end

--- The folders playbooks are looked up in by name, in order.
function M.playbook_dirs(datadir)
  local dirs = { "playbooks" }
  if datadir then dirs[#dirs + 1] = datadir .. "/playbooks" end
  return dirs
end

--- playbook(arg, datadir) -> path | nil, message. A path (with a '/', or an existing
--- file) is taken as given; a bare name is NAME.lua in ./playbooks, then in the
--- installed playbooks.
function M.playbook(arg, datadir)
  if arg == "-" then return arg end
  if arg:find("/", 1, true) or fs.exists(arg) then return M.trusted(arg, "playbook") end
  local tried = { "./" .. arg }
  for _, d in ipairs(M.playbook_dirs(datadir)) do
    local p = d .. "/" .. strip(arg) .. ".lua"
    if is_file(p) then return M.trusted(p, "playbook") end
    tried[#tried + 1] = (d:sub(1, 1) == "/" and "" or "./") .. p
  end
  return nil, string.format("no playbook '%s': tried %s (kcmrun --list-playbooks shows them)", arg,
                            table.concat(tried, ", "))
end

--- list(datadir) -> { {dir=, names={...}}, ... } for --list-playbooks
function M.playbooks(datadir)
  local out = {}
  for _, d in ipairs(M.playbook_dirs(datadir)) do
    local names = {}
    for _, f in ipairs(fs.list(d) or {}) do
      if f:match("%.lua$") and is_file(d .. "/" .. f) then names[#names + 1] = strip(f) end
    end
    local abs = fs.realpath(d) or (d:sub(1, 1) == "/" and d or fs.getcwd() .. "/" .. d)
    out[#out + 1] = { dir = abs, names = names }
  end
  return out
end

return M
