return {
  vars = { K8S_DIR = "/etc/kubernetes", CLUSTER_CIDR = "172.30.0.0/16" },
  ssh = { known_hosts = "/tmp/kh", identity = "/tmp/id", user = "root", connect_timeout = 5 },
  nodes = {
    { name = "node1", host = "169.254.77.101", port = 22, user = "root", vars = { role = "a" } },
    { name = "node2", host = "169.254.77.102", port = "2222" },
    "node3",
  },
  groups = { masters = { "node1", "node2", "node3" }, first = { "node1" } },
}
