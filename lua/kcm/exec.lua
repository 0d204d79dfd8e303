-- Local commands on the control machine: the control target's run
-- (kcm.control), kept under the name playbooks already use.
local control = require "kcm.control"

local M = {}

M.cmdline = control.cmdline

--- exec.run(argv | string, {stdin, env, cwd, timeout, ok_codes={0}, readonly=false, changed})
--- -> {code, stdout, stderr[, changed]}: control:run.
function M.run(argv, opts) return control:run(argv, opts) end

return M
