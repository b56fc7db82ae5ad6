/* Unit tests for node/http1: every accepted form and every error of the head
 * parsers, each input parsed at every prefix and every 2-way split; the
 * chunked scanner and decoder fed whole, one byte at a time and at every
 * 2-way split; the header helpers and the chunk encoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/http1.h"

#define MAX_HEAD 8192

/* An exact-size heap copy, so ASan catches any read past len. */
static char *dup_n(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    assert_non_null(b);
    if (n)
        memcpy(b, s, n);
    return b;
}

/* ---- head parsers, both through one interface ---- */

struct pctx {
    bool resp;
    enum http1_method method; /* responses: the request's method */
    size_t max_head;
};

struct pstate {
    struct http1_request req;
    struct http1_response resp;
};

static int pparse(const struct pctx *p, struct pstate *st, const char *b, size_t len)
{
    if (p->resp)
        return http1_parse_response(b, len, &st->resp, p->max_head, p->method);
    return http1_parse_request(b, len, &st->req, p->max_head);
}

static long off(const char *p, const char *base)
{
    return p ? (long)(p - base) : -1;
}

static size_t sum_headers(const struct http1_headers *hs, const char *base, char *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < hs->count && k < n; i++)
        k += (size_t)snprintf(out + k, n - k, " [%ld+%zu:%ld+%zu]", off(hs->h[i].name, base),
                              hs->h[i].name_len, off(hs->h[i].value, base), hs->h[i].value_len);
    return k;
}

/* Every field of a result as text, pointers as offsets into base. */
static void psum(const struct pctx *p, const struct pstate *st, const char *base, int r, char *out, size_t n)
{
    size_t k = (size_t)snprintf(out, n, "r=%d", r);
    if (r < 0)
        return;
    if (p->resp) {
        const struct http1_response *x = &st->resp;
        k += (size_t)snprintf(out + k, n - k, " v=%d st=%d rs=%ld+%zu body=%d cl=%llu ka=%d up=%d hl=%zu",
                              x->version_minor, x->status, off(x->reason, base), x->reason_len, (int)x->body,
                              (unsigned long long)x->content_length, x->keep_alive, x->upgrade, x->head_len);
        sum_headers(&x->headers, base, out + k, n - k);
    } else {
        const struct http1_request *x = &st->req;
        k += (size_t)snprintf(
            out + k, n - k,
            " m=%ld+%zu/%d t=%ld+%zu/%d p=%ld+%zu h=%ld+%zu v=%d body=%d cl=%llu ka=%d up=%d "
            "ex=%d hl=%zu",
            off(x->method, base), x->method_len, (int)x->method_id, off(x->target, base), x->target_len,
            (int)x->target_form, off(x->path, base), x->path_len, off(x->host, base), x->host_len,
            x->version_minor, (int)x->body, (unsigned long long)x->content_length, x->keep_alive, x->upgrade,
            x->expect_100_continue, x->head_len);
        sum_headers(&x->headers, base, out + k, n - k);
    }
}

static struct pstate g_st; /* the result of the last parse_all_ways(), on the caller's bytes */

/* Parses s[0..len) whole, one byte more at a time with one state (as the
 * node does), and at every 2-way split; all must agree. Returns the result
 * and leaves the parsed fields, pointing into s, in g_st. */
static int parse_all_ways(const struct pctx *p, const char *s, size_t len)
{
    static char want[16384], got[16384];
    static struct pstate st;

    memset(&g_st, 0, sizeof g_st);
    int final = pparse(p, &g_st, s, len);
    assert_true(g_st.req.scan_hint == 0 || final == HTTP1_INCOMPLETE);
    {
        char *b = dup_n(s, len);
        memset(&st, 0, sizeof st);
        int r = pparse(p, &st, b, len);
        assert_int_equal(r, final);
        psum(p, &st, b, r, want, sizeof want);
        free(b);
    }

    /* one byte at a time, the hint in use: at every length the same answer as
     * a fresh parse; INCOMPLETE, then the final result */
    static struct pstate fresh;
    memset(&st, 0, sizeof st);
    for (size_t l = 0; l <= len; l++) {
        char *b = dup_n(s, l);
        int r = pparse(p, &st, b, l);
        memset(&fresh, 0, sizeof fresh);
        int rf = pparse(p, &fresh, b, l);
        if (r != rf)
            fail_msg("byte feed: at %zu of %zu got %d (%s), a fresh parse %d (%s)", l, len, r,
                     http1_strerror(r), rf, http1_strerror(rf));
        if (r != HTTP1_INCOMPLETE || l == len) {
            if (r != final)
                fail_msg("byte feed: at %zu of %zu got %d (%s), whole gave %d", l, len, r, http1_strerror(r),
                         final);
            if (r >= 0)
                assert_int_equal(l, (size_t)r); /* success is seen exactly when the head ends */
            psum(p, &st, b, r, got, sizeof got);
            assert_string_equal(got, want);
            free(b);
            break;
        }
        free(b);
    }

    /* every 2-way split, each prefix also parsed without a hint */
    for (size_t k = 0; k <= len; k++) {
        memset(&st, 0, sizeof st);
        char *b = dup_n(s, k);
        int r = pparse(p, &st, b, k);
        if (r != HTTP1_INCOMPLETE) {
            if (r != final)
                fail_msg("prefix %zu of %zu gave %d (%s), whole gave %d", k, len, r, http1_strerror(r),
                         final);
            psum(p, &st, b, r, got, sizeof got);
            assert_string_equal(got, want);
            free(b);
            continue;
        }
        free(b);
        b = dup_n(s, len);
        r = pparse(p, &st, b, len);
        if (r != final)
            fail_msg("split at %zu of %zu gave %d (%s), whole gave %d", k, len, r, http1_strerror(r), final);
        psum(p, &st, b, r, got, sizeof got);
        assert_string_equal(got, want);
        free(b);
    }
    return final;
}

static const struct http1_request *req_ok_n(const char *s, size_t len, size_t max_head, size_t head_len)
{
    struct pctx p = {.resp = false, .max_head = max_head};
    int r = parse_all_ways(&p, s, len);
    if (r < 0)
        fail_msg("request failed: %d (%s)", r, http1_strerror(r));
    assert_int_equal(r, head_len);
    assert_int_equal(g_st.req.head_len, head_len);
    return &g_st.req;
}

/* A whole request head that must parse; returns its fields. */
static const struct http1_request *req_ok(const char *s)
{
    return req_ok_n(s, strlen(s), MAX_HEAD, strlen(s));
}

static void req_err_n(const char *s, size_t len, size_t max_head, int err)
{
    struct pctx p = {.resp = false, .max_head = max_head};
    int r = parse_all_ways(&p, s, len);
    if (r != err)
        fail_msg("request gave %d (%s), want %d (%s)", r, http1_strerror(r), err, http1_strerror(err));
}

static void req_err(const char *s, int err)
{
    req_err_n(s, strlen(s), MAX_HEAD, err);
}

static const struct http1_response *resp_ok(const char *s, enum http1_method m)
{
    struct pctx p = {.resp = true, .method = m, .max_head = MAX_HEAD};
    int r = parse_all_ways(&p, s, strlen(s));
    if (r < 0)
        fail_msg("response failed: %d (%s)", r, http1_strerror(r));
    assert_int_equal(r, strlen(s));
    return &g_st.resp;
}

static void resp_err(const char *s, enum http1_method m, int err)
{
    struct pctx p = {.resp = true, .method = m, .max_head = MAX_HEAD};
    int r = parse_all_ways(&p, s, strlen(s));
    if (r != err)
        fail_msg("response gave %d (%s), want %d (%s)", r, http1_strerror(r), err, http1_strerror(err));
}

static void assert_span(const char *p, size_t n, const char *want)
{
    assert_non_null(p);
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)n, p, want);
}

#define HOST "Host: example.com\r\n"

/* ---- requests: accepted ---- */

static void test_get_with_query(void **state)
{
    const char *s = "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n\r\n";
    const struct http1_request *q = req_ok(s);
    assert_span(q->method, q->method_len, "GET");
    assert_int_equal(q->method_id, HTTP1_METHOD_GET);
    assert_span(q->target, q->target_len, "/a/b?x=1&y=%20");
    assert_int_equal(q->target_form, HTTP1_TARGET_ORIGIN);
    assert_span(q->path, q->path_len, "/a/b?x=1&y=%20");
    assert_span(q->host, q->host_len, "example.com");
    assert_int_equal(q->version_minor, 1);
    assert_int_equal(q->headers.count, 2);
    assert_span(q->headers.h[1].name, q->headers.h[1].name_len, "User-Agent");
    assert_span(q->headers.h[1].value, q->headers.h[1].value_len, "t/1");
    assert_int_equal(q->body, HTTP1_BODY_NONE);
    assert_true(q->keep_alive);
    assert_false(q->upgrade);
    assert_false(q->expect_100_continue);
}

static void test_post_content_length(void **state)
{
    /* the body after the head is not part of it */
    const char *s = "POST /upload HTTP/1.1\r\n" HOST "Content-Length: 5\r\n\r\nhello";
    const struct http1_request *q = req_ok_n(s, strlen(s), MAX_HEAD, strlen(s) - 5);
    assert_int_equal(q->method_id, HTTP1_METHOD_POST);
    assert_int_equal(q->body, HTTP1_BODY_LENGTH);
    assert_int_equal(q->content_length, 5);

    q = req_ok("POST / HTTP/1.1\r\n" HOST "Content-Length: 0\r\n\r\n");
    assert_int_equal(q->body, HTTP1_BODY_LENGTH);
    assert_int_equal(q->content_length, 0);
    q = req_ok("POST / HTTP/1.1\r\n" HOST "Content-Length: 0009223372036854775807\r\n\r\n");
    assert_int_equal(q->content_length, INT64_MAX);
}

static void test_duplicate_content_length(void **state)
{
    const struct http1_request *q;
    q = req_ok("PUT / HTTP/1.1\r\n" HOST "Content-Length: 7\r\ncontent-length:7 \r\n\r\n");
    assert_int_equal(q->body, HTTP1_BODY_LENGTH);
    assert_int_equal(q->content_length, 7);
    q = req_ok("PUT / HTTP/1.1\r\n" HOST "Content-Length: 7 , 7,7\r\n\r\n");
    assert_int_equal(q->content_length, 7);
    req_err("PUT / HTTP/1.1\r\n" HOST "Content-Length: 7\r\nContent-Length: 8\r\n\r\n",
            HTTP1_E_CONFLICTING_CONTENT_LENGTH);
    req_err("PUT / HTTP/1.1\r\n" HOST "Content-Length: 7, 8\r\n\r\n", HTTP1_E_CONFLICTING_CONTENT_LENGTH);
    q = req_ok("PUT / HTTP/1.1\r\n" HOST "Content-Length: 7, 07\r\n\r\n"); /* equal as numbers */
    assert_int_equal(q->content_length, 7);
}

static void test_chunked_request(void **state)
{
    const struct http1_request *q;
    q = req_ok("POST /x HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(q->body, HTTP1_BODY_CHUNKED);
    q = req_ok("POST /x HTTP/1.1\r\n" HOST "Transfer-Encoding: Chunked\r\n\r\n");
    assert_int_equal(q->body, HTTP1_BODY_CHUNKED);
    q = req_ok("POST /x HTTP/1.1\r\n" HOST "Transfer-Encoding: , chunked,\r\n\r\n");
    assert_int_equal(q->body, HTTP1_BODY_CHUNKED);
}

static void test_http10(void **state)
{
    const struct http1_request *q;
    q = req_ok("GET / HTTP/1.0\r\n\r\n");
    assert_int_equal(q->version_minor, 0);
    assert_false(q->keep_alive);
    assert_null(q->host);
    assert_int_equal(q->host_len, 0);
    q = req_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert_true(q->keep_alive);
    q = req_ok("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    assert_false(q->keep_alive);
    q = req_ok("GET / HTTP/1.0\r\nHost: h\r\n\r\n");
    assert_span(q->host, q->host_len, "h");
    /* Upgrade and Expect are ignored in HTTP/1.0 */
    q = req_ok("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n");
    assert_false(q->upgrade);
    assert_false(q->expect_100_continue);
}

static void test_connection_close(void **state)
{
    const struct http1_request *q;
    q = req_ok("GET / HTTP/1.1\r\n" HOST "Connection: close\r\n\r\n");
    assert_false(q->keep_alive);
    q = req_ok("GET / HTTP/1.1\r\n" HOST "Connection: Keep-Alive\r\nConnection: CLOSE\r\n\r\n");
    assert_false(q->keep_alive);
    q = req_ok("GET / HTTP/1.1\r\n" HOST "Connection: closed\r\n\r\n");
    assert_true(q->keep_alive);
}

static void test_upgrade(void **state)
{
    const struct http1_request *q;
    q = req_ok("GET /ws HTTP/1.1\r\n" HOST "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert_true(q->upgrade);
    assert_true(q->keep_alive);
    const struct http1_header *h = http1_find_header(&q->headers, "upgrade");
    assert_non_null(h);
    assert_true(http1_header_has_token(h->value, h->value_len, "WebSocket"));

    q = req_ok("GET /ws HTTP/1.1\r\n" HOST "Connection: upgrade\r\n\r\n");
    assert_false(q->upgrade);
    q = req_ok("GET /ws HTTP/1.1\r\n" HOST "Upgrade: websocket\r\n\r\n");
    assert_false(q->upgrade);
    q = req_ok("GET /ws HTTP/1.1\r\n" HOST "Connection: upgrade\r\nUpgrade:\r\n\r\n");
    assert_false(q->upgrade);
}

static void test_expect(void **state)
{
    const struct http1_request *q;
    q = req_ok("PUT / HTTP/1.1\r\n" HOST "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
    assert_true(q->expect_100_continue);
    q = req_ok("PUT / HTTP/1.1\r\n" HOST "Expect: 101-continue\r\n\r\n");
    assert_false(q->expect_100_continue);
}

static void test_absolute_form(void **state)
{
    const struct http1_request *q;
    q = req_ok("GET http://Worker.Example.com:8080/p/q?r=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_int_equal(q->target_form, HTTP1_TARGET_ABSOLUTE);
    assert_span(q->host, q->host_len, "Worker.Example.com:8080");
    assert_span(q->path, q->path_len, "/p/q?r=1");
    q = req_ok("GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_span(q->host, q->host_len, "h");
    assert_int_equal(q->path_len, 0);
    q = req_ok("GET http://h?x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_span(q->path, q->path_len, "?x");
    q = req_ok("GET http://[::1]:80/ HTTP/1.0\r\n\r\n");
    assert_span(q->host, q->host_len, "[::1]:80");

    req_err("GET http://user@h/ HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET http:///p HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET http:// HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET ftp://h/ HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET http:/h/ HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET http://h:99999/ HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET http://h%zz/ HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET example.com HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    /* absolute-form still needs Host in HTTP/1.1 (RFC 9112 3.2) */
    req_err("GET http://h/ HTTP/1.1\r\n\r\n", HTTP1_E_MISSING_HOST);
}

static void test_asterisk_and_authority(void **state)
{
    const struct http1_request *q;
    q = req_ok("OPTIONS * HTTP/1.1\r\n" HOST "\r\n");
    assert_int_equal(q->method_id, HTTP1_METHOD_OPTIONS);
    assert_int_equal(q->target_form, HTTP1_TARGET_ASTERISK);
    assert_int_equal(q->path_len, 0);
    req_err("GET * HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("OPTIONS ** HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);

    q = req_ok("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_int_equal(q->method_id, HTTP1_METHOD_CONNECT);
    assert_int_equal(q->target_form, HTTP1_TARGET_AUTHORITY);
    assert_span(q->host, q->host_len, "example.com:443");
    assert_int_equal(q->body, HTTP1_BODY_NONE);
    q = req_ok("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n" HOST "\r\n");
    assert_span(q->host, q->host_len, "[2001:db8::1]:8443");
    req_err("CONNECT example.com HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("CONNECT example.com: HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("CONNECT :443 HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("CONNECT / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("CONNECT http://h:1/ HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET h:443 HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
}

static void test_methods(void **state)
{
    static const struct {
        const char *s;
        enum http1_method id;
    } cases[] = {
        {"GET", HTTP1_METHOD_GET},
        {"HEAD", HTTP1_METHOD_HEAD},
        {"POST", HTTP1_METHOD_POST},
        {"PUT", HTTP1_METHOD_PUT},
        {"DELETE", HTTP1_METHOD_DELETE},
        {"OPTIONS", HTTP1_METHOD_OPTIONS},
        {"PATCH", HTTP1_METHOD_PATCH},
        {"get", HTTP1_METHOD_OTHER},
        {"PROPFIND", HTTP1_METHOD_OTHER},
        {"GETS", HTTP1_METHOD_OTHER},
        {"X-Y.Z~!#$%&'*+^_`|", HTTP1_METHOD_OTHER},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(buf, sizeof buf, "%s / HTTP/1.1\r\n" HOST "\r\n", cases[i].s);
        const struct http1_request *q = req_ok(buf);
        assert_int_equal(q->method_id, cases[i].id);
        assert_span(q->method, q->method_len, cases[i].s);
    }
}

static void test_leading_empty_lines(void **state)
{
    const struct http1_request *q = req_ok("\r\n\r\nGET / HTTP/1.1\r\n" HOST "\r\n");
    assert_span(q->method, q->method_len, "GET");
    req_ok("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" HOST "\r\n");
    req_err("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_REQUEST_LINE);
    req_err("\nGET / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BARE_LF);
    req_err("\r\rGET / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BARE_CR);
}

static void test_header_values(void **state)
{
    const struct http1_request *q;
    q = req_ok("GET / HTTP/1.1\r\n" HOST "X-A:   a \t b  \t\r\nX-Empty:\r\nX-Sp:   \r\nX-Obs: \x80\xff\r\n"
               "X-Tab:\tv\r\n\r\n");
    assert_int_equal(q->headers.count, 6);
    assert_span(q->headers.h[1].value, q->headers.h[1].value_len, "a \t b");
    assert_int_equal(q->headers.h[2].value_len, 0);
    assert_int_equal(q->headers.h[3].value_len, 0);
    assert_span(q->headers.h[4].value, q->headers.h[4].value_len, "\x80\xff");
    assert_span(q->headers.h[5].value, q->headers.h[5].value_len, "v");
    assert_span(q->headers.h[5].name, q->headers.h[5].name_len, "X-Tab");
}

static void test_many_headers(void **state)
{
    char *s = malloc(8192);
    assert_non_null(s);
    size_t n = (size_t)sprintf(s, "GET / HTTP/1.1\r\n" HOST);
    for (int i = 1; i < HTTP1_MAX_HEADERS; i++)
        n += (size_t)sprintf(s + n, "X-H%d: %d\r\n", i, i);
    strcpy(s + n, "\r\n");
    const struct http1_request *q = req_ok(s);
    assert_int_equal(q->headers.count, HTTP1_MAX_HEADERS);
    assert_span(q->headers.h[99].name, q->headers.h[99].name_len, "X-H99");
    assert_span(q->headers.h[99].value, q->headers.h[99].value_len, "99");
    n += (size_t)sprintf(s + n, "X-H100: 100\r\n\r\n");
    req_err(s, HTTP1_E_TOO_MANY_HEADERS);
    strcpy(s + n - 15, "\n"); /* a stray LF is always reported as such */
    req_err(s, HTTP1_E_BARE_LF);
    free(s);
}

/* One struct per connection: heads parsed one after the other from a
 * buffer that grows byte by byte, with no reset between them. */
static void test_reuse_per_connection(void **state)
{
    const char *s = "POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
                    "GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    static struct http1_request q;
    memset(&q, 0, sizeof q);
    size_t start = 0, len = strlen(s);
    const char *paths[] = {"/1", "/2", "/3"};
    int heads = 0;
    for (size_t end = 0; end <= len; end++) {
        if (end < start)
            continue;
        char *b = dup_n(s + start, end - start);
        int r = http1_parse_request(b, end - start, &q, MAX_HEAD);
        if (r == HTTP1_INCOMPLETE) {
            free(b);
            continue;
        }
        assert_true(r > 0);
        assert_int_equal(start + (size_t)r, end);
        assert_int_equal(q.path - b, 4 + (heads == 0));
        assert_span(q.path, q.path_len, paths[heads]);
        assert_int_equal(q.keep_alive, heads < 2);
        start = end + (q.body == HTTP1_BODY_LENGTH ? q.content_length : 0);
        heads++;
        free(b);
    }
    assert_int_equal(heads, 3);
    assert_int_equal(start, len);
}

static void test_head_size_limit(void **state)
{
    const char *s = "GET /0123456789 HTTP/1.1\r\n" HOST "X-Pad: abcdefghij\r\n\r\n";
    size_t n = strlen(s);
    req_ok_n(s, n, n, n);                           /* exactly at the limit */
    req_err_n(s, n, n - 1, HTTP1_E_HEAD_TOO_LARGE); /* one byte over */
    req_err_n(s, n - 1, n - 1, HTTP1_INCOMPLETE);   /* at the limit, not complete yet */
    req_err_n(s, n - 1, n - 2, HTTP1_E_HEAD_TOO_LARGE);
    req_err_n(s, 1, 0, HTTP1_E_HEAD_TOO_LARGE);
    /* an error inside the limit wins over "too large" */
    req_err_n("GET / HTTP/1.1\r\nBad Name: x\r\n", 29, 20, HTTP1_E_SPACE_BEFORE_COLON);
    /* and an error past the limit is not looked at */
    req_err_n("GET / HTTP/1.1\r\nBad Name: x\r\n", 29, 18, HTTP1_E_HEAD_TOO_LARGE);
    /* the body after a head of max_head bytes does not count */
    char buf[256];
    snprintf(buf, sizeof buf, "%sxyz", s);
    req_ok_n(buf, n + 3, n, n);
}

static void test_incomplete(void **state)
{
    req_err("", HTTP1_INCOMPLETE);
    req_err("GET / HTTP/1.1\r\n" HOST, HTTP1_INCOMPLETE);
    req_err("GET / HTTP/1.1\r\n" HOST "\r", HTTP1_INCOMPLETE);
    req_err("GET /very/long/path", HTTP1_INCOMPLETE);
}

static void test_host(void **state)
{
    const struct http1_request *q;
    q = req_ok("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    assert_span(q->host, q->host_len, "[::1]:8080");
    q = req_ok("GET / HTTP/1.1\r\nhost:   abc.def-1_~%41!$&'()*+,;=:65535  \r\n\r\n");
    assert_span(q->host, q->host_len, "abc.def-1_~%41!$&'()*+,;=:65535");
    q = req_ok("GET / HTTP/1.1\r\nHost:\r\n\r\n");
    assert_non_null(q->host);
    assert_int_equal(q->host_len, 0);
    q = req_ok("GET / HTTP/1.1\r\nHost: h:\r\n\r\n");
    assert_span(q->host, q->host_len, "h:");

    req_err("GET / HTTP/1.1\r\n\r\n", HTTP1_E_MISSING_HOST);
    req_err("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: h/p\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: h:65536\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: h:8x\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: :80\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: []\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: h%4\r\n\r\n", HTTP1_E_BAD_HOST);
    req_err("GET / HTTP/1.1\r\nHost: h\x80\r\n\r\n", HTTP1_E_BAD_HOST);
}

/* Every byte value in a target, a header name and a header value, against
 * the RFC's character sets. */
static void test_char_classes(void **state)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    char s[64];
    for (int c = 0; c < 256; c++) {
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool is_tchar = alnum || (c && strchr(tchar, c));
        bool vchar = c >= 0x21 && c <= 0x7e;
        struct pctx p = {.max_head = MAX_HEAD};
        int n, r;

        n = snprintf(s, sizeof s, "GET /a%cb HTTP/1.1\r\nHost: h\r\n\r\n", 'Z');
        s[6] = (char)c;
        r = parse_all_ways(&p, s, (size_t)n);
        if ((r > 0) != (vchar && c != '#'))
            fail_msg("target byte 0x%02x gave %d", c, r);

        n = snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: h\r\nXZY: v\r\n\r\n");
        s[26] = (char)c;
        r = parse_all_ways(&p, s, (size_t)n);
        if ((r > 0) != (is_tchar || c == ':')) /* "X:Y: v" is X with value "Y: v" */
            fail_msg("name byte 0x%02x gave %d", c, r);

        n = snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: h\r\nX: aZb\r\n\r\n");
        s[29] = (char)c;
        r = parse_all_ways(&p, s, (size_t)n);
        if ((r > 0) != (vchar || c == ' ' || c == '\t' || c >= 0x80))
            fail_msg("value byte 0x%02x gave %d", c, r);
        if (r > 0)
            assert_int_equal(g_st.req.headers.h[1].value_len, 3);
    }
}

/* ---- requests: rejected ---- */

static void test_bare_lf(void **state)
{
    req_err("GET / HTTP/1.1\n" HOST "\r\n", HTTP1_E_BARE_LF);
    req_err("GET / HTTP/1.1\r\nHost: h\n\r\n", HTTP1_E_BARE_LF);
    req_err("GET / HTTP/1.1\r\n" HOST "\n", HTTP1_E_BARE_LF);
    req_err("GET / HTTP/1.1\r\n" HOST "X: a\nb\r\n\r\n", HTTP1_E_BARE_LF);
    req_err("GET / HTTP/1.1\r\n" HOST "X\n: a\r\n\r\n", HTTP1_E_BARE_LF);
    req_err("GET /\n HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BARE_LF);
    req_err("GE\nT / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BARE_LF);
    req_err("GET / HTTP/1.1\n\n", HTTP1_E_BARE_LF);
    req_err("GET / HTTP/1\n", HTTP1_E_BARE_LF);
}

static void test_bare_cr(void **state)
{
    req_err("GET / HTTP/1.1\rHost: h\r\n\r\n", HTTP1_E_BARE_CR);
    req_err("GET / HTTP/1.1\r\nHost: h\r\r\n\r\n", HTTP1_E_BARE_CR);
    req_err("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", HTTP1_E_BARE_CR);
    req_err("GET / HTTP/1.1\r\n" HOST "\r\r", HTTP1_E_BARE_CR);
}

static void test_obs_fold(void **state)
{
    req_err("GET / HTTP/1.1\r\n" HOST "X: a\r\n b\r\n\r\n", HTTP1_E_OBS_FOLD);
    req_err("GET / HTTP/1.1\r\n" HOST "X: a\r\n\tb\r\n\r\n", HTTP1_E_OBS_FOLD);
    /* whitespace between the start line and the first header (RFC 9112 2.2) */
    req_err("GET / HTTP/1.1\r\n " HOST "\r\n", HTTP1_E_OBS_FOLD);
}

static void test_header_names(void **state)
{
    req_err("GET / HTTP/1.1\r\nHost : h\r\n\r\n", HTTP1_E_SPACE_BEFORE_COLON);
    req_err("GET / HTTP/1.1\r\n" HOST "X\t: a\r\n\r\n", HTTP1_E_SPACE_BEFORE_COLON);
    req_err("GET / HTTP/1.1\r\n" HOST "X Y: a\r\n\r\n", HTTP1_E_SPACE_BEFORE_COLON);
    req_err("GET / HTTP/1.1\r\n" HOST ": a\r\n\r\n", HTTP1_E_BAD_HEADER_NAME);
    req_err("GET / HTTP/1.1\r\n" HOST "X(: a\r\n\r\n", HTTP1_E_BAD_HEADER_NAME);
    req_err("GET / HTTP/1.1\r\n" HOST "X\x01Y: a\r\n\r\n", HTTP1_E_BAD_HEADER_NAME);
    req_err("GET / HTTP/1.1\r\n" HOST "X\x80: a\r\n\r\n", HTTP1_E_BAD_HEADER_NAME);
    req_err("GET / HTTP/1.1\r\n" HOST "X/Y: a\r\n\r\n", HTTP1_E_BAD_HEADER_NAME);
    req_err("GET / HTTP/1.1\r\n" HOST "NoColon\r\n\r\n", HTTP1_E_BAD_HEADER_NAME);
    req_err("GET / HTTP/1.1\r\n" HOST "\x7f: a\r\n\r\n", HTTP1_E_BAD_HEADER_NAME);
}

static void test_header_value_controls(void **state)
{
    static const char ctl[] = {0x00, 0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f};
    for (size_t i = 0; i < sizeof ctl; i++) {
        char s[64];
        int n = snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: h\r\nX: a%cb\r\n\r\n", 'Z');
        char *z = memchr(s, 'Z', (size_t)n);
        *z = ctl[i];
        req_err_n(s, (size_t)n, MAX_HEAD, HTTP1_E_BAD_HEADER_VALUE);
    }
}

static void test_bad_method(void **state)
{
    req_err("G(T / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_METHOD);
    req_err(" GET / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_METHOD);
    req_err("GET\t/ HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_METHOD);
    req_err("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", HTTP1_E_BAD_METHOD); /* a TLS ClientHello */
    req_err("GET\r\n\r\n", HTTP1_E_BAD_REQUEST_LINE);
}

static void test_bad_target(void **state)
{
    req_err("GET  / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET /a#frag HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET /\x80 HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET /a\tb HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET /a\x7f HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET);
    req_err("GET /\r\n\r\n", HTTP1_E_BAD_REQUEST_LINE); /* HTTP/0.9 */
    req_err("GET / \r\n\r\n", HTTP1_E_BAD_VERSION);
    /* visible chars other than '#' are passed through */
    const struct http1_request *q = req_ok("GET /a|b{c}\"<>^`\\[]@:!$&'()*+,;= HTTP/1.1\r\n" HOST "\r\n");
    assert_span(q->path, q->path_len, "/a|b{c}\"<>^`\\[]@:!$&'()*+,;=");
}

static void test_versions(void **state)
{
    req_err("GET / HTTP/2.0\r\n" HOST "\r\n", HTTP1_E_VERSION_NOT_SUPPORTED);
    req_err("GET / HTTP/1.2\r\n" HOST "\r\n", HTTP1_E_VERSION_NOT_SUPPORTED);
    req_err("GET / HTTP/0.9\r\n" HOST "\r\n", HTTP1_E_VERSION_NOT_SUPPORTED);
    req_err("GET / HTTP/3.0\r\n\r\n", HTTP1_E_VERSION_NOT_SUPPORTED);
    req_err("GET / HTTP/1.10\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION);
    req_err("GET / HTTP/1.1 \r\n" HOST "\r\n", HTTP1_E_BAD_VERSION);
    req_err("GET / http/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION);
    req_err("GET / HTTP/1\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION);
    req_err("GET / HTTP/11\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION);
    req_err("GET / HTTP/1.x\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION);
    req_err("GET / HTTP/1.1 x\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION);
    req_err("GET / FTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION);
}

static void test_content_length_errors(void **state)
{
    static const char *const bad[] = {"",
                                      "+5",
                                      "-1",
                                      "5a",
                                      "0x10",
                                      "1 2",
                                      "5,",
                                      ",5",
                                      "5,,5",
                                      "9223372036854775808",
                                      "18446744073709551616",
                                      "99999999999999999999999999"};
    char s[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(s, sizeof s, "POST / HTTP/1.1\r\n" HOST "Content-Length: %s\r\n\r\n", bad[i]);
        req_err(s, HTTP1_E_BAD_CONTENT_LENGTH);
    }
    /* a bad value is an error even when another line is good */
    req_err("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nContent-Length: x\r\n\r\n",
            HTTP1_E_BAD_CONTENT_LENGTH);
}

static void test_cl_and_te(void **state)
{
    req_err("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            HTTP1_E_CL_AND_TE);
    req_err("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
            HTTP1_E_CL_AND_TE);
    req_err("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
            HTTP1_E_CL_AND_TE);
}

static void test_transfer_encoding_errors(void **state)
{
    static const struct {
        const char *te;
        int err;
    } cases[] = {
        {"gzip", HTTP1_E_BAD_TRANSFER_ENCODING},
        {"chunked, gzip", HTTP1_E_BAD_TRANSFER_ENCODING},
        {"chunked, chunked", HTTP1_E_BAD_TRANSFER_ENCODING},
        {"", HTTP1_E_BAD_TRANSFER_ENCODING},
        {" , ", HTTP1_E_BAD_TRANSFER_ENCODING},
        {"chunked;x=1", HTTP1_E_BAD_TRANSFER_ENCODING},
        {"chunkedx", HTTP1_E_BAD_TRANSFER_ENCODING},
        {"identity", HTTP1_E_BAD_TRANSFER_ENCODING},
        {"gzip, chunked", HTTP1_E_UNSUPPORTED_TRANSFER_CODING},
        {"deflate,chunked", HTTP1_E_UNSUPPORTED_TRANSFER_CODING},
    };
    char s[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(s, sizeof s, "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: %s\r\n\r\n", cases[i].te);
        req_err(s, cases[i].err);
    }
    /* several lines form one list */
    req_err("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            HTTP1_E_UNSUPPORTED_TRANSFER_CODING);
    req_err("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            HTTP1_E_BAD_TRANSFER_ENCODING);
    req_err("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            HTTP1_E_BAD_TRANSFER_ENCODING);
    /* HTTP/1.0 with Transfer-Encoding is faulty framing (RFC 9112 6.1) */
    req_err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_E_BAD_TRANSFER_ENCODING);
}

static void test_error_status_and_strings(void **state)
{
    assert_int_equal(http1_request_error_status(HTTP1_E_HEAD_TOO_LARGE), 431);
    assert_int_equal(http1_request_error_status(HTTP1_E_TOO_MANY_HEADERS), 431);
    assert_int_equal(http1_request_error_status(HTTP1_E_VERSION_NOT_SUPPORTED), 505);
    assert_int_equal(http1_request_error_status(HTTP1_E_UNSUPPORTED_TRANSFER_CODING), 501);
    assert_int_equal(http1_request_error_status(HTTP1_E_BARE_LF), 400);
    assert_int_equal(http1_request_error_status(HTTP1_E_CL_AND_TE), 400);
    assert_int_equal(http1_request_error_status(HTTP1_E_MISSING_HOST), 400);
    for (int e = HTTP1_INCOMPLETE; e >= HTTP1_E_TRAILER_TOO_LARGE; e--) {
        const char *s = http1_strerror(e);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
        for (int f = HTTP1_INCOMPLETE; f > e; f--)
            assert_string_not_equal(s, http1_strerror(f));
    }
    assert_string_equal(http1_strerror(0), "success");
    assert_string_equal(http1_strerror(-1000), "unknown error");
    assert_string_equal(http1_strerror(5), "unknown error");
}

/* ---- responses ---- */

static void test_response_framing(void **state)
{
    const struct http1_response *r;
    r = resp_ok("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n",
                HTTP1_METHOD_GET);
    assert_int_equal(r->version_minor, 1);
    assert_int_equal(r->status, 200);
    assert_span(r->reason, r->reason_len, "OK");
    assert_int_equal(r->headers.count, 2);
    assert_int_equal(r->body, HTTP1_BODY_LENGTH);
    assert_int_equal(r->content_length, 12);
    assert_true(r->keep_alive);
    assert_false(r->upgrade);

    r = resp_ok("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_METHOD_POST);
    assert_int_equal(r->status, 404);
    assert_span(r->reason, r->reason_len, "Not Found");
    assert_int_equal(r->body, HTTP1_BODY_CHUNKED);
    assert_true(r->keep_alive);

    r = resp_ok("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->body, HTTP1_BODY_CLOSE);
    assert_false(r->keep_alive);

    r = resp_ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->body, HTTP1_BODY_LENGTH);
    assert_false(r->keep_alive);

    r = resp_ok("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5, 5\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->content_length, 5);
}

static void test_response_no_body(void **state)
{
    const struct http1_response *r;
    r = resp_ok("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", HTTP1_METHOD_HEAD);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    assert_true(r->keep_alive);
    r = resp_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_METHOD_HEAD);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    r = resp_ok("HTTP/1.1 200 OK\r\n\r\n", HTTP1_METHOD_HEAD);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    assert_true(r->keep_alive);
    r = resp_ok("HTTP/1.1 204 No Content\r\n\r\n", HTTP1_METHOD_DELETE);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    assert_true(r->keep_alive);
    r = resp_ok("HTTP/1.1 304 Not Modified\r\nContent-Length: 77\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    assert_int_equal(r->content_length, 0);
    r = resp_ok("HTTP/1.1 100 Continue\r\n\r\n", HTTP1_METHOD_PUT);
    assert_int_equal(r->status, 100);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    assert_false(r->upgrade);
    r = resp_ok("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    r = resp_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                HTTP1_METHOD_GET);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    assert_true(r->upgrade);
    assert_false(r->keep_alive);
    r = resp_ok("HTTP/1.1 200 Connection established\r\n\r\n", HTTP1_METHOD_CONNECT);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    assert_true(r->upgrade);
    r = resp_ok("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
                HTTP1_METHOD_CONNECT);
    assert_int_equal(r->body, HTTP1_BODY_LENGTH);
    assert_false(r->upgrade);
    /* a 204 that claims chunked has no body all the same */
    r = resp_ok("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
}

static void test_response_versions_and_reason(void **state)
{
    const struct http1_response *r;
    r = resp_ok("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->version_minor, 0);
    assert_false(r->keep_alive);
    r = resp_ok("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n", HTTP1_METHOD_GET);
    assert_true(r->keep_alive);
    r = resp_ok("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->reason_len, 0);
    r = resp_ok("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->reason_len, 0);
    r = resp_ok("HTTP/1.1 599 \t w\xe9ird  reason \r\nContent-Length: 0\r\n\r\n", HTTP1_METHOD_GET);
    assert_int_equal(r->status, 599);
    assert_span(r->reason, r->reason_len, "\t w\xe9ird  reason ");

    resp_err("HTTP/2.0 200 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_VERSION_NOT_SUPPORTED);
    resp_err("HTTP/1.2 200 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_VERSION_NOT_SUPPORTED);
    resp_err("HTTP/2 200 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_VERSION);
    resp_err("ICY 200 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_STATUS_LINE);
    resp_err("HTTP/1.1  200 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_STATUS_LINE);
    resp_err("HTTP/1.1 20 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_STATUS_LINE);
    resp_err("HTTP/1.1 2000 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_STATUS_LINE);
    resp_err("HTTP/1.1 099 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_STATUS_LINE);
    resp_err("HTTP/1.1 600 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_STATUS_LINE);
    resp_err("HTTP/1.1 200 O\x01K\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_STATUS_LINE);
    resp_err("HTTP/1.1 200 OK\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BARE_LF);
    resp_err("HTTP/1.1 200\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BARE_LF);
    resp_err("HTTP/1.1 200 OK\rX\r\n", HTTP1_METHOD_GET, HTTP1_E_BARE_CR);
    resp_err("\r\nHTTP/1.1 200 OK\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_STATUS_LINE);
}

static void test_response_framing_errors(void **state)
{
    resp_err("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_METHOD_GET,
             HTTP1_E_CL_AND_TE);
    resp_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP1_METHOD_GET,
             HTTP1_E_BAD_TRANSFER_ENCODING);
    resp_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HTTP1_METHOD_GET,
             HTTP1_E_UNSUPPORTED_TRANSFER_CODING);
    resp_err("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_METHOD_GET,
             HTTP1_E_BAD_TRANSFER_ENCODING);
    resp_err("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HTTP1_METHOD_GET,
             HTTP1_E_CONFLICTING_CONTENT_LENGTH);
    resp_err("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", HTTP1_METHOD_HEAD, HTTP1_E_BAD_CONTENT_LENGTH);
    resp_err("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_OBS_FOLD);
    resp_err("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_SPACE_BEFORE_COLON);
    resp_err("HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n", HTTP1_METHOD_GET, HTTP1_E_BAD_HEADER_VALUE);
    resp_err("HTTP/1.1 200 OK\r\nX: a\r\n\n", HTTP1_METHOD_GET, HTTP1_E_BARE_LF);
    resp_err("HTTP/1.1 200 OK\r\nX: a\r\n", HTTP1_METHOD_GET, HTTP1_INCOMPLETE);
}

static void test_response_limits(void **state)
{
    char *s = malloc(8192);
    assert_non_null(s);
    size_t n = (size_t)sprintf(s, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < HTTP1_MAX_HEADERS; i++)
        n += (size_t)sprintf(s + n, "S%d: v\r\n", i);
    strcpy(s + n, "\r\n");
    const struct http1_response *r = resp_ok(s, HTTP1_METHOD_GET);
    assert_int_equal(r->headers.count, HTTP1_MAX_HEADERS);
    strcpy(s + n, "X: y\r\n\r\n");
    resp_err(s, HTTP1_METHOD_GET, HTTP1_E_TOO_MANY_HEADERS);
    free(s);

    const char *h = "HTTP/1.1 204 No Content\r\nDate: today\r\n\r\n";
    struct pctx p = {.resp = true, .method = HTTP1_METHOD_GET, .max_head = strlen(h)};
    assert_int_equal(parse_all_ways(&p, h, strlen(h)), strlen(h));
    p.max_head--;
    assert_int_equal(parse_all_ways(&p, h, strlen(h)), HTTP1_E_HEAD_TOO_LARGE);
}

/* ---- header helpers ---- */

static void test_find_header(void **state)
{
    const struct http1_request *q =
        req_ok("GET / HTTP/1.1\r\nHost: h\r\nX-Thing: 1\r\nx-thing: 2\r\nX-Things: 3\r\n\r\n");
    const struct http1_header *h = http1_find_header(&q->headers, "X-THING");
    assert_non_null(h);
    assert_span(h->value, h->value_len, "1");
    h = http1_find_header(&q->headers, "x-things");
    assert_span(h->value, h->value_len, "3");
    assert_null(http1_find_header(&q->headers, "X-Thin"));
    assert_null(http1_find_header(&q->headers, ""));
}

static void test_has_token(void **state)
{
    const char *v = "keep-alive,  Upgrade ,\tfoo\t,, bar;x=1";
    size_t n = strlen(v);
    assert_true(http1_header_has_token(v, n, "upgrade"));
    assert_true(http1_header_has_token(v, n, "KEEP-ALIVE"));
    assert_true(http1_header_has_token(v, n, "foo"));
    assert_false(http1_header_has_token(v, n, "bar"));
    assert_true(http1_header_has_token(v, n, "bar;x=1"));
    assert_false(http1_header_has_token(v, n, "upgrad"));
    assert_false(http1_header_has_token(v, n, "keep"));
    assert_false(http1_header_has_token(v, n, ""));
    assert_false(http1_header_has_token("", 0, "a"));
    assert_false(http1_header_has_token(NULL, 0, "a"));
    assert_false(http1_header_has_token(",,", 2, "a"));
    assert_true(http1_header_has_token("a", 1, "a"));
    assert_true(http1_header_has_token("b,a", 3, "a"));
    assert_false(http1_header_has_token("b,a", 2, "a")); /* len is honoured */
}

static void test_hop_by_hop(void **state)
{
    static const char *const hop[] = {
        "Connection", "keep-alive",         "PROXY-CONNECTION",   "te", "Trailer", "Transfer-Encoding",
        "upgrade",    "Proxy-Authenticate", "proxy-authorization"};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        assert_true(http1_is_hop_by_hop(NULL, hop[i], strlen(hop[i])));
    static const char *const e2e[] = {"Host", "Content-Length", "Authorization", "Trailers", "T", "Cookie",
                                      ""};
    for (size_t i = 0; i < sizeof e2e / sizeof e2e[0]; i++)
        assert_false(http1_is_hop_by_hop(NULL, e2e[i], strlen(e2e[i])));

    const struct http1_request *q = req_ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Secret , close\r\n"
                                           "connection: x-other\r\nConnection: Host, Content-Length\r\n"
                                           "X-Secret: 1\r\n\r\n");
    assert_true(http1_is_hop_by_hop(&q->headers, "x-secret", 8));
    assert_true(http1_is_hop_by_hop(&q->headers, "X-Other", 7));
    assert_true(http1_is_hop_by_hop(&q->headers, "close", 5));
    assert_false(http1_is_hop_by_hop(&q->headers, "X-Secre", 7));
    assert_false(http1_is_hop_by_hop(&q->headers, "Host", 4));
    assert_false(http1_is_hop_by_hop(&q->headers, "content-length", 14));
    assert_false(http1_is_hop_by_hop(&q->headers, "Cookie", 6));
    assert_true(http1_is_hop_by_hop(&q->headers, "Upgrade", 7));
}

/* ---- chunked ---- */

struct chres {
    ssize_t r; /* bytes of the body, or the error */
    bool done;
    uint64_t total;
    char *payload; /* decoded payload, malloc'd */
    size_t payload_len;
};

static void ch_append(struct chres *x, const char *d, size_t n)
{
    x->payload = realloc(x->payload, x->payload_len + n + 1);
    assert_non_null(x->payload);
    memcpy(x->payload + x->payload_len, d, n);
    x->payload_len += n;
}

/* Scans s in pieces ending at the given cut offsets (one-byte pieces when
 * cuts is NULL); also decodes when decode is set. Stops at the end of the
 * body or the first error, as the node does. */
static void ch_run(const char *s, size_t len, size_t max_trailer, const size_t *cuts, size_t ncuts,
                   bool decode, struct chres *x)
{
    struct http1_chunked c;
    http1_chunked_init(&c, max_trailer);
    memset(x, 0, sizeof *x);
    ssize_t sum = 0;
    size_t pos = 0;
    for (size_t k = 0; pos < len || k == 0; k++) {
        size_t end = cuts ? (k < ncuts ? cuts[k] : len) : pos + 1;
        if (end > len)
            end = len;
        char *b = dup_n(s + pos, end - pos);
        size_t n = end - pos, used = 0;
        ssize_t r = 0;
        if (!decode) {
            r = http1_chunked_scan(&c, b, n);
            if (r >= 0)
                used = (size_t)r;
        } else {
            do {
                size_t doff = 99, dlen = 99;
                r = http1_chunked_decode(&c, b + used, n - used, &doff, &dlen);
                if (r < 0)
                    break;
                assert_true(doff + dlen <= (size_t)r);
                if (dlen)
                    ch_append(x, b + used + doff, dlen);
                else
                    assert_int_equal(doff, 0);
                used += (size_t)r;
                assert_true(r > 0 || http1_chunked_done(&c) || n == used);
            } while (used < n && !http1_chunked_done(&c));
        }
        free(b);
        if (r < 0) {
            x->r = r;
            x->total = c.total;
            /* errors are sticky */
            assert_int_equal(http1_chunked_scan(&c, "0\r\n\r\n", 5), r);
            size_t doff, dlen;
            assert_int_equal(http1_chunked_decode(&c, "0\r\n\r\n", 5, &doff, &dlen), r);
            assert_int_equal(dlen, 0);
            return;
        }
        sum += (ssize_t)used;
        pos = end;
        if (http1_chunked_done(&c)) {
            assert_true(used <= n);
            break;
        }
        assert_int_equal(used, n); /* not done: everything belongs to the body */
        if (pos >= len)
            break;
    }
    x->r = sum;
    x->done = http1_chunked_done(&c);
    x->total = c.total;
    assert_int_equal(x->total, (uint64_t)sum);
    if (x->done)
        assert_int_equal(http1_chunked_scan(&c, "5\r\n", 3), 0);
}

static void ch_same(const struct chres *a, const struct chres *b, bool payload, const char *what, size_t at)
{
    if (a->r != b->r || a->done != b->done || a->total != b->total)
        fail_msg("%s (cut %zu): r=%zd done=%d total=%llu, whole: r=%zd done=%d total=%llu", what, at, b->r,
                 b->done, (unsigned long long)b->total, a->r, a->done, (unsigned long long)a->total);
    if (payload && (a->payload_len != b->payload_len ||
                    (a->payload_len && memcmp(a->payload, b->payload, a->payload_len) != 0)))
        fail_msg("%s (cut %zu): payload differs", what, at);
}

/* Scans and decodes s whole, byte by byte and at every 2-way split; checks
 * all agree and match the expected result (want_r: bytes of the body or an
 * error) and, on success, payload. */
static void ch_check_n(const char *s, size_t len, size_t max_trailer, ssize_t want_r, bool want_done,
                       const char *payload, size_t payload_len)
{
    struct chres whole, dec, x;
    size_t cut = len;
    ch_run(s, len, max_trailer, &cut, 1, false, &whole);
    if (whole.r != want_r)
        fail_msg("chunked gave %zd (%s), want %zd (%s)", whole.r,
                 whole.r < 0 ? http1_strerror((int)whole.r) : "", want_r,
                 want_r < 0 ? http1_strerror((int)want_r) : "");
    assert_int_equal(whole.done, want_done);
    ch_run(s, len, max_trailer, &cut, 1, true, &dec);
    ch_same(&whole, &dec, false, "decode whole", len);
    if (payload) {
        if (dec.payload_len != payload_len || (payload_len && memcmp(dec.payload, payload, payload_len) != 0))
            fail_msg("payload \"%.*s\", want \"%.*s\"", (int)dec.payload_len, dec.payload ? dec.payload : "",
                     (int)payload_len, payload);
    }
    ch_run(s, len, max_trailer, NULL, 0, false, &x);
    ch_same(&whole, &x, false, "scan bytewise", 0);
    free(x.payload);
    ch_run(s, len, max_trailer, NULL, 0, true, &x);
    ch_same(&dec, &x, true, "decode bytewise", 0);
    free(x.payload);
    for (size_t k = 0; k <= len; k++) {
        ch_run(s, len, max_trailer, &k, 1, false, &x);
        ch_same(&whole, &x, false, "scan split", k);
        free(x.payload);
        ch_run(s, len, max_trailer, &k, 1, true, &x);
        ch_same(&dec, &x, true, "decode split", k);
        free(x.payload);
    }
    free(whole.payload);
    free(dec.payload);
}

/* s holds a whole body followed by body_len - strlen(s) bytes of something else */
static void ch_ok_n(const char *s, size_t body_len, const char *payload)
{
    ch_check_n(s, strlen(s), HTTP1_CHUNK_TRAILER_MAX, (ssize_t)body_len, true, payload, strlen(payload));
}

static void ch_ok(const char *s, const char *payload)
{
    ch_ok_n(s, strlen(s), payload);
}

static void ch_err(const char *s, int err)
{
    ch_check_n(s, strlen(s), HTTP1_CHUNK_TRAILER_MAX, err, false, NULL, 0);
}

static void test_chunked_basic(void **state)
{
    ch_ok("5\r\nhello\r\n0\r\n\r\n", "hello");
    ch_ok("0\r\n\r\n", "");
    ch_ok("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
    ch_ok("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
    ch_ok("0005\r\nhello\r\n000\r\n\r\n", "hello");
    ch_ok("1\r\n\r\r\n2\r\n\n\r\r\n0\r\n\r\n", "\r\n\r"); /* CR/LF inside data are data */
    /* the bytes after the body are the next message */
    ch_ok_n("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 13, "abc");
    ch_ok_n("0\r\n\r\n0\r\n\r\n", 5, "");
}

static void test_chunked_extensions(void **state)
{
    ch_ok("3;foo=bar\r\nabc\r\n4 ; baz ;q=\"x\\\"y;\" ; k = v\r\ndefg\r\n0;last\r\n\r\n", "abcdefg");
    ch_ok("1;a;b;c=d\r\nx\r\n0\r\n\r\n", "x");
    ch_ok("1;a=\"\"\r\nx\r\n0\r\n\r\n", "x");
    ch_ok("1\t;a=\"\t \x80\\\t\"\t\r\nx\r\n0\r\n\r\n", "x");
    ch_err("5;\r\nhello\r\n0\r\n\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;=x\r\nhello\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;a=\r\nhello\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;a=\"x\r\nhello\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;a=\"x\\\r\nhello\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;a b\r\nhello\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;a=b c\r\nhello\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;a=\"b\"c\r\nhello\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;a\x01\r\nhello\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;a=(\r\nhello\r\n", HTTP1_E_BAD_CHUNK_EXT);
    ch_err("5;a\nhello\r\n", HTTP1_E_BARE_LF);
    ch_err("5;a=\"\n\"\r\nhello\r\n", HTTP1_E_BARE_LF);
    ch_err("5;a\rhello\r\n", HTTP1_E_BARE_CR);
}

static void test_chunked_trailers(void **state)
{
    ch_ok("5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\nZ: \t\x80 v\r\n\r\n", "hello");
    ch_err("0\r\n X: y\r\n\r\n", HTTP1_E_BAD_TRAILER);
    ch_err("0\r\nX y\r\n\r\n", HTTP1_E_BAD_TRAILER);
    ch_err("0\r\nX : y\r\n\r\n", HTTP1_E_BAD_TRAILER);
    ch_err("0\r\n: y\r\n\r\n", HTTP1_E_BAD_TRAILER);
    ch_err("0\r\nX: \x01\r\n\r\n", HTTP1_E_BAD_TRAILER);
    ch_err("0\r\nX: y\n\r\n", HTTP1_E_BARE_LF);
    ch_err("0\r\nX: y\r\n\n", HTTP1_E_BARE_LF);
    ch_err("0\r\nX\n", HTTP1_E_BARE_LF);
    ch_err("0\r\nX: y\rZ", HTTP1_E_BARE_CR);
    ch_err("0\r\n\rZ", HTTP1_E_BARE_CR);
    ch_err("0\r\n\n", HTTP1_E_BARE_LF);

    /* trailer limit: field lines with their CRLFs, not the final CRLF */
    const char *t = "0\r\nX: 12345\r\n\r\n"; /* 10 bytes of trailer */
    ch_check_n(t, strlen(t), 10, 15, true, "", 0);
    ch_check_n(t, strlen(t), 9, HTTP1_E_TRAILER_TOO_LARGE, false, NULL, 0);
    ch_check_n("0\r\n\r\n", 5, 0, 5, true, "", 0);
    ch_check_n("0\r\nX:\r\n\r\n", 9, 0, HTTP1_E_TRAILER_TOO_LARGE, false, NULL, 0);
}

static void test_chunked_sizes(void **state)
{
    ch_err("\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("x\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err(" 5\r\nhello\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("5 \r\nhello\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("5\t\r\nhello\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("-5\r\nhello\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("+5\r\nhello\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("0x5\r\nhello\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("5g\r\nhello\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err(";a\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("8000000000000000\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("10000000000000000\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("ffffffffffffffffff\r\n", HTTP1_E_BAD_CHUNK_SIZE);
    ch_err("5\nhello\r\n", HTTP1_E_BARE_LF);
    ch_err("5\rhello\r\n", HTTP1_E_BARE_CR);
    ch_err("\n", HTTP1_E_BARE_LF);
    /* the largest size is fine, the body is just long */
    const char *big = "7fffffffffffffff\r\nabc";
    ch_check_n(big, strlen(big), 0, (ssize_t)strlen(big), false, "abc", 3);
    const char *big0 = "00000000000000000000000000000001\r\nz\r\n0\r\n\r\n";
    ch_check_n(big0, strlen(big0), 0, (ssize_t)strlen(big0), true, "z", 1);
}

static void test_chunked_data_end(void **state)
{
    ch_err("5\r\nhelloX\r\n0\r\n\r\n", HTTP1_E_BAD_CHUNK_END);
    ch_err("5\r\nhello\n0\r\n\r\n", HTTP1_E_BARE_LF);
    ch_err("5\r\nhello\rX", HTTP1_E_BARE_CR);
    ch_err("5\r\nhello0\r\n\r\n", HTTP1_E_BAD_CHUNK_END);
    ch_err("3\r\nhello\r\n", HTTP1_E_BAD_CHUNK_END);
    /* the error's position: total counts the bytes accepted before it */
    struct chres x;
    size_t cut = 12;
    ch_run("5\r\nhello\r\nZ\r\n", 12, 0, &cut, 1, false, &x);
    assert_int_equal(x.r, HTTP1_E_BAD_CHUNK_SIZE);
    assert_int_equal(x.total, 10);
    free(x.payload);
}

static void test_chunked_incomplete(void **state)
{
    const char *s = "5\r\nhello\r\n0\r\n\r\n";
    for (size_t n = 0; n < strlen(s); n++)
        ch_check_n(s, n, 0, (ssize_t)n, false, NULL, 0);
}

static void test_chunked_line_limit(void **state)
{
    /* "5;" + name: the size line without its CRLF is exactly HTTP1_CHUNK_LINE_MAX bytes */
    static const char tail[] = "\r\nhello\r\n0\r\n\r\n";
    size_t n = HTTP1_CHUNK_LINE_MAX + strlen(tail);
    char *s = malloc(n + 2);
    assert_non_null(s);
    s[0] = '5';
    s[1] = ';';
    memset(s + 2, 'a', HTTP1_CHUNK_LINE_MAX - 2);
    memcpy(s + HTTP1_CHUNK_LINE_MAX, tail, sizeof tail);
    assert_int_equal(strlen(s), n);
    struct chres x;
    ch_run(s, n, 0, NULL, 0, true, &x);
    assert_int_equal(x.r, n);
    assert_true(x.done);
    assert_int_equal(x.payload_len, 5);
    free(x.payload);
    ch_run(s, n, 0, &n, 1, false, &x);
    assert_int_equal(x.r, n);

    /* one byte more */
    memset(s + 2, 'a', HTTP1_CHUNK_LINE_MAX - 1);
    memcpy(s + HTTP1_CHUNK_LINE_MAX + 1, tail, sizeof tail);
    n++;
    assert_int_equal(strlen(s), n);
    ch_run(s, n, 0, NULL, 0, false, &x);
    assert_int_equal(x.r, HTTP1_E_CHUNK_LINE_TOO_LONG);
    assert_int_equal(x.total, HTTP1_CHUNK_LINE_MAX);
    ch_run(s, n, 0, &n, 1, false, &x);
    assert_int_equal(x.r, HTTP1_E_CHUNK_LINE_TOO_LONG);
    /* leading zeros count too */
    memset(s, '0', HTTP1_CHUNK_LINE_MAX + 1);
    ch_run(s, n, 0, &n, 1, false, &x);
    assert_int_equal(x.r, HTTP1_E_CHUNK_LINE_TOO_LONG);
    memset(s, '0', HTTP1_CHUNK_LINE_MAX);
    s[HTTP1_CHUNK_LINE_MAX - 1] = '1';
    memcpy(s + HTTP1_CHUNK_LINE_MAX, "\r\nz\r\n0\r\n\r\n", 11);
    n = HTTP1_CHUNK_LINE_MAX + 10;
    ch_run(s, n, 0, NULL, 0, true, &x);
    assert_int_equal(x.r, n);
    assert_true(x.done);
    assert_int_equal(x.payload_len, 1);
    free(x.payload);
    free(s);
}

static void test_chunk_header(void **state)
{
    char out[HTTP1_CHUNK_HEADER_MAX];
    assert_int_equal(http1_chunk_header(out, 0), 3);
    assert_memory_equal(out, "0\r\n", 3);
    assert_int_equal(http1_chunk_header(out, 1), 3);
    assert_memory_equal(out, "1\r\n", 3);
    assert_int_equal(http1_chunk_header(out, 0x1a2b), 6);
    assert_memory_equal(out, "1a2b\r\n", 6);
    assert_int_equal(http1_chunk_header(out, 4096), 6);
    assert_memory_equal(out, "1000\r\n", 6);
    assert_int_equal(http1_chunk_header(out, UINT64_MAX), 18);
    assert_memory_equal(out, "ffffffffffffffff\r\n", 18);

    /* round trip: encode chunks of several sizes, decode them back */
    char body[4096], payload[2048];
    size_t n = 0, p = 0;
    for (size_t len = 1; len < 300; len += 37) {
        n += http1_chunk_header(body + n, len);
        for (size_t k = 0; k < len; k++, p++)
            body[n++] = payload[p] = (char)('a' + (p % 26));
        memcpy(body + n, HTTP1_CHUNK_END, 2);
        n += 2;
    }
    memcpy(body + n, HTTP1_CHUNK_LAST, 5);
    n += 5;
    struct chres x;
    ch_run(body, n, 0, &n, 1, true, &x);
    assert_int_equal(x.r, n);
    assert_true(x.done);
    assert_int_equal(x.payload_len, p);
    assert_memory_equal(x.payload, payload, p);
    free(x.payload);
}

/* ---- http1_head_maybe_complete: the scan a caller runs before parsing ---- */

/* The reference: whether buf[start..len) holds "\n\r\n" or "\n\n". */
static int mc_ref(const char *buf, size_t start, size_t len)
{
    for (size_t i = start; i + 1 < len; i++)
        if (buf[i] == '\n' &&
            (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')))
            return 1;
    return 0;
}

struct mc_case {
    const char *head; /* the last 1 comes with exactly these bytes */
    const char *tail; /* what follows the head */
    int parse;        /* 1 request, 2 response: a 1 the parser finds incomplete (leading
                       * empty lines) restarts the scan as viewer.c does; 0 no parser (bare LF) */
};

static const struct mc_case mc_cases[] = {
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "", 1},
    {"GET /x?y HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B:\r\n\r\n", "BODY\r\n\r\n", 1},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n", "\n\n", 1},
    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "", 2},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "\r\n\r\n", 2},
    {"GET / HTTP/1.1\nHost: a\n\n", "", 0},           /* bare LF */
    {"GET / HTTP/1.1\nHost: a\nX: \r\n\n", "x", 0},   /* "\r\n\n" holds "\n\n" */
    {"GET / HTTP/1.1\r\nHost: a\n\r\n", "\n\n", 0},   /* mixed */
    {"GET / HTTP/1.0\r\n\r\n", "", 1},                /* no header line */
    {"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "", 1}, /* one leading CRLF looks like nothing */
    {"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "", 1},
    {"\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n", "", 1},
    {"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", 1},
};

/* Feeds c in pieces of the sizes step() gives, each call on an exact-size
 * copy of the bytes so far (ASan catches a read past len), keeping from
 * across calls as a caller does; checks every answer against mc_ref(). */
static void mc_feed(const struct mc_case *c, size_t (*step)(void *), void *ud)
{
    char s[256];
    size_t end = strlen(c->head), total = end + strlen(c->tail), from = 0, start = 0, len = 0;
    assert_true(total < sizeof s);
    memcpy(s, c->head, end);
    memcpy(s + end, c->tail, total - end);
    s[total] = 0;
    while (len < total) {
        size_t n = step(ud);
        len = len + n > total ? total : len + n;
        char *buf = dup_n(s, len);
        size_t before = from;
        int m = http1_head_maybe_complete(buf, len, &from);
        int want = mc_ref(buf, start, len);
        if (m != want)
            fail_msg("\"%s\" at %zu bytes (from %zu): %d, want %d", s, len, before, m, want);
        if (from < before || from > len)
            fail_msg("\"%s\" at %zu bytes: from %zu -> %zu", s, len, before, from);
        if (!m) {
            if (len - from > 2) /* the next call rescans at most "\n\r" */
                fail_msg("\"%s\" at %zu bytes: from %zu", s, len, from);
            assert_true(len < end);
            free(buf);
            continue;
        }
        int rc = (int)end;
        if (c->parse == 1) {
            struct http1_request q;
            memset(&q, 0, sizeof q);
            rc = http1_parse_request(buf, len, &q, MAX_HEAD);
        } else if (c->parse == 2) {
            struct http1_response r;
            memset(&r, 0, sizeof r);
            rc = http1_parse_response(buf, len, &r, MAX_HEAD, HTTP1_METHOD_GET);
        }
        free(buf);
        if (rc == HTTP1_INCOMPLETE) { /* leading empty lines: scan on as viewer.c does */
            assert_true(len < end);
            from = start = len >= 2 ? len - 2 : 1;
            continue;
        }
        if (rc != (int)end || len < end || len - n >= end)
            fail_msg("\"%s\": 1 at %zu bytes (%zu before), parse %d, the head is %zu", s, len, len - n, rc,
                     end);
        return;
    }
    fail_msg("\"%s\": never complete", s);
}

static size_t mc_one(void *ud)
{
    return 1;
}

/* A small deterministic generator (LCG) of piece sizes 1 to 8. */
static size_t mc_random(void *ud)
{
    uint32_t *x = ud;
    *x = *x * 1664525u + 1013904223u;
    return 1 + (*x >> 24) % 8;
}

static void test_head_maybe_complete(void **state)
{
    for (size_t i = 0; i < sizeof mc_cases / sizeof mc_cases[0]; i++) {
        mc_feed(&mc_cases[i], mc_one, NULL);
        for (uint32_t seed = 1; seed <= 200; seed++) {
            uint32_t x = seed * 2654435761u;
            mc_feed(&mc_cases[i], mc_random, &x);
        }
    }

    /* whole buffers, from 0 */
    static const struct {
        const char *s;
        int want;
    } whole[] = {
        {"", 0},         {"\n", 0},     {"\n\n", 1},   {"\r\n", 0},     {"\r\n\r", 0},
        {"\r\n\r\n", 1}, {"\n\r", 0},   {"\n\r\n", 1}, {"\n\r\r\n", 0}, {"a\r\nb", 0},
        {"\r\r\n", 0},   {"a\n \n", 0}, {"a\nb\n", 0}, {"a\n\nb", 1},   {"GET / HTTP/1.1\r\nHost: a\r\n", 0},
    };
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        size_t len = strlen(whole[i].s), from = 0;
        char *buf = dup_n(whole[i].s, len);
        int m = http1_head_maybe_complete(buf, len, &from);
        if (m != whole[i].want)
            fail_msg("\"%s\": %d, want %d", whole[i].s, m, whole[i].want);
        assert_true(from <= len);
        free(buf);
    }

    /* from past an end: it is not looked at again */
    size_t from = 3;
    assert_int_equal(http1_head_maybe_complete("\n\nabcd", 6, &from), 0);
    assert_int_equal(from, 4);
}

/* A 64 KiB head sent one byte at a time is scanned about once, not once per
 * byte: the bytes each call may look at (len - from before it) add up to a
 * small multiple of the head. */
static void test_head_maybe_complete_linear(void **state)
{
    enum { SIZE = 64 * 1024 };
    char *head = malloc(SIZE);
    assert_non_null(head);
    size_t n = (size_t)snprintf(head, SIZE, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int k = 0; n + 2000 < SIZE; k++) { /* 1 KiB lines, well under HTTP1_MAX_HEADERS */
        n += (size_t)snprintf(head + n, SIZE - n, "X-H-%d: ", k);
        memset(head + n, 'a' + k % 26, 1000);
        memcpy(head + n + 1000, "\r\n", 2);
        n += 1002;
    }
    memcpy(head + n, "X-Last: ", 8); /* a last line up to the end */
    memset(head + n + 8, 'z', SIZE - 4 - n - 8);
    memcpy(head + SIZE - 4, "\r\n\r\n", 4);
    struct http1_request q;
    memset(&q, 0, sizeof q);
    assert_int_equal(http1_parse_request(head, SIZE, &q, SIZE), SIZE); /* a real head */
    size_t from = 0, scanned = 0, calls_moved = 0;
    for (size_t len = 1; len <= SIZE; len++) {
        size_t before = from;
        int m = http1_head_maybe_complete(head, len, &from);
        scanned += len - before;
        if (len < SIZE) {
            if (m)
                fail_msg("complete at %zu of %d bytes", len, SIZE);
            assert_true(from >= before && from <= len && len - from <= 2);
            calls_moved += from > before;
        } else {
            assert_int_equal(m, 1);
        }
    }
    if (scanned > 4 * (size_t)SIZE)
        fail_msg("%zu bytes scanned for a %d-byte head", scanned, SIZE);
    assert_true(calls_moved >= SIZE - 3);
    free(head);
}

/* The resuming parsers give, at every length of a growing buffer, what the
 * plain parsers give once the head is complete or broken; before that they
 * may say "incomplete" where the plain one would too. */
static void check_from_request(const char *msg, size_t max)
{
    size_t len = strlen(msg), scan = 0;
    int final = HTTP1_INCOMPLETE;
    for (size_t k = 1; k <= len; k++) {
        char *buf = malloc(k);
        memcpy(buf, msg, k);
        struct http1_request a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        int plain = http1_parse_request(buf, k, &a, max);
        int from = http1_parse_request_from(buf, k, &b, max, &scan);
        free(buf);
        if (from != HTTP1_INCOMPLETE) {
            assert_int_equal(from, plain);
            final = from;
            break;
        }
        /* waiting is allowed only where the plain parser has no final answer
         * within the bytes scanned, or the head is still a valid prefix */
        if (plain != HTTP1_INCOMPLETE)
            assert_true(plain < 0);
    }
    struct http1_request c;
    memset(&c, 0, sizeof c);
    assert_int_equal(final, http1_parse_request(msg, len, &c, max));
}

static void test_parse_from(void **state)
{
    (void)state;
    check_from_request("GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n", 8192);
    check_from_request("\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", 8192);
    check_from_request("GET /a HTTP/1.1\nHost: x\n\n", 8192);       /* bare LF: 400 */
    check_from_request("G@T /a HTTP/1.1\r\nHost: x\r\n\r\n", 8192); /* refused at the first piece */
    check_from_request("GET /a HTTP/1.1\r\nHost: x\r\nX-Long: aaaaaaaaaaaaaaaa\r\n\r\n", 40); /* 431 */
    /* a bad method is refused with the first piece, without waiting for the end */
    size_t scan = 0;
    struct http1_request r;
    memset(&r, 0, sizeof r);
    assert_int_equal(http1_parse_request_from("G@T /", 5, &r, 8192, &scan), HTTP1_E_BAD_METHOD);
    /* responses too */
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    size_t rlen = strlen(resp);
    scan = 0;
    int rc = HTTP1_INCOMPLETE;
    for (size_t k = 1; k <= rlen && rc == HTTP1_INCOMPLETE; k++) {
        struct http1_response a;
        memset(&a, 0, sizeof a);
        rc = http1_parse_response_from(resp, k, &a, 8192, HTTP1_METHOD_GET, &scan);
        if (rc > 0)
            assert_int_equal(a.status, 200);
    }
    assert_int_equal(rc, (int)(rlen - 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_with_query),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_duplicate_content_length),
        cmocka_unit_test(test_chunked_request),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_asterisk_and_authority),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_leading_empty_lines),
        cmocka_unit_test(test_header_values),
        cmocka_unit_test(test_many_headers),
        cmocka_unit_test(test_reuse_per_connection),
        cmocka_unit_test(test_head_size_limit),
        cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_char_classes),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_bare_cr),
        cmocka_unit_test(test_obs_fold),
        cmocka_unit_test(test_header_names),
        cmocka_unit_test(test_header_value_controls),
        cmocka_unit_test(test_bad_method),
        cmocka_unit_test(test_bad_target),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_content_length_errors),
        cmocka_unit_test(test_cl_and_te),
        cmocka_unit_test(test_transfer_encoding_errors),
        cmocka_unit_test(test_error_status_and_strings),
        cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_response_no_body),
        cmocka_unit_test(test_response_versions_and_reason),
        cmocka_unit_test(test_response_framing_errors),
        cmocka_unit_test(test_response_limits),
        cmocka_unit_test(test_find_header),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_chunked_basic),
        cmocka_unit_test(test_chunked_extensions),
        cmocka_unit_test(test_chunked_trailers),
        cmocka_unit_test(test_chunked_sizes),
        cmocka_unit_test(test_chunked_data_end),
        cmocka_unit_test(test_chunked_incomplete),
        cmocka_unit_test(test_chunked_line_limit),
        cmocka_unit_test(test_chunk_header),
        cmocka_unit_test(test_head_maybe_complete),
        cmocka_unit_test(test_head_maybe_complete_linear),
        cmocka_unit_test(test_parse_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
