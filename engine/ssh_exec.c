/* One remote command on an open session: a fresh channel per command
 * (cheap: no new connection), stdin fed, stdout/stderr collected until EOF,
 * exit status, and a per-command deadline.
 *
 * A command must not outlive its channel (a timeout, an interrupted or
 * killed kcmrun): OpenSSH ignores the "signal" channel request, and without
 * a pty it leaves the command running when the channel or the connection
 * goes. A pty would make sshd hang it up, but it merges stderr into stdout
 * and turns "\n" into "\r\n". So every command runs under WRAPPER: the
 * command's stdin is the first N bytes of the channel's stdin (the caller's
 * data); a watcher started after that keeps reading, and we never send
 * EOF, so EOF there means the channel is gone: the watcher then ends its
 * process group (the session sshd made for this channel), TERM then KILL.
 * Once the command has exited the wrapper is gone, and the EOF sshd then
 * gives the watcher kills nothing (kill -0 $$).
 * Values travel as positional arguments only. Measured on the lab: ~5 ms
 * more per command (a fork for the watcher, cat). */
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

static const char WRAPPER[] =
    "exec 3<&0; "
    "{ if [ \"$1\" -gt 0 ]; then head -c \"$1\"; fi; exec >&-; "
    "{ trap '' TERM; cat; kill -0 $$ && { kill -s TERM 0; sleep 1; kill -s KILL 0; }; } <&3 >/dev/null 2>&1 & "
    "} <&3 | eval \"$2\" 3<&-";

/* With a become password: before the caller's bytes, the feeder takes one
 * decision byte at a time from the channel. "P" + 4 digits + that many bytes:
 * the password line, which goes to sudo only because sudo's own prompt was
 * read first; "C": sudo is past authentication (the elevated side said so),
 * go on; anything else (or EOF): end, and sudo reads EOF. */
static const char WRAPPER_PW[] =
    "exec 3<&0; "
    "{ while :; do c=$(head -c 1); case $c in P) head -c \"$(head -c 4)\";; C) break;; *) exit 0;; esac; done; "
    "if [ \"$1\" -gt 0 ]; then head -c \"$1\"; fi; exec >&-; "
    "{ trap '' TERM; cat; kill -0 $$ && { kill -s TERM 0; sleep 1; kill -s KILL 0; }; } <&3 >/dev/null 2>&1 & "
    "} <&3 | eval \"$2\" 3<&-";

static char *wrap(const char *cmd, size_t inlen, const char *wrapper)
{
    /* runs in the login shell itself (as the bare command did): no extra
     * shell to start, and the command keeps the shell it always had */
    char *qc = kcm_ssh_shquote(cmd);
    char *line = kcm_ssh_fmt("set -- %zu %s; %s", inlen, qc, wrapper);
    free(qc);
    return line;
}

char *kcm_ssh_wrap_command(const char *cmd, size_t inlen) { return wrap(cmd, inlen, WRAPPER); }

enum { RUN_DONE, RUN_TIMEOUT, RUN_FAIL };

/* Feeds stdin while collecting output. A command that exits without
 * reading its stdin closes the window: stop feeding then and keep the
 * output. No EOF: the wrapper takes EOF on its stdin for "the channel is
 * gone". */
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
    return RUN_DONE;
}

/* The password phase of a become command: read what sudo says until the
 * elevated side's ready marker comes (then "C"), answering sudo's own prompt
 * once with the password ("P…"); a second prompt (a wrong password) ends the
 * feeder ("E"), so sudo reports the failure. No prompt, no password: with a
 * NOPASSWD rule or a root login the password is never sent. The markers are
 * cut from stderr. */
static int authenticate(ssh_session s, ssh_channel ch, const struct kcm_ssh_become *b, long deadline,
                        struct kcm_ssh_exec_res *r, char **msg)
{
    int prompts = 0;
    for (;;) {
        if (drain(ch, r) < 0 && !ssh_channel_is_eof(ch) && !ssh_channel_is_closed(ch)) {
            *msg = kcm_ssh_fmt("reading sudo's answer: %s", ssh_get_error(s));
            return RUN_FAIL;
        }
        if (kcm_ssh_cut_marker(&r->err, b->ready) > 0) {
            return ssh_channel_write(ch, "C", 1) == 1 ? RUN_DONE : RUN_FAIL;
        }
        int p = kcm_ssh_cut_marker(&r->err, b->prompt);
        if (p > 0) {
            prompts += p;
            if (prompts > 1) {
                ssh_channel_write(ch, "E", 1);
                return RUN_DONE;       /* collect sudo's own failure */
            }
            size_t pl = strlen(b->secret);
            char head[24];
            snprintf(head, sizeof head, "P%04u", (unsigned)(pl + 1));
            if (ssh_channel_write(ch, head, 5) != 5 || ssh_channel_write(ch, b->secret, (uint32_t)pl) != (int)pl ||
                ssh_channel_write(ch, "\n", 1) != 1) {
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

int kcm_ssh_exec(kcm_ssh_sess *c, const char *cmd, const char *in, size_t inlen,
                 const struct kcm_ssh_become *become, long timeout_ms, struct kcm_ssh_exec_res *r, char **msg)
{
    if (become && (!become->secret || !become->prompt || !become->ready || !*become->prompt ||
                   !*become->ready || strlen(become->secret) > 9998)) {
        *msg = kcm_ssh_fmt("become: a password (at most 9998 bytes), a prompt and a ready marker are needed");
        return -1;
    }
    ssh_session s = c->s;
    r->code = -1;
    r->timed_out = 0;
    ssh_channel ch = ssh_channel_new(s);
    if (!ch) { *msg = kcm_ssh_fmt("cannot open channel: %s", ssh_get_error(s)); return -1; }
    if (ssh_channel_open_session(ch) != SSH_OK) {
        *msg = kcm_ssh_fmt("cannot open session channel: %s", ssh_get_error(s));
        ssh_channel_free(ch);
        return -1;
    }
    char *line = wrap(cmd, in ? inlen : 0, become ? WRAPPER_PW : WRAPPER);
    int xr = ssh_channel_request_exec(ch, line);
    free(line);
    int st = RUN_FAIL;
    if (xr != SSH_OK) {
        *msg = kcm_ssh_fmt("exec request refused: %s", ssh_get_error(s));
    } else {
        long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
        st = become ? authenticate(s, ch, become, deadline, r, msg) : RUN_DONE;
        if (st == RUN_DONE)
            st = feed(ch, in, inlen, deadline, r);
        if (st == RUN_DONE)
            st = collect(s, ch, deadline, r, msg);
    }
    /* On a timeout, closing the channel ends the command: its wrapper sees
     * EOF. The session stays usable. */
    if (st == RUN_TIMEOUT)
        r->timed_out = 1;
    ssh_channel_close(ch);
    ssh_channel_free(ch);
    return st == RUN_FAIL ? -1 : 0;
}
