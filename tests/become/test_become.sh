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
  pass "run (argv, string, env, stdin, become_user), stat/get/mkdir/remove through sudo like SFTP, systemd helper, step and call overrides"
  ;;
denied)
  # without become: the first failure names the node, the path and the fix
  inventory deploy '' > "$T/inv.lua"
  kcmrun -i "$T/inv.lua" "$PB"
  expect_rc 4 "deploy without become"
  for n in "${NODES[@]}"; do
    grep -A1 -E "^  FAILED +$n " "$T/out" | grep -qE -- "$n: [a-z]+ /[^ ]+: permission denied \(login user deploy; set become = true\)" ||
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
  printf 'wrong-%s\n' "$pw" > "$T/wrong"
  inventory deploypw "    become = true,\n    become_password_file = \"$T/wrong\"," > "$T/inv-wrong.lua"
  t0=$(date +%s)
  kcmrun -i "$T/inv-wrong.lua" "$(dirname "$0")/password.lua"
  t=$(( $(date +%s) - t0 ))
  expect_rc 4 "wrong become password"
  [ "$t" -lt 60 ] || fail "wrong password took ${t}s"
  expect_out "node1: sudo rejected the become password for deploypw"
  ! grep -qF -- "wrong-$pw" "$T/out" "$T/err" || fail "the wrong password appears in the output"
  pass "no password: '$first...' on every node in ${t}s; file and env passwords work and never show; a wrong one is named"
  ;;
*) fail "unknown case $1" ;;
esac
