#!/bin/bash
# The procedure's systemd unit, rendered by kcmrun from a template, is
# byte-identical to what bash makes of the procedure's heredoc with the same
# environment.sh; and where bash silently renders an unset variable as "",
# kcmrun stops with file:line:col.
set -eu
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
FIX=$HERE/fixtures
TPL=$FIX/kube-controller-manager.service.in

# The heredoc fixture must still be the procedure's text. The procedure ships
# in the tree (docs/procedure/, so a fresh clone has it); when the team's
# shared/seed is next to the checkout (or a worktree of it), the shipped copy
# must equal it. A missing procedure is a failure, never a skipped comparison.
SEED=${KCM_SEED:-$SRC/docs/procedure/kube-controller-manager-ha.md}
[ -r "$SEED" ] || fail "the procedure ($SEED) is missing: the drift check cannot be skipped"
for c in "$SRC/../shared/seed" "$(git -C "$SRC" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)/../../shared/seed"; do
  if [ -r "$c/kube-controller-manager-ha.md" ]; then
    cmp -s "$c/kube-controller-manager-ha.md" "$SEED" ||
      fail "$SEED differs from the team's $c/kube-controller-manager-ha.md: copy it over"
    pass "the shipped procedure equals shared/seed"
    break
  fi
done
if true; then
  sed -n '/^cat > kube-controller-manager.service <<EOF$/,/^EOF$/p' "$SEED" >"$T/seed-block"
  sed -n '/^cat > kube-controller-manager.service <<EOF$/,/^EOF$/p' "$FIX/unit-heredoc.sh" >"$T/fixture-block"
  [ -s "$T/seed-block" ] || fail "no unit heredoc found in $SEED"
  cmp -s "$T/seed-block" "$T/fixture-block" || { diff "$T/seed-block" "$T/fixture-block"; fail "unit-heredoc.sh drifted from the procedure"; }
  pass "unit-heredoc.sh carries the procedure's heredoc verbatim"
fi

PLAYBOOK_TPL=$SRC/playbooks/templates/kube-controller-manager.service.in
mkdir -p "$T/bash"
bash "$FIX/unit-heredoc.sh" "$FIX/environment.sh" "$T/bash"
for tpl in "$TPL" "$PLAYBOOK_TPL"; do
  rm -f "$T/kcmrun.service"
  run env ENV_SH="$FIX/environment.sh" TEMPLATE="$tpl" OUT="$T/kcmrun.service" "$KCMRUN" "$HERE/render_unit.lua"
  expect_rc 0 "kcmrun render_unit.lua $tpl"
  cmp "$T/bash/kube-controller-manager.service" "$T/kcmrun.service" ||
    { diff "$T/bash/kube-controller-manager.service" "$T/kcmrun.service"; fail "$tpl: rendered unit differs from bash's heredoc"; }
  grep -q '^WorkingDirectory=/data/k8s/k8s/kube-controller-manager$' "$T/kcmrun.service" || fail "K8S_DIR not substituted"
  grep -q -- '--service-cluster-ip-range=10.254.0.0/16 \\$' "$T/kcmrun.service" || fail "SERVICE_CIDR not substituted"
  pass "$(basename "$(dirname "$tpl")")/$(basename "$tpl") rendered by kcmrun is byte-identical to bash's heredoc"
done

# The playbook's template for a release without the procedure's removed flags.
run env ENV_SH="$FIX/environment.sh" TEMPLATE="$PLAYBOOK_TPL" OUT="$T/v128.service" VERSION_MINOR=28 \
  "$KCMRUN" "$HERE/render_unit.lua"
expect_rc 0 "render for 1.28"
U=$T/v128.service
for gone in -- --port= --experimental-cluster-signing-duration --horizontal-pod-autoscaler-use-rest-clients --logtostderr; do
  [ "$gone" = -- ] && continue
  ! grep -q -- "$gone" "$U" || { cat "$U"; fail "1.28 unit still has $gone"; }
done
for want in '--cluster-signing-duration=8760h \\$' '--secure-port=10257 \\$' '--bind-address=169.254.77.101 \\$' \
            '--feature-gates=Foo=true \\$' '--profiling=false \\$' '--v=2$' '--service-cluster-ip-range=10.254.0.0/16 \\$'; do
  grep -q -- "$want" "$U" || { cat "$U"; fail "1.28 unit lacks /$want/"; }
done
# every ExecStart line but the last continues; nothing blank inside the command
awk '/^ExecStart=/{on=1} on{ if ($0 ~ /^  --v=/) { on=0; next } if ($0 !~ / \\$/) { print "unterminated: " $0; bad=1 } } END{ exit bad }' "$U" ||
  { cat "$U"; fail "1.28 unit: broken line continuation"; }
pass "playbook template for 1.28 drops the removed flags, keeps the command one logical line"

# The lab's stand-in binary parses flags like the real release of each version
# (unknown or removed flags are an error); `--version` after them exits 0 only
# when all were accepted.
STANDIN=$SRC/lab/standins/kube-controller-manager
exec_args() { sed -n '/^ExecStart=/,/^  --v=/p' "$1" | sed 's/^ExecStart=[^ ]*//; s/ \\$//' | tr '\n' ' '; }
[ -x /usr/bin/python3 ] || fail "python3 is needed for the flag check (the lab's stand-in); apt-get install python3"
[ -r "$STANDIN" ] || fail "the lab's stand-in $STANDIN is missing"
if true; then
  for m in 23 24 25 26 28; do
    run env ENV_SH="$FIX/environment.sh" TEMPLATE="$PLAYBOOK_TPL" OUT="$T/v$m.service" VERSION_MINOR=$m \
      "$KCMRUN" "$HERE/render_unit.lua"
    expect_rc 0 "render for 1.$m"
    # shellcheck disable=SC2046
    KUBE_STANDIN_VERSION=v1.$m.0 /usr/bin/python3 "$STANDIN" $(exec_args "$T/v$m.service") --version >"$T/sv" 2>&1 ||
      { tail -3 "$T/sv"; fail "1.$m: the stand-in rejects the rendered flags"; }
    grep -q "^Kubernetes v1.$m.0$" "$T/sv" || fail "1.$m: stand-in did not accept the flags"
  done
  # and the check can fail: the procedure's own flag set is refused by 1.28
  # shellcheck disable=SC2046
  if KUBE_STANDIN_VERSION=v1.28.0 /usr/bin/python3 "$STANDIN" $(exec_args "$T/bash/kube-controller-manager.service") \
       --version >"$T/sv" 2>&1; then
    fail "the stand-in accepted the procedure's removed flags for 1.28"
  fi
  pass "playbook template's flags are accepted for 1.23 to 1.28 by the lab's flag-checking stand-in"
fi

# Unset SERVICE_CIDR: bash renders an empty value, kcmrun refuses.
mkdir -p "$T/bash2"
bash "$FIX/unit-heredoc.sh" "$FIX/environment-no-cidr.sh" "$T/bash2"
grep -q -- '--service-cluster-ip-range= \\$' "$T/bash2/kube-controller-manager.service" ||
  fail "expected bash to render the unset variable as empty"
line=$(grep -n 'SERVICE_CIDR' "$TPL" | cut -d: -f1)
col=$(grep 'SERVICE_CIDR' "$TPL" | awk '{ print index($0, "${SERVICE_CIDR}") }')
run env ENV_SH="$FIX/environment-no-cidr.sh" TEMPLATE="$TPL" OUT="$T/bad.service" "$KCMRUN" "$HERE/render_unit.lua"
expect_rc 3 "render with SERVICE_CIDR unset"
expect_err "kube-controller-manager.service.in:$line:$col: undefined variable 'SERVICE_CIDR'"
[ ! -e "$T/bad.service" ] || fail "a unit was written despite the error"
pass "undefined variable: kcmrun stops with file:$line:$col where bash writes an empty value"
