-- The control machine as a target: the operations a node offers (run, put,
-- get, stat, mkdir, remove), with the same results and the same error
-- object, on local commands and files. --check, --diff and change reporting
-- come from kcm.target's one wrapper, as for a node. Local commands run
-- without a shell (an argv), or a string the playbook wrote itself under
-- /bin/sh -c, on a worker thread.
local native = require "kcm.native.exec"
local fs = require "kcm.native.fs"
local task = require "kcm.task"
local target = require "kcm.target"
local E = require "kcm.error"
local mode_of = require("kcm.mode").parse

local Control = { name = "localhost" }
Control.__index = Control

local function quote(a)
  if a:match("^[%w%._/:=@%-]+$") then return a end
  return "'" .. a:gsub("'", "'\\''") .. "'"
end

function Control.cmdline(argv)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = quote(tostring(a)) end
  return table.concat(parts, " ")
end

-- A local file native's result, or its failure as the error object.
local function fs_call(op, path, ...)
  return E.check({ node = Control.name, op = op, path = path }, ...)
end

--- control:run(argv | string, {stdin, env, cwd, timeout, ok_codes={0}, readonly, changed})
--- -> {code, stdout, stderr[, changed]}, as node:run.
function Control:run(cmd, opts)
  require("kcm.op_keys").check("control", "run", opts)
  opts = opts or {}
  local argv = type(cmd) == "string" and { "/bin/sh", "-c", cmd } or cmd
  if type(argv) ~= "table" or #argv == 0 then error("control:run: empty argv", 2) end
  local shown = Control.cmdline(argv)
  return target.run(self, shown, opts, function(begin)
    begin()
    local r = E.check({ node = self.name, op = "run" },
                      native.run { argv = argv, stdin = opts.stdin, env = opts.env, cwd = opts.cwd,
                                   timeout = opts.timeout })
    return r.code, r.stdout, r.stderr, r.timed_out, opts.timeout
  end)
end

--- control:put(local_path | {content=...}, path, {mode="0644", mkdir}) -> changed
--- Replaced atomically (temp file, fsync, rename) when content or mode differ.
function Control:put(src, path, opts)
  require("kcm.op_keys").check("control", "put", opts)
  opts = opts or {}
  local p = target.source(src, "", path, 2)
  local data = p.data or fs_call("put", path, fs.read(p.src))
  local mode = mode_of(opts.mode, tonumber("644", 8))
  local st = self:stat(path)
  if st and st.type == "file" and st.size == #data and st.mode == mode and fs.read(path) == data then
    return false
  end
  return target.change((opts.verb or "put") .. " " .. path, function()
    fs_call("put", path, fs.write(path, data, { mode = mode, mkdir = opts.mkdir }))
  end)
end

--- control:get(path) -> content
function Control:get(path)
  return (fs_call("get", path, fs.read(path)))
end

--- control:stat(path) -> {type, size, mode, uid, gid, mtime} | nil
function Control:stat(path)
  return (fs_call("stat", path, fs.stat(path)))
end

--- control:mkdir(path, {mode="0755"}) -> changed (mkdir -p)
function Control:mkdir(path, opts)
  require("kcm.op_keys").check("control", "mkdir", opts)
  local mode = mode_of(opts and opts.mode, tonumber("755", 8))
  local st = self:stat(path)
  if st then
    if st.type ~= "dir" then
      E.raise { kind = "exists", node = self.name, op = "mkdir", path = path,
                message = string.format("mkdir %s: exists and is a %s", path, st.type) }
    end
    return false
  end
  return target.change("mkdir " .. path, function() return fs_call("mkdir", path, fs.mkdir(path, mode)) end)
end

--- control:remove(path, {recursive=false}) -> changed
function Control:remove(path, opts)
  require("kcm.op_keys").check("control", "remove", opts)
  local st = self:stat(path)
  if not st then return false end
  return target.change("remove " .. path, function()
    if st.type == "dir" and opts and opts.recursive then
      self:run({ "rm", "-rf", "--", path })
    else
      fs_call("remove", path, fs.remove(path))
    end
  end)
end

--- The one control-machine target.
return setmetatable({}, Control)
