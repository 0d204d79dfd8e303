#!/bin/bash
# Become (sudo) on the lab: a login user `deploy` with NOPASSWD sudo and
# `deploypw` whose sudo wants a password, both with the lab's key. Cases run
# in order on one lab (ctest DEPENDS); `users` creates them.
set -e
. "$(dirname "$0")/../lib.sh"
eval "$("$KCMRUN" lab env)"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PB="$REPO/playbooks/controller-manager.lua"
SD="$KCMRUN_LAB_DIR/become-state"
SSH=(ssh -F "$KCMRUN_LAB_SSH_CONFIG")
NODES=($KCMRUN_LAB_NODES)
IPS=($KCMRUN_LAB_NODE_IPS)
PW_FILE="$KCMRUN_LAB_DIR/deploypw.password"
on() { "${SSH[@]}" "$1" "${@:2}"; }
kcmrun() { run "$KCMRUN" --state-dir "$SD" --no-lock "$@"; }
changed_steps() { awk '/^== /{s=$2} /^  changed /{print s}' "$T/out" | sort -u | tr '\n' ' '; }

# The lab's inventory with another login user (and more ssh settings).
inventory() {   # inventory USER 'extra ssh lines' > file
  sed -e "s|^    user = \"root\",$|    user = \"$1\",\n$2|" "$KCMRUN_LAB_INVENTORY"
}

case "$1" in
users)
  pub=$(cut -d' ' -f1,2 "$KCMRUN_LAB_IDENTITY.pub")
  [ -n "$pub" ] || fail "no lab public key"
  [ -s "$PW_FILE" ] || { head -c 12 /dev/urandom | base64 | tr -d '/+=' > "$PW_FILE"; chmod 600 "$PW_FILE"; }
  pw=$(cat "$PW_FILE")
  for n in "${NODES[@]}"; do
    # the password arrives on stdin, never on a command line
    printf '%s\n' "$pw" | on "$n" "bash -c $(printf %q '
      set -e; pw=$(cat); pub=$1
      for u in deploy deploypw; do
        id -u "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"
        install -d -m 0700 -o "$u" -g "$u" "/home/$u/.ssh"
        printf "%s\n" "$pub" > "/home/$u/.ssh/authorized_keys"
        chown "$u:$u" "/home/$u/.ssh/authorized_keys"; chmod 600 "/home/$u/.ssh/authorized_keys"
      done
      printf "deploypw:%s\n" "$pw" | chpasswd
      printf "deploy ALL=(ALL) NOPASSWD: ALL\n" > /etc/sudoers.d/kcm-deploy
      printf "deploypw ALL=(ALL) ALL\n" > /etc/sudoers.d/kcm-deploypw
      chmod 0440 /etc/sudoers.d/kcm-deploy /etc/sudoers.d/kcm-deploypw
      visudo -c >/dev/null') users $(printf %q "$pub")"
    [ "$(on "$n" "su - deploy -c 'sudo -n id -u'")" = 0 ] || fail "$n: deploy has no NOPASSWD sudo"
    ! on "$n" "su - deploypw -c 'sudo -n true'" 2>/dev/null || fail "$n: deploypw's sudo asks no password"
    [ "$(ssh -F "$KCMRUN_LAB_SSH_CONFIG" -l deploy "$n" id -un)" = deploy ] || fail "$n: cannot log in as deploy"
  done
  pass "deploy (NOPASSWD sudo) and deploypw (sudo with a password) on ${NODES[*]}, both log in with the lab key"
  ;;
primitives)
  inventory deploy '    become = true,' > "$T/inv.lua"
  kcmrun -i "$T/inv.lua" "$(dirname "$0")/primitives.lua"
  cat "$T/out"
  expect_rc 0 "primitives as deploy with become"
  for s in run files systemd systemd-off cleanup; do grep -q "^== $s" "$T/out" || fail "step $s did not run"; done
  for n in "${NODES[@]}"; do
    ! on "$n" test -e /etc/kcm-become-test || fail "$n: test dir left"
    ! on "$n" test -e /tmp/kcm-become-pwned || fail "$n: a hostile argument ran"
  done
  # a per-node user that overrides ssh.user is reported with -v, not silent
  sed 's|^    { name = "node1", \(.*\)$|    { name = "node1", user = "root", \1|' "$T/inv.lua" > "$T/inv-node.lua"
  grep -q 'name = "node1", user = "root"' "$T/inv-node.lua" || fail "could not derive the inventory"
  kcmrun -i "$T/inv-node.lua" -v --only clean "$(dirname "$0")/primitives.lua"
  expect_rc 0 "per-node user"
  expect_out 'node1: ssh user = "root" \(node node1\) overrides "deploy" \(ssh table\)'
  ! grep -qE 'node[23]: ssh user = "root"' "$T/out" || fail "an override reported for a node without one"
  pass "run (argv, string, env, stdin, become_user), stat/get/mkdir/remove through sudo like SFTP, systemd helper, step and call overrides; -v names a per-node override"
  ;;
denied)
  # without become: the first failure names the node, the path and the fix
  inventory deploy '' > "$T/inv.lua"
  kcmrun -i "$T/inv.lua" "$PB"
  expect_rc 4 "deploy without become"
  for n in "${NODES[@]}"; do
    grep -A1 -E "^  FAILED +$n " "$T/out" | grep -qE -- "$n: [a-z]+ /[^ ]+: (.*: )?permission denied \(login user deploy; set become = true\)" ||
      { cat "$T/out"; fail "$n: no 'permission denied (login user deploy; set become = true)' with node and path"; }
  done
  pass "without become every node fails with: $(grep -m1 -oE 'node1: [a-z]+ /[^ ]+: permission denied.*' "$T/out")"
  ;;
password)
  pw=$(cat "$PW_FILE")
  # no password given: a clear error per node, within the timeouts, no hang
  inventory deploypw '    become = true,' > "$T/inv.lua"
  t0=$(date +%s)
  kcmrun -i "$T/inv.lua" "$(dirname "$0")/password.lua"
  t=$(( $(date +%s) - t0 ))
  expect_rc 4 "sudo that wants a password, none given"
  [ "$t" -lt 30 ] || fail "took ${t}s"
  for n in "${NODES[@]}"; do
    grep -A1 -E "^  FAILED +$n " "$T/out" | grep -qF "$n: sudo requires a password for deploypw: give deploypw NOPASSWD sudo, or set become_password_file" ||
      { cat "$T/out"; fail "$n: no clear sudo-password error"; }
  done
  first=$(grep -m1 -oF "node1: sudo requires a password" "$T/out")
  # the password from a file: works, and appears nowhere
  inventory deploypw "    become = true,\n    become_password_file = \"$PW_FILE\"," > "$T/inv-file.lua"
  kcmrun -i "$T/inv-file.lua" -v --log-json "$T/log.jsonl" "$(dirname "$0")/password.lua"
  cat "$T/out"
  expect_rc 0 "become_password_file"
  ! grep -qF -- "$pw" "$T/out" "$T/err" "$T/log.jsonl" || fail "the password appears in the output"
  # from an environment variable
  inventory deploypw '    become = true,\n    become_password_env = "KCM_TEST_BECOME_PW",' > "$T/inv-env.lua"
  KCM_TEST_BECOME_PW=$pw kcmrun -i "$T/inv-env.lua" "$(dirname "$0")/password.lua"
  expect_rc 0 "become_password_env"
  # a wrong one: a clear error, no hang
  printf 'wrong-%s\n' "$pw" > "$T/wrong"; chmod 600 "$T/wrong"
  inventory deploypw "    become = true,\n    become_password_file = \"$T/wrong\"," > "$T/inv-wrong.lua"
  t0=$(date +%s)
  kcmrun -i "$T/inv-wrong.lua" "$(dirname "$0")/password.lua"
  t=$(( $(date +%s) - t0 ))
  expect_rc 4 "wrong become password"
  [ "$t" -lt 60 ] || fail "wrong password took ${t}s"
  expect_out "node1: sudo rejected the become password for deploypw"
  ! grep -qF -- "wrong-$pw" "$T/out" "$T/err" || fail "the wrong password appears in the output"
  # one sudo (one password check) per node and run when no command has stdin: the watcher
  sudos() { on "$1" journalctl _COMM=sudo --no-pager -o cat | grep -c '^deploypw : .*COMMAND=' || true; }
  declare -A before
  for n in "${NODES[@]}"; do before[$n]=$(sudos "$n"); done
  kcmrun -i "$T/inv-file.lua" "$(dirname "$0")/onesudo.lua"
  expect_rc 0 "stdin-less commands and files as deploypw"
  sleep 1   # journald has taken in what sudo logged
  for n in "${NODES[@]}"; do
    got=$(( $(sudos "$n") - ${before[$n]} ))
    [ "$got" = 1 ] || { on "$n" journalctl _COMM=sudo --no-pager -o cat | tail -8; fail "$n: $got sudo commands for one run (want 1: the watcher)"; }
  done
  pass "no password: '$first...' on every node in ${t}s; file and env passwords work and never show; a wrong one is named; one sudo per node for a run without stdin"
  ;;
noprompt)
  # a password is configured but sudo never asks (deploy's NOPASSWD rule, a
  # root login): it is sent nowhere, so it shows nowhere
  pw=$(cat "$PW_FILE")
  inventory deploy "    become = true,\n    become_password_file = \"$PW_FILE\"," > "$T/inv-deploy.lua"
  sed -e "s|^    user = \"root\",$|    user = \"root\",\n    become = true,\n    become_password_file = \"$PW_FILE\",|" \
    "$KCMRUN_LAB_INVENTORY" > "$T/inv-root.lua"
  grep -q become_password_file "$T/inv-root.lua" || fail "could not derive the root inventory"
  for who in deploy root; do
    kcmrun -i "$T/inv-$who.lua" -v --log-json "$T/log-$who.jsonl" "$(dirname "$0")/noprompt.lua"
    cat "$T/out"
    expect_rc 4 "$who: the failing step fails"
    for n in "${NODES[@]}"; do
      sed -n '/^== stdin/,/^== fails/p' "$T/out" | grep -qE "^  ok +$n " || { cat "$T/out"; fail "$who/$n: step stdin not ok"; }
    done
    for n in "${NODES[@]}"; do
      grep -A2 -E "^  FAILED +$n " "$T/out" | grep -qF "X=x" || { cat "$T/out"; fail "$who/$n: the failing command's stderr is not shown"; }
    done
    ! grep -qF -- "$pw" "$T/out" "$T/err" "$T/log-$who.jsonl" || fail "$who: the become password appears in the output or the log"
  done
  pass "a become password with NOPASSWD sudo and with a root login: never on the command's stdin, output, -v or --log-json"
  ;;
deploy)
  # what the e2e cases deployed as root goes first: deploy has to write it all
  for n in "${NODES[@]}"; do
    on "$n" 'systemctl disable --now kube-controller-manager 2>/dev/null; rm -rf /etc/kubernetes /opt/k8s/bin/kube-controller-manager /etc/systemd/system/kube-controller-manager.service /data/k8s/k8s/kube-controller-manager; systemctl daemon-reload'
    on "$n" 'find /home/deploy /tmp -mindepth 1 | sort' > "$KCMRUN_LAB_DIR/become-before-$n"
  done
  rm -rf "$SD"
  inventory deploy '    become = true,' > "$KCMRUN_LAB_DIR/become-inventory.lua"
  kcmrun -i "$KCMRUN_LAB_DIR/become-inventory.lua" "$PB"
  cat "$T/out"
  expect_rc 0 "deploy as deploy with become"
  # rbac lives in the lab's apiserver, not on the nodes: it is created here
  # unless an earlier test (e2e) already made the binding
  [[ "$(changed_steps)" =~ ^"binary certificate kubeconfig "("rbac ")?"start unit "$ ]] || fail "changed steps: $(changed_steps)"
  for n in "${NODES[@]}"; do
    [ "$(on "$n" systemctl is-active kube-controller-manager)" = active ] || fail "$n: kcm not active"
    [ "$(on "$n" "stat -c '%U:%G %a' /etc/systemd/system/kube-controller-manager.service")" = "root:root 644" ] || fail "$n: unit file not root 0644"
    for f in /etc/kubernetes/cert/kube-controller-manager-key.pem /etc/kubernetes/cert/ca-key.pem /etc/kubernetes/kube-controller-manager.kubeconfig; do
      [ "$(on "$n" "stat -c '%U:%G %a' $f")" = "root:root 600" ] || fail "$n: $f is $(on "$n" "stat -c '%U:%G %a' $f")"
    done
    [ "$(on "$n" "stat -c '%U:%G %a' /opt/k8s/bin/kube-controller-manager")" = "root:root 755" ] || fail "$n: binary owner/mode"
    on "$n" 'find /home/deploy /tmp -mindepth 1 | sort' > "$T/after"
    diff "$KCMRUN_LAB_DIR/become-before-$n" "$T/after" || fail "$n: files left in deploy's home or /tmp"
    [ -z "$(on "$n" find /etc/kubernetes /etc/systemd/system /opt/k8s -name '*.tmp')" ] || fail "$n: temp files left"
  done
  pass "as deploy with become: exit 0, active on ${NODES[*]}, unit root 0644, keys and kubeconfig root 0600, no temp file left"
  ;;
rerun)
  pids=$(for n in "${NODES[@]}"; do on "$n" systemctl show -p MainPID --value kube-controller-manager; done | tr '\n' ' ')
  kcmrun -i "$KCMRUN_LAB_DIR/become-inventory.lua" "$PB"
  expect_rc 0 "rerun as deploy"
  [ -z "$(changed_steps)" ] || { cat "$T/out"; fail "rerun changed: $(changed_steps)"; }
  now=$(for n in "${NODES[@]}"; do on "$n" systemctl show -p MainPID --value kube-controller-manager; done | tr '\n' ' ')
  [ "$now" = "$pids" ] || fail "rerun restarted kcm ($pids -> $now)"
  # the same as deploypw, whose sudo asks a password: 0 changed, no restart
  inventory deploypw "    become = true,\n    become_password_file = \"$PW_FILE\"," > "$T/inv-pw.lua"
  kcmrun -i "$T/inv-pw.lua" "$PB"
  expect_rc 0 "rerun as deploypw (password sudo)"
  [ -z "$(changed_steps)" ] || { cat "$T/out"; fail "rerun as deploypw changed: $(changed_steps)"; }
  now=$(for n in "${NODES[@]}"; do on "$n" systemctl show -p MainPID --value kube-controller-manager; done | tr '\n' ' ')
  [ "$now" = "$pids" ] || fail "rerun as deploypw restarted kcm ($pids -> $now)"
  pass "rerun as deploy and as deploypw (password sudo): 0 changed, no restart (MainPIDs $pids)"
  ;;
checkdiff)
  sums() { for n in "${NODES[@]}"; do on "$n" 'find /etc/kubernetes /etc/systemd/system/kube-controller-manager.service -type f | sort | xargs sha256sum'; done; }
  before=$(sums)
  kcmrun -i "$KCMRUN_LAB_DIR/become-inventory.lua" --check --diff "$PB"
  expect_rc 0 "--check --diff as deploy"
  [ -z "$(changed_steps)" ] || { cat "$T/out"; fail "--check --diff on a converged lab would change: $(changed_steps)"; }
  # a changed flag: the diff of a root-owned unit, read through sudo; nothing written
  kcmrun -i "$KCMRUN_LAB_DIR/become-inventory.lua" --check --diff -e log_level=4 "$PB"
  expect_rc 0 "--check --diff with a changed flag"
  expect_out '^ +\+ +--v=4'
  expect_out '^ +- +--v=2'
  [ "$(sums)" = "$before" ] || fail "--check changed a node"
  pass "--check --diff as deploy: converged lab 0 changes; a flag change shows the unit diff (read through sudo), nothing written"
  ;;
alias)
  # nodes named only by ssh_config aliases; every login setting from Host blocks, the
  # common ones in a trailing wildcard block
  {
    for i in "${!NODES[@]}"; do printf 'Host m%d\n  HostName %s\n' "$((i + 1))" "${IPS[$i]}"; done
    printf 'Host m*\n  Port 22\n  User root\n  IdentityFile %s\n  UserKnownHostsFile %s\n' "$KCMRUN_LAB_IDENTITY" "$KCMRUN_LAB_KNOWN_HOSTS"
  } > "$T/ssh_config"
  names=""; for i in "${!NODES[@]}"; do names+="\"m$((i + 1))\", "; done
  { sed -n '/^  vars = {$/,/^  },$/p' "$KCMRUN_LAB_INVENTORY"
    echo "  ssh = { config = \"$T/ssh_config\" },"
    echo "  nodes = { $names},"
    echo "  groups = { masters = { $names} },"
  } > "$T/body"
  { echo "return {"; cat "$T/body"; echo "}"; } > "$T/inv.lua"
  grep -q '"m1"' "$T/inv.lua" && ! grep -q 'host' "$T/inv.lua" || { cat "$T/inv.lua"; fail "alias inventory"; }
  kcmrun -i "$T/inv.lua" "$PB"
  cat "$T/out"
  expect_rc 0 "deploy through ssh_config aliases"
  for i in "${!NODES[@]}"; do
    n=${NODES[$i]}
    [ "$(on "$n" systemctl is-active kube-controller-manager)" = active ] || fail "$n: kcm not active"
    san=$(on "$n" openssl x509 -noout -ext subjectAltName -in /etc/kubernetes/cert/kube-controller-manager.pem)
    for ip in "${IPS[@]}"; do echo "$san" | grep -qF "IP Address:$ip" || fail "$n: certificate lacks $ip: $san"; done
    ! echo "$san" | grep -qE 'DNS:m[0-9]' || fail "$n: certificate names an alias: $san"
    on "$n" grep -qF -- "--bind-address=${IPS[$i]}" /etc/systemd/system/kube-controller-manager.service || fail "$n: bind address is not ${IPS[$i]}"
  done
  pass "aliases m1..m${#NODES[@]} (HostName/Port/User/IdentityFile/UserKnownHostsFile from Host blocks, a trailing Host m*): deployed; certificate SANs are ${IPS[*]}"
  ;;
*) fail "unknown case $1" ;;
esac
