-- A large file put on every node (KCM_BIGPUT_SRC -> KCM_BIGPUT_DST, 0600),
-- then a step that leaves a marker: for faults injected while a transfer is
-- in flight (link down, SIGINT/SIGTERM).
local kcm = require "kcm"
local play = kcm.playbook { name = "bigput", hosts = "masters" }
local dst = os.getenv("KCM_BIGPUT_DST") or "/etc/kubernetes/kcm-big.bin"

play:step("bigput", function(node)
  node:put(os.getenv("KCM_BIGPUT_SRC"), dst, { mode = "0600" })
end)
play:step("after", function(node)
  node:run({ "touch", "/run/kcm-after-ran" })
end)
return play
