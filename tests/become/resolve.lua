-- Prints what kcmrun reads from an ssh_config for each name:
-- name hostname port user identity known_hosts ("-" when unset).
local ssh = require "kcm.native.ssh"
local args = { ... }
local cfg = table.remove(args, 1)
for _, n in ipairs(args) do
  local c = assert(ssh.resolve_config(n, cfg))
  print(table.concat({ n, c.hostname or "-", c.port or "-", c.user or "-", c.identity or "-", c.known_hosts or "-" }, " "))
end
