-- Files on the control machine: the control target's operations
-- (kcm.control), kept under the names playbooks already use. Each says
-- whether it changed anything and changes nothing in --check.
local control = require "kcm.control"
local fs = require "kcm.native.fs"

local M = {}

--- files.write(path, content, {mode="0644", mkdir=true}) -> changed
function M.write(path, content, opts)
  opts = opts or {}
  return control:put({ content = content }, path, { mode = opts.mode, mkdir = opts.mkdir, verb = "write" })
end

--- files.mkdir(path, {mode="0755"}) -> changed
function M.mkdir(path, opts) return control:mkdir(path, opts) end

--- files.remove(path) -> changed
function M.remove(path) return control:remove(path) end

--- files.read(path) -> content (raises when it cannot be read)
function M.read(path) return control:get(path) end

M.exists = fs.exists
M.stat = fs.stat
M.sha256 = fs.sha256
return M
