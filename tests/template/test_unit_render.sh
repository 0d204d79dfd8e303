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

# The heredoc fixture must still be the procedure's text (when the seed is at hand).
SEED=${KCM_SEED:-$SRC/../shared/seed/kube-controller-manager-ha.md}
if [ -r "$SEED" ]; then
  sed -n '/^cat > kube-controller-manager.service <<EOF$/,/^EOF$/p' "$SEED" >"$T/seed-block"
  sed -n '/^cat > kube-controller-manager.service <<EOF$/,/^EOF$/p' "$FIX/unit-heredoc.sh" >"$T/fixture-block"
  [ -s "$T/seed-block" ] || fail "no unit heredoc found in $SEED"
  cmp -s "$T/seed-block" "$T/fixture-block" || { diff "$T/seed-block" "$T/fixture-block"; fail "unit-heredoc.sh drifted from the procedure"; }
  pass "unit-heredoc.sh carries the procedure's heredoc verbatim"
else
  echo "note: $SEED not found; skipping the drift check against the procedure"
fi

# The playbook's template is this fixture.
cmp -s "$TPL" "$SRC/playbooks/templates/kube-controller-manager.service.in" ||
  fail "playbooks/templates/kube-controller-manager.service.in differs from the tested fixture"

mkdir -p "$T/bash"
bash "$FIX/unit-heredoc.sh" "$FIX/environment.sh" "$T/bash"
run env ENV_SH="$FIX/environment.sh" TEMPLATE="$TPL" OUT="$T/kcmrun.service" "$KCMRUN" "$HERE/render_unit.lua"
expect_rc 0 "kcmrun render_unit.lua"
cmp "$T/bash/kube-controller-manager.service" "$T/kcmrun.service" ||
  { diff "$T/bash/kube-controller-manager.service" "$T/kcmrun.service"; fail "rendered unit differs from bash's heredoc"; }
grep -q '^WorkingDirectory=/data/k8s/k8s/kube-controller-manager$' "$T/kcmrun.service" || fail "K8S_DIR not substituted"
grep -q -- '--service-cluster-ip-range=10.254.0.0/16 \\$' "$T/kcmrun.service" || fail "SERVICE_CIDR not substituted"
pass "unit rendered by kcmrun is byte-identical to bash's heredoc"

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
