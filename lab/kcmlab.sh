#!/bin/bash
# kcmrun lab: N local nodes on one Linux machine, each a real OpenSSH server started by real
# systemd, with its own network namespace and address, hostname, machine-id and disk.
#
#   kcmrun lab up [--nodes N] [--name NAME]   bring a lab up (refuses when one is up)
#   kcmrun lab down [--name NAME]             remove everything the lab made (by name: when
#                                             its state dir is lost)
#   kcmrun lab status                         paths written, state of each node
#   kcmrun lab stop NODE | start NODE         power a node off / boot it again (disk kept)
#   kcmrun lab ssh NODE [cmd...]              OpenSSH with the lab's ssh_config
#   kcmrun lab exec NODE cmd...               run a command inside a node without SSH (debug)
#   kcmrun lab env                            shell exports of the lab's paths
#
# State lives in ${KCMRUN_LAB_DIR:-/var/lib/kcmrun/lab} (a real filesystem: it holds the
# nodes' overlay upper dirs). Every kernel object is named after the lab name, so several labs
# (a user's and a test's) can be up at once:
#   bridge kcm-NAME (169.254.X.1/24), node i: netns kcm-NAME-nodeI, veth kcm-NAME-I,
#   address 169.254.X.(100+I), cgroup2 <root>/kcm-NAME/nodeI.
# Node i runs node-init.sh (next to this file) as PID 1 of its namespaces, which execs systemd.
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEFAULT_LAB_DIR=/var/lib/kcmrun/lab
LAB_DIR=${KCMRUN_LAB_DIR:-$DEFAULT_LAB_DIR}
PROG="kcmrun lab"
MAX_NODES=150
BOOT_TIMEOUT=${KCMRUN_LAB_BOOT_TIMEOUT:-90}   # seconds until every node's sshd answers
STOP_TIMEOUT=20                                # seconds for a node to power off before SIGKILL
INOTIFY_MIN=1024                               # each systemd node holds ~8 inotify instances
RUNDIR=/run/kcmrun                             # host-wide bookkeeping shared by all labs
# the cluster stand-ins hook (tests point it at a stub)
CLUSTER_SH=${KCMRUN_LAB_CLUSTER_SH:-$HERE/cluster.sh}

die() { echo "$PROG: $*" >&2; exit 1; }
warn() { echo "$PROG: $*" >&2; }
now() { date +%s.%N; }

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need_root() {
  [ "$(id -u)" = 0 ] ||
    die "needs root (it creates network namespaces, mounts, cgroups and a bridge): run it as root"
}

# ---------------------------------------------------------------- names and state

STATE=$LAB_DIR/lab.state

default_name() {
  if [ "$LAB_DIR" = "$DEFAULT_LAB_DIR" ]; then echo lab; return; fi
  # another state dir gets its own name, so it never collides with the user's lab
  echo "l$(printf '%s' "$LAB_DIR" | sha256sum | cut -c1-6)"
}

load_state() {
  [ -f "$STATE" ] || return 1
  # shellcheck disable=SC1090
  . "$STATE"
  CG=$LAB_CGROUP
}

save_state() {
  local tmp=$STATE.tmp
  {
    echo "# kcmrun lab state (written by up, removed by down)"
    printf 'LAB_NAME=%q\nLAB_NET=%q\nLAB_NODES=%q\nLAB_CGROUP=%q\nLAB_MADE_NETNS_DIR=%q\nLAB_STARTED=%q\nLAB_CLUSTER_SH=%q\n' \
      "$LAB_NAME" "$LAB_NET" "$LAB_NODES" "$LAB_CGROUP" "$LAB_MADE_NETNS_DIR" "$LAB_STARTED" "$LAB_CLUSTER_SH"
  } >"$tmp"
  mv -f "$tmp" "$STATE"
}

bridge() { echo "kcm-$LAB_NAME"; }
bridge_ip() { echo "$LAB_NET.1"; }
node_ip() { echo "$LAB_NET.$((100 + $1))"; }
node_ns() { echo "kcm-$LAB_NAME-node$1"; }
node_veth() { echo "kcm-$LAB_NAME-$1"; }
node_dir() { echo "$LAB_DIR/nodes/node$1"; }
node_cg() { echo "$CG/node$1"; }

# "node2" or "2" -> 2, checked against the lab's size
node_index() {
  local n=${1#node}
  [[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le "$LAB_NODES" ] ||
    die "no node '$1' in lab $LAB_NAME (nodes: node1..node$LAB_NODES)"
  echo "$n"
}

cgroup2_root() {
  if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then echo /sys/fs/cgroup
  elif [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then echo /sys/fs/cgroup/unified
  else die "no cgroup2 hierarchy (looked at /sys/fs/cgroup and /sys/fs/cgroup/unified)"
  fi
}

# A /24 in 169.254.1-254 derived from the name; the next free one if another interface
# on the host already has an address or route there.
pick_net() {
  local x
  x=$(($(printf '%s' "$1" | cksum | cut -d' ' -f1) % 254 + 1))
  for _ in $(seq 1 254); do
    if ! ip -4 -o addr show | grep -q " 169\.254\.$x\." &&
       ! ip -4 route show | grep -q "^169\.254\.$x\."; then
      echo "169.254.$x"; return
    fi
    x=$((x % 254 + 1))
  done
  die "no free 169.254.x.0/24 subnet left on this host"
}

# ---------------------------------------------------------------- node processes

# For processes that outlive this script: they must not keep any of our descriptors (a test
# runner waits for its output pipe to close; the lab lock is an fd too).
close_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done
}

cg_populated() { [ -f "$1/cgroup.events" ] && grep -q '^populated 1' "$1/cgroup.events"; }

# Host PID of node i's systemd: the process of the node's cgroup that is PID 1 of the pid
# namespace one level below ours (its NSpid line ends in 1 and has one more entry than ours).
node_init_pid() {
  local cg p depth
  cg=$(node_cg "$1")
  depth=$(awk '/^NSpid:/{print NF + 1}' /proc/self/status)
  for p in $(cat "$cg/init.scope/cgroup.procs" "$cg/cgroup.procs" 2>/dev/null); do
    if awk -v d="$depth" '/^NSpid:/{ok = (NF == d && $NF == 1)} END{exit !ok}' "/proc/$p/status" 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
}

node_running() { cg_populated "$(node_cg "$1")"; }

# Boot node i: put a subshell into the node's cgroup (so the cgroup namespace is rooted there),
# then become `nsenter --net | unshare ... node-init.sh`.
start_node() {
  local i=$1 d cg
  d=$(node_dir "$i"); cg=$(node_cg "$i")
  mkdir -p "$cg"
  (
    close_fds
    echo "$BASHPID" >"$cg/cgroup.procs"
    exec setsid nsenter --net="/run/netns/$(node_ns "$i")" \
      unshare --mount --uts --ipc --pid --cgroup --fork --propagation private \
      "$HERE/node-init.sh" "node$i" "$d" "$LAB_DIR" "$HOST_MNTNS"
  ) </dev/null >>"$d/console.log" 2>&1 &
  # until the subshell has joined the cgroup, "not populated" would read as "exited"
  local spawned=$! t
  for t in $(seq 1 100); do
    cg_populated "$cg" && return 0
    kill -0 "$spawned" 2>/dev/null || break
    sleep 0.02
  done
  cg_populated "$cg" || { echo "node$i: could not be started" >&2; return 1; }
}

# Wait until node i's sshd sends its banner (the port alone may be open before sshd runs).
wait_sshd() {
  local i=$1 ip deadline
  ip=$(node_ip "$i")
  deadline=$(($(date +%s) + BOOT_TIMEOUT))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if ! node_running "$i"; then
      echo "node$i: exited while booting; end of $(node_dir "$i")/console.log:" >&2
      tail -n 20 "$(node_dir "$i")/console.log" >&2 || true
      return 1
    fi
    if timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/22" && read -r -t 2 line <&3 && [[ $line == SSH-* ]]' "$ip" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "node$i: sshd at $ip:22 did not answer within ${BOOT_TIMEOUT}s; end of console.log:" >&2
  tail -n 20 "$(node_dir "$i")/console.log" >&2 || true
  return 1
}

# One real login per node, with the files up wrote: proves key, known_hosts and sshd agree.
check_login() {
  local i=$1 out
  if ! out=$(ssh -F "$LAB_DIR/ssh_config" -o BatchMode=yes "node$i" hostname 2>&1) || [ "$out" != "node$i" ]; then
    echo "node$i: ssh login check failed: $out" >&2
    return 1
  fi
}

# Power node i off: SIGRTMIN+4 asks systemd for poweroff (the container flavour: it exits).
signal_stop() {
  local p
  p=$(node_init_pid "$1")
  if [ -n "$p" ]; then kill -s SIGRTMIN+4 "$p" 2>/dev/null || true; fi
}

# Wait for node i's cgroup to empty; kill what is left after STOP_TIMEOUT; remove the cgroup.
reap_node() {
  local i=$1 cg t
  cg=$(node_cg "$i")
  [ -d "$cg" ] || return 0
  for t in $(seq 1 $((STOP_TIMEOUT * 10))); do
    cg_populated "$cg" || break
    sleep 0.1
  done
  if cg_populated "$cg"; then
    warn "node$i did not power off within ${STOP_TIMEOUT}s: killing its processes"
    kill_cgroup "$cg"
  fi
  rm_cgroup "$cg"
}

kill_cgroup() {
  local cg=$1 p t
  if [ -f "$cg/cgroup.kill" ]; then
    echo 1 >"$cg/cgroup.kill" 2>/dev/null || true
  else
    for t in 1 2 3; do
      for p in $(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
      sleep 0.1
    done
  fi
  for _ in $(seq 1 50); do cg_populated "$cg" || return 0; sleep 0.1; done
  warn "processes still left in $cg"
}

rm_cgroup() {
  [ -d "$1" ] || return 0
  find "$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
  [ ! -d "$1" ] || warn "could not remove cgroup $1"
}

# ---------------------------------------------------------------- node disks

# Host units that must not start in a node (they would fail there or waste its boot);
# completed at run time with every unit the host has enabled, except the ones a node needs.
MASK_ALWAYS="console-getty.service getty@tty1.service getty-static.service serial-getty@console.service
  var-lib-machines.mount systemd-timesyncd.service systemd-pstore.service systemd-networkd.service
  systemd-networkd-wait-online.service systemd-resolved.service networking.service NetworkManager.service
  e2scrub_all.timer e2scrub_reap.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer
  fstrim.timer man-db.timer cron.service anacron.service anacron.timer unattended-upgrades.service"
KEEP_ENABLED=" ssh.service sshd.service ssh.socket remote-fs.target dbus.service dbus.socket "

units_to_mask() {
  local f u
  for u in $MASK_ALWAYS; do echo "$u"; done
  for f in /etc/systemd/system/*.wants/* /etc/systemd/system/*.requires/*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    u=${f##*/}
    case $KEEP_ENABLED in *" $u "*) continue ;; esac
    echo "$u"
  done
  # aliases an enabled unit made (etcd2.service -> etcd.service): once the unit is
  # masked in the node, the alias would point at a second file of the same unit
  for f in /etc/systemd/system/*.service; do
    [ -L "$f" ] || continue
    u=$(readlink "$f")
    if [ "$u" != /dev/null ] && [ "${u##*/}" != "${f##*/}" ]; then echo "${f##*/}"; fi
  done | sort -u
}

# An overlay whiteout (0/0 character device) in the upper dir hides a host file in the node.
whiteout() {
  local up=$1 path=$2
  mkdir -p "$up$(dirname "$path")"
  rm -f "$up$path"
  mknod "$up$path" c 0 0
}

prep_node() {
  local i=$1 d u f
  d=$(node_dir "$i"); u=$d/upper
  mkdir -p "$u" "$d/work" "$d/rootfs"
  mkdir -p "$u/etc/ssh/sshd_config.d" "$u/etc/systemd/system/multi-user.target.wants" \
    "$u/etc/systemd/journald.conf.d" "$u/root/.ssh" "$u/var/lib/systemd/linger"
  chmod 700 "$u/root" "$u/root/.ssh"

  # identity
  echo "node$i" >"$u/etc/hostname"
  tr -d '-' </proc/sys/kernel/random/uuid >"$u/etc/machine-id"
  { grep -Ev '[[:space:]]node[0-9]+([[:space:]]|$)' /etc/hosts || true; cat "$LAB_DIR/hosts"; } >"$u/etc/hosts"

  # sshd: the node's own host key only (the host's keys are whited out), root by key only
  for f in /etc/ssh/ssh_host_*; do
    if [ -e "$f" ]; then whiteout "$u" "$f"; fi
  done
  rm -f "$u/etc/ssh/ssh_host_ed25519_key" "$u/etc/ssh/ssh_host_ed25519_key.pub"
  ssh-keygen -q -t ed25519 -N '' -C "root@node$i" -f "$u/etc/ssh/ssh_host_ed25519_key"
  cat >"$u/etc/ssh/sshd_config.d/00-kcmlab.conf" <<EOF
# kcmrun lab node$i
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
  if [ -f /lib/systemd/system/ssh.service ]; then
    ln -sf /lib/systemd/system/ssh.service "$u/etc/systemd/system/multi-user.target.wants/ssh.service"
  fi

  # root: the lab's client key, Debian's default dotfiles (the host's may be slow or odd)
  for f in /root/.ssh/* /root/.bash_profile /root/.bash_login /root/.bash_logout; do
    if [ -e "$f" ]; then whiteout "$u" "$f"; fi
  done
  rm -f "$u/root/.ssh/authorized_keys"
  install -m 600 "$LAB_DIR/id_ed25519.pub" "$u/root/.ssh/authorized_keys"
  install -m 644 /usr/share/base-files/dot.bashrc "$u/root/.bashrc"
  install -m 644 /usr/share/base-files/dot.profile "$u/root/.profile"
  # linger: root's user manager starts at boot, so a login does not wait for it
  : >"$u/var/lib/systemd/linger/root"

  # systemd: host units masked, journal kept in the node's /run
  for f in $(units_to_mask); do ln -sf /dev/null "$u/etc/systemd/system/$f"; done
  printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' >"$u/etc/systemd/journald.conf.d/kcmlab.conf"
}

make_netns() {
  local i=$1 ns veth
  ns=$(node_ns "$i"); veth=$(node_veth "$i")
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ipv6_off "$veth"
  ip link set "$veth" master "$(bridge)" up
  ip -n "$ns" addr add "$(node_ip "$i")/24" dev eth0
  ip -n "$ns" link set lo up
  nsenter --net="/run/netns/$ns" bash -c \
    '[ ! -w /proc/sys/net/ipv6/conf/eth0/disable_ipv6 ] || echo 1 >/proc/sys/net/ipv6/conf/eth0/disable_ipv6'
  ip -n "$ns" link set eth0 up
}

# link-local IPv4 only: no IPv6 link-local chatter from the lab's interfaces
ipv6_off() {
  local f=/proc/sys/net/ipv6/conf/$1/disable_ipv6
  [ ! -w "$f" ] || echo 1 >"$f"
}

# ---------------------------------------------------------------- inotify (host-wide)

# Raised while any lab is up; the value found before the first lab is restored by the last.
inotify_raise() {
  local want=$1 cur
  mkdir -p "$RUNDIR/labs"
  cur=$(cat /proc/sys/fs/inotify/max_user_instances)
  if [ ! -f "$RUNDIR/inotify.orig" ]; then echo "$cur" >"$RUNDIR/inotify.orig"; fi
  : >"$RUNDIR/labs/$LAB_NAME"
  if [ "$cur" -lt "$want" ]; then echo "$want" >/proc/sys/fs/inotify/max_user_instances; fi
}

inotify_release() {
  rm -f "$RUNDIR/labs/$LAB_NAME"
  if [ -d "$RUNDIR/labs" ] && [ -z "$(ls -A "$RUNDIR/labs")" ]; then
    if [ -f "$RUNDIR/inotify.orig" ]; then
      cat "$RUNDIR/inotify.orig" >/proc/sys/fs/inotify/max_user_instances || true
      rm -f "$RUNDIR/inotify.orig"
    fi
    rmdir "$RUNDIR/labs" "$RUNDIR" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- files for the user

lua_str() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}

node_list() { local i; for i in $(seq 1 "$LAB_NODES"); do printf '%s ' "node$i"; done; }

write_ssh_files() {
  local i
  : >"$LAB_DIR/known_hosts.tmp"
  for i in $(seq 1 "$LAB_NODES"); do
    printf 'node%s,%s %s\n' "$i" "$(node_ip "$i")" \
      "$(cut -d' ' -f1,2 "$(node_dir "$i")/upper/etc/ssh/ssh_host_ed25519_key.pub")" >>"$LAB_DIR/known_hosts.tmp"
  done
  mv -f "$LAB_DIR/known_hosts.tmp" "$LAB_DIR/known_hosts"
  {
    echo "# kcmrun lab $LAB_NAME: ssh -F $LAB_DIR/ssh_config node1"
    for i in $(seq 1 "$LAB_NODES"); do printf 'Host node%s\n  HostName %s\n' "$i" "$(node_ip "$i")"; done
    cat <<EOF
Host node* $LAB_NET.*
  User root
  Port 22
  IdentityFile $LAB_DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $LAB_DIR/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  ConnectTimeout 5
  LogLevel ERROR
EOF
  } >"$LAB_DIR/ssh_config"
}

# cluster.vars holds the KEY=VALUE lines cluster.sh printed (empty without cluster.sh)
cluster_vars() { [ -f "$LAB_DIR/cluster.vars" ] && cat "$LAB_DIR/cluster.vars" || true; }

write_inventory() {
  local i f=$LAB_DIR/inventory.lua k v names=""
  for i in $(seq 1 "$LAB_NODES"); do names+="$(lua_str "node$i"), "; done
  {
    echo "-- kcmrun lab $LAB_NAME: written by \`kcmrun lab up\`, removed by \`kcmrun lab down\`"
    echo "return {"
    echo "  vars = {"
    echo "    lab_name = $(lua_str "$LAB_NAME"),"
    echo "    lab_dir = $(lua_str "$LAB_DIR"),"
    echo "    bridge = $(lua_str "$(bridge)"),"
    echo "    bridge_ip = $(lua_str "$(bridge_ip)"),"
    echo "    subnet = $(lua_str "$LAB_NET.0/24"),"
    echo "    environment = $(lua_str "$LAB_DIR/environment.sh"),"
    echo "    K8S_DIR = \"/data/k8s/k8s\","
    echo "    SERVICE_CIDR = \"10.254.0.0/16\","
    echo "    etcd_binary = \"/usr/bin/etcd\", etcdctl_binary = \"/usr/bin/etcdctl\","
    echo "    ETCD_DATA_DIR = \"/data/k8s/etcd/data\", ETCD_WAL_DIR = \"/data/k8s/etcd/wal\","
    while IFS='=' read -r k v; do
      [ -n "$k" ] && echo "    [$(lua_str "$k")] = $(lua_str "$v"),"
    done < <(cluster_vars)
    echo "  },"
    echo "  ssh = {"
    echo "    known_hosts = $(lua_str "$LAB_DIR/known_hosts"),"
    echo "    identity = $(lua_str "$LAB_DIR/id_ed25519"),"
    echo "    user = \"root\","
    echo "    config = $(lua_str "$LAB_DIR/ssh_config"),"
    echo "    connect_timeout = 5,"
    echo "  },"
    echo "  nodes = {"
    for i in $(seq 1 "$LAB_NODES"); do
      echo "    { name = \"node$i\", host = \"$(node_ip "$i")\", port = 22,"
      echo "      vars = { lab_upper = $(lua_str "$(node_dir "$i")/upper") } },"
    done
    echo "  },"
    echo "  groups = {"
    echo "    masters = { ${names% } },"
    echo "    all = { ${names% } },"
    echo "    etcd = { ${names% } },"
    echo "  },"
    echo "}"
  } >"$f.tmp"
  mv -f "$f.tmp" "$f"
}

write_environment() {
  local i f=$LAB_DIR/environment.sh k v ips="" names="" eps="" enodes=""
  for i in $(seq 1 "$LAB_NODES"); do ips+="$(node_ip "$i") "; names+="node$i "; done
  for i in $(seq 1 "$LAB_NODES"); do eps+="https://$(node_ip "$i"):2379,"; enodes+="node$i=https://$(node_ip "$i"):2380,"; done
  {
    echo "#!/usr/bin/bash"
    echo "# kcmrun lab $LAB_NAME, in the style of the procedure's environment.sh: source it."
    echo
    echo "# the cluster's machines (the masters) and their hostnames"
    echo "export NODE_IPS=(${ips% })"
    echo "export NODE_NAMES=(${names% })"
    echo
    echo "# kube-apiserver (the lab's stand-in, on the host side of the lab bridge)"
    echo "export KUBE_APISERVER=\"https://$(bridge_ip):6443\""
    echo
    echo "# the nodes' interface on the cluster network"
    echo "export IFACE=\"eth0\""
    echo "# data directory of the k8s components"
    echo "export K8S_DIR=\"/data/k8s/k8s\""
    echo
    echo "# etcd: data and WAL directories, client endpoints, peer list"
    echo "export ETCD_DATA_DIR=\"/data/k8s/etcd/data\""
    echo "export ETCD_WAL_DIR=\"/data/k8s/etcd/wal\""
    echo "export ETCD_ENDPOINTS=\"${eps%,}\""
    echo "export ETCD_NODES=\"${enodes%,}\""
    echo
    echo "# service network, unroutable before deployment"
    echo "export SERVICE_CIDR=\"10.254.0.0/16\""
    echo "# pod network, unroutable before deployment"
    echo "export CLUSTER_CIDR=\"172.30.0.0/16\""
    echo "# service port range (NodePort Range)"
    echo "export NODE_PORT_RANGE=\"30000-32767\""
    echo "# kubernetes service IP (usually the first IP of SERVICE_CIDR)"
    echo "export CLUSTER_KUBERNETES_SVC_IP=\"10.254.0.1\""
    echo "# cluster DNS service IP (allocated from SERVICE_CIDR)"
    echo "export CLUSTER_DNS_SVC_IP=\"10.254.0.2\""
    echo "# cluster DNS domain (no trailing dot)"
    echo "export CLUSTER_DNS_DOMAIN=\"cluster.local\""
    echo
    echo "# the lab"
    echo "export LAB_DIR=$(printf %q "$LAB_DIR")"
    echo "# for \`kcmrun -i environment.sh\`"
    echo "export KCMRUN_SSH_CONFIG=$(printf %q "$LAB_DIR/ssh_config")"
    echo "export KCMRUN_KNOWN_HOSTS=$(printf %q "$LAB_DIR/known_hosts")"
    echo "export KCMRUN_SSH_IDENTITY=$(printf %q "$LAB_DIR/id_ed25519")"
    echo "export KCMRUN_SSH_USER=root"
    if [ -s "$LAB_DIR/cluster.vars" ]; then
      echo
      echo "# cluster stand-ins (cluster.sh)"
      while IFS='=' read -r k v; do
        [ -n "$k" ] && echo "export $k=$(printf %q "$v")"
      done < <(cluster_vars)
    fi
  } >"$f.tmp"
  mv -f "$f.tmp" "$f"
}

print_paths() {
  local k v
  printf '%-18s %s\n' inventory "$LAB_DIR/inventory.lua" ssh_config "$LAB_DIR/ssh_config" \
    known_hosts "$LAB_DIR/known_hosts" identity "$LAB_DIR/id_ed25519" environment "$LAB_DIR/environment.sh"
  while IFS='=' read -r k v; do
    [ -n "$k" ] && printf '%-18s %s\n' "$k" "$v"
  done < <(cluster_vars)
  return 0
}

# ---------------------------------------------------------------- cluster stand-ins hook

cluster_up() {
  local script=$LAB_CLUSTER_SH cg=$CG/cluster rc=0
  [ -n "$script" ] || return 0
  mkdir -p "$LAB_DIR/cluster" "$cg"
  # Output goes to files, not a pipe: a daemon it leaves running must not hold our stdout.
  # It runs in the lab's cgroup, so down can remove whatever it leaves behind.
  (
    close_fds
    echo "$BASHPID" >"$cg/cgroup.procs"
    exec bash "$script" up "$LAB_DIR/cluster" "$(bridge_ip)"
  ) </dev/null >"$LAB_DIR/cluster.out" 2>"$LAB_DIR/cluster.log" || rc=$?
  if [ "$rc" != 0 ]; then
    echo "cluster.sh up failed (exit $rc):" >&2
    tail -n 30 "$LAB_DIR/cluster.log" >&2 || true
    return 1
  fi
  grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$LAB_DIR/cluster.out" >"$LAB_DIR/cluster.vars" || true
}

cluster_down() {
  local script=${LAB_CLUSTER_SH:-} cg=$CG/cluster
  if [ -n "$script" ] && [ -f "$script" ] && [ -d "$LAB_DIR/cluster" ]; then
    bash "$script" down "$LAB_DIR/cluster" </dev/null >>"$LAB_DIR/cluster.log" 2>&1 ||
      warn "cluster.sh down failed (see $LAB_DIR/cluster.log); removing its processes"
  fi
  if [ -d "$cg" ]; then
    cg_populated "$cg" && kill_cgroup "$cg"
    rm_cgroup "$cg"
  fi
}

# ---------------------------------------------------------------- verbs

# What lab up runs on this machine, as TOOL:PACKAGE (the Debian package that has it), so a
# missing one is named with what to install. The .deb only Recommends these
# (cmake/install.cmake): kcmrun itself runs without a lab.
UP_TOOLS="ip:iproute2 nsenter:util-linux unshare:util-linux setpriv:util-linux flock:util-linux
  mknod:coreutils ssh-keygen:openssh-client ssh:openssh-client /usr/sbin/sshd:openssh-server
  /lib/systemd/systemd:systemd"
# The shipped cluster stand-ins (cluster.sh): checked only when that is the hook.
CLUSTER_TOOLS="/usr/bin/python3:python3 openssl:openssl curl:curl"

# Every missing tool on a line of its own, then one command that installs them all.
need_tools() {
  local t tool pkg pkgs=""
  for t in "$@"; do
    tool=${t%:*} pkg=${t##*:}
    command -v "$tool" >/dev/null && continue
    case $tool in
      /*) warn "up: ${tool##*/} not found ($tool): apt-get install $pkg" ;;
      *) warn "up: $tool not found on PATH: apt-get install $pkg" ;;
    esac
    case " $pkgs " in *" $pkg "*) ;; *) pkgs="$pkgs $pkg" ;; esac
  done
  [ -z "$pkgs" ] || die "up: tools missing on this machine; install them with: apt-get install$pkgs"
}

lock_lab() {
  exec 9<"$LAB_DIR"
  flock -n 9 || die "another kcmrun lab command is running on $LAB_DIR"
}

cmd_up() {
  local n=3 name="" i t0 pids p fstype
  while [ $# -gt 0 ]; do
    case $1 in
      --nodes) [ $# -ge 2 ] || usage; n=$2; shift 2 ;;
      --nodes=*) n=${1#*=}; shift ;;
      --name) [ $# -ge 2 ] || usage; name=$2; shift 2 ;;
      --name=*) name=${1#*=}; shift ;;
      *) usage ;;
    esac
  done
  [[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le $MAX_NODES ] || die "--nodes: a number from 1 to $MAX_NODES, not '$n'"
  name=${name:-$(default_name)}
  [[ $name =~ ^[a-z][a-z0-9]{0,6}$ ]] ||
    die "--name: 1-7 characters, a-z then a-z/0-9 (it names interfaces), not '$name'"
  need_root
  # shellcheck disable=SC2086  # the lists are words
  need_tools $UP_TOOLS
  if [ -f "$CLUSTER_SH" ] && [ "$CLUSTER_SH" -ef "$HERE/cluster.sh" ]; then need_tools $CLUSTER_TOOLS; fi

  mkdir -p "$LAB_DIR"
  LAB_DIR=$(cd "$LAB_DIR" && pwd -P); STATE=$LAB_DIR/lab.state
  fstype=$(stat -fc %T "$LAB_DIR")
  case $fstype in
    overlayfs | tmpfs | ramfs) die "$LAB_DIR is on $fstype: the nodes' disks (overlay upper dirs) need a real filesystem; set KCMRUN_LAB_DIR" ;;
  esac
  lock_lab
  if load_state; then
    die "lab $LAB_NAME is already up in $LAB_DIR ($LAB_NODES nodes): see \`kcmrun lab status\`, or \`kcmrun lab down\` first"
  fi

  LAB_NAME=$name LAB_NODES=$n CG=$(cgroup2_root)/kcm-$name LAB_CGROUP=$CG
  ip link show "$(bridge)" >/dev/null 2>&1 && die "interface $(bridge) exists: another lab named '$name' is up (use --name; if its state dir is lost: kcmrun lab down --name $name)"
  [ ! -e "/run/netns/$(node_ns 1)" ] || die "network namespace $(node_ns 1) exists: another lab named '$name' is up (use --name; if its state dir is lost: kcmrun lab down --name $name)"
  [ ! -d "$CG" ] || die "cgroup $CG exists: another lab named '$name' is up (use --name; if its state dir is lost: kcmrun lab down --name $name)"
  LAB_NET=$(pick_net "$name")
  LAB_MADE_NETNS_DIR=0
  if ! grep -q ' /run/netns ' /proc/mounts; then LAB_MADE_NETNS_DIR=1; fi
  LAB_STARTED=$(date -Is)
  LAB_CLUSTER_SH=""
  if [ -f "$CLUSTER_SH" ]; then LAB_CLUSTER_SH=$(cd "$(dirname "$CLUSTER_SH")" && pwd -P)/$(basename "$CLUSTER_SH"); fi
  HOST_MNTNS=$(readlink /proc/$$/ns/mnt)
  t0=$(now)

  # From here on, a failure removes whatever was made.
  save_state
  trap 'up_failed' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$CG" "$LAB_DIR/nodes"
  inotify_raise $((INOTIFY_MIN > 16 * n + 256 ? INOTIFY_MIN : 16 * n + 256))

  rm -f "$LAB_DIR/id_ed25519" "$LAB_DIR/id_ed25519.pub"
  ssh-keygen -q -t ed25519 -N '' -C "kcmrun-lab-$name" -f "$LAB_DIR/id_ed25519"
  chmod 600 "$LAB_DIR/id_ed25519"
  {
    for i in $(seq 1 "$n"); do echo "$(node_ip "$i") node$i"; done
    echo "$(bridge_ip) kcmlab-host"
  } >"$LAB_DIR/hosts"

  ip link add "$(bridge)" type bridge
  ipv6_off "$(bridge)"
  ip addr add "$(bridge_ip)/24" dev "$(bridge)"
  ip link set "$(bridge)" up

  pids=()
  for i in $(seq 1 "$n"); do prep_node "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
  for i in $(seq 1 "$n"); do make_netns "$i"; done
  for i in $(seq 1 "$n"); do start_node "$i"; done
  write_ssh_files

  pids=()
  for i in $(seq 1 "$n"); do wait_sshd "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
  pids=()
  for i in $(seq 1 "$n"); do check_login "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done

  cluster_up
  write_inventory
  write_environment
  trap - EXIT INT TERM
  echo "lab $name up: $n node$([ "$n" = 1 ] || echo s) on $(bridge) $LAB_NET.0/24 in $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}') s"
  print_paths
}

up_failed() {
  local rc=$?
  trap - EXIT
  [ "$rc" != 0 ] || return 0
  warn "up failed: removing what it made (set KCMRUN_LAB_KEEP=1 to keep it for inspection)"
  if [ "${KCMRUN_LAB_KEEP:-}" = 1 ]; then exit "$rc"; fi
  do_down >&2 || true
  exit "$rc"
}

# Remove everything the lab made, in the order that lets each step succeed; tolerant of a
# half-made lab (a failed up) and of things already gone.
do_down() {
  local i pids p left
  cluster_down
  for i in $(seq 1 "$LAB_NODES"); do signal_stop "$i"; done
  pids=()
  for i in $(seq 1 "$LAB_NODES"); do reap_node "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || true; done
  for i in $(seq 1 "$LAB_NODES"); do
    ip link del "$(node_veth "$i")" 2>/dev/null || true
    ip netns del "$(node_ns "$i")" 2>/dev/null || true
  done
  ip link del "$(bridge)" 2>/dev/null || true
  rm_cgroup "$CG"
  if [ "$LAB_MADE_NETNS_DIR" = 1 ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
    umount /run/netns 2>/dev/null || true
    rmdir /run/netns 2>/dev/null || true
  fi
  inotify_release
  if [ "${RECOVERING:-0}" = 1 ]; then
    echo "kept files (state dir unknown): remove the lab's old state dir yourself"
    return 0
  fi
  # the nodes' disks: only once nothing of the lab is mounted (a node's mounts live in its
  # own namespace and are gone with it; this guards the host against a surprise)
  left=$(awk -v d="$LAB_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts)
  if [ -n "$left" ]; then
    warn "still mounted, keeping $LAB_DIR/nodes: $left"
  else
    rm -rf --one-file-system "$LAB_DIR/nodes"
  fi
  rm -rf --one-file-system "$LAB_DIR/cluster"
  rm -f "$LAB_DIR"/{inventory.lua,environment.sh,ssh_config,known_hosts,known_hosts.tmp,hosts} \
    "$LAB_DIR"/{id_ed25519,id_ed25519.pub,cluster.out,cluster.log,cluster.vars} "$STATE" "$STATE.tmp"
  rmdir "$LAB_DIR" 2>/dev/null || true
}

cmd_down() {
  local name=""
  case ${1:-} in
    --name) [ $# = 2 ] || usage; name=$2 ;;
    --name=*) name=${1#*=} ;;
    "") ;;
    *) usage ;;
  esac
  need_root
  if [ -n "$name" ]; then recover_state "$name"; do_down; echo "lab $LAB_NAME down"; return 0; fi
  [ -d "$LAB_DIR" ] || { echo "no lab in $LAB_DIR"; return 0; }
  lock_lab
  if ! load_state; then echo "no lab in $LAB_DIR"; return 0; fi
  do_down
  echo "lab $LAB_NAME down"
}

# `down --name NAME` when the state dir is lost: find the lab's objects by their names.
recover_state() {
  [[ $1 =~ ^[a-z][a-z0-9]{0,6}$ ]] || die "--name: not a lab name: '$1'"
  LAB_NAME=$1 CG=$(cgroup2_root)/kcm-$1 LAB_CGROUP=$CG LAB_MADE_NETNS_DIR=1 LAB_CLUSTER_SH=""
  if [ -f "$STATE" ] && grep -qx "LAB_NAME=$1" "$STATE"; then load_state; return 0; fi
  LAB_NET=$(ip -4 -o addr show dev "kcm-$1" 2>/dev/null | awk '{split($4, a, "."); print a[1] "." a[2] "." a[3]}')
  LAB_NET=${LAB_NET:-169.254.0}
  LAB_NODES=$( (ls /run/netns 2>/dev/null; ls "$CG" 2>/dev/null) | sed -n "s/^\(kcm-$1-\)\{0,1\}node\([0-9]*\)\$/\2/p" | sort -n | tail -1)
  LAB_NODES=${LAB_NODES:-0}
  echo "recovering lab $1: $LAB_NODES nodes, subnet $LAB_NET.0/24; state dir $LAB_DIR"
  # only remove files of the state dir if it belongs to this lab
  [ ! -f "$STATE" ] || die "$STATE belongs to another lab; set KCMRUN_LAB_DIR"
  RECOVERING=1
}

require_lab() {
  need_root
  load_state || die "no lab in $LAB_DIR (kcmrun lab up)"
}

cmd_status() {
  local i st ssh
  need_root
  # exit 3, like an LSB status "not running": `lab status || lab up` reads naturally
  load_state || { echo "no lab in $LAB_DIR (kcmrun lab up makes one)"; exit 3; }
  echo "lab $LAB_NAME: $LAB_NODES nodes on $(bridge) $LAB_NET.0/24, up since $LAB_STARTED"
  print_paths
  for i in $(seq 1 "$LAB_NODES"); do
    if node_running "$i"; then
      st="running"
      if timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/22"' "$(node_ip "$i")" 2>/dev/null; then ssh="sshd up"; else ssh="sshd down"; fi
    else
      st="stopped"; ssh=""
    fi
    printf '%-8s %-16s %-8s %s\n' "node$i" "$(node_ip "$i")" "$st" "$ssh"
  done
}

cmd_stop() {
  local i
  [ $# = 1 ] || usage
  require_lab
  lock_lab
  i=$(node_index "$1")
  node_running "$i" || { echo "node$i is already stopped"; return 0; }
  signal_stop "$i"
  reap_node "$i"
  echo "node$i stopped"
}

cmd_start() {
  local i
  [ $# = 1 ] || usage
  require_lab
  lock_lab
  i=$(node_index "$1")
  node_running "$i" && { echo "node$i is already running"; return 0; }
  [ -e "/run/netns/$(node_ns "$i")" ] || die "node$i: network namespace $(node_ns "$i") is gone"
  rm_cgroup "$(node_cg "$i")"
  HOST_MNTNS=$(readlink /proc/$$/ns/mnt)
  start_node "$i"
  wait_sshd "$i" || die "node$i did not boot"
  echo "node$i running"
}

cmd_ssh() {
  [ $# -ge 1 ] || usage
  require_lab
  local i; i=$(node_index "$1"); shift
  exec ssh -F "$LAB_DIR/ssh_config" "node$i" "$@"
}

cmd_exec() {
  [ $# -ge 2 ] || usage
  require_lab
  local i p; i=$(node_index "$1"); shift
  p=$(node_init_pid "$i")
  [ -n "$p" ] || die "node$i is not running"
  exec nsenter -t "$p" -m -u -i -n -p -C -r -w "$@"
}

cmd_env() {
  local k v
  require_lab
  printf 'export KCMRUN_LAB_DIR=%q\n' "$LAB_DIR"
  printf 'export KCMRUN_LAB_NAME=%q\n' "$LAB_NAME"
  printf 'export KCMRUN_LAB_INVENTORY=%q\n' "$LAB_DIR/inventory.lua"
  printf 'export KCMRUN_LAB_SSH_CONFIG=%q\n' "$LAB_DIR/ssh_config"
  printf 'export KCMRUN_LAB_KNOWN_HOSTS=%q\n' "$LAB_DIR/known_hosts"
  printf 'export KCMRUN_LAB_IDENTITY=%q\n' "$LAB_DIR/id_ed25519"
  printf 'export KCMRUN_LAB_ENVIRONMENT=%q\n' "$LAB_DIR/environment.sh"
  printf 'export KCMRUN_LAB_BRIDGE_IP=%q\n' "$(bridge_ip)"
  printf 'export KCMRUN_LAB_NODES=%q\n' "$(node_list | sed 's/ $//')"
  printf 'export KCMRUN_LAB_NODE_IPS=%q\n' "$(for i in $(seq 1 "$LAB_NODES"); do printf '%s ' "$(node_ip "$i")"; done | sed 's/ $//')"
  while IFS='=' read -r k v; do
    [ -n "$k" ] && printf 'export KCMRUN_LAB_%s=%q\n' "$(echo "$k" | tr '[:lower:]' '[:upper:]')" "$v"
  done < <(cluster_vars)
  return 0
}

verb=${1:-}
[ $# -gt 0 ] && shift
case $verb in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  status) cmd_status ;;
  stop) cmd_stop "$@" ;;
  start) cmd_start "$@" ;;
  ssh) cmd_ssh "$@" ;;
  exec) cmd_exec "$@" ;;
  env) cmd_env ;;
  *) usage ;;
esac
