#ifndef KCM_HARDEN_H
#define KCM_HARDEN_H
/* No core dumps, not dumpable (ptrace, /proc/PID/mem) while keys are held.
 * 0, or -1 when the kernel refused (the run goes on). */
int kcm_harden_process(void);
#endif
