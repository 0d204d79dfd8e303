/* Subject names and subjectAltNames encoded the way Go's crypto/x509 (and
 * so cfssl) encodes them, so certificates compare equal byte for byte. */
#include <string.h>
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

/* Go's url.ParseRequestURI accepts what cfssl then puts in a URI SAN: an
 * absolute URI (scheme ":" ...) or an absolute path. */
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

/* RFC 1035 sizes (labels 1..63, at most 253 in all), LDH plus '_' and a
 * leading "*" label for wildcards. */
static const char *dns_problem(const char *h, size_t len)
{
    if (len > 253)
        return "longer than 253 characters";
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? h[i] : '.';
        if (c == '.') {
            if (label == 0)
                return "has an empty label";
            if (label > 63)
                return "has a label longer than 63 characters";
            label = 0;
            continue;
        }
        label++;
        if (c == '*' && i == 0 && (len == 1 || h[1] == '.'))
            continue;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return "has a character not allowed in a DNS name";
    }
    return NULL;
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
            int iplen = 0;
            if (inet_pton(AF_INET, h, ip) == 1) {
                iplen = 4;
            } else if (inet_pton(AF_INET6, h, ip) == 1) {
                iplen = 16;
                if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)ip)) {
                    memmove(ip, ip + 12, 4);   /* Go's To4() */
                    iplen = 4;
                }
            }
            int kind = iplen ? 2 : looks_like_email(h) ? 1 : looks_like_uri(h) ? 3 : 0;
            if (kind == pass && !(drop_dns_email && kind < 2)) {
                int ok;
                if (kind == 2) {
                    ok = push_gen(gens, GEN_IPADD, ip, iplen);
                } else {
                    for (size_t k = 0; k < len; k++)
                        if ((unsigned char)h[k] >= 0x80 || (unsigned char)h[k] <= 0x20 || h[k] == 0x7f) {
                            snprintf(err, errlen, "hosts[%d] is not printable ASCII without spaces", (int)i);
                            goto fail;
                        }
                    const char *bad = kind == 0 ? dns_problem(h, len) : NULL;
                    if (bad) {
                        snprintf(err, errlen, "hosts[%d]: DNS name '%.80s%s' %s", (int)i, h,
                                 len > 80 ? "..." : "", bad);
                        goto fail;
                    }
                    ok = push_gen(gens, kind == 1 ? GEN_EMAIL : kind == 3 ? GEN_URI : GEN_DNS, h, (int)len);
                }
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
