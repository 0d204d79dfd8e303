/* Small helpers shared by the native modules. */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include "kcm/kcm.h"
#include "buf.h"
#include "util.h"

void *kcm_newudata(lua_State *L, size_t size, const char *tname,
                   const luaL_Reg *methods, lua_CFunction gc)
{
    void *p = lua_newuserdatauv(L, size, 1);
    memset(p, 0, size);
    if (luaL_newmetatable(L, tname)) {
        lua_newtable(L);
        if (methods)
            luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        if (gc) {
            lua_pushcfunction(L, gc);
            lua_setfield(L, -2, "__gc");
            lua_pushcfunction(L, gc);
            lua_setfield(L, -2, "__close");
        }
    }
    lua_setmetatable(L, -2);
    return p;
}

int kcm_oom(lua_State *L)
{
    luaL_error(L, "out of memory");
    abort();   /* luaL_error does not return */
}

int kcm_fail(lua_State *L, const char *kind, const char *fmt, ...)
{
    lua_pushnil(L);
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushstring(L, kind ? kind : "error");
    return 3;
}

int kcm_fail_errno(lua_State *L, int err, const char *fmt, ...)
{
    lua_pushnil(L);
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushfstring(L, ": %s", strerror(err));
    lua_concat(L, 2);
    lua_pushstring(L, err == EACCES || err == EPERM || err == EROFS ? "denied"
                      : err == ENOENT || err == ENOTDIR ? "noent"
                      : err == EEXIST || err == EISDIR ? "exists" : "error");
    return 3;
}

void kcm_memzero(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

int kcm_buf_add(struct kcm_buf *b, const void *data, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        /* not realloc: a buffer may hold a key (a file read over sftp,
         * command output), and realloc would leave the old copy unwiped */
        char *q = malloc(cap);
        if (!q)
            return -1;
        if (b->p) {
            memcpy(q, b->p, b->n);
            kcm_memzero(b->p, b->cap);
            free(b->p);
        }
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

void kcm_buf_free(struct kcm_buf *b, int wipe)
{
    if (wipe && b->p)
        kcm_memzero(b->p, b->cap);
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int kcm_key_rank(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t == LUA_TNUMBER ? 0 : t == LUA_TSTRING ? 1 : 2;
}

int kcm_key_less(lua_State *L, int a, int b)
{
    int ra = kcm_key_rank(L, a), rb = kcm_key_rank(L, b);
    if (ra != rb)
        return ra < rb;
    if (ra == 0)
        return lua_compare(L, a, b, LUA_OPLT);
    if (ra == 2)
        return 0;
    size_t la, lb;
    const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
    int c = memcmp(sa, sb, la < lb ? la : lb);
    return c ? c < 0 : la < lb;
}

void kcm_buf_push(lua_State *L, const struct kcm_buf *b)
{
    lua_pushlstring(L, b->p ? b->p : "", b->n);
}

void kcm_hex(char *out, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

char *kcm_b64_encode(const unsigned char *p, size_t n, int pad)
{
    if (n > (size_t)INT_MAX / 4 * 3 - 3)
        return NULL;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        return NULL;
    int l = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    while (!pad && l > 0 && out[l - 1] == '=')
        out[--l] = '\0';
    return out;
}

unsigned char *kcm_b64_decode(const char *s, size_t n, size_t *outlen)
{
    /* EVP_DecodeBlock trims only the ends: drop the line breaks inside */
    char *clean = malloc(n + 1);
    if (!clean) {
        errno = ENOMEM;
        return NULL;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\n' && s[i] != '\r')
            clean[m++] = s[i];
    clean[m] = '\0';
    /* '=' only as the last one or two characters of a whole quad */
    size_t pads = m > 0 && clean[m - 1] == '=' ? (m > 1 && clean[m - 2] == '=' ? 2 : 1) : 0;
    int bad = m % 4 != 0 || m > (size_t)INT_MAX || memchr(clean, '=', m - pads) != NULL ||
              strlen(clean) != m;
    unsigned char *out = bad ? NULL : malloc(m / 4 * 3 + 1);
    int r = out ? EVP_DecodeBlock(out, (const unsigned char *)clean, (int)m) : -1;
    free(clean);
    if (r < 0 || (size_t)r < pads) {
        free(out);
        errno = bad || out ? EINVAL : ENOMEM;
        return NULL;
    }
    *outlen = (size_t)r - pads;   /* EVP_DecodeBlock counts the padding as zero bytes */
    out[*outlen] = '\0';
    return out;
}

int kcm_mkdir_p(const char *path, mode_t mode, int *changed)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            struct stat st;
            if (stat(buf, &st) != 0) {
                if (errno != ENOENT)
                    return -1;
                if (mkdir(buf, mode) != 0 && errno != EEXIST)
                    return -1;
                *changed = 1;
            } else if (!S_ISDIR(st.st_mode)) {
                errno = ENOTDIR;
                return -1;
            }
            *p = c;
            if (c == 0)
                break;
        }
    }
    return 0;
}

const char *kcm_opt_lstring(lua_State *L, int t, const char *k, size_t *len, const char *who, int required)
{
    const char *s = NULL;
    size_t n = 0;
    int ty = lua_getfield(L, t, k);
    if (ty == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &n);
        if (!len && strlen(s) != n)
            luaL_error(L, "%s: %s contains a NUL byte", who, k);
    } else if (ty != LUA_TNIL) {
        luaL_error(L, "%s: %s must be a string, not a %s", who, k, lua_typename(L, ty));
    } else if (required) {
        luaL_error(L, "%s: %s is required", who, k);
    }
    lua_pop(L, 1);   /* the table still holds the string */
    if (len)
        *len = n;
    return s;
}

char *kcm_opt_strdup(lua_State *L, int t, const char *k, size_t *len, const char *who, int required)
{
    size_t n;
    const char *s = kcm_opt_lstring(L, t, k, &n, who, required);
    if (!s)
        return NULL;
    if (!len && strlen(s) != n)
        luaL_error(L, "%s: %s contains a NUL byte", who, k);
    char *d = malloc(n + 1);
    if (!d)
        kcm_oom(L);
    memcpy(d, s, n + 1);
    if (len)
        *len = n;
    return d;
}

lua_Integer kcm_opt_int(lua_State *L, int t, const char *k, lua_Integer def, const char *who)
{
    int ty = lua_getfield(L, t, k);
    int isint = 0;
    lua_Integer v = ty == LUA_TNIL ? def : lua_tointegerx(L, -1, &isint);
    if (ty != LUA_TNIL && (ty != LUA_TNUMBER || !isint))
        luaL_error(L, "%s: %s must be an integer", who, k);
    lua_pop(L, 1);
    return v;
}

double kcm_opt_number(lua_State *L, int t, const char *k, double def, const char *who)
{
    int ty = lua_getfield(L, t, k);
    if (ty != LUA_TNIL && ty != LUA_TNUMBER)
        luaL_error(L, "%s: %s must be a number", who, k);
    double v = ty == LUA_TNIL ? def : lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

int kcm_opt_bool(lua_State *L, int t, const char *k, int def)
{
    int ty = lua_getfield(L, t, k);
    int v = ty == LUA_TNIL ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}
