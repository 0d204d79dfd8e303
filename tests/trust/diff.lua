-- --diff of files put to a node: a 0600 file (or secret = true) shows only
-- checksums and size; a 0644 Secret manifest with the five shapes is redacted.
local T = require "sshtest"
local task = require "kcm.task"
local fs = require "kcm.native.fs"
assert(task.diff(), "run me with --diff")
local TMP = assert(os.getenv("KCM_T"))
local inv = T.inventory()
local n = T.node(inv)
local R = assert(os.getenv("KCM_SSH_DIR")) .. "/remote-trust-diff"
local diffs = {}
task.show_diff = function(text) diffs[#diffs + 1] = text end
n:remove(R, { recursive = true })
local pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKEYKEYKEYKEY\n-----END EC PRIVATE KEY-----\n"
local b64 = require("kcm.yaml").base64_encode(pem)
n:put({ content = "old-key\n" }, R .. "/key.pem", { mode = "0600" })
n:put({ content = "apiVersion: v1\n" }, R .. "/secret.yaml", { mode = "0644" })
n:put({ content = "x" }, R .. "/token.csv", { mode = "0644" })
diffs = {}
n:put({ content = pem }, R .. "/key.pem", { mode = "0600" })
n:put({ content = "plain text that happens to be sensitive\n" }, R .. "/token.csv", { mode = "0644", secret = true })
local manifest = table.concat({
  "apiVersion: v1", "kind: Secret", "data:", "  tls.key: " .. b64, "  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
  "---", "kind: EncryptionConfiguration", "resources:", "  - providers:", "    - aescbc:", "        keys:",
  "        - name: key1", "          secret: c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=",
  "# token.csv", "a1b2c3d4e5f60718a1b2c3d4e5f60718,kubelet-bootstrap,10001,\"system:kubelet-bootstrap\"",
  '{"token":"eyJhbGciOiJSUzI1NiJ9.payload.sig"}', "password: hunter2-Correct-Horse", "" }, "\n")
n:put({ content = manifest }, R .. "/secret.yaml", { mode = "0644" })
assert(#diffs == 3, "three diffs, got " .. #diffs)
local all = table.concat(diffs, "\n")
T.contains(diffs[1], "key.pem: secret: sha256 " .. fs.sha256("old-key\n"):sub(1, 8) .. "… → " .. fs.sha256(pem):sub(1, 8) .. "…, " .. #pem .. " B")
T.contains(diffs[2], "token.csv: secret: sha256 ")
T.contains(diffs[3], "+kind: EncryptionConfiguration")
T.contains(diffs[3], "+  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t")
for _, s in ipairs { "KEYKEY", "LS0tLS1CRUdJTiBFQyBQUklWQVRF", "c2VjcmV0c2Vj", "a1b2c3d4e5f6", "eyJhbGci", "hunter2", "sensitive" } do
  assert(not all:find(s, 1, true), "diff leaks " .. s .. ":\n" .. all)
end
print("ok: diff")
require("kcm.node").close_all()
