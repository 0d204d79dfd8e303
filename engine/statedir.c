/* The control machine's state folder (lua/kcm/state.lua), checked as ssh(1)
 * checks ~/.ssh: a folder another user owns, or one others may write to,
 * would let them plant or change what a run trusts, so it is refused with
 * the fix. Files in it are opened without following a symlink and must be
 * regular files we own. The uid is getuid()'s: /proc/self can be root-owned
 * under hardening, which made a non-root run believe it was root.
 *
 *   statedir.prepare(dir) -> true | nil, message   (creates it 0700 when missing)
 *   statedir.read(path)   -> content | nil (no such file) | nil, message
 *   statedir.user()       -> uid, name */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "modules.h"
#include "util.h"

static int fail(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(lua_State *L, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    lua_pushstring(L, buf);
    return 2;
}

static int l_prepare(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(dir, &st) != 0) {
        if (errno != ENOENT) return fail(L, "%s", strerror(errno));
        /* the parents as mkdir -p makes them, the folder itself private */
        char *p = strdup(dir);
        if (!p) return kcm_oom(L);
        for (char *q = p + 1; *q; q++) {
            if (*q != '/') continue;
            *q = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                free(p);
                return fail(L, "cannot create its parent folders: %s", strerror(e));
            }
            *q = '/';
        }
        free(p);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) return fail(L, "%s", strerror(errno));
        if (lstat(dir, &st) != 0) return fail(L, "%s", strerror(errno));
    }
    uid_t me = getuid();
    if (S_ISLNK(st.st_mode))
        return fail(L, "is a symbolic link; give the real folder with --state-dir");
    if (!S_ISDIR(st.st_mode))
        return fail(L, "is not a folder; give another with --state-dir DIR");
    if (st.st_uid != me)
        return fail(L, "is owned by uid %u, not by you (uid %u): chown %u %s, or give your own with --state-dir DIR",
                    (unsigned)st.st_uid, (unsigned)me, (unsigned)me, dir);
    if (st.st_mode & 022)
        return fail(L, "may be written by others (mode %04o): chmod 700 %s", (unsigned)(st.st_mode & 07777), dir);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) { lua_pushnil(L); return 1; }
        if (errno == ELOOP) return fail(L, "%s is a symbolic link: a state file must be a regular file", path);
        return fail(L, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid()) {
        close(fd);
        return fail(L, "%s is not a regular file of yours: remove it", path);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char buf[8192];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { int e = errno; close(fd); return fail(L, "%s: %s", path, strerror(e)); }
        luaL_addlstring(&b, buf, (size_t)n);
    }
    close(fd);
    luaL_pushresult(&b);
    return 1;
}

static int l_user(lua_State *L)
{
    uid_t me = getuid();
    lua_pushinteger(L, (lua_Integer)me);
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(me, &pw, buf, sizeof buf, &res) == 0 && res) lua_pushstring(L, res->pw_name);
    else lua_pushnil(L);
    return 2;
}

int kcm_open_statedir(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"prepare", l_prepare}, {"read", l_read}, {"user", l_user}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
