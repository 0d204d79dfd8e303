-- --diff of etcd's unit put to a node (issue 25): --initial-cluster-token
-- is a name every member shows in `ps`, not a secret, so it is shown; the
-- secrets beside it stay hidden.
local T = require "sshtest"
local task = require "kcm.task"
assert(task.diff(), "run me with --diff")
local n = T.node(T.inventory())
local R = assert(os.getenv("KCM_SSH_DIR")) .. "/remote-strict-diff"
local diffs = {}
task.show_diff = function(text) diffs[#diffs + 1] = text end
n:remove(R, { recursive = true })
n:put({ content = "ExecStart=/usr/bin/etcd --initial-cluster-token=old-cluster\n" }, R .. "/etcd.service", { mode = "0644" })
diffs = {}
n:put({ content = "ExecStart=/usr/bin/etcd --initial-cluster-token=etcd-cluster-0 --bootstrap-token=abcdef.0123456789abcdef\n" ..
                  "initial-cluster-token: etcd-cluster-0\npassword: hunter2-Correct-Horse\n" }, R .. "/etcd.service", { mode = "0644" })
assert(#diffs == 1, "one diff, got " .. #diffs)
local d = diffs[1]
T.contains(d, "-ExecStart=/usr/bin/etcd --initial-cluster-token=old-cluster\n")
T.contains(d, "+ExecStart=/usr/bin/etcd --initial-cluster-token=etcd-cluster-0 --bootstrap-token=[redacted]\n")
T.contains(d, "+initial-cluster-token: etcd-cluster-0\n")
T.contains(d, "+password: [redacted]\n")
for _, s in ipairs { "abcdef.0123", "hunter2" } do
  assert(not d:find(s, 1, true), "diff leaks " .. s .. ":\n" .. d)
end
n:remove(R, { recursive = true })
print("ok: diff_token")
require("kcm.node").close_all()
