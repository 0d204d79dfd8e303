/* Internals shared by the ssh module's files (ssh.c = Lua binding,
 * ssh_conn.c = connect/auth, ssh_hostkey.c = known_hosts policy,
 * ssh_exec.c = remote commands, ssh_sftp.c = file transfer).
 * Everything here except the binding runs on worker threads with
 * sess->mu held, and never touches Lua. */
#ifndef KCM_SSH_INT_H
#define KCM_SSH_INT_H

#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include "buf.h"

typedef struct kcm_ssh_sess {
    pthread_mutex_t mu;    /* belt and braces next to job->pin */
    atomic_int refs;       /* the Lua userdata + every job in flight */
    ssh_session s;         /* NULL until connected */
    atomic_int alive;      /* s is set; read by the main thread without mu */
    sftp_session sftp;     /* opened on first file operation */
    /* settings copied from the inventory at creation (NULL = unset) */
    char *name, *host, *user, *identity, *known_hosts, *config;
    int port;
    long connect_timeout;  /* seconds */
    long io_timeout;       /* seconds without progress before the link counts as dead */
    int accept_new;
    /* resolved at connect, for messages */
    char *r_host, *r_user;
    int r_port;
    /* the kind of the current job's failure, set where its message is
     * written (worker, under mu); NULL: "error" */
    const char *fail_kind;
} kcm_ssh_sess;

/* The kind a failed job of c reports: "unreachable" once the link is gone,
 * else what the failing step recorded in c->fail_kind, else "error". */
const char *kcm_ssh_fail_kind(kcm_ssh_sess *c);
/* The kind of an SFTP status code (permission denied -> "denied", ...). */
const char *kcm_ssh_sftp_kind(int sftp_status);

/* Outcome kinds of a connect attempt. */
enum { KCM_SSH_OK = 0, KCM_SSH_UNREACHABLE, KCM_SSH_HOSTKEY, KCM_SSH_AUTH, KCM_SSH_ERROR };


/* malloc'd printf; never NULL. The one exception to kcm.h's out-of-memory
 * policy: the ssh transport helpers report through char **msg and never see
 * their job, so they abort instead of failing it (left by issue 13). */
char *kcm_ssh_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* POSIX shell single-quoting of s; malloc'd. */
char *kcm_ssh_shquote(const char *s);
/* the line sent for cmd: cmd under the wrapper that dies with its channel */
char *kcm_ssh_wrap_command(const char *cmd, size_t inlen);
/* "~/x" -> "$HOME/x"; malloc'd copy otherwise. */
char *kcm_ssh_expand_home(const char *path);

/* ssh_conn.c: connect + verify host key + authenticate. Idempotent while
 * the connection is alive. On failure returns a kind and sets *msg. */
int kcm_ssh_connect(kcm_ssh_sess *c, char **msg);
void kcm_ssh_disconnect(kcm_ssh_sess *c);

/* ssh_config.c: what ssh_config says for `name` (OpenSSH semantics: blocks
 * matched against the name as given, first value wins). path NULL = none.
 * 0 ok (fields NULL/0 when unset), -1 with *msg ("file:line: why"). */
#define KCM_SSH_CFG_MAX_ID 16
#define KCM_SSH_CFG_MAX_KH 8
struct kcm_ssh_cfg {
    char *hostname, *user, *known_hosts;
    int port;
    char *identity[KCM_SSH_CFG_MAX_ID];
    int n_identity;
    /* UserKnownHostsFile / GlobalKnownHostsFile lists ("none" = set, empty) */
    char *user_kh[KCM_SSH_CFG_MAX_KH], *global_kh[KCM_SSH_CFG_MAX_KH];
    int n_user_kh, n_global_kh, user_kh_set, global_kh_set;
};
int kcm_ssh_config_resolve(const char *path, const char *name, struct kcm_ssh_cfg *out, char **msg);
void kcm_ssh_cfg_free(struct kcm_ssh_cfg *c);

/* ssh_hostkey.c: check the server key of a fresh connection against every
 * known_hosts file (files[0..nuser) the user's, the rest global); records
 * it in files[0] when accept_new and no file knows the host. 0 ok, -1 with *msg. */
int kcm_ssh_verify_hostkey(ssh_session s, const char *host, int port,
                           const char *const *files, int nfiles, int nuser,
                           int accept_new, char **msg);
/* "SHA256:..." of a base64 public key blob, as ssh-keygen -l prints it. */
char *kcm_ssh_fingerprint_b64(const char *b64);

/* ssh_exec.c: run cmd, feed stdin, collect output. timeout_ms <= 0 means
 * none. Returns 0 (then *code is the exit status, -1 if none/signal) or -1
 * with *msg on transport failure. */
struct kcm_ssh_exec_res {
    int code;
    int timed_out;
    struct kcm_buf out, err;
};
/* Become with a password: the command line carries `sudo -S -p PROMPT …
 * -- sh -c 'printf READY >&2; exec "$@"' sh …`; kcm_ssh_exec sends secret
 * only after sudo's PROMPT was read, never when READY came first. */
struct kcm_ssh_become {
    const char *secret, *prompt, *ready;
};
int kcm_ssh_exec(kcm_ssh_sess *c, const char *cmd, const char *in, size_t inlen,
                 const struct kcm_ssh_become *become, long timeout_ms, struct kcm_ssh_exec_res *r, char **msg);

/* ssh_sftp.c: all return 0 on success, -1 with *msg ("<op> <path>: <why>"). */
struct kcm_ssh_stat { int exists; const char *type; unsigned long long size;
                      unsigned mode, uid, gid; unsigned long long mtime; };
int kcm_ssh_sftp_stat(kcm_ssh_sess *c, const char *path, struct kcm_ssh_stat *st, char **msg);
int kcm_ssh_sftp_read(kcm_ssh_sess *c, const char *path, struct kcm_buf *out, char **msg);
/* *exists = 0 when there is no such file (hex untouched). */
int kcm_ssh_sftp_sha256(kcm_ssh_sess *c, const char *path, int *exists, char hex[65], char **msg);
int kcm_ssh_sftp_mkdir_p(kcm_ssh_sess *c, const char *path, unsigned mode, int *changed, char **msg);
int kcm_ssh_sftp_remove(kcm_ssh_sess *c, const char *path, int *changed, char **msg);
int kcm_ssh_sftp_chmod(kcm_ssh_sess *c, const char *path, unsigned mode, char **msg);
/* Atomic replace: temp file `tmp` (created with `mode`), fsync, chmod,
 * optional chown ("owner:group" spec for chown(1)), rename over `path`.
 * The temp file is removed on any failure. Other temp files of `path`
 * (".NAME.kcm-RUNID.RND.tmp") are removed after the rename unless their
 * RUNID is in `live` (comma-separated hex ids of runs still going; NULL:
 * remove none): a file of a live run is another run's transfer in flight. */
int kcm_ssh_sftp_put(kcm_ssh_sess *c, const char *path, const char *tmp,
                     const char *data, size_t len, unsigned mode, const char *chown,
                     int mkdir, const char *live, char **msg);

/* ssh.c: the session userdata at idx (raises when not one or freed), and
 * the release of a job's reference. */
struct lua_State;
struct kcm_job;
kcm_ssh_sess *kcm_ssh_check(struct lua_State *L, int idx);
/* Worker, with c->mu held: 0 when the session is connected; else releases
 * c->mu, fails the job (kind "unreachable", "not connected") and
 * returns -1. */
int kcm_ssh_need_connection(struct kcm_job *j, kcm_ssh_sess *c);
void kcm_ssh_sess_unref(kcm_ssh_sess *c);

/* ssh_sync.c: node:put's file sync (methods of the session userdata). */
int kcm_ssh_l_sync_probe(struct lua_State *L);
int kcm_ssh_l_sync_put(struct lua_State *L);
int kcm_ssh_l_sync_commit(struct lua_State *L);
int kcm_ssh_l_sync_attrs(struct lua_State *L);
int kcm_ssh_l_sync_clean(struct lua_State *L);
int kcm_ssh_l_stats(struct lua_State *L);

#endif
