#!/bin/bash
# A throwaway OpenSSH server on 127.0.0.1 for the ssh tests that need no lab:
# its own host key, an authorized client key, a log file to count logins.
#
#   sshd.sh up DIR PORT    # writes DIR/{host_key,client_key,known_hosts,inventory.lua,sshd.log,sshd.pid}
#   sshd.sh down DIR       # stops the sshd started for DIR (by its pid file only)
set -eu
cmd=$1 dir=$2
case $cmd in
up)
  port=$3
  mkdir -p "$dir" && chmod 700 "$dir"
  rm -f "$dir"/host_key* "$dir"/client_key* "$dir"/wrong_key*
  ssh-keygen -q -t ed25519 -N '' -C kcm-test-host -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -C kcm-test-client -f "$dir/client_key"
  ssh-keygen -q -t ed25519 -N '' -C kcm-test-wrong -f "$dir/wrong_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" > "$dir/known_hosts"
  mkdir -p /run/sshd
  : > "$dir/sshd.log"; : > "$dir/sftp.log"
  cat > "$dir/sshd_config" <<CFG
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
LogLevel INFO
MaxSessions 200
MaxStartups 100:30:200
# sftp-server logs every open with flags and mode (tests check the temp file mode)
Subsystem sftp /usr/lib/openssh/sftp-server -e -l INFO 2>>$dir/sftp.log
CFG
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  for _ in $(seq 1 100); do
    [ -s "$dir/sshd.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  cat > "$dir/inventory.lua" <<INV
return {
  ssh = { identity = "$dir/client_key", known_hosts = "$dir/known_hosts", user = "root",
          connect_timeout = 5 },
  nodes = { { name = "local1", host = "127.0.0.1", port = $port, user = "root" } },
  groups = { all = { "local1" } },
}
INV
  ;;
down)
  if [ -s "$dir/sshd.pid" ]; then
    pid=$(cat "$dir/sshd.pid")
    # only our own listener: its command line names our config file
    if grep -q "$dir/sshd_config" "/proc/$pid/cmdline" 2>/dev/null; then kill "$pid"; fi
    rm -f "$dir/sshd.pid"
  fi
  ;;
esac
