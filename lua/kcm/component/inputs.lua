-- What a component reads from the run's variables and the control machine:
-- one rule for an unset variable, local files named by a variable, values
-- safe to render into a unit, versions, the work folder. Shared by
-- kcm.component and its parts (a module of its own, so the parts need not
-- require their parent back).
local M = {}

--- var(ctx, name, default): the variable, or default when unset or ""
function M.var(ctx, name, default)
  local v = ctx.vars[name]
  if v == nil or v == "" then return default end
  return v
end

--- need_file(ctx, key, path, fix): the local file variable `key` names must
--- exist; if not, the error names the variable, where it was set and its
--- value, so the fix is that line:
---   ca_cert (from inventory.lua:4) = /opt/k8s/work/ca.pem: no such file
function M.need_file(ctx, key, path, fix)
  local st = require("kcm.native.fs").stat(path)
  local why = not st and "no such file" or st.type ~= "file" and ("is a " .. st.type .. ", not a file") or nil
  if not why then return path end
  local origin = require("kcm.vars").origin(ctx.vars, key)
  error(string.format("%s (from %s) = %s: %s; %s", key, origin, path, why,
                      fix or ("set " .. key .. " to the right file (-e " .. key .. "=PATH or the inventory)")), 0)
end

-- A value with a line break (or another control character) rendered into a
-- unit would start a new line there: a new directive such as ExecStartPre=,
-- run as root. Such values are refused, whatever variable they come from.
function M.unit_safe(name, v)
  if type(v) == "string" and v:find("%c") then
    local shown = string.format("%q", v):gsub("\\\n", "\\n")
    error(string.format("unit: variable %s contains a line break or another control character (%s); " ..
                        "refusing to render it into a systemd unit, where it would add a line", name, shown), 0)
  end
  return v
end

--- Parses "Kubernetes v1.28.4" (or "1.23") -> {major, minor, patch, text}
function M.parse_version(s)
  local maj, min, pat = tostring(s):match("v?(%d+)%.(%d+)%.?(%d*)")
  if not maj then return nil end
  return { major = tonumber(maj), minor = tonumber(min), patch = tonumber(pat) or 0,
           text = string.format("v%s.%s%s", maj, min, pat ~= "" and ("." .. pat) or "") }
end

--- The control machine's folder for what the procedure makes in /opt/k8s/work
--- (issued certificates, kubeconfigs): `work_dir`, else one per cluster CA in
--- kcmrun's state folder (a copy of the inventory, or environment.sh for the
--- same cluster, finds the same certificates). Never the CA's folder.
function M.work_dir(ctx)
  local w = M.var(ctx, "work_dir")
  if w then return w end
  local fs = require "kcm.native.fs"
  local ca = M.var(ctx, "ca_cert", "/opt/k8s/work/ca.pem")
  return (ctx.state_dir or ".") .. "/work-" .. fs.sha256(fs.realpath(ca) or ca):sub(1, 16)
end

return M
