/* Template parser: source text -> kcm_tpl tree.
 *
 * Syntax (the full reference is in lua/kcm/template.lua):
 *   ${name} ${a.b} ${list.1}     substitution; an undefined name is an error
 *   ${name:-default}             the shell's default: used when name is undefined or ""
 *   $${  {%%  {##                literal "${", "{%", "{#"
 *   {% if e %} {% elif e %} {% else %} {% end %}
 *   {% for v in list %} / {% for k, v in table %} ... {% end %}
 *   {# comment #}
 * A tag or comment alone on its line takes the whole line with it; "{%-" and
 * "-%}" also eat the whitespace (newlines included) before / after the tag.
 * Nothing else is special: a backslash is just a backslash, so a unit file's
 * "\" line continuations are written as they should appear. */
#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "util.h"
#include "template_ast.h"

struct kcm_tpl_blk {
    kcm_tpl_blk *next;
    size_t used, cap;
    max_align_t data[];
};

void *kcm_tpl_alloc(kcm_tpl *t, size_t size)
{
    size = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    kcm_tpl_blk *b = t->arena;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > 16384 ? size : 16384;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = t->arena;
        t->arena = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

void kcm_tpl_release(kcm_tpl *t)
{
    while (t->arena) {
        kcm_tpl_blk *n = t->arena->next;
        free(t->arena);
        t->arena = n;
    }
    free(t->name);
    t->name = NULL;
    t->root = NULL;
}

int kcm_tpl_error(lua_State *L, const kcm_tpl *t, int line, int col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushfstring(L, "%s:%d:%d: %s", t->name ? t->name : "template", line, col, msg);
    lua_error(L);
    abort(); /* not reached: lua_error does not return */
}

/* ------------------------------------------------------------------ */

enum tok_kind {
    T_EOF, T_PATH, T_STR, T_NUM, T_OP, T_LP, T_RP, T_COMMA, T_CLOSE,
};

enum term_kind { TERM_EOF, TERM_ELIF, TERM_ELSE, TERM_END };

typedef struct {
    int kind;
    int line, col;
    kcm_tpl_path *path;     /* T_PATH */
    const char *s;          /* T_STR (arena copy), T_OP */
    size_t len;
    int trim;               /* T_CLOSE: "-%}" */
    lua_Number num;
    int num_is_int;
    lua_Integer inum;
} token;

typedef struct {
    lua_State *L;
    kcm_tpl *t;
    const char *s;
    size_t n, pos;
    int line, col;
    int depth;
    token tk;
} parser;

typedef struct {
    int kind;
    int line, col;
    kcm_tpl_expr *cond;     /* TERM_ELIF */
} term;

static void *palloc(parser *p, size_t size)
{
    void *m = kcm_tpl_alloc(p->t, size);
    if (!m)
        kcm_oom(p->L);
    return m;
}

static int peekc(parser *p, size_t ahead)
{
    return p->pos + ahead < p->n ? (unsigned char)p->s[p->pos + ahead] : -1;
}

static void adv(parser *p)
{
    if (p->pos >= p->n)
        return;
    if (p->s[p->pos] == '\n') {
        p->line++;
        p->col = 1;
    } else {
        p->col++;
    }
    p->pos++;
}

static void advn(parser *p, size_t k)
{
    while (k--)
        adv(p);
}

/* For messages: a readable rendering of the byte at the cursor. */
static const char *show_char(parser *p, char buf[8])
{
    int c = peekc(p, 0);
    if (c < 0)
        return "end of file";
    if (c == '\n')
        return "end of line";
    if (c >= 0x21 && c < 0x7f)
        snprintf(buf, 8, "'%c'", (char)c);
    else
        snprintf(buf, 8, "0x%02x", (unsigned)(c & 0xff));
    return buf;
}

static int is_name_start(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
/* '-' inside names lets templates reach keys like current-context. */
static int is_name_char(int c) { return is_name_start(c) || is_digit(c) || c == '-'; }
static int is_ws(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* A name char at the cursor, but never the '-' of a closing "-%}". */
static int at_name_char(parser *p)
{
    int c = peekc(p, 0);
    if (c == '-' && peekc(p, 1) == '%' && peekc(p, 2) == '}')
        return 0;
    return is_name_char(c);
}

static int clip(size_t n) { return n > 40 ? 40 : (int)n; }

/* name(.name|.digits)* at the cursor; the caller checked is_name_start. */
static kcm_tpl_path *parse_path(parser *p)
{
    size_t start = p->pos, nseg = 1;
    int line = p->line, col = p->col;
    /* Count the dots first, so the path is one allocation. */
    for (size_t i = start; i < p->n; i++) {
        unsigned char c = (unsigned char)p->s[i];
        if (c == '.')
            nseg++;
        else if (!is_name_char(c))
            break;
    }
    kcm_tpl_path *path = palloc(p, sizeof *path + nseg * sizeof(kcm_tpl_seg));
    path->text = p->s + start;
    path->nseg = 0;
    for (;;) {
        kcm_tpl_seg *sg = &path->seg[path->nseg];
        size_t s0 = p->pos;
        int c = peekc(p, 0);
        if (path->nseg > 0 && is_digit(c)) {
            lua_Integer v = 0;
            int overflow = 0;
            while (is_digit(peekc(p, 0))) {
                if (v > (LUA_MAXINTEGER - 9) / 10)
                    overflow = 1;
                else
                    v = v * 10 + (peekc(p, 0) - '0');
                adv(p);
            }
            if (at_name_char(p)) {
                char b[8];
                kcm_tpl_error(p->L, p->t, p->line, p->col, "bad name '%.*s': unexpected %s after digits",
                              clip(p->pos - start), p->s + start, show_char(p, b));
            }
            if (overflow)
                kcm_tpl_error(p->L, p->t, line, col, "index too large in '%.*s'",
                              clip(p->pos - start), p->s + start);
            sg->is_index = 1;
            sg->index = v;
        } else if (is_name_start(c)) {
            while (at_name_char(p))
                adv(p);
        } else {
            char b[8];
            kcm_tpl_error(p->L, p->t, p->line, p->col, "expected a name after '.', found %s",
                          show_char(p, b));
        }
        sg->s = p->s + s0;
        sg->len = p->pos - s0;
        path->nseg++;
        if (peekc(p, 0) != '.' || (size_t)path->nseg >= nseg)
            break;
        adv(p);
    }
    path->text_len = p->pos - start;
    return path;
}

/* ---------------------------- tag lexer ---------------------------- */

static void skip_space(parser *p)
{
    while (is_ws(peekc(p, 0)))
        adv(p);
}

static void lex_string(parser *p, token *tk)
{
    int q = peekc(p, 0);
    adv(p);
    /* The unescaped copy is never longer than the source span. */
    size_t cap = 0, k = 0;
    for (size_t i = p->pos; i < p->n && p->s[i] != q && p->s[i] != '\n'; i++) {
        /* an escaped quote does not end the span (fuzz_template found the
         * copy overrunning a span cut short there) */
        if (p->s[i] == '\\' && i + 1 < p->n && p->s[i + 1] != '\n') { i++; cap++; }
        cap++;
    }
    char *out = palloc(p, cap + 2);
    for (;;) {
        int c = peekc(p, 0);
        if (c < 0 || c == '\n')
            kcm_tpl_error(p->L, p->t, tk->line, tk->col, "unterminated string");
        if (c == q) {
            adv(p);
            break;
        }
        if (c == '\\') {
            adv(p);
            int e = peekc(p, 0);
            switch (e) {
            case '\\': case '"': case '\'': out[k++] = (char)e; break;
            case 'n': out[k++] = '\n'; break;
            case 't': out[k++] = '\t'; break;
            default: {
                char b[8];
                kcm_tpl_error(p->L, p->t, p->line, p->col, "bad escape %s in string", show_char(p, b));
            }
            }
            adv(p);
            continue;
        }
        out[k++] = (char)c;
        adv(p);
    }
    out[k] = 0;
    tk->kind = T_STR;
    tk->s = out;
    tk->len = k;
}

static void lex_number(parser *p, token *tk)
{
    size_t start = p->pos;
    if (peekc(p, 0) == '-')
        adv(p);
    while (is_digit(peekc(p, 0)))
        adv(p);
    int is_float = 0;
    if (peekc(p, 0) == '.' && is_digit(peekc(p, 1))) {
        is_float = 1;
        adv(p);
        while (is_digit(peekc(p, 0)))
            adv(p);
    }
    if (at_name_char(p) || peekc(p, 0) == '.') {
        char b[8];
        kcm_tpl_error(p->L, p->t, p->line, p->col, "bad number: unexpected %s", show_char(p, b));
    }
    char buf[64];
    size_t len = p->pos - start;
    if (len >= sizeof buf)
        kcm_tpl_error(p->L, p->t, tk->line, tk->col, "number too long");
    memcpy(buf, p->s + start, len);
    buf[len] = 0;
    tk->kind = T_NUM;
    tk->num = strtod(buf, NULL);
    tk->num_is_int = 0;
    if (!is_float) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == 0) {
            tk->num_is_int = 1;
            tk->inum = (lua_Integer)v;
        }
    }
}

static void lex(parser *p)
{
    token *tk = &p->tk;
    memset(tk, 0, sizeof *tk);
    skip_space(p);
    tk->line = p->line;
    tk->col = p->col;
    int c = peekc(p, 0), c1 = peekc(p, 1);
    if (c < 0) {
        tk->kind = T_EOF;
    } else if (c == '%' && c1 == '}') {
        tk->kind = T_CLOSE;
        advn(p, 2);
    } else if (c == '-' && c1 == '%' && peekc(p, 2) == '}') {
        tk->kind = T_CLOSE;
        tk->trim = 1;
        advn(p, 3);
    } else if (is_name_start(c)) {
        tk->kind = T_PATH;
        tk->path = parse_path(p);
    } else if (is_digit(c) || (c == '-' && is_digit(c1))) {
        lex_number(p, tk);
    } else if (c == '"' || c == '\'') {
        lex_string(p, tk);
    } else if (c == '(' || c == ')' || c == ',') {
        tk->kind = c == '(' ? T_LP : c == ')' ? T_RP : T_COMMA;
        adv(p);
    } else if ((c == '=' || c == '!' || c == '<' || c == '>') && c1 == '=') {
        tk->kind = T_OP;
        tk->s = p->s + p->pos;
        tk->len = 2;
        advn(p, 2);
    } else if (c == '<' || c == '>') {
        tk->kind = T_OP;
        tk->s = p->s + p->pos;
        tk->len = 1;
        adv(p);
    } else {
        char b[8];
        kcm_tpl_error(p->L, p->t, p->line, p->col, "unexpected %s in tag", show_char(p, b));
    }
}

static int path_is(const kcm_tpl_path *pa, const char *w)
{
    size_t n = strlen(w);
    return pa->nseg == 1 && pa->text_len == n && memcmp(pa->text, w, n) == 0;
}

/* Is the current token the bare word w? */
static int tok_is(parser *p, const char *w)
{
    return p->tk.kind == T_PATH && path_is(p->tk.path, w);
}

static int is_reserved(const kcm_tpl_path *pa)
{
    static const char *const words[] = {
        "and", "or", "not", "in", "true", "false", "nil", "defined",
        "if", "elif", "else", "end", "for", NULL,
    };
    for (int i = 0; words[i]; i++)
        if (path_is(pa, words[i]))
            return 1;
    return 0;
}

static const char *tok_desc(const token *tk, char *buf, size_t n)
{
    switch (tk->kind) {
    case T_EOF: return "end of file";
    case T_PATH: snprintf(buf, n, "'%.*s'", clip(tk->path->text_len), tk->path->text); return buf;
    case T_STR: return "a string";
    case T_NUM: return "a number";
    case T_OP: snprintf(buf, n, "'%.*s'", (int)tk->len, tk->s); return buf;
    case T_LP: return "'('";
    case T_RP: return "')'";
    case T_COMMA: return "','";
    case T_CLOSE: return "'%}'";
    }
    return "?";
}

static void __attribute__((noreturn)) unexpected(parser *p, const char *wanted)
{
    char b[64];
    kcm_tpl_error(p->L, p->t, p->tk.line, p->tk.col, "expected %s, found %s", wanted,
                  tok_desc(&p->tk, b, sizeof b));
}

/* ------------------------- expressions ---------------------------- */

static kcm_tpl_expr *new_expr(parser *p, int kind, int line, int col)
{
    kcm_tpl_expr *e = palloc(p, sizeof *e);
    e->kind = kind;
    e->line = line;
    e->col = col;
    return e;
}

static void enter(parser *p, int line, int col)
{
    if (++p->depth > KCM_TPL_MAX_DEPTH)
        kcm_tpl_error(p->L, p->t, line, col, "nested too deeply (limit %d)", KCM_TPL_MAX_DEPTH);
}

static kcm_tpl_expr *parse_or(parser *p);

static kcm_tpl_expr *parse_primary(parser *p)
{
    token *tk = &p->tk;
    int line = tk->line, col = tk->col;
    kcm_tpl_expr *e;
    switch (tk->kind) {
    case T_STR:
        e = new_expr(p, KCM_E_STR, line, col);
        e->s = tk->s;
        e->len = tk->len;
        lex(p);
        return e;
    case T_NUM:
        e = new_expr(p, KCM_E_NUM, line, col);
        e->num = tk->num;
        e->num_is_int = tk->num_is_int;
        e->inum = tk->inum;
        lex(p);
        return e;
    case T_LP:
        enter(p, line, col);
        lex(p);
        e = parse_or(p);
        if (tk->kind != T_RP)
            unexpected(p, "')'");
        p->depth--;
        lex(p);
        return e;
    case T_PATH:
        if (tok_is(p, "true") || tok_is(p, "false") || tok_is(p, "nil")) {
            e = new_expr(p, tok_is(p, "true") ? KCM_E_TRUE : tok_is(p, "false") ? KCM_E_FALSE : KCM_E_NIL,
                         line, col);
            lex(p);
            return e;
        }
        if (tok_is(p, "defined")) {
            lex(p);
            if (tk->kind != T_LP)
                unexpected(p, "'(' after defined");
            lex(p);
            if (tk->kind != T_PATH || is_reserved(tk->path))
                unexpected(p, "a variable name");
            e = new_expr(p, KCM_E_DEFINED, line, col);
            e->path = tk->path;
            lex(p);
            if (tk->kind != T_RP)
                unexpected(p, "')'");
            lex(p);
            return e;
        }
        if (is_reserved(tk->path))
            unexpected(p, "a value");
        e = new_expr(p, KCM_E_PATH, line, col);
        e->path = tk->path;
        lex(p);
        return e;
    default:
        unexpected(p, "a value");
    }
}

static kcm_tpl_expr *parse_cmp(parser *p)
{
    static const struct { const char *op; int kind; } ops[] = {
        {"==", KCM_E_EQ}, {"!=", KCM_E_NE}, {"<=", KCM_E_LE}, {">=", KCM_E_GE},
        {"<", KCM_E_LT}, {">", KCM_E_GT},
    };
    kcm_tpl_expr *a = parse_primary(p);
    token *tk = &p->tk;
    if (tk->kind != T_OP)
        return a;
    int kind = KCM_E_EQ;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strlen(ops[i].op) == tk->len && memcmp(ops[i].op, tk->s, tk->len) == 0)
            kind = ops[i].kind;
    kcm_tpl_expr *e = new_expr(p, kind, tk->line, tk->col);
    lex(p);
    e->a = a;
    e->b = parse_primary(p);
    if (tk->kind == T_OP)
        unexpected(p, "'%}' (comparisons do not chain)");
    return e;
}

static kcm_tpl_expr *parse_not(parser *p)
{
    if (tok_is(p, "not")) {
        int line = p->tk.line, col = p->tk.col;
        enter(p, line, col);
        lex(p);
        kcm_tpl_expr *e = new_expr(p, KCM_E_NOT, line, col);
        e->a = parse_not(p);
        p->depth--;
        return e;
    }
    return parse_cmp(p);
}

/* `x and y and z` / `x or y`: the chain becomes a left-deep tree that eval()
 * walks recursively, so each link counts against the nesting limit. */
static kcm_tpl_expr *parse_chain(parser *p, const char *word, int kind,
                                 kcm_tpl_expr *(*operand)(parser *))
{
    kcm_tpl_expr *a = operand(p);
    int links = 0;
    while (tok_is(p, word)) {
        enter(p, p->tk.line, p->tk.col);
        links++;
        kcm_tpl_expr *e = new_expr(p, kind, p->tk.line, p->tk.col);
        lex(p);
        e->a = a;
        e->b = operand(p);
        a = e;
    }
    p->depth -= links;
    return a;
}

static kcm_tpl_expr *parse_and(parser *p)
{
    return parse_chain(p, "and", KCM_E_AND, parse_not);
}

static kcm_tpl_expr *parse_or(parser *p)
{
    return parse_chain(p, "or", KCM_E_OR, parse_and);
}

/* ----------------------------- blocks ----------------------------- */

static kcm_tpl_node *new_node(parser *p, int kind, int line, int col)
{
    kcm_tpl_node *n = palloc(p, sizeof *n);
    n->kind = kind;
    n->line = line;
    n->col = col;
    return n;
}

typedef struct {
    kcm_tpl_node *head, *tail;
} node_list;

static void append(node_list *l, kcm_tpl_node *n)
{
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

static void emit_text(parser *p, node_list *l, size_t from, size_t to, int line, int col)
{
    if (to <= from)
        return;
    kcm_tpl_node *n = new_node(p, KCM_N_TEXT, line, col);
    n->text = p->s + from;
    n->len = to - from;
    append(l, n);
}

static kcm_tpl_node *parse_block(parser *p, term *end);

/* Ends a tag: expects "%}" or "-%}", then applies whitespace control.
 * text_from..tag_start is the text before the tag; returns where that text
 * now ends. */
static size_t close_tag(parser *p, size_t text_from, size_t tag_start, int trim_left)
{
    if (p->tk.kind != T_CLOSE)
        unexpected(p, "'%}'");
    int trim_right = p->tk.trim;
    size_t text_to = tag_start;
    if (trim_left)
        while (text_to > text_from && is_ws((unsigned char)p->s[text_to - 1]))
            text_to--;
    /* Standalone: only blanks between the line start and the tag, and
     * between the tag and the line end. Then the whole line disappears. */
    size_t i = tag_start;
    while (i > text_from && (p->s[i - 1] == ' ' || p->s[i - 1] == '\t'))
        i--;
    size_t j = p->pos;
    while (j < p->n && (p->s[j] == ' ' || p->s[j] == '\t'))
        j++;
    int left = i == 0 || p->s[i - 1] == '\n';
    int right = j == p->n || p->s[j] == '\n' || (p->s[j] == '\r' && j + 1 < p->n && p->s[j + 1] == '\n');
    if (left && right) {
        if (i < text_to)
            text_to = i;
        advn(p, j - p->pos);
        if (peekc(p, 0) == '\r')
            adv(p);
        if (peekc(p, 0) == '\n')
            adv(p);
    }
    if (trim_right)
        while (p->pos < p->n && is_ws((unsigned char)p->s[p->pos]))
            adv(p);
    return text_to;
}

/* "{% for v in list %}" / "{% for k, v in table %}" after the keyword. */
static void parse_for_head(parser *p, kcm_tpl_node *n)
{
    token *tk = &p->tk;
    if (tk->kind != T_PATH || tk->path->nseg != 1 || is_reserved(tk->path))
        unexpected(p, "a loop variable name");
    n->val = tk->path->text;
    n->val_len = tk->path->text_len;
    lex(p);
    if (tk->kind == T_COMMA) {
        lex(p);
        if (tk->kind != T_PATH || tk->path->nseg != 1 || is_reserved(tk->path))
            unexpected(p, "a loop variable name after ','");
        n->key = n->val;
        n->key_len = n->val_len;
        n->val = tk->path->text;
        n->val_len = tk->path->text_len;
        lex(p);
    }
    if (!tok_is(p, "in"))
        unexpected(p, "'in'");
    lex(p);
    if (tk->kind != T_PATH || is_reserved(tk->path))
        unexpected(p, "a variable to loop over");
    n->path = tk->path;
    lex(p);
}

static void parse_var(parser *p, node_list *l)
{
    int line = p->line, col = p->col;
    advn(p, 2);
    if (!is_name_start(peekc(p, 0))) {
        char b[8];
        kcm_tpl_error(p->L, p->t, p->line, p->col,
                      "bad variable reference: expected a name after '${', found %s "
                      "(write $${ for a literal ${)", show_char(p, b));
    }
    kcm_tpl_node *n = new_node(p, KCM_N_VAR, line, col);
    n->path = parse_path(p);
    if (peekc(p, 0) == ':' && peekc(p, 1) == '-') {
        /* ${name:-default}, as in the shell: literal text up to the '}' */
        advn(p, 2);
        size_t d0 = p->pos;
        while (p->pos < p->n && p->s[p->pos] != '}' && p->s[p->pos] != '\n' &&
               !(p->s[p->pos] == '$' && peekc(p, 1) == '{'))
            adv(p);
        if (peekc(p, 0) != '}') {
            char b[8];
            kcm_tpl_error(p->L, p->t, p->line, p->col,
                          "bad default in ${%.*s:-...}: unexpected %s (a default is plain text up to '}')",
                          clip(n->path->text_len), n->path->text, show_char(p, b));
        }
        n->has_default = 1;
        n->def = p->s + d0;
        n->def_len = p->pos - d0;
    }
    if (peekc(p, 0) != '}') {
        char b[8];
        kcm_tpl_error(p->L, p->t, p->line, p->col,
                      "bad variable reference: unexpected %s in ${%.*s...} "
                      "(only ${name}, ${a.b} and ${name:-default} are supported)",
                      show_char(p, b), clip(n->path->text_len), n->path->text);
    }
    adv(p);
    append(l, n);
}

static void parse_if(parser *p, node_list *l, int line, int col, kcm_tpl_expr *cond)
{
    kcm_tpl_node *n = new_node(p, KCM_N_IF, line, col);
    kcm_tpl_branch **bp = &n->branches;
    term t;
    for (;;) {
        kcm_tpl_branch *b = palloc(p, sizeof *b);
        b->cond = cond;
        b->body = parse_block(p, &t);
        *bp = b;
        bp = &b->next;
        if (t.kind != TERM_ELIF)
            break;
        cond = t.cond;
    }
    if (t.kind == TERM_ELSE) {
        n->otherwise = parse_block(p, &t);
        if (t.kind == TERM_ELSE || t.kind == TERM_ELIF)
            kcm_tpl_error(p->L, p->t, t.line, t.col, "{%% %s %%} after {%% else %%}",
                          t.kind == TERM_ELSE ? "else" : "elif");
    }
    if (t.kind == TERM_EOF)
        kcm_tpl_error(p->L, p->t, line, col, "unclosed {%% if %%}: no {%% end %%} before end of file");
    append(l, n);
}

static void parse_for(parser *p, node_list *l, kcm_tpl_node *n)
{
    term t;
    n->body = parse_block(p, &t);
    if (t.kind == TERM_EOF)
        kcm_tpl_error(p->L, p->t, n->line, n->col, "unclosed {%% for %%}: no {%% end %%} before end of file");
    if (t.kind != TERM_END)
        kcm_tpl_error(p->L, p->t, t.line, t.col, "{%% %s %%} inside {%% for %%} (opened at line %d)",
                      t.kind == TERM_ELSE ? "else" : "elif", n->line);
    append(l, n);
}

/* A {# comment #}: the text before it ends at the tag (close_tag trims). */
static void skip_comment(parser *p, node_list *l, size_t text_from, int tline, int tcol)
{
    size_t tag_start = p->pos;
    int line = p->line, col = p->col;
    advn(p, 2);
    while (p->pos < p->n && !(p->s[p->pos] == '#' && peekc(p, 1) == '}'))
        adv(p);
    if (p->pos >= p->n)
        kcm_tpl_error(p->L, p->t, line, col, "unclosed comment: no #} before end of file");
    advn(p, 2);
    p->tk.kind = T_CLOSE;
    p->tk.trim = 0;
    emit_text(p, l, text_from, close_tag(p, text_from, tag_start, 0), tline, tcol);
}

/* A {% tag %}: if and for parse their whole block here; elif/else/end end
 * the caller's block (returns 1, the tag in *end). */
static int parse_tag(parser *p, node_list *l, term *end, size_t text_from, int tline, int tcol)
{
    size_t tag_start = p->pos;
    int line = p->line, col = p->col;
    advn(p, 2);
    int trim_left = 0;
    if (peekc(p, 0) == '-') {
        trim_left = 1;
        adv(p);
    }
    lex(p);
    if (p->tk.kind != T_PATH || p->tk.path->nseg != 1)
        unexpected(p, "a tag name (if, elif, else, end, for)");
    if (tok_is(p, "if")) {
        lex(p);
        kcm_tpl_expr *cond = parse_or(p);
        emit_text(p, l, text_from, close_tag(p, text_from, tag_start, trim_left), tline, tcol);
        parse_if(p, l, line, col, cond);
    } else if (tok_is(p, "for")) {
        kcm_tpl_node *n = new_node(p, KCM_N_FOR, line, col);
        lex(p);
        parse_for_head(p, n);
        emit_text(p, l, text_from, close_tag(p, text_from, tag_start, trim_left), tline, tcol);
        parse_for(p, l, n);
    } else if (tok_is(p, "elif") || tok_is(p, "else") || tok_is(p, "end")) {
        end->kind = tok_is(p, "elif") ? TERM_ELIF : tok_is(p, "else") ? TERM_ELSE : TERM_END;
        end->line = line;
        end->col = col;
        end->cond = NULL;
        lex(p);
        if (end->kind == TERM_ELIF)
            end->cond = parse_or(p);
        emit_text(p, l, text_from, close_tag(p, text_from, tag_start, trim_left), tline, tcol);
        return 1;
    } else {
        kcm_tpl_error(p->L, p->t, p->tk.line, p->tk.col,
                      "unknown tag '%.*s' (expected if, elif, else, end or for)",
                      clip(p->tk.path->text_len), p->tk.path->text);
    }
    return 0;
}

/* Parses nodes until end of input or a block-ending tag (elif/else/end),
 * which is reported in *end. */
static kcm_tpl_node *parse_block(parser *p, term *end)
{
    node_list l = {0};
    size_t text_from = p->pos;
    int tline = p->line, tcol = p->col;
    enter(p, p->line, p->col);
    for (;;) {
        int c = peekc(p, 0), c1 = peekc(p, 1), c2 = peekc(p, 2);
        if (c < 0) {
            emit_text(p, &l, text_from, p->pos, tline, tcol);
            end->kind = TERM_EOF;
            break;
        }
        if (c == '$' && c1 == '{') {
            emit_text(p, &l, text_from, p->pos, tline, tcol);
            parse_var(p, &l);
        } else if (c == '$' && c1 == '$' && c2 == '{') {
            /* "$${" -> "${": keep one '$', resume the text at the '{'. */
            emit_text(p, &l, text_from, p->pos + 1, tline, tcol);
            advn(p, 2);
            text_from = p->pos;
            tline = p->line;
            tcol = p->col;
            adv(p);
            continue;
        } else if (c == '{' && (c1 == '%' || c1 == '#') && c2 == c1) {
            /* "{%%" -> "{%", "{##" -> "{#" */
            emit_text(p, &l, text_from, p->pos + 2, tline, tcol);
            advn(p, 3);
        } else if (c == '{' && c1 == '#') {
            skip_comment(p, &l, text_from, tline, tcol);
        } else if (c == '{' && c1 == '%') {
            if (parse_tag(p, &l, end, text_from, tline, tcol))
                break;
        } else {
            adv(p);
            continue;
        }
        text_from = p->pos;
        tline = p->line;
        tcol = p->col;
    }
    p->depth--;
    return l.head;
}

void kcm_tpl_parse(lua_State *L, kcm_tpl *t, const char *src, size_t len)
{
    parser p;
    memset(&p, 0, sizeof p);
    p.L = L;
    p.t = t;
    char *copy = kcm_tpl_alloc(t, len + 1);
    if (!copy)
        kcm_oom(L);
    memcpy(copy, src, len);
    p.s = copy;
    p.n = len;
    p.line = 1;
    p.col = 1;
    term end;
    t->root = parse_block(&p, &end);
    if (end.kind != TERM_EOF)
        kcm_tpl_error(L, t, end.line, end.col, "{%% %s %%} without a matching {%% if %%}%s",
                      end.kind == TERM_END ? "end" : end.kind == TERM_ELSE ? "else" : "elif",
                      end.kind == TERM_END ? " or {% for %}" : "");
}
