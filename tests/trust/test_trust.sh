#!/bin/bash
# Trust boundaries (issue #17): each case feeds the hostile input of one
# finding and asserts the refusal or redaction. See the README's Guarantees.
#   user      shell characters in the ssh user (inventory, environment.sh, C net)
#   http      credentials over plain http refused unless allow_insecure_http
#   modules   module overrides: text only, named folders only, safe owners/modes, announced
#   outputs   --log-json/--timeline/local writes never follow a planted symlink; 0600
#   csr       CSR/config validation: control characters, DNS names, URIs, numbers
#   redact    the five secret shapes in messages, --log-json and --timeline
#   coredump  no core dumps, not dumpable
#   hostkeys  every known_hosts file (ssh_config lists); --accept-new vs a global key (sshd)
#   env       node:run{env=} values never on the remote command line (sshd)
#   diff      --diff of a 0600 file: checksums only; the five shapes redacted (sshd)
set -e
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CASE=${1:?usage: test_trust.sh CASE}
cleanup_pids=()
trap 'for p in "${cleanup_pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT

play_once() {   # a playbook whose one step runs on the control machine
  cat >"$1" <<'LUA'
local kcm = require "kcm"
local play = kcm.playbook { name = "t", hosts = "all" }
play:step("s", { once = true }, function(ctx) print("step ran") end)
return play
LUA
}
play_node() {   # a playbook that connects to every node
  cat >"$1" <<'LUA'
local kcm = require "kcm"
local play = kcm.playbook { name = "t", hosts = "all" }
play:step("s", function(node) node:run({ "true" }) end)
return play
LUA
}
no_marker() { [ ! -e "$1" ] || fail "$2: the hostile value ran a command ($1 exists)"; }

case "$CASE" in
user)
  M=$T/pwned
  # ProxyCommand runs through /bin/sh with %r expanded: the way a user name becomes a command
  printf 'Host *\n  ProxyCommand true %%r\n' >"$T/ssh_config"
  play_node "$T/play.lua"
  cat >"$T/inv.lua" <<EOF
return {
  ssh = { config = "$T/ssh_config", known_hosts = "$T/kh",
          user = "root\$(touch $M)" },
  nodes = { { name = "n1", host = "127.0.0.1", port = 1 } },
}
EOF
  run "$KCMRUN" --state-dir "$T/sd" -i "$T/inv.lua" "$T/play.lua"
  expect_rc 2 "hostile ssh.user"
  expect_err "inv.lua:3: ssh: ssh user .*is not a user name"
  no_marker "$M" "ssh.user"
  cat >"$T/inv2.lua" <<EOF
return {
  ssh = { config = "$T/ssh_config", known_hosts = "$T/kh" },
  nodes = { { name = "n1", host = "127.0.0.1", port = 1 },
            { name = "n2", host = "127.0.0.1", port = 1, user = "x;touch $M" } },
}
EOF
  run "$KCMRUN" --state-dir "$T/sd" -i "$T/inv2.lua" "$T/play.lua"
  expect_rc 2 "hostile node user"
  expect_err "inv2.lua:4: node n2: ssh user .*is not a user name"
  for h in "127.0.0.1\$(touch $M)" "a(b)" "-oProxyCommand=x"; do
    printf 'return { nodes = { { name = "n1", host = [==[%s]==] } } }\n' "$h" >"$T/inv3.lua"
    run "$KCMRUN" --state-dir "$T/sd" -i "$T/inv3.lua" "$T/play.lua"
    expect_rc 2 "hostile host $h"
    expect_err "inv3.lua:1: node n1: host .* is not a host name or address"
  done
  # the procedure's environment.sh: the same rule, with its line
  cat >"$T/env.sh" <<EOF
NODE_IPS=(127.0.0.1)
NODE_NAMES=(n1)
KCMRUN_SSH_USER='root\$(touch $M)'
KCMRUN_SSH_CONFIG=$T/ssh_config
EOF
  run "$KCMRUN" --state-dir "$T/sd" -i "$T/env.sh" "$T/play.lua"
  expect_rc 2 "hostile KCMRUN_SSH_USER"
  expect_err "env.sh:3: KCMRUN_SSH_USER .*is not a user name"
  no_marker "$M" "environment.sh"
  # the C net: a session made without the inventory loader
  cat >"$T/direct.lua" <<EOF
local Node = require "kcm.node"
local n = Node.new { name = "n1", host = "127.0.0.1", port = 1, user = "root\$(touch $M)",
                     ssh = { config = "$T/ssh_config", known_hosts = "$T/kh", connect_timeout = 2 } }
local ok, err = pcall(n.run, n, { "true" })
assert(not ok, "connected with a hostile user")
print(tostring(err))
EOF
  run "$KCMRUN" "$T/direct.lua"
  expect_rc 0 "direct session"
  expect_out "ssh user 'root\\\$\\(touch .*is not a user name"
  no_marker "$M" "engine/ssh_conn.c"
  # a valid user name still reaches ssh (and %r): the check is not a blanket refusal
  printf 'Host *\n  ProxyCommand touch %s.%%r\n' "$M" >"$T/ssh_config2"
  sed "s#$T/ssh_config\"#$T/ssh_config2\"#; s#root\\\$(touch $M)#deploy_user-1.x#" "$T/inv.lua" >"$T/inv4.lua"
  run "$KCMRUN" --state-dir "$T/sd" -i "$T/inv4.lua" "$T/play.lua"
  expect_rc 4 "valid user, no server"
  [ -e "$M.deploy_user-1.x" ] || fail "a valid user name did not reach ssh_config's %r"
  pass "hostile ssh users and hosts: exit 2 naming file:line (inventory.lua, environment.sh), refused in C too; nothing ran"
  ;;

http)
  python3 - "$T/port" "$T/requests" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[2], "a") as f:
            f.write("%s %s\n" % (self.path, self.headers.get("Authorization")))
        body = b'{"kind":"Namespace","metadata":{"name":"default"}}'
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_port)); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
  cleanup_pids+=($!)
  for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
  P=$(cat "$T/port"); : >"$T/requests"
  cat >"$T/kc" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:$P"}}]
users: [{name: u, user: {token: S3CRETtoken0123456789}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
EOF
  cat >"$T/play.lua" <<'LUA'
local kcm = require "kcm"
local play = kcm.playbook { name = "http", hosts = "all" }
play:step("api", { once = true }, function(ctx)
  local c = require("kcm.kube").client { kubeconfig = ctx.vars.kc }
  print("api answered: " .. c:get("/api/v1/namespaces/default").metadata.name)
end)
return play
LUA
  echo "return { nodes = {}, vars = { kc = '$T/kc' } }" >"$T/inv.lua"
  echo "return { nodes = {}, vars = { kc = '$T/kc' }, allow_insecure_http = true }" >"$T/inv-allow.lua"
  run "$KCMRUN" --no-lock -i "$T/inv.lua" "$T/play.lua"
  [ "$RC" != 0 ] || fail "a token went to an http:// server"
  expect_out "server http://127.0.0.1:$P is plain http: refusing to send a bearer token in clear"
  expect_out "allow_insecure_http = true"
  [ ! -s "$T/requests" ] || fail "the http server was contacted: $(cat "$T/requests")"
  ! grep -q S3CRET "$T/out" "$T/err" || fail "the token is in the output"
  for i in 1 2; do   # allowed: it works, and says so on every run
    run "$KCMRUN" --no-lock -i "$T/inv-allow.lua" "$T/play.lua"
    expect_rc 0 "allow_insecure_http run $i"
    expect_out "api answered: default"
    expect_out "warning.*sending a bearer token over plain http to http://127.0.0.1:$P"
    ! grep -q S3CRET "$T/out" "$T/err" || fail "the token is in the output"
  done
  [ "$(grep -c 'Bearer S3CRETtoken0123456789' "$T/requests")" = 2 ] || fail "allowed runs: $(cat "$T/requests")"
  # the C net under kube.lua: http.request itself
  : >"$T/requests"
  cat >"$T/c.lua" <<EOF
local http = require "kcm.native.http"
local U = "http://127.0.0.1:$P/x"
for _, req in ipairs {
  { url = U, headers = { Authorization = "Bearer T0K" } },
  { url = U, headers = { "authorization: Basic dTpw" } },
  { url = U, cert_pem = "C", key_pem = "K" },
  { url = "http://u:pa55@127.0.0.1:$P/x" },
} do
  local ok, err = pcall(http.request, req)
  assert(not ok, "sent credentials over http: " .. req.url)
  assert(tostring(err):find("refusing to send", 1, true), tostring(err))
  assert(not tostring(err):find("pa55", 1, true), "password in the error")
  print(err)
end
local r = http.request { url = U, headers = { Authorization = "Bearer OK" }, insecure_http = true }
assert(r.status == 200)
print("allowed: " .. r.status)
EOF
  run "$KCMRUN" "$T/c.lua"
  expect_rc 0 "http.request guard"
  expect_out "refusing to send an Authorization header over plain http"
  expect_out "refusing to send a client certificate over plain http"
  expect_out "refusing to send credentials in the URL over plain http to a URL with a password"
  [ "$(cat "$T/requests")" = "/x Bearer OK" ] || fail "http.request sent: $(cat "$T/requests")"
  pass "no token, basic auth or client certificate over http:// (kube.lua and http.c); allow_insecure_http warns on every run"
  ;;

modules)
  M=$T/hijacked
  mkdir -p "$T/pb/kcm" "$T/cwd/kcm" "$T/pb2"
  cat >"$T/pb/play.lua" <<'LUA'
local r = require "kcm.report"
package.loaded["kcm.report"] = nil
require "kcm.report"
print("report: " .. tostring(r.overridden))
LUA
  evil="io.open('$M', 'w'):close() return { overridden = 'evil' }"
  echo "return { overridden = 'mine' }" >"$T/pb/kcm/report.lua"
  chmod 644 "$T/pb/kcm/report.lua"
  run "$KCMRUN" "$T/pb/play.lua"
  expect_rc 0 "a safe override"
  expect_out "report: mine"
  [ "$(grep -c "kcmrun: module kcm.report: using $T/pb/kcm/report.lua instead of the built-in" "$T/err")" = 1 ] ||
    { cat "$T/err"; fail "the override was not announced exactly once"; }
  echo "$evil" >"$T/pb/kcm/report.lua"
  chmod 664 "$T/pb/kcm/report.lua"
  run "$KCMRUN" "$T/pb/play.lua"
  expect_rc 3 "group-writable module"
  expect_err "refusing module 'kcm.report' from '$T/pb/kcm/report.lua': .*report.lua is group-writable \(mode 0664\)"
  chmod 644 "$T/pb/kcm/report.lua"; chmod 777 "$T/pb/kcm"
  run "$KCMRUN" "$T/pb/play.lua"
  expect_rc 3 "world-writable folder"
  expect_err "refusing module 'kcm.report'.*$T/pb/kcm is world-writable"
  chmod 755 "$T/pb/kcm"; chown 65534 "$T/pb/kcm/report.lua"
  run "$KCMRUN" "$T/pb/play.lua"
  expect_rc 3 "module owned by another user"
  expect_err "report.lua is owned by uid 65534, neither root nor you"
  chown 0 "$T/pb/kcm/report.lua"
  # bytecode (a planted precompiled chunk) is refused: text only
  echo "local f = io.open(arg and arg[1] or '$T/pb/kcm/report.lua', 'wb') f:write(string.dump(load(\"$evil\"))) f:close()" >"$T/dump.lua"
  "$KCMRUN" "$T/dump.lua"
  head -c 4 "$T/pb/kcm/report.lua" | grep -q "Lua" || fail "no bytecode written"
  run "$KCMRUN" "$T/pb/play.lua"
  expect_rc 3 "bytecode module"
  expect_err "attempt to load a binary chunk"
  no_marker "$M" "unsafe module"
  # the current directory is not searched (neither kcm/ nor ./?.lua)
  echo "$evil" >"$T/cwd/kcm/report.lua"; echo "$evil" >"$T/cwd/evil.lua"
  printf '%s\n' 'print("report: " .. tostring(require("kcm.report").overridden))' \
    'print("evil: " .. tostring((pcall(require, "evil"))))' >"$T/pb2/play.lua"
  (cd "$T/cwd" && run "$KCMRUN" "$T/pb2/play.lua"; expect_rc 0 "cwd"; expect_out "report: nil"; expect_out "evil: false")
  no_marker "$M" "module in the current directory"
  pass "overrides: text only, announced once; group/world-writable or foreign-owned files and folders refused; cwd never searched"
  ;;

outputs)
  play_once "$T/play.lua"
  echo "return { nodes = {} }" >"$T/inv.lua"
  echo precious >"$T/victim"; echo precious >"$T/victim2"
  ln -s "$T/victim" "$T/log.jsonl"; ln -s "$T/victim2" "$T/t.svg"
  run "$KCMRUN" --no-lock -i "$T/inv.lua" --log-json "$T/log.jsonl" "$T/play.lua"
  expect_rc 2 "--log-json through a symlink"
  expect_err "log.jsonl: is a symbolic link \(refused\)"
  [ "$(cat "$T/victim")" = precious ] || fail "--log-json wrote through a symlink"
  run "$KCMRUN" --no-lock -i "$T/inv.lua" --timeline "$T/t.svg" --log-json "$T/fresh.jsonl" "$T/play.lua"
  expect_rc 0 "--timeline over a symlink"
  [ "$(cat "$T/victim2")" = precious ] || fail "--timeline wrote through a symlink"
  [ -f "$T/t.svg" ] && [ ! -L "$T/t.svg" ] && grep -q "<svg" "$T/t.svg" || fail "timeline not written as a file of its own"
  for f in "$T/t.svg" "$T/fresh.jsonl"; do
    [ "$(stat -c %a "$f")" = 600 ] || fail "$f: mode $(stat -c %a "$f"), want 600"
  done
  # an existing world-readable log becomes 0600
  echo old >"$T/old.jsonl"; chmod 644 "$T/old.jsonl"
  run "$KCMRUN" --no-lock -i "$T/inv.lua" --log-json "$T/old.jsonl" "$T/play.lua"
  expect_rc 0 "existing log"
  [ "$(stat -c %a "$T/old.jsonl")" = 600 ] && ! grep -q '^old$' "$T/old.jsonl" || fail "old log not truncated to 0600"
  # local writes of the engine (files.write / fs.write): the link is replaced, its target untouched
  echo precious >"$T/victim3"; ln -s "$T/victim3" "$T/conf"
  echo "require('kcm.files').write('$T/conf', 'precious\n', { mode = '0600' })" >"$T/w.lua"
  run "$KCMRUN" "$T/w.lua"
  expect_rc 0 "files.write over a symlink"
  [ ! -L "$T/conf" ] && [ "$(stat -c %a "$T/victim3")" = 644 ] || fail "files.write followed the symlink (chmod or write)"
  pass "--log-json refuses a symlink, --timeline and local writes replace it; outputs 0600"
  ;;

csr)
  D=$T/pki; mkdir -p "$D"
  printf '{"CN":"ca","key":{"algo":"ecdsa","size":256}}' >"$D/ca-csr.json"
  printf '{"signing":{"default":{"expiry":"8760h","usages":["signing","server auth"]}}}' >"$D/config.json"
  printf '{"CN":"evil\\u0000x\\nCN=admin","key":{"algo":"ecdsa","size":256}}' >"$D/nul-csr.json"
  printf '{"CN":"x","names":[{"O":"a\\u001b[31mb"}]}' >"$D/esc-csr.json"
  printf '{"CN":"x","hosts":["%s"]}' "$(head -c 70000 /dev/zero | tr '\0' a)" >"$D/long-csr.json"
  printf '{"CN":"x","hosts":["ok.example","%s.example"]}' "$(head -c 64 /dev/zero | tr '\0' b)" >"$D/label-csr.json"
  printf '{"CN":"x","hosts":["a b.example"]}' >"$D/space-csr.json"
  printf '{"CN":"x","key":{"algo":"rsa","size":1e308}}' >"$D/size-csr.json"
  printf '{"CN":"x","ca":{"pathlen":1e300}}' >"$D/pathlen-csr.json"
  printf '{"signing":{"default":{"expiry":"1h","usages":["cert sign"],"ca_constraint":{"is_ca":true,"max_path_len":1e300}}}}' >"$D/mpl-config.json"
  printf '{"CN":"workload","hosts":["spiffe://x/y","node1.example","10.0.0.1"],"key":{"algo":"ecdsa","size":256}}' >"$D/uri-csr.json"
  cat >"$T/p.lua" <<EOF
local pki = require "kcm.pki"
local D = "$D"
local function refuses(fn, arg, ...)
  local ok, err = pcall(fn, arg)
  assert(not ok, "accepted " .. tostring(arg))
  for _, want in ipairs { ... } do
    assert(tostring(err):find(want, 1, true), "error lacks '" .. want .. "': " .. tostring(err))
  end
  print(err)
end
refuses(pki.load_csr, D .. "/nul-csr.json", D .. "/nul-csr.json: CN: ", '"evil\\\\0x\\\\nCN=admin"', "control character")
refuses(pki.load_csr, D .. "/esc-csr.json", "esc-csr.json: names[1].O: ", "control character (byte 0x1b")
refuses(pki.load_csr, D .. "/long-csr.json", "long-csr.json: hosts[1]: DNS name", "70000 characters long (a DNS name has at most 253)")
refuses(pki.load_csr, D .. "/label-csr.json", "label-csr.json: hosts[2]: DNS name", "a label of 64 characters (at most 63)")
refuses(pki.load_csr, D .. "/space-csr.json", "space-csr.json: hosts[1]: ", "not printable ASCII without spaces")
refuses(pki.load_csr, D .. "/size-csr.json", "size-csr.json: key.size: 1e+308 is not a key size")
refuses(pki.load_csr, D .. "/pathlen-csr.json", "pathlen-csr.json: ca.pathlen: 1e+300 is not an integer between 0 and 2147483647")
refuses(pki.load_config, D .. "/mpl-config.json", "mpl-config.json: signing.default.ca_constraint.max_path_len: 1e+300 is not an integer")
-- the signer's own net (crypto_names.c), below the CSR loader
local crypto = require "kcm.native.crypto"
local key = crypto.generate_key("ecdsa", 256)
for _, bad in ipairs { { { "CN", { "a\nb" } } } } do
  local ok, err = pcall(crypto.make_csr, key, bad, {})
  assert(not ok and tostring(err):find("control character"), tostring(err))
end
local ok, err = pcall(crypto.make_csr, key, { { "CN", { "x" } } }, { ("a"):rep(300) })
assert(not ok and tostring(err):find("characters long (a DNS name has at most 253)", 1, true), tostring(err))
pki.init_ca { csr = D .. "/ca-csr.json", dir = D, name = "ca" }
local r = pki.issue { ca = D .. "/ca.pem", ca_key = D .. "/ca-key.pem", csr = D .. "/uri-csr.json",
                      config = D .. "/config.json", dir = D, name = "uri" }
print("uri=" .. table.concat(r.info.sans.uri, ",") .. " dns=" .. table.concat(r.info.sans.dns, ","))
EOF
  run "$KCMRUN" "$T/p.lua"
  expect_rc 0 "pki validation"
  expect_out "^uri=spiffe://x/y dns=node1.example$"
  openssl x509 -in "$D/uri.pem" -noout -ext subjectAltName | grep -q "DNS:node1.example, IP Address:10.0.0.1, URI:spiffe://x/y" ||
    fail "openssl does not see the URI SAN: $(openssl x509 -in "$D/uri.pem" -noout -ext subjectAltName)"
  [ "$(stat -c %a "$D/uri-key.pem")" = 600 ] || fail "key file not 0600"
  pass "CSR/config: control characters, RFC 1035 sizes, spaces, 1e308 key size, 1e300 path lengths refused with file, field and value; spiffe:// is a URI SAN"
  ;;

redact)
  cat >"$T/r.lua" <<'LUA'
local redact = require "kcm.redact"
local pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretsecret\n-----END RSA PRIVATE KEY-----\n"
local b64pem = require("kcm.yaml").base64_encode(pem)
local cases = {
  { "  tls.key: " .. b64pem, "MIIEow", "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVkt" },
  { "      - secret: c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=", "c2VjcmV0c2Vj" },
  { "a1b2c3d4e5f60718a1b2c3d4e5f60718,kubelet-bootstrap,10001,\"system:kubelet-bootstrap\"", "a1b2c3d4e5f6" },
  { '{"kind":"Config","token":"eyJhbGciOiJSUzI1NiJ9.payload.sig","user":"bob"}', "eyJhbGci" },
  { "  password: hunter2-Correct-Horse", "hunter2" },
  { "client-key-data: QUJDREVGR0hJSktMTU5PUA==", "QUJDREVG" },
  { "Authorization: Bearer abc.def.ghi", "abc.def" },
  { "--token=0123456789abcdef", "0123456789abcdef" },
}
for _, c in ipairs(cases) do
  local out = table.concat(redact.lines(c[1]), "\n") .. " | " .. redact.text(c[1])
  for i = 2, #c do
    assert(not out:find(c[i], 1, true), "leaks " .. c[i] .. ": " .. out)
  end
  assert(out:find("[redacted]", 1, true), out)
end
-- what is not a secret stays readable
for _, keep in ipairs { "  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=", "secret: true",
                        "kind: EncryptionConfiguration", "--kubeconfig=/etc/kubernetes/x.kubeconfig",
                        "name: kube-controller-manager" } do
  assert(redact.line(keep) == keep, "over-redacted: " .. keep .. " -> " .. redact.line(keep))
end
assert(redact.text("x\n" .. pem .. "y\n") == "x\n[redacted RSA PRIVATE KEY]\ny\n")
-- the line that stands in for a secret file's diff survives the report's own pass
local sum = "node1: /etc/k/key.pem: " .. redact.summary(("a"):rep(64), ("b"):rep(64), 1650)
assert(redact.text(sum) == sum and sum:find("secret: sha256 aaaaaaaa… → bbbbbbbb…, 1.6 KiB", 1, true), redact.text(sum))
print("redact rules ok")
LUA
  run "$KCMRUN" "$T/r.lua"
  expect_rc 0 "redaction rules"; expect_out "redact rules ok"
  # a run whose error and change lines carry the shapes: the live output,
  # --log-json and --timeline are redacted by the same rules
  cat >"$T/play.lua" <<'LUA'
local kcm = require "kcm"
local task = require "kcm.task"
local play = kcm.playbook { name = "leaky", hosts = "all" }
play:step("work", { once = true }, function(ctx)
  task.changed("run curl --token=0123456789abcdef https://x")
  task.warn('config: {"token":"eyJhbGciOiJSUzI1NiJ9.payload.sig"}')
  error("bad token.csv line a1b2c3d4e5f60718a1b2c3d4e5f60718,kubelet-bootstrap,10001\n  password: hunter2-Correct-Horse\n      - secret: c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=")
end)
return play
LUA
  echo "return { nodes = {} }" >"$T/inv.lua"
  run "$KCMRUN" --no-lock -v -i "$T/inv.lua" --log-json "$T/log.jsonl" --timeline "$T/t.svg" "$T/play.lua"
  [ "$RC" != 0 ] || fail "the failing step passed"
  grep -q "redacted" "$T/out" && grep -q "redacted" "$T/log.jsonl" || { cat "$T/out"; fail "nothing redacted: the test would prove nothing"; }
  for s in 0123456789abcdef eyJhbGci a1b2c3d4e5f6 hunter2 c2VjcmV0c2Vj; do
    ! grep -q -- "$s" "$T/out" "$T/err" "$T/log.jsonl" "$T/t.svg" || fail "$s leaked: $(grep -l -- "$s" "$T/out" "$T/err" "$T/log.jsonl" "$T/t.svg")"
  done
  pass "five secret shapes (and the older ones) redacted in messages, live output, --log-json and --timeline"
  ;;

coredump)
  chmod 755 "$T"
  echo 'require("kcm.native.runtime").sleep(3)' >"$T/sleep.lua"; chmod 644 "$T/sleep.lua"
  setpriv --reuid 65534 --regid 65534 --clear-groups "$KCMRUN" "$T/sleep.lua" &
  pid=$!; cleanup_pids+=($pid)
  sleep 1
  grep -E "^Max core file size +0 +0 " "/proc/$pid/limits" || fail "core dumps allowed: $(grep core "/proc/$pid/limits")"
  # a non-dumpable process's /proc files belong to root, not to its user
  grep -qE "^Uid:\s+65534\s" "/proc/$pid/status" || fail "not running as 65534: $(grep Uid "/proc/$pid/status")"
  [ "$(stat -c %u "/proc/$pid/environ")" = 0 ] ||
    fail "kcmrun is dumpable (its /proc/PID/environ belongs to uid $(stat -c %u "/proc/$pid/environ"))"
  wait $pid
  pass "RLIMIT_CORE 0 and PR_SET_DUMPABLE 0 (checked from outside, as another user)"
  ;;

hostkeys|env|diff)
  : "${KCM_SSH_DIR:?}"
  extra=(); [ "$CASE" = diff ] && extra=(--diff)
  run env KCM_SSH_INV="$KCM_SSH_DIR/inventory.lua" KCM_SSH_DIR="$KCM_SSH_DIR" KCM_T="$T" \
    "$KCMRUN" "${extra[@]}" --lua-path "$SRC/tests/ssh" "$HERE/$CASE.lua"
  expect_rc 0 "$CASE.lua"
  expect_out "^ok: $CASE"
  cat "$T/out"
  ;;

*)
  fail "unknown case '$CASE'"
  ;;
esac
