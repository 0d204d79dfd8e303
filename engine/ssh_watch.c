/* The watchers of a connection: one exec channel per identity commands run
 * as, opened before that identity's first command and kept for the run. A
 * loop of shell builtins reads "+PGID" (a command started), "-PGID" (it
 * ended) and "kPGID" (end it: a timeout) lines; when its input ends, that
 * is when the connection is gone (kcmrun killed or interrupted, the link
 * lost), it ends every command still registered: TERM, then KILL a second
 * later. It runs under the same privilege prefix as the commands it
 * watches, so it may signal them. One process (two with sudo) per
 * connection instead of a watcher per command. */
#include "ssh_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char WATCHER[] =
    "exec >/dev/null 2>&1; trap '' TERM HUP INT; L=' '; "
    "while IFS= read -r l; do case $l in "
    "+*) L=\"$L${l#+} \" ;; "
    "-*) p=${l#-}; case $L in *\" $p \"*) L=\"${L%% $p *} ${L#* $p }\" ;; esac ;; "
    "k*) p=${l#k}; kill -s TERM -- \"-$p\"; { sleep 2; kill -s KILL -- \"-$p\"; } & ;; "
    "esac; done; "
    "[ \"$L\" = ' ' ] && exit 0; "
    "for p in $L; do kill -s TERM -- \"-$p\"; done; sleep 1; for p in $L; do kill -s KILL -- \"-$p\"; done";

static const char *who_of(kcm_ssh_sess *c, const struct kcm_ssh_as *a)
{
    (void)c;
    return a && a->argv ? (a->user ? a->user : "?") : "";
}

static ssh_channel find(kcm_ssh_sess *c, const struct kcm_ssh_as *a)
{
    const char *who = who_of(c, a);
    for (int i = 0; i < c->nwatch; i++)
        if (strcmp(c->watch[i].who, who) == 0) return c->watch[i].ch;
    return NULL;
}

void kcm_ssh_watch_close(kcm_ssh_sess *c)
{
    for (int i = 0; i < c->nwatch; i++) {
        if (c->watch[i].ch) {
            /* an orderly end: nothing is registered, the loop just exits */
            if (c->s && ssh_is_connected(c->s)) ssh_channel_send_eof(c->watch[i].ch);
            ssh_channel_close(c->watch[i].ch);
            ssh_channel_free(c->watch[i].ch);
        }
        free(c->watch[i].who);
    }
    c->nwatch = 0;
}

int kcm_ssh_watch(kcm_ssh_sess *c, const struct kcm_ssh_as *a, char **msg)
{
    ssh_channel w = find(c, a);
    if (w && !ssh_channel_is_closed(w) && !ssh_channel_is_eof(w)) return 0;
    const char *who = who_of(c, a);
    int slot = -1;
    for (int i = 0; i < c->nwatch; i++)
        if (strcmp(c->watch[i].who, who) == 0) slot = i;
    if (slot >= 0) {
        /* its loop ended (killed on the node): start another */
        ssh_channel_close(c->watch[slot].ch);
        ssh_channel_free(c->watch[slot].ch);
        c->watch[slot].ch = NULL;
    } else if (c->nwatch == (int)(sizeof c->watch / sizeof c->watch[0])) {
        *msg = kcm_ssh_fmt("too many become users on one node");
        return -1;
    } else {
        slot = c->nwatch++;
        c->watch[slot].who = strdup(who);
        c->watch[slot].ch = NULL;
        if (!c->watch[slot].who) abort();
    }
    ssh_channel ch = ssh_channel_new(c->s);
    if (!ch || ssh_channel_open_session(ch) != SSH_OK) {
        *msg = kcm_ssh_fmt("cannot open the watcher's channel: %s", ssh_get_error(c->s));
        if (ch) ssh_channel_free(ch);
        return -1;
    }
    char *line = kcm_ssh_as_line(a && a->argv ? a : NULL, WATCHER, NULL, 0);
    int xr = ssh_channel_request_exec(ch, line);
    free(line);
    char *why = NULL;
    const char *kind = NULL;
    if (xr != SSH_OK) {
        *msg = kcm_ssh_fmt("exec request refused: %s", ssh_get_error(c->s));
    } else if (kcm_ssh_as_handshake(c->s, ch, a && a->argv ? a : NULL,
                                    (c->io_timeout > 0 ? c->io_timeout : 60) * 1000L, &why, &kind) != 0) {
        c->fail_kind = kind;
        *msg = why;
        why = NULL;
    } else {
        c->watch[slot].ch = ch;
        return 0;
    }
    free(why);
    ssh_channel_close(ch);
    ssh_channel_free(ch);
    return -1;
}

static void tell(kcm_ssh_sess *c, const struct kcm_ssh_as *a, char op, long pid)
{
    ssh_channel w = find(c, a);
    if (!w) return;
    char line[32];
    int n = snprintf(line, sizeof line, "%c%ld\n", op, pid);
    ssh_channel_write(w, line, (uint32_t)n);
}

void kcm_ssh_watch_add(kcm_ssh_sess *c, const struct kcm_ssh_as *a, long pid) { tell(c, a, '+', pid); }
void kcm_ssh_watch_done(kcm_ssh_sess *c, const struct kcm_ssh_as *a, long pid) { tell(c, a, '-', pid); }
void kcm_ssh_watch_kill(kcm_ssh_sess *c, const struct kcm_ssh_as *a, long pid) { tell(c, a, 'k', pid); }
