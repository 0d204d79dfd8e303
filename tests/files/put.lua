-- KCM_PUT_SRC -> KCM_PUT_DST (mode KCM_PUT_MODE, 0644) on every master; then
-- prints each node's connection byte counters ("bytes NODE SENT RECEIVED"),
-- which the tests compare against the size of the file.
local kcm = require "kcm"
local play = kcm.playbook { name = "files-put", hosts = "masters" }
local dst = os.getenv("KCM_PUT_DST") or "/opt/kcm-files/payload.bin"

play:step("put", function(node)
  node:put(os.getenv("KCM_PUT_SRC"), dst, { mode = os.getenv("KCM_PUT_MODE") or "0644" })
end)
play:step("bytes", function(node)
  local st = node:transfer_stats()
  print(string.format("bytes %s %d %d", node.name, st.bytes_sent, st.bytes_received))
end)
return play
