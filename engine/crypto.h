/* Internal interface shared by the crypto module's files (keys, X.509). */
#ifndef KCM_CRYPTO_H
#define KCM_CRYPTO_H
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "modules.h"

#define KCM_CRYPTO_KEY_MT  "kcm.crypto.key"
#define KCM_CRYPTO_CERT_MT "kcm.crypto.cert"

/* Userdata handles own one reference to the OpenSSL object. */
void kcm_crypto_push_key(lua_State *L, EVP_PKEY *pkey);   /* takes the reference */
EVP_PKEY *kcm_crypto_check_key(lua_State *L, int idx);
void kcm_crypto_push_key_info(lua_State *L, EVP_PKEY *pkey);
void kcm_crypto_push_cert(lua_State *L, X509 *x);         /* takes the reference */
X509 *kcm_crypto_check_cert(lua_State *L, int idx);

/* Text of the oldest queued OpenSSL error (or `fallback`), queue cleared. */
const char *kcm_crypto_err(char *buf, size_t n, const char *fallback);

/* Digest cfssl picks for signatures made with `pkey` (helpers.SignerAlgo). */
const EVP_MD *kcm_crypto_sig_md(EVP_PKEY *pkey);

/* PEM-encode into a malloc'ed buffer (NUL-terminated); NULL on failure. */
char *kcm_crypto_x509_pem(X509 *x, size_t *len);
char *kcm_crypto_req_pem(X509_REQ *req, size_t *len);

/* Parses a hosts entry the way cfssl does (IP, then e-mail, else DNS name)
 * and appends it to the matching list; see crypto_names.c. */
int kcm_crypto_san_from_hosts(lua_State *L, int idx, int drop_dns_email,
                              GENERAL_NAMES **out, char *err, size_t errlen);
/* Builds an X509_NAME from a Lua array of {field, {values...}}. */
X509_NAME *kcm_crypto_name_from_lua(lua_State *L, int idx, char *err, size_t errlen);
/* Pushes a Lua array {{field, value}, ...} describing `name`. */
void kcm_crypto_push_name(lua_State *L, const X509_NAME *name);

int kcm_crypto_make_csr(lua_State *L);
int kcm_crypto_sign(lua_State *L);
int kcm_crypto_parse_cert(lua_State *L);
int kcm_crypto_hosts_sans(lua_State *L);
/* The one rule for a hosts entry (cfssl's classification, then RFC 1123
 * DNS names, no IPv6 zones, URIs only spiffe/https): NULL and *kind (ip:
 * filled, *iplen 4 or 16), or why it is refused ("<what> 'h' <why>"). */
enum { KCM_HOST_DNS = 0, KCM_HOST_EMAIL = 1, KCM_HOST_IP = 2, KCM_HOST_URI = 3 };
const char *kcm_crypto_host_kind(const char *h, size_t len, int *kind, unsigned char ip[16], int *iplen,
                                 const char **what, char *buf, size_t buflen);
int kcm_crypto_l_host_kind(lua_State *L);
extern const luaL_Reg kcm_crypto_cert_methods[];
#endif
