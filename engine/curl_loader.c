/* curl_loader: see curl_loader.h for why libcurl is loaded lazily. */
#include "curl_loader.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct kcm_curl api;
static int loaded;

/* dlsym returns an object pointer; POSIX guarantees it converts to the
 * function pointer it really is. */
#define RESOLVE(field, name)                                              \
    do {                                                                  \
        void *sym_ = dlsym(h, name);                                      \
        if (!sym_) {                                                      \
            const char *e_ = dlerror();                                   \
            snprintf(err, errlen, "%s", e_ ? e_ : name ": symbol missing"); \
            goto fail;                                                    \
        }                                                                 \
        *(void **)&t.field = sym_;                                        \
    } while (0)

const struct kcm_curl *kcm_curl_load(char *err, size_t errlen)
{
    pthread_mutex_lock(&lock);
    if (loaded) {
        pthread_mutex_unlock(&lock);
        return &api;
    }
    struct kcm_curl t;
    /* RTLD_LOCAL: curl's dependencies must not interpose on the symbols of
     * the OpenSSL and libssh kcmrun is already linked with. */
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(err, errlen, "%s", e ? e : "libcurl.so.4: cannot load");
        pthread_mutex_unlock(&lock);
        return NULL;
    }
    RESOLVE(global_init, "curl_global_init");
    RESOLVE(easy_init, "curl_easy_init");
    RESOLVE(easy_setopt, "curl_easy_setopt");
    RESOLVE(easy_perform, "curl_easy_perform");
    RESOLVE(easy_getinfo, "curl_easy_getinfo");
    RESOLVE(easy_cleanup, "curl_easy_cleanup");
    RESOLVE(easy_strerror, "curl_easy_strerror");
    RESOLVE(slist_append, "curl_slist_append");
    RESOLVE(slist_free_all, "curl_slist_free_all");
    /* Not thread-safe in general: done once, before any worker uses curl. */
    CURLcode rc = t.global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init failed: %s", t.easy_strerror(rc));
        goto fail;
    }
    /* The handle is never closed: curl's global state lives until exit. */
    api = t;
    loaded = 1;
    pthread_mutex_unlock(&lock);
    return &api;
fail:
    dlclose(h);
    pthread_mutex_unlock(&lock);
    return NULL;
}
