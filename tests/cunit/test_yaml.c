/* yaml decode/encode: round trips (encode(decode(x)) is stable and
 * decode(encode(v)) gives v back), YAML 1.1 typing, anchors, errors with
 * "name:line:col", and base64 helpers. */
#include "cunit.h"

static const char CHUNK[] =
    "local yaml = require 'kcm.yaml'\n"
    "local function deq(a, b, path)\n"
    "  path = path or 'v'\n"
    "  if type(a) ~= type(b) then error(path .. ': ' .. type(a) .. ' vs ' .. type(b), 0) end\n"
    "  if type(a) ~= 'table' then\n"
    "    if a ~= b and not (a ~= a and b ~= b) then error(path .. ': ' .. tostring(a) .. ' vs ' .. tostring(b), 0) end\n"
    "    return\n"
    "  end\n"
    "  for k, v in pairs(a) do deq(v, b[k], path .. '.' .. tostring(k)) end\n"
    "  for k in pairs(b) do if a[k] == nil then error(path .. '.' .. tostring(k) .. ' missing', 0) end end\n"
    "end\n"
    "local doc = [[\n"
    "apiVersion: v1\n"
    "kind: Config\n"
    "clusters:\n"
    "- name: kubernetes\n"
    "  cluster:\n"
    "    server: https://127.0.0.1:6443\n"
    "    insecure-skip-tls-verify: false\n"
    "ints: [0, -7, 0x1f, 0o17, 1_000]\n"
    "floats: [1.5, -0.25, 1e3]\n"
    "strings: ['123', 'true', 'null', '', \"a\\tb\", 'multi\n"
    "  line']\n"
    "nothing: ~\n"
    "empty_list: []\n"
    "empty_map: {}\n"
    "base: &b {x: 1, y: [a, b]}\n"
    "copy: *b\n"
    "block: |\n"
    "  line1\n"
    "  line2\n"
    "]]\n"
    "local v = yaml.decode(doc, 'doc.yaml')\n"
    "assert(v.kind == 'Config' and v.clusters[1].cluster.server == 'https://127.0.0.1:6443')\n"
    "assert(v.clusters[1].cluster['insecure-skip-tls-verify'] == false)\n"
    "deq(v.ints, { 0, -7, 31, 15, 1000 }, 'ints')\n"
    "assert(math.type(v.ints[3]) == 'integer' and math.type(v.floats[3]) == 'float')\n"
    "deq(v.strings, { '123', 'true', 'null', '', 'a\\tb', 'multi line' }, 'strings')\n"
    "assert(v.nothing == yaml.null, 'null inside a mapping is yaml.null')\n"
    "assert(getmetatable(v.empty_list) == yaml.array_mt, 'sequences are marked')\n"
    "deq(v.copy, v.base, 'alias')\n"
    "assert(v.block == 'line1\\nline2\\n')\n"
    "local text = yaml.encode(v)\n"
    "local again = yaml.decode(text, 'again.yaml')\n"
    "deq(again, v, 'round trip')\n"
    "assert(yaml.encode(again) == text, 'encode is stable')\n"
    "assert(text:find('empty_list: %[%]') and text:find('empty_map: {}'), text)\n"
    "assert(text:find(\"'123'\", 1, true) and text:find(\"'true'\", 1, true), 'strings that look typed are quoted')\n"
    /* values built in Lua survive encode -> decode */
    "local built = { a = yaml.array { 1, 'two', { three = 3 } }, b = 'x: y', c = '- z', d = 'line\\nbreak',\n"
    "                e = '  lead', f = 0.1, g = -0.0 == 0 and 5 or 6, h = '#nocomment', i = '' }\n"
    "deq(yaml.decode(yaml.encode(built), 'b.yaml'), built, 'built')\n"
    "assert(yaml.decode('', 'e.yaml') == nil and yaml.decode('~', 'e.yaml') == nil)\n"
    /* errors carry the name and position */
    "local function fails(text, want)\n"
    "  local ok, err = pcall(yaml.decode, text, 'bad.yaml')\n"
    "  assert(not ok, 'expected an error for ' .. text)\n"
    "  if tostring(err):sub(1, #want) ~= want then error(('%q: %s (want %s)'):format(text, tostring(err), want), 0) end\n"
    "end\n"
    "fails('a: 1\\na: 2\\n', 'bad.yaml:2:')\n"
    "fails('a: [1, 2\\n', 'bad.yaml:')\n"
    "fails('a: *nope\\n', 'bad.yaml:1:')\n"
    "fails('--- 1\\n--- 2\\n', 'bad.yaml:')\n"
    "fails('\\t- x', 'bad.yaml:1:')\n"
    "local ok = pcall(yaml.encode, { [true] = 1 })\n"
    "assert(not ok, 'a boolean key cannot be encoded')\n"
    "local cyc = {} cyc.self = cyc\n"
    "assert(not pcall(yaml.encode, cyc), 'a cycle is an error, not a hang')\n"
    /* base64 helpers, checked against known vectors */
    "assert(yaml.base64_encode('') == '' and yaml.base64_encode('foobar') == 'Zm9vYmFy')\n"
    "assert(yaml.base64_encode('fo') == 'Zm8=' and yaml.base64_decode('Zm8=') == 'fo')\n"
    "local bin = '' for i = 0, 255 do bin = bin .. string.char(i) end\n"
    "assert(yaml.base64_decode(yaml.base64_encode(bin)) == bin)\n"
    "local nope, why = yaml.base64_decode('***')\n"
    "assert(nope == nil and type(why) == 'string', 'bad base64 is nil, message')\n";

int main(void)
{
    lua_State *L = kcm_lua_new();
    CHECK(L != NULL);
    cunit_lua(L, "=yaml", CHUNK);
    lua_close(L);
    printf("yaml: ok\n");
    return 0;
}
