/* Small helpers shared by the ssh files (formatting, quoting, ~), kept
 * apart so connect (ssh_conn.c) and host keys (ssh_hostkey.c) depend on
 * this file instead of on each other. */
#include "ssh_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *kcm_ssh_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    return s;
}

char *kcm_ssh_shquote(const char *s)
{
    struct kcm_buf b = {0};
    kcm_buf_add(&b, "'", 1);
    for (; *s; s++) {
        if (*s == '\'') kcm_buf_add(&b, "'\\''", 4);
        else kcm_buf_add(&b, s, 1);
    }
    kcm_buf_add(&b, "'", 1);
    return b.p;
}


char *kcm_ssh_expand_home(const char *path)
{
    const char *home = getenv("HOME");
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0'))
        return kcm_ssh_fmt("%s%s", home ? home : "", path + 1);
    return kcm_ssh_fmt("%s", path);
}

const char *kcm_ssh_sftp_kind(int e)
{
    switch (e) {
    case SSH_FX_PERMISSION_DENIED: return "denied";
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH: return "noent";
    default: return "error";
    }
}

const char *kcm_ssh_fail_kind(kcm_ssh_sess *c)
{
    if (!c->s || !ssh_is_connected(c->s)) return "unreachable";
    return c->fail_kind ? c->fail_kind : "error";
}

void *kcm_ssh_open_text(const char *path, const char *what, char **msg)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e != ENOENT) *msg = kcm_ssh_fmt("%s %s: %s", what, path, strerror(e));
        errno = e;
        return NULL;
    }
    struct stat st, null;
    /* /dev/null is the usual "no file" (ssh -F /dev/null): it reads empty */
    int is_null = fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && stat("/dev/null", &null) == 0 &&
                  S_ISCHR(null.st_mode) && st.st_rdev == null.st_rdev;
    if (!is_null && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        *msg = kcm_ssh_fmt("%s %s: not a regular file; give the path of a plain file", what, path);
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "r");
    if (!f) { *msg = kcm_ssh_fmt("%s %s: %s", what, path, strerror(errno)); close(fd); errno = EINVAL; }
    return f;
}

long kcm_ssh_read_line(void *fp, char *buf)
{
    FILE *f = fp;
    long n = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF) {
        if (n >= KCM_SSH_LINE_MAX) return -2;
        buf[n++] = (char)c;
        if (c == '\n') break;
    }
    if (n == 0 && c == EOF) return -1;
    buf[n] = '\0';
    return n;
}

/* OpenSSH's match_pattern(): '*' and '?' only; fold: ignore case (host
 * names in known_hosts), else byte for byte (ssh_config's Host lines).
 * Linear: only the last '*' ever needs to take more of s (a recursive
 * matcher is exponential on "*?*?*?..." patterns; a libFuzzer finding). */
int kcm_ssh_pattern(const char *s, const char *p, int fold)
{
    const char *star = NULL, *retry = NULL;
    while (*s) {
        if (*p == '*') {
            star = ++p;
            retry = s;
        } else if (*p && (*p == '?' || *p == *s ||
                          (fold && tolower((unsigned char)*p) == tolower((unsigned char)*s)))) {
            p++, s++;
        } else if (star) {
            p = star;
            s = ++retry;
        } else {
            return 0;
        }
    }
    while (*p == '*') p++;
    return *p == '\0';
}
