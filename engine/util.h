/* Helpers the native modules share (engine/util.c): one hex encoder, one
 * base64 (OpenSSL's EVP coder), one mkdir -p, one set of option readers. */
#ifndef KCM_UTIL_H
#define KCM_UTIL_H
#include <stddef.h>
#include <sys/types.h>
#include "kcm/kcm.h"

/* The out-of-memory policy. Main thread: raise "out of memory" (as Lua's own
 * allocator does). Worker: kcm_job_fail(job, "out of memory"). */
int kcm_oom(lua_State *L) __attribute__((noreturn));

/* The natives' failure convention (misuse raises; an operational failure
 * is a value): pushes nil, the formatted message and `kind` (a static
 * string: "denied", "noent", "exists", "error", ...); returns 3. */
int kcm_fail(lua_State *L, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same for a failed system call: ": strerror(err)" ends the message and
 * the kind is errno's (EACCES -> "denied", ENOENT -> "noent", ...). */
int kcm_fail_errno(lua_State *L, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct kcm_buf;
/* Pushes the buffer's bytes as a Lua string ("" for an empty buffer). */
void kcm_buf_push(lua_State *L, const struct kcm_buf *b);

/* Lower-case hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void kcm_hex(char *out, const unsigned char *p, size_t n);

/* Standard base64, padded unless pad == 0. malloc'd; NULL when out of memory. */
char *kcm_b64_encode(const unsigned char *p, size_t n, int pad);
/* Strict standard base64 (padding required, CR/LF ignored). malloc'd, with a
 * NUL after the *outlen bytes; NULL when invalid (errno EINVAL) or out of
 * memory (ENOMEM). */
unsigned char *kcm_b64_decode(const char *s, size_t n, size_t *outlen);

/* mkdir -p with mode for the folders it makes (*changed = 1 when it made
 * one). -1 with errno on failure (ENOTDIR when a part is not a folder). */
int kcm_mkdir_p(const char *path, mode_t mode, int *changed);

/* Fields of an options table at index t. A field that is nil gives the
 * default; a field of the wrong type raises "<who>: <k> must be ...".
 * kcm_opt_lstring: NULL when nil (raises "<who>: <k> is required" when
 * required); a string with a NUL byte raises unless len is asked for (the
 * value is then binary, not a C string). The pointer lives as long as t
 * holds the value. kcm_opt_strdup: the same, copied with malloc. */
const char *kcm_opt_lstring(lua_State *L, int t, const char *k, size_t *len, const char *who, int required);
char *kcm_opt_strdup(lua_State *L, int t, const char *k, size_t *len, const char *who, int required);
lua_Integer kcm_opt_int(lua_State *L, int t, const char *k, lua_Integer def, const char *who);
double kcm_opt_number(lua_State *L, int t, const char *k, double def, const char *who);
int kcm_opt_bool(lua_State *L, int t, const char *k, int def);
#endif
