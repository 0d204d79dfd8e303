# A client that does not retry, run on a node (bash -s -- ENDPOINTS LOG STOP):
# one real `etcdctl put` every 100 ms against all endpoints (as a client with
# the cluster's endpoint list), each tried once. Logs "time seq ok|fail".
eps=$1 log=$2 stop=$3
export ETCDCTL_API=3
rm -f "$log" "$stop"
i=0
while [ ! -e "$stop" ]; do
  i=$((i + 1))
  if /opt/k8s/bin/etcdctl --endpoints="$eps" --cacert=/etc/etcd/cert/ca.pem --cert=/etc/etcd/cert/etcd.pem \
       --key=/etc/etcd/cert/etcd-key.pem --dial-timeout=2s --command-timeout=3s put /kcmrun/writer "$i" >/dev/null 2>>"$log.err"; then
    echo "$(date +%s.%N) $i ok" >> "$log"
  else
    echo "$(date +%s.%N) $i fail" >> "$log"
  fi
  sleep 0.1
done
