/* Host key policy against every known_hosts file OpenSSH would read: the
 * user files (inventory known_hosts, else ssh_config UserKnownHostsFile,
 * else ~/.ssh/known_hosts and ~/.ssh/known_hosts2) and the global ones
 * (ssh_config GlobalKnownHostsFile, else /etc/ssh/ssh_known_hosts and
 * /etc/ssh/ssh_known_hosts2). A different key of the offered type in any of
 * them is a changed key; --accept-new records only a host no file knows.
 *
 * We read known_hosts ourselves instead of relying on
 * ssh_session_is_known_server(): a changed key must be reported with BOTH
 * fingerprints (the recorded one and the offered one), and libssh does not
 * give back the recorded key. Handles plain and hashed (|1|salt|hash)
 * host fields, comma lists, * and ? wildcards, !negation, [host]:port,
 * and the @revoked / @cert-authority markers. */
#include "ssh_int.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

/* Serialises appends by parallel connect jobs to the same file. */
static pthread_mutex_t append_mu = PTHREAD_MUTEX_INITIALIZER;

char *kcm_ssh_fingerprint_b64(const char *b64)
{
    size_t n;
    unsigned char *blob = kcm_b64_decode(b64, strlen(b64), &n);
    if (!blob) return kcm_ssh_fmt("(undecodable key)");
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(blob, n, md);
    free(blob);
    char *enc = kcm_b64_encode(md, sizeof md, 0);
    char *fp = kcm_ssh_fmt("SHA256:%s", enc ? enc : "?");
    free(enc);
    return fp;
}

/* OpenSSH match_pattern() for known_hosts: case-insensitive */
static int wild_match(const char *s, const char *p) { return kcm_ssh_pattern(s, p, 1); }

static int hashed_match(const char *field, const char *name)
{
    /* |1|base64(salt)|base64(HMAC-SHA1(salt, name)) */
    const char *salt_b64 = field + 3;
    const char *bar = strchr(salt_b64, '|');
    if (!bar) return 0;
    char *salt_s = strndup(salt_b64, (size_t)(bar - salt_b64));
    size_t saltlen = 0, hashlen = 0;
    unsigned char *salt = salt_s ? kcm_b64_decode(salt_s, strlen(salt_s), &saltlen) : NULL;
    unsigned char *hash = kcm_b64_decode(bar + 1, strlen(bar + 1), &hashlen);
    int ok = 0;
    if (salt && hash && hashlen == 20) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (HMAC(EVP_sha1(), salt, (int)saltlen, (const unsigned char *)name, strlen(name),
                 md, &mdlen) && mdlen == 20)
            ok = memcmp(md, hash, 20) == 0;
    }
    free(salt_s); free(salt); free(hash);
    return ok;
}

/* 1 if the hosts field of a line names `name`. */
static int hosts_match(const char *field, const char *name)
{
    if (strncmp(field, "|1|", 3) == 0) return hashed_match(field, name);
    char *dup = strdup(field);
    if (!dup) return 0;
    int pos = 0, neg = 0;
    char *save = NULL;
    for (char *pat = strtok_r(dup, ",", &save); pat; pat = strtok_r(NULL, ",", &save)) {
        int negate = pat[0] == '!';
        if (wild_match(name, pat + negate)) {
            if (negate) neg = 1; else pos = 1;
        }
    }
    free(dup);
    return pos && !neg;
}

/* Same public key blob (compared decoded, so base64 padding differences
 * never count as a changed key). */
static int same_blob(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *da = kcm_b64_decode(a, strlen(a), &na), *db = kcm_b64_decode(b, strlen(b), &nb);
    int eq = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da); free(db);
    return eq;
}

struct kh_result {
    int match;            /* exact key recorded */
    int revoked;
    int changed_line;     /* first line with a different key for this host */
    int same_type_line;   /* first line with a different key of the offered type */
    char *old_type, *old_b64;
};

static int scan(const char *file, const char *name, const char *type, const char *b64,
                struct kh_result *r, char **msg)
{
    FILE *f = kcm_ssh_open_text(file, "known_hosts", msg);
    if (!f) return errno == ENOENT ? 0 : -1;
    char *line = malloc(KCM_SSH_LINE_MAX + 2);
    if (!line) abort();
    int lineno = 0, rc = 0;
    long len;
    while ((len = kcm_ssh_read_line(f, line)) != -1) {
        lineno++;
        if (len == -2) {
            *msg = kcm_ssh_fmt("known_hosts %s:%d: line longer than %d KiB; is this the right file?", file,
                               lineno, KCM_SSH_LINE_MAX / 1024);
            rc = -1;
            break;
        }
        char *save = NULL;
        char *tok = strtok_r(line, " \t\r\n", &save);
        if (!tok || tok[0] == '#') continue;
        int revoked_marker = 0;
        if (tok[0] == '@') {
            if (strcmp(tok, "@revoked") == 0) revoked_marker = 1;
            else continue; /* @cert-authority: host certificates are not used */
            tok = strtok_r(NULL, " \t\r\n", &save);
            if (!tok) continue;
        }
        char *hosts = tok;
        char *ktype = strtok_r(NULL, " \t\r\n", &save);
        char *kb64 = strtok_r(NULL, " \t\r\n", &save);
        if (!ktype || !kb64) continue;
        if (!hosts_match(hosts, name)) continue;
        if (revoked_marker) {
            if (same_blob(kb64, b64)) r->revoked = lineno;
            continue;
        }
        if (strcmp(ktype, type) == 0 && same_blob(kb64, b64)) {
            r->match = 1;
        } else {
            int same_type = strcmp(ktype, type) == 0;
            if (same_type && !r->same_type_line) r->same_type_line = lineno;
            /* report the key of the offered type when there is one */
            if (!r->changed_line || (same_type && r->same_type_line == lineno)) {
                r->changed_line = lineno;
                free(r->old_type); free(r->old_b64);
                r->old_type = strdup(ktype);
                r->old_b64 = strdup(kb64);
            }
        }
    }
    free(line);
    fclose(f);
    return rc;
}

/* The folder of a known_hosts file, private as ~/.ssh is. */
static int mkdir_parent(const char *file)
{
    char *dir = strdup(file);
    if (!dir) return -1;
    char *slash = strrchr(dir, '/');
    int rc = 0, changed = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        rc = kcm_mkdir_p(dir, 0700, &changed);
    }
    free(dir);
    return rc;
}

static int record(const char *file, const char *name, const char *type, const char *b64, char **msg)
{
    pthread_mutex_lock(&append_mu);
    int rc = -1;
    if (mkdir_parent(file) != 0) {
        *msg = kcm_ssh_fmt("cannot create the folder of %s: %s", file, strerror(errno));
        goto out;
    }
    int fd = open(file, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        *msg = kcm_ssh_fmt("cannot write known_hosts %s: %s", file, strerror(errno));
        goto out;
    }
    /* Keep the file line-oriented even if its last line lacks a newline. */
    char last = '\n';
    off_t end = lseek(fd, 0, SEEK_END);
    if (end > 0 && pread(fd, &last, 1, end - 1) != 1) last = '\n';
    char *entry = kcm_ssh_fmt("%s%s %s %s\n", last == '\n' ? "" : "\n", name, type, b64);
    size_t len = strlen(entry);
    ssize_t w = write(fd, entry, len);
    int serr = errno;
    if (w == (ssize_t)len && fsync(fd) == 0) rc = 0;
    else *msg = kcm_ssh_fmt("cannot write known_hosts %s: %s", file,
                            w < 0 ? strerror(serr) : "short write");
    free(entry);
    close(fd);
out:
    pthread_mutex_unlock(&append_mu);
    return rc;
}

static char *file_list(const char *const *files, int n)
{
    struct kcm_buf b = {0};
    for (int i = 0; i < n; i++) {
        if (i) kcm_buf_add(&b, ", ", 2);
        kcm_buf_add(&b, files[i], strlen(files[i]));
    }
    if (!b.p) return kcm_ssh_fmt("(no known_hosts file)");
    return b.p;
}

int kcm_ssh_verify_hostkey(ssh_session s, const char *host, int port,
                           const char *const *files, int nfiles, int nuser,
                           int accept_new, char **msg)
{
    ssh_key key = NULL;
    char *b64 = NULL, *fp = NULL, *name = NULL, *all = NULL;
    struct kh_result r = {0};
    int rc = -1, match = 0;
    /* where the reported line is */
    const char *revoked_file = NULL, *changed_file = NULL;
    int revoked_line = 0, changed_line = 0, changed_same = 0;
    char *old_type = NULL, *old_b64 = NULL;

    if (ssh_get_server_publickey(s, &key) != SSH_OK) {
        *msg = kcm_ssh_fmt("no host key from server: %s", ssh_get_error(s));
        return -1;
    }
    const char *type = ssh_key_type_to_char(ssh_key_type(key));
    if (!type || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
        *msg = kcm_ssh_fmt("cannot read the server's host key");
        goto out;
    }
    fp = kcm_ssh_fingerprint_b64(b64);
    name = port == 22 ? kcm_ssh_fmt("%s", host) : kcm_ssh_fmt("[%s]:%d", host, port);
    all = file_list(files, nfiles);

    for (int i = 0; i < nfiles; i++) {
        memset(&r, 0, sizeof r);
        if (scan(files[i], name, type, b64, &r, msg) != 0) goto out;
        if (r.revoked && !revoked_file) revoked_file = files[i], revoked_line = r.revoked;
        if (r.match) match = 1;
        /* a key of the offered type beats one of another type as "the old key" */
        if (r.changed_line && (!changed_file || (r.same_type_line && !changed_same))) {
            changed_file = files[i];
            changed_line = r.changed_line;
            changed_same = r.same_type_line != 0;
            free(old_type); free(old_b64);
            old_type = r.old_type, old_b64 = r.old_b64;
            r.old_type = r.old_b64 = NULL;
        }
        free(r.old_type); free(r.old_b64);
        r.old_type = r.old_b64 = NULL;
    }
    if (revoked_file) {
        *msg = kcm_ssh_fmt("host key %s (%s) of %s is marked @revoked in %s:%d",
                           fp, type, name, revoked_file, revoked_line);
    } else if (changed_file && (changed_same || !match)) {
        /* a different key of this type anywhere, or only other keys known */
        char *oldfp = kcm_ssh_fingerprint_b64(old_b64);
        *msg = kcm_ssh_fmt("HOST KEY CHANGED for %s: %s:%d records %s (%s) but the server "
                           "offers %s (%s); this may be a man-in-the-middle attack. If the "
                           "change is expected, remove the old entry "
                           "(ssh-keygen -R '%s' -f %s) and rerun with --accept-new",
                           name, changed_file, changed_line, oldfp, old_type, fp, type,
                           name, changed_file);
        free(oldfp);
    } else if (match) {
        rc = 0;
    } else if (accept_new && nuser > 0) {
        rc = record(files[0], name, type, b64, msg);
    } else if (accept_new) {
        *msg = kcm_ssh_fmt("host key of %s is unknown (%s key %s) and there is no user known_hosts "
                           "file to record it in (UserKnownHostsFile none)", name, type, fp);
    } else {
        *msg = kcm_ssh_fmt("host key of %s is unknown: %s key %s is not in %s; verify the "
                           "fingerprint, then rerun with --accept-new to record it",
                           name, type, fp, all);
    }
out:
    free(r.old_type); free(r.old_b64);
    free(old_type); free(old_b64);
    free(name); free(fp); free(all);
    ssh_string_free_char(b64);
    ssh_key_free(key);
    return rc;
}
