/* The file channel of a connection: one SFTP session per identity for the
 * whole run. The login user's is the "sftp" subsystem; a become target's is
 * an exec channel running sftp-server under the same privilege prefix as
 * every command (sudo ... --), with libssh's sftp_new_channel over it (what
 * `sshfs -o sftp_server="sudo ..."` and WinSCP's "sudo sftp-server" do).
 * Files are then read and written as the target user directly: no staging
 * folder, no path owned by the login user, any become_user, and stat, read,
 * write, mkdir, chmod/chown, remove, rename and fsync start no process on
 * the node. */
#include "ssh_int.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Where distributions put sftp-server; the first executable one runs (the
 * shell execs it: no process stays behind for the search). */
#define SERVER_READY "[kcm-sftp-server]"
static const char FIND_SERVER[] =
    "printf '%s\\n' '" SERVER_READY "' >&2; "
    "for p in " KCM_SFTP_SERVER_PATHS "; do "
    "[ -x \"$p\" ] && exec \"$p\"; done; "
    "echo 'no sftp-server on the node (looked in /usr/lib/openssh, /usr/libexec/openssh, /usr/lib/ssh, "
    "/usr/libexec, /usr/lib, /usr/local/libexec): install openssh-sftp-server' >&2; exit 127";

void kcm_ssh_files_close(kcm_ssh_sess *c)
{
    for (int i = 0; i < c->nfiles; i++) {
        /* the server ends with its channel, and ends the sleeper itself */
        if (c->files[i].sleeper > 0 && c->s && ssh_is_connected(c->s))
            kcm_ssh_watch_done_who(c, c->files[i].who, c->files[i].sleeper);
        if (c->files[i].sf) sftp_free(c->files[i].sf);   /* frees its channel too */
        free(c->files[i].who);
    }
    c->nfiles = 0;
    c->sftp = NULL;
}

static sftp_session open_login(kcm_ssh_sess *c, char **msg)
{
    sftp_session sf = sftp_new(c->s);
    if (!sf || sftp_init(sf) != SSH_OK) {
        *msg = kcm_ssh_fmt("sftp subsystem: %s", ssh_get_error(c->s));
        if (sf) sftp_free(sf);
        return NULL;
    }
    return sf;
}

/* What sudo (or the search) said before the channel ended. */
static char *stderr_of(ssh_channel ch)
{
    struct kcm_buf e = {0};
    char buf[2048];
    int k;
    for (int i = 0; i < 20 && !ssh_channel_is_eof(ch); i++) ssh_channel_poll_timeout(ch, 10, 1);
    while ((k = ssh_channel_read_nonblocking(ch, buf, sizeof buf, 1)) > 0) kcm_buf_add(&e, buf, (size_t)k);
    size_t n = e.n;
    while (n > 0 && (e.p[n - 1] == '\n' || e.p[n - 1] == '\r' || e.p[n - 1] == ' ')) n--;
    char *s = kcm_ssh_fmt("%.*s", (int)(n > 400 ? 400 : n), n ? e.p + (n > 400 ? n - 400 : 0) : "");
    kcm_buf_free(&e, 1);
    return s;
}

static sftp_session open_as(kcm_ssh_sess *c, const struct kcm_ssh_as *a, char **msg)
{
    ssh_channel ch = ssh_channel_new(c->s);
    if (!ch || ssh_channel_open_session(ch) != SSH_OK) {
        *msg = kcm_ssh_fmt("file channel as %s: %s", a->user ? a->user : "?", ssh_get_error(c->s));
        if (ch) ssh_channel_free(ch);
        return NULL;
    }
    char *line = kcm_ssh_as_line(a, FIND_SERVER, NULL, 0);
    int xr = ssh_channel_request_exec(ch, line);
    free(line);
    const char *kind = NULL;
    char *why = NULL;
    if (xr != SSH_OK) {
        why = kcm_ssh_fmt("exec request refused: %s", ssh_get_error(c->s));
    } else if (kcm_ssh_as_handshake(c->s, ch, a, SERVER_READY, (c->io_timeout > 0 ? c->io_timeout : 60) * 1000L,
                                    &why, &kind) == 0) {
        /* the server runs: sudo said yes (with -n it may not; then its words
         * came instead, and sftp_init is never asked to read a channel that
         * ended) */
        sftp_session sf = sftp_new_channel(c->s, ch);
        if (sf && sftp_init(sf) == SSH_OK) return sf;
        /* sudo refused (sudo -n without a rule, not in sudoers...), or no
         * server: its own words are on the channel's stderr */
        char *e = stderr_of(ch);
        why = *e ? e : kcm_ssh_fmt("sftp-server did not start: %s", ssh_get_error(c->s));
        if (*e) kind = "exit"; else free(e);
        if (sf) { sftp_free(sf); ch = NULL; }
    }
    c->fail_kind = kind;
    *msg = kcm_ssh_fmt("file channel as %s: %s", a->user ? a->user : "?", why);
    free(why);
    if (ch) { ssh_channel_close(ch); ssh_channel_free(ch); }
    return NULL;
}

/* With become root, the file session needs no sudo of its own: a channel
 * of the login user's prints its pid and sleeps, and the watcher (already
 * root, after the one sudo of the connection) starts sftp-server on that
 * process's stdin and stdout pipes, and ends it when the server ends. With
 * a become password that is one password check per node instead of two.
 * NULL when it cannot be done (not root, sshd hands sockets rather than
 * pipes, ...): the caller then runs sftp-server under sudo. */
#define ADOPT_MARK "[kcm-files] "
static sftp_session open_adopted(kcm_ssh_sess *c, const struct kcm_ssh_as *a, long *sleeper)
{
    char *msg = NULL;
    if (!a->user || strcmp(a->user, "root") != 0 || kcm_ssh_watch(c, a, &msg) != 0) { free(msg); return NULL; }
    ssh_channel ch = ssh_channel_new(c->s);
    if (!ch || ssh_channel_open_session(ch) != SSH_OK) {
        if (ch) ssh_channel_free(ch);
        return NULL;
    }
    /* The pid goes to stdout, which is the SFTP stream's only once the
     * server runs: read exactly up to its newline. Not stderr: a builtin
     * writing to stderr moves fd 1 for a moment, and the watcher could
     * open that moment's fd 1. */
    long pid = -1;
    if (ssh_channel_request_exec(ch, "printf '" ADOPT_MARK "%s\\n' $$; exec sleep 2147483647") == SSH_OK) {
        /* line by line (a login script may print first), up to 4 KiB */
        char line[128];
        size_t n = 0, total = 0;
        while (pid < 0 && total < 4096 && ssh_channel_read_timeout(ch, line + n, 1, 0, 10000) == 1) {
            total++;
            if (line[n] != '\n') { if (n < sizeof line - 1) n++; continue; }
            line[n] = 0;
            if (strncmp(line, ADOPT_MARK, sizeof ADOPT_MARK - 1) == 0) pid = strtol(line + sizeof ADOPT_MARK - 1, NULL, 10);
            n = 0;
        }
    }
    if (pid > 1) {
        /* the sleeper ends with the connection, whatever happens below */
        kcm_ssh_watch_add(c, a, pid);
        if (kcm_ssh_watch_adopt(c, a, pid, &msg) == 1) {
            sftp_session sf = sftp_new_channel(c->s, ch);
            if (sf && sftp_init(sf) == SSH_OK) { *sleeper = pid; return sf; }
            if (sf) { sftp_free(sf); ch = NULL; }   /* freed its channel */
        }
        free(msg);
        kcm_ssh_watch_kill(c, a, pid);
    }
    if (ch) { ssh_channel_close(ch); ssh_channel_free(ch); }
    return NULL;
}

int kcm_ssh_files(kcm_ssh_sess *c, const struct kcm_ssh_as *a, char **msg)
{
    /* elevating to the user one is logged in as changes nothing: the
     * subsystem serves it without a sudo on the node */
    int elevate = a && a->argv && !(a->user && c->r_user && strcmp(a->user, c->r_user) == 0);
    const char *who = elevate ? (a->user ? a->user : "?") : "";
    for (int i = 0; i < c->nfiles; i++) {
        if (strcmp(c->files[i].who, who) == 0) { c->sftp = c->files[i].sf; return 0; }
    }
    if (c->nfiles == (int)(sizeof c->files / sizeof c->files[0])) {
        *msg = kcm_ssh_fmt("file channel as %s: too many become users on one node", who);
        return -1;
    }
    long sleeper = 0;
    sftp_session sf = !elevate ? open_login(c, msg) : getenv("KCM_NO_ADOPT") ? NULL : open_adopted(c, a, &sleeper);
    if (!sf && elevate) sf = open_as(c, a, msg);
    if (!sf) return -1;
    c->files[c->nfiles].who = strdup(who);
    if (!c->files[c->nfiles].who) abort();
    c->files[c->nfiles].sleeper = sleeper;
    c->files[c->nfiles++].sf = sf;
    c->sftp = sf;
    return 0;
}
