/* The state directory's primitives (lua/kcm/state.lua): per-node and per-run
 * locks, listing a folder, durable writes off the main thread. flock(2), not fcntl locks: an fcntl lock is
 * dropped when the process closes any descriptor of the file, so merely
 * asking "is this run alive?" about our own lock file would release it. A
 * holder writes a note (pid, run id, command) into its lock file, so a
 * refused caller can say who holds it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "modules.h"
#include "util.h"

#define LOCK_MT "kcm.statedir.lock"

typedef struct { int fd; } lock_ud;

static int lock_release(lua_State *L)
{
    lock_ud *u = luaL_checkudata(L, 1, LOCK_MT);
    if (u->fd >= 0) {
        close(u->fd);   /* closing the last descriptor releases the flock */
        u->fd = -1;
    }
    return 0;
}

static int lock_held(lua_State *L)
{
    lock_ud *u = luaL_checkudata(L, 1, LOCK_MT);
    lua_pushboolean(L, u->fd >= 0);
    return 1;
}

static const luaL_Reg lock_methods[] = {
    {"release", lock_release}, {"held", lock_held}, {NULL, NULL},
};

static void push_errno(lua_State *L, const char *what, const char *path, int e)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    lua_pushstring(L, e == EACCES || e == EPERM ? "permission" : "io");
}

/* Up to 4 KiB of a holder's note. */
static void push_note(lua_State *L, int fd)
{
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    lua_pushlstring(L, buf, n > 0 ? (size_t)n : 0);
}

/* statedir.acquire(path, note) -> lock | nil, holder_note, "held"
 *                                     | nil, message, kind (cannot open) */
static int l_acquire(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t nlen;
    const char *note = luaL_optlstring(L, 2, "", &nlen);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        push_errno(L, "lock", path, errno);
        return 3;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e != EWOULDBLOCK) {
            close(fd);
            push_errno(L, "lock", path, e);
            return 3;
        }
        lua_pushnil(L);
        push_note(L, fd);
        lua_pushstring(L, "held");
        close(fd);
        return 3;
    }
    lock_ud *u = kcm_newudata(L, sizeof *u, LOCK_MT, lock_methods, lock_release);
    u->fd = fd;
    /* The note is for people; a failure to write it does not lose the lock. */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, note, nlen, 0) < 0)
        (void)0;
    return 1;
}

/* statedir.held(path) -> true when another open file description holds
 * an exclusive flock on path (a live run), false when nobody does or the
 * file does not exist, nil, message, kind when it cannot be opened. */
static int l_held(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            lua_pushboolean(L, 0);
            return 1;
        }
        push_errno(L, "open", path, errno);
        return 3;
    }
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    lua_pushboolean(L, held);
    return 1;
}

/* statedir.note(path) -> the note a lock file holds ("" when none). */
static int l_note(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        push_errno(L, "open", path, errno);
        return 3;
    }
    push_note(L, fd);
    close(fd);
    return 1;
}

/* statedir.list(dir) -> {names...} (no "." or ".."), or nil, message, kind. */
static int l_list(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR *d = opendir(path);
    if (!d) {
        push_errno(L, "list", path, errno);
        return 3;
    }
    lua_newtable(L);
    lua_Integer i = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++i);
    }
    closedir(d);
    return 1;
}

/* A state file written on a worker thread: the write-ahead mark of one node
 * costs an fsync of the file and of its folder (~10 ms here), and nodes that
 * change at once must not queue behind each other's fsyncs. */
struct write_job {
    kcm_job base;
    char *path, *data;
    size_t len;
    mode_t mode;
};

static void write_free(kcm_job *job)
{
    struct write_job *j = (struct write_job *)job;
    free(j->path);
    free(j->data);
    free(j);
}

/* temp file next to the target, fsync, rename, fsync of the folder */
static void write_work(kcm_job *job)
{
    struct write_job *j = (struct write_job *)job;
    char dir[PATH_MAX], base[PATH_MAX], tmp[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", j->path);
    snprintf(base, sizeof base, "%s", j->path);
    const char *d = dirname(dir);
    if (snprintf(tmp, sizeof tmp, "%s/.%s.kcm-XXXXXX", d, basename(base)) >= (int)sizeof tmp) {
        kcm_job_fail(job, "write %s: path too long", j->path);
        return;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        kcm_job_fail(job, "write %s: %s", j->path, strerror(errno));
        return;
    }
    int err = 0;
    size_t off = 0;
    while (off < j->len && !err) {
        ssize_t w = write(fd, j->data + off, j->len - off);
        if (w < 0 && errno != EINTR) err = errno;
        if (w > 0) off += (size_t)w;
    }
    if (!err && fchmod(fd, j->mode) != 0) err = errno;
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, j->path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        kcm_job_fail(job, "write %s: %s", j->path, strerror(err));
        return;
    }
    int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0) err = errno;
        close(dfd);
    }
    if (err) kcm_job_fail(job, "write %s: fsync of its folder: %s", j->path, strerror(err));
}

static int write_done(lua_State *L, kcm_job *job)
{
    (void)job;
    lua_pushboolean(L, 1);
    return 1;
}

/* statedir.write(path, data, mode) -> true once the file is on disk (raises
 * on failure). Not in --check's reach: callers decide (state.lua). */
static int l_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer mode = luaL_optinteger(L, 3, 0600);
    struct write_job *j = kcm_job_new(L, sizeof *j, write_work, write_done, write_free);
    j->path = strdup(path);
    j->data = malloc(len ? len : 1);
    if (!j->path || !j->data)
        kcm_oom(L);
    memcpy(j->data, data, len);
    j->len = len;
    j->mode = (mode_t)mode & 07777;
    return kcm_job_yield(L, &j->base);
}

int kcm_open_statedir(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"acquire", l_acquire}, {"held", l_held}, {"note", l_note}, {"list", l_list},
        {"write", l_write}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
