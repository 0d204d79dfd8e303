-- Helpers shared by the ssh test scripts (found next to them on the
-- script's own search path).
local Node = require "kcm.node"
local exec = require "kcm.exec"

local M = {}

function M.inventory(path)
  path = path or os.getenv("KCM_SSH_INV") or error("KCM_SSH_INV not set")
  local inv = assert(dofile(path))
  return inv
end

-- A Node for inventory node `i`, with ssh overrides.
function M.node(inv, i, ssh_over, spec_over)
  local n = inv.nodes[i or 1]
  local spec = { name = n.name, host = n.host, port = n.port, user = n.user or (inv.ssh or {}).user,
                 vars = n.vars, ssh = {} }
  for k, v in pairs(inv.ssh or {}) do spec.ssh[k] = v end
  for k, v in pairs(ssh_over or {}) do spec.ssh[k] = v end
  for k, v in pairs(spec_over or {}) do spec[k] = v end
  return Node.new(spec)
end

-- Runs fn, which must raise; returns the error value.
function M.raises(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error, got success")
  return err
end

function M.contains(s, needle, what)
  s = tostring(s)
  if not s:find(needle, 1, true) then
    error((what or "text") .. " lacks '" .. needle .. "':\n" .. s, 2)
  end
end

function M.local_run(argv, opts)
  return exec.run(argv, opts or { readonly = true })
end

-- `ssh-keygen -l` fingerprint of a public key file: the oracle.
function M.keygen_fp(pubfile)
  local r = M.local_run({ "ssh-keygen", "-l", "-f", pubfile })
  return (assert(r.stdout:match("(SHA256:%S+)"), "ssh-keygen -l output: " .. r.stdout))
end

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d
end

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

return M
