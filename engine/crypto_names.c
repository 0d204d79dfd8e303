/* Subject names and subjectAltNames encoded the way Go's crypto/x509 (and
 * so cfssl) encodes them, so certificates compare equal byte for byte. */
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include "crypto.h"

static const struct { const char *field; int nid; } name_fields[] = {
    {"C", NID_countryName},
    {"ST", NID_stateOrProvinceName},
    {"L", NID_localityName},
    {"street", NID_streetAddress},
    {"postalCode", NID_postalCode},
    {"O", NID_organizationName},
    {"OU", NID_organizationalUnitName},
    {"CN", NID_commonName},
    {"serialNumber", NID_serialNumber},
    {NULL, 0},
};

static int field_nid(const char *field)
{
    for (int i = 0; name_fields[i].field; i++)
        if (!strcmp(name_fields[i].field, field))
            return name_fields[i].nid;
    return NID_undef;
}

static const char *nid_field(int nid)
{
    for (int i = 0; name_fields[i].field; i++)
        if (name_fields[i].nid == nid)
            return name_fields[i].field;
    return OBJ_nid2sn(nid);
}

/* Go marshals a string as PrintableString when every byte is in that set
 * (no '*', no '&'), UTF8String otherwise. */
static int go_string_type(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (c == 0 || !strchr(" '()+,-./:=?", c))
            return V_ASN1_UTF8STRING;
    }
    return V_ASN1_PRINTABLESTRING;
}

/* idx: array of {field, {value, ...}}; several values form one multi-valued
 * RDN, as Go does for repeated attributes of one type. */
X509_NAME *kcm_crypto_name_from_lua(lua_State *L, int idx, char *err, size_t errlen)
{
    idx = lua_absindex(L, idx);
    X509_NAME *name = X509_NAME_new();
    if (!name) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        if (!lua_istable(L, -1)) {
            snprintf(err, errlen, "subject entry %d is not a table", (int)i);
            lua_pop(L, 1);
            X509_NAME_free(name);
            return NULL;
        }
        lua_geti(L, -1, 1);
        const char *field = lua_tostring(L, -1);
        int nid = field ? field_nid(field) : NID_undef;
        if (nid == NID_undef) {
            snprintf(err, errlen, "unknown subject field '%s'", field ? field : "?");
            lua_pop(L, 2);
            X509_NAME_free(name);
            return NULL;
        }
        lua_pop(L, 1);
        lua_geti(L, -1, 2);
        lua_Integer nv = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
        for (lua_Integer v = 1; v <= nv; v++) {
            lua_geti(L, -1, v);
            size_t len;
            const char *val = lua_tolstring(L, -1, &len);
            for (size_t k = 0; val && k < len; k++)
                if ((unsigned char)val[k] < 0x20 || val[k] == 0x7f) {
                    snprintf(err, errlen, "subject %s holds a control character (byte 0x%02x at %zu)",
                             field, (unsigned)(unsigned char)val[k], k);
                    lua_pop(L, 3);
                    X509_NAME_free(name);
                    return NULL;
                }
            if (!val || !X509_NAME_add_entry_by_NID(name, nid, go_string_type(val, len),
                                                    (const unsigned char *)val, (int)len,
                                                    -1, v == 1 ? 0 : -1)) {
                snprintf(err, errlen, "bad subject value for %s", field);
                lua_pop(L, 3);
                X509_NAME_free(name);
                return NULL;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 2);
    }
    return name;
}

void kcm_crypto_push_name(lua_State *L, const X509_NAME *name)
{
    int n = X509_NAME_entry_count(name);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
        lua_createtable(L, 2, 0);
        lua_pushstring(L, nid_field(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e))));
        lua_rawseti(L, -2, 1);
        if (len >= 0)
            lua_pushlstring(L, (const char *)utf8, (size_t)len);
        else
            lua_pushliteral(L, "");
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, i + 1);
        OPENSSL_free(utf8);
    }
}

/* net/mail accepts far more, but a bare local@domain is what hosts carry. */
static int looks_like_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@'))
        return 0;
    return strpbrk(s, " \t<>,;\"()[]\\") == NULL;
}

/* Go's url.ParseRequestURI shape (scheme ":" ... or an absolute path): a
 * hosts entry of this shape is meant as a URI, allowed or not. */
static int looks_like_uri(const char *s)
{
    if (s[0] == '/')
        return 1;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (const char *p = s + 1; *p; p++) {
        if (*p == ':')
            return 1;
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '+' || *p == '-' || *p == '.'))
            return 0;
    }
    return 0;
}

/* spiffe:// and https:// with an authority: the URI SANs workloads and
 * webhooks use. file:, data:, paths... carry nothing a TLS peer checks. */
static int uri_allowed(const char *s)
{
    const char *rest = !strncasecmp(s, "spiffe://", 9) ? s + 9 : !strncasecmp(s, "https://", 8) ? s + 8 : NULL;
    return rest && *rest && *rest != '/';
}

/* RFC 1123 labels (letters, digits, '-' not first or last; '_' as Go's
 * x509 allows), 1..63 each, 253 in all, one leading "*." for wildcards,
 * and a last label that is not all digits (that is an IP literal, or
 * nothing). */
static const char *dns_problem(const char *h, size_t len, char *buf, size_t buflen)
{
    if (len > 253) {
        snprintf(buf, buflen, "is %zu characters long (a DNS name has at most 253)", len);
        return buf;
    }
    size_t start = 0;
    int digits_only = 1;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? h[i] : '.';
        if (c != '.') {
            if (!(c >= '0' && c <= '9'))
                digits_only = 0;
            continue;
        }
        size_t n = i - start;
        const char *label = h + start;
        if (n == 0)
            return "has an empty label";
        if (n > 63) {
            snprintf(buf, buflen, "has a label of %zu characters (at most 63)", n);
            return buf;
        }
        int wildcard = start == 0 && n == 1 && label[0] == '*' && i < len;
        for (size_t k = 0; k < n && !wildcard; k++) {
            char d = label[k];
            if (!((d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || (d >= '0' && d <= '9') || d == '-' ||
                  d == '_')) {
                snprintf(buf, buflen, "has the label '%.*s': DNS names take letters, digits, '-' and '_' "
                         "(and a leading '*.')", (int)(n > 63 ? 63 : n), label);
                return buf;
            }
        }
        if (label[0] == '-' || label[n - 1] == '-') {
            snprintf(buf, buflen, "has the label '%.*s': a label neither starts nor ends with '-'", (int)n, label);
            return buf;
        }
        if (i == len && digits_only)
            return "ends in an all-digit label: it is no host name, and no valid IP address either";
        start = i + 1;
        digits_only = 1;
    }
    return NULL;
}

const char *kcm_crypto_host_kind(const char *h, size_t len, int *kind, unsigned char ip[16], int *iplen,
                                 const char **what, char *buf, size_t buflen)
{
    *iplen = 0;
    *what = "host";
    if (len == 0 || strlen(h) != len)
        return "is empty or holds a NUL byte";
    for (size_t k = 0; k < len; k++)
        if ((unsigned char)h[k] >= 0x80 || (unsigned char)h[k] <= 0x20 || h[k] == 0x7f)
            return "is not printable ASCII without spaces";
    if (inet_pton(AF_INET, h, ip) == 1) {
        *iplen = 4;
    } else if (inet_pton(AF_INET6, h, ip) == 1) {
        *iplen = 16;
        if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)ip)) {
            memmove(ip, ip + 12, 4);   /* Go's To4() */
            *iplen = 4;
        }
    }
    if (*iplen) {
        *kind = KCM_HOST_IP;
        return NULL;
    }
    *what = "IP address";
    const char *pct = strchr(h, '%');
    if (pct && strchr(h, ':') && strspn(h, "0123456789abcdefABCDEF:.") == (size_t)(pct - h))
        return "has an IPv6 zone: a certificate holds no zone; give the address alone";
    if (strspn(h, "0123456789.") == len || (strchr(h, ':') && strspn(h, "0123456789abcdefABCDEF:.") == len))
        return "looks like an IP address but is not a valid one";
    if (looks_like_email(h)) {
        *kind = KCM_HOST_EMAIL;
        return NULL;
    }
    if (looks_like_uri(h)) {
        *what = "URI";
        if (!uri_allowed(h))
            return "is not allowed: URI SANs take only spiffe://HOST/... and https://HOST/...";
        *kind = KCM_HOST_URI;
        return NULL;
    }
    *what = "DNS name";
    *kind = KCM_HOST_DNS;
    return dns_problem(h, len, buf, buflen);
}

/* crypto.host_kind(h) -> "dns"|"email"|"ip"|"uri" | nil, what, why: the one
 * rule pki.lua's CSR loader and the signer below it both apply. */
int kcm_crypto_l_host_kind(lua_State *L)
{
    size_t len;
    const char *h = luaL_checklstring(L, 1, &len);
    int kind = 0, iplen;
    unsigned char ip[16];
    const char *what;
    char buf[256];
    const char *why = kcm_crypto_host_kind(h, len, &kind, ip, &iplen, &what, buf, sizeof buf);
    if (why) {
        lua_pushnil(L);
        lua_pushstring(L, what);
        lua_pushstring(L, why);
        return 3;
    }
    static const char *const names[] = {"dns", "email", "ip", "uri"};
    lua_pushstring(L, names[kind]);
    return 1;
}

static int push_gen(GENERAL_NAMES *gens, int type, const void *data, int len)
{
    ASN1_STRING *s = type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    GENERAL_NAME *g = GENERAL_NAME_new();
    if (!s || !g || !ASN1_STRING_set(s, data, len)) {
        ASN1_STRING_free(s);
        GENERAL_NAME_free(g);
        return 0;
    }
    GENERAL_NAME_set0_value(g, type, s);
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return 0;
    }
    return 1;
}

/* idx: array of host strings. Order follows Go: DNS names, e-mails, IPs,
 * URIs (cfssl's classification: IP, e-mail, URI, else DNS name).
 * *out is NULL when nothing remains. */
int kcm_crypto_san_from_hosts(lua_State *L, int idx, int drop_dns_email,
                              GENERAL_NAMES **out, char *err, size_t errlen)
{
    idx = lua_absindex(L, idx);
    *out = NULL;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (!gens) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    lua_Integer n = luaL_len(L, idx);
    for (int pass = 0; pass < 4; pass++) {
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, idx, i);
            size_t len;
            const char *h = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
            if (!h || len == 0 || strlen(h) != len) {
                snprintf(err, errlen, "hosts[%d] is not a non-empty string", (int)i);
                goto fail;
            }
            unsigned char ip[16];
            int iplen = 0, kind = 0;
            const char *what;
            char why_buf[256];
            const char *bad = kcm_crypto_host_kind(h, len, &kind, ip, &iplen, &what, why_buf, sizeof why_buf);
            if (bad) {
                snprintf(err, errlen, "hosts[%d]: %s '%.80s%s' %s", (int)i, what, h, len > 80 ? "..." : "", bad);
                goto fail;
            }
            if (kind == pass && !(drop_dns_email && kind < 2)) {
                int ok;
                if (kind == KCM_HOST_IP)
                    ok = push_gen(gens, GEN_IPADD, ip, iplen);
                else
                    ok = push_gen(gens, kind == KCM_HOST_EMAIL ? GEN_EMAIL : kind == KCM_HOST_URI ? GEN_URI : GEN_DNS,
                                  h, (int)len);
                if (!ok) {
                    snprintf(err, errlen, "out of memory");
                    goto fail;
                }
            }
            lua_pop(L, 1);
        }
    }
    if (sk_GENERAL_NAME_num(gens) == 0)
        GENERAL_NAMES_free(gens);
    else
        *out = gens;
    return 1;
fail:
    lua_pop(L, 1);
    GENERAL_NAMES_free(gens);
    return 0;
}
