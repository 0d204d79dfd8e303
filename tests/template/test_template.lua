-- Template engine behaviour, run by kcmrun as a script: kcmrun test_template.lua
local template = require "kcm.template"

local n = 0
local function eq(got, want, what)
  n = n + 1
  if got ~= want then
    error(string.format("%s:\n--- got\n%s\n--- want\n%s", what, tostring(got), tostring(want)), 2)
  end
end

local function r(text, vars) return template.render(text, vars or {}, "t.in") end

-- Error message must be exactly "t.in:LINE:COL: <msg...>" (msg checked as a plain prefix).
local function fails(text, vars, where, msg)
  local ok, err = pcall(r, text, vars)
  n = n + 1
  if ok then error("expected an error for: " .. text, 2) end
  local want = "t.in:" .. where .. ": " .. msg
  if err:sub(1, #want) ~= want then
    error(string.format("error for %q:\n got: %s\nwant: %s...", text, err, want), 2)
  end
end

-- substitution like the shell heredoc
eq(r("a ${X} b", { X = "1" }), "a 1 b", "plain var")
eq(r("${a.b.c}-${l.2}-${l.1.k}", { a = { b = { c = "deep" } }, l = { { k = "K" }, "two" } }),
   "deep-two-K", "dotted paths and indexes")
eq(r("${n} ${f} ${t} ${z}", { n = 3, f = 0.5, t = true, z = false }), "3 0.5 true false", "scalars")
eq(r("${current-context}", { ["current-context"] = "ctx" }), "ctx", "dash in name")
eq(r("\\\n\\\\ $X $ {X} $$ $", { X = 1 }), "\\\n\\\\ $X $ {X} $$ $", "backslash and lone $ are literal")
eq(r("$${X} {%% x %} {## y #}", {}), "${X} {% x %} {# y #}", "escapes")
eq(r("$$${X}", { X = "v" }), "$${X}", "$${ is always a literal ${")

eq(r("${e}${e}", { e = "" }), "", "empty values first (fuzz regression: put of 0 bytes into no buffer)")

-- the shell's ${NAME:-default}
eq(r("${A:-x} ${B:-/opt/k8s/bin} ${C:-} ${D.e:-d}", { B = "", C = "c" }), "x /opt/k8s/bin c d", "defaults")
eq(r("${A:-x} ${n:-0}", { A = "set", n = 0 }), "set 0", "default unused when set (0 is set)")

-- conditionals, whitespace control
local tpl = template.compile([[
[Service]
  {% if tls %}
TLS=${tls}
  {% elif plain == "yes" %}
PLAIN
  {% else %}
NONE
  {% end %}
End
]], "t.in")
eq(tpl:render { tls = "on" }, "[Service]\nTLS=on\nEnd\n", "if branch, standalone tags vanish")
eq(tpl:render { tls = false, plain = "yes" }, "[Service]\nPLAIN\nEnd\n", "elif branch")
eq(tpl:render { tls = "", plain = "no" }, "[Service]\nNONE\nEnd\n", "else branch; empty string is false")
eq(r("a {% if x %}X{% end %} b\n", { x = true }), "a X b\n", "inline tags keep the line")
eq(r("a\n  {%- if x -%}  \n X \n {%- end %} tail\nb", { x = true }), "aX tail\nb", "explicit trim")
eq(r("a\n  {%- if x -%}  \n X \n {%- end %}\nb", { x = true }), "aXb", "explicit trim, standalone end")
eq(r("{# note #}\nA\n", {}), "A\n", "standalone comment line vanishes")
eq(r("{% if defined(a.b) and a.b > 2 %}big{% else %}small{% end %}", { a = { b = 3 } }), "big", "defined and compare")
eq(r("{% if defined(a.b) and a.b > 2 %}big{% else %}small{% end %}", {}), "small", "defined short-circuits")
eq(r("{% if not (x or y) %}none{% end %}", { x = false, y = {} }), "none", "not / or / empty table")
eq(r("{% if 'b' < \"c\" and 2 >= 2 and 1 != 2 and nil == nil %}ok{% end %}", {}), "ok", "literals")
eq(r("{% if x == 1 %}one{% end %}", { x = 1.0 }), "one", "1 == 1.0")

-- loops
local flags = template.compile([[
ExecStart=/bin/x \
{% for f in flags %}
  ${f}{% if not loop.last %} \{% end %}
{% end %}
]], "t.in")
eq(flags:render { flags = { "--a=1", "--b=2", "--v=2" } },
   "ExecStart=/bin/x \\\n  --a=1 \\\n  --b=2 \\\n  --v=2\n", "flag list with continuations")
eq(flags:render { flags = {} }, "ExecStart=/bin/x \\\n", "empty list")
eq(r("{% for k, v in m %}${k}=${v};{% end %}", { m = { b = 2, a = 1, [10] = "x", [2] = "y" } }),
   "2=y;10=x;a=1;b=2;", "k,v loop in sorted order")
eq(r("{% for x in l %}${loop.index}/${loop.length}:${x.y}{% if loop.first %}F{% end %} {% end %}${x}",
     { l = { { y = "a" }, { y = "b" } }, x = "outer" }), "1/2:aF 2/2:b outer", "loop vars and scoping")
eq(r("{% for a in l %}{% for b in l %}${a}${b},{% end %}{% end %}", { l = { 1, 2 } }), "11,12,21,22,", "nested loops")

-- compile once, render many; vars layered with __index
local unit = template.compile("dir=${K8S_DIR} cidr=${SERVICE_CIDR}\n", "unit.in")
for i = 1, 50 do
  eq(unit:render { K8S_DIR = "/d" .. i, SERVICE_CIDR = "10.0.0.0/" .. i },
     "dir=/d" .. i .. " cidr=10.0.0.0/" .. i .. "\n", "render " .. i)
end
eq(unit:render(template.layer({ K8S_DIR = "/node" }, { K8S_DIR = "/global", SERVICE_CIDR = "c" })),
   "dir=/node cidr=c\n", "layered vars")
eq(unit:name(), "unit.in", "name")

-- strict errors with file:line:col
fails("line1\n  ${NOPE}\n", {}, "2:3", "undefined variable 'NOPE'")
fails("x\n{% if a %}\nbody\n", { a = true }, "2:1", "unclosed {% if %}")
fails("{% for f in l %}\n${f}\n", { l = {} }, "1:1", "unclosed {% for %}")
fails("{# never closed", {}, "1:1", "unclosed comment")
fails("a\n\nb ${A:=x}", { A = 1 }, "3:6", "bad variable reference: unexpected ':'")
fails("${A:-x\n}", {}, "1:7", "bad default in ${A:-...}: unexpected end of line")
fails("${A:-${B}}", {}, "1:6", "bad default in ${A:-...}: unexpected '$'")
fails("${ A}", {}, "1:3", "bad variable reference: expected a name")
fails("${}", {}, "1:3", "bad variable reference")
fails("{% if a %}{% else %}{% else %}{% end %}", {}, "1:21", "{% else %} after {% else %}")
fails("\n  {% end %}", {}, "2:3", "{% end %} without a matching")
fails("{% iff a %}", {}, "1:4", "unknown tag 'iff'")
fails("{% if a == %}", { a = 1 }, "1:12", "expected a value, found '%}'")
fails("{% if 'abc %}", {}, "1:7", "unterminated string")
fails("{% if a == b == c %}{% end %}", {}, "1:14", "expected '%}' (comparisons do not chain)")
fails("{% for in l %}{% end %}", {}, "1:8", "expected a loop variable name, found 'in'")
fails("{% if a ; %}", {}, "1:9", "unexpected ';' in tag")
fails("{% if os.exit() %}{% end %}", {}, "1:14", "expected '%}', found '('")
fails("${os.execute}", {}, "1:1", "undefined variable 'os.execute'")
fails("${f}", { f = print }, "1:1", "'f' is a function: only strings")
fails("${t}", { t = {} }, "1:1", "'t' is a table")
fails("x ${a.b.c}", { a = { b = "str" } }, "1:3", "'a.b.c': 'a.b' is a string, not a table")
fails("{% for x in s %}{% end %}", { s = "str" }, "1:1", "cannot loop over 's': it is a string")
fails("{% for x in m %}{% end %}", { m = { k = 1 } }, "1:1", "'m' is a table with keys, not a list")
fails("{% if a < 1 %}{% end %}", { a = "1" }, "1:9", "cannot order a string and a number")
fails("{% for x in l %}${loop.nope}{% end %}", { l = { 1 } }, "1:17", "'loop.nope': loop has only")
fails(string.rep("{% if a %}", 70) .. string.rep("{% end %}", 70), { a = true }, "1:641", "nested too deeply")
fails("{% if " .. string.rep("(", 100) .. "a" .. string.rep(")", 100) .. " %}{% end %}", {}, "1:70",
      "nested too deeply")
-- a long and/or chain is bounded too (eval walks it recursively)
fails("{% if " .. string.rep("a and ", 100000) .. "a %}x{% end %}", { a = true }, "1:387", "nested too deeply")
eq(r("{% if " .. string.rep("a or ", 30) .. "a %}x{% end %}", { a = false }), "", "30-link chain is fine")
eq(r(string.rep("(", 100) .. "${a}" .. string.rep("{ %", 5), { a = 1 }), string.rep("(", 100) .. "1" .. string.rep("{ %", 5),
   "parens and braces in text are literal")

print(string.format("test_template: %d checks passed", n))
