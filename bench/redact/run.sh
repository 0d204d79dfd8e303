#!/bin/bash
# Redaction benchmark (issue 25): this tree's redaction (engine/redact.c
# under lua/kcm/redact.lua) against the Lua patterns it replaced (taken
# from git at e8ae6d7), each case in its own process with a 120 s cap.
#   KCMRUN=build/kcmrun bench/redact/run.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
KCMRUN=${KCMRUN:-$HERE/../../build/kcmrun}
OLD=$(mktemp)
trap 'rm -f "$OLD"' EXIT
git -C "$HERE" show e8ae6d7:lua/kcm/redact.lua >"$OLD"
printf '| case | now (ms) | before (ms) |\n| --- | ---: | ---: |\n'
for c in 1mb_line argv_20000 base64_12k_diff token_10k dashes_10k; do
  now=$(REDACT_CASES=$c "$KCMRUN" "$HERE/redact.lua" | cut -f2)
  before=$(REDACT_CASES=$c REDACT_MODULE=$OLD timeout 120 "$KCMRUN" "$HERE/redact.lua" | cut -f2 || true)
  printf '| %s | %s | %s |\n' "$c" "$now" "${before:-> 120000 (stopped)}"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
