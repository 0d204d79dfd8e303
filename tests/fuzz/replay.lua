-- Replays a fuzz target's seeds (and regression inputs) through its Lua
-- driver in the normal and sanitizer builds, without libFuzzer:
--   FUZZ_TARGET=inventory FUZZ_SEEDS="dir1 dir2" kcmrun tests/fuzz/replay.lua
-- Fails when any input violates the driver's invariants.
local fs = require "kcm.native.fs"

local target = assert(os.getenv("FUZZ_TARGET"), "FUZZ_TARGET is not set")
local here = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
FUZZ_TMPDIR = fs.tempdir()

local files = {}
for d in (os.getenv("FUZZ_SEEDS") or (here .. "/seeds/" .. target)):gmatch("%S+") do
  local p = assert(io.popen("find '" .. d .. "' -type f | sort"))
  for f in p:lines() do files[#files + 1] = f end
  p:close()
end
assert(#files > 0, "no seeds for " .. target)

-- drivers replace fs.read; read the seeds first
local inputs = {}
for i, f in ipairs(files) do
  local h = assert(io.open(f, "rb"))
  inputs[i] = h:read("a")
  h:close()
end

local driver = dofile(here .. "/" .. target .. ".lua")
local bad = 0
for i, f in ipairs(files) do
  local ok, err = pcall(driver, inputs[i])
  if not ok and type(err) == "table" and err.fuzz_invariant then
    bad = bad + 1
    io.stderr:write(("%s: %s\n"):format(f, err.fuzz_invariant))
  end
end
os.remove(FUZZ_TMPDIR)
print(("%s: %d inputs, %d violations"):format(target, #files, bad))
assert(bad == 0, "fuzz invariants violated")
