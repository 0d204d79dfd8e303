/* The job API and the worker pool: many concurrent jobs (runtime.sleep and
 * exec.run) under task.parallel, errors of a job reaching the caller, the
 * inline path outside a coroutine, and the pool draining at the end. */
#include "cunit.h"

static const char CHUNK[] =
    "local task = require 'kcm.task'\n"
    "local rt = require 'kcm.native.runtime'\n"
    "local exec = require 'kcm.native.exec'\n"
    "rt.reset_stats()\n"
    "local N = 96\n"
    "local fns = {}\n"
    "for i = 1, N do\n"
    "  if i % 3 == 0 then\n"
    "    fns[i] = function() rt.sleep((i % 5) / 1000); return 'slept' .. i end\n"
    "  else\n"
    "    fns[i] = function()\n"
    "      local r = exec.run { argv = { 'sh', '-c', 'printf %s \"$X\"; cat; exit $((X % 7))' },\n"
    "                           env = { X = tostring(i) }, stdin = 'in' .. i }\n"
    "      assert(r.stdout == i .. 'in' .. i, 'stdout of job ' .. i .. ': ' .. r.stdout)\n"
    "      return r.code\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local res = task.parallel(fns)\n"
    "for i = 1, N do\n"
    "  local want = i % 3 == 0 and ('slept' .. i) or (i % 7)\n"
    "  assert(res[i] == want, ('result %d: %s, want %s'):format(i, tostring(res[i]), tostring(want)))\n"
    "end\n"
    "local s = rt.stats()\n"
    "assert(s.total >= N, 'jobs counted: ' .. s.total)\n"
    "assert(s.max_in_flight > 1, 'jobs never overlapped: max_in_flight ' .. s.max_in_flight)\n"
    "assert(rt.pending() == 0 and s.in_flight == 0, 'pool not drained')\n"
    /* a failing job's error reaches task.parallel, after the others finished */
    "local done = false\n"
    /* (a failure is the value nil, message, kind: the natives' convention) */
    "local res2 = task.parallel({\n"
    "  function() return table.pack(exec.run { argv = { '/nonexistent/kcm-cunit' } }) end,\n"
    "  function() rt.sleep(0.01); done = true; return 1 end,\n"
    "})\n"
    "local r1 = res2[1]\n"
    "if r1[1] then\n"
    "  -- exec reports a missing program as exit 127\n"
    "  assert(r1[1].code == 127, 'missing program: code ' .. tostring(r1[1].code))\n"
    "else\n"
    "  assert(tostring(r1[2]):find('nonexistent', 1, true), 'error names the program: ' .. tostring(r1[2]))\n"
    "  assert(r1[3] == 'error', 'kind: ' .. tostring(r1[3]))\n"
    "end\n"
    "assert(done, 'the sibling task finished')\n"
    "local ok2, err2 = pcall(task.parallel, { function() rt.sleep(0); error('boom') end,\n"
    "                                          function() return 2 end })\n"
    "assert(not ok2 and tostring(err2):find('boom', 1, true), 'error propagates: ' .. tostring(err2))\n"
    /* timeouts are part of the job */
    "local r = task.parallel { function() return exec.run { argv = { 'sleep', '30' }, timeout = 0.2 } end }[1]\n"
    "assert(r.timed_out == true, 'timed_out not set')\n"
    /* outside a coroutine the work runs inline on the main thread */
    "local before = rt.stats().total\n"
    "local r2 = exec.run { argv = { 'echo', 'inline' } }\n"
    "assert(r2.stdout == 'inline\\n' and r2.code == 0)\n"
    "assert(rt.stats().total == before + 1)\n"
    "rt.sleep(0)\n"
    "assert(rt.pending() == 0, 'pool not drained at the end')\n";

int main(void)
{
    kcm_runtime_init();
    lua_State *L = kcm_lua_new();
    CHECK(L != NULL);
    cunit_lua(L, "=jobs", CHUNK);
    lua_close(L);
    kcm_runtime_shutdown();
    printf("jobs: ok\n");
    return 0;
}
