/* curl_loader: libcurl, opened with dlopen on first use.
 *
 * Linking libcurl pulls in its whole dependency tree (ldap, krb5, nghttp2,
 * rtmp, ssh2, psl, brotli, ...) and costs every run several milliseconds of
 * dynamic linking, although only HTTPS steps need it. So kcmrun is not linked
 * against it: the first caller loads it and reaches it through this table.
 */
#ifndef KCM_CURL_LOADER_H
#define KCM_CURL_LOADER_H

#include <curl/curl.h>
#include <stddef.h>

struct kcm_curl {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *c);
    const char *(*easy_strerror)(CURLcode rc);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
};

/* Loads libcurl.so.4 and runs curl_global_init, once per process; the
 * library stays loaded for the process lifetime. Call it on the main thread,
 * before any worker uses the table. Returns NULL and writes the reason to
 * err on failure (a later call tries again). */
const struct kcm_curl *kcm_curl_load(char *err, size_t errlen);

#endif
