#ifndef KCM_MODULES_H
#define KCM_MODULES_H
#include "kcm/kcm.h"

struct kcm_native_module {
    const char *name;           /* require "kcm.native.<name>" */
    lua_CFunction open;
};
extern const struct kcm_native_module kcm_native_modules[];

int kcm_open_runtime(lua_State *L);
int kcm_open_exec(lua_State *L);
/* signals the process group of every local command still running;
 * async-signal-safe (the second SIGINT calls it from the handler) */
void kcm_exec_kill_children(int sig);
int kcm_open_fs(lua_State *L);
int kcm_open_crypto(lua_State *L);
int kcm_open_template(lua_State *L);
int kcm_open_yaml(lua_State *L);
int kcm_open_ssh(lua_State *L);
int kcm_open_sshconfig(lua_State *L);
int kcm_open_redact(lua_State *L);
int kcm_open_http(lua_State *L);
int kcm_open_statedir(lua_State *L);
#endif
