#!/bin/bash
# No function in engine/*.c or lua/kcm/**/*.lua is longer than 80 lines, unless
# the line right above it is a comment that starts with "long:" and says why
# (issue 13). Lua functions are measured by luac5.4's own line ranges; C
# functions by their definition line and closing brace in column 0 (the
# project's style). Usage: function_length.sh [source dir] [limit]
set -euo pipefail
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
limit=${2:-80}
cd "$src"
command -v luac5.4 >/dev/null || { echo "FAIL: luac5.4 not found (apt-get install lua5.4)"; exit 1; }
out=$(
  for f in $(find lua/kcm -name '*.lua' | sort); do
    luac5.4 -p -l -l -o /dev/null "$f" | awk -v F="$f" -v L="$limit" '
      /^function </ { if (match($0, /:[0-9]+,[0-9]+>/)) {
        split(substr($0, RSTART + 1, RLENGTH - 2), a, ","); n = a[2] - a[1] + 1
        if (n > L) print F ":" a[1] ": " n " lines" } }'
  done | while IFS=: read -r f line rest; do
    prev=$(sed -n "$((line - 1))p" "$f")
    [[ "$prev" =~ ^[[:space:]]*--[[:space:]]*long: ]] || echo "$f:$line:$rest"
  done
  for f in engine/*.c; do
    awk -v F="$f" -v L="$limit" '
      /^[A-Za-z_].*\(/ && !/;[[:space:]]*$/ { if (!open) { def = NR; above = prevline } }
      /^\{/ { start = def; why = above; open = 1 }
      /^\}/ { if (open && NR - start + 1 > L && why !~ /^[[:space:]]*(\/\*|\/\/|\*)[[:space:]]*long:/)
                print F ":" start ": " NR - start + 1 " lines"; open = 0 }
      { prevline = $0 }' "$f"
  done
)
if [ -n "$out" ]; then
  echo "FAIL: functions over $limit lines (split them, or put a '-- long: why' / '/* long: why */' comment right above):"
  echo "$out"
  exit 1
fi
echo "ok: no function over $limit lines in engine/ and lua/kcm/"
