/* Certificate handles: parsing and inspection (what `openssl x509 -text`
 * shows that playbooks need), verification against a CA, key matching. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <ctype.h>
#include "crypto.h"
#include "util.h"

/* crypto.parse_cert(pem) -> cert | nil, err (first certificate in pem). */
int kcm_crypto_parse_cert(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!x) {
        ERR_clear_error();
        return kcm_fail(L, "error", "not a PEM certificate");
    }
    kcm_crypto_push_cert(L, x);
    return 1;
}

static void push_hex(lua_State *L, const unsigned char *p, size_t n, int colons)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) {
        char h[3];
        kcm_hex(h, p + i, 1);
        if (colons) {   /* the fingerprint as openssl prints it: AB:CD:... */
            if (i)
                luaL_addchar(&b, ':');
            h[0] = (char)toupper((unsigned char)h[0]);
            h[1] = (char)toupper((unsigned char)h[1]);
        }
        luaL_addlstring(&b, h, 2);
    }
    luaL_pushresult(&b);
}

static void push_time(lua_State *L, const ASN1_TIME *t)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm))
        lua_pushinteger(L, (lua_Integer)timegm(&tm));
    else
        lua_pushnil(L);
}

/* Pushes {dns={...}, email={...}, ip={...}} in the order they appear. */
static void push_gens(lua_State *L, const GENERAL_NAMES *gens)
{
    lua_createtable(L, 0, 3);
    lua_newtable(L);   /* dns */
    lua_newtable(L);   /* email */
    lua_newtable(L);   /* ip */
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        int type;
        const ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
        int slot;
        if (type == GEN_DNS)
            slot = -3;
        else if (type == GEN_EMAIL)
            slot = -2;
        else if (type == GEN_IPADD)
            slot = -1;
        else
            continue;
        lua_Integer next = (lua_Integer)luaL_len(L, slot) + 1;
        const unsigned char *d = ASN1_STRING_get0_data(s);
        int n = ASN1_STRING_length(s);
        if (type == GEN_IPADD) {
            char buf[INET6_ADDRSTRLEN];
            if ((n != 4 && n != 16) || !inet_ntop(n == 4 ? AF_INET : AF_INET6, d, buf, sizeof buf))
                continue;
            lua_pushstring(L, buf);
        } else {
            lua_pushlstring(L, (const char *)d, (size_t)n);
        }
        lua_rawseti(L, slot - 1, next);
    }
    lua_setfield(L, -4, "ip");
    lua_setfield(L, -3, "email");
    lua_setfield(L, -2, "dns");
    lua_newtable(L);
    lua_Integer nuri = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        int type;
        const ASN1_STRING *s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, i), &type);
        if (type != GEN_URI)
            continue;
        lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
        lua_rawseti(L, -2, ++nuri);
    }
    lua_setfield(L, -2, "uri");
}

static void push_sans(lua_State *L, X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    push_gens(L, gens);
    GENERAL_NAMES_free(gens);
}

/* crypto.hosts_sans(hosts) -> {dns=, email=, ip=}: what a certificate
 * issued for these hosts carries, in cert:info() form (for comparisons). */
int kcm_crypto_hosts_sans(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    GENERAL_NAMES *gens = NULL;
    char err[256];
    if (!kcm_crypto_san_from_hosts(L, 1, 0, &gens, err, sizeof err))
        return luaL_error(L, "crypto: %s", err);
    push_gens(L, gens);
    GENERAL_NAMES_free(gens);
    return 1;
}

/* The cert:info() fields, each group set into the table on the top of the
 * stack. */
static void info_names(lua_State *L, X509 *x)
{
    kcm_crypto_push_name(L, X509_get_subject_name(x));
    lua_setfield(L, -2, "subject");
    kcm_crypto_push_name(L, X509_get_issuer_name(x));
    lua_setfield(L, -2, "issuer");
    const char *which[2] = {"subject_text", "issuer_text"};
    for (int i = 0; i < 2; i++) {
        BIO *bio = BIO_new(BIO_s_mem());
        if (!bio)
            continue;
        X509_NAME_print_ex(bio, i ? X509_get_issuer_name(x) : X509_get_subject_name(x), 0,
                           XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
        BUF_MEM *mem;
        BIO_get_mem_ptr(bio, &mem);
        lua_pushlstring(L, mem->data, mem->length);
        lua_setfield(L, -2, which[i]);
        BIO_free(bio);
    }
}

static void info_serial(lua_State *L, X509 *x)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    char *dec = bn ? BN_bn2dec(bn) : NULL;
    lua_pushstring(L, hex ? hex : "");
    lua_setfield(L, -2, "serial");
    lua_pushstring(L, dec ? dec : "");
    lua_setfield(L, -2, "serial_dec");
    lua_pushinteger(L, bn ? BN_num_bits(bn) : 0);
    lua_setfield(L, -2, "serial_bits");
    OPENSSL_free(hex);
    OPENSSL_free(dec);
    BN_free(bn);
}

/* CA flag, KU as Go's bits, EKU OIDs */
static void info_usage(lua_State *L, X509 *x)
{
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    lua_pushboolean(L, bc && bc->ca);
    lua_setfield(L, -2, "is_ca");
    if (bc && bc->pathlen) {
        lua_pushinteger(L, ASN1_INTEGER_get(bc->pathlen));
        lua_setfield(L, -2, "path_len");
    }
    BASIC_CONSTRAINTS_free(bc);

    /* KU as Go's x509.KeyUsage bits: bit n = ASN.1 named bit n */
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, NULL, NULL);
    lua_Integer kubits = 0;
    for (int bit = 0; ku && bit < 9; bit++)
        if (ASN1_BIT_STRING_get_bit(ku, bit))
            kubits |= 1 << bit;
    ASN1_BIT_STRING_free(ku);
    lua_pushinteger(L, kubits);
    lua_setfield(L, -2, "ku");

    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    lua_newtable(L);
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++) {
        char oid[80];
        OBJ_obj2txt(oid, sizeof oid, sk_ASN1_OBJECT_value(eku, i), 1);
        lua_pushstring(L, oid);
        lua_rawseti(L, -2, i + 1);
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    lua_setfield(L, -2, "eku");
}

static void info_keys(lua_State *L, X509 *x)
{
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
    if (ski) {
        push_hex(L, ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski), 0);
        lua_setfield(L, -2, "ski");
    }
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    if (aki) {
        push_hex(L, ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki), 0);
        lua_setfield(L, -2, "aki");
    }

    EVP_PKEY *pub = X509_get0_pubkey(x);
    if (pub) {
        kcm_crypto_push_key_info(L, pub);
        lua_setfield(L, -2, "key");
    }
    lua_pushstring(L, OBJ_nid2ln(X509_get_signature_nid(x)));
    lua_setfield(L, -2, "signature_algorithm");

    unsigned char md[32];
    unsigned int mdlen = 0;
    if (X509_digest(x, EVP_sha256(), md, &mdlen)) {
        push_hex(L, md, mdlen, 1);
        lua_setfield(L, -2, "fingerprint_sha256");
    }
    lua_pushboolean(L, X509_check_issued(x, x) == X509_V_OK);
    lua_setfield(L, -2, "self_signed");
}

/* cert:info() -> {subject={{"C","CN"},...}, issuer=..., subject_text=,
 * issuer_text=, sans={dns={},email={},ip={},uri={}}, not_before=, not_after=,
 * serial= (hex), is_ca=, path_len=, ku=bits (Go order), eku={oid,...},
 * ski=, aki=, key={type=,bits=,curve=}, signature_algorithm=,
 * fingerprint_sha256= (AA:BB:..), self_signed=} */
static int cert_info(lua_State *L)
{
    X509 *x = kcm_crypto_check_cert(L, 1);
    lua_createtable(L, 0, 20);
    info_names(L, x);
    push_sans(L, x);
    lua_setfield(L, -2, "sans");
    push_time(L, X509_get0_notBefore(x));
    lua_setfield(L, -2, "not_before");
    push_time(L, X509_get0_notAfter(x));
    lua_setfield(L, -2, "not_after");
    info_serial(L, x);
    info_usage(L, x);
    info_keys(L, x);
    ERR_clear_error();
    return 1;
}

static int cert_pem(lua_State *L)
{
    size_t len;
    char *pem = kcm_crypto_x509_pem(kcm_crypto_check_cert(L, 1), &len);
    if (!pem)
        return luaL_error(L, "crypto: PEM encoding failed");
    lua_pushlstring(L, pem, len);
    free(pem);
    return 1;
}

/* cert:verify(ca_cert [, at_time]) -> true | false, reason. Path validation
 * with ca_cert as the only trust anchor (it need not be self-signed). */
static int cert_verify(lua_State *L)
{
    X509 *x = kcm_crypto_check_cert(L, 1);
    X509 *ca = kcm_crypto_check_cert(L, 2);
    int has_time = !lua_isnoneornil(L, 3);
    time_t at = has_time ? (time_t)luaL_checkinteger(L, 3) : 0;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = 0;
    const char *reason = "out of memory";
    if (store && ctx && X509_STORE_add_cert(store, ca) && X509_STORE_CTX_init(ctx, store, x, NULL)) {
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
        if (has_time)
            X509_STORE_CTX_set_time(ctx, 0, at);
        ok = X509_verify_cert(ctx) == 1;
        reason = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    lua_pushboolean(L, ok);
    if (ok)
        return 1;
    lua_pushstring(L, reason);
    return 2;
}

static int cert_matches_key(lua_State *L)
{
    X509 *x = kcm_crypto_check_cert(L, 1);
    EVP_PKEY *key = kcm_crypto_check_key(L, 2);
    lua_pushboolean(L, EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1);
    ERR_clear_error();
    return 1;
}

const luaL_Reg kcm_crypto_cert_methods[] = {
    {"info", cert_info},
    {"pem", cert_pem},
    {"verify", cert_verify},
    {"matches_key", cert_matches_key},
    {NULL, NULL},
};
