/* Private to the template module: the compiled form of a template.
 *
 * A template is parsed once into this tree (template_parse.c) and rendered
 * many times (template.c). Everything lives in one arena owned by the
 * template's userdata, so a parse error part-way just leaves the arena to
 * __gc. Text nodes point into the arena's copy of the source. */
#ifndef KCM_TEMPLATE_AST_H
#define KCM_TEMPLATE_AST_H

#include <stddef.h>
#include <lua.h>

/* Bounds C recursion (blocks inside blocks, parentheses inside parentheses)
 * so no template, however hostile, can exhaust the C stack. */
#define KCM_TPL_MAX_DEPTH 64

typedef struct kcm_tpl_blk kcm_tpl_blk;

typedef struct {
    const char *s;      /* segment text (not NUL-terminated) */
    size_t len;
    int is_index;       /* all digits: indexes an array (a.1.b) */
    lua_Integer index;
} kcm_tpl_seg;

typedef struct {
    const char *text;   /* whole dotted path as written, for messages */
    size_t text_len;
    int nseg;
    kcm_tpl_seg seg[];
} kcm_tpl_path;

enum kcm_tpl_expr_kind {
    KCM_E_PATH, KCM_E_STR, KCM_E_NUM, KCM_E_TRUE, KCM_E_FALSE, KCM_E_NIL,
    KCM_E_NOT, KCM_E_AND, KCM_E_OR, KCM_E_DEFINED,
    KCM_E_EQ, KCM_E_NE, KCM_E_LT, KCM_E_LE, KCM_E_GT, KCM_E_GE,
};

typedef struct kcm_tpl_expr {
    int kind;
    int line, col;
    struct kcm_tpl_expr *a, *b;
    kcm_tpl_path *path;     /* KCM_E_PATH, KCM_E_DEFINED */
    const char *s;          /* KCM_E_STR */
    size_t len;
    lua_Number num;         /* KCM_E_NUM */
    int num_is_int;
    lua_Integer inum;
} kcm_tpl_expr;

enum kcm_tpl_node_kind { KCM_N_TEXT, KCM_N_VAR, KCM_N_IF, KCM_N_FOR };

typedef struct kcm_tpl_node kcm_tpl_node;

typedef struct kcm_tpl_branch {
    kcm_tpl_expr *cond;
    kcm_tpl_node *body;
    struct kcm_tpl_branch *next;
} kcm_tpl_branch;

struct kcm_tpl_node {
    int kind;
    int line, col;
    kcm_tpl_node *next;
    /* KCM_N_TEXT */
    const char *text;
    size_t len;
    /* KCM_N_VAR; KCM_N_FOR: the list */
    kcm_tpl_path *path;
    /* KCM_N_VAR: ${name:-default}, used when name is undefined or "" */
    int has_default;
    const char *def;
    size_t def_len;
    /* KCM_N_IF */
    kcm_tpl_branch *branches;
    kcm_tpl_node *otherwise;
    /* KCM_N_FOR: `for v in list` (key == NULL) or `for k, v in table` */
    const char *key, *val;
    size_t key_len, val_len;
    kcm_tpl_node *body;
};

typedef struct {
    kcm_tpl_blk *arena;
    kcm_tpl_node *root;
    char *name;         /* malloc'd; used in every message */
} kcm_tpl;

void *kcm_tpl_alloc(kcm_tpl *t, size_t size);
void kcm_tpl_release(kcm_tpl *t);

/* Parses src into t->root. Raises a Lua error "name:line:col: message" on
 * bad input; whatever was allocated stays in t's arena. */
void kcm_tpl_parse(lua_State *L, kcm_tpl *t, const char *src, size_t len);

/* Raises "name:line:col: message". */
int kcm_tpl_error(lua_State *L, const kcm_tpl *t, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6), noreturn));

#endif
