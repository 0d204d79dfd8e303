/* Module loading: natives, lua-cjson, the built-in Lua library and the
 * user's search path, in that order of precedence for kcm modules:
 * a file on the search path (--lua-path, KCMRUN_LUA_PATH, the playbook's
 * folder) beats the built-in copy, so behaviour changes without recompiling.
 *
 * kcmrun often runs as root, so an override is code run as root: source
 * text only (precompiled chunks skip the parser's checks and can crash the
 * VM), only from folders the caller named (Lua's ./?.lua and ./?.so
 * defaults are emptied), never from a file or folder another user could
 * have written, and every replaced built-in is announced on stderr. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lualib.h>

#include "loader.h"
#include "lualib_embedded.h"
#include "modules.h"

int luaopen_cjson(lua_State *L);

static const char PATH_KEY[] = "kcm.lua_path";
static const char ANNOUNCED_KEY[] = "kcm.lua_overrides";

/* NULL when `path` is safe to run code from: owned by root or the caller,
 * writable by nobody else. Otherwise why not (static text + buf). */
static const char *unsafe(const char *path, int want_dir, char *buf, size_t len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(buf, len, "cannot stat %s: %s", path, strerror(errno));
        return buf;
    }
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        snprintf(buf, len, "%s is not a %s", path, want_dir ? "folder" : "regular file");
        return buf;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(buf, len, "%s is owned by uid %u, neither root nor you", path, (unsigned)st.st_uid);
        return buf;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(buf, len, "%s is %s-writable (mode %04o); chmod go-w it", path,
                 (st.st_mode & S_IWOTH) ? "world" : "group", (unsigned)(st.st_mode & 07777));
        return buf;
    }
    return NULL;
}

/* Checks the file and every folder from the search dir down to it. */
static const char *unsafe_module(const char *dir, const char *file, char *buf, size_t len)
{
    const char *why = unsafe(file, 0, buf, len);
    if (why)
        return why;
    char d[4096];
    if (snprintf(d, sizeof d, "%s", file) >= (int)sizeof d) {
        snprintf(buf, len, "%s: path too long", file);
        return buf;
    }
    size_t root = strlen(dir);
    for (;;) {
        char *slash = strrchr(d, '/');
        if (!slash || (size_t)(slash - d) < root)
            break;
        *slash = 0;
        if ((why = unsafe(d[0] ? d : "/", 1, buf, len)))
            return why;
    }
    return NULL;
}

/* "kcmrun: module kcm.x: using FILE instead of the built-in", once a run. */
static void announce(lua_State *L, const char *name, const char *file)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, ANNOUNCED_KEY);
    if (lua_getfield(L, -1, name) == LUA_TNIL) {
        fprintf(stderr, "kcmrun: module %s: using %s instead of the built-in\n", name, file);
        fflush(stderr);
        lua_pushboolean(L, 1);
        lua_setfield(L, -3, name);
    }
    lua_pop(L, 2);
}

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
                    char why[4200];
                    if (unsafe_module(dir, file, why, sizeof why))
                        return luaL_error(L, "refusing module '%s' from '%s': %s", name, file, why);
                    if (luaL_loadfilex(L, file, "t") != LUA_OK)
                        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                                          name, file, lua_tostring(L, -1));
                    if (builtin(name))
                        announce(L, name, file);
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

/* loader.set_path({dir, ...}): kept as absolute paths, resolved now, so a
 * relative folder ("." for a playbook in the current directory) means the
 * folder it meant at start-up; folders that do not exist are dropped. */
static int l_set_path(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_newtable(L);
    lua_Integer n = luaL_len(L, 1), k = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        const char *d = lua_tostring(L, -1);
        char *abs = d ? realpath(d, NULL) : NULL;
        lua_pop(L, 1);
        if (!abs)
            continue;
        lua_pushstring(L, abs);
        free(abs);
        lua_rawseti(L, -2, ++k);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, PATH_KEY);
    return 0;
}

/* loader.trusted(path) -> true | nil, why: the module rule for a file of
 * code kcmrun runs (a playbook, an inventory): a regular file owned by root
 * or the caller, writable by nobody else. */
static int l_trusted(lua_State *L)
{
    char why[512];
    const char *w = unsafe(luaL_checkstring(L, 1), 0, why, sizeof why);
    if (!w) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, w);
    return 2;
}

/* loader.secret_file(path) -> true | nil, why: a file holding a password
 * is the caller's own, mode 0600 or 0400 (as ssh wants of a private key). */
static int l_secret_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    const char *why = NULL;
    char buf[512];
    if (stat(path, &st) != 0) {
        snprintf(buf, sizeof buf, "%s: %s", path, strerror(errno));
        why = buf;
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(buf, sizeof buf, "%s is not a regular file", path);
        why = buf;
    } else if (st.st_uid != geteuid()) {
        snprintf(buf, sizeof buf, "%s is owned by uid %u, not by you (uid %u); chown it", path,
                 (unsigned)st.st_uid, (unsigned)geteuid());
        why = buf;
    } else if ((st.st_mode & 07777) != 0600 && (st.st_mode & 07777) != 0400) {
        snprintf(buf, sizeof buf, "%s has mode %04o, must be 0600 or 0400; chmod 600 it", path,
                 (unsigned)(st.st_mode & 07777));
        why = buf;
    }
    if (!why) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
}

static int open_loader(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"set_path", l_set_path},
        {"trusted", l_trusted},
        {"secret_file", l_secret_file},
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
    lua_pop(L, 1);
    /* No implicit ./?.lua, ./?.so or LUA_PATH folders: modules come from
     * the built-ins and the folders kcmrun was told about. */
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    return L;
}
