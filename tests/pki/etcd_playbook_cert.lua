-- Runs the certificate step of playbooks/etcd.lua on the control machine for
-- three members 169.254.77.101-103 (the guide's etcd-csr.json, fixtures/),
-- issuing into PKI_DIR with the CA PKI_CA/PKI_CA_KEY and PKI_CONFIG.
-- Run: kcmrun etcd_playbook_cert.lua (env PKI_PLAYBOOK, PKI_DIR, PKI_CA, PKI_CA_KEY, PKI_CONFIG)
local play = dofile(assert(os.getenv("PKI_PLAYBOOK"), "PKI_PLAYBOOK"))
local by_name, names = {}, {}
for i = 1, 3 do
  by_name["node" .. i] = { name = "node" .. i, host = "169.254.77." .. (100 + i) }
  names[i] = "node" .. i
end
local ctx = {
  vars = { ca_cert = os.getenv("PKI_CA"), ca_key = os.getenv("PKI_CA_KEY"), ca_config = os.getenv("PKI_CONFIG"),
           work_dir = os.getenv("PKI_DIR") },
  play = play, by_name = by_name,
  -- a --limit to node1 must not shrink the certificate's hosts
  nodes = { by_name.node1 },
  inventory = { file = "(test)", groups = { etcd = names } },
}
function ctx.hosts() return { by_name.node1 } end
play.by_name.certificate.prepare(ctx)
print("issued " .. ctx.etcd.cert.cert_path)
