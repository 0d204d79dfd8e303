#!/bin/bash
# What a run waits for (issue 27, point 4): kcm.progress fed by task.retry,
# shown by kcm.report. A gate on the control machine opens after -e wait=N
# seconds (tests/progress/wait_play.lua); a second step's wait is short.
set -e
. "$(dirname "$0")/../lib.sh"
D=$(cd "$(dirname "$0")" && pwd)
PLAY="$D/wait_play.lua"
kcm() { "$KCMRUN" --state-dir "$T/state" "$@" "$PLAY"; }

case "$1" in
plain)
  # a pipe: plain lines, the first once the wait passed 2 s, then every 10 s
  run kcm -e wait=13
  expect_rc 0 "a 13-s gate"
  n=$(grep -cE '^  progress localhost: waiting for the test gate \(attempt [0-9]+/60\) [0-9]+s$' "$T/out") || true
  [ "$n" = 2 ] || { cat "$T/out"; fail "13-s wait: $n progress lines, expected 2 (at 2 s and 12 s)"; }
  secs=$(sed -nE 's/^  progress localhost: .* ([0-9]+)s$/\1/p' "$T/out" | tr '\n' ' ')
  [[ "$secs" =~ ^(2|3)\ (12|13)\ $ ]] || { cat "$T/out"; fail "progress at ${secs}s, expected about 2 s and 12 s"; }
  ! grep -q $'\e' "$T/out" || { cat -v "$T/out"; fail "escape sequences in a non-TTY's output"; }
  ! grep -q "quick flag" "$T/out" || { cat "$T/out"; fail "a wait under 2 s showed"; }
  pass "non-TTY: a 13-s gate prints 2 progress lines naming it and its attempt, a short wait none"
  ;;
fast)
  run kcm -e wait=0
  expect_rc 0 "fast run"
  ! grep -qE "^  progress |waiting" "$T/out" || { cat "$T/out"; fail "a fast run printed progress"; }
  pass "a fast run prints no progress"
  ;;
quiet)
  run kcm -q -e wait=3 --log-json "$T/events.jsonl"
  expect_rc 0 "-q run"
  ! grep -qE "^  progress |waiting" "$T/out" "$T/err" || { cat "$T/out" "$T/err"; fail "-q printed progress"; }
  expect_file "$T/events.jsonl" '"event":"progress"'
  pass "-q prints no progress (--log-json still gets the event)"
  ;;
json)
  run kcm -e wait=3 --log-json "$T/events.jsonl"
  expect_rc 0 "--log-json run"
  expect_file "$T/events.jsonl" '"event":"progress"'
  grep '"event":"progress"' "$T/events.jsonl" | python3 -c '
import json, sys
evs = [json.loads(l) for l in sys.stdin]
assert len(evs) == 1, evs
e = evs[0]
assert e["node"] == "localhost" and e["message"].startswith("waiting for the test gate (attempt "), e
assert 2 <= e["waited"] < 3, e' || fail "progress events: expected one, for localhost's gate"
  pass "--log-json: one progress event for the gate"
  ;;
tty)
  command -v script >/dev/null || fail "script(1) (util-linux) is needed for the TTY test"
  # a terminal: a live line redrawn in place, erased when the wait ends
  set +e
  TERM=xterm script -qec "stty cols 100; $(printf '%q ' "$KCMRUN" --state-dir "$T/state" -e wait=4 "$PLAY")" \
    "$T/typescript" >/dev/null 2>&1
  RC=$?
  set -e
  [ "$RC" = 0 ] || { cat -v "$T/typescript"; fail "TTY run: exit code $RC"; }
  draws=$(grep -ao $'\e\[2Klocalhost: waiting for the test gate (attempt [0-9]*/60) [0-9]s' "$T/typescript" | wc -l)
  [ "$draws" -ge 3 ] || { cat -v "$T/typescript"; fail "the live line was drawn $draws times, expected it redrawn (>= 3)"; }
  grep -aq $'\e\[A\e\[2K\r\e\[2Klocalhost: waiting' "$T/typescript" \
    || { cat -v "$T/typescript"; fail "the live line is not redrawn in place (cursor up, erase)"; }
  # once the gate's result is out, its wait is over: never drawn again
  sed -n '/ok .*localhost/,$p' "$T/typescript" | grep -aq "waiting for" \
    && { cat -v "$T/typescript"; fail "the live line was drawn again after its wait ended"; }
  python3 "$D/screen.py" "$T/typescript" > "$T/screen"
  ! grep -q "waiting for" "$T/screen" || { cat "$T/screen"; fail "the live line stayed on the final screen"; }
  grep -qE '^== gate \(once\)$' "$T/screen" && grep -qE '^  ok +localhost +4\.[0-9]+s$' "$T/screen" \
    || { cat "$T/screen"; fail "the final screen lost the step lines"; }
  # the step's result comes right under its header: the live line left no row
  grep -A1 -E '^== gate' "$T/screen" | tail -1 | grep -qE '^  ok +localhost' \
    || { cat "$T/screen"; fail "a blank or stale row where the live line was"; }
  # a line wider than the terminal would wrap, and its erase leave half of it
  TERM=xterm script -qec "stty cols 30; $(printf '%q ' "$KCMRUN" --state-dir "$T/state" -e wait=3 "$PLAY")" \
    "$T/narrow" >/dev/null 2>&1 || { cat -v "$T/narrow"; fail "TTY run at 30 columns failed"; }
  long=$(grep -ao $'\e\[2K[^\r]*' "$T/narrow" | awk 'length($0) > 4 + 29' | head -1)
  [ -z "$long" ] || { cat -v "$T/narrow"; fail "a live line wider than 30 columns: $long"; }
  grep -aq $'\e\[2Klocalhost: waiting' "$T/narrow" || { cat -v "$T/narrow"; fail "no live line at 30 columns"; }
  pass "TTY: the live line is redrawn in place ($draws draws), cleared when the wait ends, cut to the width"
  ;;
transfer)
  # on the lab: node2's link shaped to 8 Mbit/s, a 6 MiB put takes ~6 s there
  eval "$("$KCMRUN" lab env)"
  DEV="kcm-$KCMRUN_LAB_NAME-2"
  DEST=/tmp/kcm-progress-$$.bin
  trap 'tc qdisc del dev "$DEV" root 2>/dev/null || true
        for n in $KCMRUN_LAB_NODES; do "$KCMRUN" lab exec "$n" rm -f "$DEST" || true; done; rm -rf "$T"' EXIT
  head -c 6M /dev/urandom >"$T/big.bin"
  tc qdisc add dev "$DEV" root tbf rate 8mbit burst 32kbit latency 400ms
  run "$KCMRUN" --no-lock --state-dir "$T/state" -i "$KCMRUN_LAB_INVENTORY" put all "$T/big.bin" "$DEST"
  expect_rc 0 "a put with node2 shaped"
  line=$(grep -E "^  progress node2: put $DEST [0-9]+\.[0-9]/6\.0 MiB [0-9.]+ MiB/s [0-9]+s$" "$T/out" | head -1)
  [ -n "$line" ] || { cat "$T/out"; fail "no progress line for node2's transfer (bytes, size, rate)"; }
  sent=$(sed -nE 's/.* ([0-9.]+)\/6\.0 MiB.*/\1/p' <<<"$line")
  python3 -c "import sys; s=float(sys.argv[1]); sys.exit(0 if 0 < s < 6 else 1)" "$sent" \
    || { cat "$T/out"; fail "progress said $sent MiB sent, expected part of the 6.0"; }
  # (node1 and node3 are not asserted: their fsync on a busy disk may pass 2 s)
  pass "a slow put prints the bytes sent and the rate ($line)"
  ;;
unit)
  # on the lab: a real unit that turns active 12 s late on node2, at once elsewhere
  eval "$("$KCMRUN" lab env)"
  U=kcm-progress-$$
  trap 'for n in $KCMRUN_LAB_NODES; do "$KCMRUN" lab exec "$n" systemctl stop "$U.timer" "$U.service" >/dev/null 2>&1 || true; done
        rm -rf "$T"' EXIT
  for n in $KCMRUN_LAB_NODES; do
    if [ "$n" = node2 ]; then delay=12; else delay=0; fi
    if [ $delay = 0 ]; then "$KCMRUN" lab exec "$n" systemd-run --quiet --unit "$U" sleep 600
    else "$KCMRUN" lab exec "$n" systemd-run --quiet --unit "$U" --on-active=$delay sleep 600; fi
  done
  run "$KCMRUN" --no-lock --state-dir "$T/state" -i "$KCMRUN_LAB_INVENTORY" -e unit="$U.service" "$D/unit_play.lua"
  expect_rc 0 "every node's unit turns active"
  re="^  progress node2: waiting for $U\.service to be active \(attempt [0-9]+, up to 40s\) [0-9]+s$"
  n=$(grep -cE "$re" "$T/out") || true
  [ "$n" -ge 1 ] && [ "$n" -le 2 ] || { cat "$T/out"; fail "node2: $n progress lines, expected 1 or 2 over its 12-s wait"; }
  ! grep -qE '^  progress node(1|3)' "$T/out" || { cat "$T/out"; fail "a node whose unit was up at once showed progress"; }
  pass "a unit gate that waits 12 s on node2 names the unit and the attempt ($n lines); node1 and node3 none"
  ;;
*) fail "unknown case $1" ;;
esac
