#!/bin/bash
# Engine benchmarks: scheduler round trip and start-up time.
set -eu
KCMRUN=${KCMRUN:-$(cd "$(dirname "$0")/../.." && pwd)/build/kcmrun}
echo "## engine ($(date -u +%F), $(nproc) cores, $(uname -r))"
"$KCMRUN" "$(dirname "$0")/roundtrip.lua"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 20 --runs 200 --export-markdown /dev/stdout "$KCMRUN --version" 2>/dev/null | tail -n 3
fi
