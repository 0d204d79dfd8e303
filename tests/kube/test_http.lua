-- http module against the apiserver stand-in: client certificate and key from
-- memory, CA from memory or a file, Status bodies, transport errors.
local http = require "kcm.native.http"
local fs = require "kcm.native.fs"
local cjson = require "cjson"

local dir = assert(os.getenv("KUBE_TEST_DIR"), "run me through with_apiserver.sh")
local server = assert(os.getenv("KUBE_APISERVER"))
local function read(name) return assert(fs.read(dir .. "/" .. name)) end
local ca, cert, key = read("ca.pem"), read("admin.pem"), read("admin-key.pem")

-- client cert + key + CA from memory: the admin (system:masters) may list namespaces
local r = http.request { url = server .. "/api/v1/namespaces", ca_pem = ca, cert_pem = cert, key_pem = key,
                         timeout = 10 }
assert(r.status == 200, "status " .. r.status .. ": " .. r.body)
local list = cjson.decode(r.body)
assert(list.kind == "NamespaceList", r.body)
local names = {}
for _, ns in ipairs(list.items) do names[ns.metadata.name] = true end
assert(names["kube-system"] and names["default"], r.body)
assert(r.headers["content-type"] == "application/json", tostring(r.headers["content-type"]))
assert(r.headers["content-length"] == tostring(#r.body))

-- CA from a file works the same
r = http.request { url = server .. "/version", ca_file = dir .. "/ca.pem", cert_pem = cert, key_pem = key }
assert(r.status == 200 and cjson.decode(r.body).gitVersion:match("^v1%.%d+%.%d+$"), r.body)

-- no client certificate: the anonymous user gets a 403 Status, not a transport error
r = http.request { url = server .. "/api/v1/namespaces/kube-system/configmaps", ca_pem = ca }
assert(r.status == 403, r.status)
local st = cjson.decode(r.body)
assert(st.kind == "Status" and st.reason == "Forbidden" and st.code == 403, r.body)
assert(st.message == 'configmaps is forbidden: User "system:anonymous" cannot list resource "configmaps" ' ..
       'in API group "" in the namespace "kube-system"', st.message)

-- a body and a method other than GET; headers given as a map and as lines
r = http.request { method = "post", url = server .. "/api/v1/namespaces", ca_pem = ca, cert_pem = cert,
                   key_pem = key, headers = { ["Content-Type"] = "application/json", "X-Test: 1" },
                   body = cjson.encode { metadata = { name = "http-test" } } }
assert(r.status == 201, r.status .. " " .. r.body)
assert(cjson.decode(r.body).metadata.uid)
r = http.request { method = "DELETE", url = server .. "/api/v1/namespaces/http-test", ca_pem = ca,
                   cert_pem = cert, key_pem = key }
assert(r.status == 200, r.body)

-- the server is not in the default trust store: without the CA it fails, with
-- curl's reason and the URL, and without any key material in the message
-- an operational failure is a value: nil, message, kind ("tls": never retried)
local ok, err, kind = http.request { url = server .. "/healthz", cert_pem = cert, key_pem = key, timeout = 10 }
assert(not ok, "an unverified server was accepted")
assert(kind == "tls", "kind of an unverified server: " .. tostring(kind))
assert(err:find(server .. "/healthz", 1, true), err)
assert(err:lower():find("certificate", 1, true) or err:find("SSL", 1, true), err)
assert(not err:find("PRIVATE KEY", 1, true) and not err:find(key:sub(40, 80), 1, true), err)

-- ... unless insecure is asked for
r = http.request { url = server .. "/healthz", insecure = true }
assert(r.status == 200 and r.body == "ok", r.body)

-- a key that does not belong to the certificate is refused by curl itself
local alice_key = read("alice-key.pem")
ok, err = http.request { url = server .. "/healthz", ca_pem = ca, cert_pem = cert, key_pem = alice_key }
assert(not ok, "a mismatched key was accepted")
assert(not err:find("PRIVATE KEY", 1, true), err)

-- garbage PEM: an error, not a crash
ok, err = http.request { url = server .. "/healthz", ca_pem = ca, cert_pem = "nonsense", key_pem = "nonsense" }
assert(not ok and err:find(server, 1, true), err)

-- a client certificate from a CA the server does not trust is rejected
ok, err = http.request { url = server .. "/healthz", ca_pem = ca, cert_pem = read("stranger.pem"),
                         key_pem = read("stranger-key.pem") }
if ok then assert(ok.status == 401, "a stranger's certificate was accepted: " .. ok.status) end

-- nothing listens: connection refused names the URL
ok, err, kind = http.request { url = "https://127.0.0.1:1/x", connect_timeout = 2 }
assert(not ok and err:find("https://127.0.0.1:1/x", 1, true), err)
-- a closed port is a failed check of the service, never an unreachable node
assert(kind == "refused", "kind of a refused connection: " .. tostring(kind))

-- a server that drops the connection mid-request (a component exiting as it
-- loses its lease) is kind "reset", which checks retry like a closed port
local dropper = io.popen([[python3 -c '
import socket, struct, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.recv(10)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
']])
local port = assert(tonumber(dropper:read("l")), "the dropping server did not start")
ok, err, kind = http.request { url = "https://127.0.0.1:" .. port .. "/metrics", connect_timeout = 2, timeout = 5 }
dropper:close()
assert(not ok and kind == "reset", "kind of a reset connection: " .. tostring(kind) .. " (" .. tostring(err) .. ")")

-- bad arguments are misuse: they raise

ok, err = pcall(http.request, { url = server, ca_pem = ca, ca_file = "/x" })
assert(not ok and err:find("not both"), err)
ok, err = pcall(http.request, { url = server, headers = { ["X-Evil"] = "a\r\nInjected: 1" } })
assert(not ok and err:find("bad header"), err)
ok, err = pcall(http.request, { })
assert(not ok and err:find("url is required"), err)

-- requests in parallel (each its own job on the worker pool)
local task = require "kcm.task"
local res = task.parallel {
  function() return http.request { url = server .. "/healthz", ca_pem = ca }.status end,
  function() return http.request { url = server .. "/livez", ca_pem = ca }.status end,
  function() return http.request { url = server .. "/readyz", ca_pem = ca }.status end,
}
assert(res[1] == 200 and res[2] == 200 and res[3] == 200)
print("http: ok")
