/* token: worker registration tokens. See token.h for the rules.
 *
 * libjwt 1.10 verifies the signature (jwt_decode) and signs (token_mint);
 * jansson reads the JSON; OpenSSL decodes base64. What is left here is what
 * libjwt 1.10 gets wrong or does not check (token.h lists it): it takes
 * "hs256", HS384 and HS512 with the same key, the last of duplicate header
 * members, an array as payload, and a decoded part up to its first NUL byte;
 * it checks no claim at all. */
#include "node/token.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>

#include "util/util.h"

_Static_assert(sizeof(long) >= sizeof(int64_t), "libjwt's integer grants are long");
_Static_assert(sizeof(json_int_t) == sizeof(int64_t), "jansson's integers are the claims' int64_t");
_Static_assert(TOKEN_MAX_ID_LEN == UTIL_MAX_ID_LEN, "a tid is a worker id");

#define TOKEN_DECODED_MAX (TOKEN_MAX_LEN / 4 * 3 + 3) /* bytes of a decoded part */

/* ---- shape ----------------------------------------------------------------------------- */

static int token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* The three parts of a token, as offsets into it. */
struct token_parts {
    const char *head, *body, *sig;
    size_t head_len, body_len, sig_len;
};

/* Checks the shape and splits. Returns 0, TOKEN_E_TOO_LONG or TOKEN_E_MALFORMED. */
static int token_split(const char *t, size_t len, struct token_parts *p)
{
    const char *dots[2];
    int ndots = 0;

    if (len > TOKEN_MAX_LEN)
        return TOKEN_E_TOO_LONG;
    if (len == 0 || !t)
        return TOKEN_E_MALFORMED;
    for (size_t i = 0; i < len; i++) {
        if (!token_char((unsigned char)t[i]))
            return TOKEN_E_MALFORMED;
        if (t[i] == '.') {
            if (ndots == 2)
                return TOKEN_E_MALFORMED;
            dots[ndots++] = t + i;
        }
    }
    if (ndots != 2)
        return TOKEN_E_MALFORMED;
    p->head = t;
    p->head_len = (size_t)(dots[0] - t);
    p->body = dots[0] + 1;
    p->body_len = (size_t)(dots[1] - p->body);
    p->sig = dots[1] + 1;
    p->sig_len = (size_t)(t + len - p->sig);
    if (p->head_len == 0 || p->body_len == 0 || p->head_len % 4 == 1 || p->body_len % 4 == 1)
        return TOKEN_E_MALFORMED;
    return 0;
}

/* Decodes the unpadded base64url part[0..len) (alphabet and length checked by
 * token_split) into out, room for TOKEN_DECODED_MAX bytes, with OpenSSL's
 * base64 decoder given the standard alphabet and padding. As in libjwt, the
 * unused low bits of the last character are ignored. Returns the length, or
 * -1 if the bytes hold a NUL: never JSON text, yet libjwt reads up to it and
 * jansson 2.14 skips one that follows a number or a literal. */
static long token_decode_part(const char *part, size_t len, char *out)
{
    unsigned char std[TOKEN_MAX_LEN + 3];
    size_t pad = (4 - len % 4) % 4;
    int n;

    if (len > TOKEN_MAX_LEN || len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++)
        std[i] = part[i] == '-' ? '+' : part[i] == '_' ? '/' : (unsigned char)part[i];
    memset(std + len, '=', pad);
    n = EVP_DecodeBlock((unsigned char *)out, std, (int)(len + pad));
    if (n < 0 || (size_t)n < pad)
        return -1;
    n -= (int)pad; /* EVP_DecodeBlock counts the padding's zero bytes */
    return memchr(out, '\0', (size_t)n) ? -1 : n;
}

/* The token_err for a text jansson refused. */
static int token_json_err(const json_error_t *err)
{
    return json_error_code(err) == json_error_out_of_memory ? TOKEN_E_NOMEM : TOKEN_E_MALFORMED;
}

/* ---- header ---------------------------------------------------------------------------- */

/* jansson stopped at a member of the header given twice, err->position just
 * past its key. Returns TOKEN_E_ALG if that key is "alg", else
 * TOKEN_E_MALFORMED: a duplicate header parameter is refused (RFC 7515
 * section 4 allows it; libjwt would take the last one). */
static int token_header_dup(const char *doc, size_t len, const json_error_t *err)
{
    size_t end = err->position > 0 ? (size_t)err->position : 0, q;
    json_t *v;
    int rc;

    v = json_loadb(doc, len, 0, NULL); /* a duplicate in bad JSON: bad JSON first */
    if (!v)
        return TOKEN_E_MALFORMED;
    json_decref(v);
    if (end < 2 || end > len || doc[end - 1] != '"')
        return TOKEN_E_MALFORMED;
    /* the key's opening quote: the nearest '"' not escaped by an odd run of backslashes */
    for (q = end - 1; q-- > 0;) {
        size_t bs = 0;
        if (doc[q] != '"')
            continue;
        while (bs < q && doc[q - 1 - bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            break;
    }
    if (q >= end)
        return TOKEN_E_MALFORMED;
    v = json_loadb(doc + q, end - q, JSON_DECODE_ANY, NULL); /* the key as a JSON string */
    rc = json_is_string(v) && strcmp(json_string_value(v), "alg") == 0 ? TOKEN_E_ALG : TOKEN_E_MALFORMED;
    json_decref(v);
    return rc;
}

/* Decodes and checks the header: a JSON object, no member twice, "alg" the
 * string "HS256" exactly (libjwt takes "hs256" too), "typ" absent or "JWT" in
 * any case. Returns 0, TOKEN_E_MALFORMED, TOKEN_E_ALG or TOKEN_E_NOMEM. */
static int token_check_header(const struct token_parts *p)
{
    char doc[TOKEN_DECODED_MAX];
    long n = token_decode_part(p->head, p->head_len, doc);
    json_error_t err;
    json_t *h, *alg, *typ;
    int rc = 0;

    if (n < 0)
        return TOKEN_E_MALFORMED;
    h = json_loadb(doc, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!h)
        return json_error_code(&err) == json_error_duplicate_key ? token_header_dup(doc, (size_t)n, &err)
                                                                 : token_json_err(&err);
    alg = json_object_get(h, "alg");
    typ = json_object_get(h, "typ");
    if (!json_is_object(h))
        rc = TOKEN_E_MALFORMED;
    else if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0)
        rc = TOKEN_E_ALG; /* jansson strings hold no NUL: strcmp is exact */
    else if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        rc = TOKEN_E_MALFORMED;
    json_decref(h);
    return rc;
}

/* ---- signature and claims -------------------------------------------------------------- */

/* libjwt decodes the token and checks its signature with secret A, else with
 * secret B; *which is then 1 or 2. The signature must be the canonical
 * base64url of the HMAC; Debian's libjwt 1.10.2-1+deb12u1 compares it in
 * constant time (CVE-2024-25189). Returns 0, TOKEN_E_SIGNATURE or TOKEN_E_NOMEM. */
static int token_jwt_decode(const struct token_keys *k, const char *token, size_t len, jwt_t **jwt,
                            int *which)
{
    const char *secret[2] = {k->secret_a, k->secret_b};
    size_t secret_len[2] = {k->secret_a_len, k->secret_b_len};
    char copy[TOKEN_MAX_LEN + 1];

    memcpy(copy, token, len);
    copy[len] = '\0';
    for (int i = 0; i < 2; i++) {
        if (!secret[i] || secret_len[i] == 0)
            continue;
        int rc = jwt_decode(jwt, copy, (const unsigned char *)secret[i], (int)secret_len[i]);
        if (rc == ENOMEM)
            return TOKEN_E_NOMEM;
        if (rc == 0) {
            *which = i + 1;
            return 0;
        }
    }
    return TOKEN_E_SIGNATURE;
}

/* libjwt's view of the claims, which must equal the payload as parsed here
 * (both read the same signed bytes; this makes sure). Returns 0 and a new
 * reference in *out, TOKEN_E_MALFORMED or TOKEN_E_NOMEM. */
static int token_jwt_grants(jwt_t *jwt, const json_t *payload, json_t **out)
{
    json_error_t err;
    char *text;

    errno = 0;
    text = jwt_get_grants_json(jwt, NULL);
    if (!text)
        return errno == ENOMEM ? TOKEN_E_NOMEM : TOKEN_E_MALFORMED;
    *out = json_loads(text, 0, &err);
    free(text);
    if (!*out)
        return token_json_err(&err);
    if (!json_equal(*out, payload)) {
        json_decref(*out);
        *out = NULL;
        return TOKEN_E_MALFORMED;
    }
    return 0;
}

/* Reads tid (a string), exp and nbf (integers: 1.7e9 and 1795549652.0 are
 * reals) and iat (kept if an integer) into *c, key 0. Returns 0,
 * TOKEN_E_MISSING_CLAIM or TOKEN_E_CLAIM_TYPE. */
static int token_read_claims(const json_t *claims, struct token_claims *c)
{
    json_t *tid = json_object_get(claims, "tid"), *exp = json_object_get(claims, "exp");
    json_t *nbf = json_object_get(claims, "nbf"), *iat = json_object_get(claims, "iat");
    size_t keep;

    if (!tid || !exp || !nbf)
        return TOKEN_E_MISSING_CLAIM;
    if (!json_is_string(tid) || !json_is_integer(exp) || !json_is_integer(nbf))
        return TOKEN_E_CLAIM_TYPE;
    memset(c, 0, sizeof(*c));
    c->tid_len = json_string_length(tid);
    keep = c->tid_len < TOKEN_MAX_ID_LEN ? c->tid_len : TOKEN_MAX_ID_LEN;
    memcpy(c->tid, json_string_value(tid), keep);
    c->exp = json_integer_value(exp);
    c->nbf = json_integer_value(nbf);
    c->has_iat = json_is_integer(iat);
    c->iat = c->has_iat ? json_integer_value(iat) : 0;
    return 0;
}

/* 1 if aud is the string want, or an array with it among its strings. */
static int token_aud_has(const json_t *aud, const char *want, size_t want_len)
{
    size_t i;
    json_t *v;

    if (json_is_string(aud))
        return json_string_length(aud) == want_len && memcmp(json_string_value(aud), want, want_len) == 0;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && json_string_length(v) == want_len &&
            memcmp(json_string_value(v), want, want_len) == 0)
            return 1;
    }
    return 0;
}

/* The checks after the claims were read: tid, aud, window, time. */
static int token_check_claims(const json_t *claims, const struct token_claims *c, const struct token_keys *k,
                              const char *id, size_t id_len, int64_t now_s)
{
    if (c->tid_len != id_len || c->tid_len > TOKEN_MAX_ID_LEN ||
        (id_len > 0 && memcmp(c->tid, id, id_len) != 0))
        return TOKEN_E_TID;
    if (k->audience && k->audience[0] &&
        !token_aud_has(json_object_get(claims, "aud"), k->audience, strlen(k->audience)))
        return TOKEN_E_AUDIENCE;
    /* exp > nbf, so the unsigned difference is the exact one */
    if (c->exp <= c->nbf || (uint64_t)c->exp - (uint64_t)c->nbf > (uint64_t)TOKEN_MAX_WINDOW_S)
        return TOKEN_E_WINDOW;
    if ((__int128)now_s < (__int128)c->nbf - k->leeway_s)
        return TOKEN_E_NOT_YET_VALID;
    if ((__int128)now_s >= (__int128)c->exp + k->leeway_s)
        return TOKEN_E_EXPIRED;
    return 0;
}

/* The arguments of token_verify(). Returns 0, TOKEN_E_INVAL or TOKEN_E_NO_KEY. */
static int token_check_args(const struct token_keys *k, const char *id, size_t id_len)
{
    if (!k || (!id && id_len) || k->leeway_s < 0 || k->leeway_s > TOKEN_MAX_LEEWAY_S)
        return TOKEN_E_INVAL;
    int has_a = k->secret_a && k->secret_a_len > 0;
    int has_b = k->secret_b && k->secret_b_len > 0;
    if ((!has_a && !has_b) || (has_a && k->secret_a_len > TOKEN_MAX_SECRET_LEN) ||
        (has_b && k->secret_b_len > TOKEN_MAX_SECRET_LEN))
        return TOKEN_E_NO_KEY;
    if (k->audience && strlen(k->audience) > TOKEN_MAX_AUDIENCE_LEN)
        return TOKEN_E_INVAL;
    return 0;
}

/* Shape, header and payload: what token_verify and token_inspect check
 * before a signature. The payload must be a JSON object; of duplicate
 * members the last counts, as in libjwt (RFC 7519 section 4).
 * Returns 0 and the payload in *payload, or a negative token_err and NULL. */
static int token_read(const char *token, size_t token_len, json_t **payload)
{
    struct token_parts p;
    char doc[TOKEN_DECODED_MAX];
    json_error_t err;
    long n;
    int rc;

    *payload = NULL;
    if ((rc = token_split(token, token_len, &p)) != 0 || (rc = token_check_header(&p)) != 0)
        return rc;
    if ((n = token_decode_part(p.body, p.body_len, doc)) < 0)
        return TOKEN_E_MALFORMED;
    if (!(*payload = json_loadb(doc, (size_t)n, 0, &err)))
        return token_json_err(&err);
    if (json_is_object(*payload))
        return 0;
    json_decref(*payload);
    *payload = NULL;
    return TOKEN_E_MALFORMED;
}

/* ---- public ---------------------------------------------------------------------------- */

int token_verify(const struct token_keys *keys, const char *token, size_t token_len, const char *id,
                 size_t id_len, int64_t now_s, struct token_claims *out)
{
    struct token_claims c;
    json_t *payload, *grants = NULL;
    jwt_t *jwt = NULL;
    int which = 0, rc;

    if ((rc = token_check_args(keys, id, id_len)) != 0 || (rc = token_read(token, token_len, &payload)) != 0)
        return rc;
    if ((rc = token_jwt_decode(keys, token, token_len, &jwt, &which)) != 0)
        goto out_free_payload;
    rc = TOKEN_E_ALG; /* also when libjwt 1.10 returns 0 unread, having failed to copy the key */
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        goto out_free_jwt;
    if ((rc = token_jwt_grants(jwt, payload, &grants)) != 0)
        goto out_free_jwt;
    if ((rc = token_read_claims(grants, &c)) == 0 &&
        (rc = token_check_claims(grants, &c, keys, id, id_len, now_s)) == 0 && out) {
        *out = c;
        out->key = which;
    }
    json_decref(grants);
out_free_jwt:
    jwt_free(jwt);
out_free_payload:
    json_decref(payload);
    return rc;
}

int token_inspect(const char *token, size_t token_len, struct token_claims *out)
{
    struct token_claims c;
    json_t *payload;
    int rc;

    if ((rc = token_read(token, token_len, &payload)) != 0)
        return rc;
    if ((rc = token_read_claims(payload, &c)) == 0 && out)
        *out = c;
    json_decref(payload);
    return rc;
}

int token_mint(const char *secret, size_t secret_len, const char *id, int64_t now_s, int64_t ttl_s,
               const char *aud, char **out)
{
    jwt_t *jwt = NULL;
    int rc;

    if (!out)
        return TOKEN_E_INVAL;
    *out = NULL;
    if (!secret || secret_len == 0 || secret_len > TOKEN_MAX_SECRET_LEN)
        return TOKEN_E_NO_KEY;
    if (!id || !util_valid_worker_id(id, strlen(id)) || now_s < TOKEN_MINT_BACKDATE_S ||
        now_s > TOKEN_MAX_TIME_S || ttl_s <= 0)
        return TOKEN_E_INVAL;
    if (ttl_s > TOKEN_MAX_WINDOW_S - TOKEN_MINT_BACKDATE_S)
        return TOKEN_E_WINDOW;
    if (aud && strlen(aud) > TOKEN_MAX_AUDIENCE_LEN)
        return TOKEN_E_INVAL;

    if (jwt_new(&jwt) != 0)
        return TOKEN_E_NOMEM;
    rc = jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)secret_len);
    if (rc == 0)
        rc = jwt_add_grant(jwt, "tid", id);
    if (rc == 0)
        rc = jwt_add_grant_int(jwt, "iat", (long)now_s);
    if (rc == 0)
        rc = jwt_add_grant_int(jwt, "nbf", (long)(now_s - TOKEN_MINT_BACKDATE_S));
    if (rc == 0)
        rc = jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s));
    if (rc == 0 && aud && aud[0])
        rc = jwt_add_grant(jwt, "aud", aud); /* EINVAL if not UTF-8 */
    if (rc == 0) {
        errno = 0;
        *out = jwt_encode_str(jwt); /* plain malloc in libjwt 1.10: the caller's free() fits */
        if (!*out)
            rc = errno ? errno : ENOMEM;
    }
    jwt_free(jwt); /* scrubs its copy of the key */
    if (rc == 0)
        return 0;
    return rc == ENOMEM ? TOKEN_E_NOMEM : TOKEN_E_INVAL;
}

int token_parse_bearer(const char *authz_value, size_t len, const char **tok, size_t *tok_len)
{
    static const char prefix[] = "Bearer ";
    const size_t plen = sizeof(prefix) - 1;

    if (!authz_value || len <= plen || memcmp(authz_value, prefix, plen) != 0)
        return TOKEN_E_BEARER;
    for (size_t i = plen; i < len; i++)
        if (!token_char((unsigned char)authz_value[i]))
            return TOKEN_E_BEARER;
    if (len - plen > TOKEN_MAX_LEN)
        return TOKEN_E_TOO_LONG;
    if (tok)
        *tok = authz_value + plen;
    if (tok_len)
        *tok_len = len - plen;
    return 0;
}

const char *token_strerror(int err)
{
    switch (err) {
    case TOKEN_OK: return "ok";
    case TOKEN_E_MALFORMED: return "token is malformed";
    case TOKEN_E_TOO_LONG: return "token is too long";
    case TOKEN_E_ALG: return "token alg is not HS256";
    case TOKEN_E_SIGNATURE: return "token signature is invalid";
    case TOKEN_E_MISSING_CLAIM: return "token lacks tid, exp or nbf";
    case TOKEN_E_CLAIM_TYPE: return "token claim has the wrong type";
    case TOKEN_E_TID: return "token tid does not match the id";
    case TOKEN_E_AUDIENCE: return "token audience is missing or wrong";
    case TOKEN_E_WINDOW: return "token validity window is empty or over 31 days";
    case TOKEN_E_NOT_YET_VALID: return "token is not valid yet";
    case TOKEN_E_EXPIRED: return "token has expired";
    case TOKEN_E_NO_KEY: return "no usable token secret";
    case TOKEN_E_BEARER: return "authorization is not a bearer token";
    case TOKEN_E_INVAL: return "invalid argument";
    case TOKEN_E_NOMEM: return "out of memory";
    default: return "unknown token error";
    }
}
