#!/bin/bash
# The first process of a lab node. kcmlab.sh starts it as
#   nsenter --net=<node netns> unshare --mount --uts --ipc --pid --cgroup --fork \
#       --propagation private node-init.sh NAME NODEDIR LABDIR HOST_MNTNS
# so it runs as PID 1 of fresh pid/mount/uts/ipc/cgroup namespaces inside the node's network
# namespace. It builds the node's root (overlay: lower = host /, upper = the node's disk),
# pivots into it and execs the host's real systemd as the node's init.
set -eu
NAME=$1 D=$2 LABDIR=$3 HOST_MNTNS=$4

# Everything below mounts and pivots: doing that in the host's mount namespace would wreck
# the host. PID 1 of the machine may not be an ordinary init (its /proc/1/ns can be
# unreadable), so compare with the mount namespace of the lab process that started us.
[ "$$" = 1 ] || { echo "node-init: refusing: not PID 1 of a new pid namespace" >&2; exit 1; }
[ "$(readlink /proc/self/ns/mnt)" != "$HOST_MNTNS" ] ||
  { echo "node-init: refusing: still in the host's mount namespace" >&2; exit 1; }

exec >>"$D/console.log" 2>&1 </dev/null
echo "node-init: $NAME booting at $(date +%T.%N)"

R=$D/rootfs
mount -t overlay "kcmlab-$NAME" -o "lowerdir=/,upperdir=$D/upper,workdir=$D/work" "$R"

# The lab's own state (client key, other nodes' disks) must not be visible in a node; an
# overlay also refuses lookups into its own upper dir through the lower layer.
if [ -d "$R$LABDIR" ]; then mount -t tmpfs -o mode=700,size=64k kcmlab-hidden "$R$LABDIR"; fi

# /proc of the node's pid namespace, with /proc/sys read-only: systemd-sysctl and binfmt are
# then skipped and nothing in a node can change the host's kernel settings.
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind /dev/null "$R/proc/sysrq-trigger" 2>/dev/null || true

# sysfs read-only (systemd-udevd is skipped); it shows the node's own network devices
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
# The cgroup namespace is rooted at the node's own cgroup2 subtree: systemd sees a pure
# cgroup2 tree and runs in unified mode.
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"

# a minimal /dev: no host devices beyond the harmless character devices
mount -t tmpfs -o mode=755,size=4m,nosuid dev "$R/dev"
for spec in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r f major minor <<<"$spec"
  mknod -m 666 "$R/dev/$f" c "$major" "$minor"
done
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
: >"$R/dev/console"
mount --bind "$D/console.log" "$R/dev/console"

# a private /tmp, empty at every boot like a real machine's tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$R/tmp"

hostname "$NAME"
cd "$R"
pivot_root . .
umount -l .

# Drop the capabilities a container must not have (as systemd-nspawn does), and start
# systemd with a clean environment; container= tells it that it runs in a container.
exec setpriv --bounding-set -sys_module,-sys_time,-sys_rawio,-syslog,-mac_admin,-mac_override,-audit_control,-audit_read,-wake_alarm,-block_suspend,-sys_pacct \
  env -i container=kcmlab TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd
