/* Native module "yaml": YAML <-> Lua on libyaml, plus base64 (kubeconfig
 * *-data fields).
 *
 *   yaml.decode(text [, name]) -> value     first and only document
 *   yaml.encode(value) -> text              block style, keys sorted
 *   yaml.null                               stands for YAML null inside tables
 *                                           (the same lightuserdata as cjson.null)
 *   yaml.array_mt                           metatable marking a table as a sequence
 *                                           (decode sets it on every sequence, so
 *                                           an empty one survives a round trip)
 *   yaml.base64_encode(s), yaml.base64_decode(s) -> s | nil, err
 *
 * Plain scalars are typed as YAML 1.1 readers (PyYAML, go-yaml v2) type
 * them: null (~, null, empty), bool (true/false/yes/no/on/off in three
 * casings), int (decimal, 0x, 0b, 0o, 0-prefixed octal, '_' separators),
 * float (1.5, .5, 1e5, .inf, .nan). No sexagesimal numbers, no merge keys.
 * Quoted scalars and !!str are strings. A top-level null decodes to nil.
 * Duplicate keys are an error, as in go-yaml. Errors read name:line:col. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <lauxlib.h>
#include "util.h"
#include "modules.h"

#define DEC_MT "kcm.yaml.decoder"
#define ENC_MT "kcm.yaml.encoder"
#define ARRAY_MT "kcm.yaml.array"
/* Bounds recursion on hostile input (and cycles on encode). */
#define MAX_DEPTH 200

/* ------------------------- scalar typing ------------------------- */

enum { S_STR, S_NULL, S_BOOL, S_INT, S_FLOAT };

typedef struct {
    int kind;
    int b;
    lua_Integer i;
    double f;
} scalar;

static int one_of(const char *s, size_t n, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == n && memcmp(*words, s, n) == 0)
            return 1;
    return 0;
}

/* Copies s without '_' into buf (NUL-terminated); 0 when too long. */
static int strip_underscores(const char *s, size_t n, char *buf, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_')
            continue;
        if (k + 1 >= cap)
            return 0;
        buf[k++] = s[i];
    }
    buf[k] = 0;
    return 1;
}

static int all_in(const char *s, size_t n, const char *set)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(set, s[i]))
            return 0;
    return 1;
}

static int resolve_int(const char *s, size_t n, scalar *out)
{
    size_t i = 0;
    int neg = 0;
    if (n && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    const char *d = s + i;
    size_t dn = n - i;
    int base;
    if (dn > 2 && d[0] == '0' && (d[1] == 'x' || d[1] == 'X') && all_in(d + 2, dn - 2, "0123456789abcdefABCDEF_")) {
        base = 16; d += 2; dn -= 2;
    } else if (dn > 2 && d[0] == '0' && d[1] == 'b' && all_in(d + 2, dn - 2, "01_")) {
        base = 2; d += 2; dn -= 2;
    } else if (dn > 2 && d[0] == '0' && d[1] == 'o' && all_in(d + 2, dn - 2, "01234567_")) {
        base = 8; d += 2; dn -= 2;
    } else if (dn > 1 && d[0] == '0' && all_in(d + 1, dn - 1, "01234567_")) {
        base = 8; d += 1; dn -= 1;
    } else if (dn >= 1 && d[0] >= '0' && d[0] <= '9' && all_in(d, dn, "0123456789_") &&
               !(dn > 1 && d[0] == '0')) {
        base = 10;
    } else {
        return 0;
    }
    char buf[80];
    if (!strip_underscores(d, dn, buf, sizeof buf) || !buf[0])
        return 0;
    errno = 0;
    unsigned long long u = strtoull(buf, NULL, base);
    if (errno == 0 && u <= (unsigned long long)LUA_MAXINTEGER + (unsigned long long)neg) {
        out->kind = S_INT;
        out->i = neg ? (lua_Integer)(0 - u) : (lua_Integer)u;
        return 1;
    }
    /* Out of range: as a float, like most YAML readers do. */
    double v = 0;
    for (const char *c = buf; *c; c++) {
        int dv = *c <= '9' ? *c - '0' : (*c | 0x20) - 'a' + 10;
        v = v * base + dv;
    }
    out->kind = S_FLOAT;
    out->f = neg ? -v : v;
    return 1;
}

static int resolve_float(const char *s, size_t n, scalar *out)
{
    static const char *const inf[] = {".inf", ".Inf", ".INF", NULL};
    static const char *const nan_[] = {".nan", ".NaN", ".NAN", NULL};
    size_t i = 0;
    int neg = 0;
    if (n && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (one_of(s + i, n - i, inf)) {
        out->kind = S_FLOAT;
        out->f = neg ? -HUGE_VAL : HUGE_VAL;
        return 1;
    }
    if (one_of(s, n, nan_)) {
        out->kind = S_FLOAT;
        out->f = NAN;
        return 1;
    }
    /* [-+]? ( \.[0-9_]+ | [0-9][0-9_]* (\.[0-9_]*)? ) ([eE][-+]?[0-9]+)?  with a '.' or an exponent */
    size_t j = i, digits = 0;
    int dot = 0, exp = 0;
    while (j < n && ((s[j] >= '0' && s[j] <= '9') || (s[j] == '_' && digits))) {
        digits += s[j] != '_';
        j++;
    }
    if (j < n && s[j] == '.') {
        dot = 1;
        j++;
        while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_')) {
            digits += s[j] != '_';
            j++;
        }
    }
    if (!digits)
        return 0;
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        exp = 1;
        j++;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        size_t e0 = j;
        while (j < n && s[j] >= '0' && s[j] <= '9')
            j++;
        if (j == e0)
            return 0;
    }
    if (j != n || (!dot && !exp))
        return 0;
    char buf[400];
    if (!strip_underscores(s, n, buf, sizeof buf))
        return 0;
    out->kind = S_FLOAT;
    out->f = strtod(buf, NULL);
    return 1;
}

static void resolve_plain(const char *s, size_t n, scalar *out)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};
    memset(out, 0, sizeof *out);
    out->kind = S_STR;
    if (n > 400)
        return;
    if (one_of(s, n, nulls))
        out->kind = S_NULL;
    else if (one_of(s, n, trues))
        out->kind = S_BOOL, out->b = 1;
    else if (one_of(s, n, falses))
        out->kind = S_BOOL, out->b = 0;
    else if (!resolve_int(s, n, out) && !resolve_float(s, n, out))
        out->kind = S_STR;
}

/* ------------------------------ decode ------------------------------ */

typedef struct {
    yaml_parser_t parser;
    yaml_event_t ev;
    int parser_ok, has_ev;
    const char *name;
    int anchors;        /* stack index of the anchor table */
} decoder;

static int dec_gc(lua_State *L)
{
    decoder *d = luaL_checkudata(L, 1, DEC_MT);
    if (d->has_ev)
        yaml_event_delete(&d->ev);
    if (d->parser_ok)
        yaml_parser_delete(&d->parser);
    d->has_ev = d->parser_ok = 0;
    return 0;
}

static int __attribute__((noreturn, format(printf, 4, 5)))
dec_error(lua_State *L, decoder *d, yaml_mark_t mark, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* lua_error, not luaL_error: the position is the YAML's, not the caller's */
    lua_pushfstring(L, "%s:%d:%d: %s", d->name, (int)mark.line + 1, (int)mark.column + 1, msg);
    lua_error(L);
    abort();
}

static void next_event(lua_State *L, decoder *d)
{
    if (d->has_ev) {
        yaml_event_delete(&d->ev);
        d->has_ev = 0;
    }
    if (!yaml_parser_parse(&d->parser, &d->ev)) {
        const char *problem = d->parser.problem ? d->parser.problem : "invalid YAML";
        if (d->parser.context)
            dec_error(L, d, d->parser.problem_mark, "%s %s (line %d)", problem, d->parser.context,
                      (int)d->parser.context_mark.line + 1);
        dec_error(L, d, d->parser.problem_mark, "%s", problem);
    }
    d->has_ev = 1;
}

static void push_scalar(lua_State *L, decoder *d)
{
    yaml_event_t *ev = &d->ev;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    scalar sc;
    if (tag && strcmp(tag, "!") != 0) {
        const char *p = "tag:yaml.org,2002:";
        memset(&sc, 0, sizeof sc);
        sc.kind = S_STR;
        if (strncmp(tag, p, strlen(p)) == 0 && strcmp(tag + strlen(p), "str") != 0) {
            const char *want = tag + strlen(p);
            resolve_plain(s, n, &sc);
            int ok = (strcmp(want, "null") == 0 && sc.kind == S_NULL) ||
                     (strcmp(want, "bool") == 0 && sc.kind == S_BOOL) ||
                     (strcmp(want, "int") == 0 && sc.kind == S_INT) ||
                     (strcmp(want, "float") == 0 && (sc.kind == S_FLOAT || sc.kind == S_INT));
            if (strcmp(want, "float") == 0 && sc.kind == S_INT) {
                sc.kind = S_FLOAT;
                sc.f = (double)sc.i;
            }
            if (!ok && (strcmp(want, "null") == 0 || strcmp(want, "bool") == 0 ||
                        strcmp(want, "int") == 0 || strcmp(want, "float") == 0))
                dec_error(L, d, ev->start_mark, "value is not a valid !!%s", want);
            if (!ok)
                sc.kind = S_STR; /* other tags (!!binary, !custom): the text as is */
        }
    } else if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag) {
        resolve_plain(s, n, &sc);
    } else {
        sc.kind = S_STR;
    }
    switch (sc.kind) {
    case S_NULL: lua_pushlightuserdata(L, NULL); break;
    case S_BOOL: lua_pushboolean(L, sc.b); break;
    case S_INT: lua_pushinteger(L, sc.i); break;
    case S_FLOAT: lua_pushnumber(L, sc.f); break;
    default: lua_pushlstring(L, s, n); break;
    }
}

/* Value on top, anchor name (or nil) below it. A collection's anchor is
 * recorded only once the collection is complete, so an alias inside its own
 * anchor is an unknown anchor rather than a cycle (go-yaml refuses it too). */
static void remember_anchor(lua_State *L, decoder *d)
{
    if (lua_isnil(L, -2)) {
        lua_remove(L, -2);
        return;
    }
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_rawset(L, d->anchors);
    lua_remove(L, -2);
}

static void push_anchor(lua_State *L, const yaml_char_t *anchor)
{
    if (anchor)
        lua_pushstring(L, (const char *)anchor);
    else
        lua_pushnil(L);
}

/* Pushes the node starting at the current event. */
static void parse_node(lua_State *L, decoder *d, int depth)
{
    yaml_event_t *ev = &d->ev;
    if (depth > MAX_DEPTH)
        dec_error(L, d, ev->start_mark, "nested deeper than %d levels", MAX_DEPTH);
    luaL_checkstack(L, 8, "yaml.decode");
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        push_anchor(L, ev->data.scalar.anchor);
        push_scalar(L, d);
        remember_anchor(L, d);
        return;
    case YAML_ALIAS_EVENT:
        lua_pushstring(L, (const char *)ev->data.alias.anchor);
        if (lua_rawget(L, d->anchors) == LUA_TNIL)
            dec_error(L, d, ev->start_mark, "unknown anchor '%.60s'", (const char *)ev->data.alias.anchor);
        return;
    case YAML_SEQUENCE_START_EVENT: {
        push_anchor(L, ev->data.sequence_start.anchor);
        lua_newtable(L);
        luaL_setmetatable(L, ARRAY_MT);
        int t = lua_gettop(L);
        lua_Integer i = 0;
        for (;;) {
            next_event(L, d);
            if (ev->type == YAML_SEQUENCE_END_EVENT) {
                remember_anchor(L, d);
                return;
            }
            parse_node(L, d, depth + 1);
            lua_rawseti(L, t, ++i);
        }
    }
    case YAML_MAPPING_START_EVENT: {
        push_anchor(L, ev->data.mapping_start.anchor);
        lua_newtable(L);
        int t = lua_gettop(L);
        for (;;) {
            next_event(L, d);
            if (ev->type == YAML_MAPPING_END_EVENT) {
                remember_anchor(L, d);
                return;
            }
            yaml_mark_t key_mark = ev->start_mark;
            if (ev->type != YAML_SCALAR_EVENT && ev->type != YAML_ALIAS_EVENT)
                dec_error(L, d, key_mark, "only scalar mapping keys are supported");
            parse_node(L, d, depth + 1);
            int kt = lua_type(L, -1);
            if (kt == LUA_TLIGHTUSERDATA)
                dec_error(L, d, key_mark, "null mapping key");
            if (kt == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))
                dec_error(L, d, key_mark, "NaN mapping key");
            if (kt == LUA_TTABLE)
                dec_error(L, d, key_mark, "only scalar mapping keys are supported");
            lua_pushvalue(L, -1);
            if (lua_rawget(L, t) != LUA_TNIL) {
                lua_pop(L, 1);
                size_t kl = 0;
                const char *ks = kt == LUA_TSTRING ? lua_tolstring(L, -1, &kl) : "(non-string)";
                dec_error(L, d, key_mark, "duplicate key '%.*s'", (int)(kl > 60 ? 60 : kl ? kl : 12), ks);
            }
            lua_pop(L, 1);
            next_event(L, d);
            parse_node(L, d, depth + 1);
            lua_rawset(L, t);
        }
    }
    default:
        dec_error(L, d, ev->start_mark, "unexpected YAML event %d", (int)ev->type);
    }
}

/* decode(text [, name]) -> value (nil for an empty or null document) */
static int l_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "yaml");
    lua_settop(L, 2);
    decoder *d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, DEC_MT);
    d->name = name;
    if (!yaml_parser_initialize(&d->parser))
        kcm_oom(L);
    d->parser_ok = 1;
    yaml_parser_set_input_string(&d->parser, (const unsigned char *)text, len);
    lua_newtable(L);
    d->anchors = lua_gettop(L);
    next_event(L, d); /* STREAM-START */
    next_event(L, d);
    if (d->ev.type == YAML_STREAM_END_EVENT) {
        lua_pushnil(L);
        return 1;
    }
    next_event(L, d); /* past DOCUMENT-START */
    parse_node(L, d, 0);
    next_event(L, d); /* DOCUMENT-END */
    next_event(L, d);
    if (d->ev.type != YAML_STREAM_END_EVENT)
        dec_error(L, d, d->ev.start_mark, "more than one YAML document");
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA)
        lua_pushnil(L);
    /* free libyaml's state now rather than at the next GC cycle */
    lua_pushcfunction(L, dec_gc);
    lua_pushvalue(L, 3);
    lua_call(L, 1, 0);
    return 1;
}

/* ------------------------------ encode ------------------------------ */

typedef struct {
    yaml_emitter_t em;
    int em_ok;
    char *buf;
    size_t len, cap;
    int too_big;
    char path[256];     /* where we are, for messages */
} encoder;

static int enc_gc(lua_State *L)
{
    encoder *e = luaL_checkudata(L, 1, ENC_MT);
    if (e->em_ok)
        yaml_emitter_delete(&e->em);
    e->em_ok = 0;
    free(e->buf);
    e->buf = NULL;
    return 0;
}

/* Aliases make a small document a huge tree (billion laughs); encoding
 * expands them, so the output is capped. */
#define ENC_MAX ((size_t)64 << 20)

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
    encoder *e = data;
    if (size == 0)
        return 1;
    if (size > ENC_MAX - e->len) {
        e->too_big = 1;
        return 0;
    }
    if (e->len + size > e->cap) {
        size_t cap = e->cap ? e->cap : 4096;
        while (cap < e->len + size)
            cap *= 2;
        char *b = realloc(e->buf, cap);
        if (!b)
            return 0;
        e->buf = b;
        e->cap = cap;
    }
    memcpy(e->buf + e->len, buffer, size);
    e->len += size;
    return 1;
}

static void __attribute__((noreturn)) enc_error(lua_State *L, encoder *e, const char *msg)
{
    lua_pushfstring(L, "yaml.encode: %s%s%s", e->path[0] ? e->path : "", e->path[0] ? ": " : "", msg);
    lua_error(L);
    abort();
}

static void emit(lua_State *L, encoder *e, yaml_event_t *ev)
{
    if (!yaml_emitter_emit(&e->em, ev))
        enc_error(L, e, e->too_big ? "output larger than 64 MiB"
                        : e->em.problem ? e->em.problem : "libyaml emitter failed");
}

static void emit_scalar(lua_State *L, encoder *e, const char *s, size_t n, int plain_ok, int literal)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, plain_ok, 1,
                                      literal ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE))
        kcm_oom(L);
    emit(L, e, &ev);
}

static void emit_number(lua_State *L, encoder *e, int idx)
{
    char buf[64];
    if (lua_isinteger(L, idx)) {
        snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    } else {
        double v = lua_tonumber(L, idx);
        if (isnan(v))
            strcpy(buf, ".nan");
        else if (isinf(v))
            strcpy(buf, v > 0 ? ".inf" : "-.inf");
        else {
            snprintf(buf, sizeof buf, "%.15g", v);
            if (strtod(buf, NULL) != v)
                snprintf(buf, sizeof buf, "%.17g", v);
            /* keep it a float when read back: 3 -> 3.0, 1e+20 -> 1.0e+20 */
            if (!strpbrk(buf, ".")) {
                char *ex = strpbrk(buf, "e");
                char tail[32] = "";
                if (ex) {
                    snprintf(tail, sizeof tail, "%s", ex);
                    *ex = 0;
                }
                size_t l = strlen(buf);
                snprintf(buf + l, sizeof buf - l, ".0%s", tail);
            }
        }
    }
    emit_scalar(L, e, buf, strlen(buf), 1, 0);
}

static void emit_string(lua_State *L, encoder *e, int idx, int is_key)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    scalar sc;
    resolve_plain(s, n, &sc);
    /* Quote whatever a reader would not read back as this same string. */
    int plain_ok = sc.kind == S_STR;
    int literal = !is_key && memchr(s, '\n', n) != NULL;
    emit_scalar(L, e, s, n, plain_ok, literal);
}

/* Sequence when marked with array_mt, or when its keys are exactly 1..n. */
static int is_sequence(lua_State *L, int idx, lua_Integer *count)
{
    lua_Integer n = 0, max = 0;
    int only_ints = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            if (lua_tointeger(L, -1) > max)
                max = lua_tointeger(L, -1);
        } else {
            only_ints = 0;
        }
    }
    *count = n;
    if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, ARRAY_MT);
        int marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (marked) {
            if (!only_ints || max != n)
                return -1;
            return 1;
        }
    }
    return n > 0 && only_ints && max == n;
}

static void emit_value(lua_State *L, encoder *e, int idx, int depth);

static size_t path_push(encoder *e, lua_State *L, int key_idx)
{
    size_t old = strlen(e->path);
    size_t room = sizeof e->path - old;
    if (lua_type(L, key_idx) == LUA_TSTRING)
        snprintf(e->path + old, room, "%s%.60s", old ? "." : "", lua_tostring(L, key_idx));
    else if (lua_isinteger(L, key_idx))
        snprintf(e->path + old, room, "%s%lld", old ? "." : "", (long long)lua_tointeger(L, key_idx));
    else
        snprintf(e->path + old, room, "%s?", old ? "." : "");
    return old;
}

static void emit_table(lua_State *L, encoder *e, int idx, int depth)
{
    yaml_event_t ev;
    lua_Integer n;
    int seq = is_sequence(L, idx, &n);
    if (seq < 0)
        enc_error(L, e, "table marked as an array has non-sequence keys");
    if (seq) {
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE))
            kcm_oom(L);
        emit(L, e, &ev);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_pushinteger(L, i);
            size_t old = path_push(e, L, -1);
            lua_pop(L, 1);
            lua_rawgeti(L, idx, i);
            emit_value(L, e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            e->path[old] = 0;
        }
        yaml_sequence_end_event_initialize(&ev);
        emit(L, e, &ev);
        return;
    }
    /* mapping: sorted keys, so equal tables give equal text */
    lua_createtable(L, (int)n, 0);
    int keys = lua_gettop(L);
    lua_Integer k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (kcm_key_rank(L, -1) == 2)
            enc_error(L, e, "mapping keys must be strings or numbers");
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++k);
    }
    for (lua_Integer i = 2; i <= k; i++) {
        lua_rawgeti(L, keys, i);
        lua_Integer j = i - 1;
        for (; j >= 1; j--) {
            lua_rawgeti(L, keys, j);
            if (!kcm_key_less(L, -2, -1)) {
                lua_pop(L, 1);
                break;
            }
            lua_rawseti(L, keys, j + 1);
        }
        lua_rawseti(L, keys, j + 1);
    }
    if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE))
        kcm_oom(L);
    emit(L, e, &ev);
    for (lua_Integer i = 1; i <= k; i++) {
        lua_rawgeti(L, keys, i);
        int key = lua_gettop(L);
        size_t old = path_push(e, L, key);
        if (lua_type(L, key) == LUA_TNUMBER)
            emit_number(L, e, key);
        else
            emit_string(L, e, key, 1);
        lua_pushvalue(L, key);
        lua_rawget(L, idx);
        emit_value(L, e, lua_gettop(L), depth + 1);
        lua_pop(L, 2);
        e->path[old] = 0;
    }
    lua_pop(L, 1);
    yaml_mapping_end_event_initialize(&ev);
    emit(L, e, &ev);
}

static void emit_value(lua_State *L, encoder *e, int idx, int depth)
{
    if (depth > MAX_DEPTH)
        enc_error(L, e, "nested too deeply (a table that contains itself?)");
    luaL_checkstack(L, 8, "yaml.encode");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        emit_scalar(L, e, "null", 4, 1, 0);
        return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            emit_scalar(L, e, "null", 4, 1, 0);
            return;
        }
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            emit_scalar(L, e, "true", 4, 1, 0);
        else
            emit_scalar(L, e, "false", 5, 1, 0);
        return;
    case LUA_TNUMBER: emit_number(L, e, idx); return;
    case LUA_TSTRING: emit_string(L, e, idx, 0); return;
    case LUA_TTABLE: emit_table(L, e, idx, depth); return;
    default: break;
    }
    char msg[64];
    snprintf(msg, sizeof msg, "cannot encode a %s", luaL_typename(L, idx));
    enc_error(L, e, msg);
}

/* encode(value) -> YAML text */
static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    encoder *e = lua_newuserdatauv(L, sizeof *e, 0);
    memset(e, 0, sizeof *e);
    luaL_setmetatable(L, ENC_MT);
    if (!yaml_emitter_initialize(&e->em))
        kcm_oom(L);
    e->em_ok = 1;
    yaml_emitter_set_output(&e->em, write_handler, e);
    yaml_emitter_set_unicode(&e->em, 1);
    yaml_emitter_set_width(&e->em, -1);
    yaml_emitter_set_indent(&e->em, 2);
    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    emit(L, e, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    emit(L, e, &ev);
    emit_value(L, e, 1, 0);
    yaml_document_end_event_initialize(&ev, 1);
    emit(L, e, &ev);
    yaml_stream_end_event_initialize(&ev);
    emit(L, e, &ev);
    if (!yaml_emitter_flush(&e->em))
        enc_error(L, e, e->too_big ? "output larger than 64 MiB" : "flush failed");
    lua_pushlstring(L, e->buf ? e->buf : "", e->len);
    lua_pushcfunction(L, enc_gc);
    lua_pushvalue(L, 2);
    lua_call(L, 1, 0);
    return 1;
}

/* ------------------------------ base64 ------------------------------ */

static int l_b64encode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    char *out = kcm_b64_encode(s, n, 1);
    if (!out)
        kcm_oom(L);
    lua_pushstring(L, out);
    free(out);
    return 1;
}

/* Standard alphabet, padding required; CR/LF ignored (as Go's decoder does). */
static int l_b64decode(lua_State *L)
{
    size_t n, len;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char *out = kcm_b64_decode(s, n, &len);
    if (!out) {
        if (errno == ENOMEM)
            kcm_oom(L);
        return kcm_fail(L, "error", "invalid base64: a character outside the standard alphabet, or truncated, "
                                   "or bad padding");
    }
    lua_pushlstring(L, (const char *)out, len);
    free(out);
    return 1;
}

int kcm_open_yaml(lua_State *L)
{
    if (luaL_newmetatable(L, DEC_MT)) {
        lua_pushcfunction(L, dec_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, ENC_MT)) {
        lua_pushcfunction(L, enc_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {
        {"decode", l_decode},
        {"encode", l_encode},
        {"base64_encode", l_b64encode},
        {"base64_decode", l_b64decode},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    luaL_newmetatable(L, ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    return 1;
}
