-- HTTPS connection reuse (issue 14): requests to one host share one TLS
-- connection within a run; a request with other credentials gets its own
-- (curl never hands it the admin's authenticated connection).
local http = require "kcm.native.http"
local fs = require "kcm.native.fs"

local dir = assert(os.getenv("KUBE_TEST_DIR"), "run me through with_apiserver.sh")
local server = assert(os.getenv("KUBE_APISERVER"))
local function read(name) return assert(fs.read(dir .. "/" .. name)) end
local ca, cert, key = read("ca.pem"), read("admin.pem"), read("admin-key.pem")
local function get(path, anon)
  return http.request { url = server .. path, ca_pem = ca, cert_pem = not anon and cert or nil,
                        key_pem = not anon and key or nil, timeout = 10 }
end

local r = get("/version")
assert(r.status == 200 and r.connects == 1, "first request: status " .. r.status .. ", connects " .. r.connects)
for i = 1, 3 do
  r = get("/api/v1/namespaces")
  assert(r.status == 200, r.status)
  assert(r.connects == 0, "request " .. (i + 1) .. " opened a new connection (" .. r.connects .. ")")
end
-- anonymous: not the admin's connection
r = get("/api/v1/namespaces/kube-system/configmaps", true)
assert(r.status == 403, "anonymous request got " .. r.status .. " (reused the admin's connection?)")
assert(r.connects == 1, "anonymous request reused a connection")
r = get("/version")
assert(r.status == 200 and r.connects == 0, "admin again: connects " .. r.connects)
print("ok: one TLS connection per host and credentials")
