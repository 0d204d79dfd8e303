/* kcm_job_new's guard (issue 13): a raise while a native fills its job frees
 * the job at once; a submitted job is freed exactly once, by the runtime,
 * across the yield (the guard's to-be-closed slot outlives the yield); the
 * natives' real fill paths raise without leaking (ASan / valgrind see it). */
#include "cunit.h"
#include "util.h"

static int made, freed;

struct probe_job {
    kcm_job base;
    char *note;
    int value;
};

static void probe_work(kcm_job *job)
{
    ((struct probe_job *)job)->value *= 2;
}

static int probe_done(lua_State *L, kcm_job *job)
{
    lua_pushinteger(L, ((struct probe_job *)job)->value);
    return 1;
}

static void probe_free(kcm_job *job)
{
    struct probe_job *j = (struct probe_job *)job;
    free(j->note);
    free(j);
    freed++;
}

/* probe(n, raise_at): fills a job in steps, raising at step raise_at (0:
 * never); returns n * 2 from the worker. */
static int l_probe(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    lua_Integer raise_at = luaL_optinteger(L, 2, 0);
    struct probe_job *j = kcm_job_new(L, sizeof *j, probe_work, probe_done, probe_free);
    made++;
    if (raise_at == 1)
        luaL_error(L, "probe: raised before filling");
    j->note = strdup("partly filled");
    if (!j->note)
        kcm_oom(L);
    lua_pushinteger(L, 7);   /* stack work above the guard is fine when balanced */
    lua_pop(L, 1);
    if (raise_at == 2)
        luaL_error(L, "probe: raised mid-fill");
    j->value = (int)n;
    return kcm_job_yield(L, &j->base);
}

static int l_counts(lua_State *L)
{
    lua_pushinteger(L, made);
    lua_pushinteger(L, freed);
    return 2;
}

static const char CHUNK[] =
    "local task = require 'kcm.task'\n"
    "local function counts() local m, f = probe_counts(); return m, f end\n"
    /* a raise while filling frees the job before pcall returns */
    "for _, at in ipairs { 1, 2 } do\n"
    "  local m0, f0 = counts()\n"
    "  local ok, err = pcall(probe, 1, at)\n"
    "  assert(not ok and tostring(err):find('probe: raised', 1, true), tostring(err))\n"
    "  local m, f = counts()\n"
    "  assert(m == m0 + 1 and f == f0 + 1, ('raise at %d: made %d freed %d'):format(at, m - m0, f - f0))\n"
    "end\n"
    /* inline (not a scheduled coroutine): the runtime frees the job once */
    "local m0, f0 = counts()\n"
    "assert(probe(21) == 42)\n"
    "local m, f = counts()\n"
    "assert(m == m0 + 1 and f == f0 + 1, 'inline job freed once: ' .. (f - f0))\n"
    /* through the pool: the coroutine yields with the guard's slot open and
     * resumes with the result; the raise inside a task frees too */
    "m0, f0 = counts()\n"
    "local fns = {}\n"
    /* the second call yields inside pcall (pcall's own continuation) */
    "for i = 1, 50 do fns[i] = function() return probe(i) + select(2, pcall(probe, i)) end end\n"
    "local res = task.parallel(fns)\n"
    "for i = 1, 50 do assert(res[i] == 4 * i, 'result ' .. i .. ': ' .. tostring(res[i])) end\n"
    "local ok, err = pcall(task.parallel, { function() return probe(1, 2) end,\n"
    "                                       function() return pcall(probe, 1, 2) end })\n"
    "assert(not ok and tostring(err):find('raised mid-fill', 1, true), tostring(err))\n"
    "collectgarbage(); collectgarbage()\n"
    "m, f = counts()\n"
    "assert(m - m0 == 102 and f - f0 == 102, ('pool: made %d freed %d'):format(m - m0, f - f0))\n"
    /* the natives' own fill paths (no lab: every call raises before any
     * connection is tried); a leak here fails the ASan and valgrind runs */
    "local ssh = require 'kcm.native.ssh'\n"
    "local s = ssh.session { host = '127.0.0.1', port = 1 }\n"
    "local function raises(pat, fn, ...)\n"
    "  local ok, err = pcall(fn, ...)\n"
    "  assert(not ok and tostring(err):find(pat, 1, true), pat .. ': ' .. tostring(err))\n"
    "end\n"
    "raises('become[2]', s.stat, s, '/p', { 'sudo', {} })\n"
    "raises('prompt', s.mkdir, s, '/p', 493, { 'sudo', user = 'root', secret = 'pw' })\n"
    "raises('NUL', s.stat, s, 'a\\0b')\n"
    "raises('number expected', s.exec, s, 'true', 'in', 'soon')\n"
    "raises('path', s.sync_put, s, { data = 'x' })\n"
    "raises('become[2]', s.sync_put, s, { path = '/p', tmp = '/t', data = 'x', become = { 'sudo', {} } })\n"
    "raises('become.user', s.sync_probe, s, { path = '/p', data = 'x', become = { 'sudo', user = 1 } })\n"
    "raises('mode', s.sync_put, s, { path = '/p', tmp = '/t', data = 'x', mode = 'rw' })\n"
    "local exec = require 'kcm.native.exec'\n"
    "raises('argv[3]', exec.run, { argv = { 'echo', 'a', {} }, stdin = 'secret', cwd = '/' })\n"
    "local crypto = require 'kcm.native.crypto'\n"
    "local key = crypto.generate_key('ecdsa', 256)\n"
    "local csr = crypto.make_csr(key, { { 'CN', { 'x' } } }, nil)\n"
    "raises('ku', crypto.sign, { csr = csr, ca_key = key, ku = 'all' })\n"
    "raises('bad extended key usage', crypto.sign, { csr = csr, ca_key = key, eku = { 'no.such' } })\n"
    "raises('is not a PEM', crypto.sign, { csr = 'junk', ca_key = key })\n"
    "local http = require 'kcm.native.http'\n"
    "raises('bad header', http.request, { url = 'https://127.0.0.1:1/', headers = { ['a:b'] = 'c' } })\n"
    "raises('refusing', http.request, { url = 'http://127.0.0.1:1/', headers = { Authorization = 'x' } })\n"
    "local statedir = require 'kcm.native.statedir'\n"
    "raises('string expected', statedir.prepare, {})\n";

int main(void)
{
    kcm_runtime_init();
    lua_State *L = kcm_lua_new();
    CHECK(L != NULL);
    lua_register(L, "probe", l_probe);
    lua_register(L, "probe_counts", l_counts);
    cunit_lua(L, "=job_guard", CHUNK);
    lua_close(L);
    kcm_runtime_shutdown();
    CHECK(made == freed);
    printf("job_guard: ok (%d jobs, each freed once)\n", made);
    return 0;
}
