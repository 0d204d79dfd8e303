/* Tiny helpers for the C unit tests: each test is a plain C program that
 * exits non-zero on the first failed check. */
#ifndef KCM_CUNIT_H
#define KCM_CUNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "loader.h"
#include "runtime.h"

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); exit(1); } } while (0)
#define CHECK_STR(got, want) do { const char *g_ = (got), *w_ = (want); \
    if (!g_ || strcmp(g_, w_) != 0) { \
        fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, g_ ? g_ : "(null)", w_); \
        exit(1); } } while (0)

static int cunit_traceback(lua_State *L)
{
    luaL_traceback(L, L, luaL_tolstring(L, 1, NULL), 1);
    return 1;
}

/* Runs `chunk` (named `name` in messages) in L; exits on a Lua error. */
static inline void cunit_lua(lua_State *L, const char *name, const char *chunk)
{
    lua_pushcfunction(L, cunit_traceback);
    int base = lua_gettop(L);
    if (luaL_loadbuffer(L, chunk, strlen(chunk), name) != LUA_OK ||
        lua_pcall(L, 0, 0, base) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", name, lua_tostring(L, -1));
        exit(1);
    }
    lua_settop(L, base - 1);
}

/* Runs a shell command; returns its output (malloc'd, NUL-terminated). */
static inline char *cunit_sh(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    if (!p) {
        perror("popen");
        exit(1);
    }
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    size_t r;
    while ((r = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (n + 1 == cap)
            out = realloc(out, cap *= 2);
    }
    out[n] = 0;
    int st = pclose(p);
    if (status)
        *status = st;
    return out;
}

#endif
