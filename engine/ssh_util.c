/* Small helpers shared by the ssh files (formatting, quoting, ~), kept
 * apart so connect (ssh_conn.c) and host keys (ssh_hostkey.c) depend on
 * this file instead of on each other. */
#include "ssh_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
