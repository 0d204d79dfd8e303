/* Placeholder until the yaml module lands. */
#include "modules.h"

int kcm_open_yaml(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
