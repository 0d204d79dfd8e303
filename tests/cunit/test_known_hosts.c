/* known_hosts handling (engine/ssh_hostkey.c), compiled in whole so its
 * scanner and recorder are testable without an ssh connection. ssh-keygen
 * is the oracle: it writes the keys, hashes the file (-H), finds hosts
 * (-F) and prints fingerprints (-l). */
#include "../../engine/ssh_hostkey.c"

#include "cunit.h"

static char dir[] = "/tmp/kcm-cunit-kh-XXXXXX";
static char kh[256];

static char *pubkey(const char *name, char **type)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ssh-keygen -q -t %s -N '' -C '' -f %s/%s && cat %s/%s.pub",
             name, dir, name, dir, name);
    char *out = cunit_sh(cmd, NULL);
    char *sp = strchr(out, ' ');
    CHECK(sp != NULL);
    *sp = 0;
    *type = strdup(out);
    char *b64 = strdup(sp + 1);
    b64[strcspn(b64, " \n")] = 0;
    free(out);
    return b64;
}

static void write_kh(const char *text)
{
    FILE *f = fopen(kh, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* What scan() says about `name` offering (type, b64). */
static struct kh_result lookup(const char *name, const char *type, const char *b64)
{
    struct kh_result r = {0};
    char *msg = NULL;
    CHECK(scan(kh, name, type, b64, &r, &msg) == 0);
    return r;
}

/* ssh-keygen -F: does OpenSSH find `name` in the file? */
static int openssh_finds(const char *name)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ssh-keygen -F '%s' -f %s >/dev/null 2>&1", name, kh);
    return system(cmd) == 0;
}

static void free_result(struct kh_result *r)
{
    free(r->old_type);
    free(r->old_b64);
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    snprintf(kh, sizeof kh, "%s/known_hosts", dir);
    char *t1, *t2;
    char *k1 = pubkey("ed25519", &t1);
    char *k2 = pubkey("ecdsa", &t2);
    char *text = kcm_ssh_fmt(
        "# comment line\n"
        "\n"
        "node1,169.254.77.101 %s %s\n"
        "[127.0.0.1]:2222 %s %s extra comment\n"
        "changed.example %s %s\n"
        "@revoked revoked.example %s %s\n"
        "@cert-authority *.example %s %s\n"
        "*.wild.example,!bad.wild.example %s %s\n"
        "short-line ssh-ed25519\n",
        t1, k1, t1, k1, t2, k2, t1, k1, t1, k1, t1, k1);
    write_kh(text);
    free(text);

    struct kh_result r = lookup("node1", t1, k1);
    CHECK(r.match && !r.revoked && !r.changed_line);
    CHECK(openssh_finds("node1"));
    r = lookup("169.254.77.101", t1, k1);
    CHECK(r.match);
    r = lookup("[127.0.0.1]:2222", t1, k1);
    CHECK(r.match);
    CHECK(openssh_finds("[127.0.0.1]:2222"));
    r = lookup("127.0.0.1", t1, k1);   /* port 22 is a different entry */
    CHECK(!r.match && !r.changed_line);
    CHECK(!openssh_finds("127.0.0.1"));

    /* a different key for a known host: the old one is reported */
    r = lookup("changed.example", t1, k1);
    CHECK(!r.match && r.changed_line == 5);
    CHECK_STR(r.old_type, t2);
    CHECK_STR(r.old_b64, k2);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ssh-keygen -l -f %s/ecdsa.pub | cut -d' ' -f2", dir);
    char *want_fp = cunit_sh(cmd, NULL);
    want_fp[strcspn(want_fp, "\n")] = 0;
    char *fp = kcm_ssh_fingerprint_b64(r.old_b64);
    CHECK_STR(fp, want_fp);
    free(fp);
    free(want_fp);
    free_result(&r);

    r = lookup("revoked.example", t1, k1);
    CHECK(r.revoked == 6 && !r.match);
    r = lookup("host.example", t1, k1);   /* @cert-authority lines are not host keys */
    CHECK(!r.match && !r.changed_line);
    r = lookup("a.wild.example", t1, k1);
    CHECK(r.match);
    CHECK(openssh_finds("a.wild.example"));
    r = lookup("bad.wild.example", t1, k1);   /* negated */
    CHECK(!r.match && !r.changed_line);   /* (ssh-keygen -F ignores negation; ssh does not) */
    r = lookup("NODE1", t1, k1);   /* host names are case-insensitive */
    CHECK(r.match);

    /* a pattern that makes a backtracking matcher exponential (libFuzzer
     * finding): must simply answer */
    text = kcm_ssh_fmt("*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?b %s %s\n", t1, k1);
    write_kh(text);
    free(text);
    r = lookup("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t1, k1);
    CHECK(!r.match && !r.changed_line);
    r = lookup("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", t1, k1);
    CHECK(r.match);

    /* hashed file (ssh-keygen -H): the same answers (it refuses invalid lines) */
    text = kcm_ssh_fmt("node1,169.254.77.101 %s %s\n[127.0.0.1]:2222 %s %s\nchanged.example %s %s\n",
                       t1, k1, t1, k1, t2, k2);
    write_kh(text);
    free(text);
    snprintf(cmd, sizeof cmd, "ssh-keygen -q -H -f %s >/dev/null 2>&1", kh);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "cat %s", kh);
    char *hashed = cunit_sh(cmd, NULL);
    CHECK(strstr(hashed, "|1|") != NULL && strstr(hashed, "node1") == NULL);
    free(hashed);
    r = lookup("node1", t1, k1);
    CHECK(r.match);
    r = lookup("169.254.77.101", t1, k1);
    CHECK(r.match);
    r = lookup("[127.0.0.1]:2222", t1, k1);
    CHECK(r.match);
    r = lookup("changed.example", t1, k1);
    CHECK(r.changed_line && !r.match);
    free_result(&r);
    r = lookup("node2", t1, k1);
    CHECK(!r.match && !r.changed_line);

    /* recording (--accept-new) appends a line OpenSSH reads, even after a
     * last line without a newline, and creates missing folders 0700 */
    text = kcm_ssh_fmt("node1 %s %s", t1, k1);
    write_kh(text);
    free(text);
    char *msg = NULL;
    CHECK(record(kh, "[node2]:2222", t2, k2, &msg) == 0);
    CHECK(openssh_finds("[node2]:2222") && openssh_finds("node1"));
    r = lookup("[node2]:2222", t2, k2);
    CHECK(r.match);
    r = lookup("node1", t1, k1);
    CHECK(r.match);
    char *nested = kcm_ssh_fmt("%s/new/dir/known_hosts", dir);
    CHECK(record(nested, "node3", t1, k1, &msg) == 0);
    struct stat st;
    CHECK(stat(nested, &st) == 0 && (st.st_mode & 0777) == 0600);
    char *parent = kcm_ssh_fmt("%s/new", dir);
    CHECK(stat(parent, &st) == 0 && (st.st_mode & 0777) == 0700);
    free(nested);
    free(parent);

    /* a missing file is "unknown host", an unreadable path an error */
    struct kh_result none = {0};
    CHECK(scan("/nonexistent/known_hosts", "node1", t1, k1, &none, &msg) == 0 && !none.match);
    CHECK(scan(dir, "node1", t1, k1, &none, &msg) == -1 || !none.match);
    free(msg);

    fp = kcm_ssh_fingerprint_b64("!!!");
    CHECK(strstr(fp, "undecodable") != NULL);
    free(fp);
    free(t1), free(t2), free(k1), free(k2);

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    printf("known_hosts: ok\n");
    return 0;
}
