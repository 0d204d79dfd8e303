/* CSRs and certificates built with the content cfssl 1.2 gives them (Go
 * crypto/x509 extension order and encodings); the signature itself runs as
 * a job on a worker thread. */
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include "crypto.h"
#include "util.h"

/* One job type signs either a request or a certificate. */
typedef struct {
    kcm_job base;
    X509_REQ *req;
    X509 *cert;
    EVP_PKEY *key;
    char *pem;
    size_t pem_len;
} sign_job;

static void sign_work(kcm_job *job)
{
    sign_job *j = (sign_job *)job;
    char err[256];
    const EVP_MD *md = kcm_crypto_sig_md(j->key);
    if (j->req) {
        if (X509_REQ_sign(j->req, j->key, md) <= 0) {
            kcm_job_fail(job, "crypto: sign CSR: %s", kcm_crypto_err(err, sizeof err, "failed"));
            return;
        }
        j->pem = kcm_crypto_req_pem(j->req, &j->pem_len);
    } else {
        if (X509_sign(j->cert, j->key, md) <= 0) {
            kcm_job_fail(job, "crypto: sign certificate: %s", kcm_crypto_err(err, sizeof err, "failed"));
            return;
        }
        j->pem = kcm_crypto_x509_pem(j->cert, &j->pem_len);
    }
    if (!j->pem)
        kcm_job_fail(job, "crypto: PEM encoding failed");
}

static int sign_done(lua_State *L, kcm_job *job)
{
    sign_job *j = (sign_job *)job;
    lua_pushlstring(L, j->pem, j->pem_len);
    return 1;
}

static void sign_free(kcm_job *job)
{
    sign_job *j = (sign_job *)job;
    X509_REQ_free(j->req);
    X509_free(j->cert);
    EVP_PKEY_free(j->key);
    free(j->pem);
    free(j);
}

/* The job owns the request or certificate from the moment it is made, so a
 * raise while the rest is built frees it. */
static sign_job *new_sign(lua_State *L, EVP_PKEY *key)
{
    sign_job *j = kcm_job_new(L, sizeof *j, sign_work, sign_done, sign_free);
    EVP_PKEY_up_ref(key);
    j->key = key;
    return j;
}

/* Go's BasicConstraints: pathlen only when set (0 needs max_path_len_zero). */
static BASIC_CONSTRAINTS *basic_constraints(int is_ca, lua_Integer pathlen, int pathlen_zero)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    if (!bc)
        return NULL;
    bc->ca = is_ca ? 0xff : 0;
    if (pathlen == 0 && !pathlen_zero)
        pathlen = -1;
    if (pathlen >= 0) {
        bc->pathlen = ASN1_INTEGER_new();
        if (!bc->pathlen || !ASN1_INTEGER_set(bc->pathlen, (long)pathlen)) {
            BASIC_CONSTRAINTS_free(bc);
            return NULL;
        }
    }
    return bc;
}

/* crypto.make_csr(key, subject, hosts|nil, {ca=bool, max_path_len=, max_path_len_zero=})
 * -> CSR PEM. subject: {{"C",{"CN"}}, {"O",{"a","b"}}, {"CN",{"x"}}, ...}. */
int kcm_crypto_make_csr(lua_State *L)
{
    EVP_PKEY *key = kcm_crypto_check_key(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int has_hosts = !lua_isnoneornil(L, 3);
    if (has_hosts)
        luaL_checktype(L, 3, LUA_TTABLE);
    int has_opts = lua_istable(L, 4);
    int want_ca = has_opts && kcm_opt_bool(L, 4, "ca", 0);
    lua_Integer pathlen = has_opts ? kcm_opt_int(L, 4, "max_path_len", -1, "crypto") : -1;
    int pathlen_zero = has_opts && kcm_opt_bool(L, 4, "max_path_len_zero", 0);
    char err[256];

    sign_job *j = new_sign(L, key);
    X509_NAME *name = kcm_crypto_name_from_lua(L, 2, err, sizeof err);
    if (!name)
        return luaL_error(L, "crypto: CSR subject: %s", err);
    GENERAL_NAMES *san = NULL;
    if (has_hosts && !kcm_crypto_san_from_hosts(L, 3, 0, &san, err, sizeof err)) {
        X509_NAME_free(name);
        return luaL_error(L, "crypto: CSR %s", err);
    }
    X509_REQ *req = j->req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = NULL;
    int ok = req && X509_REQ_set_version(req, 0) && X509_REQ_set_subject_name(req, name) &&
             X509_REQ_set_pubkey(req, key);
    if (ok && san)
        ok = X509V3_add1_i2d(&exts, NID_subject_alt_name, san, 0, X509V3_ADD_APPEND) == 1;
    if (ok && want_ca) {
        /* cfssl puts the CA flag into -initca requests */
        BASIC_CONSTRAINTS *bc = basic_constraints(1, pathlen, pathlen_zero);
        ok = bc && X509V3_add1_i2d(&exts, NID_basic_constraints, bc, 1, X509V3_ADD_APPEND) == 1;
        BASIC_CONSTRAINTS_free(bc);
    }
    if (ok && exts)
        ok = X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(san);
    X509_NAME_free(name);
    if (!ok)
        return luaL_error(L, "crypto: build CSR: %s", kcm_crypto_err(err, sizeof err, "failed"));
    return kcm_job_yield(L, &j->base);
}

static X509_REQ *parse_req(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509_REQ *req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return req;
}

static int set_serial(X509 *x)
{
    /* cfssl: 20 random bytes with the top bit cleared -> positive, <= 159 bits */
    unsigned char buf[20];
    if (RAND_bytes(buf, sizeof buf) != 1)
        return 0;
    buf[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(buf, sizeof buf, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static ASN1_OCTET_STRING *subject_key_id(X509 *x)
{
    /* RFC 5280 method 1, what cfssl computes: SHA-1 of the key's BIT STRING */
    const unsigned char *pk;
    int pklen;
    unsigned char md[20];
    ASN1_OCTET_STRING *ski = NULL;
    if (X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL, X509_get_X509_PUBKEY(x)) &&
        EVP_Digest(pk, (size_t)pklen, md, NULL, EVP_sha1(), NULL) &&
        (ski = ASN1_OCTET_STRING_new()) && !ASN1_OCTET_STRING_set(ski, md, sizeof md)) {
        ASN1_OCTET_STRING_free(ski);
        ski = NULL;
    }
    return ski;
}

static int same_der_name(const X509_NAME *a, const X509_NAME *b)
{
    const unsigned char *da, *db;
    size_t la, lb;
    if (!X509_NAME_get0_der(a, &da, &la) || !X509_NAME_get0_der(b, &db, &lb))
        return 0;
    return la == lb && memcmp(da, db, la) == 0;
}

/* KU and EKU. Returns 1 ok, 0 OpenSSL failure, -1 with `err` set. */
static int add_usage(lua_State *L, X509 *x, char *err, size_t errlen)
{
    lua_Integer ku = kcm_opt_int(L, 1, "ku", 0, "crypto");
    if (ku) {
        ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
        int ok = bs != NULL;
        for (int bit = 0; ok && bit < 9; bit++)
            if (ku & (1 << bit))
                ok = ASN1_BIT_STRING_set_bit(bs, bit, 1);
        ok = ok && X509_add1_ext_i2d(x, NID_key_usage, bs, 1, X509V3_ADD_APPEND) == 1;
        ASN1_BIT_STRING_free(bs);
        if (!ok)
            return 0;
    }
    lua_getfield(L, 1, "eku");
    if (lua_istable(L, -1) && luaL_len(L, -1) > 0) {
        EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
        int ok = eku != NULL;
        for (lua_Integer i = 1; ok && i <= luaL_len(L, -1); i++) {
            lua_geti(L, -1, i);
            const char *oid = lua_tostring(L, -1);
            ASN1_OBJECT *obj = oid ? OBJ_txt2obj(oid, 1) : NULL;
            if (!obj) {
                snprintf(err, errlen, "bad extended key usage OID '%s'", oid ? oid : "?");
                lua_pop(L, 2);
                sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
                return -1;
            }
            ok = sk_ASN1_OBJECT_push(eku, obj) > 0;
            lua_pop(L, 1);
        }
        ok = ok && X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_APPEND) == 1;
        sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
    }
    lua_pop(L, 1);
    return 1;
}

/* SAN: from hosts when given (cfssl's SignRequest.Hosts), else the CSR's. */
static int add_san(lua_State *L, X509 *x, X509_REQ *req, int is_ca, char *err, size_t errlen)
{
    int subject_empty = X509_NAME_entry_count(X509_get_subject_name(x)) == 0, ok;
    lua_getfield(L, 1, "hosts");
    if (lua_istable(L, -1)) {
        GENERAL_NAMES *san = NULL;
        if (!kcm_crypto_san_from_hosts(L, -1, is_ca, &san, err, errlen)) {
            lua_pop(L, 1);
            return -1;
        }
        ok = !san || X509_add1_ext_i2d(x, NID_subject_alt_name, san, subject_empty, X509V3_ADD_APPEND) == 1;
        GENERAL_NAMES_free(san);
    } else {
        STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
        int pos = exts ? X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1) : -1;
        ok = pos < 0 || X509_add_ext(x, sk_X509_EXTENSION_value(exts, pos), -1);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    lua_pop(L, 1);
    return ok;
}

/* Adds the extensions in Go's order: KU, EKU, BC, SKI, AKI, SAN.
 * Returns 1 ok, 0 OpenSSL failure, -1 with `err` set. */
static int add_extensions(lua_State *L, X509 *x, X509 *ca, X509_REQ *req, int is_ca,
                          char *err, size_t errlen)
{
    int r = add_usage(L, x, err, errlen);
    if (r <= 0)
        return r;
    BASIC_CONSTRAINTS *bc = basic_constraints(is_ca, is_ca ? kcm_opt_int(L, 1, "max_path_len", -1, "crypto") : -1,
                                              kcm_opt_bool(L, 1, "max_path_len_zero", 0));
    int ok = bc && X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_APPEND) == 1;
    BASIC_CONSTRAINTS_free(bc);
    if (!ok)
        return 0;

    ASN1_OCTET_STRING *ski = subject_key_id(x);
    ok = ski && X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_APPEND) == 1;
    ASN1_OCTET_STRING_free(ski);
    if (!ok)
        return 0;

    /* Go leaves AKI out of self-issued certificates and when the CA has no SKI */
    const ASN1_OCTET_STRING *ca_ski = ca ? X509_get0_subject_key_id(ca) : NULL;
    if (ca_ski && !same_der_name(X509_get_issuer_name(x), X509_get_subject_name(x))) {
        AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
        ok = akid && (akid->keyid = ASN1_OCTET_STRING_dup(ca_ski)) &&
             X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_APPEND) == 1;
        AUTHORITY_KEYID_free(akid);
        if (!ok)
            return 0;
    }

    return add_san(L, x, req, is_ca, err, errlen);
}

/* crypto.sign{csr=pem, ca_key=key, ca_cert=cert|nil (nil: self-signed),
 *   hosts={...}|nil, ku=int (Go x509.KeyUsage bits), eku={oid,...},
 *   is_ca=bool, max_path_len=int, max_path_len_zero=bool,
 *   not_before=unix, not_after=unix} -> certificate PEM */
int kcm_crypto_sign(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    char err[256];
    lua_getfield(L, 1, "ca_key");
    EVP_PKEY *ca_key = kcm_crypto_check_key(L, -1);
    lua_pop(L, 1);   /* the table keeps the handle alive */
    lua_getfield(L, 1, "ca_cert");
    X509 *ca = lua_isnil(L, -1) ? NULL : kcm_crypto_check_cert(L, -1);
    lua_pop(L, 1);
    sign_job *j = new_sign(L, ca_key);
    lua_getfield(L, 1, "csr");
    size_t csr_len;
    const char *csr_pem = luaL_checklstring(L, -1, &csr_len);
    X509_REQ *req = j->req = parse_req(csr_pem, csr_len);
    lua_pop(L, 1);
    if (!req) {
        ERR_clear_error();
        return luaL_error(L, "crypto: sign: csr is not a PEM certificate request");
    }

    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    const char *fail = NULL;
    if (!pub || X509_REQ_verify(req, pub) <= 0)
        fail = "CSR signature does not verify";
    else if (ca && EVP_PKEY_eq(X509_get0_pubkey(ca), ca_key) != 1)
        fail = "CA key does not match the CA certificate";
    else if (!ca && EVP_PKEY_eq(pub, ca_key) != 1)
        fail = "self-signing key does not match the CSR";
    if (fail) {
        ERR_clear_error();
        return luaL_error(L, "crypto: sign: %s", fail);
    }

    int is_ca = kcm_opt_bool(L, 1, "is_ca", 0);
    lua_Integer nb = kcm_opt_int(L, 1, "not_before", 0, "crypto");
    lua_Integer na = kcm_opt_int(L, 1, "not_after", 0, "crypto");
    X509 *x = j->cert = X509_new();
    int ok = x && X509_set_version(x, 2) && set_serial(x) &&
             X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : X509_REQ_get_subject_name(req)) &&
             X509_set_subject_name(x, X509_REQ_get_subject_name(req)) &&
             ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) &&
             ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) &&
             X509_set_pubkey(x, pub);
    int r = ok ? add_extensions(L, x, ca, req, is_ca, err, sizeof err) : 0;
    X509_REQ_free(req);
    j->req = NULL;   /* the job signs the certificate */
    if (r <= 0) {
        if (r < 0)
            return luaL_error(L, "crypto: sign: %s", err);
        return luaL_error(L, "crypto: sign: %s", kcm_crypto_err(err, sizeof err, "building certificate failed"));
    }
    return kcm_job_yield(L, &j->base);
}
