/* The watchers of a connection: one exec channel per identity commands run
 * as, opened before that identity's first command and kept for the run. A
 * loop of shell builtins reads "+PID" (a command started), "-PID" (it
 * ended) and "kPID" (end it: a timeout) lines; when its input ends, that
 * is when the connection is gone (kcmrun killed or interrupted, the link
 * lost), it ends every command still registered, with its descendants:
 * TERM, then KILL a second later. It runs under the same privilege prefix
 * as the commands it watches, so it may signal them. One process (two with
 * sudo) per connection instead of a watcher per command. It also runs the
 * commands without stdin ("x", ssh_agent.c) and starts the become-root
 * file session ("F", ssh_files.c).
 *
 * The node's lock lives here too ("LWAIT NOTE": flock on
 * /run/lock/kcmrun.lock, its fd kept open by the watcher's shell): it is
 * held exactly as long as this run's connection, so a run killed with -9
 * releases it when its connection dies, whichever machine or state folder
 * the next run comes from. The answer is one line: "LOCKED", or "BUSY "
 * and the holder's note, which starts with the holder's watcher pid. */
#include "ssh_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_READY "[kcm-watcher]"
static const char WATCHER[] =
    "printf '%s\\n' '" WATCH_READY "' >&2; exec 3>&2 2>/dev/null; set -f; trap '' TERM HUP INT; L=' '; f=/run/lock/kcmrun.lock; "
    "N='\n'; "
    /* T PID...: K = those processes and all their descendants (from
     * /proc/N/stat's ppid: a command the watcher runs is no process group
     * of its own, setsid would cost a process per command); Z SIG: signal
     * them, and the process group of each that leads one (a command on a
     * channel of its own, the file session's sleeper) */
    "T() { K=\" $* \"; g=1; set +f; while [ $g = 1 ]; do g=0; for d in /proc/[0-9]*; do "
    "{ read -r s <$d/stat; } 2>/dev/null || continue; q=${d#/proc/}; s=${s##*) }; s=${s#* }; s=${s%% *}; "
    "case $K in *\" $s \"*) case $K in *\" $q \"*) ;; *) K=\"$K$q \"; g=1 ;; esac ;; esac; done; done; set -f; }; "
    "Z() { for q in $K; do kill -s $1 -- -$q $q; done; }; "
    "while IFS= read -r l; do case $l in "
    /* a command (ssh_agent.c): its words set as "$@" and run directly (one
     * process, plus the subshell that reports its status), default
     * signals, neither the channel's stderr copy nor the lock's fd */
    "x*) n=${l#x}; c=; while IFS= read -r m && [ \"$m\" != \"$n\" ]; do c=\"$c$m$N\"; done; "
    "{ trap - TERM HUP INT; eval \"set -- $c\"; \"$@\" </dev/null 2>&3 3>&- 9<&- & "
    "printf '\\036%sP%s\\n' \"$n\" $!; wait $!; s=$?; printf '\\036%sE\\n' \"$n\" >&3; "
    "printf '\\036%s %s\\n' \"$n\" $s; } 9<&- & ;; "
    /* sftp-server as this identity on the pipes of the login user's
     * process $P (ssh_files.c), which is ended when the server ends */
    "F*) P=${l#F}; S=; for p in " KCM_SFTP_SERVER_PATHS "; do [ -x \"$p\" ] && { S=$p; break; }; done; "
    "case $P in ''|*[!0-9]*) S= ;; esac; "
    "if [ -n \"$S\" ] && [ -r /proc/$P/fd/0 ] && [ -w /proc/$P/fd/1 ]; then "
    "{ trap - TERM HUP INT; \"$S\" </proc/$P/fd/0 >/proc/$P/fd/1 2>/dev/null 3>&- 9<&-; kill $P; } "
    ">/dev/null 2>&1 9<&- & echo 'F ok'; else echo 'F no'; fi ;; "
    "L*) set -- ${l#L}; w=$1; shift; "
    "[ -e $f ] || (umask 022; : >>$f); "
    "if [ ! -r $f ]; then echo \"BUSY (cannot open $f)\"; "
    "else exec 9<$f; "
    "if flock -w \"$w\" 9; then printf '%s\\n' \"$$ $*\" >$f.note; echo LOCKED; "
    "else echo \"BUSY $(cat $f.note)\"; fi; fi ;; "
    "+*) L=\"$L${l#+} \" ;; "
    "-*) p=${l#-}; case $L in *\" $p \"*) L=\"${L%% $p *} ${L#* $p }\" ;; esac ;; "
    "k*) T ${l#k}; Z TERM; { sleep 2; Z KILL; } >/dev/null 9<&- & ;; "
    "esac; done; "
    "[ \"$L\" = ' ' ] && exit 0; "
    "T $L; Z TERM; sleep 1; Z KILL";

static const char *who_of(kcm_ssh_sess *c, const struct kcm_ssh_as *a)
{
    (void)c;
    return a && a->argv ? (a->user ? a->user : "?") : "";
}

static int slot_of(kcm_ssh_sess *c, const struct kcm_ssh_as *a)
{
    const char *who = who_of(c, a);
    for (int i = 0; i < c->nwatch; i++)
        if (strcmp(c->watch[i].who, who) == 0) return i;
    return -1;
}

static ssh_channel find(kcm_ssh_sess *c, const struct kcm_ssh_as *a)
{
    int i = slot_of(c, a);
    return i < 0 ? NULL : c->watch[i].ch;
}

ssh_channel kcm_ssh_watch_runner(kcm_ssh_sess *c, const struct kcm_ssh_as *a)
{
    int i = slot_of(c, a);
    return i < 0 || c->watch[i].retired ? NULL : c->watch[i].ch;
}

void kcm_ssh_watch_retire(kcm_ssh_sess *c, const struct kcm_ssh_as *a)
{
    int i = slot_of(c, a);
    if (i >= 0) c->watch[i].retired = 1;
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
    } else if (kcm_ssh_as_handshake(c->s, ch, a && a->argv ? a : NULL, WATCH_READY,
                                    (c->io_timeout > 0 ? c->io_timeout : 60) * 1000L, &why, &kind) != 0) {
        /* sudo -n may refuse: its words are the error */
        c->fail_kind = kind;
        *msg = why;
        why = NULL;
    } else {
        c->watch[slot].ch = ch;
        c->watch[slot].retired = 0;
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

void kcm_ssh_watch_done_who(kcm_ssh_sess *c, const char *who, long pid)
{
    for (int i = 0; i < c->nwatch; i++) {
        if (strcmp(c->watch[i].who, who) != 0 || !c->watch[i].ch) continue;
        char line[32];
        int n = snprintf(line, sizeof line, "-%ld\n", pid);
        ssh_channel_write(c->watch[i].ch, line, (uint32_t)n);
    }
}

/* Sends `req` to the watcher of `a` (started when needed) and reads its
 * one-line answer into *ans (malloc'd). 0, or -1 with *msg. */
static int ask(kcm_ssh_sess *c, const struct kcm_ssh_as *a, const char *req, long timeout_ms,
               const char *what, char **ans, char **msg)
{
    if (kcm_ssh_watch(c, a, msg) != 0) return -1;
    ssh_channel w = find(c, a);
    int n = (int)strlen(req);
    if (ssh_channel_write(w, req, (uint32_t)n) != n) {
        *msg = kcm_ssh_fmt("%s: %s", what, ssh_get_error(c->s));
        return -1;
    }
    struct kcm_buf b = {0};
    char ch;
    for (;;) {
        int k = ssh_channel_read_timeout(w, &ch, 1, 0, (int)timeout_ms);
        if (k <= 0) { *msg = kcm_ssh_fmt("%s: no answer", what); break; }
        if (ch == '\n') {
            kcm_buf_add(&b, "", 0);
            *ans = b.p;
            return 0;
        }
        if (b.n > 4096) { *msg = kcm_ssh_fmt("%s: answer too long", what); break; }
        kcm_buf_add(&b, &ch, 1);
    }
    kcm_buf_free(&b, 0);
    return -1;
}

/* Takes the node's lock through the watcher of `a` (started when needed),
 * waiting up to wait_s seconds. 1 taken, 0 held by another run (*holder:
 * its note), -1 with *msg. */
int kcm_ssh_watch_lock(kcm_ssh_sess *c, const struct kcm_ssh_as *a, long wait_s, const char *note,
                       char **holder, char **msg)
{
    char *line = kcm_ssh_fmt("L%ld %s\n", wait_s < 0 ? 0 : wait_s, note);
    for (char *p = line; *p && p[1]; p++) if (*p == '\n' || *p == '\r') *p = ' ';
    char *ans = NULL;
    int rc = ask(c, a, line, (wait_s + (c->io_timeout > 0 ? c->io_timeout : 60)) * 1000L,
                 "taking the node's lock", &ans, msg);
    free(line);
    if (rc != 0) {
        if (strstr(*msg, "no answer")) {
            free(*msg);
            *msg = kcm_ssh_fmt("taking the node's lock: no answer (is flock(1) installed on the node?)");
        }
        return -1;
    }
    rc = -1;
    if (strcmp(ans, "LOCKED") == 0) rc = 1;
    else if (strncmp(ans, "BUSY", 4) == 0) { rc = 0; *holder = kcm_ssh_fmt("%s", ans[4] ? ans + 5 : ""); }
    else *msg = kcm_ssh_fmt("taking the node's lock: unexpected answer '%.80s'", ans);
    free(ans);
    return rc;
}

int kcm_ssh_watch_adopt(kcm_ssh_sess *c, const struct kcm_ssh_as *a, long pid, char **msg)
{
    char req[40], *ans = NULL;
    snprintf(req, sizeof req, "F%ld\n", pid);
    if (ask(c, a, req, (c->io_timeout > 0 ? c->io_timeout : 60) * 1000L, "starting the file session", &ans, msg) != 0)
        return -1;
    int rc = strcmp(ans, "F ok") == 0 ? 1 : strcmp(ans, "F no") == 0 ? 0 : -1;
    if (rc < 0) *msg = kcm_ssh_fmt("starting the file session: unexpected answer '%.80s'", ans);
    free(ans);
    return rc;
}
