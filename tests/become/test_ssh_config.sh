#!/bin/bash
# ssh_config read like OpenSSH: for each name, what kcmrun resolves
# (HostName, Port, User, first IdentityFile, UserKnownHostsFile) equals what
# OpenSSH's own `ssh -G` says. Cases: trailing wildcard blocks (matched
# against the name as given, not a substituted HostName), first value wins,
# negation, comma lists, '=' syntax, quotes, Match, Include, %-tokens.
set -e
. "$(dirname "$0")/../lib.sh"
command -v ssh >/dev/null || fail "OpenSSH client (the oracle) is not installed"
mkdir -p "$T/inc"
cat > "$T/inc/extra.conf" <<'CFG'
Host inc*
  HostName 10.9.9.9
  Port 2299
CFG
cat > "$T/config" <<CFG
# aliases with their addresses first, common settings in a trailing block
Host m1
  HostName 10.9.0.1
Host m2
  HostName=10.9.0.2
  Port 2202
Host m3 !m3x
  HostName 10.9.0.3
Host *.example !skip.example
  User "ex user"
  Port 2200
Include $T/inc/*.conf
Host m* inc*
  HostName wild.%h
  Port 2222
  User deploy
  IdentityFile ~/.ssh/lab_%h_%r
  IdentityFile /second/key
  UserKnownHostsFile ~/kh/%h
Match originalhost x* !user nobody
  HostName matched.%h
Host *
  User fallback
  Port 2023
CFG
NAMES=(m1 m2 m3 m3x mzz a.example skip.example xa inc1 other)
# first value wins: m1..m3 keep their own HostName, mzz takes the wildcard's
"$KCMRUN" "$(dirname "$0")/resolve.lua" "$T/config" "${NAMES[@]}" > "$T/ours"
n=0
while read -r name host port user ident kh; do
  G=$(ssh -G -F "$T/config" "$name" 2>/dev/null)
  g() { echo "$G" | awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }'; }
  want_host=$(g hostname); want_port=$(g port); want_user=$(g user)
  [ "$host" != - ] || host=$name
  [ "$host" = "$want_host" ] || fail "$name: HostName $host, ssh -G says $want_host"
  [ "$port" != - ] || port=22
  [ "$port" = "$want_port" ] || fail "$name: Port $port, ssh -G says $want_port"
  [ "${user//_/ }" = "$want_user" ] || [ "$user" = "$want_user" ] || fail "$name: User $user, ssh -G says $want_user"
  if [ "$ident" != - ]; then
    # ssh -G prints IdentityFile unexpanded: expand %h %r ~ as ssh does when it uses it
    w=$(g identityfile); w=${w//%h/$want_host}; w=${w//%r/$want_user}; w=${w/#\~/$HOME}
    [ "$ident" = "$w" ] || fail "$name: IdentityFile $ident, ssh -G says $w"
  fi
  if [ "$kh" != - ]; then
    w=$(g userknownhostsfile | cut -d' ' -f1)
    [ "$kh" = "$w" ] || fail "$name: UserKnownHostsFile $kh, ssh -G says $w"
  fi
  n=$((n + 1))
done < <(sed 's/ex user/ex_user/' "$T/ours")
[ "$n" = "${#NAMES[@]}" ] || fail "resolved $n of ${#NAMES[@]} names"
grep -q "^mzz wild.mzz 2222 " "$T/ours" || { cat "$T/ours"; fail "mzz: the wildcard block's HostName"; }
grep -q "^m1 10.9.0.1 2222 deploy $HOME/.ssh/lab_10.9.0.1_deploy $HOME/kh/10.9.0.1$" "$T/ours" ||
  { cat "$T/ours"; fail "the trailing 'Host m*' block did not apply to m1"; }
# a malformed value is an error naming file and line
printf 'Host x\n  Port seventy\n' > "$T/bad"
run "$KCMRUN" "$(dirname "$0")/resolve.lua" "$T/bad" x
[ "$RC" != 0 ] || fail "a bad Port was accepted"
expect_err "$T/bad:2: Port seventy is not a TCP port"
pass "$n names resolve as ssh -G does (trailing wildcard block, first value wins, negation, Match, Include, tokens)"
