-- For test_unit_render.sh: renders TEMPLATE with the variables of ENV_SH (read through
-- kcmrun's own environment.sh inventory loader, i.e. evaluated by bash) into OUT.
-- With VERSION_MINOR set it adds what the playbook's component passes for that release.
local inventory = require "kcm.inventory"
local template = require "kcm.template"
local fs = require "kcm.native.fs"

local inv = inventory.load(assert(os.getenv("ENV_SH")))
local vars = inv.vars
local minor = tonumber(os.getenv("VERSION_MINOR") or "")
if minor then
  vars = template.layer({
    version = { major = 1, minor = minor },
    legacy = minor <= 23,
    klog_legacy = minor <= 25,
    SECURE_PORT = minor <= 23 and 10252 or 10257,
    BIND_ADDRESS = "169.254.77.101",
    BIN = "/opt/k8s/bin/kube-controller-manager",
    extra_flags = { "--feature-gates=Foo=true", "--profiling=false" },
  }, inv.vars)
end
local text = template.render_file(assert(os.getenv("TEMPLATE")), vars)
fs.write(assert(os.getenv("OUT")), text)
