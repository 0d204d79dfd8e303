#ifndef KCM_LOADER_H
#define KCM_LOADER_H
#include "kcm/kcm.h"
/* A Lua state with the standard libraries, cjson, the natives and the kcm searcher. */
lua_State *kcm_lua_new(void);
#endif
