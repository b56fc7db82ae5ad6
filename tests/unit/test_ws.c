/* Unit tests for mux/ws: RFC 6455 byte vectors, every protocol error, every
 * split of the input, encode/parse round trips, masking, the handshake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux/ws.h"

/* --- An event log: every event and the final status, as bytes ----------- */

struct log {
    uint8_t *b;
    size_t n, cap;
};

static void log_put(struct log *l, const void *d, size_t n)
{
    if (l->n + n > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->n + n)
            cap *= 2;
        l->b = realloc(l->b, cap);
        assert_non_null(l->b);
        l->cap = cap;
    }
    if (n)
        memcpy(l->b + l->n, d, n);
    l->n += n;
}

static void log_free(struct log *l)
{
    free(l->b);
    memset(l, 0, sizeof *l);
}

static void log_event(struct log *l, int type, int opcode, const void *data, size_t len, int code)
{
    uint8_t h[4] = {'V', (uint8_t)type, (uint8_t)opcode, 0};
    uint16_t c = (uint16_t)code;
    uint64_t n = len;
    log_put(l, h, sizeof h);
    log_put(l, &c, sizeof c);
    log_put(l, &n, sizeof n);
    log_put(l, data, len);
}

/* the status after the last byte: an error code, or 0 */
static void log_status(struct log *l, int err)
{
    uint8_t h = 'S';
    int32_t e = err;
    log_put(l, &h, 1);
    log_put(l, &e, sizeof e);
}

static void log_dump(const char *what, const struct log *l)
{
    fprintf(stderr, "%s (%zu bytes):", what, l->n);
    for (size_t i = 0; i < l->n && i < 200; i++)
        fprintf(stderr, " %02x", l->b[i]);
    fprintf(stderr, "\n");
}

static void log_expect_equal(const struct log *want, const struct log *got, const char *how)
{
    if (want->n != got->n || memcmp(want->b, got->b, want->n) != 0) {
        fprintf(stderr, "event logs differ: %s\n", how);
        log_dump("want", want);
        log_dump("got ", got);
        fail();
    }
}

/* --- Feeding a parser by chunks ------------------------------------------ */

/* Feeds in[0..n) cut at cuts[0..ncuts) (ascending offsets) to p, each chunk in
 * its own exactly-sized heap buffer (so ASan sees any overread), following the
 * documented loop, checking its contract; appends events and status to l.
 * Returns the final status. */
static int feed_cuts(struct ws_parser *p, const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts,
                     struct log *l)
{
    size_t start = 0;
    int err = 0;

    for (size_t c = 0; c <= ncuts && !err; c++) {
        size_t end = c < ncuts ? cuts[c] : n;
        size_t len = end - start, off = 0;
        uint8_t *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        if (len)
            memcpy(buf, in + start, len);
        for (;;) {
            struct ws_event ev;
            ssize_t r = ws_parse(p, buf + off, len - off, &ev);
            if (r < 0) {
                assert_int_equal(ev.type, WS_EV_NONE);
                err = (int)r;
                /* sticky */
                assert_int_equal(ws_parse(p, buf, len, &ev), r);
                assert_int_equal(ev.type, WS_EV_NONE);
                break;
            }
            assert_true((size_t)r <= len - off);
            if (ev.type == WS_EV_NONE) {
                assert_int_equal((size_t)r, len - off); /* NONE: everything consumed */
                break;
            }
            assert_true(r >= 1);
            assert_non_null(ev.data);
            /* data lies in the chunk or in the parser */
            {
                const uint8_t *d = ev.data;
                int in_buf = d >= buf && d + ev.len <= buf + len;
                int in_ctl = p->ctl && d >= p->ctl && d + ev.len <= p->ctl + WS_MAX_CONTROL_PAYLOAD;
                int in_msg = p->msg && d >= p->msg && d + ev.len <= p->msg + p->msg_cap;
                assert_true(in_buf || in_ctl || in_msg || ev.len == 0); /* (empty: a static byte) */
            }
            log_event(l, ev.type, ev.opcode, ev.data, ev.len, ev.close_code);
            off += (size_t)r;
        }
        free(buf);
        start = end;
    }
    log_status(l, err);
    return err;
}

static int run_cuts(enum ws_role role, size_t max, const uint8_t *in, size_t n, const size_t *cuts,
                    size_t ncuts, struct log *l)
{
    struct ws_parser p;
    int err;
    ws_parser_init(&p, role, max);
    err = feed_cuts(&p, in, n, cuts, ncuts, l);
    ws_parser_free(&p);
    return err;
}

/* Checks that whole, 1 byte at a time, every 2-way split, and (for short
 * inputs) every 3-way split give the log want. Long inputs get 2-way splits
 * near both ends and at a stride. */
static void check_splits(enum ws_role role, size_t max, const uint8_t *in, size_t n, const struct log *want)
{
    struct log got = {0};
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    char how[64];

    assert_non_null(cuts);
    run_cuts(role, max, in, n, NULL, 0, &got);
    log_expect_equal(want, &got, "whole");
    log_free(&got);

    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    run_cuts(role, max, in, n, cuts, n ? n - 1 : 0, &got);
    log_expect_equal(want, &got, "1 byte at a time");
    log_free(&got);

    for (size_t i = 0; i <= n; i++) {
        if (n > 4096 && i > 64 && i + 64 < n && i % 251)
            continue;
        cuts[0] = i;
        run_cuts(role, max, in, n, cuts, 1, &got);
        snprintf(how, sizeof how, "split at %zu", i);
        log_expect_equal(want, &got, how);
        log_free(&got);
    }
    if (n <= 40) {
        for (size_t i = 0; i <= n; i++) {
            for (size_t j = i; j <= n; j++) {
                cuts[0] = i;
                cuts[1] = j;
                run_cuts(role, max, in, n, cuts, 2, &got);
                snprintf(how, sizeof how, "split at %zu and %zu", i, j);
                log_expect_equal(want, &got, how);
                log_free(&got);
            }
        }
    }
    free(cuts);
}

/* Parses in (whole and every split) and expects exactly the events of want
 * followed by status err. */
static void expect_parse(enum ws_role role, size_t max, const uint8_t *in, size_t n, struct log *want,
                         int err)
{
    log_status(want, err);
    check_splits(role, max, in, n, want);
    log_free(want);
}

static void expect_error(enum ws_role role, const uint8_t *in, size_t n, int err)
{
    struct log want = {0};
    expect_parse(role, 1 << 20, in, n, &want, err);
}

/* --- Building frames ------------------------------------------------------ */

struct bytes {
    uint8_t *b;
    size_t n, cap;
};

static void put(struct bytes *s, const void *d, size_t n)
{
    if (s->n + n > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->n + n)
            cap *= 2;
        s->b = realloc(s->b, cap);
        assert_non_null(s->b);
        s->cap = cap;
    }
    if (n)
        memcpy(s->b + s->n, d, n);
    s->n += n;
}

static const uint8_t key1[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends a frame made with the encoder: masked with key when key != NULL. */
static void frame(struct bytes *s, int fin, enum ws_opcode op, const void *payload, size_t n,
                  const uint8_t *key)
{
    uint8_t h[WS_MAX_HEADER];
    size_t hl = ws_encode_header(h, fin, op, n, key);
    size_t at;
    assert_true(hl >= 2);
    put(s, h, hl);
    at = s->n;
    put(s, payload, n);
    if (key)
        ws_mask(s->b + at, n, key, 0);
}

/* The key a frame must carry for a parser of that role. */
static const uint8_t *key_for(enum ws_role role)
{
    return role == WS_ROLE_SERVER ? key1 : NULL;
}

/* --- RFC 6455 5.7 examples -------------------------------------------------- */

static const uint8_t rfc_hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t rfc_hel_lo[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
static const uint8_t rfc_ping_unmasked[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};

static void test_rfc_single_unmasked(void **state)
{
    (void)state;
    struct log want = {0};
    log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, "Hello", 5, 0);
    expect_parse(WS_ROLE_CLIENT, 100, rfc_hello_unmasked, sizeof rfc_hello_unmasked, &want, 0);
    expect_error(WS_ROLE_SERVER, rfc_hello_unmasked, sizeof rfc_hello_unmasked, WS_E_MASK);
}

static void test_rfc_single_masked(void **state)
{
    (void)state;
    struct log want = {0};
    log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, "Hello", 5, 0);
    expect_parse(WS_ROLE_SERVER, 100, rfc_hello_masked, sizeof rfc_hello_masked, &want, 0);
    expect_error(WS_ROLE_CLIENT, rfc_hello_masked, sizeof rfc_hello_masked, WS_E_MASK);
}

static void test_rfc_fragmented(void **state)
{
    (void)state;
    struct log want = {0};
    log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, "Hello", 5, 0);
    expect_parse(WS_ROLE_CLIENT, 100, rfc_hel_lo, sizeof rfc_hel_lo, &want, 0);
}

static void test_rfc_ping_pong(void **state)
{
    (void)state;
    struct log want = {0};
    log_event(&want, WS_EV_PING, WS_OP_PING, "Hello", 5, 0);
    expect_parse(WS_ROLE_CLIENT, 100, rfc_ping_unmasked, sizeof rfc_ping_unmasked, &want, 0);
    log_event(&want, WS_EV_PONG, WS_OP_PONG, "Hello", 5, 0);
    expect_parse(WS_ROLE_SERVER, 100, rfc_pong_masked, sizeof rfc_pong_masked, &want, 0);
}

static void test_rfc_256_and_64k(void **state)
{
    (void)state;
    struct bytes s = {0};
    struct log want = {0};
    uint8_t *payload = malloc(65536);
    static const uint8_t h16[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t h64[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};

    assert_non_null(payload);
    for (size_t i = 0; i < 65536; i++)
        payload[i] = (uint8_t)(i * 7 + (i >> 8));
    put(&s, h16, sizeof h16);
    put(&s, payload, 256);
    log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, payload, 256, 0);
    expect_parse(WS_ROLE_CLIENT, 256, s.b, s.n, &want, 0);
    /* the encoder writes the same header */
    {
        uint8_t h[WS_MAX_HEADER];
        assert_int_equal(ws_encode_header(h, 1, WS_OP_BINARY, 256, NULL), 4);
        assert_memory_equal(h, h16, 4);
        assert_int_equal(ws_encode_header(h, 1, WS_OP_BINARY, 65536, NULL), 10);
        assert_memory_equal(h, h64, 10);
    }
    s.n = 0;
    put(&s, h64, sizeof h64);
    put(&s, payload, 65536);
    log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, payload, 65536, 0);
    expect_parse(WS_ROLE_CLIENT, 65536, s.b, s.n, &want, 0);
    free(s.b);
    free(payload);
}

static void test_rfc_accept_key(void **state)
{
    (void)state;
    char out[29];
    const char *k = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(ws_accept_key(k, strlen(k), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* surrounding whitespace is ignored */
    assert_int_equal(ws_accept_key(" \tdGhlIHNhbXBsZSBub25jZQ== ", 27, out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* the length given is what counts, not the NUL */
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==XYZ", 24, out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* --- Zero copy, in-place unmasking ---------------------------------------- */

static void test_zero_copy(void **state)
{
    (void)state;
    struct ws_parser p;
    struct ws_event ev;
    uint8_t buf[sizeof rfc_hello_masked + sizeof rfc_ping_unmasked];

    ws_parser_init(&p, WS_ROLE_SERVER, 100);
    memcpy(buf, rfc_hello_masked, sizeof rfc_hello_masked);
    assert_int_equal(ws_parse(&p, buf, sizeof rfc_hello_masked, &ev), sizeof rfc_hello_masked);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_ptr_equal(ev.data, buf + 6);
    assert_memory_equal(buf + 6, "Hello", 5); /* unmasked in place */
    assert_null(p.msg);                       /* nothing allocated */
    assert_int_equal(ws_parse(&p, buf + 11, 0, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NONE);
    ws_parser_free(&p);

    /* client role: two frames in one buffer, each returned in place */
    ws_parser_init(&p, WS_ROLE_CLIENT, 100);
    memcpy(buf, rfc_hello_unmasked, 7);
    memcpy(buf + 7, rfc_ping_unmasked, 7);
    assert_int_equal(ws_parse(&p, buf, 14, &ev), 7);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_ptr_equal(ev.data, buf + 2);
    assert_int_equal(ws_parse(&p, buf + 7, 7, &ev), 7);
    assert_int_equal(ev.type, WS_EV_PING);
    assert_ptr_equal(ev.data, buf + 9);
    assert_int_equal(ev.len, 5);
    assert_int_equal(ws_parse(&p, buf + 14, 0, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NONE);
    /* a header split from its payload: the payload is still used in place */
    memcpy(buf, rfc_hello_unmasked, 7);
    assert_int_equal(ws_parse(&p, buf, 1, &ev), 1);
    assert_int_equal(ev.type, WS_EV_NONE);
    assert_int_equal(ws_parse(&p, buf + 1, 6, &ev), 6);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_ptr_equal(ev.data, buf + 2);
    assert_null(p.msg);
    /* a payload split across calls is copied */
    memcpy(buf, rfc_hello_unmasked, 7);
    assert_int_equal(ws_parse(&p, buf, 4, &ev), 4);
    assert_int_equal(ev.type, WS_EV_NONE);
    assert_int_equal(ws_parse(&p, buf + 4, 3, &ev), 3);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_non_null(p.msg);
    assert_ptr_equal(ev.data, p.msg);
    assert_memory_equal(ev.data, "Hello", 5);
    ws_parser_free(&p);
}

/* The documented loop over a buffer holding several frames. */
static void test_loop_contract(void **state)
{
    (void)state;
    struct bytes s = {0};
    struct ws_parser p;
    struct ws_event ev;
    ssize_t n;
    size_t off = 0;
    int events = 0;

    frame(&s, 1, WS_OP_PING, "a", 1, NULL);
    frame(&s, 0, WS_OP_BINARY, "bc", 2, NULL);
    frame(&s, 0, WS_OP_CONT, "", 0, NULL);
    frame(&s, 1, WS_OP_CONT, "d", 1, NULL);
    frame(&s, 1, WS_OP_TEXT, "", 0, NULL);
    ws_parser_init(&p, WS_ROLE_CLIENT, 100);
    /* the brief's form: loop while bytes are consumed or an event comes */
    while ((n = ws_parse(&p, s.b + off, s.n - off, &ev)) > 0 || ev.type != WS_EV_NONE) {
        off += (size_t)n;
        switch (events++) {
        case 0: assert_int_equal(ev.type, WS_EV_PING); break;
        case 1:
            assert_int_equal(ev.type, WS_EV_MESSAGE);
            assert_int_equal(ev.opcode, WS_OP_BINARY);
            assert_int_equal(ev.len, 3);
            assert_memory_equal(ev.data, "bcd", 3);
            break;
        case 2:
            assert_int_equal(ev.type, WS_EV_MESSAGE);
            assert_int_equal(ev.opcode, WS_OP_TEXT);
            assert_int_equal(ev.len, 0);
            assert_non_null(ev.data);
            break;
        default: fail();
        }
    }
    assert_int_equal(n, 0);
    assert_int_equal(events, 3);
    assert_int_equal(off, s.n);
    /* len 0 is "need more", never an error */
    assert_int_equal(ws_parse(&p, NULL, 0, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NONE);
    ws_parser_free(&p);
    free(s.b);
}

/* --- Errors ----------------------------------------------------------------- */

static void test_error_rsv(void **state)
{
    (void)state;
    for (uint8_t rsv = 0x10; rsv <= 0x70; rsv += 0x10) {
        uint8_t f[] = {(uint8_t)(0x81 | rsv), 0x80, 1, 2, 3, 4};
        uint8_t g[] = {(uint8_t)(0x89 | rsv), 0x00};
        expect_error(WS_ROLE_SERVER, f, sizeof f, WS_E_RSV);
        expect_error(WS_ROLE_CLIENT, g, sizeof g, WS_E_RSV);
        /* caught on byte 0 alone */
        expect_error(WS_ROLE_CLIENT, g, 1, WS_E_RSV);
    }
}

static void test_error_opcode(void **state)
{
    (void)state;
    static const uint8_t bad[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < sizeof bad; i++) {
        uint8_t f[] = {(uint8_t)(0x80 | bad[i]), 0x00};
        expect_error(WS_ROLE_CLIENT, f, sizeof f, WS_E_OPCODE);
        f[0] = bad[i]; /* without FIN too */
        expect_error(WS_ROLE_CLIENT, f, sizeof f, WS_E_OPCODE);
    }
}

static void test_error_mask(void **state)
{
    (void)state;
    static const uint8_t unmasked_ping[] = {0x89, 0x00};
    static const uint8_t masked_ping[] = {0x89, 0x80, 1, 2, 3, 4};
    static const uint8_t masked_close[] = {0x88, 0x80, 1, 2, 3, 4};
    expect_error(WS_ROLE_SERVER, unmasked_ping, sizeof unmasked_ping, WS_E_MASK);
    expect_error(WS_ROLE_CLIENT, masked_ping, sizeof masked_ping, WS_E_MASK);
    expect_error(WS_ROLE_CLIENT, masked_close, 2, WS_E_MASK); /* caught on byte 1 */
    expect_error(WS_ROLE_SERVER, rfc_hel_lo, sizeof rfc_hel_lo, WS_E_MASK);
}

static void test_error_control(void **state)
{
    (void)state;
    static const uint8_t ping_nofin[] = {0x09, 0x00};
    static const uint8_t close_nofin[] = {0x08, 0x00};
    static const uint8_t pong_nofin[] = {0x0a, 0x80, 1, 2, 3, 4};
    static const uint8_t ping_126[] = {0x89, 0x7e, 0x00, 0x7e};
    static const uint8_t ping_126_small[] = {0x89, 0x7e, 0x00, 0x05}; /* even non-minimal */
    static const uint8_t close_127[] = {0x88, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    uint8_t big[2 + 126];

    expect_error(WS_ROLE_CLIENT, ping_nofin, sizeof ping_nofin, WS_E_CONTROL_FRAGMENTED);
    expect_error(WS_ROLE_CLIENT, close_nofin, sizeof close_nofin, WS_E_CONTROL_FRAGMENTED);
    expect_error(WS_ROLE_SERVER, pong_nofin, sizeof pong_nofin, WS_E_CONTROL_FRAGMENTED);
    expect_error(WS_ROLE_CLIENT, ping_126, sizeof ping_126, WS_E_CONTROL_TOO_BIG);
    expect_error(WS_ROLE_CLIENT, ping_126_small, sizeof ping_126_small, WS_E_CONTROL_TOO_BIG);
    expect_error(WS_ROLE_SERVER, close_127, sizeof close_127, WS_E_CONTROL_TOO_BIG);
    /* 125 is fine */
    {
        struct bytes s = {0};
        struct log want = {0};
        uint8_t p125[125];
        memset(p125, 'x', sizeof p125);
        frame(&s, 1, WS_OP_PING, p125, 125, key1);
        log_event(&want, WS_EV_PING, WS_OP_PING, p125, 125, 0);
        expect_parse(WS_ROLE_SERVER, 0, s.b, s.n, &want, 0);
        free(s.b);
    }
    memset(big, 0, sizeof big);
    big[0] = 0x89;
    big[1] = 126;
    expect_error(WS_ROLE_CLIENT, big, sizeof big, WS_E_CONTROL_TOO_BIG);
}

static void test_error_length_top_bit(void **state)
{
    (void)state;
    static const uint8_t f[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t g[] = {0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    static const uint8_t h[] = {0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_error(WS_ROLE_CLIENT, f, sizeof f, WS_E_LENGTH);
    expect_error(WS_ROLE_SERVER, g, sizeof g, WS_E_LENGTH);
    expect_error(WS_ROLE_CLIENT, h, sizeof h, WS_E_TOO_BIG); /* 2^63-1 is a length, too big */
    /* incomplete header: no error yet */
    expect_error(WS_ROLE_CLIENT, f, sizeof f - 1, 0);
}

static void test_non_minimal_lengths(void **state)
{
    (void)state;
    static const uint8_t f16[] = {0x82, 0x7e, 0x00, 0x03, 'a', 'b', 'c'};
    static const uint8_t f64[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x03, 'a', 'b', 'c'};
    static const uint8_t f64e[] = {0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0};
    struct log want = {0};
    log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, "abc", 3, 0);
    expect_parse(WS_ROLE_CLIENT, 3, f16, sizeof f16, &want, 0);
    log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, "abc", 3, 0);
    expect_parse(WS_ROLE_CLIENT, 3, f64, sizeof f64, &want, 0);
    log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, "", 0, 0);
    expect_parse(WS_ROLE_CLIENT, 0, f64e, sizeof f64e, &want, 0);
}

static void test_error_fragmentation(void **state)
{
    (void)state;
    struct bytes s = {0};
    struct log want = {0};
    static const uint8_t cont_alone[] = {0x80, 0x00};
    static const uint8_t cont_nofin_alone[] = {0x00, 0x01, 'x'};

    expect_error(WS_ROLE_CLIENT, cont_alone, sizeof cont_alone, WS_E_UNEXPECTED_CONT);
    expect_error(WS_ROLE_CLIENT, cont_nofin_alone, sizeof cont_nofin_alone, WS_E_UNEXPECTED_CONT);
    expect_error(WS_ROLE_CLIENT, cont_alone, 1, WS_E_UNEXPECTED_CONT);

    /* a complete message, then a CONT */
    frame(&s, 0, WS_OP_TEXT, "a", 1, NULL);
    frame(&s, 1, WS_OP_CONT, "b", 1, NULL);
    frame(&s, 1, WS_OP_CONT, "c", 1, NULL);
    log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, "ab", 2, 0);
    expect_parse(WS_ROLE_CLIENT, 100, s.b, s.n, &want, WS_E_UNEXPECTED_CONT);

    /* TEXT or BINARY while a message is in progress */
    for (int fin = 0; fin <= 1; fin++) {
        for (int op = WS_OP_TEXT; op <= WS_OP_BINARY; op++) {
            s.n = 0;
            frame(&s, 0, WS_OP_BINARY, "a", 1, key1);
            frame(&s, 0, WS_OP_CONT, "b", 1, key1);
            frame(&s, 1, WS_OP_PING, "p", 1, key1);
            frame(&s, fin, (enum ws_opcode)op, "c", 1, key1);
            log_event(&want, WS_EV_PING, WS_OP_PING, "p", 1, 0);
            expect_parse(WS_ROLE_SERVER, 100, s.b, s.n, &want, WS_E_EXPECTED_CONT);
        }
    }
    free(s.b);
}

static void test_error_too_big(void **state)
{
    (void)state;
    struct bytes s = {0};
    struct log want = {0};
    uint8_t x[300];
    memset(x, 'x', sizeof x);

    for (int r = 0; r < 2; r++) {
        enum ws_role role = r ? WS_ROLE_CLIENT : WS_ROLE_SERVER;
        const uint8_t *k = key_for(role);
        /* single frame: exactly max passes, max + 1 fails */
        s.n = 0;
        frame(&s, 1, WS_OP_BINARY, x, 10, k);
        log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, x, 10, 0);
        expect_parse(role, 10, s.b, s.n, &want, 0);
        s.n = 0;
        frame(&s, 1, WS_OP_BINARY, x, 11, k);
        expect_parse(role, 10, s.b, s.n, &want, WS_E_TOO_BIG);
        /* caught on the header, before any payload */
        expect_parse(role, 10, s.b, s.n - 11, &want, WS_E_TOO_BIG);
        /* fragments add up */
        s.n = 0;
        frame(&s, 0, WS_OP_TEXT, x, 4, k);
        frame(&s, 0, WS_OP_CONT, x, 0, k);
        frame(&s, 1, WS_OP_PING, x, 125, k); /* control frames do not count */
        frame(&s, 1, WS_OP_CONT, x, 6, k);
        log_event(&want, WS_EV_PING, WS_OP_PING, x, 125, 0);
        log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, x, 10, 0);
        expect_parse(role, 10, s.b, s.n, &want, 0);
        s.n = 0;
        frame(&s, 0, WS_OP_TEXT, x, 4, k);
        frame(&s, 0, WS_OP_CONT, x, 6, k);
        frame(&s, 1, WS_OP_CONT, x, 1, k);
        expect_parse(role, 10, s.b, s.n, &want, WS_E_TOO_BIG);
        /* max 0: only empty messages */
        s.n = 0;
        frame(&s, 1, WS_OP_BINARY, x, 0, k);
        frame(&s, 0, WS_OP_TEXT, x, 0, k);
        frame(&s, 1, WS_OP_CONT, x, 0, k);
        frame(&s, 1, WS_OP_BINARY, x, 1, k);
        log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, x, 0, 0);
        log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, x, 0, 0);
        expect_parse(role, 0, s.b, s.n, &want, WS_E_TOO_BIG);
        /* a big message at exactly max, fragmented */
        s.n = 0;
        frame(&s, 0, WS_OP_BINARY, x, 100, k);
        frame(&s, 0, WS_OP_CONT, x, 100, k);
        frame(&s, 1, WS_OP_CONT, x, 100, k);
        log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, x, 300, 0);
        expect_parse(role, 300, s.b, s.n, &want, 0);
        expect_parse(role, 299, s.b, s.n, &want, WS_E_TOO_BIG);
    }
    free(s.b);
}

static void test_close(void **state)
{
    (void)state;
    struct bytes s = {0};
    struct log want = {0};
    static const uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                    1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const uint16_t bad[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 5001, 65535};

    /* empty: 1005 */
    frame(&s, 1, WS_OP_CLOSE, "", 0, NULL);
    log_event(&want, WS_EV_CLOSE, WS_OP_CLOSE, "", 0, WS_CLOSE_NO_STATUS);
    expect_parse(WS_ROLE_CLIENT, 0, s.b, s.n, &want, 0);
    /* code and reason, masked */
    s.n = 0;
    frame(&s, 1, WS_OP_CLOSE, "\003\350bye", 5, key1);
    log_event(&want, WS_EV_CLOSE, WS_OP_CLOSE, "bye", 3, 1000);
    expect_parse(WS_ROLE_SERVER, 0, s.b, s.n, &want, 0);
    /* 1-byte payload */
    s.n = 0;
    frame(&s, 1, WS_OP_CLOSE, "\x03", 1, key1);
    expect_parse(WS_ROLE_SERVER, 0, s.b, s.n, &want, WS_E_CLOSE_PAYLOAD);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint8_t c[2] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
        s.n = 0;
        frame(&s, 1, WS_OP_CLOSE, c, 2, NULL);
        log_event(&want, WS_EV_CLOSE, WS_OP_CLOSE, "", 0, good[i]);
        expect_parse(WS_ROLE_CLIENT, 0, s.b, s.n, &want, 0);
        assert_true(ws_close_code_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t c[3] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i], 'r'};
        s.n = 0;
        frame(&s, 1, WS_OP_CLOSE, c, 3, NULL);
        expect_parse(WS_ROLE_CLIENT, 0, s.b, s.n, &want, WS_E_CLOSE_CODE);
        assert_false(ws_close_code_valid(bad[i]));
    }
    /* bytes after close */
    s.n = 0;
    frame(&s, 1, WS_OP_CLOSE, "\x03\xe9", 2, NULL);
    frame(&s, 1, WS_OP_PING, "", 0, NULL);
    log_event(&want, WS_EV_CLOSE, WS_OP_CLOSE, "", 0, 1001);
    expect_parse(WS_ROLE_CLIENT, 0, s.b, s.n, &want, WS_E_AFTER_CLOSE);
    /* a close between fragments ends the stream there */
    s.n = 0;
    frame(&s, 0, WS_OP_BINARY, "ab", 2, NULL);
    frame(&s, 1, WS_OP_CLOSE, "\017\240x", 3, NULL);
    log_event(&want, WS_EV_CLOSE, WS_OP_CLOSE, "x", 1, 4000);
    expect_parse(WS_ROLE_CLIENT, 10, s.b, s.n, &want, 0);
    /* a 123-byte reason, the longest */
    {
        uint8_t c[125];
        memset(c, 'r', sizeof c);
        c[0] = 0x03;
        c[1] = 0xf0; /* 1008 */
        s.n = 0;
        frame(&s, 1, WS_OP_CLOSE, c, 125, key1);
        log_event(&want, WS_EV_CLOSE, WS_OP_CLOSE, c + 2, 123, 1008);
        expect_parse(WS_ROLE_SERVER, 0, s.b, s.n, &want, 0);
    }
    free(s.b);
}

static void test_sticky_error(void **state)
{
    (void)state;
    struct ws_parser p;
    struct ws_event ev;
    uint8_t bad[] = {0xc1, 0x00};
    uint8_t good[sizeof rfc_hello_unmasked];

    ws_parser_init(&p, WS_ROLE_CLIENT, 100);
    assert_int_equal(ws_parse(&p, bad, 2, &ev), WS_E_RSV);
    memcpy(good, rfc_hello_unmasked, sizeof good);
    assert_int_equal(ws_parse(&p, good, sizeof good, &ev), WS_E_RSV);
    assert_int_equal(ev.type, WS_EV_NONE);
    assert_int_equal(ws_parse(&p, NULL, 0, &ev), WS_E_RSV);
    ws_parser_free(&p);
}

/* --- Control frames between fragments, a mixed stream --------------------- */

static void test_control_between_fragments(void **state)
{
    (void)state;
    struct bytes s = {0};
    struct log want = {0};

    for (int r = 0; r < 2; r++) {
        enum ws_role role = r ? WS_ROLE_CLIENT : WS_ROLE_SERVER;
        const uint8_t *k = key_for(role);
        s.n = 0;
        frame(&s, 0, WS_OP_TEXT, "Hel", 3, k);
        frame(&s, 1, WS_OP_PING, "ping!", 5, k);
        frame(&s, 0, WS_OP_CONT, "", 0, k);
        frame(&s, 1, WS_OP_PONG, "", 0, k);
        frame(&s, 1, WS_OP_PING, "2", 1, k);
        frame(&s, 1, WS_OP_CONT, "lo", 2, k);
        frame(&s, 1, WS_OP_BINARY, "next", 4, k);
        frame(&s, 0, WS_OP_BINARY, "", 0, k);
        frame(&s, 1, WS_OP_CONT, "", 0, k);
        log_event(&want, WS_EV_PING, WS_OP_PING, "ping!", 5, 0);
        log_event(&want, WS_EV_PONG, WS_OP_PONG, "", 0, 0);
        log_event(&want, WS_EV_PING, WS_OP_PING, "2", 1, 0);
        log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, "Hello", 5, 0);
        log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, "next", 4, 0);
        log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, "", 0, 0);
        expect_parse(role, 5, s.b, s.n, &want, 0);
    }
    free(s.b);
}

/* A long mixed stream, every split, both roles, with a truncated tail. */
static void test_mixed_stream_splits(void **state)
{
    (void)state;
    struct bytes s = {0};
    struct log want = {0};
    uint8_t x[200];
    for (size_t i = 0; i < sizeof x; i++)
        x[i] = (uint8_t)(i * 31 + 5);

    for (int r = 0; r < 2; r++) {
        enum ws_role role = r ? WS_ROLE_CLIENT : WS_ROLE_SERVER;
        const uint8_t *k = key_for(role);
        s.n = 0;
        frame(&s, 1, WS_OP_BINARY, x, 200, k);
        frame(&s, 0, WS_OP_BINARY, x, 7, k);
        frame(&s, 1, WS_OP_PING, x + 7, 60, k);
        frame(&s, 0, WS_OP_CONT, x + 7, 126, k);
        frame(&s, 1, WS_OP_CONT, x + 133, 67, k);
        frame(&s, 1, WS_OP_TEXT, x, 1, k);
        frame(&s, 1, WS_OP_PONG, x, 125, k);
        frame(&s, 1, WS_OP_CLOSE, "\003\350done", 6, k);
        log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, x, 200, 0);
        log_event(&want, WS_EV_PING, WS_OP_PING, x + 7, 60, 0);
        log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, x, 200, 0);
        log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, x, 1, 0);
        log_event(&want, WS_EV_PONG, WS_OP_PONG, x, 125, 0);
        log_event(&want, WS_EV_CLOSE, WS_OP_CLOSE, "done", 4, 1000);
        expect_parse(role, 200, s.b, s.n, &want, 0);
        /* cut short inside the pong: no error, the events before it */
        log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, x, 200, 0);
        log_event(&want, WS_EV_PING, WS_OP_PING, x + 7, 60, 0);
        log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, x, 200, 0);
        log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, x, 1, 0);
        expect_parse(role, 200, s.b, s.n - 20, &want, 0);
    }
    free(s.b);
}

/* --- Reassembly buffer ------------------------------------------------------ */

static void test_buffer_growth(void **state)
{
    (void)state;
    struct ws_parser p;
    struct ws_event ev;
    uint8_t h[WS_MAX_HEADER + 100];
    size_t hl;
    uint8_t *big;
    struct bytes s = {0};

    /* a header declaring 512 MiB does not allocate it */
    ws_parser_init(&p, WS_ROLE_CLIENT, (size_t)1 << 30);
    hl = ws_encode_header(h, 0, WS_OP_BINARY, (uint64_t)1 << 29, NULL);
    memset(h + hl, 'a', 100);
    assert_int_equal(ws_parse(&p, h, hl + 100, &ev), hl + 100);
    assert_int_equal(ev.type, WS_EV_NONE);
    assert_int_equal(p.msg_len, 100);
    assert_true(p.msg_cap >= 100 && p.msg_cap <= 256);
    ws_parser_free(&p);

    /* grows geometrically, never past the frame's end */
    ws_parser_init(&p, WS_ROLE_CLIENT, 1000);
    hl = ws_encode_header(h, 1, WS_OP_BINARY, 1000, NULL);
    assert_int_equal(ws_parse(&p, h, hl, &ev), hl);
    for (int i = 0; i < 10; i++) {
        uint8_t chunk[100];
        memset(chunk, i, sizeof chunk);
        assert_int_equal(ws_parse(&p, chunk, 100, &ev), 100);
        assert_int_equal(p.msg_len, 100 * (size_t)(i + 1));
        assert_true(p.msg_cap <= 1000);
        assert_int_equal(ev.type, i == 9 ? WS_EV_MESSAGE : WS_EV_NONE);
    }
    assert_int_equal(ev.len, 1000);
    assert_int_equal(ev.data[999], 9);
    assert_int_equal(p.msg_cap, 1000);
    /* kept (small) for the next message; reset on the next call */
    assert_int_equal(ws_parse(&p, NULL, 0, &ev), 0);
    assert_int_equal(p.msg_len, 0);
    assert_non_null(p.msg);
    ws_parser_trim(&p);
    assert_null(p.msg);
    ws_parser_free(&p);

    /* a big reassembled message is freed after delivery */
    big = calloc(1, 100000);
    assert_non_null(big);
    frame(&s, 0, WS_OP_BINARY, big, 50000, NULL);
    frame(&s, 1, WS_OP_CONT, big, 50000, NULL);
    ws_parser_init(&p, WS_ROLE_CLIENT, 100000);
    assert_int_equal(ws_parse(&p, s.b, s.n, &ev), s.n);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_int_equal(ev.len, 100000);
    assert_ptr_equal(ev.data, p.msg);
    assert_int_equal(ws_parse(&p, NULL, 0, &ev), 0);
    assert_null(p.msg);
    /* trim leaves a message being reassembled alone */
    assert_int_equal(ws_parse(&p, s.b, 50, &ev), 50);
    ws_parser_trim(&p);
    assert_non_null(p.msg);
    ws_parser_free(&p);
    free(big);
    free(s.b);

    /* the control buffer: none until a control frame is split; trim keeps it
     * while the frame is incomplete, frees it afterwards */
    struct bytes c = {0};
    frame(&c, 1, WS_OP_PING, (const uint8_t *)"0123456789", 10, NULL);
    ws_parser_init(&p, WS_ROLE_CLIENT, 1000);
    assert_null(p.ctl);
    assert_int_equal(ws_parse(&p, c.b, c.n, &ev), c.n); /* whole: in place */
    assert_int_equal(ev.type, WS_EV_PING);
    assert_null(p.ctl);
    assert_int_equal(ws_parse(&p, c.b, 5, &ev), 5);
    assert_non_null(p.ctl);
    ws_parser_trim(&p);
    assert_non_null(p.ctl);
    assert_int_equal(ws_parse(&p, c.b + 5, c.n - 5, &ev), c.n - 5);
    assert_int_equal(ev.type, WS_EV_PING);
    assert_int_equal(ev.len, 10);
    assert_memory_equal(ev.data, "0123456789", 10);
    ws_parser_trim(&p);
    assert_null(p.ctl);
    ws_parser_free(&p);
    free(c.b);
}

/* --- Encoder ------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    static const size_t hlens[] = {2, 2, 2, 4, 4, 4, 10, 10};
    uint8_t *payload = malloc(70000);
    assert_non_null(payload);
    for (size_t i = 0; i < 70000; i++)
        payload[i] = (uint8_t)(i ^ (i >> 9));

    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        for (int r = 0; r < 2; r++) {
            enum ws_role role = r ? WS_ROLE_CLIENT : WS_ROLE_SERVER;
            const uint8_t *k = key_for(role);
            struct bytes s = {0};
            struct log want = {0};
            uint8_t h[WS_MAX_HEADER];
            size_t hl = ws_encode_header(h, 1, WS_OP_BINARY, lens[li], k);
            assert_int_equal(hl, hlens[li] + (k ? 4 : 0));
            if (k)
                assert_memory_equal(h + hl - 4, k, 4);
            frame(&s, 1, WS_OP_BINARY, payload, lens[li], k);
            assert_int_equal(s.n, hl + lens[li]);
            log_event(&want, WS_EV_MESSAGE, WS_OP_BINARY, payload, lens[li], 0);
            expect_parse(role, lens[li], s.b, s.n, &want, 0);
            /* also in 3 fragments */
            s.n = 0;
            frame(&s, 0, WS_OP_TEXT, payload, lens[li] / 3, k);
            frame(&s, 0, WS_OP_CONT, payload + lens[li] / 3, lens[li] / 3, k);
            frame(&s, 1, WS_OP_CONT, payload + 2 * (lens[li] / 3), lens[li] - 2 * (lens[li] / 3), k);
            log_event(&want, WS_EV_MESSAGE, WS_OP_TEXT, payload, lens[li], 0);
            expect_parse(role, lens[li], s.b, s.n, &want, 0);
            free(s.b);
        }
    }
    free(payload);
}

static void test_encode_header_limits(void **state)
{
    (void)state;
    uint8_t h[WS_MAX_HEADER];
    static const uint8_t key[4] = {1, 2, 3, 4};
    static const uint8_t max63[] = {0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};

    assert_int_equal(ws_encode_header(h, 1, WS_OP_PING, 126, NULL), 0);
    assert_int_equal(ws_encode_header(h, 0, WS_OP_PING, 0, NULL), 0);
    assert_int_equal(ws_encode_header(h, 1, WS_OP_CLOSE, 125, key), 6);
    assert_int_equal(ws_encode_header(h, 1, (enum ws_opcode)3, 0, NULL), 0);
    assert_int_equal(ws_encode_header(h, 1, (enum ws_opcode)0xb, 0, NULL), 0);
    assert_int_equal(ws_encode_header(h, 1, WS_OP_BINARY, (uint64_t)1 << 63, NULL), 0);
    assert_int_equal(ws_encode_header(h, 1, WS_OP_BINARY, UINT64_MAX, NULL), 0);
    assert_int_equal(ws_encode_header(h, 1, WS_OP_BINARY, ((uint64_t)1 << 63) - 1, key), 14);
    assert_memory_equal(h, max63, 14);
    assert_int_equal(ws_encode_header(h, 0, WS_OP_CONT, 5, NULL), 2);
    assert_int_equal(h[0], 0x00);
    assert_int_equal(h[1], 0x05);
    assert_int_equal(ws_encode_header(h, 1, WS_OP_TEXT, 5, key1), 6);
    assert_memory_equal(h, rfc_hello_masked, 6);
}

static void test_encode_close(void **state)
{
    (void)state;
    uint8_t out[200];
    static const uint8_t plain[] = {0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e'};
    static const uint8_t empty[] = {0x88, 0x00};
    char reason[130];
    struct bytes s = {0};
    struct log want = {0};

    assert_int_equal(ws_encode_close(out, sizeof out, 1000, "bye", NULL), 7);
    assert_memory_equal(out, plain, 7);
    assert_int_equal(ws_encode_close(out, 7, 1000, "bye", NULL), 7);
    assert_int_equal(ws_encode_close(out, 6, 1000, "bye", NULL), 0);
    assert_int_equal(ws_encode_close(out, sizeof out, 0, NULL, NULL), 2);
    assert_memory_equal(out, empty, 2);
    assert_int_equal(ws_encode_close(out, sizeof out, 0, "x", NULL), 0);
    assert_int_equal(ws_encode_close(out, sizeof out, 1005, NULL, NULL), 0);
    assert_int_equal(ws_encode_close(out, sizeof out, 999, NULL, NULL), 0);
    assert_int_equal(ws_encode_close(NULL, 0, 1000, NULL, NULL), 0);
    memset(reason, 'r', sizeof reason);
    reason[123] = '\0';
    assert_int_equal(ws_encode_close(out, sizeof out, 1000, reason, NULL), 2 + 125);
    reason[123] = 'r';
    reason[124] = '\0';
    assert_int_equal(ws_encode_close(out, sizeof out, 1000, reason, NULL), 0);

    /* masked, parsed back by a server */
    reason[20] = '\0';
    put(&s, out, ws_encode_close(out, sizeof out, 4321, reason, key1));
    assert_int_equal(s.n, 6 + 22);
    log_event(&want, WS_EV_CLOSE, WS_OP_CLOSE, reason, 20, 4321);
    expect_parse(WS_ROLE_SERVER, 0, s.b, s.n, &want, 0);
    free(s.b);

    assert_int_equal(ws_err_close_code(WS_E_TOO_BIG), 1009);
    assert_int_equal(ws_err_close_code(WS_E_NOMEM), 1011);
    assert_int_equal(ws_err_close_code(WS_E_RSV), 1002);
    assert_int_equal(ws_err_close_code(WS_E_CLOSE_CODE), 1002);
}

static void test_mask(void **state)
{
    (void)state;
    uint8_t *buf = malloc(1100 + 16), *ref = malloc(1100);
    static const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    static const size_t lens[] = {0,  1,  2,  3,  5,  7,   8,   15,  16,  17,  31,
                                  32, 33, 63, 64, 65, 100, 127, 128, 129, 1000};

    assert_non_null(buf);
    assert_non_null(ref);
    for (size_t align = 0; align < 16; align++) {
        for (size_t ko = 0; ko < 8; ko++) {
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                size_t n = lens[li];
                uint8_t *d = buf + align;
                for (size_t i = 0; i < n + 16; i++)
                    buf[i] = (uint8_t)(i * 13 + align);
                for (size_t i = 0; i < n; i++)
                    ref[i] = (uint8_t)(d[i] ^ key[(ko + i) % 4]);
                ws_mask(d, n, key, ko);
                assert_memory_equal(d, ref, n);
                /* bytes around it untouched */
                for (size_t i = 0; i < align; i++)
                    assert_int_equal(buf[i], (uint8_t)(i * 13 + align));
                assert_int_equal(d[n], (uint8_t)((align + n) * 13 + align));
                /* involution */
                ws_mask(d, n, key, ko);
                for (size_t i = 0; i < n; i++)
                    assert_int_equal(d[i], (uint8_t)((align + i) * 13 + align));
            }
        }
    }
    /* piecewise masking with running offsets equals one pass */
    for (size_t i = 0; i < 1000; i++)
        ref[i] = buf[i] = (uint8_t)i;
    ws_mask(ref, 1000, key, 0);
    for (size_t at = 0, step = 1; at < 1000; at += step, step = step * 3 % 97 + 1) {
        size_t n = step < 1000 - at ? step : 1000 - at;
        ws_mask(buf + at, n, key, at);
    }
    assert_memory_equal(buf, ref, 1000);
    free(buf);
    free(ref);
}

/* ws_mask_copy(): the copy is what ws_mask() of a copy gives, whatever the
 * alignment of each side, the key offset and the length; the source and the
 * bytes around the destination are left alone. */
static void test_mask_copy(void **state)
{
    (void)state;
    uint8_t *src = malloc(1100 + 16), *dst = malloc(1100 + 32), *ref = malloc(1100);
    static const uint8_t key[4] = {0x01, 0x80, 0x7f, 0xff};
    static const size_t lens[] = {0, 1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 1000, 1100};

    assert_non_null(src);
    assert_non_null(dst);
    assert_non_null(ref);
    for (size_t sa = 0; sa < 16; sa += 3) {
        for (size_t da = 0; da < 16; da++) {
            for (size_t ko = 0; ko < 4; ko++) {
                for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                    size_t n = lens[li];
                    uint8_t *s = src + sa, *d = dst + da;
                    for (size_t i = 0; i < n; i++)
                        s[i] = (uint8_t)(i * 31 + sa);
                    memset(dst, 0xa5, 1100 + 32);
                    memcpy(ref, s, n);
                    ws_mask(ref, n, key, ko);
                    ws_mask_copy(d, s, n, key, ko);
                    assert_memory_equal(d, ref, n);
                    for (size_t i = 0; i < n; i++)
                        assert_int_equal(s[i], (uint8_t)(i * 31 + sa));
                    for (size_t i = 0; i < da; i++)
                        assert_int_equal(dst[i], 0xa5);
                    assert_int_equal(d[n], 0xa5);
                    /* in place, as ws_mask() */
                    ws_mask_copy(s, s, n, key, ko);
                    assert_memory_equal(s, ref, n);
                }
            }
        }
    }
    free(src);
    free(dst);
    free(ref);
}

/* --- Handshake ------------------------------------------------------------------ */

/* a header from two string literals */
// clang-format off
#define H(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1}
// clang-format on

static const struct ws_header go_request[] = {
    H("Host", "localhost:8080"),
    H("User-Agent", "Go-http-client/1.1"),
    H("Authorization", "Bearer abc"),
    H("Connection", "Upgrade"),
    H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    H("Sec-WebSocket-Version", "13"),
    H("Upgrade", "websocket"),
    H("X-Websocktunnel-Id", "w1"),
};

static int check_req(const struct ws_header *h, size_t n)
{
    return ws_check_request("GET", 3, 1, h, n, NULL, NULL);
}

static void test_check_request(void **state)
{
    (void)state;
    const char *key = NULL;
    size_t kl = 0;
    char acc[29];
    struct ws_header h[8];
    size_t n = sizeof go_request / sizeof go_request[0];

    assert_int_equal(ws_check_request("GET", 3, 1, go_request, n, &key, &kl), 0);
    assert_int_equal(kl, 24);
    assert_memory_equal(key, "dGhlIHNhbXBsZSBub25jZQ==", 24);
    assert_int_equal(ws_accept_key(key, kl, acc), 0);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(ws_check_request("GET", 3, 2, go_request, n, NULL, NULL), 0); /* HTTP/1.2 */

    /* not an upgrade: 404 */
    assert_int_equal(ws_check_request("GET", 3, 0, go_request, n, NULL, NULL), WS_E_NOT_UPGRADE);
    assert_int_equal(check_req(go_request, 0), WS_E_NOT_UPGRADE);
    memcpy(h, go_request, sizeof h);
    h[6] = (struct ws_header)H("upgrade", "h2c");
    assert_int_equal(check_req(h, n), WS_E_NOT_UPGRADE);
    h[6] = (struct ws_header)H("UPGRADE", " foo/2 ,\tWebSocket ");
    assert_int_equal(check_req(h, n), 0);
    h[6] = (struct ws_header)H("Upgrade", "websockets");
    assert_int_equal(check_req(h, n), WS_E_NOT_UPGRADE);
    h[6] = (struct ws_header)H("Upgrade-X", "websocket");
    assert_int_equal(check_req(h, n), WS_E_NOT_UPGRADE);
    memcpy(h, go_request, sizeof h);
    h[3] = (struct ws_header)H("connection", "keep-alive, UPGRADE");
    assert_int_equal(check_req(h, n), 0);
    h[3] = (struct ws_header)H("Connection", "keep-alive,upgrade,");
    assert_int_equal(check_req(h, n), 0);
    h[3] = (struct ws_header)H("Connection", "upgrades, keep-alive");
    assert_int_equal(check_req(h, n), WS_E_NOT_UPGRADE);
    h[3] = (struct ws_header)H("Connection", "keep-alive");
    assert_int_equal(check_req(h, n), WS_E_NOT_UPGRADE);
    h[3] = (struct ws_header)H("Connection", "");
    assert_int_equal(check_req(h, n), WS_E_NOT_UPGRADE);
    /* the token may be in a second Connection field */
    h[7] = (struct ws_header)H("Connection", "Upgrade");
    assert_int_equal(check_req(h, n), 0);

    /* method */
    assert_int_equal(ws_check_request("POST", 4, 1, go_request, n, NULL, NULL), WS_E_BAD_METHOD);
    assert_int_equal(ws_check_request("get", 3, 1, go_request, n, NULL, NULL), WS_E_BAD_METHOD);
    assert_int_equal(ws_check_request("GETX", 3, 1, go_request, n, NULL, NULL), 0); /* length counts */

    /* version: 426 */
    memcpy(h, go_request, sizeof h);
    h[5] = (struct ws_header)H("Sec-WebSocket-Version", "8");
    assert_int_equal(check_req(h, n), WS_E_BAD_VERSION);
    h[5] = (struct ws_header)H("Sec-WebSocket-Version", "130");
    assert_int_equal(check_req(h, n), WS_E_BAD_VERSION);
    h[5] = (struct ws_header)H("Sec-WebSocket-Version", " 8, 13 ");
    assert_int_equal(check_req(h, n), 0);
    h[5] = (struct ws_header)H("X-Other", "13");
    assert_int_equal(check_req(h, n), WS_E_BAD_VERSION);
    /* the checks run in order: version before key */
    h[4] = (struct ws_header)H("Sec-WebSocket-Key", "bad");
    assert_int_equal(check_req(h, n), WS_E_BAD_VERSION);

    /* key: 400 */
    {
        static const char *bad[] = {
            "",
            "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 */
            "dGhlIHNhbXBsZSBub25jZQ===", /* 25 */
            "dGhlIHNhbXBsZSBub25jZQ",    /* no padding */
            "dGhlIHNhbXBsZSBub25jZ===",  /* 15 bytes */
            "dGhlIHNhbXBsZSBub25jZQA=",  /* 17 bytes */
            "dGhlIHNhbXBsZSBub25jZQAA",  /* 18 bytes */
            "dGhlIHNhbXBs ZSBub25jZQ==", /* inner space */
            "dGhlIHNhbXBsZSBub25j-Q==",  /* url alphabet */
            "dGhlIHNhbXBsZSBub25j\x80Q==",
        };
        char out[29];
        memcpy(h, go_request, sizeof h);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            h[4].value = bad[i];
            h[4].value_len = strlen(bad[i]);
            assert_int_equal(check_req(h, n), WS_E_BAD_KEY);
            assert_int_equal(ws_accept_key(bad[i], strlen(bad[i]), out), WS_E_BAD_KEY);
            assert_string_equal(out, "");
        }
        /* trimmed */
        h[4] = (struct ws_header)H("sec-websocket-key", "  AAAAAAAAAAAAAAAAAAAAAA==\t");
        assert_int_equal(ws_check_request("GET", 3, 1, h, n, &key, &kl), 0);
        assert_int_equal(kl, 24);
        assert_memory_equal(key, "AAAAAAAAAAAAAAAAAAAAAA==", 24);
        /* missing, or repeated */
        h[4] = (struct ws_header)H("X-Key", "dGhlIHNhbXBsZSBub25jZQ==");
        assert_int_equal(check_req(h, n), WS_E_BAD_KEY);
        memcpy(h, go_request, sizeof h);
        h[7] = h[4];
        assert_int_equal(check_req(h, n), WS_E_BAD_KEY);
        assert_int_equal(ws_accept_key(NULL, 0, out), WS_E_BAD_KEY);
    }
}

static void test_client_key_and_response(void **state)
{
    (void)state;
    static const uint8_t r16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    char key[25], acc[29];
    struct ws_header h[5] = {
        H("Upgrade", "websocket"),
        H("Connection", "Upgrade"),
        H("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        H("X-Websocktunnel-Client-Url", "http://x/w1"),
        H("Sec-WebSocket-Extensions", " "),
    };
    const char *rfc = "dGhlIHNhbXBsZSBub25jZQ==";

    ws_client_key(r16, key);
    assert_string_equal(key, "AAECAwQFBgcICQoLDA0ODw==");
    assert_int_equal(ws_accept_key(key, strlen(key), acc), 0);
    assert_int_equal(strlen(acc), 28);

    assert_int_equal(ws_check_response(101, h, 5, rfc), 0);
    assert_int_equal(ws_check_response(200, h, 5, rfc), WS_E_BAD_STATUS);
    assert_int_equal(ws_check_response(101, h, 5, key), WS_E_BAD_ACCEPT);
    assert_int_equal(ws_check_response(101, h + 1, 4, rfc), WS_E_NOT_UPGRADE);
    assert_int_equal(ws_check_response(101, h, 2, rfc), WS_E_BAD_ACCEPT);
    assert_int_equal(ws_check_response(101, h, 5, "short"), WS_E_INVAL);
    h[2] = (struct ws_header)H("sec-websocket-accept", " s3pPLMBiTxaQ9kYGzzhZRbK+xOo= ");
    assert_int_equal(ws_check_response(101, h, 5, rfc), 0);
    h[2] = (struct ws_header)H("sec-websocket-accept", "S3pPLMBiTxaLxEEKjkQYs0hBg2Q=");
    assert_int_equal(ws_check_response(101, h, 5, rfc), WS_E_BAD_ACCEPT);
    h[2] = (struct ws_header)H("sec-websocket-accept", "s3pPLMBiTxaLxEEKjkQYs0hBg2Q");
    assert_int_equal(ws_check_response(101, h, 5, rfc), WS_E_BAD_ACCEPT);
    h[2] = (struct ws_header)H("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    h[4] = (struct ws_header)H("Sec-WebSocket-Extensions", "permessage-deflate");
    assert_int_equal(ws_check_response(101, h, 5, rfc), WS_E_EXTENSION);
    /* two accept fields */
    h[4] = h[2];
    assert_int_equal(ws_check_response(101, h, 5, rfc), WS_E_BAD_ACCEPT);
}

static void test_format(void **state)
{
    (void)state;
    char out[512];
    static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "X-Websocktunnel-Client-Url: http://x/w1\r\n"
                               "\r\n";
    static const char req[] = "GET /a?b=c HTTP/1.1\r\n"
                              "Host: node1:443\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";
    static const char short_resp[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: A\r\n"
                                     "\r\n";
    const char *x = "X-Websocktunnel-Client-Url: http://x/w1\r\n";
    int n;

    n = ws_format_response_101(out, sizeof out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", x);
    assert_int_equal(n, sizeof resp - 1);
    assert_string_equal(out, resp);
    /* every capacity too small */
    for (size_t cap = 0; cap < sizeof resp; cap++)
        assert_int_equal(ws_format_response_101(cap ? out : NULL, cap, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", x),
                         WS_E_NOSPACE);
    n = ws_format_response_101(out, sizeof out, "A", NULL);
    assert_int_equal(n, sizeof short_resp - 1);
    assert_string_equal(out, short_resp);
    assert_int_equal(ws_format_response_101(out, sizeof out, "A", ""), sizeof short_resp - 1);
    assert_string_equal(out, short_resp);
    assert_int_equal(ws_format_response_101(out, sizeof out, "A\r\nX: y", NULL), WS_E_INVAL);
    assert_int_equal(ws_format_response_101(out, sizeof out, NULL, NULL), WS_E_INVAL);
    assert_int_equal(ws_format_response_101(out, sizeof out, "A", "X: y"), WS_E_INVAL);
    assert_int_equal(ws_format_response_101(out, sizeof out, "A", "X: y\n"), WS_E_INVAL);
    assert_int_equal(ws_format_response_101(out, sizeof out, "A", "X: y\r\n\r\nbody\r\n"), WS_E_INVAL);
    assert_int_equal(ws_format_response_101(out, sizeof out, "A", "\r\n"), WS_E_INVAL);
    assert_int_equal(ws_format_response_101(out, sizeof out, "A", "X: y\rZ\r\n"), WS_E_INVAL);
    assert_int_equal(ws_format_response_101(out, sizeof out, "A", "X: y\r\nZ: w\r\n"),
                     sizeof short_resp - 1 + 12);

    n = ws_format_request(out, sizeof out, "node1:443", "/a?b=c", "dGhlIHNhbXBsZSBub25jZQ==", NULL);
    assert_int_equal(n, sizeof req - 1);
    assert_string_equal(out, req);
    for (size_t cap = 0; cap < sizeof req; cap++)
        assert_int_equal(ws_format_request(out, cap, "node1:443", "/a?b=c", "dGhlIHNhbXBsZSBub25jZQ==", NULL),
                         WS_E_NOSPACE);
    n = ws_format_request(out, sizeof out, "h", "/", "k", "Authorization: Bearer t\r\n");
    assert_true(n > 0);
    assert_non_null(strstr(out, "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer t\r\n\r\n"));
    assert_int_equal(ws_format_request(out, sizeof out, "h", "a", "k", NULL), WS_E_INVAL);
    assert_int_equal(ws_format_request(out, sizeof out, "h", "/a b", "k", NULL), WS_E_INVAL);
    assert_int_equal(ws_format_request(out, sizeof out, "h", "/a\r\n", "k", NULL), WS_E_INVAL);
    assert_int_equal(ws_format_request(out, sizeof out, "h\r\nX: y", "/", "k", NULL), WS_E_INVAL);
    assert_int_equal(ws_format_request(out, sizeof out, "h", "/", "k\n", NULL), WS_E_INVAL);
    assert_int_equal(ws_format_request(out, sizeof out, NULL, "/", "k", NULL), WS_E_INVAL);
    assert_int_equal(ws_format_request(out, sizeof out, "h", NULL, "k", NULL), WS_E_INVAL);
    assert_int_equal(ws_format_request(out, sizeof out, "h", "/", "k", "X"), WS_E_INVAL);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int e = WS_E_EXTENSION; e <= 0; e++) {
        const char *s = ws_strerror(e);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
        for (int f = WS_E_EXTENSION; f < e; f++)
            assert_string_not_equal(s, ws_strerror(f));
    }
    assert_string_equal(ws_strerror(WS_E_EXTENSION - 1), "unknown error");
    assert_string_equal(ws_strerror(1), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_single_unmasked),
        cmocka_unit_test(test_rfc_single_masked),
        cmocka_unit_test(test_rfc_fragmented),
        cmocka_unit_test(test_rfc_ping_pong),
        cmocka_unit_test(test_rfc_256_and_64k),
        cmocka_unit_test(test_rfc_accept_key),
        cmocka_unit_test(test_zero_copy),
        cmocka_unit_test(test_loop_contract),
        cmocka_unit_test(test_error_rsv),
        cmocka_unit_test(test_error_opcode),
        cmocka_unit_test(test_error_mask),
        cmocka_unit_test(test_error_control),
        cmocka_unit_test(test_error_length_top_bit),
        cmocka_unit_test(test_non_minimal_lengths),
        cmocka_unit_test(test_error_fragmentation),
        cmocka_unit_test(test_error_too_big),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_sticky_error),
        cmocka_unit_test(test_control_between_fragments),
        cmocka_unit_test(test_mixed_stream_splits),
        cmocka_unit_test(test_buffer_growth),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encode_header_limits),
        cmocka_unit_test(test_encode_close),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_mask_copy),
        cmocka_unit_test(test_check_request),
        cmocka_unit_test(test_client_key_and_response),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
