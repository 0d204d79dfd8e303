/* kcm.native.redact: the per-line rules of lua/kcm/redact.lua in one
 * left-to-right pass, so a line of n bytes costs O(n) whatever its shape
 * (the Lua patterns they replace re-scanned every identifier run from each
 * of its positions: a 10 KB token took 9.5 s).
 *
 *   redact.line(s) -> s with every credential-looking value replaced
 *
 * Each identifier run ([A-Za-z0-9_.-]) is read once. A value is hidden when
 * its key names a credential and the key is followed by ':' or '=' (YAML,
 * JSON, env, ini, --flag=) or, for a --flag, by a space (two arguments);
 * also Authorization headers, the password of scheme://user:pw@host, token.csv
 * lines and base64 PEM private keys. */
#include "redact.h"
#include "modules.h"
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MARK "[redacted]"

/* key endings (lowercase) that name a credential */
static const char *const WORDS[] = {
    "token", "password", "passwd", "secret", "key-data", "private-key", "privatekey", ".key",
    "apikey", "api-key", "api_key", NULL,
};

static int ident(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '.' || c == '-';
}

static int b64c(unsigned char c)
{
    return isalnum(c) || c == '+' || c == '/' || c == '=';
}

/* ends: the key ends with a word (flags, YAML, env); else contains one
 * (a quoted JSON key) */
/* Keys that end in a credential word but name no credential: hiding their
 * value hides what an operator needs to read (a --diff of etcd's unit
 * showed --initial-cluster-token=[redacted]). etcd's initial-cluster-token
 * only keeps the members of two clusters apart: it is on every member's
 * command line and in `ps`, and etcd's docs treat it as a name. */
static const char *const NOT_SECRET[] = {"initial-cluster-token", "initial_cluster_token", NULL};

static int secret_key(const char *k, size_t n, int ends)
{
    while (n > 0 && *k == '-') { k++; n--; }
    for (int w = 0; NOT_SECRET[w]; w++)
        if (strlen(NOT_SECRET[w]) == n && strncasecmp(k, NOT_SECRET[w], n) == 0) return 0;
    for (int w = 0; WORDS[w]; w++) {
        size_t m = strlen(WORDS[w]);
        if (m > n) continue;
        if (ends) {
            if (strncasecmp(k + n - m, WORDS[w], m) == 0) return 1;
        } else {
            for (size_t i = 0; i + m <= n; i++)
                if (strncasecmp(k + i, WORDS[w], m) == 0) return 1;
        }
    }
    return 0;
}

/* values that are a reference, not a secret: `secret: true`, `key: {` */
static int harmless(const char *v, size_t n, const char *key, size_t kn)
{
    static const char *const refs[] = {"true", "false", "|", ">", "{", "[", "null", "''", "\"\"", "|-", ">-", NULL};
    for (int i = 0; refs[i]; i++)
        if (strlen(refs[i]) == n && memcmp(v, refs[i], n) == 0) return 1;
    if (n >= 9 && memcmp(v, "[redacted", 9) == 0) return 1;
    /* the checksum line that stands in for a secret file's diff */
    if (n == 6 && memcmp(v, "sha256", 6) == 0 && kn == 6 && memcmp(key, "secret", 6) == 0) return 1;
    return 0;
}

static const unsigned char B64V[256] = {
    ['A'] = 0,  ['B'] = 1,  ['C'] = 2,  ['D'] = 3,  ['E'] = 4,  ['F'] = 5,  ['G'] = 6,  ['H'] = 7,
    ['I'] = 8,  ['J'] = 9,  ['K'] = 10, ['L'] = 11, ['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15,
    ['Q'] = 16, ['R'] = 17, ['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
    ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29, ['e'] = 30, ['f'] = 31,
    ['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35, ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39,
    ['o'] = 40, ['p'] = 41, ['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47,
    ['w'] = 48, ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53, ['2'] = 54, ['3'] = 55,
    ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59, ['8'] = 60, ['9'] = 61, ['+'] = 62, ['/'] = 63,
};

/* base64 of "-----BEGIN": every base64-encoded PEM block starts with it */
static const char B64_PEM[] = "LS0tLS1CRUdJTi";

/* Is the base64 blob a PEM private key? Decodes its first 64 bytes only. */
static int b64_pem_private(const char *s, size_t n)
{
    char head[65];
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && o < 64; i++) {
        if (s[i] == '=') break;
        acc = (acc << 6) | B64V[(unsigned char)s[i]];
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            head[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    head[o] = '\0';
    return memmem(head, o, "PRIVATE KEY", 11) != NULL;
}

struct out {
    struct kcm_buf b;
    int oom;
};

static void put(struct out *o, const char *p, size_t n)
{
    if (n && kcm_buf_add(&o->b, p, n) != 0) o->oom = 1;
}

/* The value at s[i..]: a quoted string up to its closing quote, or a run up
 * to whitespace (and, after ':', ',' or '}'). Returns its end. */
static size_t value_end(const char *s, size_t n, size_t i, int colon)
{
    if (i < n && (s[i] == '"' || s[i] == '\'')) {
        char q = s[i];
        size_t j = i + 1;
        while (j < n && s[j] != q) j += (s[j] == '\\' && j + 1 < n) ? 2 : 1;
        return j < n ? j + 1 : n;
    }
    size_t j = i;
    while (j < n && !isspace((unsigned char)s[j]) && !(colon && (s[j] == ',' || s[j] == '}'))) j++;
    return j;
}

/* Writes the value s[v..e) redacted (quotes kept). */
static void put_mark(struct out *o, const char *s, size_t v, size_t e)
{
    int quoted = e - v >= 2 && (s[v] == '"' || s[v] == '\'') && s[e - 1] == s[v];
    if (quoted) put(o, s + v, 1);
    put(o, MARK, strlen(MARK));
    if (quoted) put(o, s + e - 1, 1);
}

/* token.csv: a long token of letters and digits, then ",user,uid" */
static int token_csv(const char *s, size_t n, size_t i, size_t j)
{
    int digit = 0, alpha = 0;
    for (size_t k = i; k < j; k++) {
        if (isdigit((unsigned char)s[k])) digit = 1;
        if (isalpha((unsigned char)s[k])) alpha = 1;
    }
    if (j - i < 16 || !digit || !alpha || j >= n || s[j] != ',') return 0;
    size_t k = j + 1, f = k;
    while (k < n && s[k] != ',' && !isspace((unsigned char)s[k])) k++;
    if (k == f || k >= n || s[k] != ',') return 0;
    k++;
    while (k < n && isspace((unsigned char)s[k])) k++;
    if (k < n && s[k] == '"') k++;
    return k < n && (isalnum((unsigned char)s[k]) || s[k] == '-');
}

/* scheme://user:password@host: returns the end of the authority written */
static size_t userinfo(struct out *o, const char *s, size_t n, size_t i)
{
    size_t a = i + 3, k = a, colon = 0, at = 0;
    while (k < n && s[k] != '/' && s[k] != '?' && s[k] != '#' && !isspace((unsigned char)s[k])) {
        if (s[k] == '@') at = k;
        else if (s[k] == ':' && !colon && !at) colon = k;
        k++;
    }
    if (!at || !colon || colon > at) {
        put(o, s + i, 3);
        return a;
    }
    put(o, s + i, colon + 1 - i);
    put(o, MARK, strlen(MARK));
    return at;
}

/* One identifier run s[i..j) just read: writes it and whatever value of it
 * is hidden; returns where scanning goes on. */
static size_t after_key(struct out *o, const char *s, size_t n, size_t i, size_t j)
{
    char quote = i > 0 && (s[i - 1] == '"' || s[i - 1] == '\'') ? s[i - 1] : 0;
    size_t k = j;
    if (quote && k < n && s[k] == quote) k++;
    else quote = 0;
    while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
    int sep = k < n && (s[k] == ':' || s[k] == '=');
    int is_auth = j - i == 13 && strncasecmp(s + i, "authorization", 13) == 0;
    if (sep && (is_auth ? s[k] == ':' : secret_key(s + i, j - i, !quote))) {
        int colon = s[k] == ':';
        size_t v = k + 1;
        while (v < n && (s[v] == ' ' || s[v] == '\t')) v++;
        if (is_auth) {
            /* keep the scheme word: "Authorization: Bearer [redacted]" */
            size_t w = v;
            while (w < n && isalpha((unsigned char)s[w])) w++;
            size_t x = w;
            while (x < n && s[x] == ' ') x++;
            if (w > v && x > w && x < n && !isspace((unsigned char)s[x])) v = x;
            colon = 0;
        }
        size_t e = value_end(s, n, v, colon);
        if (e > v && !harmless(s + v, e - v, s + i, j - i)) {
            put(o, s + i, v - i);
            put_mark(o, s, v, e);
            return e;
        }
    } else if (!sep && j - i > 2 && s[i] == '-' && s[i + 1] == '-' && k > j && k < n &&
               secret_key(s + i, j - i, 1) && s[k] != '-') {
        /* --token VALUE: a flag and its value as two arguments */
        size_t e = value_end(s, n, k, 0);
        put(o, s + i, k - i);
        put_mark(o, s, k, e);
        return e;
    }
    put(o, s + i, j - i);
    return j;
}

int kcm_redact_line(const char *s, size_t n, struct kcm_buf *res)
{
    struct out o = {{0}, 0};
    size_t i = 0;
    while (i < n && !o.oom) {
        unsigned char c = (unsigned char)s[i];
        if (n - i >= sizeof B64_PEM - 1 && memcmp(s + i, B64_PEM, sizeof B64_PEM - 1) == 0) {
            size_t j = i;
            while (j < n && b64c((unsigned char)s[j])) j++;
            if (b64_pem_private(s + i, j - i)) {
                put(&o, MARK, strlen(MARK));
            } else {
                put(&o, s + i, j - i);
            }
            i = j;
        } else if (ident(c) && (i == 0 || !ident((unsigned char)s[i - 1]))) {
            size_t j = i;
            while (j < n && ident((unsigned char)s[j])) j++;
            if (token_csv(s, n, i, j)) {
                put(&o, MARK, strlen(MARK));
                i = j;
            } else {
                i = after_key(&o, s, n, i, j);
            }
        } else if (c == ':' && n - i >= 3 && s[i + 1] == '/' && s[i + 2] == '/') {
            i = userinfo(&o, s, n, i);
        } else {
            size_t j = i + 1;
            /* copy a run of plain bytes at once */
            while (j < n && !ident((unsigned char)s[j]) && s[j] != ':') j++;
            put(&o, s + i, j - i);
            i = j;
        }
    }
    if (o.oom || kcm_buf_add(&o.b, "", 0) != 0) {
        kcm_buf_free(&o.b, 1);
        return -1;
    }
    *res = o.b;
    return 0;
}

static int l_line(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct kcm_buf b;
    if (kcm_redact_line(s, n, &b) != 0) kcm_oom(L);
    lua_pushlstring(L, b.p ? b.p : "", b.n);
    kcm_buf_free(&b, 1);
    return 1;
}

int kcm_open_redact(lua_State *L)
{
    static const luaL_Reg fns[] = { {"line", l_line}, {NULL, NULL} };
    luaL_newlib(L, fns);
    return 1;
}
