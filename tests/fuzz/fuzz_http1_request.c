/* Fuzz target: the HTTP/1.1 request head parser. Checks that whatever it
 * returns is consistent (pointers inside the head, limits kept), that feeding
 * the bytes one at a time and at a 2-way split gives the whole-buffer answer,
 * and that max_head is exact. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEAD 2048 /* below libFuzzer's default max_len, so "too large" is reached */

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool inside(const char *p, size_t n, const char *b, size_t len)
{
    return p >= b && n <= len && (size_t)(p - b) <= len - n;
}

/* Checks a successful parse of b. */
static void check_ok(const struct http1_request *q, const char *b, int r)
{
    size_t len = (size_t)r;
    check(q->head_len == len && len <= MAX_HEAD);
    check(len >= 16 && b[len - 1] == '\n' && b[len - 2] == '\r' && b[len - 3] == '\n' && b[len - 4] == '\r');
    check(inside(q->method, q->method_len, b, len) && q->method_len > 0);
    check(inside(q->target, q->target_len, b, len) && q->target_len > 0);
    check(q->path_len == 0 || inside(q->path, q->path_len, q->target, q->target_len));
    check(q->host ? inside(q->host, q->host_len, b, len) : q->host_len == 0);
    check(q->version_minor == 0 || q->version_minor == 1);
    check(q->version_minor == 0 || q->host);
    check(q->headers.count <= HTTP1_MAX_HEADERS);
    for (size_t k = 0; k < q->headers.count; k++) {
        const struct http1_header *h = &q->headers.h[k];
        check(h->name_len > 0 && inside(h->name, h->name_len, b, len) &&
              inside(h->value, h->value_len, b, len));
        check(h->value > h->name);
        check(!memchr(h->value, '\r', h->value_len) && !memchr(h->value, '\n', h->value_len));
        check(h->value_len == 0 || (h->value[0] != ' ' && h->value[h->value_len - 1] != ' '));
    }
    check(q->body != HTTP1_BODY_CLOSE);
    check(q->body == HTTP1_BODY_LENGTH || q->content_length == 0);
    check(q->content_length <= (uint64_t)INT64_MAX);
    bool has_cl = http1_find_header(&q->headers, "Content-Length") != NULL;
    bool has_te = http1_find_header(&q->headers, "Transfer-Encoding") != NULL;
    check(!(has_cl && has_te));
    check((q->body == HTTP1_BODY_CHUNKED) == has_te);
    check((q->body == HTTP1_BODY_LENGTH) == has_cl);
    check(!q->upgrade || q->version_minor == 1);
    check(!q->upgrade || http1_find_header(&q->headers, "upgrade"));
    check(q->method_id != HTTP1_METHOD_CONNECT || q->target_form == HTTP1_TARGET_AUTHORITY);
    check(q->target_form != HTTP1_TARGET_ORIGIN || (q->path == q->target && q->target[0] == '/'));
    check(q->target_form != HTTP1_TARGET_ASTERISK || q->method_id == HTTP1_METHOD_OPTIONS);
    check(q->scan_hint == 0);
}

static bool same(const struct http1_request *a, const struct http1_request *b)
{
    return a->method == b->method && a->method_len == b->method_len && a->method_id == b->method_id &&
           a->target == b->target && a->target_len == b->target_len && a->target_form == b->target_form &&
           a->path == b->path && a->path_len == b->path_len && a->host == b->host &&
           a->host_len == b->host_len && a->version_minor == b->version_minor && a->body == b->body &&
           a->content_length == b->content_length && a->keep_alive == b->keep_alive &&
           a->upgrade == b->upgrade && a->expect_100_continue == b->expect_100_continue &&
           a->head_len == b->head_len && a->headers.count == b->headers.count &&
           memcmp(a->headers.h, b->headers.h, a->headers.count * sizeof a->headers.h[0]) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http1_request whole, seq, split;
    const char *b = (const char *)data;

    memset(&whole, 0, sizeof whole);
    int r = http1_parse_request(b, size, &whole, MAX_HEAD);
    check(r == HTTP1_INCOMPLETE || (r < 0 && r >= HTTP1_E_TRAILER_TOO_LARGE) || (r > 0 && (size_t)r <= size));
    check(r != HTTP1_INCOMPLETE || size <= MAX_HEAD);
    if (r > 0)
        check_ok(&whole, b, r);
    (void)http1_strerror(r);
    int st = http1_request_error_status(r);
    check(st == 400 || st == 431 || st == 501 || st == 505);

    /* one byte at a time with the scan hint, as the node feeds it */
    memset(&seq, 0, sizeof seq);
    int rs = HTTP1_INCOMPLETE;
    size_t l;
    for (l = 0; l <= size && rs == HTTP1_INCOMPLETE; l++)
        rs = http1_parse_request(b, l, &seq, MAX_HEAD);
    check(rs == r);
    check(r <= 0 || (l - 1 == (size_t)r && same(&seq, &whole)));

    /* a 2-way split chosen by the input */
    size_t k = size ? (size_t)(data[size - 1] * 131u + data[0]) % (size + 1) : 0;
    memset(&split, 0, sizeof split);
    int r1 = http1_parse_request(b, k, &split, MAX_HEAD);
    if (r1 == HTTP1_INCOMPLETE)
        r1 = http1_parse_request(b, size, &split, MAX_HEAD);
    check(r1 == r);
    check(r <= 0 || same(&split, &whole));

    /* max_head is exact */
    if (r > 0) {
        memset(&split, 0, sizeof split);
        check(http1_parse_request(b, size, &split, (size_t)r) == r);
        check(http1_parse_request(b, size, &split, (size_t)r - 1) == HTTP1_E_HEAD_TOO_LARGE);
        for (size_t i = 0; i < whole.headers.count; i++) {
            const struct http1_header *h = &whole.headers.h[i];
            (void)http1_is_hop_by_hop(&whole.headers, h->name, h->name_len);
            (void)http1_header_has_token(h->value, h->value_len, "close");
        }
    }
    return 0;
}
