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

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64V = {}
for i = 1, #B64 do B64V[B64:sub(i, i)] = i - 1 end

-- Decodes the first bytes of a base64 text (enough to see a PEM header).
local function b64_head(s, nbytes)
  local out, bits, acc = {}, 0, 0
  for c in s:gmatch("[%w+/]") do
    acc = (acc << 6) | B64V[c]
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = string.char((acc >> bits) & 0xff)
      if #out >= nbytes then break end
    end
  end
  return table.concat(out)
end

-- base64 of "-----BEGIN": every base64-encoded PEM block starts with it.
local B64_PEM = "LS0tLS1CRUdJTi"

local function b64_pem_private(blob)
  return b64_head(blob, 64):find("PRIVATE KEY", 1, true) ~= nil
end

-- Names of fields whose value is a credential, in YAML (`name: value`),
-- JSON (`"name": "value"`) and flag (`--name=value`) form.
local FIELD_WORDS = { "token", "password", "passwd", "secret", "key%-data", "private%-key",
                      "privatekey", "%.key", "apikey", "api%-key", "api_key" }

local function field_rules()
  local rules = {}
  for _, w in ipairs(FIELD_WORDS) do
    -- YAML: `  tls.key: value`, `token: value`, `- secret: value`
    rules[#rules + 1] = { "([%w%-_%.]*" .. w .. "[\"']?%s*:%s*)([^%s,}]+)", "yaml" }
    -- flags: --token=value, --password value stays (it is two arguments)
    rules[#rules + 1] = { "(%-%-[%w%-]*" .. w .. "=)(%S+)", "flag" }
  end
  return rules
end
local RULES = field_rules()

-- Names that end in a credential word but name no credential: hiding them
-- hides what an operator needs to read (a --diff of etcd's unit showed
-- --initial-cluster-token=[redacted]). etcd's initial-cluster-token only
-- keeps the members of two clusters apart: it is on every member's command
-- line and in its `ps`, and etcd's docs treat it as a name, not a secret.
local NOT_SECRET = { ["initial-cluster-token"] = true, ["initial_cluster_token"] = true }

-- The field name in a rule's head (`--name=`, `name: `, `"name": "`).
local function not_secret(head)
  local name = head:match("([%w%-_%.]+)[\"']?%s*[:=]")
  return name ~= nil and NOT_SECRET[name:gsub("^%-+", ""):lower()] == true
end

-- A token.csv line (kube-apiserver --token-auth-file): token,user,uid[,"groups"],
-- also quoted inside a message: a long token of letters and digits before ",user,uid".
local function token_csv(line)
  local out, n = line:gsub("%f[%w%-_%.]([%w%-_%.]+)(,[^,%s]+,%s*\"?[%w%-]+)", function(tok, rest)
    if #tok >= 16 and tok:find("%d") and tok:find("%a") then return M.MARK .. rest end
    return nil
  end)
  if n > 0 and out ~= line then return out end
  return nil
end

-- JSON: "token": "value", "password":"value" (keys of any case containing the words)
local function json_fields(s)
  return (s:gsub('("([^"]*)"%s*:%s*")([^"]*)(")', function(head, key, val, tail)
    local k = key:lower()
    if NOT_SECRET[k] then return nil end
    for _, w in ipairs(FIELD_WORDS) do
      if k:find(w) then return head .. M.MARK .. tail end
    end
    if val:sub(1, #B64_PEM) == B64_PEM and b64_pem_private(val) then return head .. M.MARK .. tail end
    return nil
  end))
end

--- redact.line(s): one line with every credential-looking value replaced.
--- Keys of `word: value` lines whose word names a credential keep the key.
function M.line(s)
  s = tostring(s)
  local csv = token_csv(s)
  if csv then return csv end
  s = json_fields(s)
  for _, r in ipairs(RULES) do
    s = s:gsub(r[1], function(head, val)
      if val == M.MARK or val == '"' .. M.MARK .. '"' or val:match("^%[redacted") then return nil end
      if not_secret(head) then return nil end
      -- yaml/flag values that are just a reference stay: `secret: true`, `key: {`
      if val == "true" or val == "false" or val == "|" or val == ">" or val == "{" or val == "[" or val == "null"
         or val == "''" or val == '""' then return nil end
      -- the checksum line that stands in for a secret file's diff (M.summary)
      if val == "sha256" and head:match("^secret:") then return nil end
      return head .. M.MARK
    end)
  end
  s = s:gsub("([Aa]uthorization:%s*%a+%s+)%S+", "%1" .. M.MARK)
  -- a base64 PEM private key anywhere (a Secret's data, an embedded *-data)
  s = s:gsub(B64_PEM .. "[%w+/=]*", function(blob)
    if b64_pem_private(blob) then return M.MARK end
    return nil
  end)
  return s
end

--- redact.text(s): a whole message (several lines); PEM private key blocks
--- become one "[redacted ... PRIVATE KEY]" mark.
function M.text(s)
  s = tostring(s)
  s = s:gsub("%-%-%-%-%-BEGIN ([%u ]*PRIVATE KEY)%-%-%-%-%-.-%-%-%-%-%-END [%u ]*PRIVATE KEY%-%-%-%-%-",
             "[redacted %1]")
  s = s:gsub("%-%-%-%-%-BEGIN ([%u ]*PRIVATE KEY)%-%-%-%-%-.*", "[redacted %1]")
  return (s:gsub("[^\n]+", M.line))
end

--- redact.lines(text) -> array of lines for a diff: PEM private key blocks
--- keep their BEGIN/END markers, every line inside becomes [redacted].
function M.lines(text)
  local out, inkey = {}, false
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if line:match("^%s*%-%-%-%-%-BEGIN [%u ]*PRIVATE KEY%-%-%-%-%-") then
      inkey = true
      out[#out + 1] = line
    elseif inkey then
      if line:match("^%s*%-%-%-%-%-END [%u ]*PRIVATE KEY%-%-%-%-%-") then
        inkey = false
        out[#out + 1] = line
      else
        out[#out + 1] = M.MARK
      end
    else
      out[#out + 1] = M.line(line)
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
