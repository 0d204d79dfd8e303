/* The worker pool and the job API.
 *
 * Only the main thread touches Lua. A native call packs its inputs into a
 * kcm_job and yields its coroutine; a worker thread runs job->work; the job
 * goes to the done list and the main loop (runtime.poll, driven by the Lua
 * scheduler in kcm.task) gets the coroutine back and resumes it, which runs
 * the continuation below on the main thread.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "counter.h"
#include "modules.h"
#include "runtime.h"
#include "util.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kcm_job *queue_head, *queue_tail;   /* waiting for a worker */
    kcm_job *done_head, *done_tail;     /* finished, waiting for the main thread */
    const void **busy_pins;             /* pins of the jobs running now */
    int nbusy_pins, cap_busy_pins;
    int workers, idle, max_workers;
    pthread_t *threads;                 /* every worker started, joined at shutdown */
    int nthreads, cap_threads;
    int queued;                         /* jobs in the queue, not yet taken */
    int in_flight, max_in_flight;       /* submitted and not yet resumed */
    int running, max_running;           /* work() executing on a worker now */
    unsigned long total;
    int efd;
    int stopping;
} pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
    .max_workers = 68,
    .efd = -1,
};

/* Interrupts. The first SIGINT/SIGTERM only records itself (the scheduler
 * starts nothing new and gives work in flight `grace` seconds); a second one
 * stops at once from the handler itself, because the main thread may be
 * blocked or spinning where no Lua code can see a flag. */
static volatile sig_atomic_t got_signal;      /* the first signal's number */
static volatile sig_atomic_t sig_count;       /* signals received */
static int poll_seen;                         /* sig_count the last poll returned on */
static volatile long signal_at_ms;            /* CLOCK_MONOTONIC of the first signal */
static long grace_ms = 5000;


static void job_vfail(kcm_job *job, const char *kind, const char *fmt, va_list ap)
{
    if (job->error)
        return;
    if (vasprintf(&job->error, fmt, ap) < 0)
        job->error = NULL;
    job->kind = kind;
    if (!job->error) {
        job->error = strdup("out of memory");
        job->kind = "error";
    }
}

void kcm_job_fail(kcm_job *job, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    job_vfail(job, "error", fmt, ap);
    va_end(ap);
}

void kcm_job_fail_kind(kcm_job *job, const char *kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    job_vfail(job, kind ? kind : "error", fmt, ap);
    va_end(ap);
}

static int pin_busy(const void *pin)
{
    for (int i = 0; i < pool.nbusy_pins; i++)
        if (pool.busy_pins[i] == pin)
            return 1;
    return 0;
}

static void pin_add(const void *pin)
{
    if (pool.nbusy_pins == pool.cap_busy_pins) {
        int cap = pool.cap_busy_pins ? pool.cap_busy_pins * 2 : 16;
        const void **p = realloc(pool.busy_pins, (size_t)cap * sizeof *p);
        if (!p)
            abort();
        pool.busy_pins = p;
        pool.cap_busy_pins = cap;
    }
    pool.busy_pins[pool.nbusy_pins++] = pin;
}

static void pin_del(const void *pin)
{
    for (int i = 0; i < pool.nbusy_pins; i++)
        if (pool.busy_pins[i] == pin) {
            pool.busy_pins[i] = pool.busy_pins[--pool.nbusy_pins];
            return;
        }
}

/* The guard kcm_job_new pushes: it owns the job until kcm_job_yield takes
 * it. Its slot is to-be-closed, so a raise while the native fills the job
 * frees the job then and there; __gc covers a coroutine that died with the
 * slot still open (Lua closes such slots only on coroutine.close). */
typedef struct {
    kcm_job *job;
} job_guard;

static int guard_close(lua_State *L)
{
    job_guard *g = lua_touserdata(L, 1);
    kcm_job *job = g ? g->job : NULL;
    if (job) {
        g->job = NULL;
        job->guard = NULL;
        job->free(job);
    }
    return 0;
}

void *kcm_job_new(lua_State *L, size_t size, kcm_job_work_fn work,
                  kcm_job_done_fn done, kcm_job_free_fn free_fn)
{
    /* the guard first: when the job's calloc raises, nothing is owned yet */
    job_guard *g = kcm_newudata(L, sizeof *g, "kcm.job_guard", NULL, guard_close);
    lua_toclose(L, -1);
    kcm_job *job = calloc(1, size < sizeof *job ? sizeof *job : size);
    if (!job)
        kcm_oom(L);
    job->work = work;
    job->done = done;
    job->free = free_fn;
    job->co_ref = LUA_NOREF;
    job->guard = g;
    g->job = job;
    return job;
}

/* From here on the runtime owns the job (it frees it after done/error). The
 * guard's slot stays on the stack, empty, and closes when the native
 * returns, after the yield if there is one. */
static void job_take(kcm_job *job)
{
    job_guard *g = job->guard;
    if (g)
        g->job = NULL;
    job->guard = NULL;
}

/* First queued job whose pin is free; unlinks it. Caller holds the lock. */
static kcm_job *take_job(void)
{
    kcm_job *prev = NULL;
    for (kcm_job *j = pool.queue_head; j; prev = j, j = j->next) {
        if (j->pin && pin_busy(j->pin))
            continue;
        if (prev)
            prev->next = j->next;
        else
            pool.queue_head = j->next;
        if (pool.queue_tail == j)
            pool.queue_tail = prev;
        j->next = NULL;
        pool.queued--;
        if (j->pin)
            pin_add(j->pin);
        return j;
    }
    return NULL;
}

static void wake_main(void)
{
    uint64_t one = 1;
    ssize_t r = write(pool.efd, &one, sizeof one);
    (void)r;
}

static void *worker_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);   /* signals belong to the main thread */
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        kcm_job *j;
        while (!(j = take_job()) && !pool.stopping) {
            pool.idle++;
            pthread_cond_wait(&pool.cv, &pool.mu);
            pool.idle--;
        }
        if (!j)
            break;
        if (++pool.running > pool.max_running)
            pool.max_running = pool.running;
        pthread_mutex_unlock(&pool.mu);
        j->work(j);
        pthread_mutex_lock(&pool.mu);
        pool.running--;
        if (j->pin) {
            pin_del(j->pin);
            pthread_cond_broadcast(&pool.cv);   /* a job waiting on this pin may go */
        }
        if (pool.done_tail)
            pool.done_tail->next = j;
        else
            pool.done_head = j;
        pool.done_tail = j;
        wake_main();
    }
    pool.workers--;
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

static void submit(kcm_job *job)
{
    pthread_mutex_lock(&pool.mu);
    job->next = NULL;
    if (pool.queue_tail)
        pool.queue_tail->next = job;
    else
        pool.queue_head = job;
    pool.queue_tail = job;
    pool.total++;
    if (++pool.in_flight > pool.max_in_flight)
        pool.max_in_flight = pool.in_flight;
    /* A signalled worker counts as idle until it wakes: compare with the
     * queue, or a burst of jobs lands on one worker and runs serially. */
    if (++pool.queued > pool.idle && pool.workers < pool.max_workers) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 512 * 1024);
        if (pool.nthreads == pool.cap_threads) {
            int cap = pool.cap_threads ? pool.cap_threads * 2 : 16;
            pthread_t *ts = realloc(pool.threads, (size_t)cap * sizeof *ts);
            if (ts) {
                pool.threads = ts;
                pool.cap_threads = cap;
            }
        }
        if (pool.nthreads < pool.cap_threads && pthread_create(&t, &attr, worker_main, NULL) == 0) {
            pool.threads[pool.nthreads++] = t;
            pool.workers++;
        }
        pthread_attr_destroy(&attr);
    }
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
}

static void job_release(kcm_job *job)
{
    free(job->error);
    job->error = NULL;
    job->free(job);
}

/* Turns a finished job into Lua results on the main thread: what done()
 * pushes, or `nil, message, kind` for a failure. */
static int job_finish(lua_State *L, kcm_job *job)
{
    if (job->error) {
        lua_pushnil(L);
        lua_pushstring(L, job->error);
        lua_pushstring(L, job->kind ? job->kind : "error");
        job_release(job);
        return 3;
    }
    int n = job->done ? job->done(L, job) : 0;
    job_release(job);
    return n;
}

static int job_continue(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    return job_finish(L, (kcm_job *)ctx);
}

static const char SCHED_KEY[] = "kcm.scheduled";

/* Is L a coroutine the scheduler resumes? A native call made from a
 * coroutine of the user's own must not yield to the user's resume: it runs
 * inline instead (blocking, but correct). */
int kcm_runtime_scheduled(lua_State *L)
{
    if (!lua_isyieldable(L) || pool.efd < 0)
        return 0;
    if (lua_getfield(L, LUA_REGISTRYINDEX, SCHED_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushthread(L);
    int yes = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return yes;
}

int kcm_job_yield(lua_State *L, kcm_job *job)
{
    job_take(job);
    job->error = NULL;
    job->kind = NULL;
    job->next = NULL;
    job->co_ref = LUA_NOREF;
    if (!kcm_runtime_scheduled(L)) {
        pthread_mutex_lock(&pool.mu);
        if (++pool.in_flight > pool.max_in_flight)
            pool.max_in_flight = pool.in_flight;
        pool.total++;
        pthread_mutex_unlock(&pool.mu);
        job->work(job);
        pthread_mutex_lock(&pool.mu);
        pool.in_flight--;
        pthread_mutex_unlock(&pool.mu);
        return job_finish(L, job);
    }
    lua_pushthread(L);
    job->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    submit(job);
    lua_pushlightuserdata(L, (void *)&kcm_job_yield);   /* the scheduler's marker */
    return lua_yieldk(L, 1, (lua_KContext)job, job_continue);
}

/* ---- the runtime module: what the Lua scheduler needs ---- */

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   /* async-signal-safe */
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void on_signal(int sig)
{
    if (sig_count++ > 0) {
        /* Everything here is async-signal-safe. Local children live in
         * process groups of their own (they would outlive us); exiting
         * closes every ssh connection, which ends the remote commands (each
         * runs under a wrapper that dies with its channel, ssh_exec.c). */
        static const char msg[] = "kcmrun: interrupted again: stopping now\n";
        kcm_exec_kill_children(SIGKILL);
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    signal_at_ms = mono_ms();
    got_signal = sig;
    if (pool.efd >= 0) {
        uint64_t one = 1;
        ssize_t r = write(pool.efd, &one, sizeof one);
        (void)r;
    }
}

int kcm_runtime_busy(void)
{
    pthread_mutex_lock(&pool.mu);
    int n = pool.in_flight;
    pthread_mutex_unlock(&pool.mu);
    return n;
}

/* Count hook: Lua that never yields (an endless loop in an inventory, a
 * playbook's top level or a step) cannot see the interrupt flag, so the VM
 * raises "interrupted" in it once the grace is over. Only the user's code:
 * the engine's own Lua still has to print the recap. */
static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    if (!got_signal || mono_ms() < signal_at_ms + grace_ms)
        return;
    if (!lua_getinfo(L, "S", ar))
        return;
    if (strncmp(ar->source, "@builtin:", 9) == 0 || ar->source[0] == '=')
        return;
    luaL_error(L, "interrupted by %s", got_signal == SIGTERM ? "SIGTERM" : "SIGINT");
}

void kcm_runtime_hook(lua_State *L)
{
    /* coroutines created later inherit the hook (lua_newthread copies it) */
    lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 10000);
}

void kcm_runtime_init(void)
{
    pool.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void kcm_runtime_shutdown(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    /* Join the workers, so their thread-local state (OpenSSL's, libssh's) is
     * released before exit. A worker still inside a job after the deadline
     * is left behind: it holds no Lua state, and exit must not hang. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 2;
    int left = 0;
    for (int i = 0; i < pool.nthreads; i++)
        if (pthread_timedjoin_np(pool.threads[i], NULL, &deadline) != 0)
            left++;
    if (left == 0) {
        free(pool.threads);
        pool.threads = NULL;
        pool.nthreads = pool.cap_threads = 0;
        free(pool.busy_pins);
        pool.busy_pins = NULL;
        if (pool.efd >= 0)
            close(pool.efd);
        pool.efd = -1;
    }
}

/* runtime.poll([timeout_seconds]) -> array of coroutines whose job finished
 * or whose timer (engine/timers.c) expired.
 * Blocks until at least one is done, the timeout passes or a signal came. */
static int rt_poll(lua_State *L)
{
    double timeout = luaL_optnumber(L, 1, -1);
    int ms = timeout < 0 ? -1 : (int)(timeout * 1000);
    for (;;) {
        pthread_mutex_lock(&pool.mu);
        kcm_job *list = pool.done_head;
        pool.done_head = pool.done_tail = NULL;
        pthread_mutex_unlock(&pool.mu);
        int due = kcm_timers_due();
        int news = sig_count != poll_seen;
        poll_seen = sig_count;
        if (list || news || due || ms == 0) {
            lua_newtable(L);
            int i = 0;
            while (list) {
                kcm_job *j = list;
                list = j->next;
                j->next = NULL;
                pthread_mutex_lock(&pool.mu);
                pool.in_flight--;
                pthread_mutex_unlock(&pool.mu);
                lua_rawgeti(L, LUA_REGISTRYINDEX, j->co_ref);
                luaL_unref(L, LUA_REGISTRYINDEX, j->co_ref);
                j->co_ref = LUA_NOREF;
                lua_rawseti(L, -2, ++i);
            }
            kcm_timers_take_due(L, -1, i);
            return 1;
        }
        struct pollfd p = {.fd = pool.efd, .events = POLLIN};
        int wait = kcm_timers_wait_ms(ms);
        int r = poll(&p, 1, wait);
        if (r > 0) {
            uint64_t v;
            ssize_t n = read(pool.efd, &v, sizeof v);
            (void)n;
        } else if (r == 0) {
            if (wait == ms)
                ms = 0;   /* the caller's timeout, not a timer's */
        } else if (errno != EINTR) {
            return luaL_error(L, "runtime.poll: %s", strerror(errno));
        }
    }
}

/* runtime.adopt(co): co is resumed by the scheduler (weakly remembered). */
static int rt_adopt(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    if (lua_getfield(L, LUA_REGISTRYINDEX, SCHED_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, SCHED_KEY);
    }
    lua_pushvalue(L, 1);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    return 0;
}

static int rt_pending(lua_State *L)
{
    pthread_mutex_lock(&pool.mu);
    int n = pool.in_flight;
    pthread_mutex_unlock(&pool.mu);
    lua_pushinteger(L, n + kcm_timers_pending());
    return 1;
}

static int rt_stats(lua_State *L)
{
    pthread_mutex_lock(&pool.mu);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, pool.in_flight);
    lua_setfield(L, -2, "in_flight");
    lua_pushinteger(L, pool.max_in_flight);
    lua_setfield(L, -2, "max_in_flight");
    lua_pushinteger(L, (lua_Integer)pool.total);
    lua_setfield(L, -2, "total");
    lua_pushinteger(L, pool.max_running);
    lua_setfield(L, -2, "max_running");
    lua_pushinteger(L, pool.workers);
    lua_setfield(L, -2, "workers");
    lua_pushinteger(L, pool.max_workers);
    lua_setfield(L, -2, "max_workers");
    pthread_mutex_unlock(&pool.mu);
    return 1;
}

static int rt_reset_stats(lua_State *L)
{
    pthread_mutex_lock(&pool.mu);
    pool.max_in_flight = pool.in_flight;
    pool.max_running = pool.running;
    pool.total = 0;
    pthread_mutex_unlock(&pool.mu);
    return 0;
}

static int rt_configure(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "max_workers") == LUA_TNUMBER) {
        lua_Integer n = lua_tointeger(L, -1);
        pool.max_workers = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "grace") == LUA_TNUMBER) {
        double g = lua_tonumber(L, -1);
        grace_ms = g <= 0 ? 0 : g > 86400 ? 86400000L : (long)(g * 1000);
    }
    lua_pop(L, 1);
    return 0;
}

/* runtime.signal() -> nil | signal number, deadline (monotonic seconds at
 * which the grace for work in flight is over) */
static int rt_signal(lua_State *L)
{
    if (!got_signal) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, got_signal);
    lua_pushnumber(L, (double)(signal_at_ms + grace_ms) / 1000.0);
    return 2;
}

/* runtime.sleep(s[, str]): a blocking call held by a worker for s seconds
 * (the pool's own tests measure fan-out with it). Waits that should hold no
 * worker use runtime.timer (engine/timers.c). */
struct sleep_job {
    kcm_job base;
    double seconds;
    char *echo;           /* handed back when the sleep is over */
    size_t echo_len;
};

static void sleep_work(kcm_job *job)
{
    struct sleep_job *s = (struct sleep_job *)job;
    if (s->seconds <= 0)
        return;   /* a bare round trip through the pool (timer slack would add ~50 us) */
    struct timespec ts;
    ts.tv_sec = (time_t)s->seconds;
    ts.tv_nsec = (long)((s->seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int sleep_done(lua_State *L, kcm_job *job)
{
    struct sleep_job *s = (struct sleep_job *)job;
    if (!s->echo)
        return 0;
    lua_pushlstring(L, s->echo, s->echo_len);
    return 1;
}

static void sleep_free(kcm_job *job)
{
    free(((struct sleep_job *)job)->echo);
    free(job);
}

static int rt_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    struct sleep_job *j = kcm_job_new(L, sizeof *j, sleep_work, sleep_done, sleep_free);
    j->seconds = s < 0 ? 0 : s;
    if (lua_type(L, 2) == LUA_TSTRING) {
        /* runtime.sleep(s, str) -> str: a blocking call with a result of its own */
        const char *e = lua_tolstring(L, 2, &j->echo_len);
        j->echo = malloc(j->echo_len + 1);
        if (!j->echo)
            kcm_oom(L);
        memcpy(j->echo, e, j->echo_len + 1);
    }
    return kcm_job_yield(L, &j->base);
}

static int rt_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return 1;
}

static int rt_time(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return 1;
}

static int rt_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* runtime.columns(fd) -> the terminal's width, or nil: a live progress line
 * longer than it would wrap, and erasing it would leave half of it. */
static int rt_columns(lua_State *L)
{
    struct winsize ws;
    if (ioctl((int)luaL_checkinteger(L, 1), TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 0;
    lua_pushinteger(L, ws.ws_col);
    return 1;
}

int kcm_open_runtime(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"poll", rt_poll},
        {"adopt", rt_adopt},
        {"pending", rt_pending},
        {"stats", rt_stats},
        {"reset_stats", rt_reset_stats},
        {"configure", rt_configure},
        {"signal", rt_signal},
        {"sleep", rt_sleep},
        {"timer", kcm_rt_timer},
        {"now", rt_now},
        {"time", rt_time},
        {"isatty", rt_isatty},
        {"counter", kcm_rt_counter},
        {"columns", rt_columns},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, (void *)&kcm_job_yield);
    lua_setfield(L, -2, "marker");
    return 1;
}
