/* kcmrun: command line entry. The CLI proper (options, subcommands, usage)
 * lives in lua/kcm/main.lua; this file keeps `--version` fast, finds the data
 * folder (lab, playbooks) and performs the exec main.lua may ask for. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harden.h"
#include "loader.h"
#include "modules.h"
#include "runtime.h"

/* Name of the file CMake writes next to the binary in a build tree: it holds
 * the source folder, so a build-tree kcmrun finds the lab and the playbooks
 * without any path compiled in (an installed one uses bin/../share/kcmrun). */
#define KCM_BUILD_MARKER "kcmrun-datadir"

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The data folder, first found: $KCMRUN_DATADIR; <bin>/../share/kcmrun
 * (the binary's real location, symlinks resolved); the build tree's marker.
 * NULL when none: main.lua says what was tried. */
static int find_datadir(char *out, size_t len, const char *exe)
{
    const char *env = getenv("KCMRUN_DATADIR");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return 1;
    }
    if (!*exe)
        return 0;
    char bindir[PATH_MAX];
    snprintf(bindir, sizeof bindir, "%s", exe);
    char *slash = strrchr(bindir, '/');
    if (!slash)
        return 0;
    *slash = 0;
    char cand[PATH_MAX + 32];
    snprintf(cand, sizeof cand, "%s/../share/kcmrun", bindir);
    if (is_dir(cand) && realpath(cand, out))
        return 1;
    snprintf(cand, sizeof cand, "%s/" KCM_BUILD_MARKER, bindir);
    FILE *f = fopen(cand, "re");
    if (!f)
        return 0;
    int ok = fgets(out, (int)len, f) != NULL;
    fclose(f);
    if (!ok)
        return 0;
    out[strcspn(out, "\n")] = 0;
    return *out && is_dir(out);
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* main.lua returned {argv...}: copy it out before the Lua state goes. */
static char **take_argv(lua_State *L, int idx)
{
    lua_Integer n = luaL_len(L, idx);
    if (n < 1 || n > 4096)
        return NULL;
    char **args = calloc((size_t)n + 1, sizeof(char *));
    if (!args)
        return NULL;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        const char *s = lua_tostring(L, -1);
        args[i - 1] = strdup(s ? s : "");
        lua_pop(L, 1);
        if (!args[i - 1]) {   /* out of memory: no exec with a shortened argv */
            for (char **p = args; *p; p++)
                free(*p);
            free(args);
            return NULL;
        }
    }
    return args;
}

/* The child gets the signal state a shell would give it, not the runtime's
 * (SIGPIPE ignored, SIGINT/SIGTERM caught). */
static int exec_argv(char **args)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    execvp(args[0], args);
    fprintf(stderr, "kcmrun: cannot run %s: %s\n", args[0], strerror(errno));
    return 127;
}

/* main.lua's two arguments: the command line and what only C knows. */
static void push_main_args(lua_State *L, int argc, char **argv, const char *datadir, const char *exe)
{
    lua_createtable(L, argc, 0);
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    const char *const info[][2] = {
        {"datadir", datadir}, {"exe", exe}, {"version", KCM_VERSION},
        {"lua_release", LUA_RELEASE}, {"build_marker", KCM_BUILD_MARKER},
    };
    lua_createtable(L, 0, 5);
    for (size_t i = 0; i < sizeof info / sizeof info[0]; i++)
        if (info[i][1]) {   /* no datadir: main.lua says what was tried */
            lua_pushstring(L, info[i][1]);
            lua_setfield(L, -2, info[i][0]);
        }
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("kcmrun %s (%s)\n", KCM_VERSION, LUA_RELEASE);
        return 0;
    }

    char exe[PATH_MAX] = "";
    if (!realpath("/proc/self/exe", exe))
        exe[0] = 0;
    char datadir[PATH_MAX];
    int have_datadir = find_datadir(datadir, sizeof datadir, exe);

    kcm_harden_process();
    kcm_runtime_init();
    lua_State *L = kcm_lua_new();
    if (!L) {
        fprintf(stderr, "kcmrun: cannot create Lua state\n");
        return 2;
    }
    kcm_runtime_hook(L);
    lua_pushcfunction(L, traceback);
    int errf = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushstring(L, "kcm.main");
    int rc = 2;
    char **exec_args = NULL;
    if (lua_pcall(L, 1, 1, errf) == LUA_OK) {
        push_main_args(L, argc, argv, have_datadir ? datadir : NULL, exe);
        if (lua_pcall(L, 2, 1, errf) == LUA_OK) {
            if (lua_istable(L, -1)) {
                exec_args = take_argv(L, lua_gettop(L));
                if (!exec_args)
                    fprintf(stderr, "kcmrun: internal error: bad exec request\n");
            } else {
                rc = (int)lua_tointeger(L, -1);
            }
        } else {
            fprintf(stderr, "kcmrun: internal error: %s\n", lua_tostring(L, -1));
        }
    } else {
        fprintf(stderr, "kcmrun: cannot load kcm.main: %s\n", lua_tostring(L, -1));
    }
    fflush(stdout);
    if (kcm_runtime_busy() > 0) {
        /* An interrupted run abandoned work in flight: its worker threads
         * still use ssh sessions and buffers that closing the Lua state
         * would free under them. Exit without it; closing the connections
         * ends the remote commands, local ones are killed here. */
        kcm_exec_kill_children(SIGKILL);
        fflush(stderr);
        _exit(rc);
    }
    lua_close(L);
    kcm_runtime_shutdown();
    if (exec_args)
        rc = exec_argv(exec_args);   /* returns only when exec failed */
    if (exec_args) {
        for (char **a = exec_args; *a; a++)
            free(*a);
        free(exec_args);
    }
    return rc;
}
