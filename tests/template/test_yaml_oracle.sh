#!/bin/bash
# yaml.decode and yaml.encode against an independent reader, PyYAML (YAML 1.1):
# for each fixture, kcmrun's decoded value must equal PyYAML's, and PyYAML must
# read kcmrun's encoding of it back to the same value.
set -eu
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
$PY -c 'import yaml' 2>/dev/null || fail "python3-yaml is required (apt-get install python3-yaml)"
HERE=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$T/canon"
cat >"$T/canon/canon.py" <<'PY'
import sys, yaml
def canon(v):
    if v is None: return "null"
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, int): return "i:%d" % v
    if isinstance(v, float): return "f:%.17g" % v
    if isinstance(v, str): return "s:" + v.encode("utf-8").hex()
    if isinstance(v, list): return "[" + ",".join(canon(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(sorted(canon(k) + "=>" + canon(x) for k, x in v.items())) + "}"
    raise SystemExit("unexpected type %r" % type(v))
with open(sys.argv[1], encoding="utf-8") as f:
    print(canon(yaml.safe_load(f)))
PY

count=0
for f in "$HERE"/fixtures/yaml/*.yaml; do
  b=$(basename "$f" .yaml)
  run env YAML_IN="$f" CANON_OUT="$T/$b.kcm" ENC_OUT="$T/$b.enc.yaml" "$KCMRUN" "$HERE/yaml_oracle.lua"
  expect_rc 0 "kcmrun yaml_oracle.lua $b"
  $PY "$T/canon/canon.py" "$f" >"$T/$b.py"
  if ! cmp -s "$T/$b.py" "$T/$b.kcm"; then
    diff <(tr ',' '\n' <"$T/$b.py") <(tr ',' '\n' <"$T/$b.kcm") | head -20
    fail "$b: yaml.decode differs from PyYAML (< PyYAML, > kcmrun)"
  fi
  $PY "$T/canon/canon.py" "$T/$b.enc.yaml" >"$T/$b.enc.py"
  if ! cmp -s "$T/$b.py" "$T/$b.enc.py"; then
    cat "$T/$b.enc.yaml"
    fail "$b: PyYAML reads yaml.encode's output as a different value"
  fi
  count=$((count + 1))
done
[ "$count" -ge 3 ] || fail "expected at least 3 fixtures, found $count"
pass "yaml oracle: $count documents decode like PyYAML and round-trip through it"
