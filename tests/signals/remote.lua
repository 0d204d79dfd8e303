-- Steps for the interrupt tests: "sleep" runs `sleep $KCM_SLEEP` (600 by
-- default) on every node, "after" marks that a later step ran.
local kcm = require "kcm"
local p = kcm.playbook { name = "signals", hosts = "all" }
p:step("sleep", function(node)
  node:run({ "sleep", os.getenv("KCM_SLEEP") or "600" }, { timeout = tonumber(os.getenv("KCM_TIMEOUT")) })
end)
p:step("after", function(node) node:run({ "touch", "/run/kcm-signals-after" }) end)
return p
