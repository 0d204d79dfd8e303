/* runtime.counter(): bytes a job moved so far, readable while it runs.
 * The userdata holds a pointer, not the counter: the coroutine that made it
 * may be collected (an abandoned run) while the job still adds to it, so
 * the counter lives until its last holder lets go. */
#include "counter.h"
#include "util.h"
#include <lauxlib.h>
#include <stdlib.h>

#define COUNTER_MT "kcm.counter"

static void unref(kcm_counter *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) free(c);
}

static kcm_counter *check(lua_State *L, int idx)
{
    return *(kcm_counter **)luaL_checkudata(L, idx, COUNTER_MT);
}

kcm_counter *kcm_counter_opt(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx)) return NULL;
    kcm_counter *c = check(L, idx);
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void kcm_counter_add(kcm_counter *c, unsigned long long n)
{
    if (c) atomic_fetch_add(&c->n, n);
}

void kcm_counter_finish(kcm_counter *c)
{
    if (!c) return;
    atomic_store(&c->done, 1);
    unref(c);
}

/* counter:bytes() -> the count so far */
static int l_bytes(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)atomic_load(&check(L, 1)->n));
    return 1;
}

/* counter:done() -> did a job holding it end */
static int l_done(lua_State *L)
{
    lua_pushboolean(L, atomic_load(&check(L, 1)->done));
    return 1;
}

static int l_gc(lua_State *L)
{
    kcm_counter **p = luaL_checkudata(L, 1, COUNTER_MT);
    unref(*p);
    *p = NULL;
    return 0;
}

int kcm_rt_counter(lua_State *L)
{
    kcm_counter **p = lua_newuserdatauv(L, sizeof *p, 0);
    *p = NULL;
    if (luaL_newmetatable(L, COUNTER_MT)) {
        static const luaL_Reg methods[] = {{"bytes", l_bytes}, {"done", l_done}, {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    *p = calloc(1, sizeof **p);
    if (!*p) kcm_oom(L);
    atomic_store(&(*p)->refs, 1);
    return 1;
}
