#!/bin/bash
# The kube-controller-manager stand-in on the lab's nodes under their real systemd,
# installed like the real binary, against the lab's apiserver stand-in:
#   three instances -> exactly one leader (leader() and each node's metrics agree);
#   stopping the leader keeps the lease until it expires, then another node takes it;
#   a removed flag (--port on 1.28) and a wrong CA fail the unit, the journal says why;
#   /metrics: 500 with the SubjectAccessReview error before the auth-delegator binding,
#   200 with leader_election_master_status after it, 403 Status for the anonymous user.
# Everything it makes has its own names (unit kcmtest*, lease kcm-lab-test, user kcmtest,
# port 10357), so it can share the lab with the playbook tests.
# Environment: KCMRUN, KCMRUN_LAB_DIR (the fixture's lab, up).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${KCMRUN:?}"
eval "$("$KCMRUN" lab env)"
: "${KCMRUN_LAB_KUBE_APISERVER:?the lab has no cluster stand-ins}"
SSHC=(ssh -F "$KCMRUN_LAB_SSH_CONFIG" -o BatchMode=yes)
on() { local n=$1; shift; "${SSHC[@]}" "$n" "$@"; }
NODES=($KCMRUN_LAB_NODES)
IPS=($KCMRUN_LAB_NODE_IPS)
PORT=10357
LEASE=kcm-lab-test
API=$KCMRUN_LAB_KUBE_APISERVER
T=$(mktemp -d /tmp/kcm-lab-standins.XXXXXX)
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then echo "ok: $what"; else fail "$what"; fi; }
C() { curl -s --noproxy '*' --max-time 10 --cacert "$KCMRUN_LAB_CA_CERT" "$@"; }
ADMIN=(--cert "$KCMRUN_LAB_ADMIN_CERT" --key "$KCMRUN_LAB_ADMIN_KEY")
api() { # METHOD PATH [JSON]
  if [ $# -ge 3 ]; then C "${ADMIN[@]}" -X "$1" -H 'Content-Type: application/json' -d "$3" -o /dev/null -w '%{http_code}' "$API$2"
  else C "${ADMIN[@]}" -X "$1" -o /dev/null -w '%{http_code}' "$API$2"; fi
}
leader() { ADMIN_KUBECONFIG=$KCMRUN_LAB_ADMIN_KUBECONFIG LEASE=$LEASE "$KCMRUN" "$HERE/leader.lua"; }
node_of() { echo "${1%%_*}"; }

cleanup() {
  for n in "${NODES[@]}"; do
    on "$n" 'systemctl stop kcmtest kcmtest-bad kcmtest-badca 2>/dev/null; rm -rf /etc/systemd/system/kcmtest*.service /opt/kcmtest /etc/kcmtest; systemctl daemon-reload; systemctl reset-failed 2>/dev/null' || true
  done
  api DELETE /apis/coordination.k8s.io/v1/namespaces/kube-system/leases/$LEASE >/dev/null
  api DELETE /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kcmtest:auth-delegator >/dev/null
  api DELETE /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kcmtest:work >/dev/null
  api DELETE /apis/rbac.authorization.k8s.io/v1/clusterroles/kcmtest:work >/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
cleanup; mkdir -p "$T"

# --- identity for the test's kcm: CN=O=kcmtest, hosts = 127.0.0.1 + every node, by the lab CA
sans="IP:127.0.0.1"; for ip in "${IPS[@]}"; do sans="$sans,IP:$ip"; done
openssl req -new -newkey rsa:2048 -nodes -keyout "$T/kcm-key.pem" -subj "/O=kcmtest/CN=kcmtest" -out "$T/kcm.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=%s\n' "$sans" >"$T/ext"
openssl x509 -req -in "$T/kcm.csr" -CA "$KCMRUN_LAB_CA_CERT" -CAkey "$KCMRUN_LAB_CA_KEY" -set_serial "0x$(openssl rand -hex 8)" \
  -days 2 -extfile "$T/ext" -out "$T/kcm.pem" 2>/dev/null
kubeconfig() { # CA_FILE
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority-data: $(base64 -w0 "$1"), server: "$API"}
  name: kubernetes
users:
- name: kcmtest
  user: {client-certificate-data: $(base64 -w0 "$T/kcm.pem"), client-key-data: $(base64 -w0 "$T/kcm-key.pem")}
contexts:
- context: {cluster: kubernetes, user: kcmtest}
  name: kcmtest
current-context: kcmtest
KC
}
kubeconfig "$KCMRUN_LAB_CA_CERT" >"$T/kcm.kubeconfig"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/other-key.pem" -out "$T/other.pem" -days 2 -subj /CN=other 2>/dev/null
kubeconfig "$T/other.pem" >"$T/badca.kubeconfig"
# what the bootstrap roles give system:kube-controller-manager, for our own lease name
check "clusterrole for the test user" [ "$(api POST /apis/rbac.authorization.k8s.io/v1/clusterroles '{"metadata":{"name":"kcmtest:work"},"rules":[{"apiGroups":["coordination.k8s.io"],"resources":["leases"],"verbs":["get","create","update"]},{"apiGroups":[""],"resources":["configmaps"],"verbs":["get"]}]}')" = 201 ]
check "its binding" [ "$(api POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings '{"metadata":{"name":"kcmtest:work"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"kcmtest:work"},"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"kcmtest"}]}')" = 201 ]

unit() { # NAME KUBECONFIG EXTRA_FLAGS
  cat <<U
[Unit]
Description=kcmrun lab test: kube-controller-manager stand-in
[Service]
WorkingDirectory=/var/lib/kcmtest
ExecStart=/opt/kcmtest/bin/kube-controller-manager \\
  --secure-port=$PORT \\
  --bind-address=0.0.0.0 \\
  --kubeconfig=$2 \\
  --authentication-kubeconfig=$2 \\
  --authorization-kubeconfig=$2 \\
  --cluster-name=kubernetes \\
  --cluster-signing-duration=876000h \\
  --leader-elect=true \\
  --leader-elect-resource-name=$LEASE \\
  --leader-elect-lease-duration=6s \\
  --leader-elect-renew-deadline=4s \\
  --leader-elect-retry-period=1s \\
  --controllers=*,bootstrapsigner,tokencleaner \\
  --tls-cert-file=/etc/kcmtest/kcm.pem \\
  --tls-private-key-file=/etc/kcmtest/kcm-key.pem \\
  --use-service-account-credentials=true \\
  --v=2 $3
$( [ "$1" = kcmtest ] && printf 'Restart=on-failure\nRestartSec=2\n' )
[Install]
WantedBy=multi-user.target
U
}
unit kcmtest /etc/kcmtest/kcm.kubeconfig "" >"$T/kcmtest.service"
unit kcmtest-bad /etc/kcmtest/kcm.kubeconfig '\
  --port=0' >"$T/kcmtest-bad.service"
unit kcmtest-badca /etc/kcmtest/badca.kubeconfig '\
  --secure-port=0' >"$T/kcmtest-badca.service"

install_node() {
  local n=$1
  on "$n" 'mkdir -p /opt/kcmtest/bin /etc/kcmtest /var/lib/kcmtest && chmod 700 /etc/kcmtest' &&
  scp -q -F "$KCMRUN_LAB_SSH_CONFIG" -o BatchMode=yes "$KCMRUN_LAB_KCM_BINARY" "$n:/opt/kcmtest/bin/kube-controller-manager" &&
  scp -q -F "$KCMRUN_LAB_SSH_CONFIG" -o BatchMode=yes "$T/kcm.pem" "$T/kcm-key.pem" "$T/kcm.kubeconfig" "$T/badca.kubeconfig" "$n:/etc/kcmtest/" &&
  scp -q -F "$KCMRUN_LAB_SSH_CONFIG" -o BatchMode=yes "$T"/kcmtest*.service "$n:/etc/systemd/system/" &&
  on "$n" 'systemctl daemon-reload && systemctl restart kcmtest'
}
for n in "${NODES[@]}"; do check "install and start on $n" install_node "$n"; done
for n in "${NODES[@]}"; do
  check "$n: version of the installed binary" [ "$(on "$n" /opt/kcmtest/bin/kube-controller-manager --version)" = "Kubernetes $KCMRUN_LAB_KUBE_VERSION" ]
done

# --- exactly one leader
l=none
for _ in $(seq 1 60); do l=$(leader); [ "$l" != none ] && break; sleep 0.5; done
holder=${l%% *}; lnode=$(node_of "$holder")
check "leader() finds a holder ($holder)" [ "$l" != none ]
check "the holder is one of the nodes" grep -qw "$lnode" <<<"${NODES[*]}"
check "holderIdentity is <hostname>_<uuid>" grep -Eq '^[a-z0-9-]+_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' <<<"$holder"
for n in "${NODES[@]}"; do
  check "$n: active (running)" [ "$(on "$n" systemctl is-active kcmtest)" = active ]
done

# --- /metrics before the auth-delegator binding: 500 naming the SubjectAccessReview
metrics() { # IP [curl args] -> code, body in $T/m
  local ip=$1; shift
  C "$@" -o "$T/m" -w '%{http_code}' "https://$ip:$PORT/metrics"
}
for _ in $(seq 1 20); do code=$(metrics "${IPS[0]}" "${ADMIN[@]}"); [ "$code" != 000 ] && break; sleep 0.5; done
check "/metrics 500 before the binding" [ "$code" = 500 ]
check "... with the SubjectAccessReview error" grep -qF 'Internal Server Error: "/metrics": subjectaccessreviews.authorization.k8s.io is forbidden: User "kcmtest" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope' "$T/m"
check "auth-delegator binding" [ "$(api POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings '{"metadata":{"name":"kcmtest:auth-delegator"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"system:auth-delegator"},"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"kcmtest"}]}')" = 201 ]
masters=0; mnode=
for i in "${!NODES[@]}"; do
  code=$(metrics "${IPS[$i]}" "${ADMIN[@]}")
  check "${NODES[$i]}: /metrics 200 after the binding" [ "$code" = 200 ]
  s=$(sed -n "s/^leader_election_master_status{name=\"$LEASE\"} \([01]\)\$/\1/p" "$T/m")
  check "${NODES[$i]}: leader_election_master_status present" [ -n "$s" ]
  [ "$s" = 1 ] && { masters=$((masters + 1)); mnode=${NODES[$i]}; }
done
check "exactly one node is master by its metrics" [ "$masters" = 1 ]
check "... the node leader() names ($mnode = $lnode)" [ "$mnode" = "$lnode" ]
code=$(metrics "${IPS[0]}")
check "/metrics 403 for the anonymous user" [ "$code" = 403 ]
check "... as a Status for system:anonymous" grep -qF '"message": "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""' "$T/m"

# --- failover: stop the leader; the lease is kept until it expires, then moves
t0=$(cut -d' ' -f2 <<<"$l")
on "$lnode" systemctl stop kcmtest
check "the stopped leader did not release the lease" [ "$(leader | cut -d' ' -f1)" = "$holder" ]
new=$holder
for _ in $(seq 1 120); do l=$(leader); new=${l%% *}; [ "$new" != "$holder" ] && break; sleep 0.25; done
nnode=$(node_of "$new")
check "the lease moved to another node ($lnode -> $nnode)" [ "$new" != "$holder" ] && [ "$nnode" != "$lnode" ] && grep -qw "$nnode" <<<"${NODES[*]}"
check "leaseTransitions went up" [ "$(cut -d' ' -f2 <<<"$l")" -gt "$t0" ]
on "$lnode" systemctl start kcmtest
check "$lnode: active again" [ "$(on "$lnode" systemctl is-active kcmtest)" = active ]

# --- a removed flag and a wrong CA: the unit fails, the journal says why
n=${NODES[0]}
on "$n" 'systemctl start kcmtest-bad kcmtest-badca' || true
st=; for _ in $(seq 1 60); do st=$(on "$n" 'systemctl is-active kcmtest-bad kcmtest-badca' | tr '\n' ' '); [ "$st" = "failed failed " ] && break; sleep 0.5; done
check "--port=0 on $KCMRUN_LAB_KUBE_VERSION and a wrong CA fail the units ($st)" [ "$st" = "failed failed " ]
check "journal: unknown flag: --port" on "$n" "journalctl -u kcmtest-bad --no-pager -n 50 | grep -q 'Error: unknown flag: --port'"
check "ExecMainStatus=1" [ "$(on "$n" systemctl show -p ExecMainStatus --value kcmtest-bad)" = 1 ]
check "journal: x509: certificate signed by unknown authority" on "$n" "journalctl -u kcmtest-badca --no-pager -n 50 | grep -q 'x509: certificate signed by unknown authority'"

[ $fails -eq 0 ] || { echo "$fails check(s) failed" >&2; exit 1; }
echo "lab standins: ok"
