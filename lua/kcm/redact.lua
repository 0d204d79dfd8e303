-- One set of redaction rules for everything a user or a log sees: live
-- lines, the recap, --diff, --log-json, --timeline and error messages.
--
-- The first net is the file's mode, not its content: a file put with
-- mode & 077 == 0 (or marked secret = true) is never printed or diffed, only
-- summarised (M.summary). Patterns are the second net, for secrets in files
-- that are readable by others or in messages: they cannot know every shape a
-- secret takes, so they err towards hiding.
local M = {}

M.MARK = "[redacted]"

local native = require "kcm.native.redact"

--- redact.line(s): one line with every credential-looking value replaced
--- (engine/redact.c: one pass, linear in the line's length). Keys of
--- `word: value`, `WORD=value`, `--word value` whose word names a credential
--- keep the key; also Authorization headers, scheme://user:PASSWORD@host,
--- token.csv lines and base64 PEM private keys.
function M.line(s)
  return native.line(tostring(s))
end

-- "PRIVATE KEY" blocks of every kind: PEM (RSA, EC, OPENSSH, ENCRYPTED...)
-- and PGP ("PGP PRIVATE KEY BLOCK"). label | nil for a marker line start.
local function pem_label(s, at, what)
  local b = s:match("^%-%-%-%-%-" .. what .. " ()", at)
  if not b then return nil end
  local e = s:find("-----", b, true)
  if not e then return nil end
  local label = s:sub(b, e - 1)
  if label:find("[^%u ]") or not label:find("PRIVATE KEY", 1, true) then return nil end
  return label, e + 4
end

-- Private key blocks of a whole text become one "[redacted LABEL]"; one
-- without an END hides the rest. Plain finds only: linear.
local function collapse_pem(s)
  local out, pos = {}, 1
  while true do
    local b = s:find("-----BEGIN ", pos, true)
    if not b then break end
    local label, e = pem_label(s, b, "BEGIN")
    if not label then
      out[#out + 1] = s:sub(pos, b + 10)
      pos = b + 11
    else
      out[#out + 1] = s:sub(pos, b - 1) .. "[redacted " .. label .. "]"
      local eb = s:find("-----END ", e + 1, true)
      local _, ee = nil, nil
      while eb do
        _, ee = pem_label(s, eb, "END")
        if ee then break end
        eb = s:find("-----END ", eb + 9, true)
      end
      if not ee then return table.concat(out) end
      pos = ee + 1
    end
  end
  out[#out + 1] = s:sub(pos)
  return table.concat(out)
end

-- PuTTY keys: the N lines after "Private-Lines: N" are the private key.
local function putty_count(line)
  local n = line:match("^%s*Private%-Lines:%s*(%d+)%s*$")
  return n and math.min(tonumber(n), 100000)
end

--- redact.text(s): a whole message (several lines); private key blocks
--- become one "[redacted ... PRIVATE KEY]" mark.
function M.text(s)
  s = collapse_pem(tostring(s))
  local putty = 0
  return (s:gsub("[^\n]+", function(line)
    if putty > 0 then
      putty = putty - 1
      return M.MARK
    end
    local n = putty_count(line)
    if n then putty = n return line end
    return M.line(line)
  end))
end

--- redact.lines(text) -> array of lines for a diff: private key blocks
--- keep their BEGIN/END markers, every line inside becomes [redacted].
function M.lines(text)
  local out, inkey, putty = {}, false, 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local lead = line:match("^%s*()")
    if putty > 0 then
      putty = putty - 1
      out[#out + 1] = M.MARK
    elseif not inkey and pem_label(line, lead, "BEGIN") then
      inkey = true
      out[#out + 1] = line
    elseif inkey then
      if pem_label(line, lead, "END") then
        inkey = false
        out[#out + 1] = line
      else
        out[#out + 1] = M.MARK
      end
    else
      local n = putty_count(line)
      if n then putty = n end
      out[#out + 1] = n and line or M.line(line)
    end
  end
  if out[#out] == "" then out[#out] = nil end
  return out
end

--- Is a file with this mode (number) or these put options secret?
function M.is_secret(mode, opts)
  if opts and opts.secret ~= nil then return opts.secret and true or false end
  return mode ~= nil and (mode & tonumber("077", 8)) == 0
end

local function human(n)
  if n < 1024 then return string.format("%d B", n) end
  if n < 1024 * 1024 then return string.format("%.1f KiB", n / 1024) end
  if n < 1024 * 1024 * 1024 then return string.format("%.1f MiB", n / 1024 / 1024) end
  return string.format("%.1f GiB", n / 1024 / 1024 / 1024)
end
M.human = human

--- The one line a secret file's change gets instead of a diff:
--- "secret: sha256 a1b2c3d4… → c3d4e5f6…, 1.6 KiB". old_hex nil = new file.
function M.summary(old_hex, new_hex, new_size)
  return string.format("secret: sha256 %s → %s, %s",
                       old_hex and (old_hex:sub(1, 8) .. "…") or "(none)",
                       new_hex:sub(1, 8) .. "…", human(new_size))
end

return M
