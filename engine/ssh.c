/* kcm.native.ssh: one libssh session per node, used from Lua.
 *
 *   local s = ssh.session{name=, host=, port=, user=, identity=, known_hosts=,
 *                         config=, connect_timeout=, io_timeout=, accept_new=}
 *   s:connect()              -> true, new (false: it was connected already) |
 *                               nil, message, kind
 *                               (kind: "unreachable"|"hostkey"|"auth"|"error")
 *   s:exec(cmd, stdin, timeout_s [, become [, bare]]) -> code, stdout, stderr, timed_out
 *                            (bare: cmd without become's prefix: then a command
 *                            without stdin runs through the watcher)
 *   s:stat(path [, as])      -> {type,size,mode,uid,gid,mtime} | nil
 *   s:read(path [, as])      -> content
 *   s:fetch{path=, dest=, mode=, become=, progress=} -> bytes   (streamed into
 *                               a local file: ssh_fetch.c)
 *   s:mkdir(path, mode [, as]) -> changed
 *   s:remove(path, recursive [, as]) -> changed
 *   s:chmod(path, mode [, as])
 *   s:lock(wait_s, note [, as]) -> true | false, holder's note   (the node's
 *                               lock, held until the connection ends: ssh_watch.c)
 *   s:sync_probe{...}, s:sync_put{...}, s:sync_commit{...}, s:stats()   (ssh_sync.c)
 * `as` is the become table node.lua builds (nil: the login user): file
 * operations run on that identity's SFTP session (ssh_files.c).
 *   s:close()
 *   s:alive()                -> bool (connected; false after a transport failure)
 *   s:resolved()             -> host, port, user actually used (after connect)
 *   ssh.resolve_config(name [, config]) -> {hostname=, port=, user=, identity=,
 *                               identities={...}, known_hosts=} | nil, message
 *                               (OpenSSH semantics; config default ~/.ssh/config)
 *
 * Every call that talks to the node is a kcm_job pinned to the session, so
 * one session is only ever used by one worker thread at a time. Errors
 * carry the node name: "node1: put /etc/x: permission denied". */
#include "util.h"
#include "modules.h"
#include "ssh_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SESS_MT "kcm.ssh.session"

typedef struct { kcm_ssh_sess *c; } sess_ud;

void kcm_ssh_sess_unref(kcm_ssh_sess *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    kcm_ssh_disconnect(c);
    pthread_mutex_destroy(&c->mu);
    free(c->name); free(c->host); free(c->user); free(c->identity);
    free(c->known_hosts); free(c->config); free(c->r_host); free(c->r_user);
    free(c);
}

enum op { OP_CONNECT, OP_EXEC, OP_STAT, OP_READ, OP_MKDIR, OP_REMOVE, OP_CHMOD, OP_LOCK, OP_CLOSE };

typedef struct {
    kcm_job base;
    kcm_ssh_sess *c;
    enum op op;
    char *path;
    struct kcm_ssh_as as;   /* file operations: whose SFTP session */
    char *cmd;              /* OP_EXEC: the command line */
    char *bare;             /* OP_EXEC: the same without the become prefix */
    char *data;             /* stdin or file content (copied; wiped on free) */
    size_t len;
    unsigned mode;
    int recursive;          /* OP_REMOVE */
    int locked;             /* OP_LOCK: 1 taken, 0 busy */
    char *holder;           /* OP_LOCK: the holder's note when busy */
    long timeout_ms;
    /* results */
    int kind;
    char *kmsg;
    int changed;
    struct kcm_ssh_exec_res ex;
    struct kcm_ssh_stat st;
    struct kcm_buf content;
} sjob;

static const char *label(kcm_ssh_sess *c)
{
    return c->name ? c->name : c->host ? c->host : "?";
}

int kcm_ssh_need_connection(struct kcm_job *j, kcm_ssh_sess *c)
{
    if (c->s && ssh_is_connected(c->s))
        return 0;
    pthread_mutex_unlock(&c->mu);
    kcm_job_fail_kind(j, "unreachable", "not connected (call connect first)");
    return -1;
}

static void work(kcm_job *j)
{
    sjob *sj = (sjob *)j;
    kcm_ssh_sess *c = sj->c;
    char *msg = NULL;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    c->fail_kind = NULL;
    if (sj->op == OP_CONNECT) {
        sj->changed = !(c->s && ssh_is_connected(c->s));   /* a new connection, or the one we had */
        sj->kind = kcm_ssh_connect(c, &msg);
        sj->kmsg = msg;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    if (sj->op == OP_CLOSE) {
        kcm_ssh_disconnect(c);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    if (kcm_ssh_need_connection(j, c) != 0)
        return;
    switch (sj->op) {
    case OP_EXEC:
        rc = kcm_ssh_exec(c, sj->cmd, sj->bare, sj->data, sj->len, &sj->as, sj->timeout_ms, &sj->ex, &msg);
        break;
    case OP_LOCK:
        sj->locked = kcm_ssh_watch_lock(c, &sj->as, sj->timeout_ms / 1000, sj->cmd, &sj->holder, &msg);
        rc = sj->locked < 0 ? -1 : 0;
        break;
    default:
        if ((rc = kcm_ssh_files(c, &sj->as, &msg)) != 0) break;
        switch (sj->op) {
        case OP_STAT: rc = kcm_ssh_sftp_stat(c, sj->path, &sj->st, &msg); break;
        case OP_READ: rc = kcm_ssh_sftp_read(c, sj->path, &sj->content, &msg); break;
        case OP_MKDIR: rc = kcm_ssh_sftp_mkdir_p(c, sj->path, sj->mode, &sj->changed, &msg); break;
        case OP_REMOVE: rc = kcm_ssh_sftp_remove(c, sj->path, sj->recursive, &sj->changed, &msg); break;
        case OP_CHMOD: rc = kcm_ssh_sftp_chmod(c, sj->path, sj->mode, &msg); break;
        default: break;
        }
    }
    /* A transport failure kills the session: drop it so the next call
     * reconnects instead of reusing a broken one. */
    const char *kind = rc != 0 ? kcm_ssh_fail_kind(c) : NULL;
    if (rc != 0 && c->s && !ssh_is_connected(c->s)) kcm_ssh_disconnect(c);
    pthread_mutex_unlock(&c->mu);
    /* the node's name is the Lua layer's to add (it owns the context) */
    if (rc != 0) kcm_job_fail_kind(j, kind, "%s", msg ? msg : "failed");
    free(msg);
}

static void push_stat(lua_State *L, const struct kcm_ssh_stat *st)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, st->type); lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st->size); lua_setfield(L, -2, "size");
    lua_pushinteger(L, st->mode); lua_setfield(L, -2, "mode");
    lua_pushinteger(L, st->uid); lua_setfield(L, -2, "uid");
    lua_pushinteger(L, st->gid); lua_setfield(L, -2, "gid");
    lua_pushinteger(L, (lua_Integer)st->mtime); lua_setfield(L, -2, "mtime");
}

static int done(lua_State *L, kcm_job *j)
{
    sjob *sj = (sjob *)j;
    kcm_ssh_sess *c = sj->c;
    switch (sj->op) {
    case OP_CONNECT: {
        /* true, or the convention's nil, message, kind; the address it
         * tried is s:resolved()'s */
        static const char *kinds[] = {"ok", "unreachable", "hostkey", "auth", "error"};
        (void)c;
        if (sj->kind == KCM_SSH_OK) { lua_pushboolean(L, 1); lua_pushboolean(L, sj->changed); return 2; }
        lua_pushnil(L);
        lua_pushstring(L, sj->kmsg ? sj->kmsg : "failed");
        lua_pushstring(L, kinds[sj->kind]);
        return 3;
    }
    case OP_EXEC:
        lua_pushinteger(L, sj->ex.code);
        kcm_buf_push(L, &sj->ex.out);
        kcm_buf_push(L, &sj->ex.err);
        lua_pushboolean(L, sj->ex.timed_out);
        return 4;
    case OP_STAT:
        if (!sj->st.exists) lua_pushnil(L);
        else push_stat(L, &sj->st);
        return 1;
    case OP_READ:
        kcm_buf_push(L, &sj->content);
        return 1;
    case OP_MKDIR:
    case OP_REMOVE:
        lua_pushboolean(L, sj->changed);
        return 1;
    case OP_LOCK:
        lua_pushboolean(L, sj->locked == 1);
        if (sj->locked == 1) return 1;
        lua_pushstring(L, sj->holder ? sj->holder : "");
        return 2;
    default:
        lua_pushboolean(L, 1);
        return 1;
    }
}

static void job_free(kcm_job *j)
{
    sjob *sj = (sjob *)j;
    if (sj->data) { kcm_memzero(sj->data, sj->len); free(sj->data); }
    if (sj->content.p) kcm_memzero(sj->content.p, sj->content.cap);
    kcm_buf_free(&sj->content, 0);
    kcm_buf_free(&sj->ex.out, 1);   /* output may be a key (cat key.pem) */
    kcm_buf_free(&sj->ex.err, 1);
    free(sj->path); free(sj->cmd); free(sj->bare); free(sj->kmsg); free(sj->holder);
    kcm_ssh_as_free(&sj->as);
    kcm_ssh_sess_unref(sj->c);
    free(sj);
}

kcm_ssh_sess *kcm_ssh_check(lua_State *L, int idx)
{
    sess_ud *u = luaL_checkudata(L, idx, SESS_MT);
    if (!u->c) luaL_error(L, "ssh session is freed");
    return u->c;
}

static kcm_ssh_sess *check_sess(lua_State *L) { return kcm_ssh_check(L, 1); }

static sjob *new_job(lua_State *L, enum op op)
{
    kcm_ssh_sess *c = check_sess(L);
    sjob *sj = kcm_job_new(L, sizeof *sj, work, done, job_free);
    sj->base.pin = c;
    atomic_fetch_add(&c->refs, 1);
    sj->c = c;
    sj->op = op;
    return sj;
}

static char *dupstr(lua_State *L, int idx)
{
    size_t n;
    const char *s = luaL_checklstring(L, idx, &n);
    if (strlen(s) != n) luaL_argerror(L, idx, "contains a NUL byte");
    char *d = strdup(s);
    if (!d) kcm_oom(L);
    return d;
}

static int l_connect(lua_State *L) { return kcm_job_yield(L, &new_job(L, OP_CONNECT)->base); }
static int l_close(lua_State *L) { return kcm_job_yield(L, &new_job(L, OP_CLOSE)->base); }

static int l_exec(lua_State *L)
{
    sjob *sj = new_job(L, OP_EXEC);
    sj->cmd = dupstr(L, 2);
    size_t inlen = 0;
    const char *in = luaL_optlstring(L, 3, NULL, &inlen);
    lua_Number t = luaL_optnumber(L, 4, 0);
    if (in && inlen) {
        sj->data = malloc(inlen);
        if (!sj->data) kcm_oom(L);
        memcpy(sj->data, in, inlen);
        sj->len = inlen;
    }
    sj->timeout_ms = t > 0 ? (long)(t * 1000) : 0;
    /* 5: the become table the line's prefix came from: whose watcher, and
     * with a password the secret, which goes to sudo only after its prompt
     * (ssh_exec.c), never on the command's stdin */
    kcm_ssh_as_read(L, 5, &sj->as);
    /* 6: the line without the prefix, for the watcher, which runs as
     * the identity already */
    if (!lua_isnoneornil(L, 6)) sj->bare = dupstr(L, 6);
    return kcm_job_yield(L, &sj->base);
}

/* path at 2, the op's own argument at 3 (l_mkdir, l_remove, l_chmod), the
 * identity at `as_idx` */
static sjob *path_op(lua_State *L, enum op op, int as_idx)
{
    sjob *sj = new_job(L, op);
    sj->path = dupstr(L, 2);
    kcm_ssh_as_read(L, as_idx, &sj->as);
    return sj;
}

static int l_stat(lua_State *L) { return kcm_job_yield(L, &path_op(L, OP_STAT, 3)->base); }
static int l_read(lua_State *L) { return kcm_job_yield(L, &path_op(L, OP_READ, 3)->base); }

static int l_mkdir(lua_State *L)
{
    lua_Integer mode = luaL_optinteger(L, 3, 0755);
    sjob *sj = path_op(L, OP_MKDIR, 4);
    sj->mode = (unsigned)mode & 07777;
    return kcm_job_yield(L, &sj->base);
}

static int l_remove(lua_State *L)
{
    int recursive = lua_toboolean(L, 3);
    sjob *sj = path_op(L, OP_REMOVE, 4);
    sj->recursive = recursive;
    return kcm_job_yield(L, &sj->base);
}

static int l_chmod(lua_State *L)
{
    lua_Integer mode = luaL_checkinteger(L, 3);
    sjob *sj = path_op(L, OP_CHMOD, 4);
    sj->mode = (unsigned)mode & 07777;
    return kcm_job_yield(L, &sj->base);
}

static int l_lock(lua_State *L)
{
    lua_Integer wait = luaL_checkinteger(L, 2);
    sjob *sj = new_job(L, OP_LOCK);
    sj->cmd = dupstr(L, 3);
    sj->timeout_ms = (long)(wait < 0 ? 0 : wait > 86400 ? 86400 : wait) * 1000L;
    kcm_ssh_as_read(L, 4, &sj->as);
    return kcm_job_yield(L, &sj->base);
}

static int l_alive(lua_State *L)
{
    lua_pushboolean(L, atomic_load(&check_sess(L)->alive));
    return 1;
}

static int l_resolved(lua_State *L)
{
    kcm_ssh_sess *c = check_sess(L);
    /* r_* are written by connect on a worker while it holds mu */
    pthread_mutex_lock(&c->mu);
    if (c->r_host) lua_pushstring(L, c->r_host); else lua_pushnil(L);
    lua_pushinteger(L, c->r_port);
    if (c->r_user) lua_pushstring(L, c->r_user); else lua_pushnil(L);
    pthread_mutex_unlock(&c->mu);
    return 3;
}

static int l_gc(lua_State *L)
{
    sess_ud *u = luaL_checkudata(L, 1, SESS_MT);
    if (u->c) { kcm_ssh_sess_unref(u->c); u->c = NULL; }
    return 0;
}

static int l_tostring(lua_State *L)
{
    sess_ud *u = luaL_checkudata(L, 1, SESS_MT);
    lua_pushfstring(L, "ssh.session(%s)", u->c ? label(u->c) : "freed");
    return 1;
}

static const luaL_Reg sess_methods[] = {
    {"connect", l_connect}, {"exec", l_exec}, {"stat", l_stat}, {"read", l_read},
    {"mkdir", l_mkdir}, {"remove", l_remove}, {"lock", l_lock},
    {"chmod", l_chmod}, {"close", l_close}, {"alive", l_alive}, {"resolved", l_resolved},
    {"fetch", kcm_ssh_l_fetch}, {"sync_probe", kcm_ssh_l_sync_probe}, {"sync_put", kcm_ssh_l_sync_put},
    {"sync_commit", kcm_ssh_l_sync_commit}, {"sync_attrs", kcm_ssh_l_sync_attrs},
    {"sync_clean", kcm_ssh_l_sync_clean}, {"stats", kcm_ssh_l_stats},
    {"__tostring", l_tostring}, {NULL, NULL},
};

static int l_session(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    kcm_ssh_sess *c = calloc(1, sizeof *c);
    if (!c) kcm_oom(L);
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->refs, 1);
    /* Own c through the userdata first so a bad field cannot leak it. */
    sess_ud *u = kcm_newudata(L, sizeof *u, SESS_MT, sess_methods, l_gc);
    u->c = c;
    c->name = kcm_opt_strdup(L, 1, "name", NULL, "ssh", 0);
    c->host = kcm_opt_strdup(L, 1, "host", NULL, "ssh", 0);
    c->user = kcm_opt_strdup(L, 1, "user", NULL, "ssh", 0);
    c->identity = kcm_opt_strdup(L, 1, "identity", NULL, "ssh", 0);
    c->known_hosts = kcm_opt_strdup(L, 1, "known_hosts", NULL, "ssh", 0);
    c->config = kcm_opt_strdup(L, 1, "config", NULL, "ssh", 0);
    if (!c->name && !c->host) return luaL_error(L, "ssh.session: name or host required");
    lua_getfield(L, 1, "port");
    c->port = (int)luaL_optinteger(L, -1, 0);
    lua_getfield(L, 1, "connect_timeout");
    c->connect_timeout = (long)luaL_optnumber(L, -1, 10);
    lua_getfield(L, 1, "accept_new");
    c->accept_new = lua_toboolean(L, -1);
    lua_getfield(L, 1, "io_timeout");
    c->io_timeout = (long)luaL_optnumber(L, -1, 60);
    lua_pop(L, 4);
    if (c->port < 0 || c->port > 65535) return luaL_error(L, "ssh.session: bad port %d", c->port);
    return 1;
}

/* Shell quoting is exposed so node.lua and the C side quote identically. */
static int l_quote(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    if (strlen(s) != n) return luaL_argerror(L, 1, "contains a NUL byte");
    char *q = kcm_ssh_shquote(s);
    lua_pushstring(L, q);
    free(q);
    return 1;
}

/* Reads a local file only: called on the main thread when the inventory
 * loads, so certificates and bind addresses see addresses, not aliases. */
static int l_resolve_config(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *given = luaL_optstring(L, 2, NULL);
    char *path = kcm_ssh_expand_home(given ? given : "~/.ssh/config");
    if (!given && access(path, F_OK) != 0) { free(path); path = NULL; }
    struct kcm_ssh_cfg oc;
    char *msg = NULL;
    int rc = kcm_ssh_config_resolve(path, name, &oc, &msg);
    free(path);
    if (rc != 0) {
        lua_pushstring(L, msg ? msg : "ssh config: error");
        free(msg);
        lua_pushnil(L);
        lua_insert(L, -2);
        lua_pushstring(L, "error");
        return 3;
    }
    lua_createtable(L, 0, 6);
    if (oc.hostname) { lua_pushstring(L, oc.hostname); lua_setfield(L, -2, "hostname"); }
    if (oc.user) { lua_pushstring(L, oc.user); lua_setfield(L, -2, "user"); }
    if (oc.port) { lua_pushinteger(L, oc.port); lua_setfield(L, -2, "port"); }
    if (oc.known_hosts) { lua_pushstring(L, oc.known_hosts); lua_setfield(L, -2, "known_hosts"); }
    if (oc.n_identity) { lua_pushstring(L, oc.identity[0]); lua_setfield(L, -2, "identity"); }
    lua_createtable(L, oc.n_identity, 0);
    for (int i = 0; i < oc.n_identity; i++) { lua_pushstring(L, oc.identity[i]); lua_rawseti(L, -2, i + 1); }
    lua_setfield(L, -2, "identities");
    kcm_ssh_cfg_free(&oc);
    return 1;
}

int kcm_open_ssh(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"session", l_session}, {"quote", l_quote},
        {"resolve_config", l_resolve_config}, {NULL, NULL},
    };
    ssh_init();
    luaL_newlib(L, fns);
    return 1;
}
