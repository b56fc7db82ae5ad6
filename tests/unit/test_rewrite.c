/* node/rewrite: the exact bytes of the request head a worker gets and of the
 * response head a viewer gets, built from heads parsed by node/http1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>

#include "node/http1.h"
#include "node/rewrite.h"

/* large (100 headers): not on the stack */
static struct http1_request g_req;
static struct http1_response g_resp;

/* An exact-size heap copy of head, parsed whole into g_req. */
static char *parse_req(const char *head)
{
    size_t len = strlen(head);
    char *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, head, len);
    memset(&g_req, 0, sizeof g_req);
    int rc = http1_parse_request(buf, len, &g_req, 65536);
    if (rc != (int)len)
        fail_msg("request did not parse (%d, %s): %s", rc, http1_strerror(rc), head);
    return buf;
}

/* The evbuffer's bytes as a NUL-terminated heap string; frees b. */
static char *take(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    assert_non_null(s);
    if (n)
        memcpy(s, evbuffer_pullup(b, -1), n);
    s[n] = 0;
    evbuffer_free(b);
    return s;
}

/* Frees got, then fails unless it equals want (so a failure leaks nothing). */
static void assert_text_free(char *got, const char *want)
{
    int same = strcmp(got, want) == 0;
    if (!same)
        print_message("got:\n%s\nwant:\n%s\n", got, want);
    free(got);
    if (!same)
        fail_msg("the head differs");
}

/* What the worker gets for request head with x, target, peer "1.2.3.4". */
static void check_req(const char *head, struct rewrite_request x, const char *want)
{
    char *buf = parse_req(head);
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    evbuffer_add(b, "prefix|", 7); /* appended to, never cleared */
    if (!x.peer_ip)
        x.peer_ip = "1.2.3.4";
    if (!x.worker_id)
        x.worker_id = "w1";
    rewrite_request_head(b, &g_req, &x);
    free(buf);
    char *got = take(b);
    assert_memory_equal(got, "prefix|", 7);
    memmove(got, got + 7, strlen(got + 7) + 1);
    assert_text_free(got, want);
}

/* The usual case: path mode ("/w1" + target), kept alive. */
static struct rewrite_request by_path(const char *target)
{
    struct rewrite_request x = {
        .target = target, .target_len = strlen(target), .path_mode = 1, .keep_alive = 1};
    return x;
}

static struct rewrite_request by_domain(const char *target)
{
    struct rewrite_request x = {
        .target = target, .target_len = strlen(target), .path_mode = 0, .keep_alive = 1};
    return x;
}

#define XF(host) "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: " host "\r\n"
#define OP(path) "X-Webhooktunnel-Original-Path: " path "\r\nX-Websocktunnel-Original-Path: " path "\r\n"

/* ---- requests ---- */

static void test_request_simple(void **state)
{
    /* path mode: the original-path headers */
    check_req("GET /w1/a?b=1 HTTP/1.1\r\nHost: node.test\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n",
              by_path("/a?b=1"),
              "GET /a?b=1 HTTP/1.1\r\nHost: node.test\r\nUser-Agent: t/1\r\nAccept: */*\r\n" XF("node.test")
                  OP("/w1/a?b=1") "\r\n");
    /* domain mode: none */
    check_req("GET /a?b=1 HTTP/1.1\r\nHost: w1.example.com:8080\r\nAccept: */*\r\n\r\n", by_domain("/a?b=1"),
              "GET /a?b=1 HTTP/1.1\r\nHost: w1.example.com:8080\r\nAccept: */*\r\n" XF(
                  "w1.example.com:8080") "\r\n");
    /* header names and values as received (values trimmed), order kept, method kept */
    check_req(
        "DELETE /w1/ HTTP/1.1\r\nhost:   node.test  \r\nx-lower: a\r\nX-Empty:\r\nX-Multi: 1\r\n"
        "X-Multi: 2\r\n\r\n",
        by_path("/"),
        "DELETE / HTTP/1.1\r\nhost: node.test\r\nx-lower: a\r\nX-Empty: \r\nX-Multi: 1\r\nX-Multi: 2\r\n" XF(
            "node.test") OP("/w1/") "\r\n");
    /* https */
    struct rewrite_request x = by_domain("/");
    x.tls = 1;
    check_req(
        "GET / HTTP/1.1\r\nHost: w1.example.com\r\n\r\n", x,
        "GET / HTTP/1.1\r\nHost: w1.example.com\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: w1.example.com\r\n\r\n");
    /* an IPv6 peer */
    x = by_path("/x");
    x.peer_ip = "2001:db8::1";
    check_req("GET /w1/x HTTP/1.1\r\nHost: n\r\n\r\n", x,
              "GET /x HTTP/1.1\r\nHost: n\r\nX-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: http\r\n"
              "X-Forwarded-Host: n\r\n" OP("/w1/x") "\r\n");
    /* the absolute-form's authority is the forwarded host */
    check_req("GET http://w1.example.com/p?q HTTP/1.1\r\nHost: w1.example.com\r\n\r\n", by_domain("/p?q"),
              "GET /p?q HTTP/1.1\r\nHost: w1.example.com\r\n" XF("w1.example.com") "\r\n");
}

/* From a trusted proxy (WHT_TRUSTED_PROXIES): the X-Forwarded-For it sent is
 * kept and its address appended. */
static void test_request_forwarded_for(void **state)
{
    struct rewrite_request x = by_path("/");
    x.keep_xff = 1;
    check_req(
        "GET /w1 HTTP/1.1\r\nHost: n\r\nX-Forwarded-For: a\r\nAccept: x\r\n\r\n", x,
        "GET / HTTP/1.1\r\nHost: n\r\nAccept: x\r\nX-Forwarded-For: a, 1.2.3.4\r\nX-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: n\r\n" OP("/w1") "\r\n");
    check_req("GET /w1 HTTP/1.1\r\nHost: n\r\nx-forwarded-for:  10.0.0.1, 10.0.0.2 \r\n\r\n", x,
              "GET / HTTP/1.1\r\nHost: n\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 1.2.3.4\r\n"
              "X-Forwarded-Proto: http\r\nX-Forwarded-Host: n\r\n" OP("/w1") "\r\n");
    /* an empty line adds nothing; none at all: the address alone */
    check_req("GET /w1 HTTP/1.1\r\nHost: n\r\nX-Forwarded-For:\r\n\r\n", x,
              "GET / HTTP/1.1\r\nHost: n\r\n" XF("n") OP("/w1") "\r\n");
    check_req("GET /w1 HTTP/1.1\r\nHost: n\r\n\r\n", x,
              "GET / HTTP/1.1\r\nHost: n\r\n" XF("n") OP("/w1") "\r\n");
}

/* From anyone else (the default): whatever X-Forwarded-For the viewer sent
 * is replaced by its address, never appended to (a viewer could otherwise
 * make the worker believe any address). */
static void test_request_forwarded_for_replaced(void **state)
{
    check_req("GET /w1 HTTP/1.1\r\nHost: n\r\nX-Forwarded-For: 6.6.6.6\r\nAccept: x\r\n\r\n", by_path("/"),
              "GET / HTTP/1.1\r\nHost: n\r\nAccept: x\r\n" XF("n") OP("/w1") "\r\n");
    check_req("GET /a HTTP/1.1\r\nHost: w1.example.com\r\nx-forwarded-for: 6.6.6.6, 7.7.7.7\r\n"
              "X-FORWARDED-FOR: 8.8.8.8\r\n\r\n",
              by_domain("/a"), "GET /a HTTP/1.1\r\nHost: w1.example.com\r\n" XF("w1.example.com") "\r\n");
    struct rewrite_request x = by_path("/");
    x.peer_ip = "2001:db8::9";
    check_req("GET /w1 HTTP/1.1\r\nHost: n\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n", x,
              "GET / HTTP/1.1\r\nHost: n\r\nX-Forwarded-For: 2001:db8::9\r\nX-Forwarded-Proto: http\r\n"
              "X-Forwarded-Host: n\r\n" OP("/w1") "\r\n");
    /* a Connection-listed X-Forwarded-For is dropped either way */
    x = by_path("/");
    x.keep_xff = 1;
    check_req(
        "GET /w1 HTTP/1.1\r\nHost: n\r\nConnection: x-forwarded-for\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n", x,
        "GET / HTTP/1.1\r\nHost: n\r\n" XF("n") OP("/w1") "\r\n");
}

/* Several X-Forwarded-For lines from a trusted proxy are one list (RFC
 * 9110 5.3): every hop listed stays, in order, before the node's peer (as
 * Go's httputil.ReverseProxy does). */
static void test_request_forwarded_for_several_lines(void **state)
{
    struct rewrite_request x = by_path("/");
    x.keep_xff = 1;
    check_req("GET /w1 HTTP/1.1\r\nHost: n\r\nX-Forwarded-For: a\r\nX-Forwarded-For: b, c\r\n\r\n", x,
              "GET / HTTP/1.1\r\nHost: n\r\nX-Forwarded-For: a, b, c, 1.2.3.4\r\nX-Forwarded-Proto: http\r\n"
              "X-Forwarded-Host: n\r\n" OP("/w1") "\r\n");
}

static void test_request_node_headers_not_forwarded(void **state)
{
    static const char *head = "GET /w1/x HTTP/1.1\r\nHost: n\r\nX-Forwarded-Proto: https\r\n"
                              "X-Forwarded-Host: evil.test\r\nX-Webhooktunnel-Original-Path: /evil\r\n"
                              "x-websocktunnel-original-path: /evil\r\nX-Keep: 1\r\n\r\n";
    check_req(head, by_path("/x"), "GET /x HTTP/1.1\r\nHost: n\r\nX-Keep: 1\r\n" XF("n") OP("/w1/x") "\r\n");
    /* not even in domain mode, where the node writes no original path */
    check_req(head, by_domain("/w1/x"), "GET /w1/x HTTP/1.1\r\nHost: n\r\nX-Keep: 1\r\n" XF("n") "\r\n");
}

static void test_request_hop_by_hop(void **state)
{
    check_req("GET /w1/x HTTP/1.1\r\nHost: n\r\nConnection: keep-alive, foo\r\nFoo: 1\r\nfoo: 2\r\n"
              "Bar: 3\r\nTE: trailers\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
              "Trailer: X-T\r\nProxy-Authorization: Basic eDp5\r\nUpgrade: websocket\r\n\r\n",
              by_path("/x"), "GET /x HTTP/1.1\r\nHost: n\r\nBar: 3\r\n" XF("n") OP("/w1/x") "\r\n");
    /* Connection naming Host or Content-Length strips neither */
    check_req("POST /w1/x HTTP/1.1\r\nHost: n\r\nConnection: host, content-length, x-a\r\nX-A: 1\r\n"
              "Content-Length: 2\r\n\r\n",
              by_path("/x"),
              "POST /x HTTP/1.1\r\nHost: n\r\n" XF("n") OP("/w1/x") "Content-Length: 2\r\n\r\n");
    /* the viewer's "Connection: close" is the caller's keep_alive 0 */
    struct rewrite_request x = by_path("/x");
    x.keep_alive = 0;
    check_req("GET /w1/x HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n", x,
              "GET /x HTTP/1.1\r\nHost: n\r\n" XF("n") OP("/w1/x") "Connection: close\r\n\r\n");
}

static void test_request_body_framing(void **state)
{
    check_req("POST /w1/hook HTTP/1.1\r\nContent-Length: 5\r\nHost: n\r\nContent-Type: text/plain\r\n\r\n",
              by_path("/hook"),
              "POST /hook HTTP/1.1\r\nHost: n\r\nContent-Type: text/plain\r\n" XF("n")
                  OP("/w1/hook") "Content-Length: 5\r\n\r\n");
    /* duplicates of one value: one header */
    check_req("PUT /w1/a HTTP/1.1\r\nHost: n\r\ncontent-length: 12\r\nContent-Length: 12\r\n\r\n",
              by_path("/a"),
              "PUT /a HTTP/1.1\r\nHost: n\r\n" XF("n") OP("/w1/a") "Content-Length: 12\r\n\r\n");
    check_req("POST /w1/a HTTP/1.1\r\nHost: n\r\nContent-Length: 0\r\n\r\n", by_path("/a"),
              "POST /a HTTP/1.1\r\nHost: n\r\n" XF("n") OP("/w1/a") "Content-Length: 0\r\n\r\n");
    check_req("POST /w1/a HTTP/1.1\r\nHost: n\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n", by_path("/a"),
              "POST /a HTTP/1.1\r\nHost: n\r\nX-A: 1\r\n" XF("n")
                  OP("/w1/a") "Transfer-Encoding: chunked\r\n\r\n");
    check_req("POST /w1/a HTTP/1.1\r\nHost: n\r\nTransfer-Encoding: Chunked\r\n\r\n", by_path("/a"),
              "POST /a HTTP/1.1\r\nHost: n\r\n" XF("n") OP("/w1/a") "Transfer-Encoding: chunked\r\n\r\n");
    /* framing then close */
    struct rewrite_request x = by_domain("/a");
    x.keep_alive = 0;
    check_req(
        "POST /a HTTP/1.1\r\nHost: w1.e\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", x,
        "POST /a HTTP/1.1\r\nHost: w1.e\r\n" XF("w1.e") "Content-Length: 3\r\nConnection: close\r\n\r\n");
}

static void test_request_upgrade(void **state)
{
    static const char *ws = "GET /w1/chat HTTP/1.1\r\nHost: n\r\nConnection: keep-alive, Upgrade\r\n"
                            "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n";
    static const char *want =
        "GET /chat HTTP/1.1\r\nHost: n\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n" XF("n")
            OP("/w1/chat") "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    check_req(ws, by_path("/chat"), want);
    struct rewrite_request x = by_path("/chat");
    x.keep_alive = 0; /* an upgrade never gets "Connection: close" */
    check_req(ws, x, want);
    /* the Upgrade value as sent */
    check_req("GET /w1/ HTTP/1.1\r\nHost: n\r\nConnection: upgrade\r\nupgrade: WebSocket, h2c\r\n\r\n",
              by_path("/"),
              "GET / HTTP/1.1\r\nHost: n\r\n" XF("n")
                  OP("/w1/") "Connection: Upgrade\r\nUpgrade: WebSocket, h2c\r\n\r\n");
}

static void test_request_http10(void **state)
{
    /* no Host: the worker's id is the Host; no X-Forwarded-Host */
    struct rewrite_request x = by_path("/x");
    x.worker_id = "w-7";
    x.keep_alive = 0;
    check_req("GET /w-7/x HTTP/1.0\r\nUser-Agent: old\r\n\r\n", x,
              "GET /x HTTP/1.1\r\nUser-Agent: old\r\nHost: w-7\r\nX-Forwarded-For: 1.2.3.4\r\n"
              "X-Forwarded-Proto: http\r\n" OP("/w-7/x") "Connection: close\r\n\r\n");
    /* with Host: kept; with keep-alive: the node's own connection to the worker stays */
    x.keep_alive = 1;
    check_req("POST /w-7/x HTTP/1.0\r\nHost: n\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", x,
              "POST /x HTTP/1.1\r\nHost: n\r\n" XF("n") OP("/w-7/x") "Content-Length: 1\r\n\r\n");
}

/* RFC 9112 3.2.2: a proxy forwarding an absolute-form request "MUST generate
 * a new Host field value based on the received request-target rather than
 * forward the received Host field value". The node routes on the authority
 * (w1), so the worker must not see another host in Host. */
static void test_request_absolute_form_host(void **state)
{
    char *buf = parse_req("GET http://w1.example.com/p HTTP/1.1\r\nHost: other.test\r\n\r\n");
    struct evbuffer *b = evbuffer_new();
    struct rewrite_request x = by_domain("/p");
    x.peer_ip = "1.2.3.4";
    x.worker_id = "w1";
    rewrite_request_head(b, &g_req, &x);
    free(buf);
    char *got = take(b);
    int ok = strstr(got, "\r\nHost: w1.example.com\r\n") && !strstr(got, "other.test");
    if (!ok)
        print_message("the worker gets the Host the node did not route on:\n%s\n", got);
    free(got);
    assert_true(ok);
}

/* ---- responses ---- */

/* What a viewer of a request with method gets for the worker's response
 * head; keep_alive in and the expected value after. */
static void check_resp(const char *head, enum http1_method method, int dechunk, int keep_alive,
                       int want_keep_alive, const char *want)
{
    size_t len = strlen(head);
    char *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, head, len);
    memset(&g_resp, 0, sizeof g_resp);
    int rc = http1_parse_response(buf, len, &g_resp, 65536, method);
    if (rc != (int)len)
        fail_msg("response did not parse (%d, %s): %s", rc, http1_strerror(rc), head);
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    int ka = keep_alive;
    rewrite_response_head(b, &g_resp, method, dechunk, &ka);
    free(buf);
    assert_text_free(take(b), want);
    assert_int_equal(ka, want_keep_alive);
}

static void test_response_length(void **state)
{
    check_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n", HTTP1_METHOD_GET,
               0, 1, 1, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n");
    check_resp("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", HTTP1_METHOD_POST, 0, 1, 1,
               "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    check_resp("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", HTTP1_METHOD_GET, 0, 1, 1,
               "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n");
    /* HTTP/1.0 worker, empty reason, names as sent */
    check_resp("HTTP/1.0 200 \r\nContent-Length: 2\r\nx-a: b\r\n\r\n", HTTP1_METHOD_GET, 0, 1, 1,
               "HTTP/1.1 200 \r\nx-a: b\r\nContent-Length: 2\r\n\r\n");
    /* the viewer's connection closes after it */
    check_resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", HTTP1_METHOD_GET, 0, 0, 0,
               "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n");
    /* hop-by-hop headers from the worker are dropped; its close is not the viewer's */
    check_resp("HTTP/1.1 200 OK\r\nConnection: close, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=3\r\n"
               "Proxy-Authenticate: Basic\r\nTrailer: X-T\r\nX-End: 1\r\nContent-Length: 3\r\n\r\n",
               HTTP1_METHOD_GET, 0, 1, 1, "HTTP/1.1 200 OK\r\nX-End: 1\r\nContent-Length: 3\r\n\r\n");
}

static void test_response_no_body(void **state)
{
    /* HEAD and 304: the worker's Content-Length describes a body not sent */
    check_resp("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n", HTTP1_METHOD_HEAD, 0, 1, 1,
               "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n");
    check_resp("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n", HTTP1_METHOD_GET, 0,
               1, 1, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n");
    check_resp("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", HTTP1_METHOD_GET, 0, 0, 0,
               "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nConnection: close\r\n\r\n");
    /* HEAD of a chunked resource: nothing about framing is added */
    check_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_METHOD_HEAD, 0, 1, 1,
               "HTTP/1.1 200 OK\r\n\r\n");
    /* 204: no body, no framing header */
    check_resp("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", HTTP1_METHOD_DELETE, 0, 1, 1,
               "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
}

static void test_response_chunked(void **state)
{
    check_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n", HTTP1_METHOD_GET, 0, 1, 1,
               "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    check_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_METHOD_POST, 0, 0, 0,
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    /* an HTTP/1.0 viewer: the bare payload, delimited by the close */
    check_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n", HTTP1_METHOD_GET, 1, 1, 0,
               "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n");
    check_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_METHOD_GET, 1, 0, 0,
               "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
}

static void test_response_close_delimited(void **state)
{
    check_resp("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", HTTP1_METHOD_GET, 0, 1, 0,
               "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n");
    check_resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", HTTP1_METHOD_GET, 0, 1, 0,
               "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    check_resp("HTTP/1.1 500 Internal Server Error\r\n\r\n", HTTP1_METHOD_GET, 0, 0, 0,
               "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n");
}

static void test_response_upgrade(void **state)
{
    static const char *head =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    static const char *want =
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: "
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    check_resp(head, HTTP1_METHOD_GET, 0, 1, 1, want);
    check_resp(head, HTTP1_METHOD_GET, 0, 0, 0, want); /* no "Connection: close" on a 101 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_simple),
        cmocka_unit_test(test_request_forwarded_for),
        cmocka_unit_test(test_request_forwarded_for_replaced),
        cmocka_unit_test(test_request_forwarded_for_several_lines),
        cmocka_unit_test(test_request_node_headers_not_forwarded),
        cmocka_unit_test(test_request_hop_by_hop),
        cmocka_unit_test(test_request_body_framing),
        cmocka_unit_test(test_request_upgrade),
        cmocka_unit_test(test_request_http10),
        cmocka_unit_test(test_request_absolute_form_host),
        cmocka_unit_test(test_response_length),
        cmocka_unit_test(test_response_no_body),
        cmocka_unit_test(test_response_chunked),
        cmocka_unit_test(test_response_close_delimited),
        cmocka_unit_test(test_response_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
