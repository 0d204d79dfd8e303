#!/bin/bash
# task.retry (lua/kcm/task.lua): the waits it makes between attempts, the
# timeout, task.STOP and the results it hands back (issue 13: the hand-written
# retry loops of the component layer use it).
set -e
. "$(dirname "$0")/../lib.sh"
D=$(cd "$(dirname "$0")" && pwd)

run "$KCMRUN" --state-dir "$T/state" "$D/retry.lua"
expect_rc 0 "retry script"
expect_out '^linear waits=1:0\.10,2:0\.20,3:0\.30 took=0\.(5[5-9]|[6-9]).* result=nil msg=gave up after 4 attempts over 0\.[6-9]s$'
expect_out '^backoff waits=1:0\.05,2:0\.10,3:0\.15,4:0\.15 took=0\.(4[5-9]|[5-9])'
expect_out '^third waits=1:0\.05,2:0\.10 results=up,3,extra n=3$'
expect_out '^timeout took=0\.(3|4)[0-9] gave_up=true$'
expect_out '^stop waits=1:1\.00 msg=gave up after 2 attempts over 1\.[0-9]s$'
pass "task.retry: waits by attempt (linear) and by backoff, timeout, STOP, the succeeding attempt's results"
