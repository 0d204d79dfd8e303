/* One remote command on an open session: a fresh channel per command
 * (cheap: no new connection), stdin fed then closed, stdout/stderr
 * collected until EOF, exit status, and a per-command deadline.
 *
 * A command must not outlive its channel (a timeout, an interrupted or
 * killed kcmrun, a lost link): OpenSSH ignores the "signal" channel
 * request, and without a pty it leaves the command running when the
 * channel or the connection goes (a pty would make sshd hang it up, but it
 * merges stderr into stdout and turns "\n" into "\r\n"). So each
 * connection keeps one watcher per identity (ssh_watch.c): a loop of shell
 * builtins on its own channel that knows the process group of every
 * command in flight and ends them when its input ends, that is when the
 * connection is gone. A command costs no process of its own for this: the
 * login shell prints its pid ($$: sshd made it a session and process group
 * leader) as the first bytes of stderr, then execs the command line. A
 * command that times out is ended by the watcher.
 *
 * Before (a wrapper per command: subshells, head and cat, 4 processes more
 * than the command) a converged controller-manager rerun started ~45
 * processes per node; the figures are in the commit and bench/README.md.
 *
 * A command without stdin does not get a channel at all: the watcher runs
 * it (ssh_agent.c), which saves sshd's session, the login shell and, with
 * become, a sudo per command. This file is the path of a command with
 * stdin (or env values, which travel on stdin). */
#include "ssh_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* the first line on a command's stderr: its pid, written by the login shell */
#define PID_MARK "\036kcm-pid "

/* Drains whatever is buffered on both streams; returns bytes read or -1. */
static long drain(ssh_channel ch, struct kcm_ssh_exec_res *r)
{
    char buf[16384];
    long total = 0;
    for (int is_err = 0; is_err <= 1; is_err++) {
        for (;;) {
            int n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, is_err);
            if (n == SSH_ERROR) return -1;
            if (n <= 0) break;
            kcm_buf_add(is_err ? &r->err : &r->out, buf, (size_t)n);
            total += n;
        }
    }
    return total;
}

/* Takes the pid line off the front of stderr once it is complete; -> the
 * pid, 0 while it has not come yet, -1 when stderr does not start with it. */
static long take_pid(struct kcm_buf *err)
{
    size_t ml = sizeof PID_MARK - 1;
    if (err->n == 0) return 0;   /* nothing yet (and p may be NULL) */
    if (err->n < ml) return memcmp(err->p, PID_MARK, err->n) == 0 ? 0 : -1;
    if (memcmp(err->p, PID_MARK, ml) != 0) return -1;
    char *nl = memchr(err->p + ml, '\n', err->n - ml);
    if (!nl) return err->n - ml > 24 ? -1 : 0;
    long pid = strtol(err->p + ml, NULL, 10);
    size_t cut = (size_t)(nl - err->p) + 1;
    memmove(err->p, err->p + cut, err->n - cut);
    err->n -= cut;
    return pid > 1 ? pid : -1;
}

enum { RUN_DONE, RUN_TIMEOUT, RUN_FAIL };

/* Feeds stdin, then EOF, while collecting output. A command that exits
 * without reading its stdin closes the window: stop feeding then and keep
 * the output. */
static int feed(ssh_channel ch, const char *in, size_t inlen, long deadline, struct kcm_ssh_exec_res *r)
{
    size_t off = 0;
    while (off < inlen && !ssh_channel_is_eof(ch) && !ssh_channel_is_closed(ch)) {
        size_t chunk = inlen - off > 32768 ? 32768 : inlen - off;
        int w = ssh_channel_write(ch, in + off, (uint32_t)chunk);
        if (w == SSH_ERROR) break;
        off += (size_t)w;
        if (drain(ch, r) < 0) break;
        if (deadline && now_ms() >= deadline) return RUN_TIMEOUT;
    }
    if (!ssh_channel_is_closed(ch)) ssh_channel_send_eof(ch);
    return RUN_DONE;
}

/* The password phase of a become command: read what sudo says until the
 * elevated side's ready marker comes, answering sudo's own prompt once with
 * the password; a second prompt (a wrong password) sends EOF, so sudo
 * reports the failure. No prompt, no password: with a NOPASSWD rule or a
 * root login the password is never sent. The markers are cut from stderr.
 * sudo -S reads its stdin a byte at a time, so nothing after the password
 * line is taken by sudo; the caller's input is sent only after the marker. */
static int authenticate(ssh_session s, ssh_channel ch, const struct kcm_ssh_as *b, long deadline,
                        struct kcm_ssh_exec_res *r, char **msg)
{
    int prompts = 0;
    for (;;) {
        if (drain(ch, r) < 0 && !ssh_channel_is_eof(ch) && !ssh_channel_is_closed(ch)) {
            *msg = kcm_ssh_fmt("reading sudo's answer: %s", ssh_get_error(s));
            return RUN_FAIL;
        }
        if (kcm_ssh_cut_marker(&r->err, b->ready) > 0) return RUN_DONE;
        int p = kcm_ssh_cut_marker(&r->err, b->prompt);
        if (p > 0) {
            prompts += p;
            if (prompts > 1) {
                ssh_channel_send_eof(ch);
                return RUN_DONE;       /* collect sudo's own failure */
            }
            size_t pl = strlen(b->secret);
            if (ssh_channel_write(ch, b->secret, (uint32_t)pl) != (int)pl || ssh_channel_write(ch, "\n", 1) != 1) {
                *msg = kcm_ssh_fmt("writing to sudo: %s", ssh_get_error(s));
                return RUN_FAIL;
            }
            continue;
        }
        if (ssh_channel_is_eof(ch) || ssh_channel_is_closed(ch)) return RUN_DONE;
        int slice = 50;
        if (deadline) {
            long left = deadline - now_ms();
            if (left <= 0) return RUN_TIMEOUT;
            if (left < slice) slice = (int)left;
        }
        /* sudo speaks on stderr only: poll that stream */
        if (ssh_channel_poll_timeout(ch, slice, 1) == SSH_ERROR && !ssh_channel_is_closed(ch)) {
            *msg = kcm_ssh_fmt("reading sudo's answer: %s", ssh_get_error(s));
            return RUN_FAIL;
        }
    }
}

/* Reads stdout/stderr until the command's EOF or the deadline. */
static int collect(ssh_session s, ssh_channel ch, long deadline, struct kcm_ssh_exec_res *r, char **msg)
{
    for (;;) {
        long got = drain(ch, r);
        if (got < 0) {
            if (ssh_channel_is_closed(ch) || ssh_channel_is_eof(ch)) break;
            *msg = kcm_ssh_fmt("reading command output: %s", ssh_get_error(s));
            return RUN_FAIL;
        }
        if (got > 0) continue;
        if (ssh_channel_is_eof(ch) || ssh_channel_is_closed(ch)) break;
        /* Wakes on stdout data or EOF; stderr-only output is picked up
         * by the next slice, so keep slices short. */
        int slice = 100;
        if (deadline) {
            long left = deadline - now_ms();
            if (left <= 0) return RUN_TIMEOUT;
            if (left < slice) slice = (int)left;
        }
        int p = ssh_channel_poll_timeout(ch, slice, 0);
        if (p == SSH_ERROR) {
            if (ssh_channel_is_closed(ch)) break;
            *msg = kcm_ssh_fmt("reading command output: %s", ssh_get_error(s));
            return RUN_FAIL;
        }
    }
    drain(ch, r);
    /* libssh closes every channel when the connection dies: that is no
     * exit of the command, and must not read as "exit code -1". */
    if (!ssh_is_connected(s)) {
        *msg = kcm_ssh_fmt("while running the command: %s", ssh_get_error(s));
        return RUN_FAIL;
    }
    r->code = ssh_channel_get_exit_status(ch);
    return RUN_DONE;
}

/* Waits (bounded) for the pid line: the watcher must know the command
 * before anything can go wrong with it. */
static long await_pid(ssh_channel ch, struct kcm_ssh_exec_res *r, long deadline)
{
    for (;;) {
        if (drain(ch, r) < 0) return -1;
        long pid = take_pid(&r->err);
        if (pid != 0) return pid;
        if (ssh_channel_is_eof(ch) || ssh_channel_is_closed(ch)) return -1;
        long left = deadline ? deadline - now_ms() : 1000;
        if (left <= 0) return -1;
        ssh_channel_poll_timeout(ch, left < 50 ? (int)left : 50, 1);
    }
}

int kcm_ssh_exec(kcm_ssh_sess *c, const char *cmd, const char *bare, const char *in, size_t inlen,
                 const struct kcm_ssh_as *as, long timeout_ms, struct kcm_ssh_exec_res *r, char **msg)
{
    const struct kcm_ssh_as *who = as && as->argv ? as : NULL;
    ssh_session s = c->s;
    r->code = -1;
    r->timed_out = 0;
    /* the watcher first: a command never runs unwatched */
    if (kcm_ssh_watch(c, who, msg) != 0) return -1;
    ssh_channel w = inlen == 0 && (bare || !who) ? kcm_ssh_watch_runner(c, who) : NULL;
    if (w) {
        int retire = 0;
        int rc = kcm_ssh_agent_exec(c, w, who, bare ? bare : cmd, timeout_ms, r, &retire, msg);
        if (retire) kcm_ssh_watch_retire(c, who);
        return rc;
    }
    ssh_channel ch = ssh_channel_new(s);
    if (!ch) { *msg = kcm_ssh_fmt("cannot open channel: %s", ssh_get_error(s)); return -1; }
    if (ssh_channel_open_session(ch) != SSH_OK) {
        *msg = kcm_ssh_fmt("cannot open session channel: %s", ssh_get_error(s));
        ssh_channel_free(ch);
        return -1;
    }
    /* runs in the login shell itself, which becomes the command: no extra
     * process, and the command keeps the shell it always had */
    char *line = kcm_ssh_fmt("printf '" PID_MARK "%%s\\n' $$ >&2; exec %s", cmd);
    int xr = ssh_channel_request_exec(ch, line);
    free(line);
    int st = RUN_FAIL;
    long pid = -1;
    if (xr != SSH_OK) {
        *msg = kcm_ssh_fmt("exec request refused: %s", ssh_get_error(s));
    } else {
        long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
        pid = await_pid(ch, r, deadline);
        if (pid > 0) kcm_ssh_watch_add(c, who, pid);
        st = who && who->secret ? authenticate(s, ch, who, deadline, r, msg) : RUN_DONE;
        if (st == RUN_DONE)
            st = feed(ch, in, inlen, deadline, r);
        if (st == RUN_DONE)
            st = collect(s, ch, deadline, r, msg);
    }
    if (st == RUN_TIMEOUT) {
        /* the watcher ends it (TERM, then KILL); the session stays usable */
        r->timed_out = 1;
        if (pid > 0) kcm_ssh_watch_kill(c, who, pid);
    } else if (pid > 0) {
        kcm_ssh_watch_done(c, who, pid);
    }
    ssh_channel_close(ch);
    ssh_channel_free(ch);
    return st == RUN_FAIL ? -1 : 0;
}
