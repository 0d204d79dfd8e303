/* http: HTTPS requests for the Kubernetes API and metrics endpoints (libcurl).
 *
 * http.request{method=, url=, headers={}, body=, ca_file=|ca_pem=,
 *              cert_file=|cert_pem=, key_file=|key_pem=, timeout=,
 *              connect_timeout=, insecure=false}   (timeouts in seconds; 60 and 10 when unset)
 *   -> {status=, body=, headers={lowercased name = value}, connects=}
 *   (connects: new connections the request opened; 0 when it reused one)
 *
 * Client certificates, keys and CAs given as PEM strings are handed to curl
 * as in-memory blobs, so no key ever touches the disk. The request runs as a
 * job on the worker pool; a transport failure raises "METHOD URL: curl's
 * message". HTTP error statuses are not errors here: the caller (kcm.kube)
 * decides what a 403 or 409 means.
 *
 * libcurl is loaded on the first request (curl_loader.h), not at start-up.
 */
#include "util.h"
#include "buf.h"
#include "modules.h"

#include "curl_loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Set on the main thread before the first job is submitted, never reset. */
static const struct kcm_curl *cu;

/* Connection reuse: one TLS handshake per host per run, not per request
 * (verify, rbac and leader talk to the same apiserver). An easy handle
 * keeps its connection open after a request; finished handles wait here,
 * by scheme://host:port, for the next request to that host. A handle is
 * used by one worker at a time (curl's rule); curl itself checks that a
 * reused connection's TLS settings (CA, client certificate, key) match the
 * new request's, else it opens a new one. Requests in parallel to one host
 * get handles of their own; their handshakes resume the shared TLS session. */
struct idle {
    char *key;
    CURL *c;
    struct idle *next;
};
#define MAX_IDLE 32
static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static struct idle *idle_list;
static int n_idle;

/* Shared TLS sessions and DNS answers; curl calls these locks from workers. */
static CURLSH *share;
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *c, curl_lock_data d, curl_lock_access a, void *u)
{
    (void)c, (void)a, (void)u;
    pthread_mutex_lock(&share_mu[d]);
}

static void share_unlock(CURL *c, curl_lock_data d, void *u)
{
    (void)c, (void)u;
    pthread_mutex_unlock(&share_mu[d]);
}

/* "scheme://host:port" of a URL (userinfo dropped); NULL if not http(s). */
static char *host_key(const char *url)
{
    const char *p = strstr(url, "://");
    if (!p) return NULL;
    const char *h = p + 3, *e = h + strcspn(h, "/?#");
    const char *at = memchr(h, '@', (size_t)(e - h));
    if (at) h = at + 1;
    char *k = malloc((size_t)(e - url) + 1);
    if (!k) return NULL;
    size_t sl = (size_t)(p + 3 - url);
    memcpy(k, url, sl);
    memcpy(k + sl, h, (size_t)(e - h));
    k[sl + (size_t)(e - h)] = '\0';
    for (char *q = k; *q; q++)
        if (*q >= 'A' && *q <= 'Z') *q = (char)(*q + 32);
    return k;
}

static CURL *take_handle(const char *key)
{
    CURL *c = NULL;
    pthread_mutex_lock(&idle_mu);
    for (struct idle **pp = &idle_list; key && *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            struct idle *i = *pp;
            *pp = i->next;
            c = i->c;
            free(i->key);
            free(i);
            n_idle--;
            break;
        }
    }
    pthread_mutex_unlock(&idle_mu);
    if (c) {
        cu->easy_reset(c);   /* options go; the open connection stays */
        return c;
    }
    return cu->easy_init();
}

static void give_back(CURL *c, const char *key)
{
    struct idle *i = key ? malloc(sizeof *i) : NULL;
    char *k = key ? strdup(key) : NULL;
    pthread_mutex_lock(&idle_mu);
    if (i && k && n_idle < MAX_IDLE) {
        i->key = k, i->c = c, i->next = idle_list;
        idle_list = i;
        n_idle++;
        c = NULL;
        i = NULL, k = NULL;
    }
    pthread_mutex_unlock(&idle_mu);
    free(i);
    free(k);
    if (c) cu->easy_cleanup(c);
}

struct http_job {
    kcm_job base;
    /* inputs, copied from Lua */
    char *method, *url;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    int has_body;
    char *ca_file, *cert_file, *key_file;
    char *ca_pem, *cert_pem, *key_pem;
    size_t ca_len, cert_len, key_len;
    long timeout_ms, connect_timeout_ms;
    int insecure;
    /* outputs */
    long status;
    long connects;             /* new connections this request opened (0: reused) */
    struct kcm_buf resp;
    struct kcm_buf hdrs;       /* raw header block of the final response */
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct http_job *j = ud;
    return kcm_buf_add(&j->resp, p, size * n) ? 0 : size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct http_job *j = ud;
    size_t len = size * n;
    /* A new status line starts a new response (100 Continue, proxies):
     * keep only the headers of the last one. */
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0)
        j->hdrs.n = 0;
    return kcm_buf_add(&j->hdrs, p, len) ? 0 : len;
}

static void http_free(kcm_job *base)
{
    struct http_job *j = (struct http_job *)base;
    free(j->method);
    free(j->url);
    if (j->headers)
        cu->slist_free_all(j->headers);
    free(j->body);
    free(j->ca_file);
    free(j->cert_file);
    free(j->key_file);
    free(j->ca_pem);
    free(j->cert_pem);
    if (j->key_pem) {
        kcm_memzero(j->key_pem, j->key_len);
        free(j->key_pem);
    }
    free(j->resp.p);
    free(j->hdrs.p);
    free(j);
}

/* In the set_* helpers: a refused option fails the job and the helper
 * returns -1 (the caller drops the handle). */
#define SET(opt, val)                                                     \
    do {                                                                  \
        CURLcode rc_ = cu->easy_setopt(c, opt, val);                      \
        if (rc_ != CURLE_OK) {                                            \
            kcm_job_fail(&j->base, "%s %s: %s (%s)", j->method, j->url,   \
                         cu->easy_strerror(rc_), #opt);                   \
            return -1;                                                    \
        }                                                                 \
    } while (0)

/* What callers branch on: a TLS failure repeats on every try, a closed
 * port or a silent server may come back. */
static const char *http_fail_kind(CURLcode rc, long os_errno)
{
    /* A server that exits mid-request (a component losing its lease, a
     * member being restarted) resets the connection: that is the same
     * passing outage as a closed port, whichever stage it cut short. */
    if (os_errno == ECONNRESET || os_errno == EPIPE)
        return "reset";
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return "tls";     /* a handshake cut short (SSL_CONNECT_ERROR) may pass on a retry */
    /* Never "unreachable": that kind means the node itself is gone (its SSH
     * connection), and a closed port on a node that answers SSH is a failed
     * check of the service behind it, not a lost node. */
    case CURLE_COULDNT_RESOLVE_HOST:
        return "resolve";
    case CURLE_COULDNT_CONNECT:
        return "refused";
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return "reset";
    default:
        return "error";
    }
}

static int set_transfer(struct http_job *j, CURL *c, char *errbuf)
{
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_URL, j->url);
    /* Only plain HTTP(S), never a proxy from the environment: requests go
     * exactly where the playbook says (the lab's addresses or loopback). */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    if (share)
        SET(CURLOPT_SHARE, share);
    SET(CURLOPT_USERAGENT, "kcmrun/" KCM_VERSION);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, j);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, j);
    if (j->headers)
        SET(CURLOPT_HTTPHEADER, j->headers);
    /* No request may hang a run: without a caller's timeout, a silent
     * server ends the request after 60 s (connect: 10 s). */
    SET(CURLOPT_TIMEOUT_MS, j->timeout_ms > 0 ? j->timeout_ms : 60000L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, j->connect_timeout_ms > 0 ? j->connect_timeout_ms : 10000L);
    return 0;
}

static int set_method(struct http_job *j, CURL *c)
{
    if (strcmp(j->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(j->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        SET(CURLOPT_CUSTOMREQUEST, j->method);
    }
    if (j->has_body) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
        SET(CURLOPT_POSTFIELDS, j->body);
        /* POSTFIELDS switches curl to POST; keep the caller's verb. */
        SET(CURLOPT_CUSTOMREQUEST, j->method);
    }
    return 0;
}

static int set_tls(struct http_job *j, CURL *c)
{
    if (j->insecure) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (j->ca_pem) {
        /* Blobs are used without copying: the job outlives the handle. */
        struct curl_blob b = {j->ca_pem, j->ca_len, CURL_BLOB_NOCOPY};
        SET(CURLOPT_CAINFO_BLOB, &b);
    } else if (j->ca_file) {
        SET(CURLOPT_CAINFO, j->ca_file);
    }
    if (j->cert_pem) {
        struct curl_blob b = {j->cert_pem, j->cert_len, CURL_BLOB_NOCOPY};
        SET(CURLOPT_SSLCERT_BLOB, &b);
        SET(CURLOPT_SSLCERTTYPE, "PEM");
    } else if (j->cert_file) {
        SET(CURLOPT_SSLCERT, j->cert_file);
    }
    if (j->key_pem) {
        struct curl_blob b = {j->key_pem, j->key_len, CURL_BLOB_NOCOPY};
        SET(CURLOPT_SSLKEY_BLOB, &b);
        SET(CURLOPT_SSLKEYTYPE, "PEM");
    } else if (j->key_file) {
        SET(CURLOPT_SSLKEY, j->key_file);
    }
    return 0;
}

/* The key blob set with NOCOPY dies with the job: unset it before the
 * handle waits for another request (curl keeps what the connection needs). */
static void park_handle(CURL *c, const char *key)
{
    cu->easy_setopt(c, CURLOPT_SSLKEY_BLOB, NULL);
    cu->easy_setopt(c, CURLOPT_SSLCERT_BLOB, NULL);
    cu->easy_setopt(c, CURLOPT_CAINFO_BLOB, NULL);
    cu->easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    cu->easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    cu->easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    cu->easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    cu->easy_setopt(c, CURLOPT_HEADERDATA, NULL);
    give_back(c, key);
}

static void http_work(kcm_job *base)
{
    struct http_job *j = (struct http_job *)base;
    char errbuf[CURL_ERROR_SIZE] = "";
    char *key = host_key(j->url);
    int ok = 0;
    CURL *c = take_handle(key);
    if (!c) {
        free(key);
        kcm_job_fail(base, "%s %s: cannot create a curl handle", j->method, j->url);
        return;
    }
    if (set_transfer(j, c, errbuf) || set_method(j, c) || set_tls(j, c))
        goto out;
    CURLcode rc = cu->easy_perform(c);
    if (rc != CURLE_OK) {
        /* errbuf holds curl's detailed reason (certificate problem, refused
         * connection, ...); it never contains key material. */
        /* a certificate that does not verify is no outage: the same
         * answer comes on every try, so it is kind "tls", which kube.lua
         * never retries */
        long os_errno = 0;
        cu->easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
        kcm_job_fail_kind(base, http_fail_kind(rc, os_errno), "%s %s: %s%s", j->method, j->url,
                     rc == CURLE_PEER_FAILED_VERIFICATION ? "TLS verification failed: " : "",
                     errbuf[0] ? errbuf : cu->easy_strerror(rc));
        goto out;
    }
    cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &j->status);
    cu->easy_getinfo(c, CURLINFO_NUM_CONNECTS, &j->connects);
    ok = 1;
out:
    /* A failed request's handle is not reused. */
    if (ok)
        park_handle(c, key);
    else
        cu->easy_cleanup(c);
    free(key);
}

/* Pushes the header block as a table of lowercased names; repeated headers
 * are joined with ", " as HTTP allows. */
static void push_headers(lua_State *L, const struct kcm_buf *h)
{
    lua_newtable(L);
    const char *p = h->p, *end = h->p ? h->p + h->n : NULL;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon && strncmp(p, "HTTP/", 5) != 0) {
            luaL_Buffer name;
            luaL_buffinit(L, &name);
            for (const char *q = p; q < colon; q++)
                luaL_addchar(&name, (char)((*q >= 'A' && *q <= 'Z') ? *q + 32 : *q));
            luaL_pushresult(&name);
            const char *v = colon + 1, *ve = line_end;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            lua_pushvalue(L, -1);
            lua_rawget(L, -3);
            if (lua_isstring(L, -1)) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            }
            lua_rawset(L, -3);
        }
        p = eol ? eol + 1 : end;
    }
}

static int http_done(lua_State *L, kcm_job *base)
{
    struct http_job *j = (struct http_job *)base;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, j->status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, j->connects);
    lua_setfield(L, -2, "connects");
    kcm_buf_push(L, &j->resp);
    lua_setfield(L, -2, "body");
    push_headers(L, &j->hdrs);
    lua_setfield(L, -2, "headers");
    return 1;
}

static long opt_ms(lua_State *L, int t, const char *key)
{
    double s = kcm_opt_number(L, t, key, 0, "http.request");
    if (s < 0 || s > 86400)
        luaL_error(L, "http.request: %s out of range", key);
    long ms = (long)(s * 1000.0);
    return ms == 0 && s > 0 ? 1 : ms;
}

static int header_ok(const char *s, size_t n)
{
    /* A CR or LF would let a value smuggle in another header line. */
    return memchr(s, '\r', n) == NULL && memchr(s, '\n', n) == NULL;
}

static int add_header(struct http_job *j, const char *line)
{
    struct curl_slist *l = cu->slist_append(j->headers, line);
    if (!l)
        return -1;
    j->headers = l;
    return 0;
}

/* The net under kube.lua's check: no Authorization header and no client
 * certificate or key on a URL that is not https://, unless the request
 * says insecure_http = true (the operator's allow_insecure_http). */
static int credentials_check(lua_State *L, struct http_job *j)
{
    if (strncasecmp(j->url, "https://", 8) == 0)
        return 0;
    const char *what = NULL, *auth = strstr(j->url, "://");
    auth = auth ? auth + 3 : j->url;
    size_t alen = strcspn(auth, "/?#");
    if (memchr(auth, '@', alen))
        what = "credentials in the URL";   /* basic auth: user:password@ */
    else if (j->cert_pem || j->cert_file || j->key_pem || j->key_file)
        what = "a client certificate";
    for (struct curl_slist *h = j->headers; h && !what; h = h->next)
        if (strncasecmp(h->data, "Authorization", 13) == 0 &&
            (h->data[13] == ':' || h->data[13] == ';'))
            what = "an Authorization header";
    if (!what)
        return 0;
    lua_getfield(L, 1, "insecure_http");
    int allowed = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (allowed)
        return 0;
    return luaL_error(L, "http.request: refusing to send %s over plain http to %s (use https)", what,
                      memchr(auth, '@', alen) ? "a URL with a password" : j->url);
}

/* One header from the options' headers table (key at -2, value at -1):
 * array entries are whole "Name: value" lines, map entries are joined here. */
static void read_header(lua_State *L, struct http_job *j)
{
    size_t kn, vn;
    const char *k, *v;
    if (lua_type(L, -2) == LUA_TNUMBER) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "http.request: header lines must be strings");
        v = lua_tolstring(L, -1, &vn);
        if (!header_ok(v, vn) || !memchr(v, ':', vn))
            luaL_error(L, "http.request: bad header line");
        if (add_header(j, v))
            kcm_oom(L);
        return;
    }
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        luaL_error(L, "http.request: headers must map names to strings");
    k = lua_tolstring(L, -2, &kn);
    lua_pushvalue(L, -1);   /* a number value converts in the copy, not under lua_next's key */
    v = lua_tolstring(L, -1, &vn);
    if (!header_ok(k, kn) || !header_ok(v, vn) || memchr(k, ':', kn) || kn == 0)
        luaL_error(L, "http.request: bad header %s", k);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, k, kn);
    /* "Name;" is curl's way to send a header with an empty value. */
    if (vn == 0) {
        luaL_addchar(&b, ';');
    } else {
        luaL_addstring(&b, ": ");
        luaL_addlstring(&b, v, vn);
    }
    luaL_pushresult(&b);
    if (add_header(j, lua_tostring(L, -1)))
        kcm_oom(L);
    lua_pop(L, 2); /* result, value copy */
}

static void read_headers(lua_State *L, int t, struct http_job *j)
{
    lua_getfield(L, t, "headers");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            read_header(L, j);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "http.request: headers must be a table");
    }
    lua_pop(L, 1);
}

static void read_method(lua_State *L, int t, struct http_job *j)
{
    j->method = kcm_opt_strdup(L, t, "method", NULL, "http.request", 0);
    if (!j->method) {
        j->method = strdup("GET");
        if (!j->method)
            kcm_oom(L);
    }
    for (char *p = j->method; *p; p++) {
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
        if (!((*p >= 'A' && *p <= 'Z') || *p == '-'))
            luaL_error(L, "http.request: bad method");
    }
}

/* Trust and identity: each as a file or as PEM text, never both. */
static void read_tls(lua_State *L, int t, struct http_job *j)
{
    j->ca_file = kcm_opt_strdup(L, t, "ca_file", NULL, "http.request", 0);
    j->cert_file = kcm_opt_strdup(L, t, "cert_file", NULL, "http.request", 0);
    j->key_file = kcm_opt_strdup(L, t, "key_file", NULL, "http.request", 0);
    j->ca_pem = kcm_opt_strdup(L, t, "ca_pem", &j->ca_len, "http.request", 0);
    j->cert_pem = kcm_opt_strdup(L, t, "cert_pem", &j->cert_len, "http.request", 0);
    j->key_pem = kcm_opt_strdup(L, t, "key_pem", &j->key_len, "http.request", 0);
    if (j->ca_pem && j->ca_file)
        luaL_error(L, "http.request: give ca_pem or ca_file, not both");
    if (j->cert_pem && j->cert_file)
        luaL_error(L, "http.request: give cert_pem or cert_file, not both");
    if (j->key_pem && j->key_file)
        luaL_error(L, "http.request: give key_pem or key_file, not both");
    lua_getfield(L, t, "insecure");
    j->insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
}

static void fill_job(lua_State *L, int t, struct http_job *j)
{
    read_method(L, t, j);
    j->url = kcm_opt_strdup(L, t, "url", NULL, "http.request", 0);
    if (!j->url)
        luaL_error(L, "http.request: url is required");
    j->body = kcm_opt_strdup(L, t, "body", &j->body_len, "http.request", 0);
    j->has_body = j->body != NULL;
    read_tls(L, t, j);
    j->timeout_ms = opt_ms(L, t, "timeout");
    j->connect_timeout_ms = opt_ms(L, t, "connect_timeout");
    read_headers(L, t, j);
    credentials_check(L, j);
}

/* Loads libcurl on first use; raises when it cannot. Main thread only. */
static const struct kcm_curl *need_curl(lua_State *L, const char *who)
{
    if (!cu) {
        char err[512];
        cu = kcm_curl_load(err, sizeof err);
        if (!cu)
            luaL_error(L, "%s: https needs libcurl (apt-get install libcurl4): %s", who, err);
        /* Created before any job can use it; lives until exit. */
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
            pthread_mutex_init(&share_mu[i], NULL);
        share = cu->share_init();
        if (share) {
            cu->share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
            cu->share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
            cu->share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
            cu->share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        }
    }
    return cu;
}

static int l_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    need_curl(L, "http.request");
    struct http_job *j = kcm_job_new(L, sizeof *j, http_work, http_done, http_free);
    fill_job(L, 1, j);
    return kcm_job_yield(L, &j->base);
}

int kcm_open_http(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"request", l_request},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
