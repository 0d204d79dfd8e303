#ifndef KCM_RUNTIME_H
#define KCM_RUNTIME_H
void kcm_runtime_init(void);
void kcm_runtime_shutdown(void);
/* jobs submitted and not yet resumed (work abandoned after an interrupt) */
int kcm_runtime_busy(void);
/* installs the interrupt hook on L (and, by inheritance, its coroutines) */
struct lua_State;
void kcm_runtime_hook(struct lua_State *L);
#endif
