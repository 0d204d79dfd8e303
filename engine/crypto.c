/* Placeholder until the crypto module lands. */
#include "modules.h"

int kcm_open_crypto(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
