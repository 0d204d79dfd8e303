-- Run as `kcmrun --check --diff`: no primitive changes anything, each says
-- it would; put shows a unified diff with key and token material redacted.
local T = require "sshtest"
local task = require "kcm.task"

assert(task.check() and task.diff(), "run me with --check --diff")
local DIR = assert(os.getenv("KCM_SSH_DIR"))
local R = DIR .. "/remote-check"
local inv = T.inventory()
local n = T.node(inv)

local diffs = {}
task.show_diff = function(text) diffs[#diffs + 1] = text end

-- fixtures, written by a command marked read-only on purpose
local old = "keep\nline2\nclient-key-data: OLDSECRETb64==\nend\n"
n:run({ "sh", "-c", 'rm -rf "$1" && mkdir -p "$1/d" && printf %s "$2" > "$1/conf"', "x", R, old },
      { readonly = true })

local new = table.concat({
  "keep", "line2 changed", "client-key-data: NEWSECRETb64==", "end",
  "-----BEGIN RSA PRIVATE KEY-----", "MIIEPRIVATEKEYMATERIAL", "MORELINES", "-----END RSA PRIVATE KEY-----",
  "    token: abcdef.0123456789abcdef", "" }, "\n")
-- 0644: not secret by mode, so a diff, with the second net (patterns) on
assert(n:put({ content = new }, R .. "/conf", { mode = "0644" }) == true, "put would change")
assert(n:get(R .. "/conf") == old, "check mode changed the file")
assert(n:run({ "stat", "-c", "%a", R .. "/conf" }, { readonly = true }).stdout == "644\n", "check mode changed the mode")
assert(#diffs == 1, "one diff printed")
local d = diffs[1]
T.contains(d, "-line2\n", "diff")
T.contains(d, "+line2 changed\n", "diff")
T.contains(d, "@@ -1,", "diff hunk")
T.contains(d, "+-----BEGIN RSA PRIVATE KEY-----", "diff keeps the PEM markers")
for _, secret in ipairs({ "OLDSECRET", "NEWSECRET", "MIIEPRIVATEKEYMATERIAL", "MORELINES", "abcdef.0123" }) do
  assert(not d:find(secret, 1, true), "diff leaks " .. secret .. ":\n" .. d)
end
T.contains(d, "[redacted]", "diff")

-- secret by mode (0600) or by secret = true: no diff at all, a checksum line
local fs = require "kcm.native.fs"
for i, o in ipairs({ { mode = "0600" }, { mode = "0400" }, { mode = "0644", secret = true } }) do
  assert(n:put({ content = "harmless looking\n" .. new }, R .. "/conf", o) == true, "secret put would change")
  local s = diffs[#diffs]
  assert(#diffs == 1 + i, "one line per secret put")
  T.contains(s, "secret: sha256 " .. fs.sha256(old):sub(1, 8) .. "… → " ..
             fs.sha256("harmless looking\n" .. new):sub(1, 8) .. "…, " .. (#new + 17) .. " B", "secret summary")
  assert(not s:find("harmless", 1, true) and not s:find("line2", 1, true), "secret content shown:\n" .. s)
end
diffs = { diffs[1] }

-- the same content in check mode: unchanged, no diff
assert(n:put({ content = old }, R .. "/conf") == false, "same content and mode: unchanged")
assert(#diffs == 1, "no diff for an unchanged file")
-- a new file: would change, stays absent
assert(n:put({ content = "x" }, R .. "/new/file") == true and n:stat(R .. "/new/file") == nil)
assert(n:mkdir(R .. "/newdir") == true and n:stat(R .. "/newdir") == nil)
assert(n:mkdir(R .. "/d") == false, "existing dir")
assert(n:remove(R .. "/conf") == true and n:stat(R .. "/conf") ~= nil)
assert(n:remove(R .. "/absent") == false)
local r = n:run({ "touch", R .. "/touched" })
assert(r.skipped and r.code == 0, "non-readonly run skipped")
assert(n:stat(R .. "/touched") == nil, "skipped command ran")
assert(n:run({ "echo", "hi" }, { readonly = true }).stdout == "hi\n", "readonly run runs")
print("ok: check mode and diff")
require("kcm.node").close_all()
