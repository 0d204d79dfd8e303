-- Benchmark body: issue BENCH_N RSA-2048 leaf certs into BENCH_DIR, all at once.
local pki = require "kcm.pki"
local task = require "kcm.task"
local env = os.getenv
local n = tonumber(env("BENCH_N") or "100")
local fns = {}
for i = 1, n do
  fns[i] = function()
    return pki.issue { ca = env("BENCH_CA"), ca_key = env("BENCH_CA_KEY"), csr = env("BENCH_CSR"),
                       config = env("BENCH_CONFIG"), profile = "kubernetes", dir = env("BENCH_DIR"),
                       name = "leaf" .. i }
  end
end
local issued = 0
for _, r in ipairs(task.parallel(fns)) do if r.changed then issued = issued + 1 end end
assert(issued == n, ("issued %d of %d"):format(issued, n))
