/* libFuzzer target: redaction (engine/redact.c), with a linear-time
 * assertion: the input is redacted as is, then repeated up to 256 KiB and
 * redacted again; that must take at most a fixed cost plus a bound per
 * byte (the Lua patterns this replaced took 9.5 s on a 10 KB token).
 * Invariants beyond "no crash, no leak, no UB":
 *  - the output is a string of its own length (no stray NUL);
 *  - redacting the output again changes nothing a second time beyond
 *    itself (the mark is stable: redact(redact(x)) == redact(x));
 *  - linear time, as above. */
#include "../../engine/redact.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BIG (256 * 1024)
/* per byte under ASan/UBSan and coverage instrumentation, plus a fixed
 * allowance for a loaded machine; a quadratic pass over 256 KiB is ~1000x */
#define NS_PER_BYTE 2000.0
#define NS_FIXED 50e6

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kcm_buf a, b;
    if (kcm_redact_line((const char *)data, size, &a) != 0) return 0;
    if (a.p && strlen(a.p) != a.n && memchr(data, 0, size) == NULL) abort();
    if (kcm_redact_line(a.p ? a.p : "", a.n, &b) != 0) abort();
    if (b.n != a.n || (a.n && memcmp(a.p, b.p, a.n) != 0)) {
        fprintf(stderr, "not stable:\n1: %.*s\n2: %.*s\n", (int)a.n, a.p, (int)b.n, b.p);
        abort();
    }
    kcm_buf_free(&a, 0);
    kcm_buf_free(&b, 0);
    if (size == 0) return 0;
    size_t n = 0;
    char *big = malloc(BIG);
    if (!big) abort();
    while (n + size <= BIG) { memcpy(big + n, data, size); n += size; }
    double t0 = now_ns();
    if (kcm_redact_line(big, n, &a) == 0) kcm_buf_free(&a, 0);
    double dt = now_ns() - t0;
    free(big);
    if (dt > NS_FIXED + NS_PER_BYTE * (double)n) {
        fprintf(stderr, "redacting %zu bytes took %.0f ms: not linear\n", n, dt / 1e6);
        abort();
    }
    return 0;
}

#ifdef KCM_FUZZ_STANDALONE
#include "replay_main.h"
#endif
