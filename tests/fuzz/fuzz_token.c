/* libFuzzer target for node/token: the bearer parser, token_verify, token_inspect
 * and token_mint on arbitrary bytes, with a fixed secret.
 *
 * The first byte picks a mode (byte % 4):
 *   0  the rest is an Authorization value: token_parse_bearer, then token_verify
 *   1  the rest is a token: token_verify and token_inspect
 *   2  the rest is "<header JSON>\n<payload JSON>": the target signs it with the
 *      fixed secret itself, so that fuzzing reaches jansson, libjwt and the
 *      claim checks behind the signature
 *   3  the rest is an id: token_mint for it, then token_verify
 * Invariants checked: a token that verifies also inspects to the same claims,
 * its tid equals the id, and its window and time obey the rules; an id mints
 * a token iff util_valid_worker_id takes it, and that token verifies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "node/token.h"
#include "util/util.h"

#define FUZZ_SECRET "fuzz-secret-0123456789"
#define FUZZ_NOW INT64_C(1795546052)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t b64url(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, n = 0;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[n++] = tab[v >> 18], out[n++] = tab[(v >> 12) & 63], out[n++] = tab[(v >> 6) & 63];
        out[n++] = tab[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[n++] = tab[v >> 18], out[n++] = tab[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[n++] = tab[v >> 18], out[n++] = tab[(v >> 12) & 63], out[n++] = tab[(v >> 6) & 63];
    }
    return n;
}

static void check(const struct token_keys *k, const char *tok, size_t len, const char *id, int64_t now)
{
    struct token_claims c, ci;
    int rc = token_verify(k, tok, len, id, strlen(id), now, &c);
    int ri = token_inspect(tok, len, &ci);
    if (token_strerror(rc) == NULL || token_strerror(ri) == NULL)
        abort();
    if (rc != 0)
        return;
    /* verified: the claims hold and inspect agrees */
    if (c.tid_len != strlen(id) || memcmp(c.tid, id, c.tid_len) != 0 || c.key < 1 || c.key > 2)
        abort();
    if (c.exp <= c.nbf || (uint64_t)c.exp - (uint64_t)c.nbf > (uint64_t)TOKEN_MAX_WINDOW_S)
        abort();
    if ((__int128)now < (__int128)c.nbf - k->leeway_s || (__int128)now >= (__int128)c.exp + k->leeway_s)
        abort();
    if (ri != 0 || ci.exp != c.exp || ci.nbf != c.nbf || ci.tid_len != c.tid_len ||
        memcmp(ci.tid, c.tid, sizeof(c.tid)) != 0 || ci.has_iat != c.has_iat || ci.iat != c.iat)
        abort(); /* libjwt's view of the claims equals the node's */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct token_keys k = {FUZZ_SECRET, sizeof(FUZZ_SECRET) - 1, "second-secret", 13, NULL, 0};
    const char *tok;
    size_t len;

    if (size < 1 || size > 3 * TOKEN_MAX_LEN)
        return 0;
    uint8_t mode = data[0] % 4, flags = data[0] / 4;
    const char *rest = (const char *)data + 1;
    size -= 1;
    k.audience = flags & 1 ? "aud1" : NULL;
    k.leeway_s = flags & 2 ? 60 : 0;

    switch (mode) {
    case 0:
        if (token_parse_bearer(rest, size, &tok, &len) == 0) {
            if (tok != rest + 7 || len != size - 7 || len > TOKEN_MAX_LEN)
                abort();
            check(&k, tok, len, "wsid", FUZZ_NOW);
        }
        break;
    case 1:
        check(&k, rest, size, "wsid", FUZZ_NOW);
        check(&k, rest, size, "", FUZZ_NOW);
        break;
    case 2: {
        const uint8_t *nl = memchr(rest, '\n', size);
        if (!nl)
            break;
        size_t hlen = (size_t)(nl - (const uint8_t *)rest), plen = size - hlen - 1;
        char *t = malloc((hlen + plen) / 3 * 4 + 64);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen;
        if (!t)
            break;
        size_t n = b64url((const uint8_t *)rest, hlen, t);
        t[n++] = '.';
        n += b64url(nl + 1, plen, t + n);
        if (!HMAC(EVP_sha256(), FUZZ_SECRET, (int)sizeof(FUZZ_SECRET) - 1, (unsigned char *)t, n, mac,
                  &maclen))
            abort();
        t[n++] = '.';
        n += b64url(mac, maclen, t + n);
        check(&k, t, n, "wsid", FUZZ_NOW);
        check(&k, t, n, "wsid", FUZZ_NOW + 86400);
        free(t);
        break;
    }
    default: {
        char id[TOKEN_MAX_ID_LEN + 2], *t = NULL;
        struct token_claims c;
        if (size > TOKEN_MAX_ID_LEN + 1 || memchr(rest, '\0', size))
            break;
        memcpy(id, rest, size);
        id[size] = '\0';
        int rc = token_mint(FUZZ_SECRET, sizeof(FUZZ_SECRET) - 1, id, FUZZ_NOW, 3600, "aud1", &t);
        if ((rc == 0) != util_valid_worker_id(id, size) || (rc == 0) != (t != NULL))
            abort();
        if (rc == 0 && (token_verify(&k, t, strlen(t), id, size, FUZZ_NOW, &c) != 0 || c.key != 1))
            abort();
        free(t);
        break;
    }
    }
    return 0;
}
