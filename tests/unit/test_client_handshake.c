/* whclient's checks of the node's answer to the registration request
 * (client/handshake.c): the 101 (tokens, Sec-WebSocket-Accept, extensions),
 * the client URL and the extension flag, and a 401's reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client/handshake.c"

/* RFC 6455's example key and its accept value. */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define H(n, v)                                                                                              \
    {                                                                                                        \
        .name = n, .name_len = sizeof n - 1, .value = v, .value_len = sizeof v - 1                           \
    }

static void test_valid_101(void **state)
{
    struct client_hs_result r;
    struct ws_header h[] = {
        H("Upgrade", "websocket"),
        H("Connection", "Upgrade"),
        H("Sec-WebSocket-Accept", ACCEPT),
        H("X-Whtunnel-Ext", " 1 "),
        H("x-websocktunnel-client-url", "https://w1.tun.example/"),
        H("X-Webhooktunnel-Client-Url", "https://old.example/w1"),
    };
    client_hs_check(101, h, 6, KEY, &r);
    assert_int_equal(r.status, 101);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.ext, 1);
    assert_string_equal(r.url, "https://w1.tun.example/");
    assert_string_equal(r.refusal, "");
    /* the 2017 server's field when the 2019 one is absent; no extension */
    client_hs_check(101, h, 3, KEY, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.ext, 0);
    assert_string_equal(r.url, "");
    struct ws_header old[] = {h[0], h[1], h[2], h[5], H("X-Whtunnel-Ext", "10")};
    client_hs_check(101, old, 5, KEY, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.ext, 0);
    assert_string_equal(r.url, "https://old.example/w1");
    /* tokens among several, any case */
    struct ws_header multi[] = {H("UPGRADE", "WebSocket"), H("connection", "close"),
                                H("Connection", "keep-alive, upgrade"), H("SEC-WEBSOCKET-ACCEPT", ACCEPT)};
    client_hs_check(101, multi, 4, KEY, &r);
    assert_int_equal(r.err, 0);
}

static void test_invalid_101(void **state)
{
    struct client_hs_result r;
    struct ws_header wrong[] = {H("Upgrade", "websocket"), H("Connection", "Upgrade"),
                                H("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOp="),
                                H("x-websocktunnel-client-url", "https://w1/")};
    client_hs_check(101, wrong, 4, KEY, &r);
    assert_int_equal(r.err, WS_E_BAD_ACCEPT);
    assert_string_equal(r.why, "missing or wrong Sec-WebSocket-Accept");
    assert_string_equal(r.url, ""); /* nothing is taken from a refused response */
    client_hs_check(101, wrong, 2, KEY, &r);
    assert_int_equal(r.err, WS_E_BAD_ACCEPT); /* missing */
    struct ws_header two[] = {H("Upgrade", "websocket"), H("Connection", "Upgrade"),
                              H("Sec-WebSocket-Accept", ACCEPT), H("Sec-WebSocket-Accept", ACCEPT)};
    client_hs_check(101, two, 4, KEY, &r);
    assert_int_equal(r.err, WS_E_BAD_ACCEPT);
    struct ws_header noup[] = {H("Upgrade", "h2c"), H("Connection", "Upgrade"),
                               H("Sec-WebSocket-Accept", ACCEPT)};
    client_hs_check(101, noup, 3, KEY, &r);
    assert_int_equal(r.err, WS_E_NOT_UPGRADE);
    client_hs_check(101, noup + 1, 2, KEY, &r);
    assert_int_equal(r.err, WS_E_NOT_UPGRADE);
    struct ws_header ext[] = {H("Upgrade", "websocket"), H("Connection", "Upgrade"),
                              H("Sec-WebSocket-Accept", ACCEPT),
                              H("Sec-WebSocket-Extensions", "permessage-deflate")};
    client_hs_check(101, ext, 4, KEY, &r);
    assert_int_equal(r.err, WS_E_EXTENSION);
    client_hs_check(101, NULL, 0, KEY, &r);
    assert_int_equal(r.err, WS_E_NOT_UPGRADE);
    assert_string_equal(r.why, ws_strerror(WS_E_NOT_UPGRADE));
    /* a body framing on a 101 would make lws rewrite or cut the WebSocket */
    struct ws_header framed[] = {H("Upgrade", "websocket"), H("Connection", "Upgrade"),
                                 H("Sec-WebSocket-Accept", ACCEPT), H("Content-Length", "0")};
    client_hs_check(101, framed, 4, KEY, &r);
    assert_int_equal(r.err, WS_E_NOT_UPGRADE);
    assert_string_equal(r.why, "a 101 response with Content-Length or Transfer-Encoding");
    framed[3] = (struct ws_header)H("transfer-encoding", "chunked");
    client_hs_check(101, framed, 4, KEY, &r);
    assert_int_equal(r.err, WS_E_NOT_UPGRADE);
    client_hs_check(101, framed, 3, KEY, &r);
    assert_int_equal(r.err, 0);
    assert_null(r.why);
}

static void test_other_statuses(void **state)
{
    struct client_hs_result r;
    struct ws_header h[] = {
        H("Upgrade", "websocket"),
        H("Connection", "Upgrade"),
        H("Sec-WebSocket-Accept", ACCEPT),
        H("WWW-Authenticate",
          "Bearer error=\"invalid_token\", error_description=\"token expired (make a new one)\""),
        H("x-websocktunnel-client-url", "https://w1/"),
    };
    int statuses[] = {0, 100, 200, 204, 301, 400, 404, 426, 500, 504};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
        client_hs_check(statuses[i], h, 5, KEY, &r);
        assert_int_equal(r.status, statuses[i]);
        assert_int_equal(r.err, WS_E_BAD_STATUS);
        assert_string_equal(r.why, "not switching to a WebSocket");
        assert_string_equal(r.refusal, ""); /* a reason only for a 401 */
        assert_string_equal(r.url, "");
        assert_int_equal(r.ext, 0);
    }
    client_hs_check(401, h, 5, KEY, &r);
    assert_int_equal(r.err, WS_E_BAD_STATUS);
    assert_string_equal(r.refusal, "token expired (make a new one)");
    client_hs_check(401, h, 3, KEY, &r);
    assert_string_equal(r.refusal, "");
}

/* The reason of every prefix of a WWW-Authenticate value: "" until the
 * closing quote has arrived, then the whole reason. */
static void test_refusal_every_split(void **state)
{
    const char v[] =
        "Bearer realm=\"x\", error=\"invalid_token\", error_description=\"bad \\ sig\" , x=\"y\"";
    const char *want = "bad \\ sig";
    const char *close = strstr(v, "sig\"") + 3;
    char out[CLIENT_MAX_REFUSAL];
    for (size_t n = 0; n <= sizeof v - 1; n++) {
        memset(out, 'Z', sizeof out);
        client_refusal_parse(v, n, out, sizeof out);
        assert_string_equal(out, n > (size_t)(close - v) ? want : "");
    }
    /* truncated to cap - 1, at every cap */
    for (size_t cap = 1; cap <= strlen(want) + 2; cap++) {
        client_refusal_parse(v, sizeof v - 1, out, cap);
        assert_int_equal(strlen(out), cap - 1 < strlen(want) ? cap - 1 : strlen(want));
        assert_memory_equal(out, want, strlen(out));
    }
}

static void test_refusal_ugly(void **state)
{
    char out[16];
    client_refusal_parse(NULL, 0, out, sizeof out);
    assert_string_equal(out, "");
    client_refusal_parse("error_description=\"", 19, out, sizeof out);
    assert_string_equal(out, "");
    client_refusal_parse("error_description=\"\"", 20, out, sizeof out);
    assert_string_equal(out, "");
    /* control bytes and non-ASCII become '?': the reason goes to the log */
    const char ctl[] = "error_description=\"a\x1b[2Jb\xc3\xa9\x7f\"";
    client_refusal_parse(ctl, sizeof ctl - 1, out, sizeof out);
    assert_string_equal(out, "a?[2Jb???");
    /* a NUL inside is a byte like the others */
    const char nul[] = "error_description=\"a\0b\"";
    client_refusal_parse(nul, sizeof nul - 1, out, sizeof out);
    assert_string_equal(out, "a?b");
    /* the first parameter wins; no description without its quote */
    const char two[] = "error_description=x, error_description=\"y\", error_description=\"z\"";
    client_refusal_parse(two, sizeof two - 1, out, sizeof out);
    assert_string_equal(out, "y");
}

static void test_url_made_printable(void **state)
{
    struct client_hs_result r;
    char longurl[CLIENT_MAX_URL + 50];
    memset(longurl, 'u', sizeof longurl);
    struct ws_header h[] = {
        H("Upgrade", "websocket"),
        H("Connection", "Upgrade"),
        H("Sec-WebSocket-Accept", ACCEPT),
        {.name = "x-websocktunnel-client-url",
         .name_len = 26,
         .value = "\thttps://a\x01\xff/\t",
         .value_len = 14},
    };
    client_hs_check(101, h, 4, KEY, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.url, "https://a?"
                               "?/");
    h[3].value = longurl;
    h[3].value_len = sizeof longurl;
    client_hs_check(101, h, 4, KEY, &r);
    assert_int_equal(strlen(r.url), CLIENT_MAX_URL - 1);
    /* an empty 2019 field falls back to the 2017 one */
    struct ws_header both[] = {h[0], h[1], h[2], H("x-websocktunnel-client-url", "  "),
                               H("x-webhooktunnel-client-url", "https://b/")};
    client_hs_check(101, both, 5, KEY, &r);
    assert_string_equal(r.url, "https://b/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_101),      cmocka_unit_test(test_invalid_101),
        cmocka_unit_test(test_other_statuses), cmocka_unit_test(test_refusal_every_split),
        cmocka_unit_test(test_refusal_ugly),   cmocka_unit_test(test_url_made_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
