-- Test driver: one pki call configured from the environment, result on stdout.
-- PKI_OP=init_ca|issue|inspect|parallel, PKI_CSR, PKI_CA, PKI_CA_KEY, PKI_CONFIG,
-- PKI_PROFILE, PKI_DIR, PKI_NAME, PKI_RENEW_BEFORE (seconds), PKI_CERT.
local pki = require "kcm.pki"
local env = os.getenv
local op = env("PKI_OP") or "issue"

local function show(r)
  print("changed=" .. tostring(r.changed))
  if r.reason then print("reason=" .. r.reason) end
  if r.cert_path then print("cert_path=" .. r.cert_path) end
end

if op == "init_ca" then
  show(pki.init_ca { csr = env("PKI_CSR"), dir = env("PKI_DIR"), name = env("PKI_NAME") })
elseif op == "issue" then
  show(pki.issue {
    ca = env("PKI_CA"), ca_key = env("PKI_CA_KEY"), csr = env("PKI_CSR"), config = env("PKI_CONFIG"),
    profile = env("PKI_PROFILE"), dir = env("PKI_DIR"), name = env("PKI_NAME"),
    renew_before = tonumber(env("PKI_RENEW_BEFORE") or ""),
  })
elseif op == "parallel" then
  -- PKI_NAMES="a b c": one issue each, all at once
  local task = require "kcm.task"
  local fns = {}
  for name in env("PKI_NAMES"):gmatch("%S+") do
    fns[#fns + 1] = function()
      return pki.issue { ca = env("PKI_CA"), ca_key = env("PKI_CA_KEY"), csr = env("PKI_CSR"),
                         config = env("PKI_CONFIG"), profile = env("PKI_PROFILE"), dir = env("PKI_DIR"), name = name }
    end
  end
  for _, r in ipairs(task.parallel(fns)) do print(r.cert_path .. " changed=" .. tostring(r.changed)) end
elseif op == "inspect" then
  local i = pki.inspect(env("PKI_CERT"))
  print("cn=" .. tostring(i.cn))
  print("subject=" .. i.subject_text)
  print("issuer=" .. i.issuer_text)
  print("dns=" .. table.concat(i.sans.dns, ","))
  print("ip=" .. table.concat(i.sans.ip, ","))
  print("email=" .. table.concat(i.sans.email, ","))
  print("not_before=" .. i.not_before)
  print("not_after=" .. i.not_after)
  print("serial=" .. i.serial)
  print("is_ca=" .. tostring(i.is_ca))
  print("key=" .. i.key_type .. "-" .. i.key_bits)
  print("fingerprint=" .. i.fingerprint_sha256)
  print("usages=" .. table.concat(i.usages, ","))
  if env("PKI_CA") then print("verify=" .. tostring((pki.verify(env("PKI_CERT"), env("PKI_CA"))))) end
  if env("PKI_KEY") then print("key_matches=" .. tostring(pki.key_matches(env("PKI_CERT"), env("PKI_KEY")))) end
else
  error("unknown PKI_OP " .. op)
end
