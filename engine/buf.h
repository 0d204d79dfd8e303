#ifndef KCM_BUF_H
#define KCM_BUF_H
#include <stddef.h>

/* A growable byte buffer, always NUL-terminated so text can be used as is. */
struct kcm_buf {
    char *p;
    size_t n, cap;
};

/* Appends n bytes; -1 (buffer unchanged) when memory runs out. */
int kcm_buf_add(struct kcm_buf *b, const void *data, size_t n);
/* Frees the buffer; wipes it first when it may have held a secret. */
void kcm_buf_free(struct kcm_buf *b, int wipe);
#endif
