/* Local files for the control machine: atomic writes that never expose a
 * secret (the temp file has its final mode from the first byte), reads,
 * stat, mkdir -p, remove, SHA-256. All honour --check. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <libgen.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "modules.h"
#include "util.h"

static int read_all(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t cap = 8192, n = 0;
    char *p = malloc(cap);
    if (!p) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *q = realloc(p, cap);
            if (!q) {
                free(p);
                close(fd);
                errno = ENOMEM;
                return -1;
            }
            p = q;
        }
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(p);
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *out = p;
    *len = n;
    return 0;
}

static int l_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *data;
    size_t len;
    if (read_all(path, &data, &len) < 0) {
        if (errno == ENOMEM)
            kcm_oom(L);
        return kcm_fail_errno(L, errno, "%s", path);
    }
    lua_pushlstring(L, data, len);
    kcm_memzero(data, len);
    free(data);
    return 1;
}

/* When the file already holds data: -1 when it must be written, else
 * whether only the mode changed (the chmod is done; -2 with errno when it
 * failed). lstat: a symlink is never "the same file"; the rename in
 * replace_file replaces the link itself instead of writing (or chmod-ing)
 * what it points to. */
static int same_content(const char *path, const char *data, size_t len, mode_t mode)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != len)
        return -1;
    char *old;
    size_t oldlen;
    if (read_all(path, &old, &oldlen) != 0)
        return -1;
    int same = oldlen == len && memcmp(old, data, len) == 0;
    kcm_memzero(old, oldlen);
    free(old);
    if (!same)
        return -1;
    if ((st.st_mode & 07777) == mode)
        return 0;
    if (chmod(path, mode) != 0)
        return -2;
    return 1;
}

/* A temp file next to the target, fsync, rename, fsync of the folder: a
 * crash leaves the old file or the new one, never half of it. Returns 0, or
 * the convention's failure values pushed (their count). */
static int replace_file(lua_State *L, const char *path, const char *data, size_t len, mode_t mode,
                        int want_mkdir)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *d = dirname(dir);
    if (want_mkdir) {
        int ch = 0;
        if (kcm_mkdir_p(d, 0755, &ch) != 0)
            return kcm_fail_errno(L, errno, "mkdir %s", d);
    }
    char tmp[PATH_MAX];
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s", path);
    if (snprintf(tmp, sizeof tmp, "%s/.%s.kcm-XXXXXX", d, basename(base)) >= (int)sizeof tmp)
        return kcm_fail_errno(L, ENAMETOOLONG, "write %s", path);
    /* mkostemp creates 0600; that is already safe for secrets. */
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return kcm_fail_errno(L, errno, "write %s", path);
    size_t off = 0;
    int err = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            err = errno;
            break;
        }
        off += (size_t)w;
    }
    if (!err && fchmod(fd, mode) != 0)
        err = errno;
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return kcm_fail_errno(L, err, "write %s", path);
    }
    int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* fs.write(path, data, {mode=, mkdir=}) -> changed | nil, message, kind.
 * It writes: --check is the target layer's to decide (kcm.target), never
 * this primitive's. */
static int l_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    mode_t mode = 0644;
    int want_mkdir = 0;
    if (lua_istable(L, 3)) {
        if (lua_getfield(L, 3, "mode") == LUA_TSTRING)   /* "0644" */
            mode = (mode_t)strtol(lua_tostring(L, -1), NULL, 8) & 07777;
        else
            mode = (mode_t)kcm_opt_int(L, 3, "mode", 0644, "fs.write") & 07777;
        lua_pop(L, 1);
        want_mkdir = kcm_opt_bool(L, 3, "mkdir", 0);
    }
    int same = same_content(path, data, len, mode);
    if (same == -2)
        return kcm_fail_errno(L, errno, "chmod %s", path);
    if (same >= 0) {
        lua_pushboolean(L, same);
        return 1;
    }
    int n = replace_file(L, path, data, len, mode, want_mkdir);
    if (n)
        return n;
    lua_pushboolean(L, 1);
    return 1;
}

static int l_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st) != 0) {
        /* nothing there is an answer, not a failure */
        if (errno == ENOENT || errno == ENOTDIR) {
            lua_pushnil(L);
            return 1;
        }
        return kcm_fail_errno(L, errno, "stat %s", path);
    }
    lua_createtable(L, 0, 6);
    const char *t = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir"
                  : S_ISLNK(st.st_mode) ? "link" : "other";
    lua_pushstring(L, t);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, st.st_mode & 07777);
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, st.st_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, st.st_gid);
    lua_setfield(L, -2, "gid");
    lua_pushinteger(L, (lua_Integer)st.st_mtime);
    lua_setfield(L, -2, "mtime");
    return 1;
}

static int l_exists(lua_State *L)
{
    lua_pushboolean(L, access(luaL_checkstring(L, 1), F_OK) == 0);
    return 1;
}

static int l_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);
    int changed = 0;
    if (kcm_mkdir_p(path, mode, &changed) != 0)
        return kcm_fail_errno(L, errno, "mkdir %s", path);
    lua_pushboolean(L, changed);
    return 1;
}

static int l_remove(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            lua_pushboolean(L, 0);
            return 1;
        }
        return kcm_fail_errno(L, errno, "remove %s", path);
    }
    if (remove(path) != 0)
        return kcm_fail_errno(L, errno, "remove %s", path);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_sha256(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
        return luaL_error(L, "sha256 failed");
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    kcm_hex(hex, md, mdlen);
    lua_pushlstring(L, hex, 2 * mdlen);
    return 1;
}

static int l_tempdir(lua_State *L)
{
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/kcmrun-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl))
        return luaL_error(L, "tempdir: %s", strerror(errno));
    lua_pushstring(L, tmpl);
    return 1;
}

static int l_realpath(lua_State *L)
{
    char buf[PATH_MAX];
    const char *path = luaL_checkstring(L, 1);
    if (!realpath(path, buf)) {
        return kcm_fail_errno(L, errno, "%s", path);
    }
    lua_pushstring(L, buf);
    return 1;
}

static int l_getcwd(lua_State *L)
{
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf))
        return luaL_error(L, "getcwd: %s", strerror(errno));
    lua_pushstring(L, buf);
    return 1;
}

/* fs.lock(path) -> fd or nil, holder_pid: an exclusive run lock. */
static int l_lock(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return luaL_error(L, "lock %s: %s", path, strerror(errno));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int holder = fcntl(fd, F_GETLK, &q) == 0 ? q.l_pid : 0;
        close(fd);
        lua_pushnil(L);
        lua_pushinteger(L, holder);
        return 2;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == 0 && write(fd, pid, (size_t)n) < 0)
        (void)0;
    lua_pushinteger(L, fd);   /* held until the process exits */
    return 1;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dir_gc(lua_State *L)
{
    DIR **d = lua_touserdata(L, 1);
    if (*d) {
        closedir(*d);
        *d = NULL;
    }
    return 0;
}

/* fs.list(dir) -> {name, ...} sorted, without "." and ".."; nil, message when
 * the folder cannot be read. The DIR lives in a userdata with __gc, so a
 * memory error while listing does not leak it. */
static int l_list(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR **d = lua_newuserdatauv(L, sizeof *d, 0);
    *d = NULL;
    if (luaL_newmetatable(L, "kcm.fs.dir")) {
        lua_pushcfunction(L, dir_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    *d = opendir(path);
    if (!*d) {
        return kcm_fail_errno(L, errno, "%s", path);
    }
    lua_newtable(L);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(*d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++n);
    }
    closedir(*d);
    *d = NULL;
    const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n ? n : 1), 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -2, i + 1);
        names[i] = lua_tostring(L, -1);   /* kept alive by the table below it */
        lua_pop(L, 1);
    }
    qsort(names, (size_t)n, sizeof *names, name_cmp);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int stream_close(lua_State *L)
{
    luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    int ok = fclose(p->f) == 0;
    return luaL_fileresult(L, ok, NULL);
}

/* fs.open_private(path) -> Lua file | nil, err: a stream for output that may
 * hold anything (--log-json): never follows a symlink planted at `path`
 * (O_NOFOLLOW), only a regular file, truncated, mode 0600. */
static int l_open_private(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->closef = NULL;
    luaL_setmetatable(L, LUA_FILEHANDLE);
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return kcm_fail(L, "exists", "%s: is a symbolic link (refused)", path);
        return kcm_fail_errno(L, e, "%s", path);
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        why = "not a regular file (refused)";
    else if (ftruncate(fd, 0) != 0 || fchmod(fd, 0600) != 0 || fcntl(fd, F_SETFL, 0) != 0)
        why = strerror(errno);
    if (why || !(p->f = fdopen(fd, "w"))) {
        if (!why)
            why = strerror(errno);
        close(fd);
        return kcm_fail(L, "error", "%s: %s", path, why);
    }
    p->closef = stream_close;
    return 1;
}

int kcm_open_fs(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"read", l_read},
        {"write", l_write},
        {"stat", l_stat},
        {"exists", l_exists},
        {"mkdir", l_mkdir},
        {"remove", l_remove},
        {"sha256", l_sha256},
        {"tempdir", l_tempdir},
        {"realpath", l_realpath},
        {"getcwd", l_getcwd},
        {"lock", l_lock},
        {"list", l_list},
        {"open_private", l_open_private},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
