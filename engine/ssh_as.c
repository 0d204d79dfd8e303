/* Who a channel runs as (struct kcm_ssh_as): read from the become table
 * node.lua builds, turned into one command line, and the sudo password
 * handshake of a channel that carries no feeder (the file channel, a
 * streamed upload). The argv prefix itself is built in one place only,
 * node.lua's Node:_become_argv. */
#include "ssh_int.h"
#include "util.h"

#include <lua.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void kcm_ssh_as_free(struct kcm_ssh_as *a)
{
    for (char **p = a->argv; p && *p; p++) free(*p);
    free(a->argv);
    if (a->secret) { kcm_memzero(a->secret, strlen(a->secret)); free(a->secret); }
    free(a->user); free(a->prompt); free(a->ready);
    memset(a, 0, sizeof *a);
}

static char *field(lua_State *L, int t, const char *k)
{
    char *v = NULL;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        size_t n;
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "become.%s must be a string", k);
        const char *s = lua_tolstring(L, -1, &n);
        if (strlen(s) != n) luaL_error(L, "become.%s contains a NUL byte", k);
        if (!(v = strdup(s))) kcm_oom(L);
    }
    lua_pop(L, 1);
    return v;
}

/* The caller owns *a before this runs (a raise leaves what was read for its
 * free function). */
void kcm_ssh_as_read(lua_State *L, int idx, struct kcm_ssh_as *a)
{
    memset(a, 0, sizeof *a);
    idx = lua_absindex(L, idx);
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n < 1 || n > 64) luaL_error(L, "become must be a non-empty argv prefix");
    if (!(a->argv = calloc((size_t)n + 1, sizeof(char *)))) kcm_oom(L);
    for (lua_Integer i = 1; i <= n; i++) {
        size_t len;
        if (lua_rawgeti(L, idx, i) != LUA_TSTRING) luaL_error(L, "become[%d] must be a string", (int)i);
        const char *s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len) luaL_error(L, "become[%d] contains a NUL byte", (int)i);
        if (!(a->argv[i - 1] = strdup(s))) kcm_oom(L);
        lua_pop(L, 1);
    }
    a->user = field(L, idx, "user");
    a->secret = field(L, idx, "secret");
    a->prompt = field(L, idx, "prompt");
    a->ready = field(L, idx, "ready");
    if (a->secret && (!a->prompt || !a->ready || !*a->prompt || !*a->ready || strlen(a->secret) > 9998))
        luaL_error(L, "become: a password (at most 9998 bytes) needs a prompt and a ready marker");
}

char *kcm_ssh_as_prefix(const struct kcm_ssh_as *a)
{
    struct kcm_buf b = {0};
    kcm_buf_add(&b, "", 0);
    for (char **p = a ? a->argv : NULL; p && *p; p++) {
        char *q = kcm_ssh_shquote(*p);
        kcm_buf_add(&b, q, strlen(q));
        kcm_buf_add(&b, " ", 1);
        free(q);
    }
    return b.p;
}

char *kcm_ssh_as_line(const struct kcm_ssh_as *a, const char *script, const char **args, int nargs)
{
    struct kcm_buf b = {0};
    char *pre = kcm_ssh_as_prefix(a);
    kcm_buf_add(&b, pre, strlen(pre));
    free(pre);
    char *qs = kcm_ssh_shquote(script);
    kcm_buf_add(&b, "sh -c ", 6);
    kcm_buf_add(&b, qs, strlen(qs));
    kcm_buf_add(&b, " sh", 3);
    free(qs);
    for (int i = 0; i < nargs; i++) {
        char *q = kcm_ssh_shquote(args[i] ? args[i] : "");
        kcm_buf_add(&b, " ", 1);
        kcm_buf_add(&b, q, strlen(q));
        free(q);
    }
    return b.p;
}

int kcm_ssh_cut_marker(struct kcm_buf *b, const char *marker)
{
    size_t ml = strlen(marker);
    int found = 0;
    char *at;
    while (b->n >= ml && (at = memmem(b->p, b->n, marker, ml)) != NULL) {
        size_t off = (size_t)(at - b->p), cut = ml;
        if (off + cut < b->n && b->p[off + cut] == '\n') cut++;
        memmove(at, at + cut, b->n - off - cut);
        b->n -= cut;
        found++;
    }
    return found;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* sudo's words, trimmed, for the message */
static char *said(const struct kcm_buf *e)
{
    size_t n = e->n;
    while (n > 0 && (e->p[n - 1] == '\n' || e->p[n - 1] == '\r' || e->p[n - 1] == ' ')) n--;
    if (n > 400) return kcm_ssh_fmt("...%.*s", 400, e->p + n - 400);
    return kcm_ssh_fmt("%.*s", (int)n, n ? e->p : "");
}

int kcm_ssh_as_handshake(ssh_session s, ssh_channel ch, const struct kcm_ssh_as *a, const char *started,
                         long timeout_ms, char **msg, const char **kind)
{
    int pw = a && a->argv && a->secret;
    if (!pw && !started) return 0;
    struct kcm_buf err = {0};
    long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 60000);
    int prompts = 0, ready = !pw, up = !started, rc = -1;
    char buf[4096];
    for (;;) {
        int k;
        while ((k = ssh_channel_read_nonblocking(ch, buf, sizeof buf, 1)) > 0) kcm_buf_add(&err, buf, (size_t)k);
        /* one buffer for both markers: they may come in one packet */
        if (!ready && kcm_ssh_cut_marker(&err, a->ready) > 0) ready = 1;
        if (!up && kcm_ssh_cut_marker(&err, started) > 0) up = 1;
        if (ready && up) { rc = 0; break; }
        int p = ready ? 0 : kcm_ssh_cut_marker(&err, a->prompt);
        if (p > 0 && (prompts += p) > 1) {
            /* asked again: the password was wrong; close, sudo reads EOF */
            *msg = kcm_ssh_fmt("sudo: incorrect password (sudo asked again)");
            *kind = "sudo";
            break;
        }
        if (p > 0) {
            size_t pl = strlen(a->secret);
            if (ssh_channel_write(ch, a->secret, (uint32_t)pl) != (int)pl || ssh_channel_write(ch, "\n", 1) != 1) {
                *msg = kcm_ssh_fmt("writing to sudo: %s", ssh_get_error(s));
                break;
            }
            continue;
        }
        if (k == SSH_ERROR || ssh_channel_is_eof(ch) || ssh_channel_is_closed(ch)) {
            char *e = said(&err);
            *msg = *e ? kcm_ssh_fmt("%s", e) : kcm_ssh_fmt("ended before it started: %s", ssh_get_error(s));
            *kind = "exit";
            free(e);
            break;
        }
        if (now_ms() > deadline) { *msg = kcm_ssh_fmt("did not start in time"); *kind = "timeout"; break; }
        ssh_channel_poll_timeout(ch, 50, 1);
    }
    kcm_buf_free(&err, 1);
    return rc;
}
