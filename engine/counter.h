#ifndef KCM_COUNTER_H
#define KCM_COUNTER_H
/* A byte counter a job adds to on its worker thread while the main thread
 * reads it (the progress line of a transfer, lua/kcm/progress.lua). */
#include <stdatomic.h>
struct lua_State;

typedef struct kcm_counter {
    _Atomic unsigned long long n;
    _Atomic int refs;            /* the Lua value's and each job's */
    _Atomic int done;            /* a job that held it ended */
} kcm_counter;

/* The counter at idx (nil: NULL), with a reference for the caller. */
kcm_counter *kcm_counter_opt(struct lua_State *L, int idx);
void kcm_counter_add(kcm_counter *c, unsigned long long n);   /* NULL: nothing */
/* The job is over (whatever its outcome): marks it done, drops the reference. */
void kcm_counter_finish(kcm_counter *c);
int kcm_rt_counter(struct lua_State *L);   /* runtime.counter() */
#endif
