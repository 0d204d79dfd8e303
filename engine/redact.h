#ifndef KCM_REDACT_H
#define KCM_REDACT_H
#include <stddef.h>
#include "buf.h"

/* One line with every credential-looking value replaced by [redacted], in
 * one pass: O(n). 0 and *out (free with kcm_buf_free), -1 out of memory. */
int kcm_redact_line(const char *s, size_t n, struct kcm_buf *out);
#endif
