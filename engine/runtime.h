#ifndef KCM_RUNTIME_H
#define KCM_RUNTIME_H
void kcm_runtime_init(void);
void kcm_runtime_shutdown(void);
#endif
