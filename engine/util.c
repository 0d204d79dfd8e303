/* Small helpers shared by the native modules. */
#include <string.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include "kcm/kcm.h"
#include "buf.h"

void *kcm_newudata(lua_State *L, size_t size, const char *tname,
                   const luaL_Reg *methods, lua_CFunction gc)
{
    void *p = lua_newuserdatauv(L, size, 1);
    memset(p, 0, size);
    if (luaL_newmetatable(L, tname)) {
        lua_newtable(L);
        if (methods)
            luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        if (gc) {
            lua_pushcfunction(L, gc);
            lua_setfield(L, -2, "__gc");
            lua_pushcfunction(L, gc);
            lua_setfield(L, -2, "__close");
        }
    }
    lua_setmetatable(L, -2);
    return p;
}

void kcm_memzero(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

int kcm_buf_add(struct kcm_buf *b, const void *data, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        /* not realloc: a buffer may hold a key (a file read over sftp,
         * command output), and realloc would leave the old copy unwiped */
        char *q = malloc(cap);
        if (!q)
            return -1;
        if (b->p) {
            memcpy(q, b->p, b->n);
            kcm_memzero(b->p, b->cap);
            free(b->p);
        }
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

void kcm_buf_free(struct kcm_buf *b, int wipe)
{
    if (wipe && b->p)
        kcm_memzero(b->p, b->cap);
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int kcm_key_rank(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t == LUA_TNUMBER ? 0 : t == LUA_TSTRING ? 1 : 2;
}

int kcm_key_less(lua_State *L, int a, int b)
{
    int ra = kcm_key_rank(L, a), rb = kcm_key_rank(L, b);
    if (ra != rb)
        return ra < rb;
    if (ra == 0)
        return lua_compare(L, a, b, LUA_OPLT);
    if (ra == 2)
        return 0;
    size_t la, lb;
    const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
    int c = memcmp(sa, sb, la < lb ? la : lb);
    return c ? c < 0 : la < lb;
}
