/* ssh_config lookup for one node name, the way OpenSSH 9 reads it (ssh -G
 * is the oracle in tests/sshcfg): Host patterns are matched against the
 * name as given, case-sensitively, with '*' '?' and '!negation' only (no
 * [sets]); Match host/originalhost compare case-insensitively, Match user
 * case-sensitively against the inventory's user; the first value obtained
 * for an option wins (IdentityFile accumulates); Include.
 *
 * This is the only reader: libssh never parses a config file (ssh_conn.c),
 * because its parser runs `Match exec` commands and re-matches blocks
 * against a substituted HostName. `Match exec` never matches here: kcmrun
 * runs no local command from ssh_config. */
#include "ssh_int.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_DEPTH 16

void kcm_ssh_cfg_free(struct kcm_ssh_cfg *c)
{
    free(c->hostname); free(c->user); free(c->known_hosts);
    free(c->hostkeyalias); free(c->proxycommand); free(c->proxyjump);
    for (int i = 0; i < c->n_identity; i++) free(c->identity[i]);
    for (int i = 0; i < c->n_user_kh; i++) free(c->user_kh[i]);
    for (int i = 0; i < c->n_global_kh; i++) free(c->global_kh[i]);
    memset(c, 0, sizeof *c);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static void lower(char *s)
{
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

/* Splits a line into words: whitespace (and one '=' after the keyword)
 * separated, "double quotes" keep spaces. Returns the count, -1 on an
 * unterminated quote. Words point into `line`, which is modified; w has
 * room for every word a line can hold (no cap: OpenSSH reads them all). */
static int split(char *line, char **w, size_t *start)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || (n == 1 && *p == '=')) p++;
        if (!*p || *p == '\n' || *p == '\r') break;
        if (*p == '"') {
            char *e = strchr(++p, '"');
            if (!e) return -1;
            *e = '\0';
            start[n] = (size_t)(p - 1 - line);
            w[n++] = p;
            p = e + 1;
            continue;
        }
        start[n] = (size_t)(p - line);
        w[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && !(n == 1 && *p == '=')) p++;
        if (*p) *p++ = '\0';
    }
    return n;
}

/* OpenSSH's match_pattern(): '*' and '?' only, byte for byte */
static int pat_match(const char *s, const char *p) { return kcm_ssh_pattern(s, p, 0); }

/* A Host line: one pattern per word, a matching negation vetoes the block. */
static int host_line(const char *name, char **pats, int n)
{
    int got = 0;
    for (int i = 0; i < n; i++) {
        int neg = pats[i][0] == '!';
        if (pat_match(name, pats[i] + neg)) {
            if (neg) return 0;
            got = 1;
        }
    }
    return got;
}

/* OpenSSH's match_pattern_list(): a comma list; a matching negation gives
 * -1, else 1 when any pattern matched. fold: both sides lowercased (Match
 * host and originalhost; user names stay exact). */
static int list_match(const char *s, const char *list, int fold)
{
    char *str = xstrdup(s), *pats = xstrdup(list), *save = NULL;
    if (fold) { lower(str); lower(pats); }
    int got = 0;
    for (char *p = strtok_r(pats, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        int neg = *p == '!';
        if (pat_match(str, p + neg)) {
            if (neg) { got = -1; break; }
            got = 1;
        }
    }
    free(str);
    free(pats);
    return got;
}

static const char *local_user(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "";
}

/* The host name OpenSSH uses for %h and `Match host`: HostName with %h
 * expanded, else the name given, lowercased either way. */
static char *host_now(const char *name, const struct kcm_ssh_cfg *c)
{
    char *h = xstrdup(c->hostname ? c->hostname : name);
    lower(h);
    return h;
}

/* %h %n %p %r %u %d %% in IdentityFile/UserKnownHostsFile/HostName; ~ first. */
static char *expand(const char *v, const char *name, const struct kcm_ssh_cfg *c)
{
    struct kcm_buf b = {0};
    const char *home = getenv("HOME");
    if (!home) home = "";
    char *h = host_now(name, c), port[16];
    snprintf(port, sizeof port, "%d", c->port ? c->port : 22);
    if (v[0] == '~' && (v[1] == '/' || v[1] == '\0')) { kcm_buf_add(&b, home, strlen(home)); v++; }
    for (; *v; v++) {
        if (*v != '%' || !v[1]) { kcm_buf_add(&b, v, 1); continue; }
        const char *r = NULL;
        switch (*++v) {
        case 'h': r = h; break;
        case 'n': r = name; break;
        case 'p': r = port; break;
        case 'r': r = c->user ? c->user : local_user(); break;
        case 'u': r = local_user(); break;
        case 'd': r = home; break;
        case '%': r = "%"; break;
        default: { char t[2] = {'%', *v}; kcm_buf_add(&b, t, 2); continue; }
        }
        kcm_buf_add(&b, r, strlen(r));
    }
    kcm_buf_add(&b, "", 0);
    free(h);
    return b.p;
}

struct parse {
    const char *name;
    struct kcm_ssh_cfg *c;
    int user_cfg;
    char **msg;
};

static int parse_file(struct parse *ps, const char *path, int depth);

static int do_include(struct parse *ps, char **w, int n, const char *from, int line, int depth)
{
    for (int i = 1; i < n; i++) {
        char *pat;
        if (w[i][0] == '~' || w[i][0] == '/') {
            pat = kcm_ssh_expand_home(w[i]);
        } else if (ps->user_cfg) {
            char *rel = kcm_ssh_fmt("~/.ssh/%s", w[i]);
            pat = kcm_ssh_expand_home(rel);
            free(rel);
        } else {
            pat = kcm_ssh_fmt("/etc/ssh/%s", w[i]);
        }
        glob_t g;
        int gr = glob(pat, 0, NULL, &g);
        free(pat);
        if (gr == GLOB_NOMATCH) continue;
        if (gr != 0) { *ps->msg = kcm_ssh_fmt("%s:%d: Include %s: cannot expand", from, line, w[i]); return -1; }
        for (size_t k = 0; k < g.gl_pathc; k++) {
            if (parse_file(ps, g.gl_pathv[k], depth + 1) != 0) { globfree(&g); return -1; }
        }
        globfree(&g);
    }
    return 0;
}

/* Match criteria; 1 = the block applies. A line with `exec` never applies
 * (negated or not): kcmrun runs no local command to decide. */
static int match_block(struct parse *ps, char **w, int n, const char *file, int line)
{
    int ok = 1, exec = 0;
    for (int i = 1; i < n; i++) {
        const char *crit = w[i];
        int neg = crit[0] == '!';
        if (neg) crit++;
        int r;
        if (strcasecmp(crit, "all") == 0) { r = 1; }
        else if (strcasecmp(crit, "canonical") == 0) { r = 0; }
        else if (strcasecmp(crit, "final") == 0) { r = 1; }
        else {
            if (i + 1 >= n) {
                *ps->msg = kcm_ssh_fmt("%s:%d: Match %s needs an argument", file, line, crit);
                return -1;
            }
            char *arg = w[++i];
            if (strcasecmp(crit, "host") == 0) {
                char *h = host_now(ps->name, ps->c);
                r = list_match(h, arg, 1) == 1;
                free(h);
            } else if (strcasecmp(crit, "originalhost") == 0) {
                r = list_match(ps->name, arg, 1) == 1;
            } else if (strcasecmp(crit, "user") == 0) {
                r = list_match(ps->c->user ? ps->c->user : local_user(), arg, 0) == 1;
            } else if (strcasecmp(crit, "localuser") == 0) {
                r = list_match(local_user(), arg, 0) == 1;
            } else if (strcasecmp(crit, "exec") == 0) {
                r = 0;
                exec = 1;
            } else {
                *ps->msg = kcm_ssh_fmt("%s:%d: unsupported Match criterion '%s' (kcmrun reads all, host, "
                                       "originalhost, user, localuser, final, canonical; exec never matches)",
                                       file, line, crit);
                return -1;
            }
        }
        if (neg) r = !r;
        if (!r) ok = 0;
    }
    return exec ? 0 : ok;
}

/* One keyword's value; 0 ok, -1 with *msg. rest: the raw text after the
 * keyword (ProxyCommand is a shell command line, taken verbatim). */
static int option(struct parse *ps, char **w, int n, const char *rest, const char *path, int lineno)
{
    struct kcm_ssh_cfg *c = ps->c;
    const char *k = w[0];
    if (strcasecmp(k, "HostName") == 0) {
        if (!c->hostname) c->hostname = expand(w[1], ps->name, c);
    } else if (strcasecmp(k, "User") == 0) {
        if (!c->user) c->user = expand(w[1], ps->name, c);
    } else if (strcasecmp(k, "Port") == 0) {
        if (!c->port) {
            char *e;
            errno = 0;
            long p = strtol(w[1], &e, 10);
            if (errno || *e || e == w[1] || p < 1 || p > 65535) {
                *ps->msg = kcm_ssh_fmt("%s:%d: Port %s is not a TCP port (1-65535)", path, lineno, w[1]);
                return -1;
            }
            c->port = (int)p;
        }
    } else if (strcasecmp(k, "IdentityFile") == 0) {
        /* tokens expand once parsing is done (%h, %r are the final values) */
        if (c->n_identity < KCM_SSH_CFG_MAX_ID) c->identity[c->n_identity++] = xstrdup(w[1]);
    } else if (strcasecmp(k, "HostKeyAlias") == 0) {
        if (!c->hostkeyalias) { c->hostkeyalias = xstrdup(w[1]); lower(c->hostkeyalias); }
    } else if (strcasecmp(k, "ProxyCommand") == 0 || strcasecmp(k, "ProxyJump") == 0) {
        if (!c->proxy_set) {
            c->proxy_set = 1;
            int jump = strcasecmp(k, "ProxyJump") == 0;
            if (strcmp(w[1], "none") != 0) {
                if (jump) {
                    char *cmd = kcm_ssh_jump_command(w[1], ps->msg);
                    if (!cmd) {
                        char *why = *ps->msg;
                        *ps->msg = kcm_ssh_fmt("%s:%d: ProxyJump %s: %s", path, lineno, w[1], why);
                        free(why);
                        return -1;
                    }
                    free(cmd);
                    c->proxyjump = xstrdup(w[1]);
                } else {
                    c->proxycommand = xstrdup(rest);
                }
            }
        }
    } else if (strcasecmp(k, "UserKnownHostsFile") == 0 || strcasecmp(k, "GlobalKnownHostsFile") == 0) {
        /* a list of files, all read (ssh_hostkey.c); "none": no file */
        int user = strcasecmp(k, "UserKnownHostsFile") == 0;
        int *set = user ? &c->user_kh_set : &c->global_kh_set;
        int *nf = user ? &c->n_user_kh : &c->n_global_kh;
        char **files = user ? c->user_kh : c->global_kh;
        if (!*set) {
            *set = 1;
            for (int i = 1; i < n && *nf < KCM_SSH_CFG_MAX_KH; i++)
                if (strcasecmp(w[i], "none") != 0) files[(*nf)++] = xstrdup(w[i]);
        }
        if (user && !c->known_hosts) c->known_hosts = xstrdup(w[1]);
    }
    return 0;
}

static int parse_file(struct parse *ps, const char *path, int depth)
{
    if (depth > MAX_DEPTH) { *ps->msg = kcm_ssh_fmt("%s: Include nested too deeply", path); return -1; }
    FILE *f = kcm_ssh_open_text(path, "ssh config", ps->msg);
    if (!f) {
        if (errno != ENOENT) return -1;
        if (depth > 0) return 0;
        *ps->msg = kcm_ssh_fmt("ssh config %s: no such file", path);
        return -1;
    }
    char *buf = malloc(KCM_SSH_LINE_MAX + 2), *raw = malloc(KCM_SSH_LINE_MAX + 2);
    /* a line of n bytes has at most n/2 + 1 words */
    char **w = malloc(sizeof *w * (KCM_SSH_LINE_MAX / 2 + 2));
    size_t *start = malloc(sizeof *start * (KCM_SSH_LINE_MAX / 2 + 2));
    if (!buf || !raw || !w || !start) abort();
    int lineno = 0, active = 1, rc = 0;
    long len;
    while ((len = kcm_ssh_read_line(f, buf)) != -1) {
        lineno++;
        if (len == -2) {
            *ps->msg = kcm_ssh_fmt("%s:%d: line longer than %d KiB; ssh_config lines are short, is this the "
                                   "right file?", path, lineno, KCM_SSH_LINE_MAX / 1024);
            rc = -1;
            break;
        }
        /* trailing whitespace is no part of a value (OpenSSH strips it) */
        while (len > 0 && strchr(" \t\r\n\f", buf[len - 1])) buf[--len] = '\0';
        memcpy(raw, buf, (size_t)len + 1);
        int n = split(buf, w, start);
        if (n < 0) { *ps->msg = kcm_ssh_fmt("%s:%d: unterminated quote", path, lineno); rc = -1; break; }
        if (n == 0 || w[0][0] == '#') continue;
        const char *k = w[0];
        if (strcasecmp(k, "Host") == 0) {
            active = host_line(ps->name, w + 1, n - 1);
            continue;
        }
        if (strcasecmp(k, "Match") == 0) {
            int r = match_block(ps, w, n, path, lineno);
            if (r < 0) { rc = -1; break; }
            active = r;
            continue;
        }
        if (!active) continue;
        if (strcasecmp(k, "Include") == 0) {
            if (do_include(ps, w, n, path, lineno, depth) != 0) { rc = -1; break; }
            continue;
        }
        if (n < 2) continue;
        if (option(ps, w, n, raw + start[1], path, lineno) != 0) { rc = -1; break; }
    }
    free(buf); free(raw); free(w); free(start);
    fclose(f);
    return rc;
}

int kcm_ssh_config_resolve_as(const char *path, const char *name, const char *user, const char *host,
                              struct kcm_ssh_cfg *out, char **msg)
{
    memset(out, 0, sizeof *out);
    if (user) out->user = xstrdup(user);
    if (host) out->hostname = xstrdup(host);
    if (!path) return 0;
    /* Include of a relative path is relative to ~/.ssh for a user's
     * config, /etc/ssh for the system one. */
    struct parse ps = { name, out, strncmp(path, "/etc/ssh/", 9) != 0, msg };
    int rc = parse_file(&ps, path, 0);
    if (rc != 0) { kcm_ssh_cfg_free(out); return rc; }
    if (out->hostname) lower(out->hostname);
    for (int i = 0; i < out->n_identity; i++) {
        char *e = expand(out->identity[i], name, out);
        free(out->identity[i]);
        out->identity[i] = e;
    }
    if (out->known_hosts) {
        char *e = expand(out->known_hosts, name, out);
        free(out->known_hosts);
        out->known_hosts = e;
    }
    for (int i = 0; i < out->n_user_kh + out->n_global_kh; i++) {
        char **f = i < out->n_user_kh ? &out->user_kh[i] : &out->global_kh[i - out->n_user_kh];
        char *e = expand(*f, name, out);
        free(*f);
        *f = e;
    }
    return 0;
}

int kcm_ssh_config_resolve(const char *path, const char *name, struct kcm_ssh_cfg *out, char **msg)
{
    return kcm_ssh_config_resolve_as(path, name, NULL, NULL, out, msg);
}

/* A hop is [user@]host[:port] of plain characters: it is pasted into a
 * command line run by a shell. */
static int hop_ok(const char *h)
{
    if (!*h || *h == '-') return 0;
    for (; *h; h++)
        if (!isalnum((unsigned char)*h) && !strchr("@:._-[]", *h)) return 0;
    return 1;
}

char *kcm_ssh_jump_command(const char *jump, char **msg)
{
    const char *comma = strchr(jump, ',');
    char *first = comma ? strndup(jump, (size_t)(comma - jump)) : xstrdup(jump);
    if (!first) abort();
    char *rest = comma ? xstrdup(comma + 1) : NULL;
    char *user = NULL, *host = first, *port = NULL, *cmd = NULL;
    int ok = hop_ok(first) && (!rest || (*rest && strspn(rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                          "0123456789@:._-[],") == strlen(rest) && *rest != '-'));
    if (ok) {
        char *at = strrchr(first, '@');
        if (at) { *at = '\0'; user = first; host = at + 1; }
        if (*host == '[') {
            char *close = strchr(host, ']');
            if (!close) ok = 0;
            else {
                *close = '\0';
                if (close[1] == ':') port = close + 2;
                else if (close[1]) ok = 0;
                host++;
            }
        } else {
            char *colon = strrchr(host, ':');
            if (colon) { *colon = '\0'; port = colon + 1; }
        }
        if (!*host || *host == '-' || (user && (!*user || *user == '-')) || (port && !*port)) ok = 0;
        if (port && strspn(port, "0123456789") != strlen(port)) ok = 0;
    }
    if (!ok) {
        *msg = kcm_ssh_fmt("not a list of [user@]host[:port] hops");
    } else {
        /* the shape libssh 0.10's own parser gives a ProxyJump */
        cmd = kcm_ssh_fmt("ssh%s%s%s%s%s%s -W '[%%h]:%%p' %s", user ? " -l " : "", user ? user : "",
                          port ? " -p " : "", port ? port : "", rest ? " -J " : "", rest ? rest : "", host);
    }
    free(first);
    free(rest);
    return cmd;
}
