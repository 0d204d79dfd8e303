#ifndef KCM_RUNTIME_H
#define KCM_RUNTIME_H
#include "kcm/kcm.h"
void kcm_runtime_init(void);
void kcm_runtime_shutdown(void);
/* jobs submitted and not yet resumed (work abandoned after an interrupt) */
int kcm_runtime_busy(void);
/* installs the interrupt hook on L (and, by inheritance, its coroutines) */
struct lua_State;
void kcm_runtime_hook(struct lua_State *L);
/* Is L a coroutine the scheduler resumes (so it may yield to it)? */
int kcm_runtime_scheduled(lua_State *L);

/* Timers (engine/timers.c), main thread only. */
int kcm_timers_pending(void);             /* coroutines sleeping */
int kcm_timers_wait_ms(int ms);           /* ms capped at the earliest deadline */
int kcm_timers_due(void);                 /* is a deadline past? */
/* Appends the coroutines whose deadline passed to the table at `list`
 * after index n; returns the new last index. */
int kcm_timers_take_due(lua_State *L, int list, int n);
int kcm_rt_timer(lua_State *L);           /* runtime.timer(seconds) */
#endif
