/* Native crypto module: private keys (generate, load, PEM as cfssl writes
 * them) and the module table. X.509 work lives in crypto_x509.c /
 * crypto_cert.c, name and SAN encoding in crypto_names.c. */
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/core_names.h>
#include "crypto.h"
#include "util.h"

typedef struct { EVP_PKEY *pkey; } key_ud;
typedef struct { X509 *x; } cert_ud;

const char *kcm_crypto_err(char *buf, size_t n, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, n, "%s", fallback);
    else
        ERR_error_string_n(e, buf, n);
    ERR_clear_error();
    return buf;
}

const EVP_MD *kcm_crypto_sig_md(EVP_PKEY *pkey)
{
    int bits = EVP_PKEY_get_bits(pkey);
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
        if (bits >= 521) return EVP_sha512();
        if (bits >= 384) return EVP_sha384();
        return EVP_sha256();
    }
    if (bits >= 4096) return EVP_sha512();
    if (bits >= 3072) return EVP_sha384();
    if (bits >= 2048) return EVP_sha256();
    return EVP_sha1();
}

static char *bio_take(BIO *bio, size_t *len)
{
    BUF_MEM *mem = NULL;
    BIO_get_mem_ptr(bio, &mem);
    char *out = malloc(mem->length + 1);
    if (out) {
        memcpy(out, mem->data, mem->length);
        out[mem->length] = 0;
        *len = mem->length;
    }
    kcm_memzero(mem->data, mem->length);
    return out;
}

/* PEM text of a certificate (x) or of a request (req). */
static char *pem_of(X509 *x, X509_REQ *req, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio && (x ? PEM_write_bio_X509(bio, x) : PEM_write_bio_X509_REQ(bio, req)))
        out = bio_take(bio, len);
    BIO_free(bio);
    return out;
}

char *kcm_crypto_x509_pem(X509 *x, size_t *len) { return pem_of(x, NULL, len); }
char *kcm_crypto_req_pem(X509_REQ *req, size_t *len) { return pem_of(NULL, req, len); }

/* ---- key handles ---- */

static int key_gc(lua_State *L)
{
    key_ud *k = luaL_checkudata(L, 1, KCM_CRYPTO_KEY_MT);
    EVP_PKEY_free(k->pkey);   /* OpenSSL clears private key material on free */
    k->pkey = NULL;
    return 0;
}

EVP_PKEY *kcm_crypto_check_key(lua_State *L, int idx)
{
    key_ud *k = luaL_checkudata(L, idx, KCM_CRYPTO_KEY_MT);
    if (!k->pkey)
        luaL_argerror(L, idx, "key handle already released");
    return k->pkey;
}

/* PKCS#1 "RSA PRIVATE KEY" / SEC1 "EC PRIVATE KEY", as cfssl writes keys. */
static int key_pem(lua_State *L)
{
    EVP_PKEY *pkey = kcm_crypto_check_key(L, 1);
    BIO *bio = BIO_new(BIO_s_mem());
    char err[256];
    if (!bio || !PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(bio);
        return kcm_fail(L, "error", "crypto: encode private key: %s", kcm_crypto_err(err, sizeof err, "failed"));
    }
    BUF_MEM *mem = NULL;
    BIO_get_mem_ptr(bio, &mem);
    lua_pushlstring(L, mem->data, mem->length);
    kcm_memzero(mem->data, mem->length);
    BIO_free(bio);
    return 1;
}

/* key:write_pem(path [, mode=0600]): the key goes from the handle to the
 * file without becoming a Lua string (which could not be wiped): PEM in a
 * cleansed buffer, a temp file next to `path` created with its final mode,
 * fsync, rename. Raises on failure ("write PATH: why"). */
static int key_write_pem(lua_State *L)
{
    EVP_PKEY *pkey = kcm_crypto_check_key(L, 1);
    const char *path = luaL_checkstring(L, 2);
    mode_t mode = (mode_t)luaL_optinteger(L, 3, 0600) & 07777;
    char err[256];
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(bio);
        return kcm_fail(L, "error", "crypto: encode private key: %s", kcm_crypto_err(err, sizeof err, "failed"));
    }
    BUF_MEM *mem = NULL;
    BIO_get_mem_ptr(bio, &mem);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    int fd = -1, e = 0;
    if (!tmp) {
        e = ENOMEM;
    } else {
        const char *slash = strrchr(path, '/');
        size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
        snprintf(tmp, plen + 32, "%.*s.%s.kcm-XXXXXX", (int)dlen, path, path + dlen);
        fd = mkostemp(tmp, O_CLOEXEC);   /* 0600 from the first byte */
        if (fd < 0) e = errno;
    }
    for (size_t off = 0; !e && off < mem->length;) {
        ssize_t w = write(fd, mem->data + off, mem->length - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) e = errno; else off += (size_t)w;
    }
    kcm_memzero(mem->data, mem->length);
    BIO_free(bio);
    if (!e && fchmod(fd, mode) != 0) e = errno;
    if (!e && fsync(fd) != 0) e = errno;
    if (fd >= 0 && close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e && fd >= 0) unlink(tmp);
    free(tmp);
    if (e)
        return kcm_fail_errno(L, e, "write %s", path);
    lua_pushboolean(L, 1);
    return 1;
}

static const char *curve_label(EVP_PKEY *pkey)
{
    char group[64] = "";
    size_t glen = 0;
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen))
        return NULL;
    if (!strcmp(group, "prime256v1") || !strcmp(group, "P-256")) return "P-256";
    if (!strcmp(group, "secp384r1") || !strcmp(group, "P-384")) return "P-384";
    if (!strcmp(group, "secp521r1") || !strcmp(group, "P-521")) return "P-521";
    return "other";
}

/* Pushes {type="rsa"|"ecdsa"|..., bits=, curve=} for any key (also public). */
static void push_key_info(lua_State *L, EVP_PKEY *pkey)
{
    lua_createtable(L, 0, 3);
    int id = EVP_PKEY_get_base_id(pkey);
    lua_pushstring(L, id == EVP_PKEY_RSA ? "rsa" : id == EVP_PKEY_EC ? "ecdsa" : OBJ_nid2sn(id));
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, EVP_PKEY_get_bits(pkey));
    lua_setfield(L, -2, "bits");
    if (id == EVP_PKEY_EC) {
        const char *c = curve_label(pkey);
        if (c) {
            lua_pushstring(L, c);
            lua_setfield(L, -2, "curve");
        }
    }
}

void kcm_crypto_push_key_info(lua_State *L, EVP_PKEY *pkey) { push_key_info(L, pkey); }

static int key_info(lua_State *L)
{
    push_key_info(L, kcm_crypto_check_key(L, 1));
    return 1;
}

/* SHA-256 of the DER SubjectPublicKeyInfo: compares keys without exposing them. */
static int key_public_id(lua_State *L)
{
    EVP_PKEY *pkey = kcm_crypto_check_key(L, 1);
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0)
        return luaL_error(L, "crypto: encode public key failed");
    unsigned char md[32];
    char hex[65];
    EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL);
    OPENSSL_free(der);
    kcm_hex(hex, md, sizeof md);
    lua_pushstring(L, hex);
    return 1;
}

static const luaL_Reg key_methods[] = {
    {"pem", key_pem},
    {"write_pem", key_write_pem},
    {"info", key_info},
    {"public_id", key_public_id},
    {NULL, NULL},
};

void kcm_crypto_push_key(lua_State *L, EVP_PKEY *pkey)
{
    key_ud *k = kcm_newudata(L, sizeof *k, KCM_CRYPTO_KEY_MT, key_methods, key_gc);
    k->pkey = pkey;
}

/* ---- cert handles (methods in crypto_cert.c) ---- */

static int cert_gc(lua_State *L)
{
    cert_ud *c = luaL_checkudata(L, 1, KCM_CRYPTO_CERT_MT);
    X509_free(c->x);
    c->x = NULL;
    return 0;
}

void kcm_crypto_push_cert(lua_State *L, X509 *x)
{
    cert_ud *c = kcm_newudata(L, sizeof *c, KCM_CRYPTO_CERT_MT, kcm_crypto_cert_methods, cert_gc);
    c->x = x;
}

X509 *kcm_crypto_check_cert(lua_State *L, int idx)
{
    cert_ud *c = luaL_checkudata(L, idx, KCM_CRYPTO_CERT_MT);
    if (!c->x)
        luaL_argerror(L, idx, "certificate handle already released");
    return c->x;
}

/* ---- key generation (a job: RSA-4096 takes seconds) ---- */

typedef struct {
    kcm_job base;
    int rsa;
    int bits;
    EVP_PKEY *pkey;
} keygen_job;

static void keygen_work(kcm_job *job)
{
    keygen_job *j = (keygen_job *)job;
    char err[256];
    if (j->rsa)
        j->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)j->bits);
    else
        j->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
                                    j->bits == 256 ? "P-256" : j->bits == 384 ? "P-384" : "P-521");
    if (!j->pkey)
        kcm_job_fail(job, "crypto: generate %s-%d key: %s", j->rsa ? "rsa" : "ecdsa", j->bits,
                     kcm_crypto_err(err, sizeof err, "failed"));
}

static int keygen_done(lua_State *L, kcm_job *job)
{
    keygen_job *j = (keygen_job *)job;
    kcm_crypto_push_key(L, j->pkey);
    j->pkey = NULL;
    return 1;
}

static void keygen_free(kcm_job *job)
{
    keygen_job *j = (keygen_job *)job;
    EVP_PKEY_free(j->pkey);
    free(j);
}

/* crypto.generate_key(algo, size): algo "rsa" (2048..8192) or "ecdsa"
 * (256/384/521), the ranges cfssl accepts. */
static int l_generate_key(lua_State *L)
{
    const char *algo = luaL_checkstring(L, 1);
    lua_Integer bits = luaL_checkinteger(L, 2);
    int rsa;
    if (!strcmp(algo, "rsa")) {
        if (bits < 2048 || bits > 8192)
            return luaL_error(L, "crypto: unsupported rsa key size %d (2048..8192)", (int)bits);
        rsa = 1;
    } else if (!strcmp(algo, "ecdsa")) {
        if (bits != 256 && bits != 384 && bits != 521)
            return luaL_error(L, "crypto: unsupported ecdsa key size %d (256, 384 or 521)", (int)bits);
        rsa = 0;
    } else {
        return luaL_error(L, "crypto: unsupported key algo '%s' (rsa or ecdsa)", algo);
    }
    keygen_job *j = kcm_job_new(L, sizeof *j, keygen_work, keygen_done, keygen_free);
    j->rsa = rsa;
    j->bits = (int)bits;
    return kcm_job_yield(L, &j->base);
}

/* Any PEM private key form; NULL when it is none. */
static EVP_PKEY *parse_pem_key(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pkey)
        ERR_clear_error();
    return pkey;
}

/* key | nil, err */
static int push_parsed_key(lua_State *L, EVP_PKEY *pkey)
{
    if (!pkey) {
        return kcm_fail(L, "error", "not a PEM private key");
    }
    kcm_crypto_push_key(L, pkey);
    return 1;
}

/* crypto.load_key(pem) -> key | nil, err (any PEM private key form). */
static int l_load_key(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    return push_parsed_key(L, parse_pem_key(pem, len));
}

/* crypto.load_key_file(path) -> key | nil, err: read in a buffer that is
 * wiped after parsing, so the key never becomes a Lua string. */
static int l_load_key_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size > (1 << 20)) {
        int e = fd < 0 ? errno : EFBIG;
        if (fd >= 0) close(fd);
        return kcm_fail(L, e == ENOENT ? "noent" : e == EACCES ? "denied" : "error", "%s", strerror(e));
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    while (buf && n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) kcm_oom(L);
    EVP_PKEY *pkey = parse_pem_key(buf, n);
    kcm_memzero(buf, cap);
    free(buf);
    return push_parsed_key(L, pkey);
}

static const luaL_Reg crypto_funcs[] = {
    {"load_key_file", l_load_key_file},
    {"generate_key", l_generate_key},
    {"load_key", l_load_key},
    {"make_csr", kcm_crypto_make_csr},
    {"sign", kcm_crypto_sign},
    {"parse_cert", kcm_crypto_parse_cert},
    {"hosts_sans", kcm_crypto_hosts_sans},
    {"host_kind", kcm_crypto_l_host_kind},
    {NULL, NULL},
};

int kcm_open_crypto(lua_State *L)
{
    luaL_newlib(L, crypto_funcs);
    return 1;
}
