#ifndef KCM_LUALIB_EMBEDDED_H
#define KCM_LUALIB_EMBEDDED_H
#include <stddef.h>
struct kcm_embedded_lua {
    const char *name;     /* module name, e.g. "kcm.pki" */
    const char *chunk;    /* chunk name for error messages */
    const char *src;
    size_t len;
};
extern const struct kcm_embedded_lua kcm_embedded_lua[];
#endif
