/* Local command execution as a job: argv, stdin, env, cwd, timeout ->
 * exit code, stdout, stderr. Used by playbooks for local tools. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "buf.h"
#include "modules.h"

extern char **environ;

struct exec_job {
    kcm_job base;
    char **argv;
    char **envp;          /* NULL: inherit */
    char *cwd;
    char *input;
    size_t input_len;
    double timeout;       /* <= 0: none */
    struct kcm_buf out, err;
    int code, sig, timed_out;
    int oom;              /* output lost: the job fails, never returns it cut short */
};

/* Process groups of the local commands running now, so an interrupt can end
 * them (they run in groups of their own and would outlive kcmrun). A fixed
 * table of atomics: the signal handler reads it. */
#define KCM_MAX_KIDS 1024
static volatile pid_t kids[KCM_MAX_KIDS];

static void kid_add(pid_t pid)
{
    for (int i = 0; i < KCM_MAX_KIDS; i++)
        if (__sync_bool_compare_and_swap(&kids[i], 0, pid))
            return;
}

static void kid_del(pid_t pid)
{
    for (int i = 0; i < KCM_MAX_KIDS; i++)
        if (__sync_bool_compare_and_swap(&kids[i], pid, 0))
            return;
}

void kcm_exec_kill_children(int sig)
{
    for (int i = 0; i < KCM_MAX_KIDS; i++) {
        pid_t p = kids[i];
        if (p > 0)
            kill(-p, sig);
    }
}

static void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static void exec_free(kcm_job *job)
{
    struct exec_job *j = (struct exec_job *)job;
    strv_free(j->argv);
    strv_free(j->envp);
    free(j->cwd);
    if (j->input)
        kcm_memzero(j->input, j->input_len);   /* stdin may carry a key */
    free(j->input);
    kcm_buf_free(&j->out, 1);
    kcm_buf_free(&j->err, 1);
    free(j);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One read from a child's pipe into b; 0 once the pipe is done. */
static int drain(int fd, struct kcm_buf *b, int *oom)
{
    char chunk[16384];
    ssize_t rd = read(fd, chunk, sizeof chunk);
    if (rd > 0 && kcm_buf_add(b, chunk, (size_t)rd) != 0)
        *oom = 1;
    return rd > 0 || (rd < 0 && errno == EINTR);
}

/* In the forked child: only async-signal-safe calls until exec. An exec or
 * chdir failure goes back to the parent through status_fd as an errno. */
static void __attribute__((noreturn)) child_exec(struct exec_job *j, int in, int out, int err, int status_fd)
{
    /* Own process group, so a timeout kills the whole tree. */
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    if (j->cwd && chdir(j->cwd) != 0) {
        int e = errno;
        ssize_t w = write(status_fd, &e, sizeof e);
        (void)w;
        _exit(127);
    }
    if (j->envp)
        execvpe(j->argv[0], j->argv, j->envp);
    else
        execvp(j->argv[0], j->argv);
    int e = errno;
    ssize_t w = write(status_fd, &e, sizeof e);
    (void)w;
    _exit(127);
}

/* Writes stdin as the pipe takes it; closes it when all is written or the
 * child stopped reading. */
static void feed_stdin(struct exec_job *j, int *fd, size_t *written)
{
    ssize_t w = write(*fd, j->input + *written, j->input_len - *written);
    if (w > 0)
        *written += (size_t)w;
    if ((w < 0 && errno != EAGAIN) || *written == j->input_len) {
        close(*fd);
        *fd = -1;
    }
}

/* Feeds stdin and collects stdout/stderr until both close. On the timeout
 * the group gets SIGTERM, and SIGKILL 2 s later if the pipes stay open. */
static void pump(struct exec_job *j, pid_t pid, int in_w, int out_r, int err_r)
{
    fcntl(in_w, F_SETFL, O_NONBLOCK);
    size_t written = 0;
    if (!j->input || j->input_len == 0) {
        close(in_w);
        in_w = -1;
    }
    double deadline = j->timeout > 0 ? now() + j->timeout : 0;
    int open_out = 1, open_err = 1, killed = 0;
    double kill_at = 0;
    while (open_out || open_err) {
        struct pollfd p[3];
        int n = 0, iout = -1, ierr = -1, iin = -1;
        if (open_out) { p[n].fd = out_r; p[n].events = POLLIN; iout = n++; }
        if (open_err) { p[n].fd = err_r; p[n].events = POLLIN; ierr = n++; }
        if (in_w >= 0) { p[n].fd = in_w; p[n].events = POLLOUT; iin = n++; }
        int ms = -1;
        if (deadline) {
            double left = (killed ? kill_at : deadline) - now();
            ms = left <= 0 ? 0 : (int)(left * 1000) + 1;
        }
        int r = poll(p, (nfds_t)n, ms);
        if (r < 0 && errno != EINTR)
            break;
        if (r == 0 && deadline) {
            if (!killed) {
                j->timed_out = 1;
                kill(-pid, SIGTERM);
                killed = 1;
                kill_at = now() + 2;
            } else {
                kill(-pid, SIGKILL);
                kill_at = now() + 60;
            }
            continue;
        }
        if (iin >= 0 && (p[iin].revents & (POLLOUT | POLLERR | POLLHUP)))
            feed_stdin(j, &in_w, &written);
        if (iout >= 0 && (p[iout].revents & (POLLIN | POLLHUP | POLLERR)))
            open_out = drain(out_r, &j->out, &j->oom);
        if (ierr >= 0 && (p[ierr].revents & (POLLIN | POLLHUP | POLLERR)))
            open_err = drain(err_r, &j->err, &j->oom);
    }
    if (in_w >= 0)
        close(in_w);
}

static void exec_work(kcm_job *job)
{
    struct exec_job *j = (struct exec_job *)job;
    int in[2], out[2], err[2], status_pipe[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) ||
        pipe2(status_pipe, O_CLOEXEC)) {
        kcm_job_fail(job, "exec %s: pipe: %s", j->argv[0], strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        kcm_job_fail(job, "exec %s: fork: %s", j->argv[0], strerror(errno));
        return;
    }
    if (pid == 0)
        child_exec(j, in[0], out[1], err[1], status_pipe[1]);
    /* also here, not only in the child: a kill before the child's own
     * setpgid must still reach its group */
    setpgid(pid, pid);
    kid_add(pid);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    close(status_pipe[1]);
    int exec_errno = 0;
    if (read(status_pipe[0], &exec_errno, sizeof exec_errno) != (ssize_t)sizeof exec_errno)
        exec_errno = 0;
    close(status_pipe[0]);
    pump(j, pid, in[1], out[0], err[0]);
    close(out[0]);
    close(err[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    kid_del(pid);
    if (exec_errno) {
        kcm_job_fail(job, "exec %s: %s", j->argv[0], strerror(exec_errno));
        return;
    }
    if (j->oom) {
        kcm_job_fail(job, "out of memory");
        return;
    }
    if (WIFEXITED(status))
        j->code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) {
        j->sig = WTERMSIG(status);
        j->code = 128 + j->sig;
    }
}

static int exec_done(lua_State *L, kcm_job *job)
{
    struct exec_job *j = (struct exec_job *)job;
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, j->code);
    lua_setfield(L, -2, "code");
    kcm_buf_push(L, &j->out);
    lua_setfield(L, -2, "stdout");
    kcm_buf_push(L, &j->err);
    lua_setfield(L, -2, "stderr");
    if (j->sig) {
        lua_pushinteger(L, j->sig);
        lua_setfield(L, -2, "signal");
    }
    lua_pushboolean(L, j->timed_out);
    lua_setfield(L, -2, "timed_out");
    return 1;
}

static void read_argv(lua_State *L, struct exec_job *j)
{
    if (lua_getfield(L, 1, "argv") != LUA_TTABLE)
        luaL_error(L, "exec.run: argv must be a non-empty array of strings");
    lua_Integer n = luaL_len(L, -1);
    if (n < 1)
        luaL_error(L, "exec.run: argv must be a non-empty array of strings");
    j->argv = calloc((size_t)n + 1, sizeof(char *));
    if (!j->argv)
        kcm_oom(L);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        const char *s = lua_tostring(L, -1);
        if (!s)
            luaL_error(L, "exec.run: argv[%d] is not a string", (int)i);
        if (!(j->argv[i - 1] = strdup(s)))
            kcm_oom(L);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* The env table at the top of the stack: the given variables override the
 * inherited environment (execvpe gets the whole list). */
static void read_env(lua_State *L, struct exec_job *j)
{
    size_t cap = 16, cnt = 0;
    for (char **e = environ; *e; e++)
        cap++;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        cap++;
        lua_pop(L, 1);
    }
    j->envp = calloc(cap + 1, sizeof(char *));
    if (!j->envp)
        kcm_oom(L);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            const char *v = luaL_tolstring(L, -1, NULL);
            if (asprintf(&j->envp[cnt], "%s=%s", k, v) < 0) {
                j->envp[cnt] = NULL;
                kcm_oom(L);
            }
            cnt++;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t klen = eq ? (size_t)(eq - *e) : strlen(*e);
        int overridden = 0;
        for (size_t i = 0; i < cnt && !overridden; i++)
            if (strncmp(j->envp[i], *e, klen) == 0 && j->envp[i][klen] == '=')
                overridden = 1;
        if (!overridden && cnt < cap && !(j->envp[cnt++] = strdup(*e)))
            kcm_oom(L);
    }
}

/* exec.run{argv={...}, stdin=, env={K=V}, cwd=, timeout=} */
static int l_run(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    struct exec_job *j = kcm_job_new(L, sizeof *j, exec_work, exec_done, exec_free);
    read_argv(L, j);
    if (lua_getfield(L, 1, "stdin") == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (!(j->input = malloc(len + 1)))
            kcm_oom(L);
        memcpy(j->input, s, len);
        j->input_len = len;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "cwd") == LUA_TSTRING && !(j->cwd = strdup(lua_tostring(L, -1))))
        kcm_oom(L);
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "timeout") == LUA_TNUMBER)
        j->timeout = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "env") == LUA_TTABLE)
        read_env(L, j);
    lua_pop(L, 1);
    return kcm_job_yield(L, &j->base);
}

/* exec.take_env(name) -> value | nil: a secret from the environment
 * (become_password_env), read once and removed from kcmrun's own
 * environment, so no local child (commands, ProxyCommand, bash for
 * environment.sh) inherits it. Later calls return the value kept. Main
 * thread only. */
static struct { char *name, *value; } taken[16];
static int ntaken;

static int l_take_env(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (int i = 0; i < ntaken; i++)
        if (strcmp(taken[i].name, name) == 0) {
            lua_pushstring(L, taken[i].value);
            return 1;
        }
    const char *v = getenv(name);
    if (!v) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, v);
    if (ntaken == (int)(sizeof taken / sizeof taken[0]))
        return luaL_error(L, "more than %d become_password_env variables", ntaken);
    if (!(taken[ntaken].name = strdup(name)) || !(taken[ntaken].value = strdup(v)))
        kcm_oom(L);
    ntaken++;
    unsetenv(name);
    return 1;
}

int kcm_open_exec(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"run", l_run},
        {"take_env", l_take_env},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
