/* Fuzz target: the HTTP/1.1 response head parser. The first byte picks the
 * request method, the rest is the response. Checks consistency of the result,
 * the framing rules, and that byte-at-a-time and split feeding agree with
 * whole-buffer parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEAD 4096

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool inside(const char *p, size_t n, const char *b, size_t len)
{
    return p >= b && n <= len && (size_t)(p - b) <= len - n;
}

static void check_ok(const struct http1_response *x, const char *b, int r, enum http1_method m)
{
    size_t len = (size_t)r;
    check(x->head_len == len && len <= MAX_HEAD && len >= 16);
    check(memcmp(b + len - 4, "\r\n\r\n", 4) == 0 && memcmp(b, "HTTP/1.", 7) == 0);
    check(x->version_minor == 0 || x->version_minor == 1);
    check(x->status >= 100 && x->status <= 599);
    check(inside(x->reason, x->reason_len, b, len));
    check(x->headers.count <= HTTP1_MAX_HEADERS);
    for (size_t k = 0; k < x->headers.count; k++) {
        const struct http1_header *h = &x->headers.h[k];
        check(h->name_len > 0 && inside(h->name, h->name_len, b, len) &&
              inside(h->value, h->value_len, b, len));
    }
    bool no_body = m == HTTP1_METHOD_HEAD || x->status < 200 || x->status == 204 || x->status == 304 ||
                   (m == HTTP1_METHOD_CONNECT && x->status < 300);
    check(!no_body || x->body == HTTP1_BODY_NONE);
    check(no_body || x->body != HTTP1_BODY_NONE);
    check(x->body == HTTP1_BODY_LENGTH || x->content_length == 0);
    check(x->body != HTTP1_BODY_CLOSE || !x->keep_alive);
    check(!x->upgrade || !x->keep_alive);
    check(x->upgrade ==
          (x->status == 101 || (m == HTTP1_METHOD_CONNECT && x->status >= 200 && x->status < 300)));
    bool has_cl = http1_find_header(&x->headers, "content-length") != NULL;
    bool has_te = http1_find_header(&x->headers, "transfer-encoding") != NULL;
    check(!(has_cl && has_te));
    check(x->body != HTTP1_BODY_CHUNKED || has_te);
    check(x->body != HTTP1_BODY_LENGTH || has_cl);
    check(x->body != HTTP1_BODY_CLOSE || (!has_cl && !has_te));
    check(x->scan_hint == 0);
}

static bool same(const struct http1_response *a, const struct http1_response *b)
{
    return a->version_minor == b->version_minor && a->status == b->status && a->reason == b->reason &&
           a->reason_len == b->reason_len && a->body == b->body && a->content_length == b->content_length &&
           a->keep_alive == b->keep_alive && a->upgrade == b->upgrade && a->head_len == b->head_len &&
           a->headers.count == b->headers.count &&
           memcmp(a->headers.h, b->headers.h, a->headers.count * sizeof a->headers.h[0]) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http1_response whole, seq, split;
    if (size < 1)
        return 0;
    enum http1_method m = (enum http1_method)(data[0] % 9);
    const char *b = (const char *)data + 1;
    size--;

    memset(&whole, 0, sizeof whole);
    int r = http1_parse_response(b, size, &whole, MAX_HEAD, m);
    check(r == HTTP1_INCOMPLETE || (r < 0 && r >= HTTP1_E_TRAILER_TOO_LARGE) || (r > 0 && (size_t)r <= size));
    check(r != HTTP1_INCOMPLETE || size <= MAX_HEAD);
    if (r > 0)
        check_ok(&whole, b, r, m);
    (void)http1_strerror(r);

    memset(&seq, 0, sizeof seq);
    int rs = HTTP1_INCOMPLETE;
    size_t l;
    for (l = 0; l <= size && rs == HTTP1_INCOMPLETE; l++)
        rs = http1_parse_response(b, l, &seq, MAX_HEAD, m);
    check(rs == r);
    check(r <= 0 || (l - 1 == (size_t)r && same(&seq, &whole)));

    size_t k = size ? (size_t)(data[size] * 131u + data[1]) % (size + 1) : 0;
    memset(&split, 0, sizeof split);
    int r1 = http1_parse_response(b, k, &split, MAX_HEAD, m);
    if (r1 == HTTP1_INCOMPLETE)
        r1 = http1_parse_response(b, size, &split, MAX_HEAD, m);
    check(r1 == r);
    check(r <= 0 || same(&split, &whole));

    if (r > 0) {
        memset(&split, 0, sizeof split);
        check(http1_parse_response(b, size, &split, (size_t)r, m) == r);
        check(http1_parse_response(b, size, &split, (size_t)r - 1, m) == HTTP1_E_HEAD_TOO_LARGE);
    }
    return 0;
}
