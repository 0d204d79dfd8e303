#!/bin/bash
# The baseline: 04.部署etcd集群's own shell commands, in its order, against a
# kcmrun lab: cfssl gencert | cfssljson for etcd-csr.json, scp of the binaries
# and certificates in for-loops over NODE_IPS (OpenSSH, a new connection each
# time), the unit template filled by sed per node, `systemctl restart etcd &`
# on every node, then `systemctl status etcd | grep Active`, `etcdctl endpoint
# health` per endpoint and `etcdctl -w table endpoint status`.
#
#   bench/etcd/procedure.sh ENVIRONMENT_SH WORK_DIR
#
# Deviations, each needed on the lab: `scp -F`/`ssh -F` with the lab's
# ssh_config; the binaries come from Debian (/usr/bin/etcd, etcdctl); the CA
# is the lab's (ca_cert, ca_key, ca_config in environment.sh) and goes to
# /etc/etcd/cert with the etcd pair; the masked etcd.service (a symlink to
# /dev/null) is removed before the scp, which would otherwise write through
# it; `wait` for the backgrounded restarts before the checks; the binaries are
# copied under a temporary name and moved into place (scp over the running
# etcd fails with "Text file busy", so the guide's own rerun stops there).
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 ENVIRONMENT_SH WORK_DIR" >&2; exit 2; }
# shellcheck disable=SC1090
source "$1"
WORK=$2
SSHCFG=${KCMRUN_SSH_CONFIG:?environment.sh does not name the lab ssh_config}
export ETCDCTL_API=3
mkdir -p "$WORK"
cd "$WORK"

# 下载和分发 etcd 二进制文件
for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    ssh -F "$SSHCFG" root@${node_ip} "mkdir -p /opt/k8s/bin /etc/etcd/cert"
    scp -q -F "$SSHCFG" /usr/bin/etcd root@${node_ip}:/opt/k8s/bin/etcd.new
    scp -q -F "$SSHCFG" /usr/bin/etcdctl root@${node_ip}:/opt/k8s/bin/etcdctl.new
    ssh -F "$SSHCFG" root@${node_ip} "mv -f /opt/k8s/bin/etcd.new /opt/k8s/bin/etcd && mv -f /opt/k8s/bin/etcdctl.new /opt/k8s/bin/etcdctl && chmod +x /opt/k8s/bin/*"
  done

# 创建 etcd 证书和私钥
hosts=$(printf '    "%s",\n' 127.0.0.1 "${NODE_IPS[@]}" | sed '$ s/,$//')
cat > etcd-csr.json <<EOF
{
  "CN": "etcd",
  "hosts": [
$hosts
  ],
  "key": {
    "algo": "rsa",
    "size": 2048
  },
  "names": [
    {
      "C": "CN",
      "ST": "BeiJing",
      "L": "BeiJing",
      "O": "k8s",
      "OU": "4Paradigm"
    }
  ]
}
EOF
cfssl gencert -ca="${ca_cert}" -ca-key="${ca_key}" -config="${ca_config}" -profile=kubernetes etcd-csr.json 2>/dev/null | cfssljson -bare etcd

# 分发生成的证书和私钥到各 etcd 节点
for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    ssh -F "$SSHCFG" root@${node_ip} "mkdir -p /etc/etcd/cert"
    scp -q -F "$SSHCFG" etcd*.pem "${ca_cert}" root@${node_ip}:/etc/etcd/cert/
  done

# 创建 etcd 的 systemd unit 模板文件
cat > etcd.service.template <<EOF
[Unit]
Description=Etcd Server
After=network.target
After=network-online.target
Wants=network-online.target
Documentation=https://github.com/coreos

[Service]
Type=notify
WorkingDirectory=${ETCD_DATA_DIR}
ExecStart=/opt/k8s/bin/etcd \\
  --data-dir=${ETCD_DATA_DIR} \\
  --wal-dir=${ETCD_WAL_DIR} \\
  --name=##NODE_NAME## \\
  --cert-file=/etc/etcd/cert/etcd.pem \\
  --key-file=/etc/etcd/cert/etcd-key.pem \\
  --trusted-ca-file=/etc/etcd/cert/ca.pem \\
  --peer-cert-file=/etc/etcd/cert/etcd.pem \\
  --peer-key-file=/etc/etcd/cert/etcd-key.pem \\
  --peer-trusted-ca-file=/etc/etcd/cert/ca.pem \\
  --peer-client-cert-auth \\
  --client-cert-auth \\
  --listen-peer-urls=https://##NODE_IP##:2380 \\
  --initial-advertise-peer-urls=https://##NODE_IP##:2380 \\
  --listen-client-urls=https://##NODE_IP##:2379,http://127.0.0.1:2379 \\
  --advertise-client-urls=https://##NODE_IP##:2379 \\
  --initial-cluster-token=etcd-cluster-0 \\
  --initial-cluster=${ETCD_NODES} \\
  --initial-cluster-state=new \\
  --auto-compaction-mode=periodic \\
  --auto-compaction-retention=1 \\
  --max-request-bytes=33554432 \\
  --quota-backend-bytes=6442450944 \\
  --heartbeat-interval=250 \\
  --election-timeout=2000
Restart=on-failure
RestartSec=5
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
EOF

# 为各节点创建和分发 etcd systemd unit 文件
for (( i=0; i < ${#NODE_IPS[@]}; i++ ))
  do
    sed -e "s/##NODE_NAME##/${NODE_NAMES[i]}/" -e "s/##NODE_IP##/${NODE_IPS[i]}/" etcd.service.template > etcd-${NODE_IPS[i]}.service
  done
for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    ssh -F "$SSHCFG" root@${node_ip} "rm -f /etc/systemd/system/etcd.service"
    scp -q -F "$SSHCFG" etcd-${node_ip}.service root@${node_ip}:/etc/systemd/system/etcd.service
  done

# 启动 etcd 服务
for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    ssh -F "$SSHCFG" root@${node_ip} "mkdir -p ${ETCD_DATA_DIR} ${ETCD_WAL_DIR}"
    ssh -F "$SSHCFG" root@${node_ip} "systemctl daemon-reload && systemctl enable etcd && systemctl restart etcd " &
  done
wait

# 检查启动结果
for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    ssh -F "$SSHCFG" root@${node_ip} "systemctl status etcd|grep Active"
  done

# 验证服务状态
for node_ip in "${NODE_IPS[@]}"
  do
    echo ">>> ${node_ip}"
    etcdctl \
    --endpoints=https://${node_ip}:2379 \
    --cacert="${ca_cert}" \
    --cert=etcd.pem \
    --key=etcd-key.pem endpoint health
  done

# 查看当前的 leader
etcdctl \
  -w table --cacert="${ca_cert}" \
  --cert=etcd.pem \
  --key=etcd-key.pem \
  --endpoints=${ETCD_ENDPOINTS} endpoint status
