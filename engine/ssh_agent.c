/* Commands through the watcher (ssh_watch.c): the watcher's shell already
 * runs as the command's identity, so a command without stdin is handed to
 * it instead of getting a channel of its own. What that saves on the node,
 * per command: sshd's session process, the login shell (and what it
 * sources), and with become a sudo with its PAM stack (and with a password,
 * one more check of the password: it is given once per connection, to the
 * watcher). What it costs: one fork of the watcher's shell (the subshell
 * that waits for the command and reports its status). The command is no
 * process group of its own (setsid would cost ~3 ms and a process per
 * command on the lab's nodes): a timeout or a lost connection ends it and
 * every descendant the watcher finds in /proc.
 *
 * Framing: the request is "x<nonce>", the command line, and a line holding
 * just the nonce. The command writes straight into the watcher's stdout and
 * stderr; the subshell adds "\036<nonce>P<pid>" (the pid, for the watcher's
 * register) and, after the command, "\036<nonce>E" on stderr, then
 * "\036<nonce> <status>" on stdout. The nonce is random per command, so no output
 * can forge them. Jobs on a session are serialised (sess->mu), so the
 * watcher runs one command at a time and the streams belong to it.
 *
 * A command with stdin keeps the channel of its own (ssh_exec.c): a shell
 * cannot hand a byte count of its own input to a child without a process
 * more, and the environment values travel on stdin. */
#include "ssh_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void nonce(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* never expected; fall back to something unique per process */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(r, &ts, sizeof r < sizeof ts ? sizeof r : sizeof ts);
    }
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* Finds "\036<n><tag>...\n" in b and cuts it out; -> 1 with the text
 * between the tag and the newline in val (when given), 0 not yet. */
static int cut_frame(struct kcm_buf *b, const char *n, char tag, char *val, size_t vlen)
{
    char head[40];
    int hl = snprintf(head, sizeof head, "\036%s%c", n, tag);
    if (b->n < (size_t)hl) return 0;
    char *at = memmem(b->p, b->n, head, (size_t)hl);
    if (!at) return 0;
    char *nl = memchr(at + hl, '\n', b->n - (size_t)(at - b->p) - (size_t)hl);
    if (!nl) return 0;
    if (val) {
        size_t l = (size_t)(nl - (at + hl));
        if (l >= vlen) l = vlen - 1;
        memcpy(val, at + hl, l);
        val[l] = 0;
    }
    size_t cut = (size_t)(nl - at) + 1;
    memmove(at, at + cut, b->n - (size_t)(at - b->p) - cut);
    b->n -= cut;
    return 1;
}

static long drain(ssh_channel ch, struct kcm_ssh_exec_res *r)
{
    char buf[16384];
    long total = 0;
    for (int is_err = 0; is_err <= 1; is_err++) {
        int n;
        while ((n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, is_err)) > 0) {
            kcm_buf_add(is_err ? &r->err : &r->out, buf, (size_t)n);
            total += n;
        }
        if (n == SSH_ERROR) return -1;
    }
    return total;
}

int kcm_ssh_agent_exec(kcm_ssh_sess *c, ssh_channel w, const struct kcm_ssh_as *who, const char *cmd,
                       long timeout_ms, struct kcm_ssh_exec_res *r, int *retire, char **msg)
{
    char n[33];
    nonce(n);
    *retire = 0;
    /* a line of the command equal to the nonce would end it early: cannot
     * happen by chance, and the command line is ours */
    char *req = kcm_ssh_fmt("x%s\n%s\n%s\n", n, cmd, n);
    size_t rl = strlen(req);
    int wr = ssh_channel_write(w, req, (uint32_t)rl);
    free(req);
    if (wr != (int)rl) {
        *msg = kcm_ssh_fmt("handing the command to the node's runner: %s", ssh_get_error(c->s));
        *retire = 1;
        return -1;
    }
    long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0, grace = 0;
    long pid = -1;
    int have_status = 0, have_end = 0;
    char val[32];
    for (;;) {
        if (drain(w, r) < 0 && !ssh_channel_is_eof(w) && !ssh_channel_is_closed(w)) {
            *msg = kcm_ssh_fmt("reading command output: %s", ssh_get_error(c->s));
            *retire = 1;
            return -1;
        }
        if (pid < 0 && cut_frame(&r->out, n, 'P', val, sizeof val)) {
            pid = strtol(val, NULL, 10);
            if (pid > 1) kcm_ssh_watch_add(c, who, pid);
        }
        if (!have_status && cut_frame(&r->out, n, ' ', val, sizeof val)) {
            have_status = 1;
            r->code = (int)strtol(val, NULL, 10);
        }
        if (!have_end && cut_frame(&r->err, n, 'E', NULL, 0)) have_end = 1;
        if (have_status && have_end) break;
        if (ssh_channel_is_eof(w) || ssh_channel_is_closed(w) || !ssh_is_connected(c->s)) {
            *msg = kcm_ssh_fmt("while running the command: the node's runner ended (%s)",
                               ssh_is_connected(c->s) ? "its shell was killed" : ssh_get_error(c->s));
            *retire = 1;
            return -1;
        }
        long t = now_ms();
        if (deadline && t >= deadline && !r->timed_out) {
            /* the watcher ends it (TERM, then KILL two seconds later);
             * its status line then follows, and the runner stays usable */
            r->timed_out = 1;
            if (pid > 1) kcm_ssh_watch_kill(c, who, pid);
            grace = t + 4000;
        }
        if (grace && t >= grace) {
            /* it did not end: the streams may still carry its output,
             * so this runner takes no more commands */
            *retire = 1;
            break;
        }
        int slice = 100;
        long until = grace ? grace : deadline;
        if (until && until - t < slice) slice = (int)(until - t > 0 ? until - t : 1);
        /* stdout carries the status line (written after stderr's end
         * line): wake on it, then on stderr if its end line lags; output
         * on the other stream is picked up by the next slice */
        if (ssh_channel_poll_timeout(w, slice, have_status) == SSH_ERROR && !ssh_channel_is_closed(w)) {
            *msg = kcm_ssh_fmt("reading command output: %s", ssh_get_error(c->s));
            *retire = 1;
            return -1;
        }
    }
    if (pid > 1) kcm_ssh_watch_done(c, who, pid);
    if (r->timed_out) r->code = -1;
    return 0;
}
