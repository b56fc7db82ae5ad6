/* token: worker registration tokens. See token.h for the rules. */
#include "node/token.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

_Static_assert(sizeof(long) >= sizeof(int64_t), "libjwt's integer grants are long");

#define TOKEN_SIG_LEN 32        /* HMAC-SHA256 */
#define TOKEN_SIG_B64_LEN 43    /* unpadded base64url of 32 bytes */
#define TOKEN_JSON_MAX_DEPTH 32 /* nesting allowed in header and payload */
#define TOKEN_DECODED_MAX (TOKEN_MAX_LEN / 4 * 3 + 3)

/* ---- characters and base64url ---------------------------------------------------------- */

static int token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url in[0..len) into out (room for len / 4 * 3 + 2
 * bytes). With strict, the unused low bits of the last character must be
 * zero (the canonical encoding). Returns the decoded length or -1. */
static long b64url_decode(const char *in, size_t len, unsigned char *out, int strict)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;

    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (strict && acc != 0)
        return -1;
    return (long)n;
}

/* ---- a small strict JSON reader (RFC 8259) --------------------------------------------- */

struct tkjson {
    const unsigned char *p, *end;
};

/* Called for each member of an object with the key (unescaped, at most
 * keycap bytes kept in key, full length in keylen) and j positioned at the
 * value, which the callback must consume. Returns 0, or -1 for bad JSON. */
typedef int (*tkjson_member_cb)(void *ctx, const char *key, size_t keylen, struct tkjson *j);

static void tkjson_ws(struct tkjson *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static void tkjson_put(char *out, size_t cap, size_t *n, unsigned char c)
{
    if (out && *n < cap)
        out[*n] = (char)c;
    (*n)++;
}

static void tkjson_put_cp(char *out, size_t cap, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        tkjson_put(out, cap, n, (unsigned char)cp);
    } else if (cp < 0x800) {
        tkjson_put(out, cap, n, (unsigned char)(0xc0 | (cp >> 6)));
        tkjson_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        tkjson_put(out, cap, n, (unsigned char)(0xe0 | (cp >> 12)));
        tkjson_put(out, cap, n, (unsigned char)(0x80 | ((cp >> 6) & 0x3f)));
        tkjson_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
    } else {
        tkjson_put(out, cap, n, (unsigned char)(0xf0 | (cp >> 18)));
        tkjson_put(out, cap, n, (unsigned char)(0x80 | ((cp >> 12) & 0x3f)));
        tkjson_put(out, cap, n, (unsigned char)(0x80 | ((cp >> 6) & 0x3f)));
        tkjson_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
    }
}

static int tkjson_hex4(struct tkjson *j, uint32_t *cp)
{
    uint32_t v = 0;
    if (j->end - j->p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        unsigned char c = *j->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *cp = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0. */
static size_t tkjson_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0; /* overlong */
    else if (c == 0xed)
        hi = 0x9f; /* surrogates */
    else if (c == 0xf0)
        lo = 0x90; /* overlong */
    else if (c == 0xf4)
        hi = 0x8f; /* over U+10FFFF */
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

/* Reads the string at j->p (which must be '"'). Keeps at most cap bytes of
 * its unescaped UTF-8 in out (out may be NULL) and stores the full length in
 * *len. Returns 0, or -1 if it is not a valid JSON string. */
static int tkjson_string(struct tkjson *j, char *out, size_t cap, size_t *len)
{
    size_t n = 0;

    if (j->p >= j->end || *j->p != '"')
        return -1;
    j->p++;
    for (;;) {
        if (j->p >= j->end)
            return -1;
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20)
            return -1;
        if (c >= 0x80) {
            size_t k = tkjson_utf8_len(j->p, j->end);
            if (k == 0)
                return -1;
            for (size_t i = 0; i < k; i++)
                tkjson_put(out, cap, &n, j->p[i]);
            j->p += k;
            continue;
        }
        j->p++;
        if (c != '\\') {
            tkjson_put(out, cap, &n, c);
            continue;
        }
        if (j->p >= j->end)
            return -1;
        c = *j->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/': tkjson_put(out, cap, &n, c); break;
        case 'b': tkjson_put(out, cap, &n, '\b'); break;
        case 'f': tkjson_put(out, cap, &n, '\f'); break;
        case 'n': tkjson_put(out, cap, &n, '\n'); break;
        case 'r': tkjson_put(out, cap, &n, '\r'); break;
        case 't': tkjson_put(out, cap, &n, '\t'); break;
        case 'u': {
            uint32_t cp, lo;
            if (tkjson_hex4(j, &cp) != 0)
                return -1;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return -1; /* lone low surrogate */
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                    return -1;
                j->p += 2;
                if (tkjson_hex4(j, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            tkjson_put_cp(out, cap, &n, cp);
            break;
        }
        default: return -1;
        }
    }
    *len = n;
    return 0;
}

/* Reads the number at j->p. Returns 0 if it is an integer (no fraction, no
 * exponent) within int64 and stores it in *v, 1 if it is another valid JSON
 * number, -1 if it is not a JSON number. */
static int tkjson_number(struct tkjson *j, int64_t *v)
{
    int neg = 0, integer = 1, overflow = 0;
    uint64_t mag = 0;

    if (j->p < j->end && *j->p == '-') {
        neg = 1;
        j->p++;
    }
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return -1;
    if (*j->p == '0') {
        j->p++;
    } else {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
            unsigned d = (unsigned)(*j->p++ - '0');
            if (mag > (UINT64_MAX - d) / 10)
                overflow = 1;
            else
                mag = mag * 10 + d;
        }
    }
    if (j->p < j->end && *j->p == '.') {
        integer = 0;
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        integer = 0;
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (!integer || overflow)
        return 1;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return 1;
        *v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return 1;
        *v = (int64_t)mag;
    }
    return 0;
}

static int tkjson_literal(struct tkjson *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return -1;
    j->p += n;
    return 0;
}

static int tkjson_value(struct tkjson *j, int depth);

/* Reads the object at j->p, calling cb for each member (cb may be NULL: skip
 * the values). Returns 0 or -1 for bad JSON. */
static int tkjson_object(struct tkjson *j, int depth, tkjson_member_cb cb, void *ctx)
{
    char key[8];
    size_t keylen;

    if (depth > TOKEN_JSON_MAX_DEPTH || j->p >= j->end || *j->p != '{')
        return -1;
    j->p++;
    tkjson_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        tkjson_ws(j);
        if (tkjson_string(j, key, sizeof(key), &keylen) != 0)
            return -1;
        tkjson_ws(j);
        if (j->p >= j->end || *j->p != ':')
            return -1;
        j->p++;
        tkjson_ws(j);
        if (cb ? cb(ctx, key, keylen, j) : tkjson_value(j, depth + 1))
            return -1;
        tkjson_ws(j);
        if (j->p >= j->end)
            return -1;
        if (*j->p == '}') {
            j->p++;
            return 0;
        }
        if (*j->p != ',')
            return -1;
        j->p++;
    }
}

/* Reads the array at j->p; each element goes to elem_cb (which consumes it)
 * or is skipped. Returns 0 or -1 for bad JSON. */
static int tkjson_array(struct tkjson *j, int depth, int (*elem_cb)(void *, struct tkjson *), void *ctx)
{
    if (depth > TOKEN_JSON_MAX_DEPTH || j->p >= j->end || *j->p != '[')
        return -1;
    j->p++;
    tkjson_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return 0;
    }
    for (;;) {
        tkjson_ws(j);
        if (elem_cb ? elem_cb(ctx, j) : tkjson_value(j, depth + 1))
            return -1;
        tkjson_ws(j);
        if (j->p >= j->end)
            return -1;
        if (*j->p == ']') {
            j->p++;
            return 0;
        }
        if (*j->p != ',')
            return -1;
        j->p++;
    }
}

/* Skips one value at j->p. Returns 0 or -1 for bad JSON. */
static int tkjson_value(struct tkjson *j, int depth)
{
    size_t len;
    int64_t v;

    if (depth > TOKEN_JSON_MAX_DEPTH || j->p >= j->end)
        return -1;
    switch (*j->p) {
    case '{': return tkjson_object(j, depth, NULL, NULL);
    case '[': return tkjson_array(j, depth, NULL, NULL);
    case '"': return tkjson_string(j, NULL, 0, &len);
    case 't': return tkjson_literal(j, "true");
    case 'f': return tkjson_literal(j, "false");
    case 'n': return tkjson_literal(j, "null");
    default: return tkjson_number(j, &v) < 0 ? -1 : 0;
    }
}

/* Reads a whole document that must be one object, members to cb. */
static int tkjson_document(const unsigned char *doc, size_t len, tkjson_member_cb cb, void *ctx)
{
    struct tkjson j = {doc, doc + len};
    tkjson_ws(&j);
    if (tkjson_object(&j, 0, cb, ctx) != 0)
        return -1;
    tkjson_ws(&j);
    return j.p == j.end ? 0 : -1;
}

/* ---- header ---------------------------------------------------------------------------- */

struct token_header {
    int algs;   /* "alg" members seen */
    int alg_ok; /* the last one was the string "HS256" */
    int typs;
    int typ_ok;
};

static int token_header_cb(void *ctx, const char *key, size_t keylen, struct tkjson *j)
{
    struct token_header *h = ctx;
    char val[8];
    size_t len;

    if (keylen == 3 && memcmp(key, "alg", 3) == 0) {
        h->algs++;
        h->alg_ok = 0;
        if (j->p < j->end && *j->p == '"') {
            if (tkjson_string(j, val, sizeof(val), &len) != 0)
                return -1;
            h->alg_ok = len == 5 && memcmp(val, "HS256", 5) == 0;
            return 0;
        }
    } else if (keylen == 3 && memcmp(key, "typ", 3) == 0) {
        h->typs++;
        h->typ_ok = 0;
        if (j->p < j->end && *j->p == '"') {
            if (tkjson_string(j, val, sizeof(val), &len) != 0)
                return -1;
            h->typ_ok = len == 3 && strncasecmp(val, "JWT", 3) == 0;
            return 0;
        }
    }
    return tkjson_value(j, 1);
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

/* Decodes and checks the header. Returns 0, TOKEN_E_MALFORMED or TOKEN_E_ALG. */
static int token_check_header(const struct token_parts *p)
{
    unsigned char buf[TOKEN_DECODED_MAX];
    struct token_header h = {0};
    long n = b64url_decode(p->head, p->head_len, buf, 0);

    if (n < 0 || tkjson_document(buf, (size_t)n, token_header_cb, &h) != 0)
        return TOKEN_E_MALFORMED;
    if (h.algs != 1 || !h.alg_ok)
        return TOKEN_E_ALG;
    if (h.typs > 1 || (h.typs == 1 && !h.typ_ok))
        return TOKEN_E_MALFORMED;
    return 0;
}

/* ---- claims ---------------------------------------------------------------------------- */

enum token_claim_state { CLAIM_ABSENT = 0, CLAIM_OK, CLAIM_BAD_TYPE };

struct token_payload {
    const char *aud_want; /* NULL: aud not checked */
    size_t aud_want_len;
    enum token_claim_state tid, exp, nbf, iat;
    int aud_seen, aud_match;
    char tid_buf[TOKEN_MAX_ID_LEN + 1];
    size_t tid_len; /* full length, may exceed TOKEN_MAX_ID_LEN */
    int64_t exp_v, nbf_v, iat_v;
};

static int token_int_claim(enum token_claim_state *st, int64_t *v, struct tkjson *j)
{
    if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
        int r = tkjson_number(j, v);
        if (r < 0)
            return -1;
        *st = r == 0 ? CLAIM_OK : CLAIM_BAD_TYPE;
        return 0;
    }
    *st = CLAIM_BAD_TYPE;
    return tkjson_value(j, 1);
}

/* Compares one aud string (or array element) with the wanted audience. */
static int token_aud_elem_cb(void *ctx, struct tkjson *j)
{
    struct token_payload *c = ctx;
    char buf[TOKEN_MAX_AUDIENCE_LEN];
    size_t len;

    if (j->p >= j->end || *j->p != '"')
        return tkjson_value(j, 2);
    if (tkjson_string(j, buf, sizeof(buf), &len) != 0)
        return -1;
    if (c->aud_want && len == c->aud_want_len && len <= sizeof(buf) && memcmp(buf, c->aud_want, len) == 0)
        c->aud_match = 1;
    return 0;
}

static int token_payload_cb(void *ctx, const char *key, size_t keylen, struct tkjson *j)
{
    struct token_payload *c = ctx;

    if (keylen != 3)
        return tkjson_value(j, 1);
    if (memcmp(key, "tid", 3) == 0) {
        if (j->p < j->end && *j->p == '"') {
            size_t keep = sizeof(c->tid_buf) - 1;
            if (tkjson_string(j, c->tid_buf, keep, &c->tid_len) != 0)
                return -1;
            c->tid_buf[c->tid_len < keep ? c->tid_len : keep] = '\0';
            c->tid = CLAIM_OK;
            return 0;
        }
        c->tid = CLAIM_BAD_TYPE;
        return tkjson_value(j, 1);
    }
    if (memcmp(key, "exp", 3) == 0)
        return token_int_claim(&c->exp, &c->exp_v, j);
    if (memcmp(key, "nbf", 3) == 0)
        return token_int_claim(&c->nbf, &c->nbf_v, j);
    if (memcmp(key, "iat", 3) == 0)
        return token_int_claim(&c->iat, &c->iat_v, j);
    if (memcmp(key, "aud", 3) == 0) {
        c->aud_seen = 1;
        c->aud_match = 0;
        if (j->p < j->end && *j->p == '[')
            return tkjson_array(j, 1, token_aud_elem_cb, c);
        return token_aud_elem_cb(c, j);
    }
    return tkjson_value(j, 1);
}

/* Reads the claims of a payload document; of duplicate members the last one
 * counts (as in jansson, which libjwt uses; RFC 7519 section 4). Returns 0, TOKEN_E_MALFORMED,
 * TOKEN_E_MISSING_CLAIM or TOKEN_E_CLAIM_TYPE. */
static int token_read_claims(const unsigned char *doc, size_t len, struct token_payload *c)
{
    if (tkjson_document(doc, len, token_payload_cb, c) != 0)
        return TOKEN_E_MALFORMED;
    if (c->tid == CLAIM_ABSENT || c->exp == CLAIM_ABSENT || c->nbf == CLAIM_ABSENT)
        return TOKEN_E_MISSING_CLAIM;
    if (c->tid != CLAIM_OK || c->exp != CLAIM_OK || c->nbf != CLAIM_OK)
        return TOKEN_E_CLAIM_TYPE;
    return 0;
}

static void token_fill(const struct token_payload *c, int key, struct token_claims *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    memcpy(out->tid, c->tid_buf, sizeof(out->tid));
    out->tid_len = c->tid_len;
    out->exp = c->exp_v;
    out->nbf = c->nbf_v;
    out->has_iat = c->iat == CLAIM_OK;
    out->iat = out->has_iat ? c->iat_v : 0;
    out->key = key;
}

/* The semantic checks after the claims were read: tid, aud, window, time. */
static int token_check_claims(const struct token_payload *c, const char *id, size_t id_len, int64_t now_s,
                              int64_t leeway)
{
    if (c->tid_len != id_len || c->tid_len > TOKEN_MAX_ID_LEN ||
        (id_len > 0 && memcmp(c->tid_buf, id, id_len) != 0))
        return TOKEN_E_TID;
    if (c->aud_want && !c->aud_match)
        return TOKEN_E_AUDIENCE;
    /* exp > nbf, so the unsigned difference is the exact one */
    if (c->exp_v <= c->nbf_v || (uint64_t)c->exp_v - (uint64_t)c->nbf_v > (uint64_t)TOKEN_MAX_WINDOW_S)
        return TOKEN_E_WINDOW;
    if ((__int128)now_s < (__int128)c->nbf_v - leeway)
        return TOKEN_E_NOT_YET_VALID;
    if ((__int128)now_s >= (__int128)c->exp_v + leeway)
        return TOKEN_E_EXPIRED;
    return 0;
}

/* ---- signature ------------------------------------------------------------------------- */

/* Returns 1 if sig is HMAC-SHA256(secret, signed), compared in constant time. */
static int token_hmac_ok(const char *secret, size_t secret_len, const char *signed_part, size_t signed_len,
                         const unsigned char *sig)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)signed_part, signed_len, md,
              &md_len) ||
        md_len != TOKEN_SIG_LEN)
        return 0;
    int ok = CRYPTO_memcmp(md, sig, TOKEN_SIG_LEN) == 0;
    OPENSSL_cleanse(md, sizeof(md));
    return ok;
}

/* Decodes the payload and reads its claims, before the signature is known. */
static int token_payload_precheck(const struct token_parts *p)
{
    unsigned char buf[TOKEN_DECODED_MAX];
    long n = b64url_decode(p->body, p->body_len, buf, 0);

    if (n < 0 || tkjson_document(buf, (size_t)n, NULL, NULL) != 0)
        return TOKEN_E_MALFORMED;
    return 0;
}

/* libjwt decodes the token again with the secret that verified it; the claims
 * are read from libjwt's (jansson's) view of the payload. */
static int token_jwt_claims(const char *token, size_t token_len, const char *key, size_t key_len,
                            struct token_payload *c)
{
    jwt_t *jwt = NULL;
    char *copy, *grants = NULL;
    int rc;

    copy = malloc(token_len + 1);
    if (!copy)
        return TOKEN_E_NOMEM;
    memcpy(copy, token, token_len);
    copy[token_len] = '\0';
    rc = jwt_decode(&jwt, copy, (const unsigned char *)key, (int)key_len);
    if (rc != 0) {
        /* the signature is known good: anything libjwt refuses now is content */
        rc = rc == ENOMEM ? TOKEN_E_NOMEM : TOKEN_E_MALFORMED;
        goto out_free_copy;
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        rc = TOKEN_E_ALG;
        goto out_free_jwt;
    }
    errno = 0;
    grants = jwt_get_grants_json(jwt, NULL);
    if (!grants) {
        rc = errno == ENOMEM ? TOKEN_E_NOMEM : TOKEN_E_MALFORMED;
        goto out_free_jwt;
    }
    rc = token_read_claims((const unsigned char *)grants, strlen(grants), c);
    free(grants);
out_free_jwt:
    jwt_free(jwt);
out_free_copy:
    free(copy);
    return rc;
}

/* ---- public ---------------------------------------------------------------------------- */

int token_verify(const struct token_keys *keys, const char *token, size_t token_len, const char *id,
                 size_t id_len, int64_t now_s, struct token_claims *out)
{
    struct token_parts p;
    struct token_payload c;
    unsigned char sig[TOKEN_SIG_LEN + 2];
    const char *key = NULL;
    size_t key_len = 0;
    int which = 0, rc;

    if (!keys || (!id && id_len) || keys->leeway_s < 0 || keys->leeway_s > TOKEN_MAX_LEEWAY_S)
        return TOKEN_E_INVAL;
    int has_a = keys->secret_a && keys->secret_a_len > 0;
    int has_b = keys->secret_b && keys->secret_b_len > 0;
    if ((!has_a && !has_b) || (has_a && keys->secret_a_len > TOKEN_MAX_SECRET_LEN) ||
        (has_b && keys->secret_b_len > TOKEN_MAX_SECRET_LEN))
        return TOKEN_E_NO_KEY;
    memset(&c, 0, sizeof(c));
    if (keys->audience && keys->audience[0]) {
        c.aud_want = keys->audience;
        c.aud_want_len = strlen(keys->audience);
        if (c.aud_want_len > TOKEN_MAX_AUDIENCE_LEN)
            return TOKEN_E_INVAL;
    }

    if ((rc = token_split(token, token_len, &p)) != 0)
        return rc;
    if ((rc = token_check_header(&p)) != 0)
        return rc;
    if ((rc = token_payload_precheck(&p)) != 0)
        return rc;
    if (p.sig_len != TOKEN_SIG_B64_LEN || b64url_decode(p.sig, p.sig_len, sig, 1) != TOKEN_SIG_LEN)
        return TOKEN_E_SIGNATURE;
    size_t signed_len = p.head_len + 1 + p.body_len;
    if (has_a && token_hmac_ok(keys->secret_a, keys->secret_a_len, token, signed_len, sig)) {
        key = keys->secret_a, key_len = keys->secret_a_len, which = 1;
    } else if (has_b && token_hmac_ok(keys->secret_b, keys->secret_b_len, token, signed_len, sig)) {
        key = keys->secret_b, key_len = keys->secret_b_len, which = 2;
    } else {
        return TOKEN_E_SIGNATURE;
    }

    if ((rc = token_jwt_claims(token, token_len, key, key_len, &c)) != 0)
        return rc;
    if ((rc = token_check_claims(&c, id, id_len, now_s, keys->leeway_s)) != 0)
        return rc;
    token_fill(&c, which, out);
    return 0;
}

int token_inspect(const char *token, size_t token_len, struct token_claims *out)
{
    struct token_parts p;
    struct token_payload c;
    unsigned char buf[TOKEN_DECODED_MAX];
    int rc;

    if ((rc = token_split(token, token_len, &p)) != 0)
        return rc;
    if ((rc = token_check_header(&p)) != 0)
        return rc;
    long n = b64url_decode(p.body, p.body_len, buf, 0);
    if (n < 0)
        return TOKEN_E_MALFORMED;
    memset(&c, 0, sizeof(c));
    if ((rc = token_read_claims(buf, (size_t)n, &c)) != 0)
        return rc;
    token_fill(&c, 0, out);
    return 0;
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
    if (!id || !token_valid_id(id, strlen(id)) || now_s < TOKEN_MINT_BACKDATE_S || now_s > TOKEN_MAX_TIME_S ||
        ttl_s <= 0)
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

int token_valid_id(const char *id, size_t len)
{
    if (!id || len == 0 || len > TOKEN_MAX_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '~' || c == '.' || c == '%' || c == '-'))
            return 0;
    }
    return 1;
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
