-- YAML module behaviour, run by kcmrun as a script: kcmrun test_yaml.lua
local yaml = require "kcm.yaml"
local cjson = require "cjson"

local n = 0
local function eq(got, want, what)
  n = n + 1
  if got ~= want then
    error(string.format("%s:\n--- got\n%s\n--- want\n%s", what, tostring(got), tostring(want)), 2)
  end
end

local function fails(fn, want, what)
  local ok, err = pcall(fn)
  n = n + 1
  if ok then error(what .. ": expected an error", 2) end
  if err:sub(1, #want) ~= want then
    error(string.format("%s:\n got: %s\nwant: %s...", what, err, want), 2)
  end
end

-- scalar typing
local v = yaml.decode([[
int: 42
neg: -7
hex: 0x1F
oct: 0755
oct12: 0o17
bin: 0b101
under: 1_000
float: 2.5
exp: 1.0e+3
inf: -.inf
y1: yes
o1: Off
t: true
null1: ~
null2: null
empty:
str: "42"
str2: '0755'
tagged: !!str 12
tagged_f: !!float 3
plain: hello world
colon: "a: b"
big: 99999999999999999999
ver: 1.2.3
]], "types.yaml")
eq(v.int, 42, "int"); eq(math.type(v.int), "integer", "int type")
eq(v.neg, -7, "neg"); eq(v.hex, 31, "hex"); eq(v.oct, 493, "0755 is octal (YAML 1.1)")
eq(v.oct12, 15, "0o"); eq(v.bin, 5, "0b"); eq(v.under, 1000, "underscores")
eq(v.float, 2.5, "float"); eq(v.exp, 1000.0, "exp"); eq(math.type(v.exp), "float", "exp type")
eq(v.inf, -math.huge, "-.inf")
eq(v.y1, true, "yes"); eq(v.o1, false, "Off"); eq(v.t, true, "true")
eq(v.null1, yaml.null, "~"); eq(v.null2, yaml.null, "null"); eq(v.empty, yaml.null, "empty")
eq(v.null1, cjson.null, "yaml.null is cjson.null")
eq(v.str, "42", "quoted stays string"); eq(v.str2, "0755", "single quoted")
eq(v.tagged, "12", "!!str"); eq(v.tagged_f, 3.0, "!!float"); eq(math.type(v.tagged_f), "float", "!!float type")
eq(v.plain, "hello world", "plain string"); eq(v.colon, "a: b", "quoted colon")
eq(math.type(v.big), "float", "int overflow -> float")
eq(v.ver, "1.2.3", "version string")
eq(yaml.decode(""), nil, "empty document")
eq(yaml.decode("~"), nil, "top-level null")
eq(yaml.decode("just text"), "just text", "top-level scalar")

-- collections, anchors
local c = yaml.decode("a: &x {k: [1, 2]}\nb: *x\ns: []\nm: {}\n", "c.yaml")
eq(c.a.k[2], 2, "flow seq in map"); eq(c.b, c.a, "alias is the same table")
eq(getmetatable(c.s), yaml.array_mt, "sequence marked"); eq(next(c.m), nil, "empty map")
eq(yaml.encode(c.s), "[]\n", "empty sequence round-trips as []")
eq(yaml.encode(c.m), "{}\n", "empty mapping as {}")

-- encode: sorted keys, quoting, block scalars, stable
local doc = {
  z = 1, a = "x", m = { "one", 2, true, yaml.null }, q = { "true", "1", "", "a: b", "0755", "~", "- x" },
  pem = "-----BEGIN X-----\nAAAA\n-----END X-----\n", f = 0.1, i = 3.0,
}
local text = yaml.encode(doc)
eq(text, [[
a: x
f: 0.1
i: 3.0
m:
- one
- 2
- true
- null
pem: |
  -----BEGIN X-----
  AAAA
  -----END X-----
q:
- 'true'
- '1'
- ''
- 'a: b'
- '0755'
- '~'
- '- x'
z: 1
]], "encode")
local back = yaml.decode(text, "back.yaml")
eq(back.pem, doc.pem, "literal block round trip")
for i, s in ipairs(doc.q) do eq(back.q[i], s, "quoted string round trip " .. i) end
eq(back.i, 3.0, "float stays float"); eq(math.type(back.i), "float", "float type round trip")
eq(yaml.encode(back), text, "encode(decode(encode(x))) is stable")
eq(yaml.encode({ [1] = "a", [2] = "b" }), "- a\n- b\n", "array detection")
eq(yaml.encode({ [1] = "a", [3] = "b" }), "1: a\n3: b\n", "sparse table is a mapping")

-- errors: name:line:col
fails(function() yaml.decode("a: 1\nb: c: d\n", "bad.yaml") end, "bad.yaml:2:5: mapping values are not allowed", "syntax")
fails(function() yaml.decode("a: 1\nb:\n  - x\n  y: 2\n", "bad.yaml") end, "bad.yaml:4:3:", "bad block")
fails(function() yaml.decode("k: 1\nk: 2\n", "dup.yaml") end, "dup.yaml:2:1: duplicate key 'k'", "duplicate key")
fails(function() yaml.decode("a: [1, 2\n", "f.yaml") end, "f.yaml:2:1: did not find expected ',' or ']'", "unclosed flow")
fails(function() yaml.decode("a: *nope\n", "al.yaml") end, "al.yaml:1:4: unknown anchor 'nope'", "unknown alias")
fails(function() yaml.decode("a: &r [1, *r]\n", "cy.yaml") end, "cy.yaml:1:11: unknown anchor 'r'", "self alias")
fails(function() yaml.decode("a\n---\nb\n", "m.yaml") end, "m.yaml:2:1: more than one YAML document", "two docs")
fails(function() yaml.decode("n: !!int abc\n", "t.yaml") end, "t.yaml:1:4: value is not a valid !!int", "bad !!int")
fails(function() yaml.decode("\t- x", "tab.yaml") end, "tab.yaml:1:1:", "tab indentation")
fails(function() yaml.decode(string.rep("[", 300), "deep.yaml") end, "deep.yaml:1:202: nested deeper than 200", "depth")
fails(function() yaml.encode({ f = print }) end, "yaml.encode: f: cannot encode a function", "function")
fails(function() yaml.encode({ a = { { x = coroutine.create(print) } } }) end, "yaml.encode: a.1.x: cannot encode a thread", "path in message")
local cyc = {}; cyc.self = cyc
fails(function() yaml.encode(cyc) end, "yaml.encode: self.self", "cycle")
fails(function() yaml.encode({ [true] = 1 }) end, "yaml.encode: mapping keys must be strings or numbers", "bool key")

-- base64
eq(yaml.base64_encode(""), "", "b64 empty")
eq(yaml.base64_encode("f"), "Zg==", "b64 1"); eq(yaml.base64_encode("fo"), "Zm8=", "b64 2")
eq(yaml.base64_encode("foo"), "Zm9v", "b64 3")
eq(yaml.base64_decode("Zm9vYmFy"), "foobar", "b64 decode"); eq(yaml.base64_decode("Zm9v\nYg=="), "foob", "b64 newline")
eq(yaml.base64_decode("Zm9"), nil, "b64 truncated"); eq(yaml.base64_decode("Zm9v!"), nil, "b64 bad char")
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all):rep(3)
for len = 0, 20 do eq(yaml.base64_decode(yaml.base64_encode(all:sub(1, len))), all:sub(1, len), "b64 round trip " .. len) end
eq(yaml.base64_decode(yaml.base64_encode(all)), all, "b64 all bytes")

print(string.format("test_yaml: %d checks passed", n))
