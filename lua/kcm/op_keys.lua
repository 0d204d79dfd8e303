-- The options each target operation reads (docs/api.md lists them too). A
-- node and the control machine accept the same become options, so code
-- written for either target runs on both; the control machine runs as the
-- user who started kcmrun and ignores them.
local keys = require "kcm.keys"

local M = {}

local BECOME = { "become", "become_user", "sudo" }
local function with_become(list)
  for _, k in ipairs(BECOME) do list[#list + 1] = k end
  return list
end

M.node = {
  run = with_become { "stdin", "env", "ok_codes", "timeout", "readonly", "changed", "_raw" },
  put = with_become { "mode", "owner", "group", "mkdir", "secret" },
  get = with_become {},
  fetch = with_become { "mode", "size" },
  mkdir = with_become { "mode" },
  remove = with_become { "recursive" },
}

M.control = {
  run = with_become { "stdin", "env", "cwd", "ok_codes", "timeout", "readonly", "changed" },
  put = with_become { "mode", "mkdir", "verb", "secret" },
  mkdir = with_become { "mode" },
  remove = with_become { "recursive" },
}

--- op_keys.check(kind, op, opts): the error names the line that called
--- node:OP (kind "node") or control:OP (kind "control").
function M.check(kind, op, opts)
  keys.check(opts, M[kind][op], kind .. ":" .. op, 3)
end

return M
