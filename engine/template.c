/* Native module "template": compile once (template_parse.c), render per node.
 *
 *   local t = require "kcm.native.template"
 *   local tpl = t.compile(text, "kube-controller-manager.service.in")
 *   local out = tpl:render{ K8S_DIR = "/data/k8s/k8s", SERVICE_CIDR = "10.254.0.0/16" }
 *
 * Rendering is strict: an undefined variable, indexing a non-table, looping
 * over a non-table or substituting a table is an error naming file:line:col.
 * Variables are looked up with ordinary Lua indexing on the vars table, so a
 * caller can layer node vars over global vars with an __index metatable; the
 * template text itself can never call anything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "util.h"
#include "modules.h"
#include "template_ast.h"

#define TPL_MT "kcm.template"
#define OUT_MT "kcm.template.out"
/* A runaway loop nest fails instead of eating the machine. */
#define OUT_MAX ((size_t)256 << 20)
/* Nested loops multiply; a render that visits more nodes than this is a
 * runaway template, not a config file. */
#define STEP_MAX 20000000L

typedef struct {
    char *b;
    size_t len, cap;
} outbuf;

typedef struct {
    const char *name;
    size_t len;
    int idx;            /* stack index of the bound value */
} binding;

typedef struct {
    lua_Integer i, n;
} loopstate;

typedef struct {
    lua_State *L;
    const kcm_tpl *t;
    outbuf *out;
    int vars;
    binding scope[2 * KCM_TPL_MAX_DEPTH + 2];
    int nscope;
    loopstate loops[KCM_TPL_MAX_DEPTH + 1];
    int nloops;
    long steps;
} render;

static void put(render *r, const char *s, size_t n)
{
    outbuf *o = r->out;
    if (n == 0) /* o->b may still be NULL: no pointer arithmetic on it */
        return;
    if (n > OUT_MAX - o->len)
        luaL_error(r->L, "%s: rendered output larger than %d MiB", r->t->name, (int)(OUT_MAX >> 20));
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n)
            cap *= 2;
        char *b = realloc(o->b, cap);
        if (!b)
            kcm_oom(r->L);
        o->b = b;
        o->cap = cap;
    }
    memcpy(o->b + o->len, s, n);
    o->len += n;
}

static const char *type_name(lua_State *L, int idx)
{
    return lua_typename(L, lua_type(L, idx));
}

static int clip(size_t n) { return n > 60 ? 60 : (int)n; }

/* Pushes the value of path and returns 1, or returns 0 (nothing pushed)
 * when some segment is nil. Indexing a non-table is an error. */
static int resolve(render *r, const kcm_tpl_path *pa, int line, int col)
{
    lua_State *L = r->L;
    const kcm_tpl_seg *s0 = &pa->seg[0];
    lua_checkstack(L, 4);
    int i;
    for (i = r->nscope - 1; i >= 0; i--)
        if (r->scope[i].len == s0->len && memcmp(r->scope[i].name, s0->s, s0->len) == 0)
            break;
    if (i >= 0) {
        lua_pushvalue(L, r->scope[i].idx);
    } else if (r->nloops > 0 && s0->len == 4 && memcmp(s0->s, "loop", 4) == 0) {
        const loopstate *ls = &r->loops[r->nloops - 1];
        const kcm_tpl_seg *f = pa->nseg == 2 ? &pa->seg[1] : NULL;
#define IS(w) (f && f->len == sizeof(w) - 1 && memcmp(f->s, w, f->len) == 0)
        if (IS("index"))
            lua_pushinteger(L, ls->i);
        else if (IS("index0"))
            lua_pushinteger(L, ls->i - 1);
        else if (IS("first"))
            lua_pushboolean(L, ls->i == 1);
        else if (IS("last"))
            lua_pushboolean(L, ls->i == ls->n);
        else if (IS("length"))
            lua_pushinteger(L, ls->n);
        else
            kcm_tpl_error(L, r->t, line, col, "'%.*s': loop has only index, index0, first, last and length",
                          clip(pa->text_len), pa->text);
#undef IS
        return 1;
    } else {
        lua_pushlstring(L, s0->s, s0->len);
        lua_gettable(L, r->vars);
    }
    for (int k = 1;; k++) {
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            return 0;
        }
        if (k == pa->nseg)
            return 1;
        if (!lua_istable(L, -1))
            kcm_tpl_error(L, r->t, line, col, "'%.*s': '%.*s' is a %s, not a table",
                          clip(pa->text_len), pa->text,
                          clip((size_t)(pa->seg[k - 1].s + pa->seg[k - 1].len - pa->text)), pa->text,
                          type_name(L, -1));
        const kcm_tpl_seg *sg = &pa->seg[k];
        if (sg->is_index) {
            lua_geti(L, -1, sg->index);
        } else {
            lua_pushlstring(L, sg->s, sg->len);
            lua_gettable(L, -2);
        }
        lua_remove(L, -2);
    }
}

static void resolve_strict(render *r, const kcm_tpl_path *pa, int line, int col)
{
    if (!resolve(r, pa, line, col))
        kcm_tpl_error(r->L, r->t, line, col, "undefined variable '%.*s'", clip(pa->text_len), pa->text);
}

/* Template truth: nil, false, "" and {} are false; everything else is true
 * (0 too, as in Lua). Empty strings and tables being false lets optional
 * flags and lists be tested with a plain {% if %}. */
static int truthy(lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return 0;
    case LUA_TBOOLEAN: return lua_toboolean(L, idx);
    case LUA_TSTRING: return lua_rawlen(L, idx) > 0;
    case LUA_TTABLE: {
        lua_pushnil(L);
        if (lua_next(L, idx < 0 ? idx - 1 : idx)) {
            lua_pop(L, 2);
            return 1;
        }
        return 0;
    }
    default: return 1;
    }
}

static int str_cmp(lua_State *L, int a, int b)
{
    size_t la, lb;
    const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
    int c = memcmp(sa, sb, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

/* Pushes the value of e. */
static void eval(render *r, const kcm_tpl_expr *e)
{
    lua_State *L = r->L;
    lua_checkstack(L, 6);
    switch (e->kind) {
    case KCM_E_PATH: resolve_strict(r, e->path, e->line, e->col); return;
    case KCM_E_DEFINED: {
        int found = resolve(r, e->path, e->line, e->col);
        if (found)
            lua_pop(L, 1);
        lua_pushboolean(L, found);
        return;
    }
    case KCM_E_STR: lua_pushlstring(L, e->s, e->len); return;
    case KCM_E_NUM:
        if (e->num_is_int)
            lua_pushinteger(L, e->inum);
        else
            lua_pushnumber(L, e->num);
        return;
    case KCM_E_TRUE: lua_pushboolean(L, 1); return;
    case KCM_E_FALSE: lua_pushboolean(L, 0); return;
    case KCM_E_NIL: lua_pushnil(L); return;
    case KCM_E_NOT: {
        eval(r, e->a);
        int v = truthy(L, -1);
        lua_pop(L, 1);
        lua_pushboolean(L, !v);
        return;
    }
    case KCM_E_AND:
    case KCM_E_OR: {
        eval(r, e->a);
        int v = truthy(L, -1);
        lua_pop(L, 1);
        if (v == (e->kind == KCM_E_AND)) {
            eval(r, e->b);
            v = truthy(L, -1);
            lua_pop(L, 1);
        }
        lua_pushboolean(L, v);
        return;
    }
    default: break;
    }
    /* comparisons */
    eval(r, e->a);
    eval(r, e->b);
    int res;
    if (e->kind == KCM_E_EQ || e->kind == KCM_E_NE) {
        res = lua_rawequal(L, -2, -1) == (e->kind == KCM_E_EQ);
    } else {
        int c;
        if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TNUMBER)
            c = lua_compare(L, -2, -1, LUA_OPLT) ? -1 : lua_compare(L, -1, -2, LUA_OPLT) ? 1 : 0;
        else if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING)
            c = str_cmp(L, -2, -1);
        else
            kcm_tpl_error(L, r->t, e->line, e->col, "cannot order a %s and a %s",
                          type_name(L, -2), type_name(L, -1));
        res = e->kind == KCM_E_LT ? c < 0 : e->kind == KCM_E_LE ? c <= 0
            : e->kind == KCM_E_GT ? c > 0 : c >= 0;
    }
    lua_pop(L, 2);
    lua_pushboolean(L, res);
}

static void put_value(render *r, const kcm_tpl_node *n)
{
    lua_State *L = r->L;
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        put(r, s, len);
        break;
    }
    case LUA_TNUMBER: {
        /* Lua's own formatting (3 -> "3", 0.5 -> "0.5"), on a copy. */
        lua_pushvalue(L, -1);
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        put(r, s, len);
        lua_pop(L, 1);
        break;
    }
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, -1))
            put(r, "true", 4);
        else
            put(r, "false", 5);
        break;
    default:
        kcm_tpl_error(L, r->t, n->line, n->col,
                      "'%.*s' is a %s: only strings, numbers and booleans can be substituted",
                      clip(n->path->text_len), n->path->text, type_name(L, -1));
    }
}

/* Pushes an array of the keys of the table at idx, sorted; returns its length. */
static lua_Integer sorted_keys(lua_State *L, int idx)
{
    lua_newtable(L);
    int keys = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++n);
    }
    /* insertion sort: the tables a template walks are small */
    for (lua_Integer i = 2; i <= n; i++) {
        lua_rawgeti(L, keys, i);
        lua_Integer j = i - 1;
        for (; j >= 1; j--) {
            lua_rawgeti(L, keys, j);
            int less = kcm_key_less(L, -2, -1);
            if (!less) {
                lua_pop(L, 1);
                break;
            }
            lua_rawseti(L, keys, j + 1);
        }
        lua_rawseti(L, keys, j + 1);
    }
    return n;
}

static void render_list(render *r, const kcm_tpl_node *n);

static void bind(render *r, const char *name, size_t len, int idx)
{
    binding *b = &r->scope[r->nscope++];
    b->name = name;
    b->len = len;
    b->idx = idx;
}

static void render_for(render *r, const kcm_tpl_node *n)
{
    lua_State *L = r->L;
    lua_checkstack(L, 8);
    resolve_strict(r, n->path, n->line, n->col);
    int list = lua_gettop(L);
    if (!lua_istable(L, list))
        kcm_tpl_error(L, r->t, n->line, n->col, "cannot loop over '%.*s': it is a %s, not a table",
                      clip(n->path->text_len), n->path->text, type_name(L, list));
    loopstate *ls = &r->loops[r->nloops++];
    if (!n->key) {
        lua_Integer len = (lua_Integer)lua_rawlen(L, list);
        if (len == 0) {
            lua_pushnil(L);
            if (lua_next(L, list))
                kcm_tpl_error(L, r->t, n->line, n->col,
                              "'%.*s' is a table with keys, not a list: use {%% for k, v in %.*s %%}",
                              clip(n->path->text_len), n->path->text,
                              clip(n->path->text_len), n->path->text);
        }
        ls->n = len;
        for (lua_Integer i = 1; i <= len; i++) {
            ls->i = i;
            lua_geti(L, list, i);
            bind(r, n->val, n->val_len, lua_gettop(L));
            render_list(r, n->body);
            r->nscope--;
            lua_pop(L, 1);
        }
    } else {
        lua_Integer len = sorted_keys(L, list);
        int keys = lua_gettop(L);
        ls->n = len;
        for (lua_Integer i = 1; i <= len; i++) {
            ls->i = i;
            lua_rawgeti(L, keys, i);
            lua_pushvalue(L, -1);
            lua_gettable(L, list);
            bind(r, n->key, n->key_len, lua_gettop(L) - 1);
            bind(r, n->val, n->val_len, lua_gettop(L));
            render_list(r, n->body);
            r->nscope -= 2;
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
    r->nloops--;
    lua_pop(L, 1);
}

static void render_list(render *r, const kcm_tpl_node *n)
{
    lua_State *L = r->L;
    for (; n; n = n->next) {
        if (++r->steps > STEP_MAX)
            kcm_tpl_error(L, r->t, n->line, n->col, "rendering takes more than %ld steps (runaway loops?)",
                          STEP_MAX);
        switch (n->kind) {
        case KCM_N_TEXT:
            put(r, n->text, n->len);
            break;
        case KCM_N_VAR:
            if (n->has_default) {
                if (!resolve(r, n->path, n->line, n->col)) {
                    put(r, n->def, n->def_len);
                    break;
                }
                if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) == 0) {
                    lua_pop(L, 1);
                    put(r, n->def, n->def_len);
                    break;
                }
            } else {
                resolve_strict(r, n->path, n->line, n->col);
            }
            put_value(r, n);
            lua_pop(L, 1);
            break;
        case KCM_N_IF: {
            const kcm_tpl_branch *b;
            for (b = n->branches; b; b = b->next) {
                eval(r, b->cond);
                int v = truthy(L, -1);
                lua_pop(L, 1);
                if (v) {
                    render_list(r, b->body);
                    break;
                }
            }
            if (!b)
                render_list(r, n->otherwise);
            break;
        }
        case KCM_N_FOR:
            render_for(r, n);
            break;
        }
    }
}

/* ------------------------------ Lua API ------------------------------ */

static kcm_tpl *check_tpl(lua_State *L, int idx)
{
    kcm_tpl *t = luaL_checkudata(L, idx, TPL_MT);
    if (!t->name)
        luaL_error(L, "template: use of a released template");
    return t;
}

static int out_gc(lua_State *L)
{
    outbuf *o = luaL_checkudata(L, 1, OUT_MT);
    free(o->b);
    o->b = NULL;
    return 0;
}

/* tpl:render(vars) -> string */
static int tpl_render(lua_State *L)
{
    kcm_tpl *t = check_tpl(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    /* The buffer is a userdata so a render error cannot leak it. */
    outbuf *o = lua_newuserdatauv(L, sizeof *o, 0);
    memset(o, 0, sizeof *o);
    luaL_setmetatable(L, OUT_MT);
    render r;
    memset(&r, 0, sizeof r);
    r.L = L;
    r.t = t;
    r.out = o;
    r.vars = 2;
    render_list(&r, t->root);
    lua_pushlstring(L, o->b ? o->b : "", o->len);
    free(o->b);
    o->b = NULL;
    return 1;
}

static int tpl_name(lua_State *L)
{
    lua_pushstring(L, check_tpl(L, 1)->name);
    return 1;
}

static int tpl_gc(lua_State *L)
{
    kcm_tpl_release(luaL_checkudata(L, 1, TPL_MT));
    return 0;
}

static int tpl_tostring(lua_State *L)
{
    kcm_tpl *t = luaL_checkudata(L, 1, TPL_MT);
    lua_pushfstring(L, "template: %s", t->name ? t->name : "(released)");
    return 1;
}

/* compile(text [, name]) -> tpl; raises "name:line:col: ..." on bad syntax */
static int l_compile(lua_State *L)
{
    size_t len;
    const char *src = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "template");
    kcm_tpl *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    luaL_setmetatable(L, TPL_MT);
    t->name = strdup(name);
    if (!t->name)
        kcm_oom(L);
    kcm_tpl_parse(L, t, src, len);
    return 1;
}

/* render(text, vars [, name]) -> string: compile and render in one go. */
static int l_render(lua_State *L)
{
    lua_settop(L, 3);
    lua_pushcfunction(L, l_compile);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 1);
    lua_replace(L, 1);
    lua_settop(L, 2);
    return tpl_render(L);
}

int kcm_open_template(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"render", tpl_render},
        {"name", tpl_name},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, TPL_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, tpl_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, tpl_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, OUT_MT)) {
        lua_pushcfunction(L, out_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {
        {"compile", l_compile},
        {"render", l_render},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
