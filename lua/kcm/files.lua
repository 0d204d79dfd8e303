-- Files on the control machine, as reporting primitives: each says whether it
-- changed anything and changes nothing in --check.
local fs = require "kcm.native.fs"
local task = require "kcm.task"

local M = {}

local mode_of = require("kcm.mode").parse

--- files.write(path, content, {mode="0644", mkdir=true}) -> changed
function M.write(path, content, opts)
  opts = opts or {}
  local changed = fs.write(path, content, { mode = mode_of(opts.mode, tonumber("644", 8)), mkdir = opts.mkdir })
  if changed then task.changed("write " .. path) end
  return changed
end

function M.mkdir(path, opts)
  local changed = fs.mkdir(path, mode_of(opts and opts.mode, tonumber("755", 8)))
  if changed then task.changed("mkdir " .. path) end
  return changed
end

function M.remove(path)
  local changed = fs.remove(path)
  if changed then task.changed("remove " .. path) end
  return changed
end

function M.read(path)
  local data, err = fs.read(path)
  if not data then error(err, 2) end
  return data
end

M.exists = fs.exists
M.stat = fs.stat
M.sha256 = fs.sha256
return M
