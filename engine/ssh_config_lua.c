/* kcm.native.sshconfig: ssh_config as kcmrun reads it (ssh_config.c), for
 * the inventory (addresses for certificates), the state key and tests that
 * compare it with `ssh -G`.
 *
 *   sshconfig.resolve(name [, config [, user [, host]]]) ->
 *       {hostname=, user=, port=, identity=, identities={...}, known_hosts=,
 *        hostkeyalias=, proxycommand=, proxyjump=} | nil, message
 *   config: a path (default ~/.ssh/config when it exists); user, host: the
 *   inventory's values (like `ssh -l USER`), seen by Match user/host. */
#include "modules.h"
#include "ssh_int.h"

#include <stdlib.h>
#include <unistd.h>

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static int l_resolve(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *given = luaL_optstring(L, 2, NULL);
    const char *user = luaL_optstring(L, 3, NULL);
    const char *host = luaL_optstring(L, 4, NULL);
    char *path = kcm_ssh_expand_home(given ? given : "~/.ssh/config");
    if (!given && access(path, F_OK) != 0) { free(path); path = NULL; }
    struct kcm_ssh_cfg oc;
    char *msg = NULL;
    int rc = kcm_ssh_config_resolve_as(path, name, user, host, &oc, &msg);
    free(path);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, msg ? msg : "ssh config: error");
        free(msg);
        return 2;
    }
    lua_createtable(L, 0, 10);
    set_str(L, "hostname", oc.hostname);
    set_str(L, "user", oc.user);
    if (oc.port) { lua_pushinteger(L, oc.port); lua_setfield(L, -2, "port"); }
    set_str(L, "known_hosts", oc.known_hosts);
    if (oc.n_identity) set_str(L, "identity", oc.identity[0]);
    lua_createtable(L, oc.n_identity, 0);
    for (int i = 0; i < oc.n_identity; i++) { lua_pushstring(L, oc.identity[i]); lua_rawseti(L, -2, i + 1); }
    lua_setfield(L, -2, "identities");
    set_str(L, "hostkeyalias", oc.hostkeyalias);
    set_str(L, "proxycommand", oc.proxycommand);
    set_str(L, "proxyjump", oc.proxyjump);
    kcm_ssh_cfg_free(&oc);
    return 1;
}

int kcm_open_sshconfig(lua_State *L)
{
    static const luaL_Reg fns[] = { {"resolve", l_resolve}, {NULL, NULL} };
    luaL_newlib(L, fns);
    return 1;
}
