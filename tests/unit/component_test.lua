-- kcm.component's description as data: the guide's subject and layout by
-- default, a description's own key by key, the guide's variables over both,
-- unknown keys refused; its parts load without their parent (no cycle).
-- Run as a kcmrun script.
local failures = 0
local function check(what, got, want)
  if got ~= want then
    failures = failures + 1
    print(string.format("FAIL %s: got %s, want %s", what, tostring(got), tostring(want)))
  else
    print(string.format("ok   %s: %s", what, tostring(got)))
  end
end

-- the parts first, alone, with kcm.component made unloadable: each loads,
-- and the CSR (members, variables) is built without asking its parent back
package.preload["kcm.component"] = function() error("a part required kcm.component (a cycle)", 0) end
for _, m in ipairs { "kcm.component.cert", "kcm.component.steps", "kcm.component.kube", "kcm.component.etcd" } do
  local ok, mod = pcall(require, m)
  check("require " .. m .. " without kcm.component", ok and type(mod) or tostring(mod), "table")
end
do
  local fake = { cert = { CN = "c", O = "o" }, subject = { C = "X", ST = "Y", L = "Z", OU = "W" } }
  local ok, csr = pcall(require("kcm.component.cert").csr, fake,
                        { vars = {}, play = { hosts = "g" }, inventory = { groups = { g = { "a" } } },
                          by_name = { a = { name = "a", host = "10.9.9.9" } } })
  check("csr without kcm.component", ok and table.concat(csr.hosts, ",") or tostring(csr), "127.0.0.1,10.9.9.9")
end
package.preload["kcm.component"] = nil

local component = require "kcm.component"
local ctx = { vars = {}, play = { hosts = "masters" }, inventory = { groups = { masters = { "n1", "n2" } } },
              by_name = { n1 = { name = "n1", host = "10.0.0.1" }, n2 = { name = "n2", host = "10.0.0.2" } } }

local cm = component.new { name = "kube-controller-manager", user = "system:kube-controller-manager",
                           template = "t.in" }
local p = cm:paths(ctx)
check("default cert", p.cert, "/etc/kubernetes/cert/kube-controller-manager.pem")
check("default kubeconfig", p.kubeconfig, "/etc/kubernetes/kube-controller-manager.kubeconfig")
check("default bin", p.bin, "/opt/k8s/bin/kube-controller-manager")
check("default workdir", p.workdir, "/data/k8s/k8s/kube-controller-manager")
local names = cm:csr(ctx).names[1]
check("default subject", string.format("C=%s ST=%s L=%s O=%s OU=%s", names.C, names.ST, names.L, names.O, names.OU),
      "C=CN ST=BeiJing L=BeiJing O=system:kube-controller-manager OU=4Paradigm")
check("csr hosts", table.concat(cm:csr(ctx).hosts, ","), "127.0.0.1,10.0.0.1,10.0.0.2")

local etcd = component.new { name = "etcd", template = "t.in", cert = { CN = "etcd", O = "k8s" },
                             subject = { L = "Shanghai", OU = "ops" },
                             layout = { cert_dir = "/etc/etcd/cert", bin_dir = "/usr/local/bin" } }
p = etcd:paths(ctx)
check("layout cert_dir", p.cert, "/etc/etcd/cert/etcd.pem")
check("layout bin_dir", p.bin, "/usr/local/bin/etcd")
check("layout keeps the guide's data_dir", p.workdir, "/data/k8s/k8s/etcd")
names = etcd:csr(ctx).names[1]
check("subject key by key", string.format("C=%s ST=%s L=%s O=%s OU=%s", names.C, names.ST, names.L, names.O, names.OU),
      "C=CN ST=BeiJing L=Shanghai O=k8s OU=ops")
check("GUIDE untouched by a description", component.GUIDE.subject.L, "BeiJing")

-- the guide's environment.sh variables win for one cluster
ctx.vars = { K8S_DIR = "/srv/k8s", K8S_BIN_DIR = "/opt/bin", cert_ou = "team" }
p = etcd:paths(ctx)
check("K8S_BIN_DIR over the layout", p.bin, "/opt/bin/etcd")
check("K8S_DIR over the guide", p.workdir, "/srv/k8s/etcd")
check("cert_ou over the subject", etcd:csr(ctx).names[1].OU, "team")

-- a misspelt key of the new tables is refused with the closest one
local ok, err = pcall(component.new, { name = "x", template = "t.in", layout = { bindir = "/b" } })
check("layout bindir refused", ok, false)
check("layout error names the key", tostring(err):match("unknown option 'bindir' for component.new layout") ~= nil, true)
ok, err = pcall(component.new, { name = "x", template = "t.in", subject = { ou = "x" } })
check("subject ou refused", tostring(err):match("unknown option 'ou' for component.new subject") ~= nil, true)
check("leader = false accepted", (pcall(component.new, { name = "x", user = "x", template = "t.in", leader = false })), true)

if failures > 0 then
  print(failures .. " failure(s)")
  os.exit(1)
end
print("all component checks passed")
