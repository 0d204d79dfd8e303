/* kcmrun: command line entry. The CLI proper lives in lua/kcm/main.lua;
 * this file keeps `--version` fast and hands `lab` to the lab script. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "runtime.h"

static const char *datadir(void)
{
    const char *d = getenv("KCMRUN_DATADIR");
    return d && *d ? d : KCM_DATADIR;
}

static int run_lab(int argc, char **argv)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        setenv("KCMRUN", self, 1);
    }
    char script[PATH_MAX];
    snprintf(script, sizeof script, "%s/lab/kcmlab.sh", datadir());
    char **args = calloc((size_t)argc + 2, sizeof(char *));
    args[0] = "bash";
    args[1] = script;
    for (int i = 2; i < argc; i++)
        args[i] = argv[i];
    execvp("bash", args);
    perror("kcmrun lab: bash");
    return 2;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("kcmrun %s (%s)\n", KCM_VERSION, LUA_RELEASE);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "lab") == 0)
        return run_lab(argc, argv);

    kcm_runtime_init();
    lua_State *L = kcm_lua_new();
    if (!L) {
        fprintf(stderr, "kcmrun: cannot create Lua state\n");
        return 2;
    }
    lua_pushcfunction(L, traceback);
    int errf = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushstring(L, "kcm.main");
    int rc = 2;
    if (lua_pcall(L, 1, 1, errf) == LUA_OK) {
        lua_createtable(L, argc, 0);
        for (int i = 1; i < argc; i++) {
            lua_pushstring(L, argv[i]);
            lua_rawseti(L, -2, i);
        }
        lua_pushstring(L, datadir());
        if (lua_pcall(L, 2, 1, errf) == LUA_OK)
            rc = (int)lua_tointeger(L, -1);
        else
            fprintf(stderr, "kcmrun: internal error: %s\n", lua_tostring(L, -1));
    } else {
        fprintf(stderr, "kcmrun: cannot load kcm.main: %s\n", lua_tostring(L, -1));
    }
    fflush(stdout);
    lua_close(L);
    kcm_runtime_shutdown();
    return rc;
}
