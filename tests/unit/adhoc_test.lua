-- kcm.adhoc's grouping and naming, without a lab (run as a kcmrun script).
local adhoc = require "kcm.adhoc"
local failures = 0
local function eq(what, got, want)
  if got ~= want then
    failures = failures + 1
    print(string.format("FAIL %s:\n  got  %q\n  want %q", what, got, want))
  end
end

eq("a run", adhoc.names { "node1", "node2", "node3" }, "node1..node3 (3)")
eq("two are listed", adhoc.names { "node1", "node2" }, "node1,node2 (2)")
eq("a gap", adhoc.names { "node1", "node3", "node4", "node5" }, "node1,node3..node5 (4)")
eq("padded", adhoc.names { "web01", "web02", "web03" }, "web01..web03 (3)")
eq("other prefixes", adhoc.names { "a1", "a2", "b3", "b4", "b5", "master" }, "a1,a2,b3..b5,master (6)")
eq("one", adhoc.names { "m" }, "m (1)")

local order = { "node1", "node2", "node3", "node4" }
local results = {
  node1 = { code = 0, out = "active\n", err = "" },
  node2 = { code = 3, out = "inactive\n", err = "" },
  node3 = { code = 0, out = "active\n", err = "" },
  node4 = { code = 0, out = "a\nb\n", err = "warn\n" },
}
local status = { node2 = { status = "failed", error = "exit 3" } }
local lines, failed = adhoc.render(order, results, status)
eq("render", table.concat(lines, "\n"), table.concat({
  "node1,node3 (2): active",
  "node2 (1) [exit 3]: inactive",
  "node4 (1):",
  "    a",
  "    b",
  "    stderr: warn",
}, "\n"))
eq("failed", table.concat(failed, ","), "node2")
eq("recap", table.concat(adhoc.recap(order, results, status), "\n"),
   "  exit 0       node1,node3,node4 (3)\n  exit 3       node2 (1)")
eq("failed line", adhoc.failed_line(failed, results, status), "node2 (exit 3)")

-- unreachable nodes that share the same reason after their own name collapse
local un = { n1 = { status = "unreachable", error = "n1: connect: timed out" },
             n2 = { status = "unreachable", error = "n2: connect: timed out" } }
eq("unreachable", table.concat((adhoc.render({ "n1", "n2" }, {}, un)), "\n"), "n1,n2 (2) UNREACHABLE: connect: timed out")
eq("unreachable line", adhoc.failed_line({ "n1", "n2" }, {}, un), "n1,n2 (unreachable)")

if failures > 0 then error(failures .. " adhoc case(s) failed", 0) end
print("adhoc: all cases pass")
