#!/bin/bash
# The baseline: shared/seed/kube-controller-manager-ha.md's own shell commands, in
# its order, against a kcmrun lab. What the procedure does, this does, the same way:
# cfssl gencert | cfssljson, the four `kubectl config` calls, the unit heredoc, one
# scp/ssh per file or command per node in for-loops over NODE_IPS (OpenSSH, a new
# connection each time), kubectl create clusterrolebinding, systemctl over ssh and
# the `systemctl status | grep Active` check.
#
#   bench/baseline/procedure.sh ENVIRONMENT_SH WORK_DIR
#
# ENVIRONMENT_SH: the lab's environment.sh (NODE_IPS, KUBE_APISERVER, K8S_DIR,
# SERVICE_CIDR, plus the lab's ca_cert/ca_key/ca_config/admin_kubeconfig/kcm_binary
# and KCMRUN_SSH_CONFIG). WORK_DIR plays /opt/k8s/work (made if missing).
#
# Deviations from the text, each needed for the commands to work on the lab:
# - `scp -F`/`ssh -F` with the lab's ssh_config (its key and known_hosts);
# - the CA pair goes to /etc/kubernetes/cert in the same scp as the component's
#   pair (the procedure's earlier chapters put it there), and the 准备工作 of
#   06-1 is done here: mkdir of /etc/kubernetes/cert and /opt/k8s/bin and the
#   binary copy, one ssh + one scp per node;
# - the unit's flags follow the lab's stand-in (v1.28) the way kcmrun's template
#   does: no --port (gone in 1.24), no --horizontal-pod-autoscaler-use-rest-clients
#   (gone in 1.24), --cluster-signing-duration instead of the experimental one,
#   secure port 10257, no --logtostderr (gone in 1.26), --bind-address = the
#   node's IP; so the heredoc runs once per node;
# - kubectl create clusterrolebinding tolerates AlreadyExists (a rerun).
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 ENVIRONMENT_SH WORK_DIR" >&2; exit 2; }
# shellcheck disable=SC1090
source "$1"
WORK=$2
SSHCFG=${KCMRUN_SSH_CONFIG:?environment.sh does not name the lab ssh_config}
mkdir -p "$WORK"
cd "$WORK"

# 准备工作 (06-1): directories and the binary on every master
for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    ssh -F "$SSHCFG" root@${node_ip} "mkdir -p /etc/kubernetes/cert /opt/k8s/bin"
    scp -F "$SSHCFG" "${kcm_binary}" root@${node_ip}:/opt/k8s/bin/kube-controller-manager
  done

# 创建 kube-controller-manager 证书和私钥
hosts=$(printf '      "%s",\n' 127.0.0.1 "${NODE_IPS[@]}" | sed '$ s/,$//')
cat > kube-controller-manager-csr.json <<EOF
{
    "CN": "system:kube-controller-manager",
    "key": {
        "algo": "rsa",
        "size": 2048
    },
    "hosts": [
${hosts}
    ],
    "names": [
      {
        "C": "CN",
        "ST": "BeiJing",
        "L": "BeiJing",
        "O": "system:kube-controller-manager",
        "OU": "4Paradigm"
      }
    ]
}
EOF
cfssl gencert -ca="${ca_cert}" \
  -ca-key="${ca_key}" \
  -config="${ca_config}" \
  -profile=kubernetes kube-controller-manager-csr.json 2>/dev/null | cfssljson -bare kube-controller-manager
ls kube-controller-manager*pem
cp "${ca_cert}" ca.pem
cp "${ca_key}" ca-key.pem

for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    scp -F "$SSHCFG" kube-controller-manager*.pem ca.pem ca-key.pem root@${node_ip}:/etc/kubernetes/cert/
  done

# 创建和分发 kubeconfig 文件
kubectl config set-cluster kubernetes \
  --certificate-authority="${ca_cert}" \
  --embed-certs=true \
  --server=${KUBE_APISERVER} \
  --kubeconfig=kube-controller-manager.kubeconfig

kubectl config set-credentials system:kube-controller-manager \
  --client-certificate=kube-controller-manager.pem \
  --client-key=kube-controller-manager-key.pem \
  --embed-certs=true \
  --kubeconfig=kube-controller-manager.kubeconfig

kubectl config set-context system:kube-controller-manager \
  --cluster=kubernetes \
  --user=system:kube-controller-manager \
  --kubeconfig=kube-controller-manager.kubeconfig

kubectl config use-context system:kube-controller-manager --kubeconfig=kube-controller-manager.kubeconfig

for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    scp -F "$SSHCFG" kube-controller-manager.kubeconfig root@${node_ip}:/etc/kubernetes/
  done

# 创建和分发 kube-controller-manager systemd unit 文件 (per node: --bind-address)
for node_ip in "${NODE_IPS[@]}"
  do
cat > kube-controller-manager.service <<EOF
[Unit]
Description=Kubernetes Controller Manager
Documentation=https://github.com/GoogleCloudPlatform/kubernetes

[Service]
WorkingDirectory=${K8S_DIR}/kube-controller-manager
ExecStart=/opt/k8s/bin/kube-controller-manager \\
  --secure-port=10257 \\
  --bind-address=${node_ip} \\
  --kubeconfig=/etc/kubernetes/kube-controller-manager.kubeconfig \\
  --authentication-kubeconfig=/etc/kubernetes/kube-controller-manager.kubeconfig \\
  --authorization-kubeconfig=/etc/kubernetes/kube-controller-manager.kubeconfig \\
  --service-cluster-ip-range=${SERVICE_CIDR} \\
  --cluster-name=kubernetes \\
  --cluster-signing-cert-file=/etc/kubernetes/cert/ca.pem \\
  --cluster-signing-key-file=/etc/kubernetes/cert/ca-key.pem \\
  --cluster-signing-duration=8760h \\
  --root-ca-file=/etc/kubernetes/cert/ca.pem \\
  --service-account-private-key-file=/etc/kubernetes/cert/ca-key.pem \\
  --leader-elect=true \\
  --controllers=*,bootstrapsigner,tokencleaner \\
  --horizontal-pod-autoscaler-sync-period=10s \\
  --tls-cert-file=/etc/kubernetes/cert/kube-controller-manager.pem \\
  --tls-private-key-file=/etc/kubernetes/cert/kube-controller-manager-key.pem \\
  --use-service-account-credentials=true \\
  --kube-api-qps=1000 \\
  --kube-api-burst=2000 \\
  --v=2
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF
    echo ">>> ${node_ip}"
    scp -F "$SSHCFG" kube-controller-manager.service root@${node_ip}:/etc/systemd/system/
  done

# kube-controller-manager 的权限
out=$(kubectl --kubeconfig="${admin_kubeconfig}" create clusterrolebinding controller-manager:system:auth-delegator \
        --user system:kube-controller-manager --clusterrole system:auth-delegator 2>&1) ||
  case $out in *AlreadyExists*|*"already exists"*) ;; *) echo "$out" >&2; exit 1 ;; esac
echo "$out"

# 启动 kube-controller-manager 服务
for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    ssh -F "$SSHCFG" root@${node_ip} "mkdir -p ${K8S_DIR}/kube-controller-manager"
    ssh -F "$SSHCFG" root@${node_ip} "systemctl daemon-reload && systemctl enable kube-controller-manager && systemctl restart kube-controller-manager"
  done

# 检查服务运行状态
for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    ssh -F "$SSHCFG" root@${node_ip} "systemctl status kube-controller-manager|grep Active"
  done
