/* Fuzz target: the chunked framing scanner and decoder. The first byte picks
 * the trailer limit, the rest is the body. Whole-buffer scanning, byte-at-a-
 * time scanning, a 2-way split and decoding (whole and byte by byte) must
 * agree on the body length, the end, the error and its position; the decoded
 * payload must survive re-encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

struct res {
    ssize_t r; /* body bytes, or the error */
    bool done;
    uint64_t total;
    size_t plen; /* payload bytes decoded */
};

/* Feeds b in pieces of at most `piece` bytes (0: all at once), scanning or
 * decoding; the payload goes to out (room for len bytes) when decoding. */
static struct res run(const char *b, size_t len, size_t max_trailer, size_t piece, bool decode, char *out)
{
    struct http1_chunked c;
    struct res x = {0};
    http1_chunked_init(&c, max_trailer);
    size_t pos = 0;
    while (pos < len && !http1_chunked_done(&c)) {
        size_t n = piece && len - pos > piece ? piece : len - pos;
        ssize_t r;
        if (!decode) {
            r = http1_chunked_scan(&c, b + pos, n);
            if (r < 0) {
                x.r = r;
                x.total = c.total;
                return x;
            }
            check((size_t)r == n || http1_chunked_done(&c));
            pos += (size_t)r;
            continue;
        }
        size_t used = 0;
        do {
            size_t off, dlen;
            r = http1_chunked_decode(&c, b + pos + used, n - used, &off, &dlen);
            if (r < 0) {
                x.r = r;
                x.total = c.total;
                return x;
            }
            check(off + dlen <= (size_t)r && (dlen > 0 || off == 0));
            check(x.plen + dlen <= len);
            memcpy(out + x.plen, b + pos + used + off, dlen);
            x.plen += dlen;
            used += (size_t)r;
        } while (used < n && !http1_chunked_done(&c));
        pos += used;
    }
    x.r = (ssize_t)pos;
    x.done = http1_chunked_done(&c);
    x.total = c.total;
    check(x.total == pos);
    check(http1_chunked_scan(&c, "", 0) == 0);
    return x;
}

static bool same(const struct res *a, const struct res *b)
{
    return a->r == b->r && a->done == b->done && a->total == b->total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max_trailer = (size_t)data[0] * 32;
    const char *b = (const char *)data + 1;
    size_t len = size - 1;
    char *p1 = malloc(len + 1), *p2 = malloc(len + 1);
    check(p1 && p2);

    struct res whole = run(b, len, max_trailer, 0, false, NULL);
    check(whole.r < 0 ? whole.r >= HTTP1_E_TRAILER_TOO_LARGE && whole.r <= HTTP1_E_BARE_LF
                      : (size_t)whole.r <= len && (whole.done || (size_t)whole.r == len));
    struct res bytes = run(b, len, max_trailer, 1, false, NULL);
    check(same(&whole, &bytes));
    size_t piece = len ? 1 + (size_t)data[len] % len : 0;
    struct res pieces = run(b, len, max_trailer, piece, false, NULL);
    check(same(&whole, &pieces));
    struct res dec = run(b, len, max_trailer, 0, true, p1);
    check(same(&whole, &dec));
    struct res decb = run(b, len, max_trailer, 1, true, p2);
    check(same(&whole, &decb));
    check(dec.plen == decb.plen && memcmp(p1, p2, dec.plen) == 0);
    check(whole.r < 0 || dec.plen <= (size_t)whole.r);

    if (whole.done) {
        /* re-encode the payload as one chunk and decode it back */
        char *enc = malloc(dec.plen + HTTP1_CHUNK_HEADER_MAX + 8);
        check(enc != NULL);
        size_t n = 0;
        if (dec.plen) {
            n = http1_chunk_header(enc, dec.plen);
            memcpy(enc + n, p1, dec.plen);
            n += dec.plen;
            memcpy(enc + n, HTTP1_CHUNK_END, 2);
            n += 2;
        }
        memcpy(enc + n, HTTP1_CHUNK_LAST, 5);
        n += 5;
        struct res re = run(enc, n, 0, 0, true, p2);
        check(re.done && (size_t)re.r == n && re.plen == dec.plen && memcmp(p1, p2, dec.plen) == 0);
        free(enc);
    }
    free(p1);
    free(p2);
    return 0;
}
