/* File operations over the connection's file session (ssh_files.c picks
 * and opens it: the login user's, or the become target's). libssh's sftp
 * is blocking-only, which is what a worker thread wants. */
#include "ssh_int.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int kcm_ssh_sftp_fail(kcm_ssh_sess *c, char **msg, const char *op, const char *path)
{
    *msg = path ? kcm_ssh_fmt("%s %s: %s", op, path, sftp_why(c)) : kcm_ssh_fmt("%s: %s", op, sftp_why(c));
    return -1;
}
#define fail kcm_ssh_sftp_fail

/* The caller chose the identity (kcm_ssh_files); a job that skipped it is
 * a bug, not a node's failure. */
static int ensure_sftp(kcm_ssh_sess *c, char **msg)
{
    if (c->sftp) return 0;
    *msg = kcm_ssh_fmt("no file session (kcm_ssh_files was not called)");
    return -1;
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

/* A folder's entries first (links are removed, never followed); depth is
 * bounded so a loop of bind mounts cannot recurse forever. */
static int remove_tree(kcm_ssh_sess *c, const char *path, int depth, char **msg)
{
    if (depth > 64) { *msg = kcm_ssh_fmt("remove %s: more than 64 levels deep", path); return -1; }
    sftp_dir d = sftp_opendir(c->sftp, path);
    if (!d) return fail(c, msg, "remove", path);
    int rc = 0;
    sftp_attributes e;
    while (rc == 0 && (e = sftp_readdir(c->sftp, d))) {
        if (strcmp(e->name, ".") != 0 && strcmp(e->name, "..") != 0) {
            char *sub = kcm_ssh_fmt("%s/%s", strcmp(path, "/") == 0 ? "" : path, e->name);
            if (S_ISDIR(e->permissions)) rc = remove_tree(c, sub, depth + 1, msg);
            else if (sftp_unlink(c->sftp, sub) != 0) rc = fail(c, msg, "remove", sub);
            free(sub);
        }
        sftp_attributes_free(e);
    }
    sftp_closedir(d);
    if (rc == 0 && sftp_rmdir(c->sftp, path) != 0) rc = fail(c, msg, "remove", path);
    return rc;
}

int kcm_ssh_sftp_remove(kcm_ssh_sess *c, const char *path, int recursive, int *changed, char **msg)
{
    struct kcm_ssh_stat st;
    *changed = 0;
    if (kcm_ssh_sftp_stat(c, path, &st, msg) != 0) return -1;
    if (!st.exists) return 0;
    int isdir = strcmp(st.type, "dir") == 0;
    if (isdir && recursive) {
        if (remove_tree(c, path, 0, msg) != 0) return -1;
    } else if ((isdir ? sftp_rmdir(c->sftp, path) : sftp_unlink(c->sftp, path)) != 0) {
        return fail(c, msg, "remove", path);
    }
    *changed = 1;
    return 0;
}

int kcm_ssh_sftp_chmod(kcm_ssh_sess *c, const char *path, unsigned mode, char **msg)
{
    if (ensure_sftp(c, msg) != 0) return -1;
    if (sftp_chmod(c->sftp, path, mode) != 0) return fail(c, msg, "chmod", path);
    return 0;
}

/* ---- posix-rename@openssh.com ----
 * rename(2) over an existing target. libssh 0.10's sftp_rename sends the
 * SFTP v3 RENAME, which OpenSSH's server refuses when the target exists
 * (it links, then unlinks), and it has no call for other extensions. The
 * request is small and synchronous: written as one packet on the session's
 * channel, its STATUS reply read back whole before anything else is sent
 * (jobs on a session are serialised, so no other request is in flight and
 * libssh reads nothing ahead). */

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void add_str(struct kcm_buf *b, const char *s)
{
    unsigned char n[4];
    put_u32(n, (uint32_t)strlen(s));
    kcm_buf_add(b, (const char *)n, 4);
    kcm_buf_add(b, s, strlen(s));
}

static int read_exact(ssh_channel ch, unsigned char *p, uint32_t n, int timeout_ms)
{
    for (uint32_t got = 0; got < n;) {
        int k = ssh_channel_read_timeout(ch, p + got, n - got, 0, timeout_ms);
        if (k <= 0) return -1;
        got += (uint32_t)k;
    }
    return 0;
}

int kcm_ssh_sftp_posix_rename(kcm_ssh_sess *c, const char *from, const char *to, char **msg)
{
    if (ensure_sftp(c, msg) != 0) return -1;
    sftp_session sf = c->sftp;
    if (!sftp_extension_supported(sf, "posix-rename@openssh.com", "1")) {
        *msg = kcm_ssh_fmt("rename %s: the node's sftp-server lacks posix-rename@openssh.com (OpenSSH >= 4.9 has it)", to);
        return -1;
    }
    uint32_t id = ++sf->id_counter;
    struct kcm_buf b = {0};
    unsigned char head[9];
    kcm_buf_add(&b, "\0\0\0\0", 4);   /* length, filled below */
    head[0] = SSH_FXP_EXTENDED;
    put_u32(head + 1, id);
    kcm_buf_add(&b, (const char *)head, 5);
    add_str(&b, "posix-rename@openssh.com");
    add_str(&b, from);
    add_str(&b, to);
    put_u32((unsigned char *)b.p, (uint32_t)(b.n - 4));
    int timeout_ms = (int)((c->io_timeout > 0 ? c->io_timeout : 60) * 1000L);
    int rc = -1;
    unsigned char len[4], *rep = NULL;
    if (ssh_channel_write(sf->channel, b.p, (uint32_t)b.n) != (int)b.n || read_exact(sf->channel, len, 4, timeout_ms) != 0) {
        *msg = kcm_ssh_fmt("rename %s: %s", to, ssh_get_error(c->s));
        goto out;
    }
    uint32_t n = get_u32(len);
    if (n < 9 || n > 65536 || !(rep = malloc(n)) || read_exact(sf->channel, rep, n, timeout_ms) != 0) {
        *msg = kcm_ssh_fmt("rename %s: bad or no answer from the node's sftp-server", to);
        goto out;
    }
    if (rep[0] != SSH_FXP_STATUS || get_u32(rep + 1) != id) {
        *msg = kcm_ssh_fmt("rename %s: unexpected answer %u from the node's sftp-server", to, rep[0]);
        goto out;
    }
    sf->errnum = (int)get_u32(rep + 5);
    rc = sf->errnum == SSH_FX_OK ? 0 : fail(c, msg, "rename", to);
out:
    free(rep);
    kcm_buf_free(&b, 0);
    return rc;
}
