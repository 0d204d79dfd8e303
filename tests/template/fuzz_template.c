/* libFuzzer target: template compile + render on arbitrary text.
 * Invariant beyond "no crash, no leak, no UB": every failure is a Lua error
 * naming the template ("fuzz.in:..."), never anything else. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int kcm_open_template(lua_State *L);

static lua_State *L;
static int mod_ref, vars_ref;

static const char VARS[] =
    "return { X = 'x', K8S_DIR = '/data/k8s', n = 3, f = 0.5, b = true, no = false, e = '',"
    " l = { 'a', 'b', { k = 'v' } }, m = { a = 1, b = { c = 'd' } }, t = {},"
    " ['current-context'] = 'c', fn = print, loop = 'shadow' }";

static void setup(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    kcm_open_template(L);
    mod_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (luaL_dostring(L, VARS) != LUA_OK)
        abort();
    vars_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static int run(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, mod_ref);
    lua_getfield(L, -1, "compile");
    lua_pushvalue(L, 1);
    lua_pushliteral(L, "fuzz.in");
    lua_call(L, 2, 1);
    int tpl = lua_gettop(L);
    for (int i = 0; i < 2; i++) { /* compiled once, rendered more than once */
        lua_getfield(L, tpl, "render");
        lua_pushvalue(L, tpl);
        lua_rawgeti(L, LUA_REGISTRYINDEX, vars_ref);
        lua_call(L, 2, 1);
        lua_pop(L, 1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned runs;
    if (!L)
        setup();
    lua_pushcfunction(L, run);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg || strncmp(msg, "fuzz.in:", 8) != 0) {
            fprintf(stderr, "template error without a position: %s\n", msg ? msg : "(not a string)");
            abort();
        }
    }
    lua_settop(L, 0);
    if (++runs % 512 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
