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
    sftp_session sftp;     /* the file session of the current job (one of files[]) */
    /* One SFTP session per identity files are handled as, opened on first
     * use and kept for the run: the login user's ("" : the sftp subsystem)
     * and, with become, the target user's (sudo ... sftp-server on an exec
     * channel). Usually just one of them is ever opened. */
    struct { char *who; sftp_session sf; long sleeper; } files[4];   /* sleeper: ssh_files.c */
    int nfiles;
    /* the watchers of its commands, one per identity (ssh_watch.c); a
     * retired one still watches and holds the lock but runs no command */
    struct { char *who; ssh_channel ch; int retired; } watch[4];
    int nwatch;
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
/* OpenSSH's '*'/'?' pattern match of s against p (fold: ignore case). */
int kcm_ssh_pattern(const char *s, const char *p, int fold);
/* "~/x" -> "$HOME/x"; malloc'd copy otherwise. */
char *kcm_ssh_expand_home(const char *path);
/* A local text file of the operator's (ssh_config, known_hosts): opened
 * only when it is a regular file (a FIFO or /dev/zero would block or grow
 * memory). NULL with errno ENOENT when missing, else NULL with *msg. */
#define KCM_SSH_LINE_MAX (64 * 1024)
void *kcm_ssh_open_text(const char *path, const char *what, char **msg);
/* Next line into buf (cap KCM_SSH_LINE_MAX + 2, NUL-terminated): its
 * length, -1 at the end, -2 when longer than KCM_SSH_LINE_MAX. */
long kcm_ssh_read_line(void *f, char *buf);

/* ssh_conn.c: connect + verify host key + authenticate. Idempotent while
 * the connection is alive. On failure returns a kind and sets *msg. */
int kcm_ssh_connect(kcm_ssh_sess *c, char **msg);
void kcm_ssh_disconnect(kcm_ssh_sess *c);

/* ssh_config.c: what ssh_config says for `name` (OpenSSH semantics: blocks
 * matched against the name as given, first value wins). path NULL = none.
 * user/host: the inventory's values, set first as `ssh -l USER -o
 * HostName=HOST` would, so `Match user`/`Match host` see them (NULL: unset).
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
    /* lowercased, as OpenSSH uses it: the known_hosts name (no [ ]:port) */
    char *hostkeyalias;
    /* the first of ProxyCommand/ProxyJump wins; "none" leaves both NULL */
    char *proxycommand, *proxyjump;
    int proxy_set;
};
int kcm_ssh_config_resolve(const char *path, const char *name, struct kcm_ssh_cfg *out, char **msg);
int kcm_ssh_config_resolve_as(const char *path, const char *name, const char *user, const char *host,
                              struct kcm_ssh_cfg *out, char **msg);
/* ProxyJump "[user@]host[:port][,...]" as the ProxyCommand libssh 0.10
 * would make of it; NULL with *msg when a hop is not a plain host spec. */
char *kcm_ssh_jump_command(const char *jump, char **msg);
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
struct kcm_ssh_as;
/* cmd: the command line (its words quoted) with as->argv's prefix (NULL or
 * no argv: the login user), bare: the same without the prefix. Without
 * stdin it runs through the identity's watcher (ssh_agent.c, bare); else
 * on a channel of its own (cmd), where with a password as->secret is
 * written only after sudo's own prompt was read. */
int kcm_ssh_exec(kcm_ssh_sess *c, const char *cmd, const char *bare, const char *in, size_t inlen,
                 const struct kcm_ssh_as *as, long timeout_ms, struct kcm_ssh_exec_res *r, char **msg);
/* ssh_watch.c: the watcher of identity `as` is running (started when
 * needed); 0, or -1 with *msg. */
int kcm_ssh_watch(kcm_ssh_sess *c, const struct kcm_ssh_as *as, char **msg);
void kcm_ssh_watch_add(kcm_ssh_sess *c, const struct kcm_ssh_as *as, long pid);
void kcm_ssh_watch_done(kcm_ssh_sess *c, const struct kcm_ssh_as *as, long pid);
void kcm_ssh_watch_kill(kcm_ssh_sess *c, const struct kcm_ssh_as *as, long pid);
/* "-pid" to the watcher of the identity named `who` (its user) */
void kcm_ssh_watch_done_who(kcm_ssh_sess *c, const char *who, long pid);
void kcm_ssh_watch_close(kcm_ssh_sess *c);
/* The watcher's channel when it may run a command (ssh_agent.c), else NULL;
 * retire: it runs no more (a command that outlived its timeout). */
ssh_channel kcm_ssh_watch_runner(kcm_ssh_sess *c, const struct kcm_ssh_as *as);
void kcm_ssh_watch_retire(kcm_ssh_sess *c, const struct kcm_ssh_as *as);
/* ssh_agent.c: cmd (no stdin) through the watcher's channel w. 0 (r filled),
 * or -1 with *msg; *retire when w must run no more commands. */
int kcm_ssh_agent_exec(kcm_ssh_sess *c, ssh_channel w, const struct kcm_ssh_as *who, const char *cmd,
                       long timeout_ms, struct kcm_ssh_exec_res *r, int *retire, char **msg);
/* The node's lock, held by the watcher of `as` for the connection's life:
 * 1 taken, 0 another run holds it (*holder: its note, malloc'd), -1 *msg. */
int kcm_ssh_watch_lock(kcm_ssh_sess *c, const struct kcm_ssh_as *as, long wait_s, const char *note,
                       char **holder, char **msg);

/* Who a channel runs as. argv NULL: the login user. Else the argv prefix
 * that elevates, built in one place (node.lua's Node:_become_argv), the
 * target user, and with a become password the secret and the random
 * prompt/ready markers the prefix makes sudo and the elevated side print. */
struct lua_State;
struct kcm_ssh_as {
    char **argv;                    /* NULL-terminated */
    char *user;
    char *secret, *prompt, *ready;  /* all three, or none */
};
/* ssh_as.c */
void kcm_ssh_as_free(struct kcm_ssh_as *a);
/* Reads the become table at idx (nil/absent: login user); raises on misuse. */
void kcm_ssh_as_read(struct lua_State *L, int idx, struct kcm_ssh_as *a);
/* "PREFIX... sh -c SCRIPT sh ARGS..." with every word quoted (PREFIX only
 * when a elevates); malloc'd. */
char *kcm_ssh_as_line(const struct kcm_ssh_as *a, const char *script, const char **args, int nargs);
/* "PREFIX... " (every word quoted, a trailing space; "" when a does not
 * elevate); malloc'd. */
char *kcm_ssh_as_prefix(const struct kcm_ssh_as *a);
/* On a channel just exec'd under a's prefix: reads stderr until the
 * elevated side's ready marker (with a password, written once and only
 * after sudo's own prompt was read) and, when `started` is given, the
 * command's own start marker (sudo -n may refuse instead: then its words
 * are the error). Nothing else is read or written. 0; -1 with *msg and
 * *kind. */
int kcm_ssh_as_handshake(ssh_session s, ssh_channel ch, const struct kcm_ssh_as *a, const char *started,
                         long timeout_ms, char **msg, const char **kind);
/* Removes every "marker\\n" (or trailing "marker") from b; -> how many. */
int kcm_ssh_cut_marker(struct kcm_buf *b, const char *marker);

/* Where distributions put sftp-server (the first executable one runs). */
#define KCM_SFTP_SERVER_PATHS "/usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server " \
    "/usr/lib/ssh/sftp-server /usr/libexec/sftp-server /usr/lib/sftp-server /usr/local/libexec/sftp-server"
/* ssh_watch.c: the watcher of `as` (root) starts sftp-server on the stdin
 * and stdout pipes of the login user's process `pid` (ssh_files.c). 1
 * started, 0 it cannot (then it started nothing), -1 with *msg. */
int kcm_ssh_watch_adopt(kcm_ssh_sess *c, const struct kcm_ssh_as *as, long pid, char **msg);

/* ssh_files.c: makes c->sftp the file session of identity a (NULL: the
 * login user's), opening it on first use. 0, or -1 with *msg. */
int kcm_ssh_files(kcm_ssh_sess *c, const struct kcm_ssh_as *a, char **msg);
/* closes every file session (disconnect) */
void kcm_ssh_files_close(kcm_ssh_sess *c);

/* ssh_sftp.c: on c->sftp (kcm_ssh_files first); all return 0 on success,
 * -1 with *msg ("<op> <path>: <why>"). */
struct kcm_ssh_stat { int exists; const char *type; unsigned long long size;
                      unsigned mode, uid, gid; unsigned long long mtime; };
int kcm_ssh_sftp_stat(kcm_ssh_sess *c, const char *path, struct kcm_ssh_stat *st, char **msg);
int kcm_ssh_sftp_read(kcm_ssh_sess *c, const char *path, struct kcm_buf *out, char **msg);
int kcm_ssh_sftp_mkdir_p(kcm_ssh_sess *c, const char *path, unsigned mode, int *changed, char **msg);
/* recursive: a folder goes with everything in it (never following links) */
int kcm_ssh_sftp_remove(kcm_ssh_sess *c, const char *path, int recursive, int *changed, char **msg);
int kcm_ssh_sftp_chmod(kcm_ssh_sess *c, const char *path, unsigned mode, char **msg);
/* rename(2) of from over to (posix-rename@openssh.com) */
int kcm_ssh_sftp_posix_rename(kcm_ssh_sess *c, const char *from, const char *to, char **msg);
/* The error of the last SFTP request on c->sftp: *msg "<what>: <why>",
 * c->fail_kind set. Returns -1. */
int kcm_ssh_sftp_fail(kcm_ssh_sess *c, char **msg, const char *what, const char *path);

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
/* ssh_fetch.c: s:fetch{path=, dest=, mode=, become=, progress=} -> bytes */
int kcm_ssh_l_fetch(struct lua_State *L);
int kcm_ssh_l_sync_commit(struct lua_State *L);
int kcm_ssh_l_sync_attrs(struct lua_State *L);
int kcm_ssh_l_sync_clean(struct lua_State *L);
int kcm_ssh_l_stats(struct lua_State *L);

#endif
