/* libFuzzer target: yaml.decode on arbitrary bytes. When a document decodes
 * and encodes, the encoding must decode again and re-encode to the same text
 * (encode(decode(encode(v))) == encode(v)), and every decode error must carry
 * "fuzz.yaml:line:col". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int kcm_open_yaml(lua_State *L);

static lua_State *L;
static int mod_ref;

static void call(const char *fn, int nargs)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, mod_ref);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_insert(L, -(nargs + 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned runs;
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        kcm_open_yaml(L);
        mod_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_settop(L, 0);
    lua_pushlstring(L, (const char *)data, size);
    lua_pushliteral(L, "fuzz.yaml");
    call("decode", 2);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg || strncmp(msg, "fuzz.yaml:", 10) != 0) {
            fprintf(stderr, "decode error without a position: %s\n", msg ? msg : "(not a string)");
            abort();
        }
        lua_settop(L, 0);
        return 0;
    }
    call("encode", 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* e.g. boolean keys, huge alias expansions */
        lua_settop(L, 0);
        return 0;
    }
    size_t n1;
    const char *t1 = lua_tolstring(L, -1, &n1);
    lua_pushvalue(L, -1);
    lua_pushliteral(L, "fuzz.yaml");
    call("decode", 2);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        fprintf(stderr, "encode output does not decode: %s\n---\n%s\n", lua_tostring(L, -1), t1);
        abort();
    }
    call("encode", 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "re-encode failed: %s\n", lua_tostring(L, -1));
        abort();
    }
    size_t n2;
    const char *t2 = lua_tolstring(L, -1, &n2);
    if (n1 != n2 || memcmp(t1, t2, n1) != 0) {
        fprintf(stderr, "encode is not stable:\n---\n%s\n---\n%s\n", t1, t2);
        abort();
    }
    lua_settop(L, 0);
    if (++runs % 512 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
