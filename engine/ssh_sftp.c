/* File operations over SFTP (libssh 0.10 deprecates SCP). The sftp
 * channel is opened on first use and kept with the session. libssh's
 * sftp is blocking-only, which is what a worker thread wants. */
#include "ssh_int.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/evp.h>

#define CHUNK 32768  /* OpenSSH sftp-server answers reads of at most 255 KiB; 32 KiB is what libssh sends per packet */

static const char *sftp_why(kcm_ssh_sess *c)
{
    if (!c->sftp) return ssh_get_error(c->s);
    c->fail_kind = kcm_ssh_sftp_kind(sftp_get_error(c->sftp));
    switch (sftp_get_error(c->sftp)) {
    case SSH_FX_NO_SUCH_FILE: return "no such file";
    case SSH_FX_PERMISSION_DENIED: return "permission denied";
    case SSH_FX_NO_SUCH_PATH: return "no such path";
    case SSH_FX_FILE_ALREADY_EXISTS: return "file exists";
    case SSH_FX_OP_UNSUPPORTED: return "operation not supported";
    case SSH_FX_EOF: return "unexpected end of file";
    case SSH_FX_FAILURE: return "failure (not empty, not a directory, or no space?)";
    case SSH_FX_OK: /* transport-level error */
    default: {
        const char *e = ssh_get_error(c->s);
        return e && *e ? e : "sftp error";
    }
    }
}

static int fail(kcm_ssh_sess *c, char **msg, const char *op, const char *path)
{
    *msg = kcm_ssh_fmt("%s %s: %s", op, path, sftp_why(c));
    return -1;
}

static int ensure_sftp(kcm_ssh_sess *c, char **msg)
{
    if (c->sftp) return 0;
    sftp_session sf = sftp_new(c->s);
    if (!sf) { *msg = kcm_ssh_fmt("sftp: %s", ssh_get_error(c->s)); return -1; }
    if (sftp_init(sf) != SSH_OK) {
        *msg = kcm_ssh_fmt("sftp subsystem: %s", ssh_get_error(c->s));
        sftp_free(sf);
        return -1;
    }
    c->sftp = sf;
    return 0;
}

static int not_found(kcm_ssh_sess *c)
{
    int e = sftp_get_error(c->sftp);
    return e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH;
}

int kcm_ssh_sftp_stat(kcm_ssh_sess *c, const char *path, struct kcm_ssh_stat *st, char **msg)
{
    if (ensure_sftp(c, msg) != 0) return -1;
    sftp_attributes a = sftp_lstat(c->sftp, path);
    memset(st, 0, sizeof *st);
    if (!a) {
        if (not_found(c)) return 0;
        return fail(c, msg, "stat", path);
    }
    st->exists = 1;
    unsigned m = a->permissions;
    st->type = S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "link" :
               S_ISCHR(m) ? "char" : S_ISBLK(m) ? "block" : S_ISFIFO(m) ? "fifo" :
               S_ISSOCK(m) ? "socket" : "unknown";
    st->size = a->size;
    st->mode = m & 07777;
    st->uid = a->uid;
    st->gid = a->gid;
    st->mtime = a->mtime64 ? a->mtime64 : a->mtime;
    sftp_attributes_free(a);
    return 0;
}

/* Streams a remote file to `sink`. *exists = 0 when missing. */
static int read_file(kcm_ssh_sess *c, const char *path, int *exists,
                     void (*sink)(void *, const char *, size_t), void *ctx, char **msg)
{
    if (ensure_sftp(c, msg) != 0) return -1;
    sftp_file f = sftp_open(c->sftp, path, O_RDONLY, 0);
    if (!f) {
        if (not_found(c) && exists) { *exists = 0; return 0; }
        return fail(c, msg, "read", path);
    }
    if (exists) *exists = 1;
    char *buf = malloc(CHUNK);
    if (!buf) abort();
    int rc = 0;
    for (;;) {
        ssize_t n = sftp_read(f, buf, CHUNK);
        if (n < 0) { rc = fail(c, msg, "read", path); break; }
        if (n == 0) break;
        sink(ctx, buf, (size_t)n);
    }
    free(buf);
    sftp_close(f);
    return rc;
}

static void sink_buf(void *ctx, const char *p, size_t n)
{
    kcm_buf_add(ctx, p, n);
}

int kcm_ssh_sftp_read(kcm_ssh_sess *c, const char *path, struct kcm_buf *out, char **msg)
{
    /* An empty file must still yield "" (not NULL). */
    kcm_buf_add(out, "", 0);
    return read_file(c, path, NULL, sink_buf, out, msg);
}

static void sink_sha(void *ctx, const char *p, size_t n)
{
    EVP_DigestUpdate(ctx, p, n);
}

int kcm_ssh_sftp_sha256(kcm_ssh_sess *c, const char *path, int *exists, char hex[65], char **msg)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) abort();
    int rc = read_file(c, path, exists, sink_sha, md, msg);
    if (rc == 0 && *exists) {
        unsigned char d[32];
        unsigned int dl = 0;
        EVP_DigestFinal_ex(md, d, &dl);
        kcm_hex(hex, d, 32);
    }
    EVP_MD_CTX_free(md);
    return rc;
}

int kcm_ssh_sftp_mkdir_p(kcm_ssh_sess *c, const char *path, unsigned mode, int *changed, char **msg)
{
    if (ensure_sftp(c, msg) != 0) return -1;
    *changed = 0;
    char *p = strdup(path);
    if (!p) abort();
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/') p[--len] = '\0';
    int rc = 0;
    /* Walk down from the top so every missing level is created. */
    for (char *q = p + 1;; q++) {
        if (*q != '/' && *q != '\0') continue;
        char save = *q;
        *q = '\0';
        sftp_attributes a = sftp_stat(c->sftp, p);
        if (a) {
            int isdir = S_ISDIR(a->permissions);
            sftp_attributes_free(a);
            if (!isdir) {
                *msg = kcm_ssh_fmt("mkdir %s: %s exists and is not a directory", path, p);
                rc = -1;
                break;
            }
        } else if (!not_found(c)) {
            rc = fail(c, msg, "mkdir", p);
            break;
        } else if (sftp_mkdir(c->sftp, p, mode) != 0) {
            rc = fail(c, msg, "mkdir", p);
            break;
        } else {
            /* sftp-server applies its umask; the caller's mode wins. */
            if (sftp_chmod(c->sftp, p, mode) != 0) { rc = fail(c, msg, "chmod", p); break; }
            *changed = 1;
        }
        *q = save;
        if (save == '\0') break;
    }
    free(p);
    return rc;
}

int kcm_ssh_sftp_remove(kcm_ssh_sess *c, const char *path, int *changed, char **msg)
{
    struct kcm_ssh_stat st;
    *changed = 0;
    if (kcm_ssh_sftp_stat(c, path, &st, msg) != 0) return -1;
    if (!st.exists) return 0;
    int r = strcmp(st.type, "dir") == 0 ? sftp_rmdir(c->sftp, path) : sftp_unlink(c->sftp, path);
    if (r != 0) return fail(c, msg, "remove", path);
    *changed = 1;
    return 0;
}

int kcm_ssh_sftp_chmod(kcm_ssh_sess *c, const char *path, unsigned mode, char **msg)
{
    if (ensure_sftp(c, msg) != 0) return -1;
    if (sftp_chmod(c->sftp, path, mode) != 0) return fail(c, msg, "chmod", path);
    return 0;
}

/* Runs a shell command that must exit 0; `what` prefixes the error. */
static int run_ok(kcm_ssh_sess *c, const char *cmd, const char *what, char **msg)
{
    struct kcm_ssh_exec_res r = {0};
    char *m = NULL;
    int rc = 0;
    if (kcm_ssh_exec(c, cmd, NULL, 0, NULL, 60000, &r, &m) != 0) {
        *msg = kcm_ssh_fmt("%s: %s", what, m);
        rc = -1;
    } else if (r.timed_out || r.code != 0) {
        size_t n = r.err.n;
        while (n > 0 && (r.err.p[n - 1] == '\n' || r.err.p[n - 1] == '\r')) n--;
        if (r.timed_out) *msg = kcm_ssh_fmt("%s: timed out", what);
        else if (n) *msg = kcm_ssh_fmt("%s: %.*s", what, (int)n, r.err.p);
        else *msg = kcm_ssh_fmt("%s: failed with exit code %d", what, r.code);
        rc = -1;
    }
    free(m);
    kcm_buf_free(&r.out, 0);
    kcm_buf_free(&r.err, 0);
    return rc;
}

/* A shell loop that removes the temp files of `path` no live run owns: each
 * 'dir'/'.base'.kcm-RUNID.RND.tmp unless its basename matches a case
 * pattern *.kcm-LIVEID.* (quoted parts, unquoted glob; ids are hex, checked
 * by the binding). NULL when there is nothing to do. */
static char *stale_cleanup(const char *path, const char *live)
{
    if (!live) return NULL;
    const char *slash = strrchr(path, '/');
    char *dir = strndup(path, slash ? (size_t)(slash - path) : 0);
    char *base = kcm_ssh_fmt(".%s", slash ? slash + 1 : path);
    if (!dir) abort();
    char *qd = kcm_ssh_shquote(dir), *qb = kcm_ssh_shquote(base);
    struct kcm_buf keep = {0};
    const char *p = live;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n) {
            if (keep.n) kcm_buf_add(&keep, "|", 1);
            kcm_buf_add(&keep, "*.kcm-", 6);
            kcm_buf_add(&keep, p, n);
            kcm_buf_add(&keep, ".*", 2);
        }
        p += n + (p[n] == ',');
    }
    char *g;
    if (keep.n)
        g = kcm_ssh_fmt("for f in %s/%s.kcm-*.*.tmp; do case \"${f##*/}\" in %s) ;; "
                        "*) rm -f -- \"$f\" ;; esac; done", qd, qb, keep.p);
    else
        g = kcm_ssh_fmt("rm -f -- %s/%s.kcm-*.*.tmp", qd, qb);
    kcm_buf_free(&keep, 0);
    free(dir); free(base); free(qd); free(qb);
    return g;
}

int kcm_ssh_sftp_put(kcm_ssh_sess *c, const char *path, const char *tmp,
                     const char *data, size_t len, unsigned mode, const char *chown,
                     int mkdir, const char *live, char **msg)
{
    if (ensure_sftp(c, msg) != 0) return -1;
    if (mkdir) {
        char *dir = strdup(path);
        if (!dir) abort();
        char *slash = strrchr(dir, '/');
        int changed, rc = 0;
        if (slash && slash != dir) {
            *slash = '\0';
            rc = kcm_ssh_sftp_mkdir_p(c, dir, 0755, &changed, msg);
        }
        free(dir);
        if (rc != 0) return -1;
    }
    /* Created with the final mode from the first byte: a key is never
     * readable by others, not even for a moment. O_EXCL: never follow a
     * planted file or symlink. */
    sftp_file f = sftp_open(c->sftp, tmp, O_WRONLY | O_CREAT | O_EXCL, mode & 0777);
    if (!f) return fail(c, msg, "put", path);
    size_t off = 0;
    while (off < len) {
        size_t n = len - off > CHUNK ? CHUNK : len - off;
        ssize_t w = sftp_write(f, data + off, n);
        if (w <= 0) { fail(c, msg, "put", path); sftp_close(f); goto cleanup; }
        off += (size_t)w;
    }
    if (sftp_extension_supported(c->sftp, "fsync@openssh.com", "1") && sftp_fsync(f) != 0) {
        fail(c, msg, "put (fsync)", path);
        sftp_close(f);
        goto cleanup;
    }
    if (sftp_close(f) != 0) { fail(c, msg, "put", path); goto cleanup; }
    if (sftp_chmod(c->sftp, tmp, mode) != 0) { fail(c, msg, "put (chmod)", path); goto cleanup; }
    /* SFTP v3 rename refuses an existing target and libssh 0.10 has no
     * posix-rename: mv(1) on the same filesystem is rename(2). -T: a
     * directory at the target is an error, not a place to move into. */
    char *qt = kcm_ssh_shquote(tmp), *qp = kcm_ssh_shquote(path);
    /* Temp files of this target left by runs that are gone (killed, or cut
     * off from the node) go once the new file is in place; those of runs
     * still going are their transfers in flight (see node.lua, state.lua). */
    char *stale = stale_cleanup(path, live);
    char *mv;
    if (chown) {
        char *qo = kcm_ssh_shquote(chown);
        mv = kcm_ssh_fmt("chown -h -- %s %s && mv -f -T -- %s %s", qo, qt, qt, qp);
        free(qo);
    } else {
        mv = kcm_ssh_fmt("mv -f -T -- %s %s", qt, qp);
    }
    /* a temp file that cannot be removed does not fail the put */
    char *cmd = stale ? kcm_ssh_fmt("%s && { %s; true; }", mv, stale) : mv;
    if (stale) free(mv);
    free(stale);
    char *what = kcm_ssh_fmt("put %s", path);
    int rc = run_ok(c, cmd, what, msg);
    free(what); free(cmd); free(qt); free(qp);
    if (rc == 0) return 0;
cleanup:
    /* Best effort: the connection may be what failed. */
    if (c->sftp) sftp_unlink(c->sftp, tmp);
    return -1;
}
