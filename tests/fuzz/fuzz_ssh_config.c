/* libFuzzer target: ssh_config reading (engine/ssh_config.c), the file
 * kcmrun alone parses (libssh never does).
 *
 * Input: first line = "NAME [USER]" (the node name, the inventory's user),
 * the rest = the config file. Inputs naming Include are skipped: they would
 * read the machine's own files, which is no property of the parser.
 * Invariants beyond "no crash, no leak, no UB":
 *  - a refusal is one line (no newline in the message);
 *  - a resolved HostName and HostKeyAlias are lowercase, a Port is 1-65535;
 *  - the inventory's user is the resolved user (first value wins);
 *  - resolving twice gives the same answer. */
#include "../../engine/ssh_int.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char file[64];

static void cleanup(void)
{
    unlink(file);
}

static void setup(void)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(file, sizeof file, "%s/kcm-fuzz-sshcfg-%d", dir, (int)getpid());
    atexit(cleanup);
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_lower(const char *what, const char *s)
{
    for (; s && *s; s++)
        if (isupper((unsigned char)*s)) {
            fprintf(stderr, "%s is not lowercase\n", what);
            abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!file[0]) setup();
    for (size_t i = 0; i + 7 <= size; i++)
        if (strncasecmp((const char *)data + i, "include", 7) == 0) return 0;
    const uint8_t *nl = memchr(data, '\n', size);
    char *head = nl ? strndup((const char *)data, (size_t)(nl - data)) : strdup("node1");
    const uint8_t *body = nl ? nl + 1 : data;
    size_t bodylen = size - (size_t)(body - data);
    char *user = strchr(head, ' ');
    if (user) *user++ = '\0';
    if (user && !*user) user = NULL;
    const char *name = *head ? head : "node1";

    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    if (bodylen && write(fd, body, bodylen) != (ssize_t)bodylen) abort();
    close(fd);

    struct kcm_ssh_cfg a, b;
    char *msg = NULL, *msg2 = NULL;
    int rc = kcm_ssh_config_resolve_as(file, name, user, NULL, &a, &msg);
    int rc2 = kcm_ssh_config_resolve_as(file, name, user, NULL, &b, &msg2);
    if (rc != rc2) abort();
    if (rc != 0) {
        if (!msg || strchr(msg, '\n')) {
            fprintf(stderr, "refusal is not one line: %s\n", msg ? msg : "(none)");
            abort();
        }
        if (strcmp(msg, msg2) != 0) abort();
    } else {
        check_lower("HostName", a.hostname);
        check_lower("HostKeyAlias", a.hostkeyalias);
        if (a.port < 0 || a.port > 65535) abort();
        if (user && !same(a.user, user)) {
            fprintf(stderr, "the inventory's user %s became %s\n", user, a.user ? a.user : "(none)");
            abort();
        }
        if (!same(a.hostname, b.hostname) || !same(a.user, b.user) || a.port != b.port ||
            !same(a.hostkeyalias, b.hostkeyalias) || !same(a.proxycommand, b.proxycommand) ||
            !same(a.proxyjump, b.proxyjump) || a.n_identity != b.n_identity)
            abort();
        if (a.proxyjump) {
            char *m = NULL, *cmd = kcm_ssh_jump_command(a.proxyjump, &m);
            if (!cmd) abort();   /* the parser accepted it, so it must build */
            free(cmd);
        }
        kcm_ssh_cfg_free(&a);
        kcm_ssh_cfg_free(&b);
    }
    free(msg);
    free(msg2);
    free(head);
    return 0;
}

#ifdef KCM_FUZZ_STANDALONE
#include "replay_main.h"
#endif
