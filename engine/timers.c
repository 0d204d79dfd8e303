/* Timers: waits that hold no worker thread.
 *
 * A sleeping coroutine is an entry in a min-heap on the main thread (ordered
 * by deadline, then by arrival so equal deadlines wake in order). The main
 * loop's poll on the completion fd waits at most until the earliest
 * deadline; expired entries hand their coroutines back with the finished
 * jobs. So a thousand coroutines sleeping at once cost a thousand heap
 * entries, not a thousand threads in nanosleep, and a retry loop waiting
 * between attempts does not starve the pool of workers for real work.
 *
 * Only the main thread touches the heap (it is the only one running Lua).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "runtime.h"
#include "util.h"

struct timer {
    double deadline;         /* CLOCK_MONOTONIC seconds */
    unsigned long seq;
    int co_ref;
};

static struct {
    struct timer *h;
    int n, cap;
    unsigned long seq;
} heap;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int before(const struct timer *a, const struct timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void swap(int i, int j)
{
    struct timer t = heap.h[i];
    heap.h[i] = heap.h[j];
    heap.h[j] = t;
}

static int push(double deadline, int co_ref)
{
    if (heap.n == heap.cap) {
        int cap = heap.cap ? heap.cap * 2 : 64;
        struct timer *h = realloc(heap.h, (size_t)cap * sizeof *h);
        if (!h)
            return -1;
        heap.h = h;
        heap.cap = cap;
    }
    int i = heap.n++;
    heap.h[i] = (struct timer){deadline, heap.seq++, co_ref};
    while (i > 0 && before(&heap.h[i], &heap.h[(i - 1) / 2])) {
        swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static struct timer pop(void)
{
    struct timer top = heap.h[0];
    heap.h[0] = heap.h[--heap.n];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap.n && before(&heap.h[l], &heap.h[m]))
            m = l;
        if (r < heap.n && before(&heap.h[r], &heap.h[m]))
            m = r;
        if (m == i)
            break;
        swap(i, m);
        i = m;
    }
    return top;
}

int kcm_timers_pending(void)
{
    return heap.n;
}

int kcm_timers_wait_ms(int ms)
{
    if (heap.n == 0)
        return ms;
    double left = heap.h[0].deadline - mono_now();
    /* rounded up: waking a hair early would spin through poll for nothing */
    int t = left <= 0 ? 0 : left > 86400 ? 86400000 : (int)ceil(left * 1000);
    return ms < 0 || t < ms ? t : ms;
}

int kcm_timers_due(void)
{
    return heap.n > 0 && heap.h[0].deadline <= mono_now();
}

int kcm_timers_take_due(lua_State *L, int list, int n)
{
    list = lua_absindex(L, list);
    double now = mono_now();
    while (heap.n > 0 && heap.h[0].deadline <= now) {
        struct timer t = pop();
        lua_rawgeti(L, LUA_REGISTRYINDEX, t.co_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, t.co_ref);
        lua_rawseti(L, list, ++n);
    }
    return n;
}

static int timer_continue(lua_State *L, int status, lua_KContext ctx)
{
    (void)L;
    (void)status;
    (void)ctx;
    return 0;
}

/* runtime.timer(seconds): the calling coroutine sleeps without a worker. A
 * caller the scheduler does not resume (the main chunk, a coroutine of the
 * user's own) has nobody to wake it, so it sleeps where it stands. */
int kcm_rt_timer(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    if (!(s > 0))
        s = 0;   /* NaN and negatives: no wait, but still a turn for the others */
    if (!kcm_runtime_scheduled(L)) {
        struct timespec ts;
        ts.tv_sec = (time_t)s;
        ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
            ;
        return 0;
    }
    lua_pushthread(L);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (push(mono_now() + s, ref) != 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        kcm_oom(L);
    }
    lua_pushlightuserdata(L, (void *)&kcm_job_yield);   /* the scheduler's marker */
    return lua_yieldk(L, 1, 0, timer_continue);
}
