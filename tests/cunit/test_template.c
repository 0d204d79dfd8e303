/* The template engine through its Lua API: compile once / render many,
 * every statement kind, and the error paths (compile errors and render
 * errors carry "name:line:col"), with the compiled template collected. */
#include "cunit.h"

static const char CHUNK[] =
    "local template = require 'kcm.template'\n"
    "local function eq(got, want, what)\n"
    "  if got ~= want then error(('%s: got %q, want %q'):format(what, tostring(got), tostring(want)), 2) end\n"
    "end\n"
    "local tpl = template.compile(table.concat({\n"
    "  '[Service]',\n"
    "  'ExecStart=${BIN:-/opt/k8s/bin}/kcm \\\\',\n"
    "  '{% for ip in ips %}',\n"
    "  '  --ip=${ip}{% if not loop.last %},{% end %}',\n"
    "  '{% end %}',\n"
    "  '{% if v >= 1.24 and defined(flags.x) %}',\n"
    "  'x=${flags.x}',\n"
    "  '{% elif v == 1.23 %}',\n"
    "  'old',\n"
    "  '{% else %}',\n"
    "  'none',\n"
    "  '{% end %}',\n"
    "  '{# comment #}',\n"
    "  '$${literal}',\n"
    "}, '\\n'), 'unit.in')\n"
    "eq(tpl:name(), 'unit.in', 'name')\n"
    "for round = 1, 3 do\n"
    "  local out = tpl:render { ips = { '10.0.0.1', '10.0.0.2' }, v = 1.25, flags = { x = 'X' .. round } }\n"
    "  eq(out, '[Service]\\nExecStart=/opt/k8s/bin/kcm \\\\\\n  --ip=10.0.0.1,\\n  --ip=10.0.0.2\\nx=X' ..\n"
    "     round .. '\\n${literal}', 'render ' .. round)\n"
    "end\n"
    "eq(tpl:render { ips = {}, v = 1.23, flags = {}, BIN = '/b' },\n"
    "   '[Service]\\nExecStart=/b/kcm \\\\\\nold\\n${literal}', 'elif branch, empty loop, default unused')\n"
    "eq(template.render('{% for k, v in m %}${k}=${v};{% end %}', { m = { b = 2, a = 1, [3] = 'n' } }, 'm.in'),\n"
    "   '3=n;a=1;b=2;', 'sorted keys: numbers first')\n"
    /* errors: every one names the template, line and column */
    "local function fails(text, vars, want)\n"
    "  local ok, err = pcall(template.render, text, vars, 'e.in')\n"
    "  assert(not ok, 'expected an error for ' .. text)\n"
    "  err = tostring(err)\n"
    "  if err:sub(1, #want) ~= want then error(('error for %q: %s (want %s...)'):format(text, err, want), 2) end\n"
    "end\n"
    "fails('a ${missing} b', {}, 'e.in:1:3: ')\n"
    "fails('\\n  ${t}', { t = {} }, 'e.in:2:3: ')\n"
    "fails('{% if x %}never closed', { x = 1 }, 'e.in:1:')\n"
    "fails('{% end %}', {}, 'e.in:1:1: ')\n"
    "fails('${a.}', { a = {} }, 'e.in:1:')\n"
    "fails('{% for in x %}{% end %}', {}, 'e.in:1:')\n"
    "fails('{% if (a == %}{% end %}', { a = 1 }, 'e.in:1:')\n"
    "fails('${unterminated', {}, 'e.in:1:')\n"
    "local ok = pcall(template.compile, {}, 'n.in')\n"
    "assert(not ok, 'a table is not template text')\n"
    "tpl = nil\n"
    "collectgarbage() collectgarbage()\n";

int main(void)
{
    lua_State *L = kcm_lua_new();
    CHECK(L != NULL);
    cunit_lua(L, "=template", CHUNK);
    lua_close(L);
    printf("template: ok\n");
    return 0;
}
