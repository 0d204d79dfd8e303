/* libFuzzer target: known_hosts handling (engine/ssh_hostkey.c).
 *
 * The file is compiled in whole so its static scanner and recorder are
 * reachable without a live ssh session: kcm_ssh_verify_hostkey() is only
 * the glue between libssh's server key and these two.
 *
 * Input: first line = the host name looked up ("h", "[h]:2222"), the rest
 * = the known_hosts file. The server offers KEY_B64 (ssh-ed25519).
 * Invariants beyond "no crash, no leak, no UB":
 *  - a changed key's recorded blob has a fingerprint (the error message);
 *  - when nothing matched and the name is a plain host name, recording it
 *    (what --accept-new does) succeeds and a second scan then finds it.
 */
#include "../../engine/ssh_hostkey.c"

#include <stdint.h>

static const char KEY_TYPE[] = "ssh-ed25519";
static const char KEY_B64[] = "AAAAC3NzaC1lZDI1NTE5AAAAIHSBluZFgs0sAI1WSgj+Zq1DgtN3931s50FbZ/1NBcur";

static char file[64];

static void cleanup(void)
{
    unlink(file);
}

static void setup(void)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(file, sizeof file, "%s/kcm-fuzz-kh-%d", dir, (int)getpid());
    atexit(cleanup);
}

static int plain_name(const char *s, size_t n)
{
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(".-:[]", s[i]))
            return 0;
    return 1;
}

static void write_file(const uint8_t *p, size_t n)
{
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        abort();
    if (n && write(fd, p, n) != (ssize_t)n)
        abort();
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!file[0])
        setup();
    const uint8_t *nl = memchr(data, '\n', size);
    size_t namelen = nl ? (size_t)(nl - data) : 0;
    char *name = nl ? strndup((const char *)data, namelen) : strdup("host");
    const uint8_t *body = nl ? nl + 1 : data;
    size_t bodylen = size - (size_t)(body - data);
    write_file(body, bodylen);

    struct kh_result r = {0};
    char *msg = NULL;
    if (scan(file, name, KEY_TYPE, KEY_B64, &r, &msg) != 0) {
        /* the one refusal of a readable file: a line over 64 KiB, in one line */
        if (msg && strstr(msg, "line longer than 64 KiB") && !strchr(msg, '\n')) {
            free(msg);
            free(name);
            free(r.old_type);
            free(r.old_b64);
            return 0;
        }
        fprintf(stderr, "scan failed on a readable file: %s\n", msg);
        abort();
    }
    if (r.changed_line) {
        if (!r.old_type || !r.old_b64)
            abort();
        free(kcm_ssh_fingerprint_b64(r.old_b64));
    }
    int fresh = !r.revoked && !r.match && !r.changed_line;
    free(r.old_type);
    free(r.old_b64);
    if (fresh && strlen(name) == namelen && plain_name(name, namelen)) {
        if (record(file, name, KEY_TYPE, KEY_B64, &msg) != 0) {
            fprintf(stderr, "record failed: %s\n", msg);
            abort();
        }
        struct kh_result r2 = {0};
        if (scan(file, name, KEY_TYPE, KEY_B64, &r2, &msg) != 0 || !r2.match || r2.revoked ||
            r2.changed_line) {
            fprintf(stderr, "recorded %s but the rescan says match=%d revoked=%d changed=%d\n",
                    name, r2.match, r2.revoked, r2.changed_line);
            abort();
        }
        free(r2.old_type);
        free(r2.old_b64);
    }
    free(msg);
    free(name);
    return 0;
}

#ifdef KCM_FUZZ_STANDALONE
#include "replay_main.h"
#endif
