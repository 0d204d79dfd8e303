-- cfssl-compatible PKI: the same *-csr.json and ca-config.json files, the
-- same certificate content, files named like `cfssljson -bare NAME`.
-- Key generation and signing are jobs, so many pki.issue calls under
-- task.parallel run at once.
local crypto = require "kcm.native.crypto"
local E = require "kcm.error"
local target = require "kcm.target"
local fs = require "kcm.native.fs"
local task = require "kcm.task"
local cjson = require "cjson"

local M = {}

M.RENEW_BEFORE = 30 * 24 * 3600

-- cfssl config.KeyUsage / config.ExtKeyUsage, names exactly as cfssl spells them
-- (including its "content committment"). KU values are Go x509.KeyUsage bits.
local KEY_USAGE = {
  ["signing"] = 1 << 0,
  ["digital signature"] = 1 << 0,
  ["content committment"] = 1 << 1,
  ["key encipherment"] = 1 << 2,
  ["data encipherment"] = 1 << 3,
  ["key agreement"] = 1 << 4,
  ["cert sign"] = 1 << 5,
  ["crl sign"] = 1 << 6,
  ["encipher only"] = 1 << 7,
  ["decipher only"] = 1 << 8,
}
local EXT_KEY_USAGE = {
  ["any"] = "2.5.29.37.0",
  ["server auth"] = "1.3.6.1.5.5.7.3.1",
  ["client auth"] = "1.3.6.1.5.5.7.3.2",
  ["code signing"] = "1.3.6.1.5.5.7.3.3",
  ["email protection"] = "1.3.6.1.5.5.7.3.4",
  ["s/mime"] = "1.3.6.1.5.5.7.3.4",
  ["ipsec end system"] = "1.3.6.1.5.5.7.3.5",
  ["ipsec tunnel"] = "1.3.6.1.5.5.7.3.6",
  ["ipsec user"] = "1.3.6.1.5.5.7.3.7",
  ["timestamping"] = "1.3.6.1.5.5.7.3.8",
  ["ocsp signing"] = "1.3.6.1.5.5.7.3.9",
  ["microsoft sgc"] = "1.3.6.1.4.1.311.10.3.3",
  ["netscape sgc"] = "2.16.840.1.113730.4.1",
}
M.KEY_USAGE, M.EXT_KEY_USAGE = KEY_USAGE, EXT_KEY_USAGE

local function fail(src, field, msg)
  if field then error(("pki: %s: %s: %s"):format(src, field, msg), 0) end
  error(("pki: %s: %s"):format(src, msg), 0)
end

-- fs.read's message already starts with the path; keep only the reason.
local function why(err, path)
  err = tostring(err)
  if err:sub(1, #path + 2) == path .. ": " then return err:sub(#path + 3) end
  return err
end

local function is_pem(s) return type(s) == "string" and s:find("-----BEGIN ", 1, true) ~= nil end

-- Go's time.ParseDuration, in seconds (cfssl expiry strings: "876000h", "1h30m", "90m").
local UNITS = { ns = 1e-9, us = 1e-6, ["µs"] = 1e-6, ["μs"] = 1e-6, ms = 1e-3, s = 1, m = 60, h = 3600 }
local MAX_DURATION = (math.maxinteger // 1000000000)   -- seconds
function M.parse_duration(s)
  if type(s) ~= "string" or s == "" then return nil, "empty duration" end
  local rest, sign = s, 1
  local c = rest:sub(1, 1)
  if c == "-" or c == "+" then
    if c == "-" then sign = -1 end
    rest = rest:sub(2)
  end
  if rest == "0" then return 0 end
  if rest == "" then return nil, ("invalid duration %q"):format(s) end
  local total = 0
  while rest ~= "" do
    local num, tail = rest:match("^(%d*%.?%d*)(.*)$")
    if num == "" or num == "." then return nil, ("invalid duration %q"):format(s) end
    local unit = tail:match("^[^%d%.]+")
    if not unit then return nil, ("missing unit in duration %q"):format(s) end
    if not UNITS[unit] then return nil, ("unknown unit %q in duration %q"):format(unit, s) end
    total = total + tonumber(num) * UNITS[unit]
    rest = tail:sub(#unit + 1)
  end
  -- Go keeps a Duration in int64 nanoseconds (about 292 years) and rejects
  -- more; past that a float would reach the certificate code (libFuzzer finding)
  if total > MAX_DURATION then return nil, ("invalid duration %q (more than 2562047h)"):format(s) end
  return sign * math.floor(total)
end

-- cjson reports "... at character N": turn N into line and column.
local function json_position(text, msg)
  local n = tonumber(msg:match("at character (%d+)"))
  if not n then return msg end
  local line, col = 1, 1
  for i = 1, math.min(n - 1, #text) do
    if text:sub(i, i) == "\n" then line, col = line + 1, 1 else col = col + 1 end
  end
  return ("malformed JSON at line %d, column %d: %s"):format(line, col, msg)
end

-- path_or_table -> decoded table, source label for messages
local function load_json(what, v)
  if type(v) == "table" then return v, "(" .. what .. " table)" end
  if type(v) ~= "string" then error(("pki: %s: expected a file path or a table, got %s"):format(what, type(v)), 0) end
  local text, err = fs.read(v)
  if not text then fail(v, nil, "cannot read: " .. why(err, v)) end
  local ok, res = pcall(cjson.decode, text)
  if not ok then fail(v, nil, json_position(text, tostring(res))) end
  if type(res) ~= "table" then fail(v, nil, "expected a JSON object") end
  return res, v
end

local function opt_string(src, t, k, field)
  local v = t[k]
  if v == nil or v == cjson.null then return nil end
  if type(v) ~= "string" then fail(src, field, "expected a string") end
  return v
end

local function opt_table(src, t, k, field)
  local v = t[k]
  if v == nil or v == cjson.null then return nil end
  if type(v) ~= "table" then fail(src, field, "expected an object or array") end
  return v
end

-- A value for an error message: quoted, control characters escaped, cut short.
local function shown(v)
  v = tostring(v)
  if #v > 80 then v = v:sub(1, 80) .. "..." end
  return (("%q"):format(v):gsub("\\\n", "\\n"))
end

-- Subject fields: printable text only (a NUL or a line break in a CN makes a
-- name that displays as something else).
local function check_name(src, field, v)
  local bad = v:find("[%c\127]")
  if bad then
    fail(src, field, ("%s holds a control character (byte 0x%02x at %d); names must be printable text")
         :format(shown(v), v:byte(bad), bad))
  end
  if #v > 1024 then fail(src, field, ("%s is %d bytes long (at most 1024)"):format(shown(v), #v)) end
end

-- A hosts entry: cfssl's classification (IP, e-mail, URI, else DNS name)
-- and what Go's x509 refuses, by the same C function the signer applies
-- (crypto_names.c): RFC 1123 DNS labels, no IP-looking names that are no
-- address, no IPv6 zones, URIs only spiffe:// and https://.
local function check_host(src, field, h)
  local kind, what, why = crypto.host_kind(h)
  if not kind then fail(src, field, ("%s %s %s"):format(what, shown(h), why)) end
  return kind
end

-- An integer field within [lo, hi]; JSON numbers like 2048.0 count, 1e308 does not.
local function int_field(src, field, v, lo, hi)
  if type(v) ~= "number" or v ~= v or v < lo or v > hi or v ~= math.floor(v) then
    fail(src, field, ("%s is not an integer between %d and %d"):format(
         type(v) == "number" and ("%.15g"):format(v) or shown(v), lo, hi))
  end
  return math.tointeger(v)
end

local function check_key(src, algo, size)
  if algo == "rsa" then
    if math.type(size) ~= "integer" or size < 2048 or size > 8192 then
      fail(src, "key.size", ("unsupported rsa key size %s (2048..8192, e.g. 2048, 3072, 4096)"):format(tostring(size)))
    end
  elseif algo == "ecdsa" then
    if size ~= 256 and size ~= 384 and size ~= 521 then
      fail(src, "key.size", ("unsupported ecdsa key size %s (256, 384 or 521)"):format(tostring(size)))
    end
  else
    fail(src, "key.algo", ("unknown key algorithm %q (rsa or ecdsa)"):format(tostring(algo)))
  end
end

--- pki.load_csr(path_or_table) -> request {CN, key={algo,size}, hosts, names,
--- ca={expiry=seconds, pathlen, pathlenzero}, subject (native form), source}
function M.load_csr(v)
  local t, src = load_json("csr", v)
  local req = { source = src }
  req.CN = opt_string(src, t, "CN", "CN") or ""
  check_name(src, "CN", req.CN)
  local key = opt_table(src, t, "key", "key")
  if key then
    -- cfssl reads size as a JSON number; 2048.0 is still 2048
    local size = key.size
    if type(size) == "number" and size == math.floor(size) and math.tointeger(size) then size = math.tointeger(size)
    elseif size ~= nil then
      fail(src, "key.size", ("%s is not a key size in bits (e.g. 2048 for rsa, 256 for ecdsa)"):format(
           type(size) == "number" and ("%.15g"):format(size) or shown(size)))
    end
    req.key = { algo = key.algo, size = size }
  else
    req.key = { algo = "ecdsa", size = 256 }   -- cfssl's default key request
  end
  check_key(src, req.key.algo, req.key.size)
  req.hosts = {}
  for i, h in ipairs(opt_table(src, t, "hosts", "hosts") or {}) do
    if type(h) ~= "string" or h == "" then fail(src, ("hosts[%d]"):format(i), "expected a non-empty string") end
    check_host(src, ("hosts[%d]"):format(i), h)
    req.hosts[i] = h
  end
  -- Go's subject order: C, ST, L, O, OU, CN; repeated types share one RDN
  local fields = { "C", "ST", "L", "O", "OU" }
  local acc = { C = {}, ST = {}, L = {}, O = {}, OU = {} }
  req.names = opt_table(src, t, "names", "names") or {}
  for i, n in ipairs(req.names) do
    if type(n) ~= "table" then fail(src, ("names[%d]"):format(i), "expected an object") end
    for _, f in ipairs(fields) do
      local s = opt_string(src, n, f, ("names[%d].%s"):format(i, f))
      if s and s ~= "" then
        check_name(src, ("names[%d].%s"):format(i, f), s)
        table.insert(acc[f], s)
      end
    end
  end
  req.subject = {}
  for _, f in ipairs(fields) do
    if #acc[f] > 0 then req.subject[#req.subject + 1] = { f, acc[f] } end
  end
  if req.CN ~= "" then req.subject[#req.subject + 1] = { "CN", { req.CN } } end
  local ca = opt_table(src, t, "ca", "ca")
  if ca then
    req.ca = {}
    local exp = opt_string(src, ca, "expiry", "ca.expiry")
    if exp and exp ~= "" then
      local secs, err = M.parse_duration(exp)
      if not secs then fail(src, "ca.expiry", "bad expiry: " .. err) end
      req.ca.expiry = secs
    end
    if ca.pathlen ~= nil and ca.pathlen ~= cjson.null then
      req.ca.pathlen = int_field(src, "ca.pathlen", ca.pathlen, 0, 2147483647)
    end
    req.ca.pathlenzero = ca.pathlenzero == true
  end
  return req
end

-- cfssl's config.DefaultConfig(), used when the config has no "default".
local function default_profile()
  return { usages = { "signing", "key encipherment", "server auth", "client auth" }, expiry_string = "8760h" }
end

local function load_profile(src, field, p)
  if type(p) ~= "table" then fail(src, field, "expected an object") end
  local prof = { usages = {}, ku = 0, eku = {} }
  for i, u in ipairs(opt_table(src, p, "usages", field .. ".usages") or {}) do
    local f = ("%s.usages[%d]"):format(field, i)
    if type(u) ~= "string" then fail(src, f, "expected a string") end
    if KEY_USAGE[u] then
      prof.ku = prof.ku | KEY_USAGE[u]
    elseif EXT_KEY_USAGE[u] then
      prof.eku[#prof.eku + 1] = EXT_KEY_USAGE[u]
    else
      fail(src, f, ("unknown usage %q"):format(u))
    end
    prof.usages[i] = u
  end
  local exp = p.expiry_string or opt_string(src, p, "expiry", field .. ".expiry")
  if not exp or exp == "" then fail(src, field .. ".expiry", "empty expiry string") end
  local secs, err = M.parse_duration(exp)
  if not secs then fail(src, field .. ".expiry", "bad expiry: " .. err) end
  if secs <= 0 then fail(src, field .. ".expiry", ("expiry %q is not positive"):format(exp)) end
  prof.expiry, prof.expiry_string = secs, exp
  local bd = opt_string(src, p, "backdate", field .. ".backdate")
  if bd and bd ~= "" then
    local b, berr = M.parse_duration(bd)
    if not b then fail(src, field .. ".backdate", "bad duration: " .. berr) end
    prof.backdate = b
  end
  local cc = opt_table(src, p, "ca_constraint", field .. ".ca_constraint")
  if cc then
    prof.is_ca = cc.is_ca == true
    prof.max_path_len = cc.max_path_len == nil and 0 or int_field(src, field .. ".ca_constraint.max_path_len",
                                                                  cc.max_path_len, 0, 2147483647)
    prof.max_path_len_zero = cc.max_path_len_zero == true
  end
  return prof
end

--- pki.load_config(path_or_table) -> {default=profile, profiles={name=profile}, source}
function M.load_config(v)
  local t, src = load_json("config", v)
  local signing = opt_table(src, t, "signing", "signing")
  if not signing then fail(src, "signing", "missing") end
  local cfg = { source = src, profiles = {} }
  local d = opt_table(src, signing, "default", "signing.default")
  cfg.default = load_profile(src, "signing.default", d or default_profile())
  for name, p in pairs(opt_table(src, signing, "profiles", "signing.profiles") or {}) do
    cfg.profiles[name] = load_profile(src, "signing.profiles." .. tostring(name), p)
  end
  return cfg
end

local function pick_profile(cfg, name)
  local prof
  if name == nil or name == "" or name == "default" then
    prof = cfg.profiles.default or cfg.default
  else
    prof = cfg.profiles[name]
    if not prof then
      local names = {}
      for k in pairs(cfg.profiles) do names[#names + 1] = k end
      table.sort(names)
      fail(cfg.source, "signing.profiles", ("unknown profile %q (have: %s)"):format(name, table.concat(names, ", ")))
    end
  end
  if prof.ku == 0 and #prof.eku == 0 then
    fail(cfg.source, "profile " .. tostring(name or "default"), "no key usages")
  end
  return prof
end

-- cfssl: now rounded to the minute (half up, like Go's Round), minus the backdate
local function validity(expiry, backdate)
  local now = os.time()
  local nb = (now + 30) // 60 * 60 - (backdate or 300)
  return nb, nb + expiry
end

local function join(dir, file)
  if dir == nil or dir == "" or dir == "." then return file end
  return (dir:gsub("/+$", "")) .. "/" .. file
end

local octal = require("kcm.mode").format

-- Makes sure `dir` exists and a file can be created in it.
local function ensure_dir(dir)
  dir = (dir == nil or dir == "") and "." or dir
  local st = fs.stat(dir)
  if st and st.type ~= "dir" and st.type ~= "link" then error(("pki: output folder %s is not a directory"):format(dir), 0) end
  if not st then
    local ok, err = fs.mkdir(dir, tonumber("755", 8))
    if ok == nil then error(("pki: output folder %s cannot be created: %s"):format(dir, tostring(err)), 0) end
  end
  local probe = join(dir, ".kcm-pki-probe")
  local ok, err = fs.write(probe, "", { mode = tonumber("600", 8) })
  if ok == nil then error(("pki: output folder %s is not writable: %s"):format(dir, tostring(err)), 0) end
  fs.remove(probe)
end

local function write(path, data, mode)
  local res, err = fs.write(path, data, { mode = tonumber(mode, 8) })
  if res == nil then error(("pki: cannot write %s: %s"):format(path, tostring(err)), 0) end
  return res
end

-- CA material: a path or PEM text for each; warns about a world-readable key.
local function load_ca(ca, ca_key)
  local cert_src, cert_pem = "CA certificate", ca
  if type(ca) ~= "string" then error("pki: ca: expected a path or PEM text", 0) end
  if not is_pem(ca) then
    cert_src = ca
    local err
    cert_pem, err = fs.read(ca)
    if not cert_pem then error(("pki: CA certificate %s: cannot read: %s"):format(ca, why(err, ca)), 0) end
  end
  local cert = crypto.parse_cert(cert_pem)
  if not cert then error(("pki: CA certificate %s: not a PEM certificate"):format(cert_src), 0) end
  if type(ca_key) ~= "string" then error("pki: ca_key: expected a path or PEM text", 0) end
  local key_src, key = "CA key", nil
  if not is_pem(ca_key) then
    key_src = ca_key
    local st = fs.stat(ca_key)
    if not st then error(("pki: CA key %s: cannot read: %s"):format(ca_key, why("No such file or directory", ca_key)), 0) end
    -- read natively into a wiped buffer: the CA key text never becomes a Lua string
    local err
    key, err = crypto.load_key_file(ca_key)
    if not key and err ~= "not a PEM private key" then
      error(("pki: CA key %s: cannot read: %s"):format(ca_key, why(err, ca_key)), 0)
    end
    if st.mode & 4 ~= 0 then
      task.warn(("pki: CA key %s is world-readable (mode %s); chmod 600 it"):format(ca_key, octal(st.mode & 4095)))
    end
  else
    key = crypto.load_key(ca_key)
  end
  if not key then error(("pki: CA key %s: not a PEM private key"):format(key_src), 0) end
  if not cert:matches_key(key) then
    error(("pki: CA key %s does not match CA certificate %s"):format(key_src, cert_src), 0)
  end
  return cert, key, cert_pem
end

local function same_list(a, b, sorted)
  if #a ~= #b then return false end
  if sorted then
    a, b = { table.unpack(a) }, { table.unpack(b) }
    table.sort(a)
    table.sort(b)
  end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function flat_subject(subject)
  local out = {}
  for _, e in ipairs(subject) do
    for _, v in ipairs(e[2]) do out[#out + 1] = e[1] .. "=" .. v end
  end
  return out
end

local function info_subject(list)
  local out = {}
  for _, e in ipairs(list) do out[#out + 1] = e[1] .. "=" .. e[2] end
  return out
end

-- Why an existing cert/key pair does not satisfy the request (nil: it does),
-- in the words an operator checks: "key mismatch", "CA changed", "SAN
-- 10.0.0.4 missing", "expires in 12 days".
local function stale_reason(cert, key, want)
  local info = cert:info()
  if not cert:matches_key(key) then return "key mismatch" end
  local k = info.key
  local want_bits = want.key.size
  if k.type ~= want.key.algo or (k.type == "rsa" and k.bits ~= want_bits)
     or (k.type == "ecdsa" and k.bits ~= want_bits) then
    return ("key is %s-%d, want %s-%d"):format(k.type, k.bits, want.key.algo, want_bits)
  end
  if want.ca_cert then
    local ok, why = cert:verify(want.ca_cert)
    if not ok then return "CA changed (not valid under the CA: " .. tostring(why) .. ")" end
  end
  if not same_list(info_subject(info.subject), flat_subject(want.subject)) then return "subject changed" end
  local sans = crypto.hosts_sans(want.hosts)
  if want.drop_dns then sans.dns, sans.email = {}, {} end
  for _, kind in ipairs { "dns", "email", "ip", "uri" } do
    local have, need = {}, {}
    for _, v in ipairs(info.sans[kind] or {}) do have[v] = true end
    for _, v in ipairs(sans[kind] or {}) do
      need[v] = true
      if not have[v] then return ("SAN %s missing"):format(v) end
    end
    for _, v in ipairs(info.sans[kind] or {}) do
      if not need[v] then return ("SAN %s no longer wanted"):format(v) end
    end
  end
  if info.ku ~= want.ku or not same_list(info.eku, want.eku, true) then return "usages changed" end
  if info.is_ca ~= (want.is_ca or false) then return "CA flag changed" end
  local left = info.not_after - os.time()
  if left <= want.renew_before then
    return ("expires in %d days (renewed %d days ahead)"):format(left // 86400, want.renew_before // 86400)
  end
  return nil
end

local function name_from_csr(csr)
  if type(csr) == "string" then
    local base = csr:match("([^/]+)$")
    return (base:gsub("%-csr%.json$", ""):gsub("%.json$", ""))
  end
  return nil
end

local function paths(dir, name)
  return join(dir, name .. ".pem"), join(dir, name .. "-key.pem"), join(dir, name .. ".csr")
end

-- Shared by issue and init_ca: keep the existing pair or make a new one.
local function produce(o, want, sign_args)
  local cert_path, key_path, csr_path = paths(o.dir, o.name)
  local res = { cert_path = cert_path, key_path = key_path, csr_path = csr_path, changed = false }

  -- res.key (the key's PEM text) is made only when a caller asks for it: the
  -- key itself goes from the native handle to disk and back.
  setmetatable(res, { __index = function(t, k)
    if k == "key" then return fs.read(key_path) end   -- read-only: --check too
  end })
  local reason = "no certificate yet"
  local cert_pem = fs.read(cert_path)
  local key_exists = fs.exists(key_path)
  if cert_pem and key_exists then
    local cert, key = crypto.parse_cert(cert_pem), crypto.load_key_file(key_path)
    if not cert then reason = cert_path .. " is not a certificate"
    elseif not key then reason = key_path .. " is not a private key"
    else
      reason = stale_reason(cert, key, want)
      if not reason then
        -- keep the pair; still repair the key file's mode and a missing CSR
        res.pem, res.info = cert_pem, cert:info()
        local st = fs.stat(key_path)
        if st and st.mode & 4095 ~= tonumber("600", 8) then
          res.changed = target.change("pki: chmod 0600 " .. key_path, function()
            E.check({ op = "chmod", path = key_path }, key:write_pem(key_path, tonumber("600", 8)))
          end)
        end
        res.csr = fs.read(csr_path)
        if not res.csr then
          res.changed = target.change("pki: write " .. csr_path, function()
            res.csr = crypto.make_csr(key, want.subject, want.hosts, want.csr_opts)
            write(csr_path, res.csr, "644")
          end)
        end
        return res
      end
    end
  elseif cert_pem or key_exists then
    reason = (cert_pem and key_path or cert_path) .. " is missing"
  end

  -- A pair already on the nodes that satisfies the request is adopted: the
  -- nodes are the truth, this work folder only a cache (a second laptop, a
  -- lost folder). Nothing on the nodes changes, so it is no change.
  for _, c in ipairs(o.adopt and o.adopt() or {}) do
    local cert, key = crypto.parse_cert(c.pem or ""), c.key and crypto.load_key(c.key)
    if cert and key and not stale_reason(cert, key, want) then
      res.pem, res.info, res.adopted = c.pem, cert:info(), c.from
      res.csr = crypto.make_csr(key, want.subject, want.hosts, want.csr_opts)
      rawset(res, "key", c.key)
      task.log(("pki: adopted %s's certificate of %s (%s) into %s; was: %s"):format(c.from, o.name,
               "valid under the CA, its hosts, subject and key", o.dir, reason))
      if not task.check() then
        ensure_dir(o.dir)
        E.check({ op = "write", path = key_path }, key:write_pem(key_path, tonumber("600", 8)))
        write(csr_path, res.csr, "644")
        write(cert_path, c.pem, "644")
      end
      return res
    end
  end

  res.changed, res.reason = true, reason
  target.change(("pki: issue %s (%s)"):format(cert_path, reason), function()
    ensure_dir(o.dir)
    local key = E.ok(crypto.generate_key(want.key.algo, want.key.size))
    local csr = crypto.make_csr(key, want.subject, want.hosts, want.csr_opts)
    sign_args.csr = csr
    if not sign_args.ca_key then sign_args.ca_key = key end
    local pem = E.ok(crypto.sign(sign_args))
    -- key first: an interrupted run leaves a cert that no longer matches, so it is redone
    local ok, werr = key:write_pem(key_path, tonumber("600", 8))
    if not ok then error(("pki: cannot write %s: %s"):format(key_path, tostring(werr)), 0) end
    write(csr_path, csr, "644")
    write(cert_path, pem, "644")
    res.pem, res.csr = pem, csr
    res.info = crypto.parse_cert(pem):info()
  end)
  return res
end

--- pki.issue{ca=, ca_key=, csr=, config=, profile=, dir=, name=, renew_before=, adopt=}
--- -> {pem, key, csr, cert_path, key_path, csr_path, changed, reason, info, adopted}
--- adopt(): {{pem=, key=, from=}, ...}, pairs already installed somewhere
--- (the nodes): when the work folder has no good pair, the first that
--- satisfies the request is taken instead of issuing a new one.
function M.issue(o)
  if type(o) ~= "table" then error("pki.issue: expected a table of options", 2) end
  local req = M.load_csr(o.csr)
  local cfg = M.load_config(o.config or { signing = {} })
  local prof = pick_profile(cfg, o.profile)
  if not o.ca then error("pki.issue: ca is required", 2) end
  if not o.ca_key then error("pki.issue: ca_key is required", 2) end
  local name = o.name or name_from_csr(o.csr)
  if not name or name == "" then error("pki.issue: name is required when csr is a table", 2) end
  if task.check() and not is_pem(o.ca) and not fs.exists(o.ca) then
    -- in --check the CA may be one an earlier step would have created
    local cert_path, key_path, csr_path = paths(o.dir, name)
    task.changed(("pki: issue %s (CA %s does not exist yet)"):format(cert_path, o.ca))
    return { changed = true, reason = "CA does not exist yet", cert_path = cert_path, key_path = key_path, csr_path = csr_path }
  end
  local ca_cert, ca_key = load_ca(o.ca, o.ca_key)
  local nb, na = validity(prof.expiry, prof.backdate)
  local want = {
    key = req.key, subject = req.subject, hosts = req.hosts, ca_cert = ca_cert,
    ku = prof.ku, eku = prof.eku, is_ca = prof.is_ca, drop_dns = prof.is_ca,
    renew_before = o.renew_before or M.RENEW_BEFORE,
  }
  return produce({ dir = o.dir, name = name, adopt = o.adopt }, want, {
    ca_cert = ca_cert, ca_key = ca_key, hosts = req.hosts, ku = prof.ku, eku = prof.eku,
    is_ca = prof.is_ca, max_path_len = prof.max_path_len, max_path_len_zero = prof.max_path_len_zero,
    not_before = nb, not_after = na,
  })
end

--- pki.init_ca{csr=, dir=, name="ca", renew_before=} like `cfssl gencert -initca`.
--- An existing CA is kept (never silently replaced); a warning when it nears expiry.
function M.init_ca(o)
  if type(o) ~= "table" then error("pki.init_ca: expected a table of options", 2) end
  local req = M.load_csr(o.csr)
  local ca = req.ca or {}
  local expiry = ca.expiry or 43800 * 3600   -- cfssl's CAPolicy default (5 years)
  local nb, na = validity(expiry)
  local name = o.name or name_from_csr(o.csr) or "ca"
  local want = {
    key = req.key, subject = req.subject, hosts = req.hosts, ku = KEY_USAGE["cert sign"] | KEY_USAGE["crl sign"],
    eku = {}, is_ca = true, drop_dns = true, renew_before = -math.huge,
    -- cfssl marks the request itself as a CA only when the CSR JSON has "ca"
    csr_opts = { ca = req.ca ~= nil, max_path_len = ca.pathlen, max_path_len_zero = ca.pathlenzero },
  }
  local res = produce({ dir = o.dir, name = name }, want, {
    hosts = req.hosts, ku = want.ku, eku = {}, is_ca = true,
    max_path_len = ca.pathlen, max_path_len_zero = ca.pathlenzero, not_before = nb, not_after = na,
  })
  if res.info and res.info.not_after - os.time() < (o.renew_before or M.RENEW_BEFORE) then
    task.warn(("pki: CA %s expires %s; replace it deliberately"):format(res.cert_path,
      os.date("!%Y-%m-%d", res.info.not_after)))
  end
  res.cert = res.pem
  return res
end

local function cert_of(v, what)
  if type(v) == "userdata" then return v end
  local pem = v
  if type(v) == "string" and not is_pem(v) then
    local err
    pem, err = fs.read(v)
    if not pem then error(("pki: %s %s: cannot read: %s"):format(what, v, why(err, v)), 0) end
  end
  local c = type(pem) == "string" and crypto.parse_cert(pem)
  if not c then error(("pki: %s: not a PEM certificate"):format(what), 0) end
  return c
end

local function key_of(v)
  local pem = v
  if type(v) == "string" and not is_pem(v) then
    local err
    pem, err = fs.read(v)
    if not pem then error(("pki: key %s: cannot read: %s"):format(v, why(err, v)), 0) end
  end
  local k = type(pem) == "string" and crypto.load_key(pem)
  if not k then error("pki: key: not a PEM private key", 0) end
  return k
end

--- pki.inspect(pem_or_path) -> {subject, subject_text, cn, issuer, issuer_text,
--- sans={dns,email,ip}, not_before, not_after, serial, is_ca, key={type,bits,curve},
--- key_type, key_bits, fingerprint_sha256, ski, aki, ku, eku, usages}
function M.inspect(v)
  local info = cert_of(v, "certificate"):info()
  for _, e in ipairs(info.subject) do if e[1] == "CN" then info.cn = e[2] end end
  info.key_type, info.key_bits = info.key and info.key.type, info.key and info.key.bits
  local usages = {}
  for _, u in ipairs { "digital signature", "content committment", "key encipherment", "data encipherment",
                       "key agreement", "cert sign", "crl sign", "encipher only", "decipher only" } do
    if info.ku & KEY_USAGE[u] ~= 0 then usages[#usages + 1] = u end
  end
  local by_oid = {}
  for n, oid in pairs(EXT_KEY_USAGE) do
    if n ~= "s/mime" then by_oid[oid] = n end
  end
  for _, oid in ipairs(info.eku) do usages[#usages + 1] = by_oid[oid] or oid end
  info.usages = usages
  return info
end

--- pki.verify(cert, ca) -> true | false, reason (PEM text, path or handle each)
function M.verify(cert, ca)
  return cert_of(cert, "certificate"):verify(cert_of(ca, "CA certificate"))
end

--- pki.key_matches(cert, key) -> bool
function M.key_matches(cert, key)
  return cert_of(cert, "certificate"):matches_key(key_of(key))
end

return M
