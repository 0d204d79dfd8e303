#!/bin/bash
# Files at real size on the lab (issue 14):
#   test_files.sh big|killed|pair|diff|become
# big:    a 64 MiB file to 3 nodes: every node's sha256 = the local one, peak
#         RSS < 96 MiB; the rerun changes nothing and moves < 1 MiB.
# killed: kcmrun killed (-9) mid-transfer: the old file is intact; the next
#         run leaves no temp file.
# pair:   the second rename of a cert/key pair blocked (bind mount): the run
#         fails on that node; unblocked, the rerun leaves a matching pair.
# diff:   --diff of a large/binary file prints sizes and checksums; a small
#         text file gets a unified diff with key material redacted.
# become: a non-root login user with sudo: owner, mode and content are right,
#         nothing is created in the user's home, the rerun changes nothing;
#         become_user = nobody gets a file owned by nobody; kill -9 in the
#         middle of a 120 MB become put leaves no file outside the
#         destination's folder, and the next run removes its temp.
# Every case puts the lab back on exit (links unshaped, mounts gone, files removed).
set -e
. "$(dirname "$0")/../lib.sh"
eval "$("$KCMRUN" lab env)"
HERE=$(cd "$(dirname "$0")" && pwd)
NODES=($KCMRUN_LAB_NODES)
INV=$KCMRUN_LAB_INVENTORY
SD=$T/state
DST=/opt/kcm-files/payload.bin
lx() { "$KCMRUN" lab exec "$@"; }
veth() { echo "kcm-$KCMRUN_LAB_NAME-${1#node}"; }
kcm() { run "$KCMRUN" --state-dir "$SD" "$@"; }
sha_on() { lx "$1" sh -c "sha256sum < '$2' 2>/dev/null | cut -c1-64"; }
tmps_on() { lx "$1" sh -c "ls -a '$2' 2>/dev/null | grep -E '\.kcm-[0-9a-f.]+\.tmp$'" || true; }
changed_count() { awk '/^RECAP/{r=1} r && $1 ~ /^node/ {s+=$3} END{print s+0}' "$T/out"; }
luaq() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

restore() {
  set +e
  [ -n "${BG:-}" ] && kill -9 "$BG" 2>/dev/null
  for n in "${NODES[@]}"; do
    tc qdisc del dev "$(veth "$n")" root 2>/dev/null
    lx "$n" sh -c 'mountpoint -q /etc/kcm-pair/pair.pem && umount /etc/kcm-pair/pair.pem; rm -rf /opt/kcm-files /etc/kcm-pair /etc/kcm-become /run/kcm-files-mark'
  done
}
trap 'restore >/dev/null 2>&1; rm -rf "$T"' EXIT
restore >/dev/null 2>&1

case "$1" in
big)
  head -c 64M /dev/urandom >"$T/big.bin"
  want=$(sha256sum <"$T/big.bin" | cut -c1-64)
  # Under ASan, freed memory waits in a 256 MB quarantine by design: keep it
  # small so the bound measures kcmrun's buffers (ignored by normal builds).
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
  KCM_PUT_SRC=$T/big.bin run /usr/bin/time -o "$T/rss" -f %M "$KCMRUN" --state-dir "$SD" -i "$INV" "$HERE/put.lua"
  expect_rc 0 "first put"
  for n in "${NODES[@]}"; do
    [ "$(sha_on "$n" $DST)" = "$want" ] || fail "$n: sha256 of $DST differs from the local file"
    grep -qE "^bytes $n ([0-9]+) " "$T/out" || fail "$n: no byte counters"
    sent=$(awk -v n="$n" '$1=="bytes" && $2==n {print $3}' "$T/out")
    [ "$sent" -ge $((64 * 1024 * 1024)) ] || fail "$n: counters say $sent bytes sent for a 64 MiB file (counters broken)"
  done
  rss=$(tail -1 "$T/rss")
  [ "$rss" -lt $((96 * 1024)) ] || fail "peak RSS ${rss} KiB >= 96 MiB"
  pass "64 MiB to ${#NODES[@]} nodes: checksums equal, peak RSS ${rss} KiB"
  KCM_PUT_SRC=$T/big.bin kcm -i "$INV" "$HERE/put.lua"
  expect_rc 0 "rerun"
  [ "$(changed_count)" = 0 ] || { cat "$T/out"; fail "rerun changed something"; }
  for n in "${NODES[@]}"; do
    read -r sent recv < <(awk -v n="$n" '$1=="bytes" && $2==n {print $3, $4}' "$T/out")
    [ -n "$sent" ] || fail "$n: no byte counters"
    [ $((sent + recv)) -lt $((1024 * 1024)) ] || fail "$n: rerun moved $sent + $recv bytes (>= 1 MiB)"
    pass "$n: rerun moved $sent bytes out, $recv in"
  done
  ;;
killed)
  head -c 64M /dev/urandom >"$T/old.bin"
  head -c 64M /dev/urandom >"$T/new.bin"
  old=$(sha256sum <"$T/old.bin" | cut -c1-64)
  KCM_PUT_SRC=$T/old.bin kcm -i "$INV" "$HERE/put.lua"
  expect_rc 0 "old file"
  # ~5 s per transfer: time to see the temp file and kill in the middle
  for n in "${NODES[@]}"; do tc qdisc add dev "$(veth "$n")" root tbf rate 100mbit burst 64kb latency 400ms; done
  KCM_PUT_SRC=$T/new.bin "$KCMRUN" --state-dir "$SD" -i "$INV" "$HERE/put.lua" >"$T/out" 2>"$T/err" & BG=$!
  for _ in $(seq 1 200); do [ -n "$(tmps_on node1 /opt/kcm-files)" ] && break; sleep 0.05; done
  [ -n "$(tmps_on node1 /opt/kcm-files)" ] || { cat "$T/out" "$T/err"; fail "never saw the transfer's temp file"; }
  sleep 0.5
  kill -9 "$BG"; wait "$BG" 2>/dev/null || true; BG=
  for n in "${NODES[@]}"; do tc qdisc del dev "$(veth "$n")" root; done
  for n in "${NODES[@]}"; do
    [ "$(sha_on "$n" $DST)" = "$old" ] || fail "$n: the old file was not intact after kill -9"
  done
  [ -n "$(tmps_on node1 /opt/kcm-files)" ] || fail "the killed transfer left no temp file (was it killed mid-transfer?)"
  pass "killed mid-transfer: old file intact on every node, temp left on node1"
  # the next run with the old content: nothing to change, the temp still goes
  KCM_PUT_SRC=$T/old.bin kcm -i "$INV" "$HERE/put.lua"
  expect_rc 0 "run after the kill"
  [ "$(changed_count)" = 0 ] || { cat "$T/out"; fail "the run after the kill changed something"; }
  for n in "${NODES[@]}"; do
    [ -z "$(tmps_on "$n" /opt/kcm-files)" ] || fail "$n: temp file left after the next run: $(tmps_on "$n" /opt/kcm-files)"
    [ "$(sha_on "$n" $DST)" = "$old" ] || fail "$n: file changed"
  done
  pass "next run: no temp file left, file unchanged"
  ;;
pair)
  gen() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/$1-key.pem" -out "$T/$1.pem" -subj "/CN=$1" -days 2 2>/dev/null; }
  matches() {   # the pair on node $1 matches (same public key)
    local c k
    c=$(lx "$1" openssl x509 -noout -pubkey -in /etc/kcm-pair/pair.pem)
    k=$(lx "$1" openssl pkey -pubout -in /etc/kcm-pair/pair-key.pem)
    [ -n "$c" ] && [ "$c" = "$k" ]
  }
  pk() { lx "$1" openssl pkey -pubout -in /etc/kcm-pair/pair-key.pem; }
  gen a; gen b
  KCM_PAIR_CERT=$T/a.pem KCM_PAIR_KEY=$T/a-key.pem kcm -i "$INV" "$HERE/pair.lua"
  expect_rc 0 "pair a"
  for n in "${NODES[@]}"; do matches "$n" || fail "$n: pair a does not match"; done
  # block the second rename (the certificate's) on node2
  lx node2 mount --bind /etc/kcm-pair/pair.pem /etc/kcm-pair/pair.pem
  KCM_PAIR_CERT=$T/b.pem KCM_PAIR_KEY=$T/b-key.pem kcm -i "$INV" "$HERE/pair.lua"
  expect_rc 4 "pair b with node2's certificate rename blocked"
  grep -qE "FAILED|failed" "$T/out" || fail "no failure reported"
  bpub=$(openssl pkey -pubout -in "$T/b-key.pem")
  [ "$(pk node2)" = "$bpub" ] || fail "node2: the key was not renamed first"
  matches node2 && fail "node2: the pair matches although the certificate rename was blocked (test broken)"
  for n in node1 node3; do matches "$n" || fail "$n: pair b does not match"; done
  pass "blocked: node2 failed between the renames (key first), the others have pair b"
  lx node2 umount /etc/kcm-pair/pair.pem
  KCM_PAIR_CERT=$T/b.pem KCM_PAIR_KEY=$T/b-key.pem kcm -i "$INV" "$HERE/pair.lua"
  expect_rc 0 "rerun"
  for n in "${NODES[@]}"; do
    matches "$n" || fail "$n: the pair does not match after the rerun"
    [ "$(pk "$n")" = "$bpub" ] || fail "$n: not pair b"
    [ -z "$(tmps_on "$n" /etc/kcm-pair)" ] || fail "$n: temp files left: $(tmps_on "$n" /etc/kcm-pair)"
  done
  [ "$(lx node2 stat -c %a /etc/kcm-pair/pair-key.pem)" = 600 ] || fail "node2: key mode not 0600"
  pass "rerun repaired node2: x509 -pubkey = pkey -pubout on every node"
  ;;
diff)
  head -c $((2 * 1024 * 1024)) /dev/urandom >"$T/big.bin"
  KCM_PUT_SRC=$T/big.bin kcm -i "$INV" "$HERE/put.lua"
  expect_rc 0 "big file"
  head -c $((2 * 1024 * 1024)) /dev/urandom >"$T/big2.bin"
  want=$(sha256sum <"$T/big2.bin" | cut -c1-64)
  KCM_PUT_SRC=$T/big2.bin run timeout 60 "$KCMRUN" --state-dir "$SD" -i "$INV" --check --diff "$HERE/put.lua"
  expect_rc 0 "--check --diff"
  expect_out "node1: $DST: binary or large content differs: remote 2097152 bytes, sha256 [0-9a-f]{64}; new 2097152 bytes, sha256 $want"
  grep -q '^ *@@' "$T/out" && fail "a diff was computed for a binary file"
  # a text file larger than 1 MiB: sizes and checksums too
  yes 'line of text' | head -c $((1100 * 1024)) >"$T/text.txt"
  KCM_PUT_SRC=$T/text.txt run timeout 60 "$KCMRUN" --state-dir "$SD" -i "$INV" --check --diff "$HERE/put.lua"
  expect_rc 0 "--check --diff (large text)"
  expect_out "binary or large content differs: remote 2097152 bytes"
  grep -q '^ *@@' "$T/out" && fail "a diff was computed for a 1.1 MiB file"
  # small text with a private key: a diff, redacted
  printf 'a=1\nb=2\n' >"$T/small.txt"
  KCM_PUT_SRC=$T/small.txt kcm -i "$INV" "$HERE/put.lua"
  expect_rc 0 "small file"
  { printf 'a=1\nb=3\n'; openssl genpkey -algorithm ed25519 2>/dev/null; } >"$T/small2.txt"
  secret=$(sed -n 4p "$T/small2.txt")   # the key body (line 3 is BEGIN)
  [ ${#secret} -gt 20 ] || fail "no key body in the test file"
  KCM_PUT_SRC=$T/small2.txt kcm -i "$INV" --check --diff "$HERE/put.lua"
  expect_rc 0 "--check --diff (small)"
  expect_out '^ *-b=2$'
  expect_out '^ *\+b=3$'
  grep -qF -- "$secret" "$T/out" && fail "key material in the diff"
  pass "--diff: sizes and checksums for large/binary files, redacted unified diff for small text"
  ;;
become)
  for n in "${NODES[@]}"; do
    lx "$n" sh -c 'id deploy >/dev/null 2>&1 || useradd -m -s /bin/sh deploy
      install -d -o deploy -g deploy -m 0700 /home/deploy/.ssh
      install -o deploy -g deploy -m 0600 /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys
      echo "deploy ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/kcm-deploy && chmod 0440 /etc/sudoers.d/kcm-deploy'
    lx "$n" su -s /bin/sh deploy -c 'sudo -n true' || fail "$n: sudo does not work for deploy (is sudo installed on the host, node restarted since?)"
  done
  printf 'local inv = dofile(%s)\ninv.ssh.user = "deploy"\ninv.ssh.become = true\nreturn inv\n' "$(luaq "$INV")" >"$T/inv.lua"
  # nothing the run does may create anything in the login user's home or
  # in a shared temp folder (the old engine staged there)
  for n in "${NODES[@]}"; do lx "$n" touch /run/kcm-files-mark; done
  new_files() { lx "$1" sh -c 'find /home/deploy /tmp /var/tmp -xdev -newer /run/kcm-files-mark ! -type d 2>/dev/null | grep -v "^/tmp/kcmtest" || true'; }
  head -c 8M /dev/urandom >"$T/b.bin"
  want=$(sha256sum <"$T/b.bin" | cut -c1-64)
  KCM_PUT_SRC=$T/b.bin KCM_PUT_DST=/etc/kcm-become/sub/b.bin KCM_PUT_MODE=0640 kcm -i "$T/inv.lua" "$HERE/put.lua"
  expect_rc 0 "become put"
  for n in "${NODES[@]}"; do
    [ "$(sha_on "$n" /etc/kcm-become/sub/b.bin)" = "$want" ] || fail "$n: content differs"
    [ "$(lx "$n" stat -c '%U %a' /etc/kcm-become/sub/b.bin)" = "root 640" ] || fail "$n: owner/mode: $(lx "$n" stat -c '%U %a' /etc/kcm-become/sub/b.bin)"
    [ -z "$(new_files "$n")" ] || fail "$n: files created outside the destination's folder: $(new_files "$n")"
    [ -z "$(tmps_on "$n" /etc/kcm-become/sub)" ] || fail "$n: temp left next to the target"
  done
  pass "become: content, owner root, mode 0640; no temp left"
  KCM_PUT_SRC=$T/b.bin KCM_PUT_DST=/etc/kcm-become/sub/b.bin KCM_PUT_MODE=0600 kcm -i "$T/inv.lua" "$HERE/put.lua"
  expect_rc 0 "become mode change"
  expect_out "put /etc/kcm-become/sub/b.bin \(mode\)"
  [ "$(lx node1 stat -c '%a' /etc/kcm-become/sub/b.bin)" = 600 ] || fail "mode not fixed"
  KCM_PUT_SRC=$T/b.bin KCM_PUT_DST=/etc/kcm-become/sub/b.bin KCM_PUT_MODE=0600 kcm -i "$T/inv.lua" "$HERE/put.lua"
  expect_rc 0 "become rerun"
  [ "$(changed_count)" = 0 ] || { cat "$T/out"; fail "become rerun changed something"; }
  pass "become: mode fixed elevated, rerun changes nothing"
  # become_user = nobody: the file is written as nobody, so nobody owns it
  for n in "${NODES[@]}"; do lx "$n" install -d -o nobody -g nogroup -m 0755 /etc/kcm-become/nobody; done
  printf 'local inv = dofile(%s)\ninv.ssh.become_user = "nobody"\nreturn inv\n' "$(luaq "$T/inv.lua")" >"$T/inv-nobody.lua"
  KCM_PUT_SRC=$T/b.bin KCM_PUT_DST=/etc/kcm-become/nobody/b.bin KCM_PUT_MODE=0600 kcm -i "$T/inv-nobody.lua" "$HERE/put.lua"
  expect_rc 0 "become_user nobody"
  for n in "${NODES[@]}"; do
    [ "$(lx "$n" stat -c '%U %a' /etc/kcm-become/nobody/b.bin)" = "nobody 600" ] || fail "$n: become_user nobody: $(lx "$n" stat -c '%U %a' /etc/kcm-become/nobody/b.bin)"
  done
  pass "become_user = nobody: the file is nobody's, mode 0600"
  # kill -9 in the middle of a 120 MB become put
  head -c 120M /dev/urandom >"$T/huge.bin"
  for n in "${NODES[@]}"; do tc qdisc add dev "$(veth "$n")" root tbf rate 200mbit burst 64kb latency 400ms; done
  KCM_PUT_SRC=$T/huge.bin KCM_PUT_DST=/etc/kcm-become/sub/huge.bin "$KCMRUN" --state-dir "$SD" -i "$T/inv.lua" "$HERE/put.lua" >"$T/out" 2>"$T/err" & BG=$!
  for _ in $(seq 1 200); do [ -n "$(tmps_on node1 /etc/kcm-become/sub)" ] && break; sleep 0.05; done
  [ -n "$(tmps_on node1 /etc/kcm-become/sub)" ] || { cat "$T/out" "$T/err"; fail "never saw the become transfer's temp file"; }
  sleep 0.5
  kill -9 "$BG"; wait "$BG" 2>/dev/null || true; BG=
  for n in "${NODES[@]}"; do tc qdisc del dev "$(veth "$n")" root; done
  [ -n "$(tmps_on node1 /etc/kcm-become/sub)" ] || fail "the killed become put left no temp (was it killed mid-transfer?)"
  for n in "${NODES[@]}"; do
    [ -z "$(new_files "$n")" ] || fail "$n: files created outside the destination's folder: $(new_files "$n")"
  done
  pass "kill -9 mid become put: its temp is next to the target, nothing in the login user's home or /tmp"
  KCM_PUT_SRC=$T/huge.bin KCM_PUT_DST=/etc/kcm-become/sub/huge.bin kcm -i "$T/inv.lua" "$HERE/put.lua"
  expect_rc 0 "become put after the kill"
  want=$(sha256sum <"$T/huge.bin" | cut -c1-64)
  for n in "${NODES[@]}"; do
    [ -z "$(tmps_on "$n" /etc/kcm-become/sub)" ] || fail "$n: temp left after the next run: $(tmps_on "$n" /etc/kcm-become/sub)"
    [ "$(sha_on "$n" /etc/kcm-become/sub/huge.bin)" = "$want" ] || fail "$n: 120 MB content differs"
    [ -z "$(new_files "$n")" ] || fail "$n: files created outside the destination's folder: $(new_files "$n")"
  done
  pass "next run: 120 MB in place, the killed run's temp removed, still nothing in the login user's home"
  ;;
*) echo "usage: $0 big|killed|pair|diff|become" >&2; exit 2 ;;
esac
