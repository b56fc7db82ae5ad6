/* token: worker token checks (docs/protocol.md, "Tokens"). Foreign and broken tokens
 * are built by hand here (base64url + OpenSSL HMAC), not only with libjwt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "node/token.h"

#define NOW INT64_C(1795546052) /* iat of the captured token */
#define DAY INT64_C(86400)
#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const char SECRET_A[] = "secret-a-0123456789";
static const char SECRET_B[] = "the-other-secret";

/* The Authorization value sent by the 2019 wst-client (captures/go-websocktunnel-134aa7c.txt);
 * tid "wsid", iat 1795546052, nbf 1795545752, exp 1795549652; its secret is unknown. */
static const char CAPTURED[] = "Bearer "
                               "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                               "eyJ0aWQiOiJ3c2lkIiwiaWF0IjoxNzk1NTQ2MDUyLCJuYmYiOjE3OTU1NDU3NTIsImV4"
                               "cCI6MTc5NTU0OTY1Mn0.QO7VuyNlmQAriWpaLqhdt7Z9HohPimjHYZ3HaJi1Jvs";

/* ---- hand-made tokens ------------------------------------------------------------------ */

static char *b64url(const void *data, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    char *out = malloc(len / 3 * 4 + 5), *o = out;
    size_t i;
    assert_non_null(out);
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63], *o++ = tab[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

/* header.payload.HMAC(md, secret); md NULL: an empty signature part. */
static char *make_raw(const void *header, size_t hlen, const void *payload, size_t plen, const EVP_MD *md,
                      const char *secret)
{
    char *h = b64url(header, hlen), *p = b64url(payload, plen), *s = NULL;
    size_t n = strlen(h) + strlen(p) + 200;
    char *tok = malloc(n);
    assert_non_null(tok);
    snprintf(tok, n, "%s.%s", h, p);
    if (md) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen;
        assert_non_null(
            HMAC(md, secret, (int)strlen(secret), (unsigned char *)tok, strlen(tok), mac, &maclen));
        s = b64url(mac, maclen);
    }
    strcat(tok, ".");
    if (s)
        strcat(tok, s);
    free(h), free(p), free(s);
    return tok;
}

static char *make_md(const char *header, const char *payload, const EVP_MD *md, const char *secret)
{
    return make_raw(header, strlen(header), payload, strlen(payload), md, secret);
}

static char *make(const char *payload, const char *secret)
{
    return make_md(HDR, payload, EVP_sha256(), secret);
}

/* A payload with tid, nbf, exp (and the given extra members, ending with a comma or empty). */
static char *claims(const char *extra, const char *tid, int64_t nbf, int64_t exp)
{
    char *p = malloc(512);
    assert_non_null(p);
    snprintf(p, 512, "{%s\"tid\":\"%s\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}", extra, tid, (long long)NOW,
             (long long)nbf, (long long)exp);
    return p;
}

static struct token_keys keys_ab(const char *audience)
{
    struct token_keys k = {SECRET_A, strlen(SECRET_A), SECRET_B, strlen(SECRET_B), audience, 0};
    return k;
}

static int verify_with(const struct token_keys *k, const char *tok, const char *id, int64_t now,
                       struct token_claims *out)
{
    return token_verify(k, tok, strlen(tok), id, strlen(id), now, out);
}

static int verify(const char *tok, const char *id, int64_t now)
{
    struct token_keys k = keys_ab(NULL);
    return verify_with(&k, tok, id, now, NULL);
}

/* Verifies a payload signed HS256 with secret A, for id "wsid", at NOW. */
static int verify_payload(const char *payload, const char *audience)
{
    struct token_keys k = keys_ab(audience);
    char *tok = make(payload, SECRET_A);
    int rc = verify_with(&k, tok, "wsid", NOW, NULL);
    free(tok);
    return rc;
}

/* ---- good tokens ----------------------------------------------------------------------- */

static void test_valid_secret_a(void **state)
{
    struct token_keys k = keys_ab(NULL);
    struct token_claims c;
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make(p, SECRET_A);
    memset(&c, 0xa5, sizeof(c));
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, &c), 0);
    assert_int_equal(c.key, 1);
    assert_string_equal(c.tid, "wsid");
    assert_int_equal(c.tid_len, 4);
    assert_int_equal(c.nbf, NOW - 300);
    assert_int_equal(c.exp, NOW + 3600);
    assert_true(c.has_iat);
    assert_int_equal(c.iat, NOW);
    /* only A configured */
    k.secret_b = NULL, k.secret_b_len = 0;
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, &c), 0);
    assert_int_equal(c.key, 1);
    /* only B configured, and it is not B */
    k = keys_ab(NULL);
    k.secret_a = NULL, k.secret_a_len = 0;
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, NULL), TOKEN_E_SIGNATURE);
    free(tok), free(p);
}

static void test_valid_secret_b(void **state)
{
    struct token_keys k = keys_ab(NULL);
    struct token_claims c;
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make(p, SECRET_B);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, &c), 0);
    assert_int_equal(c.key, 2);
    k.secret_a = "", k.secret_a_len = 0; /* A absent as "" */
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, &c), 0);
    assert_int_equal(c.key, 2);
    k = keys_ab(NULL);
    k.secret_b = NULL, k.secret_b_len = 0;
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, NULL), TOKEN_E_SIGNATURE);
    free(tok), free(p);
}

static void test_wrong_secret(void **state)
{
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make(p, "not-the-secret");
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_SIGNATURE);
    free(tok);
    /* a secret that is a prefix of the right one */
    tok = make(p, "secret-a-012345678");
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_SIGNATURE);
    free(tok), free(p);
}

/* ---- alg ------------------------------------------------------------------------------- */

static void test_alg_none(void **state)
{
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make_md("{\"alg\":\"none\",\"typ\":\"JWT\"}", p, NULL, NULL); /* "h.p." */
    assert_int_equal(tok[strlen(tok) - 1], '.');
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_ALG);
    free(tok);
    tok = make_md("{\"alg\":\"none\"}", p, EVP_sha256(), SECRET_A); /* none, yet an HS256 signature */
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_ALG);
    free(tok);
    tok = make_md("{\"alg\":\"None\"}", p, NULL, NULL);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_ALG);
    free(tok), free(p);
}

static void test_alg_hs384_hs512_right_secret(void **state)
{
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *t384 = make_md("{\"alg\":\"HS384\",\"typ\":\"JWT\"}", p, EVP_sha384(), SECRET_A);
    char *t512 = make_md("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", p, EVP_sha512(), SECRET_A);
    jwt_t *jwt = NULL;
    /* why the check exists: libjwt 1.10 alone accepts them (NOTES.md) */
    assert_int_equal(jwt_decode(&jwt, t384, (const unsigned char *)SECRET_A, (int)strlen(SECRET_A)), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS384);
    jwt_free(jwt);
    assert_int_equal(jwt_decode(&jwt, t512, (const unsigned char *)SECRET_A, (int)strlen(SECRET_A)), 0);
    jwt_free(jwt);
    assert_int_equal(verify(t384, "wsid", NOW), TOKEN_E_ALG);
    assert_int_equal(verify(t512, "wsid", NOW), TOKEN_E_ALG);
    free(t384), free(t512), free(p);
}

static void test_alg_rs256_label(void **state)
{
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    /* RS256 in the header, signed HMAC-SHA256 with the secret (key confusion attempt) */
    char *tok = make_md("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", p, EVP_sha256(), SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_ALG);
    free(tok);
    tok = make_md("{\"alg\":\"ES256\"}", p, EVP_sha256(), SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_ALG);
    free(tok), free(p);
}

static void test_alg_header_tampered(void **state)
{
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *good = make(p, SECRET_A);
    char *h512 = b64url("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", 27);
    char *dot = strchr(good, '.');
    char buf[1024];
    assert_int_equal(verify(good, "wsid", NOW), 0);
    /* swap in another header, keep payload and signature */
    snprintf(buf, sizeof(buf), "%s%s", h512, dot);
    assert_int_equal(verify(buf, "wsid", NOW), TOKEN_E_ALG);
    /* a header still HS256 but different: the signature no longer fits */
    char *h2 = b64url("{\"typ\":\"JWT\",\"alg\":\"HS256\"}", 27);
    snprintf(buf, sizeof(buf), "%s%s", h2, dot);
    assert_int_equal(verify(buf, "wsid", NOW), TOKEN_E_SIGNATURE);
    free(h2), free(h512), free(good), free(p);
}

static void test_alg_header_variants(void **state)
{
    static const struct {
        const char *header;
        int rc;
    } cases[] = {
        {"{\"alg\":\"HS256\"}", 0},
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 0},
        {"{\"typ\":\"jwt\",\"alg\":\"HS256\",\"kid\":\"k1\"}", 0},
        {" {\r\n\"alg\" : \"HS256\"\t} ", 0},
        {"{\"alg\":\"HS\\u0032\\u00356\"}", 0}, /* escapes are JSON, the value is HS256 */
        {"{\"alg\":\"hs256\"}", TOKEN_E_ALG},
        {"{\"alg\":\"HS256 \"}", TOKEN_E_ALG},
        {"{\"alg\":\"HS2560\"}", TOKEN_E_ALG},
        {"{\"alg\":256}", TOKEN_E_ALG},
        {"{\"alg\":null}", TOKEN_E_ALG},
        {"{\"alg\":[\"HS256\"]}", TOKEN_E_ALG},
        {"{\"typ\":\"JWT\"}", TOKEN_E_ALG},
        {"{}", TOKEN_E_ALG},
        {"{\"alg\":\"HS256\",\"alg\":\"HS512\"}", TOKEN_E_ALG},
        {"{\"alg\":\"HS512\",\"alg\":\"HS256\"}", TOKEN_E_ALG},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", TOKEN_E_ALG},
        {"{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", TOKEN_E_MALFORMED},
        {"{\"alg\":\"HS256\",\"typ\":1}", TOKEN_E_MALFORMED},
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"typ\":\"JWT\"}", TOKEN_E_MALFORMED},
        {"{\"alg\":\"HS256\"", TOKEN_E_MALFORMED},
        {"{\"alg\":\"HS256\"}x", TOKEN_E_MALFORMED},
        {"{\"alg\":\"HS256\",}", TOKEN_E_MALFORMED},
        {"[\"alg\",\"HS256\"]", TOKEN_E_MALFORMED},
        {"\"HS256\"", TOKEN_E_MALFORMED},
        {"{'alg':'HS256'}", TOKEN_E_MALFORMED},
        {"{\"alg\":\"HS256\",\"x\":\"\xff\"}", TOKEN_E_MALFORMED}, /* not UTF-8 */
        {"{\"alg\":\"HS256\",\"x\":\"\\ud800\"}", TOKEN_E_MALFORMED},
        {"{\"alg\":\"HS256\",\"x\":01}", TOKEN_E_MALFORMED},
        {"", TOKEN_E_MALFORMED},
    };
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = make_md(cases[i].header, p, EVP_sha256(), SECRET_A);
        int rc = verify(tok, "wsid", NOW);
        if (rc != cases[i].rc)
            fail_msg("header %zu %s: got %d, want %d", i, cases[i].header, rc, cases[i].rc);
        free(tok);
    }
    free(p);
}

/* ---- time and window ------------------------------------------------------------------- */

static void test_expired_and_not_yet_valid(void **state)
{
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make(p, SECRET_A);
    struct token_keys k = keys_ab(NULL);
    assert_int_equal(verify(tok, "wsid", NOW + 3599), 0);
    assert_int_equal(verify(tok, "wsid", NOW + 3600), TOKEN_E_EXPIRED); /* now < exp, strictly */
    assert_int_equal(verify(tok, "wsid", NOW + 100 * DAY), TOKEN_E_EXPIRED);
    assert_int_equal(verify(tok, "wsid", NOW - 300), 0); /* nbf <= now */
    assert_int_equal(verify(tok, "wsid", NOW - 301), TOKEN_E_NOT_YET_VALID);
    assert_int_equal(verify(tok, "wsid", 0), TOKEN_E_NOT_YET_VALID);
    assert_int_equal(verify(tok, "wsid", INT64_MIN), TOKEN_E_NOT_YET_VALID);
    assert_int_equal(verify(tok, "wsid", INT64_MAX), TOKEN_E_EXPIRED);
    /* leeway widens both ends */
    k.leeway_s = 60;
    assert_int_equal(verify_with(&k, tok, "wsid", NOW + 3659, NULL), 0);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW + 3660, NULL), TOKEN_E_EXPIRED);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW - 360, NULL), 0);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW - 361, NULL), TOKEN_E_NOT_YET_VALID);
    k.leeway_s = TOKEN_MAX_LEEWAY_S + 1;
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, NULL), TOKEN_E_INVAL);
    k.leeway_s = -1;
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, NULL), TOKEN_E_INVAL);
    free(tok), free(p);
}

static void test_window(void **state)
{
    char *p;
    /* exactly 31 days: accepted, at both ends */
    p = claims("", "wsid", NOW - 31 * DAY + 10, NOW + 10);
    char *tok = make(p, SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), 0);
    free(tok), free(p);
    /* 31 days + 1 s: refused, although now is inside */
    p = claims("", "wsid", NOW - 31 * DAY + 9, NOW + 10);
    tok = make(p, SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_WINDOW);
    free(tok), free(p);
    /* the 60-day token the originals let through */
    p = claims("", "wsid", NOW - 300, NOW + 60 * DAY);
    tok = make(p, SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_WINDOW);
    free(tok), free(p);
    /* empty and inverted windows */
    p = claims("", "wsid", NOW, NOW);
    tok = make(p, SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_WINDOW);
    free(tok), free(p);
    p = claims("", "wsid", NOW + 10, NOW - 10);
    tok = make(p, SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_WINDOW);
    free(tok), free(p);
    /* extremes do not overflow */
    p = claims("", "wsid", INT64_MIN, INT64_MAX);
    tok = make(p, SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_WINDOW);
    free(tok), free(p);
    p = claims("", "wsid", INT64_MAX - 100, INT64_MAX);
    tok = make(p, SECRET_A);
    assert_int_equal(verify(tok, "wsid", INT64_MAX), TOKEN_E_EXPIRED);
    assert_int_equal(verify(tok, "wsid", INT64_MAX - 1), 0);
    free(tok), free(p);
    p = claims("", "wsid", INT64_MIN, INT64_MIN + 100);
    tok = make(p, SECRET_A);
    assert_int_equal(verify(tok, "wsid", INT64_MIN), 0);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_EXPIRED);
    free(tok), free(p);
}

/* ---- claims ---------------------------------------------------------------------------- */

static void test_missing_and_mistyped_claims(void **state)
{
    static const struct {
        const char *payload;
        int rc;
    } cases[] = {
        {"{\"tid\":\"wsid\",\"nbf\":1795545752}", TOKEN_E_MISSING_CLAIM},   /* no exp */
        {"{\"tid\":\"wsid\",\"exp\":1795549652}", TOKEN_E_MISSING_CLAIM},   /* no nbf */
        {"{\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_MISSING_CLAIM}, /* no tid */
        {"{}", TOKEN_E_MISSING_CLAIM},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":\"1795549652\"}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652.0}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1.795549652e9}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":true,\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":null,\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":[1795545752],\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":42,\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE}, /* tid not a string */
        {"{\"tid\":[\"wsid\"],\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":null,\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE},
        /* iat is informational: any type */
        {"{\"tid\":\"wsid\",\"iat\":\"yesterday\",\"nbf\":1795545752,\"exp\":1795549652}", 0},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}", 0},
        /* members in any order, unknown ones skipped, nested values skipped */
        {"{\"x\":{\"tid\":1,\"y\":[1,{\"z\":null}]},\"exp\":1795549652,\"nbf\":1795545752,\"tid\":\"wsid\"}",
         0},
        /* duplicates: the last counts (jansson, RFC 7519 section 4) */
        {"{\"tid\":\"other\",\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}", 0},
        {"{\"tid\":\"wsid\",\"tid\":\"other\",\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_TID},
        /* payloads that are not claim sets */
        {"[]", TOKEN_E_MALFORMED},
        {"\"wsid\"", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652", TOKEN_E_MALFORMED},
        {"not json", TOKEN_E_MALFORMED},
        {"{\"tid\":\"w\xc3\x28\",\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED}, /* bad UTF-8 */
        /* valid JSON that jansson (libjwt) refuses: signature good, so malformed */
        {"{\"tid\":\"wsid\\u0000\",\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":99999999999999999999}", TOKEN_E_MALFORMED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = verify_payload(cases[i].payload, NULL);
        if (rc != cases[i].rc)
            fail_msg("payload %zu %s: got %d, want %d", i, cases[i].payload, rc, cases[i].rc);
    }
}

static void test_tid(void **state)
{
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make(p, SECRET_A);
    char big[300];
    assert_int_equal(verify(tok, "wsid", NOW), 0);
    assert_int_equal(verify(tok, "wsiD", NOW), TOKEN_E_TID);
    assert_int_equal(verify(tok, "wsi", NOW), TOKEN_E_TID);
    assert_int_equal(verify(tok, "wsidx", NOW), TOKEN_E_TID);
    assert_int_equal(verify(tok, "other", NOW), TOKEN_E_TID);
    assert_int_equal(verify(tok, "", NOW), TOKEN_E_TID);
    /* the id is compared with its length, not as a C string */
    struct token_keys k = keys_ab(NULL);
    assert_int_equal(token_verify(&k, tok, strlen(tok), "wsid\0x", 6, NOW, NULL), TOKEN_E_TID);
    assert_int_equal(token_verify(&k, tok, strlen(tok), "wsidx", 4, NOW, NULL), 0);
    assert_int_equal(token_verify(&k, tok, strlen(tok), NULL, 0, NOW, NULL), TOKEN_E_TID);
    assert_int_equal(token_verify(&k, tok, strlen(tok), NULL, 4, NOW, NULL), TOKEN_E_INVAL);
    free(tok), free(p);
    /* escaped tid equals the id once unescaped */
    assert_int_equal(verify_payload("{\"tid\":\"ws\\u0069d\",\"nbf\":1795545752,\"exp\":1795549652}", NULL),
                     0);
    assert_int_equal(verify_payload("{\"tid\":\"ws\\/id\",\"nbf\":1795545752,\"exp\":1795549652}", NULL),
                     TOKEN_E_TID);
    /* a tid longer than any id */
    memset(big, 'a', 299);
    big[299] = '\0';
    p = claims("", big, NOW - 300, NOW + 3600);
    tok = make(p, SECRET_A);
    big[TOKEN_MAX_ID_LEN] = '\0';
    assert_int_equal(verify(tok, big, NOW), TOKEN_E_TID);
    free(tok), free(p);
    /* an empty tid equals only an empty id (the node refuses empty ids before) */
    p = claims("", "", NOW - 300, NOW + 3600);
    tok = make(p, SECRET_A);
    assert_int_equal(token_verify(&k, tok, strlen(tok), NULL, 0, NOW, NULL), 0);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_TID);
    free(tok), free(p);
    /* non-ASCII tid */
    p = claims("", "w\xc3\xa9", NOW - 300, NOW + 3600);
    tok = make(p, SECRET_A);
    assert_int_equal(verify(tok, "w\xc3\xa9", NOW), 0);
    assert_int_equal(verify(tok, "we", NOW), TOKEN_E_TID);
    free(tok), free(p);
}

static void test_audience_configured(void **state)
{
    char *p;
    p = claims("", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, "taskcluster"), TOKEN_E_AUDIENCE); /* missing aud */
    free(p);
    p = claims("\"aud\":\"other\",", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, "taskcluster"), TOKEN_E_AUDIENCE);
    free(p);
    p = claims("\"aud\":\"taskcluster\",", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, "taskcluster"), 0);
    assert_int_equal(verify_payload(p, "taskcluster2"), TOKEN_E_AUDIENCE);
    assert_int_equal(verify_payload(p, "taskcluste"), TOKEN_E_AUDIENCE);
    free(p);
    p = claims("\"aud\":[\"a\",7,{\"x\":1},\"taskcluster\",\"b\"],", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, "taskcluster"), 0);
    assert_int_equal(verify_payload(p, "b"), 0);
    assert_int_equal(verify_payload(p, "c"), TOKEN_E_AUDIENCE);
    free(p);
    p = claims("\"aud\":[],", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, "taskcluster"), TOKEN_E_AUDIENCE);
    free(p);
    p = claims("\"aud\":[[\"taskcluster\"]],", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, "taskcluster"), TOKEN_E_AUDIENCE);
    free(p);
    p = claims("\"aud\":42,", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, "42"), TOKEN_E_AUDIENCE);
    free(p);
    p = claims("\"aud\":null,", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, "taskcluster"), TOKEN_E_AUDIENCE);
    free(p);
}

static void test_audience_not_configured(void **state)
{
    char *p;
    p = claims("\"aud\":\"taskcluster\",", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, NULL), 0); /* the original refused this */
    assert_int_equal(verify_payload(p, ""), 0);
    free(p);
    p = claims("\"aud\":[\"x\",\"y\"],", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, NULL), 0);
    free(p);
    p = claims("\"aud\":17,", "wsid", NOW - 300, NOW + 3600);
    assert_int_equal(verify_payload(p, NULL), 0);
    free(p);
}

/* ---- garbage --------------------------------------------------------------------------- */

static void test_garbage(void **state)
{
    static const struct {
        const char *tok;
        int rc;
    } cases[] = {
        {"", TOKEN_E_MALFORMED},
        {".", TOKEN_E_MALFORMED},
        {"..", TOKEN_E_MALFORMED},
        {"abc", TOKEN_E_MALFORMED},
        {"eyJhbGciOiJIUzI1NiJ9.e30", TOKEN_E_MALFORMED},         /* 2 parts */
        {"eyJhbGciOiJIUzI1NiJ9.e30.", TOKEN_E_SIGNATURE},        /* empty signature */
        {"eyJhbGciOiJIUzI1NiJ9.e30.abc.def", TOKEN_E_MALFORMED}, /* 4 parts */
        {"eyJhbGciOiJIUzI1NiJ9..abc", TOKEN_E_MALFORMED},        /* empty payload */
        {".e30.abc", TOKEN_E_MALFORMED},                         /* empty header */
        {"eyJhbGciOiJIUzI1NiJ9x.e30.abc", TOKEN_E_MALFORMED},    /* header length 4n+1 */
        {"eyJhbGciOiJIUzI1NiJ9.e30xx.abc", TOKEN_E_MALFORMED},   /* payload length 4n+1 */
        {"eyJhbGciOiJIUzI1NiJ9.e30=.abc", TOKEN_E_MALFORMED},    /* padding */
        {"eyJhbGciOiJIUzI1NiJ9.e3+0.abc", TOKEN_E_MALFORMED},    /* standard base64 */
        {"eyJhbGciOiJIUzI1NiJ9.e3/0.abc", TOKEN_E_MALFORMED},
        {"eyJhbGciOiJIUzI1NiJ9.e30 .abc", TOKEN_E_MALFORMED},
        {"eyJhbGciOiJIUzI1NiJ9.e30.abc\n", TOKEN_E_MALFORMED},
        {"Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", TOKEN_E_MALFORMED},
        {"bm90IGpzb24.e30.abc", TOKEN_E_MALFORMED},                  /* header "not json" */
        {"eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.abc", TOKEN_E_MALFORMED}, /* payload "not json" */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = verify(cases[i].tok, "wsid", NOW);
        if (rc != cases[i].rc)
            fail_msg("token %zu \"%s\": got %d, want %d", i, cases[i].tok, rc, cases[i].rc);
    }
    /* a NUL inside: the length counts, not the C string */
    struct token_keys k = keys_ab(NULL);
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make(p, SECRET_A);
    size_t n = strlen(tok);
    char *withnul = malloc(n + 2);
    memcpy(withnul, tok, n + 1);
    withnul[n] = '\0', withnul[n + 1] = 'x';
    assert_int_equal(token_verify(&k, withnul, n + 1, "wsid", 4, NOW, NULL), TOKEN_E_MALFORMED);
    assert_int_equal(token_verify(&k, withnul, n, "wsid", 4, NOW, NULL), 0);
    free(withnul);
    /* NULL token */
    assert_int_equal(token_verify(&k, NULL, 0, "wsid", 4, NOW, NULL), TOKEN_E_MALFORMED);
    free(tok), free(p);
}

static void test_bad_signature_encodings(void **state)
{
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make(p, SECRET_A);
    size_t n = strlen(tok);
    char *sig = strrchr(tok, '.') + 1;
    char buf[1024];
    assert_int_equal(strlen(sig), 43);
    /* one character short, one long */
    memcpy(buf, tok, n + 1);
    buf[n - 1] = '\0';
    assert_int_equal(verify(buf, "wsid", NOW), TOKEN_E_SIGNATURE);
    snprintf(buf, sizeof(buf), "%sA", tok);
    assert_int_equal(verify(buf, "wsid", NOW), TOKEN_E_SIGNATURE);
    /* the same 32 bytes with the unused low bits of the last character set */
    memcpy(buf, tok, n + 1);
    {
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int v = (int)(strchr(tab, buf[n - 1]) - tab);
        assert_int_equal(v & 3, 0);
        buf[n - 1] = tab[v | 1];
    }
    assert_int_equal(verify(buf, "wsid", NOW), TOKEN_E_SIGNATURE);
    /* a signature of the right length but HS384's truncated: wrong */
    free(tok), free(p);
}

static void test_too_long(void **state)
{
    char *p = malloc(TOKEN_MAX_LEN + 64);
    char *pad = malloc(TOKEN_MAX_LEN);
    struct token_keys k = keys_ab(NULL);
    int at_limit = 0, over = 0;
    /* payloads padded so the token runs from just under to just over the limit
     * (base64url lengths skip 4n+1, so not every length exists) */
    for (size_t padlen = TOKEN_MAX_LEN * 3 / 4 - 150; padlen < TOKEN_MAX_LEN * 3 / 4 - 30; padlen++) {
        memset(pad, 'x', padlen);
        pad[padlen] = '\0';
        snprintf(p, TOKEN_MAX_LEN + 64, "{\"pad\":\"%s\",\"tid\":\"wsid\",\"nbf\":%lld,\"exp\":%lld}", pad,
                 (long long)(NOW - 300), (long long)(NOW + 3600));
        char *tok = make(p, SECRET_A);
        size_t n = strlen(tok);
        int rc = token_verify(&k, tok, n, "wsid", 4, NOW, NULL);
        assert_int_equal(rc, n <= TOKEN_MAX_LEN ? 0 : TOKEN_E_TOO_LONG);
        at_limit += n == TOKEN_MAX_LEN;
        over += n == TOKEN_MAX_LEN + 1 || n == TOKEN_MAX_LEN + 2;
        free(tok);
    }
    assert_true(at_limit > 0);
    assert_true(over > 0);
    /* a huge garbage token */
    char *huge = malloc(1 << 20);
    memset(huge, 'A', 1 << 20);
    assert_int_equal(token_verify(&k, huge, 1 << 20, "wsid", 4, NOW, NULL), TOKEN_E_TOO_LONG);
    assert_int_equal(token_inspect(huge, 1 << 20, NULL), TOKEN_E_TOO_LONG);
    free(huge), free(pad), free(p);
}

/* Every prefix and every one-character change of a good token is refused. */
static void test_every_truncation_and_mutation(void **state)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    char *p = claims("\"aud\":\"tc\",", "wsid", NOW - 300, NOW + 3600);
    char *tok = make(p, SECRET_A);
    size_t n = strlen(tok);
    char *buf = malloc(n + 1);
    struct token_keys k = keys_ab("tc");
    assert_int_equal(token_verify(&k, tok, n, "wsid", 4, NOW, NULL), 0);
    for (size_t len = 0; len < n; len++)
        assert_int_not_equal(token_verify(&k, tok, len, "wsid", 4, NOW, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        for (const char *c = alphabet; *c; c++) {
            if (*c == tok[i])
                continue;
            memcpy(buf, tok, n + 1);
            buf[i] = *c;
            int rc = token_verify(&k, buf, n, "wsid", 4, NOW, NULL);
            if (rc == 0)
                fail_msg("mutation at %zu to '%c' verified", i, *c);
        }
    }
    free(buf), free(tok), free(p);
}

static void test_keys(void **state)
{
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make(p, SECRET_A);
    struct token_keys none = {NULL, 0, NULL, 0, NULL, 0};
    struct token_keys empty = {"", 0, "", 0, NULL, 0};
    assert_int_equal(verify_with(&none, tok, "wsid", NOW, NULL), TOKEN_E_NO_KEY);
    assert_int_equal(verify_with(&empty, tok, "wsid", NOW, NULL), TOKEN_E_NO_KEY);
    assert_int_equal(token_verify(NULL, tok, strlen(tok), "wsid", 4, NOW, NULL), TOKEN_E_INVAL);
    /* a secret over the limit makes the keys unusable rather than silently ignored */
    struct token_keys big = keys_ab(NULL);
    big.secret_b_len = TOKEN_MAX_SECRET_LEN + 1;
    assert_int_equal(verify_with(&big, tok, "wsid", NOW, NULL), TOKEN_E_NO_KEY);
    /* an audience over the limit */
    char *aud = malloc(TOKEN_MAX_AUDIENCE_LEN + 2);
    memset(aud, 'a', TOKEN_MAX_AUDIENCE_LEN + 1);
    aud[TOKEN_MAX_AUDIENCE_LEN + 1] = '\0';
    struct token_keys k = keys_ab(aud);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, NULL), TOKEN_E_INVAL);
    /* ... and at the limit, matching */
    aud[TOKEN_MAX_AUDIENCE_LEN] = '\0';
    char *p2 = malloc(TOKEN_MAX_AUDIENCE_LEN + 200);
    snprintf(p2, TOKEN_MAX_AUDIENCE_LEN + 200, "{\"aud\":\"%s\",\"tid\":\"wsid\",\"nbf\":%lld,\"exp\":%lld}",
             aud, (long long)(NOW - 300), (long long)(NOW + 3600));
    assert_int_equal(verify_payload(p2, aud), 0);
    free(p2), free(aud), free(tok), free(p);
}

/* ---- ugly JSON: where libjwt or jansson alone would differ ----------------------------- */

/* jwt_decode alone with secret A: 0 if libjwt 1.10 takes the token. */
static int libjwt_alone(const char *tok)
{
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, tok, (const unsigned char *)SECRET_A, (int)strlen(SECRET_A));
    jwt_free(jwt);
    return rc;
}

static void test_libjwt_leniencies(void **state)
{
    static const char good[] = "{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}";
    /* a NUL byte after the payload object: libjwt reads up to it; refused here */
    char body[sizeof(good) + 16];
    size_t n = sizeof(good) - 1;
    memcpy(body, good, n);
    memcpy(body + n, "\0{\"x\":", 6);
    char *tok = make_raw(HDR, strlen(HDR), body, n + 6, EVP_sha256(), SECRET_A);
    assert_int_equal(libjwt_alone(tok), 0);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_MALFORMED);
    free(tok);
    /* the same after the header object */
    char head[sizeof(HDR) + 8];
    memcpy(head, HDR, sizeof(HDR) - 1);
    memcpy(head + sizeof(HDR) - 1, "\0junk", 5);
    tok = make_raw(head, sizeof(HDR) - 1 + 5, good, n, EVP_sha256(), SECRET_A);
    assert_int_equal(libjwt_alone(tok), 0);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_MALFORMED);
    assert_int_equal(token_inspect(tok, strlen(tok), NULL), TOKEN_E_MALFORMED);
    free(tok);
    /* "hs256": libjwt compares alg ignoring case */
    tok = make_md("{\"alg\":\"hs256\"}", good, EVP_sha256(), SECRET_A);
    assert_int_equal(libjwt_alone(tok), 0);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_ALG);
    free(tok);
    /* alg twice: libjwt takes the last */
    tok = make_md("{\"alg\":\"none\",\"alg\":\"HS256\"}", good, EVP_sha256(), SECRET_A);
    assert_int_equal(libjwt_alone(tok), 0);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_ALG);
    free(tok);
    /* an array as payload */
    tok = make_md(HDR, "[{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}]", EVP_sha256(), SECRET_A);
    assert_int_equal(libjwt_alone(tok), 0);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_MALFORMED);
    free(tok);
}

static void test_nul_bytes(void **state)
{
#define LIT(s) s, sizeof(s) - 1
    static const struct {
        const char *payload;
        size_t len;
        int rc;
    } cases[] = {
        {LIT("{\"tid\":\"ws\0id\",\"nbf\":1795545752,\"exp\":1795549652}"),
         TOKEN_E_MALFORMED}, /* raw, in a string */
        {LIT("{\"tid\":\"wsid\",\"nbf\":1795545752,\0\"exp\":1795549652}"),
         TOKEN_E_MALFORMED}, /* between members */
        {LIT("\0{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}"), TOKEN_E_MALFORMED}, /* before */
        {LIT("\0"), TOKEN_E_MALFORMED},
        /* right after a number or a literal, where jansson 2.14 alone skips it */
        {LIT("{\"tid\":\"wsid\",\"nbf\":1795545752\0,\"exp\":1795549652}"), TOKEN_E_MALFORMED},
        {LIT("{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652,\"x\":true\0}"), TOKEN_E_MALFORMED},
        {LIT("{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652,\"x\":[null\0]}"), TOKEN_E_MALFORMED},
        /* escaped: jansson refuses \u0000 in a string and in a key */
        {LIT("{\"tid\":\"\\u0000\",\"nbf\":1795545752,\"exp\":1795549652}"), TOKEN_E_MALFORMED},
        {LIT("{\"t\\u0000\":1,\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}"), TOKEN_E_MALFORMED},
    };
#undef LIT
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = make_raw(HDR, strlen(HDR), cases[i].payload, cases[i].len, EVP_sha256(), SECRET_A);
        int rc = verify(tok, "wsid", NOW);
        if (rc != cases[i].rc)
            fail_msg("payload %zu: got %d, want %d", i, rc, cases[i].rc);
        assert_int_not_equal(token_inspect(tok, strlen(tok), NULL), 0);
        free(tok);
    }
    /* why the node looks for NUL bytes itself */
    json_t *j = json_loadb("{\"a\":1\0}", 8, 0, NULL);
    assert_non_null(j);
    json_decref(j);
    /* in the header: inside the alg value, after a number */
    static const char nul_alg[] = "{\"alg\":\"HS256\0\"}", nul_num[] = "{\"alg\":\"HS256\",\"x\":1\0}";
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make_raw(nul_alg, sizeof(nul_alg) - 1, p, strlen(p), EVP_sha256(), SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_MALFORMED);
    free(tok);
    tok = make_raw(nul_num, sizeof(nul_num) - 1, p, strlen(p), EVP_sha256(), SECRET_A);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_MALFORMED);
    free(tok), free(p);
}

static void test_ugly_numbers(void **state)
{
    static const struct {
        const char *payload;
        int rc;
    } cases[] = {
        /* reals are not NumericDates here, whatever their value */
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1e3}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1E10}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652e0}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":-1e3,\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752.5,\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":0.0,\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652,\"iat\":1.5}", 0}, /* iat: informational */
        /* numbers jansson cannot hold: malformed, wherever they are */
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":9223372036854775808}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":-9223372036854775809,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1e400}", TOKEN_E_MALFORMED},
        {"{\"x\":18446744073709551616,\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}",
         TOKEN_E_MALFORMED},
        {"{\"x\":-1e999,\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"x\":1e-400,\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}", 0}, /* underflow is 0.0 */
        /* not JSON numbers */
        {"{\"tid\":\"wsid\",\"nbf\":+1795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":01795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":0x6b05,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":1.,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":NaN,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":-Infinity,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        /* negative integers are NumericDates before 1970: valid, and long expired */
        {"{\"tid\":\"wsid\",\"nbf\":-100,\"exp\":100}", TOKEN_E_EXPIRED},
        {"{\"tid\":\"wsid\",\"nbf\":-0,\"exp\":1}", TOKEN_E_EXPIRED},
        {"{\"tid\":\"wsid\",\"nbf\":-9223372036854775808,\"exp\":-9223372036854775807}", TOKEN_E_EXPIRED},
        {"{\"tid\":\"wsid\",\"nbf\":9223372036854775806,\"exp\":9223372036854775807}", TOKEN_E_NOT_YET_VALID},
        {"{\"tid\":\"wsid\",\"nbf\":-100,\"exp\":-200}", TOKEN_E_WINDOW},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = verify_payload(cases[i].payload, NULL);
        if (rc != cases[i].rc)
            fail_msg("payload %zu %s: got %d, want %d", i, cases[i].payload, rc, cases[i].rc);
    }
}

static void test_ugly_payloads(void **state)
{
    static const struct {
        const char *payload;
        int rc;
    } cases[] = {
        /* duplicates: the last counts, for every claim, escaped or not */
        {"{\"tid\":\"wsid\",\"nbf\":1,\"nbf\":1795545752,\"exp\":1795549652}", 0},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652,\"exp\":1.5}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":\"wsid\",\"t\\u0069d\":5,\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_CLAIM_TYPE},
        {"{\"tid\":5,\"t\\u0069d\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}", 0},
        /* not an object at the top */
        {"[{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}]", TOKEN_E_MALFORMED},
        {"1795549652", TOKEN_E_MALFORMED},
        {"null", TOKEN_E_MALFORMED},
        {"true", TOKEN_E_MALFORMED},
        {"{}{}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652} x", TOKEN_E_MALFORMED},
        {"\xef\xbb\xbf{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED}, /* BOM */
        {" \n{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}\t\r\n", 0},
        /* strings jansson refuses */
        {"{\"tid\":\"wsid\",\"x\":\"\\ud800x\",\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"x\":\"\xed\xa0\x80\",\"nbf\":1795545752,\"exp\":1795549652}",
         TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"x\":\"\xc0\xaf\",\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"ws\tid\",\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        {"{\"tid\":\"wsid\",\"x\":\"\\x41\",\"nbf\":1795545752,\"exp\":1795549652}", TOKEN_E_MALFORMED},
        /* ... and ones it takes */
        {"{\"tid\":\"wsid\",\"x\":\"\\ud83d\\ude00\xf0\x9f\x98\x80\",\"nbf\":1795545752,\"exp\":1795549652}",
         0},
        {"{\"\":1,\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = verify_payload(cases[i].payload, NULL);
        if (rc != cases[i].rc)
            fail_msg("payload %zu %s: got %d, want %d", i, cases[i].payload, rc, cases[i].rc);
    }
}

/* Nesting in members nobody reads: jansson's limit (2048), no longer 32. */
static void test_deep_nesting(void **state)
{
    char *p = malloc(8192);
    size_t n = 0;
    n += (size_t)sprintf(p, "{\"x\":");
    memset(p + n, '[', 40), n += 40;
    memset(p + n, ']', 40), n += 40;
    n += (size_t)sprintf(p + n, ",\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652}");
    assert_int_equal(verify_payload(p, NULL), 0);
    n = (size_t)sprintf(p, "{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":1795549652,\"x\":");
    memset(p + n, '[', 2100), n += 2100;
    memset(p + n, ']', 2100), n += 2100;
    strcpy(p + n, "}");
    char *tok = make(p, SECRET_A);
    assert_true(strlen(tok) <= TOKEN_MAX_LEN);
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_MALFORMED);
    free(tok), free(p);
}

static void test_header_duplicates(void **state)
{
    static const struct {
        const char *header;
        int rc;
    } cases[] = {
        {"{\"alg\":\"HS256\",\"\\u0061lg\":\"HS256\"}", TOKEN_E_ALG}, /* the same key, escaped */
        {"{\"alg\":\"HS256\" , \"alg\" :\"HS256\"}", TOKEN_E_ALG},
        {"{\"x\":\"\xc3\xa9\\\"\",\"alg\":\"HS256\",\"alg\":\"HS256\"}", TOKEN_E_ALG},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\",}", TOKEN_E_MALFORMED}, /* bad JSON first */
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"", TOKEN_E_MALFORMED},
        {"{\"alg\":\"HS256\",\"t\\u0079p\":\"JWT\",\"typ\":\"JWT\"}", TOKEN_E_MALFORMED},
        /* any other member twice: refused (RFC 7515 section 4; it used to pass) */
        {"{\"alg\":\"HS256\",\"kid\":\"a\",\"kid\":\"b\"}", TOKEN_E_MALFORMED},
        {"{\"a\\\"lg\":1,\"a\\\"lg\":2,\"alg\":\"HS256\"}", TOKEN_E_MALFORMED},
        {"{\"alg\\\\\":1,\"alg\\\\\":2,\"alg\":\"HS256\"}", TOKEN_E_MALFORMED},
        {"{\"\\\\alg\":1,\"\\\\alg\":2,\"alg\":\"HS256\"}", TOKEN_E_MALFORMED},
        /* inside a nested object too; an "alg" there is reported as alg */
        {"{\"alg\":\"HS256\",\"jwk\":{\"k\":1,\"k\":2}}", TOKEN_E_MALFORMED},
        {"{\"alg\":\"HS256\",\"jwk\":{\"alg\":1,\"alg\":2}}", TOKEN_E_ALG},
        /* distinct members */
        {"{\"alg\":\"HS256\",\"Alg\":\"HS512\",\"ALG\":1}", 0},
        {"{\"alg\":\"HS256\",\"jwk\":{\"alg\":\"HS512\"}}", 0},
    };
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = make_md(cases[i].header, p, EVP_sha256(), SECRET_A);
        int rc = verify(tok, "wsid", NOW);
        if (rc != cases[i].rc)
            fail_msg("header %zu %s: got %d, want %d", i, cases[i].header, rc, cases[i].rc);
        free(tok);
    }
    free(p);
}

/* Faults before the signature are reported before it, whatever the signature. */
static void test_order_before_signature(void **state)
{
    static const char *const payloads[] = {
        "{\"tid\":\"wsid\",\"nbf\":1795545752,\"exp\":99999999999999999999}",
        "{\"tid\":\"wsid\\u0000\",\"nbf\":1795545752,\"exp\":1795549652}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char *tok = make(payloads[i], "not-the-secret");
        assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_MALFORMED);
        free(tok);
    }
    char *p = claims("", "wsid", NOW - 300, NOW + 3600);
    char *tok = make_md("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", p, EVP_sha256(), "not-the-secret");
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_ALG);
    free(tok);
    /* the claims come after it */
    tok = make("{\"nbf\":1}", "not-the-secret");
    assert_int_equal(verify(tok, "wsid", NOW), TOKEN_E_SIGNATURE);
    assert_int_equal(token_inspect(tok, strlen(tok), NULL), TOKEN_E_MISSING_CLAIM);
    free(tok), free(p);
}

/* ---- the captured Go token ------------------------------------------------------------- */

static void test_captured_go_token(void **state)
{
    const char *tok;
    size_t len;
    struct token_claims c;
    struct token_keys k = {"some-wrong-secret", 17, NULL, 0, NULL, 0};
    assert_int_equal(token_parse_bearer(CAPTURED, strlen(CAPTURED), &tok, &len), 0);
    assert_ptr_equal(tok, CAPTURED + 7);
    assert_int_equal(len, strlen(CAPTURED) - 7);
    /* structurally fine, inside its window, but not our secret */
    assert_int_equal(token_verify(&k, tok, len, "wsid", 4, 1795546052, NULL), TOKEN_E_SIGNATURE);
    /* its claims, read without verification */
    memset(&c, 0xa5, sizeof(c));
    assert_int_equal(token_inspect(tok, len, &c), 0);
    assert_string_equal(c.tid, "wsid");
    assert_int_equal(c.tid_len, 4);
    assert_int_equal(c.iat, 1795546052);
    assert_true(c.has_iat);
    assert_int_equal(c.nbf, 1795545752);
    assert_int_equal(c.exp, 1795549652);
    assert_int_equal(c.key, 0);
    /* minted the way the Go tooling mints: nbf = iat - 300 */
    assert_int_equal(c.iat - c.nbf, TOKEN_MINT_BACKDATE_S);
}

static void test_inspect(void **state)
{
    struct token_claims c;
    char *tok = make_md("{\"alg\":\"HS512\"}", "{\"tid\":\"a\",\"nbf\":1,\"exp\":2}", EVP_sha512(), "k");
    assert_int_equal(token_inspect(tok, strlen(tok), &c), TOKEN_E_ALG);
    free(tok);
    tok = make_md(HDR, "{\"tid\":\"a\",\"nbf\":1}", EVP_sha256(), "k");
    assert_int_equal(token_inspect(tok, strlen(tok), &c), TOKEN_E_MISSING_CLAIM);
    free(tok);
    tok = make_md(HDR, "{\"tid\":\"a\",\"nbf\":1,\"exp\":2,\"iat\":\"x\"}", EVP_sha256(), "k");
    assert_int_equal(token_inspect(tok, strlen(tok), &c), 0);
    assert_false(c.has_iat);
    assert_int_equal(c.exp, 2);
    free(tok);
    assert_int_equal(token_inspect("a.b", 3, &c), TOKEN_E_MALFORMED);
}

/* ---- minting --------------------------------------------------------------------------- */

static void test_mint_roundtrip(void **state)
{
    char *tok = NULL;
    struct token_claims c;
    struct token_keys k = keys_ab(NULL);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, 3600, NULL, &tok), 0);
    assert_non_null(tok);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, &c), 0);
    assert_int_equal(c.key, 1);
    assert_int_equal(c.iat, NOW);
    assert_int_equal(c.nbf, NOW - 300);
    assert_int_equal(c.exp, NOW + 3600);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW - 300, NULL), 0);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW - 301, NULL), TOKEN_E_NOT_YET_VALID);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW + 3600, NULL), TOKEN_E_EXPIRED);
    assert_int_equal(verify_with(&k, tok, "other", NOW, NULL), TOKEN_E_TID);
    /* header is exactly what libjwt 1.10 writes */
    assert_memory_equal(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37);
    /* with an audience configured, a token without aud fails */
    k.audience = "tc";
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, NULL), TOKEN_E_AUDIENCE);
    free(tok);
    assert_int_equal(token_mint(SECRET_B, strlen(SECRET_B), "w~1.%_-Z", NOW, 60, "tc", &tok), 0);
    assert_int_equal(verify_with(&k, tok, "w~1.%_-Z", NOW, &c), 0);
    assert_int_equal(c.key, 2);
    k.audience = "td";
    assert_int_equal(verify_with(&k, tok, "w~1.%_-Z", NOW, NULL), TOKEN_E_AUDIENCE);
    free(tok);
    /* "" means no aud */
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, 60, "", &tok), 0);
    assert_int_equal(token_inspect(tok, strlen(tok), &c), 0);
    k.audience = "x";
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, NULL), TOKEN_E_AUDIENCE);
    free(tok);
}

static void test_mint_limits(void **state)
{
    char *tok = (char *)1;
    struct token_keys k = keys_ab(NULL);
    /* the longest ttl: exp - nbf exactly 31 days, accepted by verify */
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, 31 * DAY - 300, NULL, &tok), 0);
    assert_int_equal(verify_with(&k, tok, "wsid", NOW, NULL), 0);
    free(tok);
    tok = (char *)1;
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, 31 * DAY - 299, NULL, &tok),
                     TOKEN_E_WINDOW);
    assert_null(tok);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, 60 * DAY, NULL, &tok),
                     TOKEN_E_WINDOW);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, INT64_MAX, NULL, &tok),
                     TOKEN_E_WINDOW);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, 0, NULL, &tok), TOKEN_E_INVAL);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, -5, NULL, &tok), TOKEN_E_INVAL);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", 299, 60, NULL, &tok), TOKEN_E_INVAL);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", TOKEN_MAX_TIME_S + 1, 60, NULL, &tok),
                     TOKEN_E_INVAL);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "ws/id", NOW, 60, NULL, &tok), TOKEN_E_INVAL);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "", NOW, 60, NULL, &tok), TOKEN_E_INVAL);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), NULL, NOW, 60, NULL, &tok), TOKEN_E_INVAL);
    assert_int_equal(token_mint("", 0, "wsid", NOW, 60, NULL, &tok), TOKEN_E_NO_KEY);
    assert_int_equal(token_mint(NULL, 5, "wsid", NOW, 60, NULL, &tok), TOKEN_E_NO_KEY);
    assert_int_equal(token_mint(SECRET_A, TOKEN_MAX_SECRET_LEN + 1, "wsid", NOW, 60, NULL, &tok),
                     TOKEN_E_NO_KEY);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, 60, "\xff", &tok), TOKEN_E_INVAL);
    assert_null(tok);
    assert_int_equal(token_mint(SECRET_A, strlen(SECRET_A), "wsid", NOW, 60, NULL, NULL), TOKEN_E_INVAL);
    /* a secret with a NUL byte inside is used whole */
    assert_int_equal(token_mint("ab\0cd", 5, "wsid", NOW, 60, NULL, &tok), 0);
    struct token_keys kn = {"ab\0cd", 5, NULL, 0, NULL, 0}, ks = {"ab", 2, NULL, 0, NULL, 0};
    assert_int_equal(verify_with(&kn, tok, "wsid", NOW, NULL), 0);
    assert_int_equal(verify_with(&ks, tok, "wsid", NOW, NULL), TOKEN_E_SIGNATURE);
    free(tok);
}

/* ---- bearer ---------------------------------------------------------------------------- */

static void test_parse_bearer(void **state)
{
    static const struct {
        const char *v;
        int rc;
    } cases[] = {
        {"Bearer abc", 0},
        {"Bearer a.b-c_D9", 0},
        {"Bearer .", 0}, /* matches the regex; token_verify refuses it */
        {"bearer abc", TOKEN_E_BEARER},
        {"BEARER abc", TOKEN_E_BEARER},
        {"Bearer  abc", TOKEN_E_BEARER},
        {"Bearer\tabc", TOKEN_E_BEARER},
        {"Bearer ", TOKEN_E_BEARER},
        {"Bearer", TOKEN_E_BEARER},
        {"", TOKEN_E_BEARER},
        {"Bearerabc", TOKEN_E_BEARER},
        {" Bearer abc", TOKEN_E_BEARER},
        {"Bearer abc ", TOKEN_E_BEARER},
        {"Bearer abc def", TOKEN_E_BEARER},
        {"Bearer a+b", TOKEN_E_BEARER},
        {"Bearer a/b=", TOKEN_E_BEARER},
        {"Bearer a\r\n", TOKEN_E_BEARER},
        {"Basic dXNlcjpwYXNz", TOKEN_E_BEARER},
    };
    const char *tok;
    size_t len;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tok = NULL, len = 99;
        int rc = token_parse_bearer(cases[i].v, strlen(cases[i].v), &tok, &len);
        if (rc != cases[i].rc)
            fail_msg("bearer %zu \"%s\": got %d, want %d", i, cases[i].v, rc, cases[i].rc);
        if (rc == 0) {
            assert_ptr_equal(tok, cases[i].v + 7);
            assert_int_equal(len, strlen(cases[i].v) - 7);
        }
    }
    /* the length counts: a NUL or a shorter length */
    assert_int_equal(token_parse_bearer("Bearer ab\0c", 11, &tok, &len), TOKEN_E_BEARER);
    assert_int_equal(token_parse_bearer("Bearer abc!!!", 10, &tok, &len), 0);
    assert_int_equal(len, 3);
    assert_int_equal(token_parse_bearer(NULL, 0, &tok, &len), TOKEN_E_BEARER);
    /* the length limit */
    char *big = malloc(7 + TOKEN_MAX_LEN + 1);
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'a', TOKEN_MAX_LEN + 1);
    assert_int_equal(token_parse_bearer(big, 7 + TOKEN_MAX_LEN, &tok, &len), 0);
    assert_int_equal(len, TOKEN_MAX_LEN);
    assert_int_equal(token_parse_bearer(big, 7 + TOKEN_MAX_LEN + 1, &tok, &len), TOKEN_E_TOO_LONG);
    free(big);
}

static void test_strerror(void **state)
{
    for (int e = TOKEN_OK; e >= TOKEN_E_NOMEM; e--) {
        const char *s = token_strerror(e);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown token error");
        for (int f = e - 1; f >= TOKEN_E_NOMEM; f--)
            assert_string_not_equal(s, token_strerror(f));
    }
    assert_string_equal(token_strerror(-999), "unknown token error");
    assert_string_equal(token_strerror(TOKEN_E_SIGNATURE), "token signature is invalid");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_secret_a),
        cmocka_unit_test(test_valid_secret_b),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_hs384_hs512_right_secret),
        cmocka_unit_test(test_alg_rs256_label),
        cmocka_unit_test(test_alg_header_tampered),
        cmocka_unit_test(test_alg_header_variants),
        cmocka_unit_test(test_expired_and_not_yet_valid),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_missing_and_mistyped_claims),
        cmocka_unit_test(test_tid),
        cmocka_unit_test(test_audience_configured),
        cmocka_unit_test(test_audience_not_configured),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_bad_signature_encodings),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_every_truncation_and_mutation),
        cmocka_unit_test(test_libjwt_leniencies),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_ugly_numbers),
        cmocka_unit_test(test_ugly_payloads),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_header_duplicates),
        cmocka_unit_test(test_order_before_signature),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_captured_go_token),
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_mint_roundtrip),
        cmocka_unit_test(test_mint_limits),
        cmocka_unit_test(test_parse_bearer),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
