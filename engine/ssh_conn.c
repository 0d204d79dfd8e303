/* Connection set-up for one node: ssh_config, host key policy, auth,
 * keepalive. Runs on a worker thread with c->mu held. */
#include "ssh_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int file_exists(const char *p)
{
    return access(p, F_OK) == 0;
}

void kcm_ssh_disconnect(kcm_ssh_sess *c)
{
    /* files first: an adopted file session's sleeper is unregistered, so
     * the watcher ends (and frees the node's lock) at once */
    kcm_ssh_files_close(c);
    kcm_ssh_watch_close(c);
    if (c->s) {
        if (ssh_is_connected(c->s)) ssh_disconnect(c->s);
        ssh_free(c->s);
        c->s = NULL;
        atomic_store(&c->alive, 0);
    }
}

/* Idle connections between steps must survive NAT/firewall timeouts and a
 * dead peer must be noticed: TCP keepalive (libssh has no ServerAlive*).
 * TCP_USER_TIMEOUT also bounds unacknowledged data (a transfer to a node
 * whose link went down), which keepalive alone leaves to the kernel's
 * ~15 min retransmission limit. Both end after about io_timeout seconds. */
static void set_keepalive(ssh_session s, long io_timeout)
{
    int fd = ssh_get_fd(s);
    if (fd < 0) return;
    int on = 1, idle = (int)(io_timeout / 2), intvl = (int)(io_timeout / 6), cnt = 3;
    unsigned user_ms = (unsigned)io_timeout * 1000u;
    if (idle < 1) idle = 1;
    if (intvl < 1) intvl = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof user_ms);
}

static void methods_str(int m, struct kcm_buf *b)
{
    static const struct { int bit; const char *name; } names[] = {
        {SSH_AUTH_METHOD_PUBLICKEY, "publickey"}, {SSH_AUTH_METHOD_PASSWORD, "password"},
        {SSH_AUTH_METHOD_INTERACTIVE, "keyboard-interactive"},
        {SSH_AUTH_METHOD_HOSTBASED, "hostbased"}, {SSH_AUTH_METHOD_GSSAPI_MIC, "gssapi-with-mic"},
    };
    int any = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (m & names[i].bit) {
            if (any) kcm_buf_add(b, ",", 1);
            kcm_buf_add(b, names[i].name, strlen(names[i].name));
            any = 1;
        }
    if (!any) kcm_buf_add(b, "none", 4);
}

static void tried_add(struct kcm_buf *t, const char *what)
{
    if (t->n) kcm_buf_add(t, "; ", 2);
    kcm_buf_add(t, what, strlen(what));
}

static const char *auth_word(int rc)
{
    switch (rc) {
    case SSH_AUTH_DENIED: return "rejected";
    case SSH_AUTH_PARTIAL: return "partial (more factors required)";
    default: return "error";
    }
}

/* 0 when the key file logged us in; otherwise notes why in `tried`. */
static int try_keyfile(ssh_session s, const char *file, struct kcm_buf *tried)
{
    char *path = kcm_ssh_expand_home(file);
    ssh_key key = NULL;
    int ok = -1;
    if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK) {
        char *t = kcm_ssh_fmt("publickey %s (cannot load: %s)", path,
                              file_exists(path) ? "unreadable, not a key, or passphrase-protected"
                                                : "no such file");
        tried_add(tried, t);
        free(t);
    } else {
        int rc = ssh_userauth_publickey(s, NULL, key);
        ssh_key_free(key);
        if (rc == SSH_AUTH_SUCCESS) {
            ok = 0;
        } else {
            char *t = kcm_ssh_fmt("publickey %s (%s)", path, auth_word(rc));
            tried_add(tried, t);
            free(t);
        }
    }
    free(path);
    return ok;
}

/* Order: the inventory's identity file, then ssh-agent, then (only when
 * the inventory names no identity) ssh_config IdentityFile and the default
 * ~/.ssh/id_* files. Every attempt is listed in the failure message. */
static int authenticate(kcm_ssh_sess *c, ssh_session s, const char *cfg_identity, char **msg)
{
    struct kcm_buf tried = {0}, allowed = {0};
    int rc = ssh_userauth_none(s, NULL);
    if (rc == SSH_AUTH_SUCCESS) return 0;
    if (rc == SSH_AUTH_ERROR) {
        *msg = kcm_ssh_fmt("authentication failed for %s@%s:%d: %s", c->r_user, c->r_host,
                           c->r_port, ssh_get_error(s));
        return -1;
    }
    int methods = ssh_userauth_list(s, NULL);
    methods_str(methods, &allowed);

    if (c->identity && try_keyfile(s, c->identity, &tried) == 0) goto ok;
    const char *sock = getenv("SSH_AUTH_SOCK");
    if (sock && *sock) {
        rc = ssh_userauth_agent(s, NULL);
        if (rc == SSH_AUTH_SUCCESS) goto ok;
        char *t = kcm_ssh_fmt("ssh-agent (%s)", rc == SSH_AUTH_DENIED ? "no key accepted" : auth_word(rc));
        tried_add(&tried, t);
        free(t);
    } else {
        tried_add(&tried, "ssh-agent (not available: SSH_AUTH_SOCK unset)");
    }
    if (!c->identity && cfg_identity) {
        if (try_keyfile(s, cfg_identity, &tried) == 0) goto ok;
    }
    if (!c->identity) {
        rc = ssh_userauth_publickey_auto(s, NULL, NULL);
        if (rc == SSH_AUTH_SUCCESS) goto ok;
        char *t = kcm_ssh_fmt("publickey from ssh_config IdentityFile and ~/.ssh/id_* (%s)",
                              rc == SSH_AUTH_DENIED ? "none accepted" : auth_word(rc));
        tried_add(&tried, t);
        free(t);
    }
    *msg = kcm_ssh_fmt("authentication failed for %s@%s:%d; tried: %s; server allows: %s",
                       c->r_user, c->r_host, c->r_port, tried.p, allowed.p);
    kcm_buf_free(&tried, 0);
    kcm_buf_free(&allowed, 0);
    return -1;
ok:
    kcm_buf_free(&tried, 0);
    kcm_buf_free(&allowed, 0);
    return 0;
}

/* OpenSSH's rule for a user name it may expand into %r (ProxyCommand runs
 * through a shell): [A-Za-z_][A-Za-z0-9._-]*. The inventory loader checks
 * it too; this is the net for every other way a session is made. */
static int user_ok(const char *u)
{
    if (!u || !*u || strlen(u) > 64) return 0;
    if (!((*u >= 'A' && *u <= 'Z') || (*u >= 'a' && *u <= 'z') || *u == '_')) return 0;
    for (; *u; u++)
        if (!((*u >= 'A' && *u <= 'Z') || (*u >= 'a' && *u <= 'z') || (*u >= '0' && *u <= '9') ||
              *u == '.' || *u == '_' || *u == '-'))
            return 0;
    return 1;
}

static void resolved(kcm_ssh_sess *c, ssh_session s, const char *alias)
{
    free(c->r_host); free(c->r_user);
    c->r_host = NULL, c->r_user = NULL;
    char *v = NULL;
    if (ssh_options_get(s, SSH_OPTIONS_HOST, &v) == SSH_OK) { c->r_host = strdup(v); ssh_string_free_char(v); }
    if (ssh_options_get(s, SSH_OPTIONS_USER, &v) == SSH_OK) { c->r_user = strdup(v); ssh_string_free_char(v); }
    unsigned rp = 22;
    ssh_options_get_port(s, &rp);
    c->r_port = (int)rp;
    if (!c->r_host) c->r_host = strdup(alias);
    if (!c->r_user) c->r_user = strdup("?");
}

/* What a connection attempt holds until it succeeds or fails. */
struct setup {
    ssh_session s;
    const char *alias;
    char *kh, *cfg, *cfg_identity;
    struct kcm_ssh_cfg oc;
    char *khf[2 * KCM_SSH_CFG_MAX_KH + 2];
    int nkh, nuser;
};

static void setup_free(struct setup *u)
{
    free(u->kh); free(u->cfg); free(u->cfg_identity);
    for (int i = 0; i < u->nkh; i++) free(u->khf[i]);
    kcm_ssh_cfg_free(&u->oc);
}

/* ssh_config is matched against the node's name (like `ssh node1`), then
 * every value the inventory gives overrides it (set_target). libssh never
 * reads a config file itself: its parser runs `Match exec` commands and
 * matches differently from OpenSSH. It gets only what ssh_config.c
 * resolved. */
static int read_config(kcm_ssh_sess *c, struct setup *u, char **msg)
{
    ssh_session s = u->s;
    int no = 0;
    /* before anything else: ssh_connect() would otherwise parse
     * ~/.ssh/config and /etc/ssh/ssh_config on its own */
    ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no);
    u->alias = c->name ? c->name : c->host;
    /* A node name that is no valid host name matches by address instead. */
    if (ssh_options_set(s, SSH_OPTIONS_HOST, u->alias) < 0 && c->host) u->alias = c->host;
    if (ssh_options_set(s, SSH_OPTIONS_HOST, u->alias) < 0) {
        *msg = kcm_ssh_fmt("bad host name %s", u->alias);
        return -1;
    }
    if (c->config) {
        u->cfg = kcm_ssh_expand_home(c->config);
        if (!file_exists(u->cfg)) { *msg = kcm_ssh_fmt("ssh config %s: no such file", u->cfg); return -1; }
    } else {
        u->cfg = kcm_ssh_expand_home("~/.ssh/config");
        if (!file_exists(u->cfg)) { free(u->cfg); u->cfg = NULL; }
    }
    return kcm_ssh_config_resolve_as(u->cfg, u->alias, c->user, c->host, &u->oc, msg) != 0 ? -1 : 0;
}

/* ProxyCommand/ProxyJump and the IdentityFile list, as libssh's parser
 * would have set them (libssh expands %h %p %r in the command itself). */
static int set_proxy_identities(struct setup *u, char **msg)
{
    char *cmd = NULL;
    if (u->oc.proxyjump && !(cmd = kcm_ssh_jump_command(u->oc.proxyjump, msg))) return -1;
    const char *pc = cmd ? cmd : u->oc.proxycommand;
    if (pc && ssh_options_set(u->s, SSH_OPTIONS_PROXYCOMMAND, pc) < 0) {
        *msg = kcm_ssh_fmt("ProxyCommand %s: %s", pc, ssh_get_error(u->s));
        free(cmd);
        return -1;
    }
    free(cmd);
    for (int i = 0; i < u->oc.n_identity; i++) ssh_options_set(u->s, SSH_OPTIONS_ADD_IDENTITY, u->oc.identity[i]);
    return 0;
}

/* Where and as whom: the inventory's values, else ssh_config's. */
static int set_target(kcm_ssh_sess *c, struct setup *u, char **msg)
{
    ssh_session s = u->s;
    int yes = 1, verbosity = SSH_LOG_NOLOG;
    /* ssh_config LogLevel would turn on libssh's (process-wide) logging to
     * stderr; kcmrun reports errors itself. */
    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
    const char *host = c->host ? c->host : u->oc.hostname ? u->oc.hostname : u->alias;
    if (ssh_options_set(s, SSH_OPTIONS_HOST, host) < 0) {
        *msg = kcm_ssh_fmt("bad host %s", host);
        return -1;
    }
    int port = c->port > 0 ? c->port : u->oc.port > 0 ? u->oc.port : 22;
    { unsigned p = (unsigned)port; ssh_options_set(s, SSH_OPTIONS_PORT, &p); }
    if (c->user && !user_ok(c->user)) {
        *msg = kcm_ssh_fmt("ssh user '%s' is not a user name (letters, digits, '.', '_', '-'; "
                           "not starting with a digit, '.' or '-')", c->user);
        return -1;
    }
    if (c->user) ssh_options_set(s, SSH_OPTIONS_USER, c->user);
    else if (u->oc.user) ssh_options_set(s, SSH_OPTIONS_USER, u->oc.user);
    else ssh_options_set(s, SSH_OPTIONS_USER, NULL); /* the local user, as ssh(1); named in messages */
    long tmo = c->connect_timeout > 0 ? c->connect_timeout : 10;
    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &tmo);
    ssh_options_set(s, SSH_OPTIONS_NODELAY, &yes);
    return set_proxy_identities(u, msg);
}

/* known_hosts, as OpenSSH reads them: the user files (inventory >
 * ssh_config UserKnownHostsFile > ~/.ssh/known_hosts{,2}), then the
 * global ones (ssh_config GlobalKnownHostsFile > /etc/ssh/ssh_known_hosts{,2}). */
static void known_hosts_files(kcm_ssh_sess *c, struct setup *u)
{
    if (c->known_hosts) {
        u->khf[u->nkh++] = kcm_ssh_expand_home(c->known_hosts);
    } else if (u->oc.user_kh_set) {
        for (int i = 0; i < u->oc.n_user_kh; i++) u->khf[u->nkh++] = kcm_ssh_fmt("%s", u->oc.user_kh[i]);
    } else {
        u->khf[u->nkh++] = kcm_ssh_expand_home("~/.ssh/known_hosts");
        u->khf[u->nkh++] = kcm_ssh_expand_home("~/.ssh/known_hosts2");
    }
    u->nuser = u->nkh;
    if (u->oc.global_kh_set) {
        for (int i = 0; i < u->oc.n_global_kh; i++) u->khf[u->nkh++] = kcm_ssh_fmt("%s", u->oc.global_kh[i]);
    } else {
        u->khf[u->nkh++] = kcm_ssh_fmt("/etc/ssh/ssh_known_hosts");
        u->khf[u->nkh++] = kcm_ssh_fmt("/etc/ssh/ssh_known_hosts2");
    }
    u->kh = kcm_ssh_fmt("%s", u->nuser ? u->khf[0] : "/dev/null");
    /* Makes libssh prefer the host key type already recorded. */
    ssh_options_set(u->s, SSH_OPTIONS_KNOWNHOSTS, u->kh);
}

/* Options, then connect, host key, authentication. Returns the failure's kind. */
static int open_session(kcm_ssh_sess *c, struct setup *u, char **msg)
{
    ssh_session s = u->s;
    int verbosity = SSH_LOG_NOLOG;
    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
    if (read_config(c, u, msg) != 0 || set_target(c, u, msg) != 0) return KCM_SSH_ERROR;
    known_hosts_files(c, u);
    resolved(c, s, u->alias);
    if (strcmp(c->r_user, "?") != 0 && !user_ok(c->r_user)) {
        *msg = kcm_ssh_fmt("ssh user '%s' (from ssh_config) is not a user name", c->r_user);
        return KCM_SSH_ERROR;
    }
    /* The first IdentityFile from ssh_config, tried by name so a failure
     * says which (libssh's own list follows in publickey_auto). */
    if (!c->identity && u->oc.n_identity > 0) u->cfg_identity = kcm_ssh_expand_home(u->oc.identity[0]);

    if (ssh_connect(s) != SSH_OK) {
        *msg = kcm_ssh_fmt("%s", ssh_get_error(s));
        return KCM_SSH_UNREACHABLE;
    }
    /* HostKeyAlias: the name known_hosts is looked up and recorded under,
     * bare (OpenSSH adds no [ ]:port to it) */
    const char *kh_name = u->oc.hostkeyalias ? u->oc.hostkeyalias : c->r_host;
    int kh_port = u->oc.hostkeyalias ? 22 : c->r_port;
    if (kcm_ssh_verify_hostkey(s, kh_name, kh_port, (const char *const *)u->khf, u->nkh, u->nuser,
                               c->accept_new, msg) != 0)
        return KCM_SSH_HOSTKEY;
    if (authenticate(c, s, u->cfg_identity, msg) != 0)
        return KCM_SSH_AUTH;
    return KCM_SSH_OK;
}

int kcm_ssh_connect(kcm_ssh_sess *c, char **msg)
{
    if (c->s && ssh_is_connected(c->s)) return KCM_SSH_OK;
    kcm_ssh_disconnect(c); /* a dropped connection is replaced */

    struct setup u;
    memset(&u, 0, sizeof u);
    u.s = ssh_new();
    if (!u.s) { *msg = kcm_ssh_fmt("out of memory"); return KCM_SSH_ERROR; }
    int kind = open_session(c, &u, msg);
    if (kind != KCM_SSH_OK) {
        if (ssh_is_connected(u.s)) ssh_disconnect(u.s);
        ssh_free(u.s);
        setup_free(&u);
        return kind;
    }
    long op_tmo = c->io_timeout > 0 ? c->io_timeout : 60;
    set_keepalive(u.s, op_tmo);
    /* After set-up the libssh timeout bounds single protocol exchanges
     * (sftp requests, channel opens); commands have their own timeout. */
    ssh_options_set(u.s, SSH_OPTIONS_TIMEOUT, &op_tmo);
    c->s = u.s;
    atomic_store(&c->alive, 1);
    setup_free(&u);
    return KCM_SSH_OK;
}
