/* Placeholder until the http module lands. */
#include "modules.h"

int kcm_open_http(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
