-- The controller-manager playbook with a "hold" step inserted before the step
-- named by KCM_HOLD_BEFORE (default "start"): on every node it creates
-- /run/kcm-holding and waits (a real remote command) until /run/kcm-release
-- exists (the test removes it), so a test can inject a fault while a step is
-- in flight on a node.
-- Copied next to controller-manager.lua (templates resolve from there).
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local play = dofile(here .. "/controller-manager.lua")
local before = os.getenv("KCM_HOLD_BEFORE") or "start"

local s = play:step("hold", function(node, ctx)
  if ctx.check then return end
  node:run({ "sh", "-c", "touch /run/kcm-holding; while [ ! -e /run/kcm-release ]; do sleep 0.1; done; " ..
                         "rm -f /run/kcm-holding" }, { readonly = true })
end)
table.remove(play.steps)
local at = #play.steps + 1
for i, st in ipairs(play.steps) do if st.name == before then at = i break end end
table.insert(play.steps, at, s)
return play
