-- A certificate and its key (KCM_PAIR_CERT, KCM_PAIR_KEY, local files) put
-- as a pair to KCM_PAIR_DIR/pair.pem and pair-key.pem on every master.
local kcm = require "kcm"
local files = require "kcm.files"
local play = kcm.playbook { name = "files-pair", hosts = "masters" }
local dir = os.getenv("KCM_PAIR_DIR") or "/etc/kcm-pair"

play:step("pair", function(node)
  node:mkdir(dir, { mode = "0755" })
  node:put_pair {
    { { content = files.read(os.getenv("KCM_PAIR_CERT")) }, dir .. "/pair.pem", { mode = "0644" } },
    { { content = files.read(os.getenv("KCM_PAIR_KEY")) }, dir .. "/pair-key.pem", { mode = "0600" } },
  }
end)
return play
