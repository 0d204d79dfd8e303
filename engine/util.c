/* Small helpers shared by the native modules. */
#include <string.h>
#include <openssl/crypto.h>
#include "kcm/kcm.h"

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
