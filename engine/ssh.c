/* Placeholder until the ssh module lands. */
#include "modules.h"

int kcm_open_ssh(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
