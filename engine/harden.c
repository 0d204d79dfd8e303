/* Process hardening at start-up: kcmrun holds private keys (the CA key,
 * generated keys, ssh identities, kubeconfig client keys) for most of a
 * run, so a core dump or a ptrace attach by another process of the same
 * user would hand them out. */
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "harden.h"

int kcm_harden_process(void)
{
    struct rlimit no = {0, 0};
    int rc = 0;
    if (setrlimit(RLIMIT_CORE, &no) != 0)
        rc = -1;
    /* Also makes /proc/PID/mem and ptrace root-only. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        rc = -1;
    return rc;
}
