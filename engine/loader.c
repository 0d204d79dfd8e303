/* Module loading: natives, lua-cjson, the built-in Lua library and the
 * user's search path, in that order of precedence for kcm modules:
 * a file on the search path (--lua-path, KCMRUN_LUA_PATH, the playbook's
 * folder) beats the built-in copy, so behaviour changes without recompiling. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

#include "loader.h"
#include "lualib_embedded.h"
#include "modules.h"

int luaopen_cjson(lua_State *L);

static const char PATH_KEY[] = "kcm.lua_path";

static const struct kcm_embedded_lua *builtin(const char *name)
{
    for (const struct kcm_embedded_lua *m = kcm_embedded_lua; m->name; m++)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static int searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    char tried[4096];
    size_t used = 0;
    tried[0] = 0;
#define TRIED(...) do { if (used < sizeof tried) { int w_ = snprintf(tried + used, sizeof tried - used, __VA_ARGS__); if (w_ > 0) used += (size_t)w_; } } while (0)
    lua_getfield(L, LUA_REGISTRYINDEX, PATH_KEY);
    int dirs = lua_gettop(L);
    if (lua_istable(L, dirs)) {
        lua_Integer n = luaL_len(L, dirs);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, dirs, i);
            const char *dir = lua_tostring(L, -1);
            if (!dir) {
                lua_pop(L, 1);
                continue;
            }
            lua_pushstring(L, name);
            const char *rel = luaL_gsub(L, lua_tostring(L, -1), ".", "/");
            static const char *const forms[] = {"%s/%s.lua", "%s/%s/init.lua"};
            for (int f = 0; f < 2; f++) {
                const char *file = lua_pushfstring(L, forms[f], dir, rel);
                if (access(file, R_OK) == 0) {
                    if (luaL_loadfile(L, file) != LUA_OK)
                        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                                          name, file, lua_tostring(L, -1));
                    lua_pushstring(L, file);
                    return 2;
                }
                TRIED("%sno file '%s'", used ? "\n\t" : "", file);
                lua_pop(L, 1);
            }
            lua_pop(L, 3);
        }
    }
    const struct kcm_embedded_lua *m = builtin(name);
    if (m) {
        if (luaL_loadbuffer(L, m->src, m->len, m->chunk) != LUA_OK)
            return luaL_error(L, "error loading built-in module '%s':\n\t%s", name,
                              lua_tostring(L, -1));
        lua_pushstring(L, m->chunk + 1);
        return 2;
    }
    TRIED("%sno built-in module '%s'", used ? "\n\t" : "", name);
#undef TRIED
    lua_pushstring(L, tried);
    return 1;
}

/* loader.set_path({dir, ...}) */
static int l_set_path(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushvalue(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, PATH_KEY);
    return 0;
}

static int l_builtins(lua_State *L)
{
    lua_newtable(L);
    int i = 0;
    for (const struct kcm_embedded_lua *m = kcm_embedded_lua; m->name; m++) {
        lua_pushstring(L, m->name);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

static int open_loader(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"set_path", l_set_path},
        {"builtins", l_builtins},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}

lua_State *kcm_lua_new(void)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_cjson);
    lua_setfield(L, -2, "cjson");
    lua_pushcfunction(L, open_loader);
    lua_setfield(L, -2, "kcm.native.loader");
    for (const struct kcm_native_module *m = kcm_native_modules; m->name; m++) {
        const char *key = lua_pushfstring(L, "kcm.native.%s", m->name);
        lua_pushcfunction(L, m->open);
        lua_setfield(L, -3, key);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    /* Insert our searcher right after the preload searcher. */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = n; i >= 2; i--) {
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, searcher);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
    return L;
}
