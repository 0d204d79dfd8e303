/* s:fetch{path=, dest=, mode=, become=, progress=} -> bytes
 *
 * A remote file streamed into a local one: over the file session of the
 * identity (ssh_files.c), into a temp next to `dest`, fsynced and renamed
 * over it, so a killed or failed fetch leaves the old copy whole and never
 * a half file. Memory stays at the reads in flight whatever the size (a
 * 120 MB binary from every node does not sit in memory). The temp's name
 * holds the fetching process's pid: a fetch removes the temps of dead
 * ones (a kill -9) and never a live one's. Reads are
 * pipelined: one SFTP round trip per 32 KiB would make a slow link's
 * latency the transfer's speed. */
#include "ssh_int.h"
#include "counter.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FETCH_CHUNK 32768   /* what libssh asks per request */
#define FETCH_DEPTH 16      /* requests in flight: 512 KiB */

typedef struct {
    kcm_job base;
    kcm_ssh_sess *c;
    struct kcm_ssh_as as;
    char *path, *dest;
    unsigned mode;
    kcm_counter *progress;
    unsigned long long got;   /* result: bytes written */
} fetchjob;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The remote file into fd, FETCH_DEPTH reads in flight, answered in the
 * order they were asked. A short answer is the end of the file; any data
 * after it would leave a hole (the file changed while read), so it fails. */
static int stream(kcm_ssh_sess *c, sftp_file f, int fd, const char *path, const char *tmp,
                  kcm_counter *progress, unsigned long long *got, char **msg)
{
    int ids[FETCH_DEPTH];
    int head = 0, inflight = 0, eof = 0, rc = 0;
    char *buf = malloc(FETCH_CHUNK);
    if (!buf) abort();
    while (rc == 0 && (inflight > 0 || !eof)) {
        while (!eof && inflight < FETCH_DEPTH) {
            int id = sftp_async_read_begin(f, FETCH_CHUNK);
            if (id < 0) { rc = kcm_ssh_sftp_fail(c, msg, "get", path); break; }
            ids[(head + inflight) % FETCH_DEPTH] = id;
            inflight++;
        }
        if (rc != 0 || inflight == 0) break;
        int n = sftp_async_read(f, buf, FETCH_CHUNK, (uint32_t)ids[head]);
        head = (head + 1) % FETCH_DEPTH;
        inflight--;
        if (n < 0) { rc = kcm_ssh_sftp_fail(c, msg, "get", path); break; }
        if (n > 0 && eof) {
            *msg = kcm_ssh_fmt("get %s: the file changed while it was read (data after its end); fetch it again", path);
            rc = -1;
            break;
        }
        if (n < FETCH_CHUNK) eof = 1;
        if (n > 0 && write_all(fd, buf, (size_t)n) != 0) {
            *msg = kcm_ssh_fmt("get %s: writing %s: %s", path, tmp, strerror(errno));
            rc = -1;
            break;
        }
        *got += (unsigned long long)n;
        kcm_counter_add(progress, (unsigned long long)n);
    }
    /* answers still owed are read and dropped, so the session stays in step */
    while (inflight > 0) {
        (void)sftp_async_read(f, buf, FETCH_CHUNK, (uint32_t)ids[head]);
        head = (head + 1) % FETCH_DEPTH;
        inflight--;
    }
    free(buf);
    return rc;
}

/* DEST.kcm-get-PID-XXXXXX left by a process that is gone */
static void stale_temps(const char *dest)
{
    const char *slash = strrchr(dest, '/');
    char *dir = slash ? strndup(dest, (size_t)(slash - dest)) : strdup(".");
    if (!dir) abort();
    if (!*dir) { free(dir); dir = strdup("/"); if (!dir) abort(); }
    char *prefix = kcm_ssh_fmt("%s.kcm-get-", slash ? slash + 1 : dest);
    size_t plen = strlen(prefix);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, prefix, plen) != 0) continue;
        char *end;
        long pid = strtol(e->d_name + plen, &end, 10);
        if (pid <= 0 || *end != '-' || (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
        char *p = kcm_ssh_fmt("%s/%s", dir, e->d_name);
        unlink(p);
        free(p);
    }
    if (d) closedir(d);
    free(prefix);
    free(dir);
}

static int fetch(fetchjob *fj, char **msg)
{
    kcm_ssh_sess *c = fj->c;
    if (kcm_ssh_files(c, &fj->as, msg) != 0) return -1;
    sftp_file f = sftp_open(c->sftp, fj->path, O_RDONLY, 0);
    if (!f) return kcm_ssh_sftp_fail(c, msg, "get", fj->path);
    stale_temps(fj->dest);
    char *tmp = kcm_ssh_fmt("%s.kcm-get-%ld-XXXXXX", fj->dest, (long)getpid());
    /* mkstemp: 0600 and ours alone until the content is whole */
    int fd = mkstemp(tmp);
    int rc = 0;
    if (fd < 0) {
        *msg = kcm_ssh_fmt("get %s: creating a temp next to %s: %s", fj->path, fj->dest, strerror(errno));
        rc = -1;
    }
    if (rc == 0) rc = stream(c, f, fd, fj->path, fj->dest, fj->progress, &fj->got, msg);
    sftp_close(f);
    if (rc == 0 && (fchmod(fd, fj->mode) != 0 || fsync(fd) != 0)) {
        *msg = kcm_ssh_fmt("get %s: %s: %s", fj->path, fj->dest, strerror(errno));
        rc = -1;
    }
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        *msg = kcm_ssh_fmt("get %s: %s: %s", fj->path, fj->dest, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, fj->dest) != 0) {
        *msg = kcm_ssh_fmt("get %s: renaming into %s: %s", fj->path, fj->dest, strerror(errno));
        rc = -1;
    }
    if (rc != 0 && fd >= 0) unlink(tmp);
    free(tmp);
    return rc;
}

static void fetch_work(kcm_job *j)
{
    fetchjob *fj = (fetchjob *)j;
    kcm_ssh_sess *c = fj->c;
    char *msg = NULL;
    pthread_mutex_lock(&c->mu);
    c->fail_kind = NULL;
    if (kcm_ssh_need_connection(j, c) != 0)
        return;
    int rc = fetch(fj, &msg);
    const char *kind = rc != 0 ? kcm_ssh_fail_kind(c) : NULL;
    if (rc != 0 && c->s && !ssh_is_connected(c->s)) kcm_ssh_disconnect(c);
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) kcm_job_fail_kind(j, kind, "%s", msg ? msg : "failed");
    free(msg);
}

static int fetch_done(lua_State *L, kcm_job *j)
{
    lua_pushinteger(L, (lua_Integer)((fetchjob *)j)->got);
    return 1;
}

static void fetch_free(kcm_job *j)
{
    fetchjob *fj = (fetchjob *)j;
    free(fj->path); free(fj->dest);
    kcm_ssh_as_free(&fj->as);
    kcm_counter_finish(fj->progress);
    kcm_ssh_sess_unref(fj->c);
    free(fj);
}

static char *field(lua_State *L, const char *k)
{
    if (lua_getfield(L, 2, k) != LUA_TSTRING) luaL_error(L, "ssh fetch: %s must be a string", k);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (strlen(s) != n) luaL_error(L, "ssh fetch: %s contains a NUL byte", k);
    char *d = strdup(s);
    if (!d) kcm_oom(L);
    lua_pop(L, 1);
    return d;
}

int kcm_ssh_l_fetch(lua_State *L)
{
    kcm_ssh_sess *c = kcm_ssh_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    fetchjob *fj = kcm_job_new(L, sizeof *fj, fetch_work, fetch_done, fetch_free);
    fj->base.pin = c;
    atomic_fetch_add(&c->refs, 1);
    fj->c = c;
    fj->path = field(L, "path");
    fj->dest = field(L, "dest");
    lua_getfield(L, 2, "mode");
    fj->mode = (unsigned)luaL_optinteger(L, -1, 0600) & 0777;
    lua_getfield(L, 2, "progress");
    fj->progress = kcm_counter_opt(L, -1);
    lua_getfield(L, 2, "become");
    kcm_ssh_as_read(L, -1, &fj->as);
    lua_pop(L, 3);
    return kcm_job_yield(L, &fj->base);
}
