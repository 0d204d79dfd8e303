/* File sync for node:put: compare by hashing on both ends, send the
 * content, install atomically. Everything here runs on a worker thread.
 *
 *   s:sync_probe{src=PATH | data=STRING, path=, become=}
 *     -> {sha=, size=, dev=, ino=, mtime=}   (the local side)
 *        {exists=, type=, mode=, uid=, gid=, size=, sha=|nil, stale=, dir=}   (the node's)
 *   s:sync_put{src= | data=, path=, tmp=, mode=, uid=, gid=, mkdir=, become=,
 *              rename=true, expect={size=, dev=, ino=, mtime=}} -> bytes sent
 *   s:sync_commit{tmp=, path=, become=}   renames a temp staged with rename=false
 *   s:sync_attrs{path=, mode=, uid=, gid=, become=}   owner/mode of a file already right
 *   s:sync_clean{path=, become=}   removes temps of the target left by a killed run
 *   s:stats() -> {bytes_sent=, bytes_received=}   (TCP counters of the connection)
 *
 * Why this shape:
 * - Every step goes through the file session of the identity the put runs
 *   as (ssh_files.c: with become, sftp-server runs as the target user), so
 *   the temp, its owner and mode, the rename and the clean-up are SFTP
 *   requests: no process on the node, no staging folder, no path the login
 *   user owns.
 * - The local file is never loaded whole (not into Lua, not into C): it is
 *   hashed once per (dev, inode, size, mtime) per process, whichever node
 *   asks first; the others wait for that result instead of hashing again.
 * - The node's copy is read over SFTP and hashed here up to SMALL bytes
 *   (one round trip for a certificate); a larger one is hashed on the node
 *   by one command, and only when its size matches: a rerun moves a few
 *   hundred bytes, never the file.
 * - Content up to STREAM_MIN goes in SFTP writes. Larger content goes
 *   through one exec channel into `dd conv=fsync` under the same privilege
 *   prefix: libssh 0.10's sftp_write waits for each 32 KiB write's answer
 *   (no sftp_aio before 0.11), while a channel keeps sshd's whole window
 *   in flight. Measured in bench/README.md ("real payload").
 * - Memory per transfer is one CHUNK buffer, whatever the file size.
 * Remote values reach a shell only as quoted positional arguments. */
#include "counter.h"
#include "modules.h"
#include "util.h"
#include "ssh_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/tcp.h>   /* glibc's struct tcp_info lacks the byte counters */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

/* The put job's progress counter (runtime.counter), for its worker thread
 * only: the payload loops add to it without carrying it through every call. */
static __thread kcm_counter *put_progress;

/* ---- local hashes, shared by every node of the run ---- */

struct hent {
    dev_t dev;
    ino_t ino;
    off_t size;
    long long mtime_ns;
    int state;              /* 0 computing, 1 done, -1 failed (retried by the next caller) */
    char hex[65];
    struct hent *next;
};

static pthread_mutex_t hmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hcv = PTHREAD_COND_INITIALIZER;
static struct hent *hcache;

static long long mtime_ns(const struct stat *st)
{
    return (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

static void to_hex(const unsigned char *d, char hex[65])
{
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = x[d[i] >> 4];
        hex[2 * i + 1] = x[d[i] & 15];
    }
    hex[64] = '\0';
}

static int hash_fd(int fd, char hex[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *buf = malloc(CHUNK);
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) abort();
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { rc = -1; break; }
        if (n == 0) break;
        EVP_DigestUpdate(md, buf, (size_t)n);
    }
    if (rc == 0) {
        unsigned char d[32];
        unsigned dl = 0;
        EVP_DigestFinal_ex(md, d, &dl);
        to_hex(d, hex);
    }
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

static void hash_mem(const char *p, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned dl = 0;
    if (EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL) != 1) abort();
    to_hex(d, hex);
}

/* SHA-256 of the local file `path`, with its identity in *st. */
static int local_sha(const char *path, struct stat *st, char hex[65], char **msg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { *msg = kcm_ssh_fmt("cannot read %s: %s", path, strerror(errno)); return -1; }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        *msg = kcm_ssh_fmt("cannot read %s: not a regular file", path);
        close(fd);
        return -1;
    }
    pthread_mutex_lock(&hmu);
    struct hent *e;
    for (;;) {
        for (e = hcache; e; e = e->next)
            if (e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
                e->mtime_ns == mtime_ns(st) && e->state >= 0)
                break;
        if (!e || e->state == 1) break;
        pthread_cond_wait(&hcv, &hmu);   /* another node is hashing this file */
    }
    if (e) {
        memcpy(hex, e->hex, 65);
        pthread_mutex_unlock(&hmu);
        close(fd);
        return 0;
    }
    e = calloc(1, sizeof *e);
    if (!e) abort();
    e->dev = st->st_dev, e->ino = st->st_ino, e->size = st->st_size, e->mtime_ns = mtime_ns(st);
    e->next = hcache;
    hcache = e;
    pthread_mutex_unlock(&hmu);

    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    int rc = hash_fd(fd, e->hex);
    if (rc != 0) *msg = kcm_ssh_fmt("cannot read %s: %s", path, strerror(errno));
    struct stat after;
    /* Written while we read: the hash is of no version; do not keep it. */
    if (rc == 0 && (fstat(fd, &after) != 0 || after.st_size != st->st_size || mtime_ns(&after) != mtime_ns(st))) {
        *msg = kcm_ssh_fmt("%s changed while being read; try again", path);
        rc = -1;
    }
    close(fd);
    pthread_mutex_lock(&hmu);
    e->state = rc == 0 ? 1 : -1;
    if (rc == 0) memcpy(hex, e->hex, 65);
    pthread_cond_broadcast(&hcv);
    pthread_mutex_unlock(&hmu);
    return rc;
}

/* ---- remote commands ---- */

static char *trimmed(const struct kcm_buf *b)
{
    size_t n = b->n;
    while (n > 0 && (b->p[n - 1] == '\n' || b->p[n - 1] == '\r' || b->p[n - 1] == ' ')) n--;
    if (n > 400) return kcm_ssh_fmt("...%.*s", 400, b->p + n - 400);
    return kcm_ssh_fmt("%.*s", (int)n, n ? b->p : "");
}

/* Runs a command that must exit 0 as `a`; its output in *r (caller frees). */
static int run_cmd(kcm_ssh_sess *c, const char *cmd, const char *bare, const struct kcm_ssh_as *a,
                   const char *what, struct kcm_ssh_exec_res *r, char **msg)
{
    char *m = NULL;
    memset(r, 0, sizeof *r);
    if (kcm_ssh_exec(c, cmd, bare, NULL, 0, a, 600000, r, &m) != 0) {
        *msg = kcm_ssh_fmt("%s: %s", what, m);
        free(m);
        return -1;
    }
    if (r->timed_out) { *msg = kcm_ssh_fmt("%s: timed out", what); return -1; }
    if (r->code != 0) {
        /* a command's refusal shows only in its stderr: kind "exit" lets the
         * Lua layer read it there (node.lua's become hint) */
        c->fail_kind = "exit";
        char *e = trimmed(&r->err);
        *msg = *e ? kcm_ssh_fmt("%s: %s", what, e) : kcm_ssh_fmt("%s: exit code %d", what, r->code);
        free(e);
        return -1;
    }
    return 0;
}

static void res_free(struct kcm_ssh_exec_res *r)
{
    kcm_buf_free(&r->out, 0);
    kcm_buf_free(&r->err, 0);
}

/* The node's hash of a large file: openssl when the node has it (SHA-NI:
 * ~1.2 GB/s here), else sha256sum (~200 MB/s). */
static const char HASH[] =
    "if command -v openssl >/dev/null; then exec openssl dgst -sha256 -r < \"$1\"; fi; exec sha256sum < \"$1\"";

struct remote {
    int exists, stale, dir, has_sha;
    unsigned mode, uid, gid;
    unsigned long long size, mtime;
    const char *type;
    char sha[65];
};

static const char *type_of(unsigned m)
{
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "link" : S_ISCHR(m) ? "char" :
           S_ISBLK(m) ? "block" : S_ISFIFO(m) ? "fifo" : S_ISSOCK(m) ? "socket" : "unknown";
}

/* Files up to this size are compared by reading them over SFTP: for a
 * certificate or a unit file that costs one round trip, where a command on
 * the node costs a session and a process or two. Larger files are hashed
 * on the node and never move. */
#define SMALL (64 * 1024)
/* Content up to this size is written with SFTP writes (no process on the
 * node); larger content is streamed (see the header). */
#define STREAM_MIN (1024 * 1024)

/* Is the run id that follows ".kcm-" in name one of live ("a,b")? "*":
 * every run may be live (this run does not hold the node's lock). */
static int live_temp(const char *id, const char *live)
{
    if (live && strcmp(live, "*") == 0) return 1;
    size_t n = strcspn(id, ".");
    for (const char *p = live; p && *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, id, n) == 0) return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

/* The folder of an absolute path ("/" for "/x"), malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!d) abort();
    return d;
}

/* Temps of `path` (.NAME.kcm-RUNID.RND.tmp in its folder) whose run is not
 * in `live`: *found says whether there are any; with `rm` they are removed
 * (best effort), and so is `extra` (a temp of this run). *dir_exists says
 * whether the folder is there. */
static void stale_temps(kcm_ssh_sess *c, const char *path, const char *live, int rm, const char *extra,
                        int *found, int *dir_exists)
{
    char *dir = dir_of(path);
    char *prefix = kcm_ssh_fmt(".%s.kcm-", strrchr(path, '/') + 1);
    size_t pl = strlen(prefix);
    if (found) *found = 0;
    if (dir_exists) *dir_exists = 0;
    sftp_dir d = sftp_opendir(c->sftp, dir);
    if (d) {
        if (dir_exists) *dir_exists = 1;
        sftp_attributes e;
        while ((e = sftp_readdir(c->sftp, d))) {
            size_t nl = e->name ? strlen(e->name) : 0;
            if (nl > pl + 4 && strncmp(e->name, prefix, pl) == 0 && strcmp(e->name + nl - 4, ".tmp") == 0 &&
                !live_temp(e->name + pl, live)) {
                if (found) *found = 1;
                if (rm) {
                    char *f = kcm_ssh_fmt("%s/%s", strcmp(dir, "/") == 0 ? "" : dir, e->name);
                    sftp_unlink(c->sftp, f);
                    free(f);
                }
            }
            sftp_attributes_free(e);
        }
        sftp_closedir(d);
    }
    if (rm && extra && *extra) sftp_unlink(c->sftp, extra);
    free(dir);
    free(prefix);
}

/* "put PATH: DETAIL: why" (the node, the file, the stage, the reason) */
static int put_fail(kcm_ssh_sess *c, char **msg, const char *path, const char *detail)
{
    char *where = kcm_ssh_fmt("%s: %s", path, detail);
    int rc = kcm_ssh_sftp_fail(c, msg, "put", where);
    free(where);
    return rc;
}

static int sftp_probe(kcm_ssh_sess *c, const char *path, const char *live, unsigned long long lsize,
                      struct remote *rm, int *need_hash, char **msg)
{
    *need_hash = 0;
    sftp_attributes a = sftp_lstat(c->sftp, path);
    if (!a) {
        int e = sftp_get_error(c->sftp);
        if (e != SSH_FX_NO_SUCH_FILE && e != SSH_FX_NO_SUCH_PATH)
            return kcm_ssh_sftp_fail(c, msg, "put", path);
    } else {
        rm->exists = 1;
        rm->mode = a->permissions & 07777;
        rm->type = type_of(a->permissions);
        rm->uid = a->uid, rm->gid = a->gid, rm->size = a->size;
        rm->mtime = a->mtime64 ? a->mtime64 : a->mtime;
        sftp_attributes_free(a);
    }
    /* the parent folder, and temps of this target left by a killed run */
    stale_temps(c, path, live, 0, NULL, &rm->stale, &rm->dir);
    if (!rm->exists || strcmp(rm->type, "file") != 0 || rm->size != lsize) return 0;
    if (lsize > SMALL) { *need_hash = 1; return 0; }
    sftp_file f = sftp_open(c->sftp, path, O_RDONLY, 0);
    if (!f) return put_fail(c, msg, path, "reading the node's copy");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *buf = malloc(32768);
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) abort();
    unsigned long long got = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = sftp_read(f, buf, 32768);
        if (n < 0) { rc = put_fail(c, msg, path, "reading the node's copy"); break; }
        if (n == 0) break;
        got += (unsigned long long)n;
        EVP_DigestUpdate(md, buf, (size_t)n);
    }
    sftp_close(f);
    if (rc == 0 && got == lsize) {
        unsigned char dg[32];
        unsigned dl = 0;
        EVP_DigestFinal_ex(md, dg, &dl);
        to_hex(dg, rm->sha);
        rm->has_sha = 1;
    }
    kcm_memzero(buf, 32768);   /* may be a key */
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

static int probe_remote(kcm_ssh_sess *c, const struct kcm_ssh_as *as, const char *path,
                        const char *live, unsigned long long lsize, struct remote *rm, char **msg)
{
    int need_hash;
    memset(rm, 0, sizeof *rm);
    if (kcm_ssh_files(c, as, msg) != 0) return -1;
    if (sftp_probe(c, path, live, lsize, rm, &need_hash, msg) != 0) return -1;
    if (!need_hash) return 0;
    const char *args[] = {path};
    char *cmd = kcm_ssh_as_line(as, HASH, args, 1), *bare = kcm_ssh_as_line(NULL, HASH, args, 1);
    char *what = kcm_ssh_fmt("put %s: hashing the node's copy", path);
    struct kcm_ssh_exec_res r;
    int rc = run_cmd(c, cmd, bare, as, what, &r, msg);
    free(cmd);
    free(bare);
    free(what);
    char hex[65];
    if (rc == 0 && r.out.n >= 64 && sscanf(r.out.p, "%64[0-9a-f]", hex) == 1 && strlen(hex) == 64) {
        memcpy(rm->sha, hex, 65);
        rm->has_sha = 1;
    }
    res_free(&r);
    return rc;
}

/* ---- sending the content ---- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The next piece of the content: read from fd into buf, or the next slice
 * of mem. -> its length (0 at the end) with *p at it, or -1 (errno). */
static ssize_t next_piece(int fd, const char *mem, size_t len, size_t *off, char *buf, size_t cap, const char **p)
{
    if (fd < 0) {
        size_t n = len - *off > cap ? cap : len - *off;
        *p = mem + *off;
        *off += n;
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t got = read(fd, buf, cap);
        if (got < 0 && errno == EINTR) continue;
        *p = buf;
        return got;
    }
}

/* Writes the content (fd, or mem/len) to the channel. Returns -1 with *msg
 * when the local file cannot be read; *write_failed when the command stopped
 * taking input (its stderr says why). */
static int send_content(ssh_channel ch, int fd, const char *mem, size_t len, const char *what,
                        unsigned long long *sent, struct kcm_buf *err, int *write_failed, char **msg)
{
    char *buf = NULL;
    if (fd >= 0 && !(buf = malloc(CHUNK))) { *msg = kcm_ssh_fmt("%s: out of memory", what); return -1; }
    size_t off = 0;
    int rc = 0;
    for (;;) {
        const char *p;
        ssize_t got = next_piece(fd, mem, len, &off, buf, CHUNK, &p);
        if (got < 0) { *msg = kcm_ssh_fmt("%s: reading the local file: %s", what, strerror(errno)); rc = -1; break; }
        size_t n = (size_t)got;
        if (n == 0) break;
        /* Blocks while sshd's window is full; libssh's timeout (io_timeout)
         * bounds a stalled link. */
        for (size_t w = 0; w < n;) {
            int k = ssh_channel_write(ch, p + w, (uint32_t)(n - w));
            if (k == SSH_ERROR || ssh_channel_is_closed(ch) || ssh_channel_is_eof(ch)) { *write_failed = 1; break; }
            w += (size_t)k;
        }
        if (*write_failed) break;
        *sent += n;
        kcm_counter_add(put_progress, n);
        /* dd writes nothing on success: stderr only matters at the end, but
         * it must not fill the window meanwhile. */
        char eb[4096];
        int k;
        while ((k = ssh_channel_read_nonblocking(ch, eb, sizeof eb, 1)) > 0) kcm_buf_add(err, eb, (size_t)k);
    }
    free(buf);
    return rc;
}

/* Waits for the command's end, collecting stderr; the deadline moves while
 * the node still talks. */
static int wait_end(kcm_ssh_sess *c, ssh_channel ch, const char *what, struct kcm_buf *err, char **msg)
{
    long deadline = now_ms() + (c->io_timeout > 0 ? c->io_timeout : 60) * 1000L;
    for (;;) {
        char eb[4096];
        int k, any = 0;
        while ((k = ssh_channel_read_nonblocking(ch, eb, sizeof eb, 1)) > 0) { kcm_buf_add(err, eb, (size_t)k); any = 1; }
        while ((k = ssh_channel_read_nonblocking(ch, eb, sizeof eb, 0)) > 0) any = 1;
        if (ssh_channel_is_closed(ch) || ssh_channel_is_eof(ch)) break;
        if (!ssh_is_connected(c->s)) break;
        if (any) deadline = now_ms() + (c->io_timeout > 0 ? c->io_timeout : 60) * 1000L;
        if (now_ms() > deadline) { *msg = kcm_ssh_fmt("%s: no answer from the node", what); return -1; }
        if (ssh_channel_poll_timeout(ch, 100, 1) == SSH_ERROR && !ssh_channel_is_closed(ch)) break;
    }
    if (!ssh_is_connected(c->s)) {
        *msg = kcm_ssh_fmt("%s: connection lost: %s", what, ssh_get_error(c->s));
        return -1;
    }
    return 0;
}

/* "dd: error writing '/x/.y.kcm-1.tmp': No space left on device"
 * -> "put /x/y: no space left on device" */
static char *failure_message(struct kcm_buf *err, const char *what, int code)
{
    char *e = trimmed(err);
    char *why = strrchr(e, '\n') ? strrchr(e, '\n') + 1 : e;
    char *last = strstr(why, "': ");
    if (strncmp(why, "dd: ", 4) == 0 && last) why = last + 3;
    if (why[0] >= 'A' && why[0] <= 'Z' && why[1] >= 'a' && why[1] <= 'z') why[0] = (char)(why[0] + 32);
    char *msg = *why ? kcm_ssh_fmt("%s: %s", what, why) : kcm_ssh_fmt("%s: exit code %d", what, code);
    free(e);
    return msg;
}

/* Into the temp next to the target, which SFTP created (O_EXCL, the final
 * mode from the first byte); nofollow: a symlink swapped in is refused. */
static const char RECV_INTO[] = "exec dd of=\"$1\" bs=262144 conv=notrunc,fsync oflag=nofollow status=none";

/* Streams the content into tmp as `as` (RECV_INTO under the privilege
 * prefix), then waits for dd's exit. *sent counts payload bytes. */
static int stream_into(kcm_ssh_sess *c, const struct kcm_ssh_as *as, const char *tmp, int fd, const char *mem,
                       size_t len, const char *what, unsigned long long *sent, char **msg)
{
    ssh_session s = c->s;
    struct kcm_buf err = {0};
    int rc = -1, write_failed = 0;
    const char *args[] = {tmp};
    char *cmd = kcm_ssh_as_line(as, RECV_INTO, args, 1);
    ssh_channel ch = ssh_channel_new(s);
    if (!ch) { *msg = kcm_ssh_fmt("%s: cannot open channel: %s", what, ssh_get_error(s)); free(cmd); return -1; }
    if (ssh_channel_open_session(ch) != SSH_OK || ssh_channel_request_exec(ch, cmd) != SSH_OK) {
        *msg = kcm_ssh_fmt("%s: %s", what, ssh_get_error(s));
        ssh_channel_free(ch);
        free(cmd);
        return -1;
    }
    free(cmd);
    const char *kind = NULL;
    char *why = NULL;
    if (kcm_ssh_as_handshake(s, ch, as, NULL, (c->io_timeout > 0 ? c->io_timeout : 60) * 1000L, &why, &kind) != 0) {
        c->fail_kind = kind;
        *msg = kcm_ssh_fmt("%s: %s", what, why);
        free(why);
        goto out;
    }
    if (send_content(ch, fd, mem, len, what, sent, &err, &write_failed, msg) != 0) goto out;
    if (!write_failed && !ssh_channel_is_closed(ch)) ssh_channel_send_eof(ch);
    if (wait_end(c, ch, what, &err, msg) != 0) goto out;
    int code = ssh_channel_get_exit_status(ch);
    if (code != 0 || write_failed) {
        c->fail_kind = "exit";
        *msg = failure_message(&err, what, code);
        goto out;
    }
    rc = 0;
out:
    kcm_buf_free(&err, 0);
    ssh_channel_close(ch);
    ssh_channel_free(ch);
    return rc;
}

/* Small content: SFTP writes into the open temp, then fsync. */
static int write_into(kcm_ssh_sess *c, sftp_file f, int fd, const char *mem, size_t len, const char *path,
                      unsigned long long *sent, char **msg)
{
    char *buf = fd >= 0 ? malloc(32768) : NULL;
    if (fd >= 0 && !buf) abort();
    size_t off = 0;
    int rc = 0;
    for (;;) {
        const char *p;
        ssize_t got = next_piece(fd, mem, len, &off, buf, 32768, &p);
        if (got < 0) { *msg = kcm_ssh_fmt("put %s: reading the local file: %s", path, strerror(errno)); rc = -1; break; }
        size_t n = (size_t)got;
        if (n == 0) break;
        for (size_t w = 0; w < n;) {
            ssize_t k = sftp_write(f, p + w, n - w);
            if (k <= 0) { rc = kcm_ssh_sftp_fail(c, msg, "put", path); break; }
            w += (size_t)k;
        }
        if (rc != 0) break;
        *sent += n;
        kcm_counter_add(put_progress, n);
    }
    if (buf) { kcm_memzero(buf, 32768); free(buf); }   /* may be a key */
    if (rc == 0 && sftp_extension_supported(c->sftp, "fsync@openssh.com", "1") && sftp_fsync(f) != 0)
        rc = put_fail(c, msg, path, "fsync");
    return rc;
}

/* Owner (when asked; the id not asked for kept) then mode: chown clears
 * set-id bits the mode may ask for. */
static int set_owner_mode(kcm_ssh_sess *c, const char *file, const char *path, long uid, long gid,
                          unsigned mode, char **msg)
{
    if (uid >= 0 || gid >= 0) {
        sftp_attributes cur = sftp_lstat(c->sftp, file);
        if (!cur) return put_fail(c, msg, path, "owner");
        struct sftp_attributes_struct a;
        memset(&a, 0, sizeof a);
        a.flags = SSH_FILEXFER_ATTR_UIDGID;
        a.uid = uid >= 0 ? (uint32_t)uid : cur->uid;
        a.gid = gid >= 0 ? (uint32_t)gid : cur->gid;
        sftp_attributes_free(cur);
        if (sftp_setstat(c->sftp, file, &a) != 0) return put_fail(c, msg, path, "owner");
    }
    if (sftp_chmod(c->sftp, file, mode) != 0) return put_fail(c, msg, path, "mode");
    return 0;
}

/* rename(2) over the target (posix-rename@openssh.com). Temps of the
 * target left by a killed run go once the new file is in. */
static int commit(kcm_ssh_sess *c, const char *tmp, const char *path, const char *live, char **msg)
{
    sftp_attributes t = sftp_lstat(c->sftp, path);
    int isdir = t && S_ISDIR(t->permissions);
    if (t) sftp_attributes_free(t);
    if (isdir) {
        /* a folder at the target is an error, not a place to move into */
        sftp_unlink(c->sftp, tmp);
        c->fail_kind = "exists";
        *msg = kcm_ssh_fmt("put %s: exists and is a dir, not a file", path);
        return -1;
    }
    char *m = NULL;
    if (kcm_ssh_sftp_posix_rename(c, tmp, path, &m) != 0) {
        *msg = kcm_ssh_fmt("put %s", m);
        free(m);
        if (ssh_is_connected(c->s)) sftp_unlink(c->sftp, tmp);
        return -1;
    }
    stale_temps(c, path, live, 1, NULL, NULL, NULL);
    return 0;
}

struct put_in {
    const char *src;          /* local path, or NULL for mem */
    const char *mem;
    size_t len;
    const char *path, *tmp;
    unsigned mode;
    long uid, gid;            /* -1: leave */
    int mkdir, rename, has_expect;
    struct stat expect;
    struct kcm_ssh_as as;     /* who the file is written as */
    char *live;               /* run ids whose temps are never stale ("a,b"), or NULL */
};

static int open_src(const struct put_in *in, char **msg)
{
    int fd = open(in->src, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { *msg = kcm_ssh_fmt("put %s: cannot read %s: %s", in->path, in->src, strerror(errno)); return -1; }
    struct stat st;
    if (fstat(fd, &st) != 0 || (in->has_expect &&
        (st.st_dev != in->expect.st_dev || st.st_ino != in->expect.st_ino ||
         st.st_size != in->expect.st_size || mtime_ns(&st) != mtime_ns(&in->expect)))) {
        *msg = kcm_ssh_fmt("put %s: %s changed since it was hashed; try again", in->path, in->src);
        close(fd);
        return -1;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return fd;
}

/* The temp is created over SFTP (O_EXCL: never a planted file or symlink;
 * the final mode's bits from the first byte), filled, given owner and
 * mode, and renamed unless staged. Any failure removes it. */
static int put_file(kcm_ssh_sess *c, const struct put_in *in, int fd, unsigned long long size,
                    unsigned long long *sent, char **msg)
{
    if (kcm_ssh_files(c, &in->as, msg) != 0) return -1;
    if (in->mkdir) {
        char *dir = dir_of(in->path);
        int changed, rc = strcmp(dir, "/") == 0 ? 0 : kcm_ssh_sftp_mkdir_p(c, dir, 0755, &changed, msg);
        free(dir);
        if (rc != 0) return -1;
    }
    sftp_file f = sftp_open(c->sftp, in->tmp, O_WRONLY | O_CREAT | O_EXCL, in->mode & 0777);
    if (!f) return kcm_ssh_sftp_fail(c, msg, "put", in->path);
    int rc;
    if (size <= STREAM_MIN) {
        rc = write_into(c, f, fd, in->mem, in->len, in->path, sent, msg);
        if (sftp_close(f) != 0 && rc == 0) rc = kcm_ssh_sftp_fail(c, msg, "put", in->path);
    } else {
        sftp_close(f);
        char *what = kcm_ssh_fmt("put %s", in->path);
        rc = stream_into(c, &in->as, in->tmp, fd, in->mem, in->len, what, sent, msg);
        free(what);
    }
    if (rc == 0) rc = set_owner_mode(c, in->tmp, in->path, in->uid, in->gid, in->mode, msg);
    if (rc == 0 && in->rename) return commit(c, in->tmp, in->path, in->live, msg);
    if (rc != 0 && ssh_is_connected(c->s)) sftp_unlink(c->sftp, in->tmp);
    return rc;
}

/* ---- the Lua binding ---- */

static int set_attrs(kcm_ssh_sess *c, const struct put_in *in, char **msg)
{
    if (kcm_ssh_files(c, &in->as, msg) != 0) return -1;
    return set_owner_mode(c, in->path, in->path, in->uid, in->gid, in->mode, msg);
}

enum sop { S_PROBE, S_PUT, S_COMMIT, S_ATTRS, S_CLEAN, S_STATS };

typedef struct {
    kcm_job base;
    kcm_ssh_sess *c;
    enum sop op;
    struct put_in in;
    char *src, *path, *tmp, *data;
    /* results */
    struct stat lst;
    char lsha[65];
    struct remote rm;
    unsigned long long sent;
    kcm_counter *progress;    /* S_PUT: bytes sent so far, for the progress line */
    unsigned long long tx, rx;
} syncjob;

static void sync_work(kcm_job *j)
{
    syncjob *sj = (syncjob *)j;
    kcm_ssh_sess *c = sj->c;
    char *msg = NULL;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    c->fail_kind = NULL;
    if (kcm_ssh_need_connection(j, c) != 0)
        return;
    switch (sj->op) {
    case S_PROBE:
        if (sj->src) {
            rc = local_sha(sj->src, &sj->lst, sj->lsha, &msg);
            if (rc != 0) {
                char *m = kcm_ssh_fmt("put %s: %s", sj->path, msg);
                free(msg);
                msg = m;
            }
        } else {
            hash_mem(sj->data, sj->in.len, sj->lsha);
            sj->lst.st_size = (off_t)sj->in.len;
        }
        if (rc == 0)
            rc = probe_remote(c, &sj->in.as, sj->path, sj->in.live, (unsigned long long)sj->lst.st_size,
                              &sj->rm, &msg);
        break;
    case S_PUT: {
        int fd = -1;
        struct stat st;
        if (sj->src && (fd = open_src(&sj->in, &msg)) < 0) { rc = -1; break; }
        unsigned long long size = fd >= 0 ? (fstat(fd, &st) == 0 ? (unsigned long long)st.st_size : 0) : sj->in.len;
        put_progress = sj->progress;
        rc = put_file(c, &sj->in, fd, size, &sj->sent, &msg);
        put_progress = NULL;
        if (fd >= 0) close(fd);
        break;
    }
    case S_COMMIT:
        if ((rc = kcm_ssh_files(c, &sj->in.as, &msg)) == 0)
            rc = commit(c, sj->tmp, sj->path, sj->in.live, &msg);
        break;
    case S_ATTRS:
        rc = set_attrs(c, &sj->in, &msg);
        break;
    case S_CLEAN:
        if ((rc = kcm_ssh_files(c, &sj->in.as, &msg)) == 0)
            stale_temps(c, sj->path, sj->in.live, 1, sj->tmp, NULL, NULL);
        break;
    case S_STATS: {
        struct tcp_info ti;
        socklen_t tl = sizeof ti;
        memset(&ti, 0, sizeof ti);
        int fd = ssh_get_fd(c->s);
        if (fd >= 0 && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0) {
            sj->tx = ti.tcpi_bytes_acked;
            sj->rx = ti.tcpi_bytes_received;
        }
        break;
    }
    }
    const char *kind = rc != 0 ? kcm_ssh_fail_kind(c) : NULL;
    if (rc != 0 && c->s && !ssh_is_connected(c->s)) kcm_ssh_disconnect(c);
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) kcm_job_fail_kind(j, kind, "%s", msg ? msg : "failed");
    free(msg);
}

static int sync_done(lua_State *L, kcm_job *j)
{
    syncjob *sj = (syncjob *)j;
    switch (sj->op) {
    case S_PROBE:
        lua_createtable(L, 0, 5);
        lua_pushstring(L, sj->lsha); lua_setfield(L, -2, "sha");
        lua_pushinteger(L, (lua_Integer)sj->lst.st_size); lua_setfield(L, -2, "size");
        lua_pushinteger(L, (lua_Integer)sj->lst.st_dev); lua_setfield(L, -2, "dev");
        lua_pushinteger(L, (lua_Integer)sj->lst.st_ino); lua_setfield(L, -2, "ino");
        lua_pushinteger(L, (lua_Integer)mtime_ns(&sj->lst)); lua_setfield(L, -2, "mtime");
        lua_createtable(L, 0, 9);
        lua_pushboolean(L, sj->rm.exists); lua_setfield(L, -2, "exists");
        lua_pushboolean(L, sj->rm.stale); lua_setfield(L, -2, "stale");
        lua_pushboolean(L, sj->rm.dir); lua_setfield(L, -2, "dir");
        if (sj->rm.exists) {
            lua_pushstring(L, sj->rm.type); lua_setfield(L, -2, "type");
            lua_pushinteger(L, sj->rm.mode); lua_setfield(L, -2, "mode");
            lua_pushinteger(L, sj->rm.uid); lua_setfield(L, -2, "uid");
            lua_pushinteger(L, sj->rm.gid); lua_setfield(L, -2, "gid");
            lua_pushinteger(L, (lua_Integer)sj->rm.size); lua_setfield(L, -2, "size");
            lua_pushinteger(L, (lua_Integer)sj->rm.mtime); lua_setfield(L, -2, "mtime");
        }
        if (sj->rm.has_sha) { lua_pushstring(L, sj->rm.sha); lua_setfield(L, -2, "sha"); }
        return 2;
    case S_PUT:
        lua_pushinteger(L, (lua_Integer)sj->sent);
        return 1;
    case S_STATS:
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, (lua_Integer)sj->tx); lua_setfield(L, -2, "bytes_sent");
        lua_pushinteger(L, (lua_Integer)sj->rx); lua_setfield(L, -2, "bytes_received");
        return 1;
    default:
        lua_pushboolean(L, 1);
        return 1;
    }
}

static void sync_free(kcm_job *j)
{
    syncjob *sj = (syncjob *)j;
    if (sj->data) { kcm_memzero(sj->data, sj->in.len); free(sj->data); }
    free(sj->src); free(sj->path); free(sj->tmp);
    kcm_ssh_as_free(&sj->in.as);
    free(sj->in.live);
    kcm_counter_finish(sj->progress);
    kcm_ssh_sess_unref(sj->c);
    free(sj);
}

/* Reads the option table at index 2 (a raise frees the job through the
 * guard kcm_job_new pushed). */
static char *field_str(lua_State *L, const char *k, int required)
{
    char *v = NULL;
    if (lua_getfield(L, 2, k) != LUA_TNIL) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (!s || lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "ssh sync: field '%s' must be a string", k);
        if (strlen(s) != n) luaL_error(L, "ssh sync: field '%s' contains a NUL byte", k);
        v = strdup(s);
        if (!v) kcm_oom(L);
    } else if (required) {
        luaL_error(L, "ssh sync: field '%s' is required", k);
    }
    lua_pop(L, 1);
    return v;
}

static lua_Integer field_int(lua_State *L, const char *k, lua_Integer dflt)
{
    lua_Integer v = dflt;
    if (lua_getfield(L, 2, k) != LUA_TNIL) {
        if (!lua_isinteger(L, -1)) luaL_error(L, "ssh sync: field '%s' must be an integer", k);
        v = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static void fill(lua_State *L, syncjob *sj)
{
    sj->path = field_str(L, "path", 1);
    sj->in.live = field_str(L, "live", 0);
    if (sj->op == S_COMMIT) sj->tmp = field_str(L, "tmp", 1);
    if (sj->op == S_CLEAN) sj->tmp = field_str(L, "tmp", 0);
    if (sj->op == S_PROBE || sj->op == S_PUT) {
        sj->src = field_str(L, "src", 0);
        if (!sj->src) {
            if (lua_getfield(L, 2, "data") != LUA_TSTRING) luaL_error(L, "ssh sync: give src (a local path) or data (a string)");
            size_t n;
            const char *d = lua_tolstring(L, -1, &n);
            sj->data = malloc(n ? n : 1);
            if (!sj->data) kcm_oom(L);
            memcpy(sj->data, d, n);
            sj->in.len = n;
            lua_pop(L, 1);
        }
    }
    if (sj->op == S_PUT || sj->op == S_ATTRS) {
        if (sj->op == S_PUT) {
            sj->tmp = field_str(L, "tmp", 1);
            lua_getfield(L, 2, "progress");
            sj->progress = kcm_counter_opt(L, -1);
            lua_pop(L, 1);
        }
        sj->in.mode = (unsigned)field_int(L, "mode", 0644) & 07777;
        sj->in.uid = (long)field_int(L, "uid", -1);
        sj->in.gid = (long)field_int(L, "gid", -1);
        lua_getfield(L, 2, "mkdir");
        sj->in.mkdir = lua_toboolean(L, -1);
        lua_getfield(L, 2, "rename");
        sj->in.rename = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_pop(L, 2);
        if (lua_getfield(L, 2, "expect") == LUA_TTABLE && sj->src) {
            lua_getfield(L, -1, "size"); sj->in.expect.st_size = (off_t)lua_tointeger(L, -1);
            lua_getfield(L, -2, "dev"); sj->in.expect.st_dev = (dev_t)lua_tointeger(L, -1);
            lua_getfield(L, -3, "ino"); sj->in.expect.st_ino = (ino_t)lua_tointeger(L, -1);
            lua_getfield(L, -4, "mtime");
            long long m = lua_tointeger(L, -1);
            sj->in.expect.st_mtim.tv_sec = (time_t)(m / 1000000000LL);
            sj->in.expect.st_mtim.tv_nsec = (long)(m % 1000000000LL);
            sj->in.has_expect = 1;
            lua_pop(L, 4);
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, 2, "become");
    kcm_ssh_as_read(L, -1, &sj->in.as);
    lua_pop(L, 1);
    sj->in.src = sj->src;
    sj->in.mem = sj->data;
    sj->in.path = sj->path;
    sj->in.tmp = sj->tmp;
}

static int new_sync(lua_State *L, enum sop op)
{
    kcm_ssh_sess *c = kcm_ssh_check(L, 1);
    if (op != S_STATS) luaL_checktype(L, 2, LUA_TTABLE);
    syncjob *sj = kcm_job_new(L, sizeof *sj, sync_work, sync_done, sync_free);
    sj->base.pin = c;
    atomic_fetch_add(&c->refs, 1);
    sj->c = c;
    sj->op = op;
    if (op != S_STATS)
        fill(L, sj);
    return kcm_job_yield(L, &sj->base);
}

int kcm_ssh_l_sync_probe(lua_State *L) { return new_sync(L, S_PROBE); }
int kcm_ssh_l_sync_put(lua_State *L) { return new_sync(L, S_PUT); }
int kcm_ssh_l_sync_commit(lua_State *L) { return new_sync(L, S_COMMIT); }
int kcm_ssh_l_sync_attrs(lua_State *L) { return new_sync(L, S_ATTRS); }
int kcm_ssh_l_sync_clean(lua_State *L) { return new_sync(L, S_CLEAN); }
int kcm_ssh_l_stats(lua_State *L) { return new_sync(L, S_STATS); }
