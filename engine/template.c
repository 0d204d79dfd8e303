/* Placeholder until the template module lands. */
#include "modules.h"

int kcm_open_template(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
