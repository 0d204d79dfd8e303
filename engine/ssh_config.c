/* ssh_config lookup for one node name, the way OpenSSH reads it: Host
 * patterns are matched against the name as given (never against a HostName
 * an earlier block substituted), wildcards '*' '?' and '!negation', the first
 * value obtained for an option wins (IdentityFile accumulates), Include and
 * Match (all, host, originalhost, user, localuser; exec never matches).
 * libssh's own parser re-matches later blocks against the substituted
 * address, so a trailing `Host m*` block was silently ignored. */
#include "ssh_int.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
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
    for (int i = 0; i < c->n_identity; i++) free(c->identity[i]);
    for (int i = 0; i < c->n_user_kh; i++) free(c->user_kh[i]);
    for (int i = 0; i < c->n_global_kh; i++) free(c->global_kh[i]);
    memset(c, 0, sizeof *c);
}

/* Splits a line into words: whitespace (and one '=' after the keyword)
 * separated, "double quotes" keep spaces. Returns the count, -1 on an
 * unterminated quote. Words point into `line`, which is modified. */
static int split(char *line, char **w, int max)
{
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        while (*p == ' ' || *p == '\t' || (n == 1 && *p == '=')) p++;
        if (!*p || *p == '\n' || *p == '\r') break;
        if (*p == '"') {
            char *e = strchr(++p, '"');
            if (!e) return -1;
            *e = '\0';
            w[n++] = p;
            p = e + 1;
            continue;
        }
        w[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && !(n == 1 && *p == '=')) p++;
        if (*p) *p++ = '\0';
    }
    return n;
}

/* Patterns: one per word for Host, comma lists for Match (as OpenSSH); a
 * negated match wins (returns -1), else 1 if any positive matched, else 0. */
static int match_list(const char *name, char **pats, int n, int commas)
{
    int got = 0;
    for (int i = 0; i < n; i++) {
        char *list = strdup(pats[i]), *save = NULL;
        if (!list) abort();
        const char *sep = commas ? "," : "";
        for (char *p = commas ? strtok_r(list, sep, &save) : list; p;
             p = commas ? strtok_r(NULL, sep, &save) : NULL) {
            int neg = *p == '!';
            if (fnmatch(neg ? p + 1 : p, name, FNM_CASEFOLD) == 0) {
                if (neg) { free(list); return -1; }
                got = 1;
            }
        }
        free(list);
    }
    return got;
}

static const char *local_user(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "";
}

/* %h %r %u %d %% in IdentityFile/UserKnownHostsFile/HostName; ~ first. */
static char *expand(const char *v, const char *name, const struct kcm_ssh_cfg *c)
{
    struct kcm_buf b = {0};
    const char *home = getenv("HOME");
    if (!home) home = "";
    if (v[0] == '~' && (v[1] == '/' || v[1] == '\0')) { kcm_buf_add(&b, home, strlen(home)); v++; }
    for (; *v; v++) {
        if (*v != '%' || !v[1]) { kcm_buf_add(&b, v, 1); continue; }
        const char *r = NULL;
        switch (*++v) {
        case 'h': r = c->hostname ? c->hostname : name; break;
        case 'n': r = name; break;
        case 'r': r = c->user ? c->user : local_user(); break;
        case 'u': r = local_user(); break;
        case 'd': r = home; break;
        case '%': r = "%"; break;
        default: { char t[2] = {'%', *v}; kcm_buf_add(&b, t, 2); continue; }
        }
        kcm_buf_add(&b, r, strlen(r));
    }
    kcm_buf_add(&b, "", 0);
    return b.p;
}

static int parse_file(const char *path, const char *name, struct kcm_ssh_cfg *c, int depth, int user_cfg,
                      char **msg);

static int do_include(char **w, int n, const char *from, const char *name, struct kcm_ssh_cfg *c, int depth,
                      int user_cfg, int line, char **msg)
{
    for (int i = 1; i < n; i++) {
        char *pat;
        if (w[i][0] == '~' || w[i][0] == '/') {
            pat = kcm_ssh_expand_home(w[i]);
        } else if (user_cfg) {
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
        if (gr != 0) { *msg = kcm_ssh_fmt("%s:%d: Include %s: cannot expand", from, line, w[i]); return -1; }
        for (size_t k = 0; k < g.gl_pathc; k++) {
            if (parse_file(g.gl_pathv[k], name, c, depth + 1, user_cfg, msg) != 0) { globfree(&g); return -1; }
        }
        globfree(&g);
    }
    return 0;
}

/* Match criteria; 1 = the block applies. */
static int match_block(char **w, int n, const char *name, const struct kcm_ssh_cfg *c, const char *file,
                       int line, char **msg)
{
    int ok = 1;
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
                *msg = kcm_ssh_fmt("%s:%d: Match %s needs an argument", file, line, crit);
                return -1;
            }
            char *arg = w[++i];
            if (strcasecmp(crit, "host") == 0) r = match_list(c->hostname ? c->hostname : name, &arg, 1, 1) == 1;
            else if (strcasecmp(crit, "originalhost") == 0) r = match_list(name, &arg, 1, 1) == 1;
            else if (strcasecmp(crit, "user") == 0) r = match_list(c->user ? c->user : local_user(), &arg, 1, 1) == 1;
            else if (strcasecmp(crit, "localuser") == 0) r = match_list(local_user(), &arg, 1, 1) == 1;
            else if (strcasecmp(crit, "exec") == 0) r = 0; /* kcmrun runs no local commands from ssh_config */
            else {
                *msg = kcm_ssh_fmt("%s:%d: unsupported Match criterion '%s'", file, line, crit);
                return -1;
            }
        }
        if (neg) r = !r;
        if (!r) ok = 0;
    }
    return ok;
}

static int parse_file(const char *path, const char *name, struct kcm_ssh_cfg *c, int depth, int user_cfg,
                      char **msg)
{
    if (depth > MAX_DEPTH) { *msg = kcm_ssh_fmt("%s: Include nested too deeply", path); return -1; }
    FILE *f = fopen(path, "r");
    if (!f) {
        if (depth > 0 && errno == ENOENT) return 0;
        *msg = kcm_ssh_fmt("ssh config %s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    int lineno = 0, active = 1, rc = 0;
    while (getline(&buf, &cap, f) >= 0) {
        lineno++;
        char *w[64];
        int n = split(buf, w, 64);
        if (n < 0) { *msg = kcm_ssh_fmt("%s:%d: unterminated quote", path, lineno); rc = -1; break; }
        if (n == 0 || w[0][0] == '#') continue;
        const char *k = w[0];
        if (strcasecmp(k, "Host") == 0) {
            active = match_list(name, w + 1, n - 1, 0) == 1;
            continue;
        }
        if (strcasecmp(k, "Match") == 0) {
            int r = match_block(w, n, name, c, path, lineno, msg);
            if (r < 0) { rc = -1; break; }
            active = r;
            continue;
        }
        if (!active) continue;
        if (strcasecmp(k, "Include") == 0) {
            if (do_include(w, n, path, name, c, depth, user_cfg, lineno, msg) != 0) { rc = -1; break; }
            continue;
        }
        if (n < 2) continue;
        if (strcasecmp(k, "HostName") == 0) {
            if (!c->hostname) c->hostname = expand(w[1], name, c);
        } else if (strcasecmp(k, "User") == 0) {
            if (!c->user) c->user = expand(w[1], name, c);
        } else if (strcasecmp(k, "Port") == 0) {
            if (!c->port) {
                char *e;
                long p = strtol(w[1], &e, 10);
                if (*e || p < 1 || p > 65535) {
                    *msg = kcm_ssh_fmt("%s:%d: Port %s is not a TCP port", path, lineno, w[1]);
                    rc = -1;
                    break;
                }
                c->port = (int)p;
            }
        } else if (strcasecmp(k, "IdentityFile") == 0) {
            /* tokens expand once parsing is done (%h, %r are the final values) */
            if (c->n_identity < KCM_SSH_CFG_MAX_ID && !(c->identity[c->n_identity++] = strdup(w[1]))) abort();
        } else if (strcasecmp(k, "UserKnownHostsFile") == 0 || strcasecmp(k, "GlobalKnownHostsFile") == 0) {
            /* a list of files, all read (ssh_hostkey.c); "none": no file */
            int user = strcasecmp(k, "UserKnownHostsFile") == 0;
            int *set = user ? &c->user_kh_set : &c->global_kh_set;
            int *nf = user ? &c->n_user_kh : &c->n_global_kh;
            char **files = user ? c->user_kh : c->global_kh;
            if (!*set) {
                *set = 1;
                for (int i = 1; i < n && *nf < KCM_SSH_CFG_MAX_KH; i++)
                    if (strcasecmp(w[i], "none") != 0 && !(files[(*nf)++] = strdup(w[i]))) abort();
            }
            if (user && !c->known_hosts && !(c->known_hosts = strdup(w[1]))) abort();
        }
    }
    free(buf);
    fclose(f);
    return rc;
}

int kcm_ssh_config_resolve(const char *path, const char *name, struct kcm_ssh_cfg *out, char **msg)
{
    memset(out, 0, sizeof *out);
    if (!path) return 0;
    /* Include of a relative path is relative to ~/.ssh for a user's
     * config, /etc/ssh for the system one. */
    int user_cfg = strncmp(path, "/etc/ssh/", 9) != 0;
    int rc = parse_file(path, name, out, 0, user_cfg, msg);
    if (rc != 0) { kcm_ssh_cfg_free(out); return rc; }
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
