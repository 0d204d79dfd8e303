-- Step options retries/delay/until and node:run's `changed` predicate, on the
-- lab's real nodes. -e mark=<remote path prefix> keeps runs apart.
local kcm = require "kcm"

local play = kcm.playbook { name = "step-retries", hosts = "all" }

play:step("flaky", { retries = 3, delay = 0.2 }, function(node, ctx)
  -- fails twice per node, then works: the step must end ok after 3 attempts
  ctx.tries = ctx.tries or {}
  ctx.tries[node.name] = (ctx.tries[node.name] or 0) + 1
  if ctx.tries[node.name] < 3 then error(node.name .. ": not yet (attempt " .. ctx.tries[node.name] .. ")", 0) end
  print(string.format("flaky %s attempts=%d", node.name, ctx.tries[node.name]))
end)

play:step("until", { retries = 5, delay = 0.1, ["until"] = function(n) return n >= 3 end }, function(node, ctx)
  -- a counter on the node: `until` looks at what the step returned
  local r = node:run({ "sh", "-c", 'n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; echo $n',
                       "count", ctx.vars.mark .. ".count" })
  return tonumber(r.stdout)
end)

play:step("changed", function(node, ctx)
  -- reports a change only when the command says it made one
  node:run({ "sh", "-c", 'if [ -e "$1" ]; then echo same; else : > "$1"; echo created; fi', "flag",
             ctx.vars.mark .. ".flag" },
           { changed = function(res) return res.stdout:find("created", 1, true) ~= nil end })
end)

play:step("never", { once = true, retries = 1, delay = 0.1, ["until"] = function() return false end }, function()
  return "no"
end)

return play
