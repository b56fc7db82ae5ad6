/* wsmux sessions: acceptance, flow control, half-close, timeouts, limits,
 * resets and extensions, driven frame by frame as the Go peers would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux/mux.h"
#include "mux/ws.h"

struct ev {
    int accepted, incoming, eof, writable, closed, goaway;
    int closed_err;
    size_t data;
    uint8_t last[65536];
    size_t last_len;
    struct mux_stream *in; /* last incoming stream */
    int auto_accept, auto_consume;
};

static void incoming_cb(struct mux_session *s, struct mux_stream *st, void *ud)
{
    struct ev *e = ud;
    e->incoming++;
    e->in = st;
    if (e->auto_accept)
        mux_stream_accept(st, e);
}
static void accepted_cb(struct mux_stream *st, void *ud)
{
    ((struct ev *)ud)->accepted++;
}
static void data_cb(struct mux_stream *st, const uint8_t *d, size_t n, void *ud)
{
    struct ev *e = ud;
    e->data += n;
    memcpy(e->last, d, n < sizeof e->last ? n : sizeof e->last);
    e->last_len = n;
    if (e->auto_consume)
        mux_stream_consume(st, n);
}
static void eof_cb(struct mux_stream *st, void *ud)
{
    ((struct ev *)ud)->eof++;
}
static void writable_cb(struct mux_stream *st, void *ud)
{
    ((struct ev *)ud)->writable++;
}
static void closed_cb(struct mux_stream *st, int err, void *ud)
{
    struct ev *e = ud;
    e->closed++;
    e->closed_err = err;
}
static void goaway_cb(struct mux_session *s, uint32_t r, void *ud)
{
    ((struct ev *)ud)->goaway++;
}

static const struct mux_callbacks cbs = {
    .stream_incoming_cb = incoming_cb,
    .stream_accepted_cb = accepted_cb,
    .stream_data_cb = data_cb,
    .stream_eof_cb = eof_cb,
    .stream_writable_cb = writable_cb,
    .stream_closed_cb = closed_cb,
    .goaway_cb = goaway_cb,
};

static struct mux_session *new_session(int server, int ext, struct ev *e)
{
    struct mux_config cfg;
    mux_config_defaults(&cfg, server);
    cfg.ext = ext;
    memset(e, 0, sizeof *e);
    struct mux_session *s = mux_session_new(&cfg, &cbs, e);
    assert_non_null(s);
    return s;
}

static size_t next(struct mux_session *s, uint8_t *out)
{
    return mux_session_next(s, out, 9 + 65536);
}

static void expect_frame(struct mux_session *s, const char *bytes, size_t n)
{
    static uint8_t out[9 + 65536];
    size_t got = next(s, out);
    assert_int_equal(got, n);
    assert_memory_equal(out, bytes, n);
}

static void feed(struct mux_session *s, const char *bytes, size_t n, int expect)
{
    assert_int_equal(mux_session_feed(s, (const uint8_t *)bytes, n, 0), expect);
}

static void feed_ack(struct mux_session *s, uint32_t id, uint32_t n)
{
    uint8_t f[9];
    mux_frame_encode(f, MUX_ACK, id, n);
    assert_int_equal(mux_session_feed(s, f, 9, 0), 0);
}

static void feed_dat(struct mux_session *s, uint32_t id, size_t n, int expect)
{
    uint8_t *f = malloc(MUX_MAX_CONTROL_LEN + n);
    mux_frame_encode(f, MUX_DAT, id, 0);
    for (size_t i = 0; i < n; i++)
        f[5 + i] = (uint8_t)(i * 7);
    assert_int_equal(mux_session_feed(s, f, 5 + n, 0), expect);
    free(f);
}

/* The 2019 server's side of one request, as in the capture: SYN, ACK(1024)
 * from the client, then our extra credit, the request as DAT, FIN. */
static void test_server_opens_like_capture(void **state)
{
    struct ev e;
    uint8_t out[9 + 65536];
    struct mux_session *s = new_session(1, 0, &e);
    int err;
    struct mux_stream *st = mux_stream_open(s, &e, 0, &err);
    assert_non_null(st);
    assert_int_equal(mux_stream_id(st), 0);
    /* data written before acceptance is held back */
    assert_int_equal(mux_stream_write(st, "GET /ws HTTP/1.1\r\n\r\n", 20), 20);
    expect_frame(s, "\x01\x00\x00\x00\x00", 5);
    assert_int_equal(next(s, out), 0);
    assert_int_equal(mux_session_pending_syns(s), 1);
    feed_ack(s, 0, 1024);
    assert_int_equal(e.accepted, 1);
    assert_int_equal(mux_session_pending_syns(s), 0);
    /* extra credit so the worker can send a 256 KiB window, ahead of data */
    uint32_t extra = MUX_DEFAULT_WINDOW - 1024;
    char ack[9] = {2, 0, 0, 0, 0, (char)(extra & 0xff), (char)(extra >> 8), (char)(extra >> 16), 0};
    expect_frame(s, ack, 9);
    size_t n = next(s, out);
    assert_int_equal(n, 25);
    assert_memory_equal(out, "\x00\x00\x00\x00\x00GET /ws HTTP/1.1\r\n\r\n", 25);
    assert_int_equal(mux_stream_send_credit(st), 1004);
    assert_int_equal(mux_stream_recv_credit(st), MUX_DEFAULT_WINDOW);
    /* the worker's response: the ACK for the request, then DAT */
    feed_ack(s, 0, 20);
    e.auto_consume = 1;
    feed_dat(s, 0, 129, 0);
    assert_int_equal(e.data, 129);
    assert_int_equal(mux_session_buffered(s), 0);
    /* 129 bytes consumed is below the batching threshold: no ACK yet */
    assert_int_equal(next(s, out), 0);
    assert_int_equal(mux_stream_close(st), 0);
    expect_frame(s, "\x03\x00\x00\x00\x00", 5);
    assert_int_equal(e.closed, 0);
    feed(s, "\x03\x00\x00\x00\x00", 5, 0);
    assert_int_equal(e.eof, 1);
    assert_int_equal(e.closed, 1);
    assert_int_equal(e.closed_err, 0);
    assert_int_equal(mux_session_stream_count(s), 0);
    /* the next stream gets the next even id */
    st = mux_stream_open(s, &e, 0, &err);
    assert_int_equal(mux_stream_id(st), 2);
    mux_session_free(s);
}

static void test_credit_never_exceeded(void **state)
{
    struct ev e;
    uint8_t out[9 + 65536];
    struct mux_session *s = new_session(0, 0, &e);
    e.auto_accept = 1;
    feed(s, "\x01\x00\x00\x00\x00", 5, 0); /* Go server opens stream 0 */
    assert_int_equal(e.incoming, 1);
    /* compat acceptor: ACK(4096), then the rest of our window */
    expect_frame(s, "\x02\x00\x00\x00\x00\x00\x10\x00\x00", 9);
    uint32_t extra = MUX_DEFAULT_WINDOW - 4096;
    char ack[9] = {2, 0, 0, 0, 0, (char)(extra & 0xff), (char)(extra >> 8), (char)(extra >> 16), 0};
    expect_frame(s, ack, 9);
    static uint8_t big[10000];
    assert_int_equal(mux_stream_write(e.in, big, sizeof big), sizeof big);
    assert_int_equal(next(s, out), 5 + 4096); /* the acceptor assumes the opener's 4096 */
    assert_int_equal(next(s, out), 0);
    feed_ack(s, 0, 100);
    assert_int_equal(next(s, out), 5 + 100);
    assert_int_equal(next(s, out), 0);
    feed_ack(s, 0, 100000);
    assert_int_equal(next(s, out), 5 + 10000 - 4196);
    assert_int_equal(mux_stream_send_credit(e.in), 100000 - (10000 - 4196));
    mux_session_free(s);
}

static void test_flow_violation_and_malformed(void **state)
{
    struct ev e;
    struct mux_session *s = new_session(1, 0, &e);
    int err;
    mux_stream_open(s, &e, 0, &err);
    uint8_t out[64];
    next(s, out);
    feed_ack(s, 0, 1024);
    /* our window is 256 KiB: one byte more is a violation */
    feed_dat(s, 0, MUX_DEFAULT_WINDOW, 0);
    feed_dat(s, 0, 1, MUX_E_FLOW);
    /* compat: malformed frames are dropped, not fatal */
    struct mux_session *c = new_session(0, 0, &e);
    feed(c, "\x02\x00\x00", 3, 0);
    feed(c, "\x02\x00\x00\x00\x00\x01", 6, 0);
    feed(c, "\x09\x00\x00\x00\x00", 5, 0);
    feed(c, "\x00\x05\x00\x00\x00zz", 7, 0); /* unknown stream */
    feed(c, "\x01\x03\x00\x00\x00", 5, 0);   /* a SYN with the client's (odd) parity */
    assert_int_equal(e.incoming, 0);
    assert_int_equal(mux_session_stats(c)->dropped_frames, 4);
    assert_int_equal(mux_session_stats(c)->late_frames, 1);
    /* ext: a malformed frame ends the session */
    struct mux_session *x = new_session(0, 1, &e);
    feed(x, "\x02\x00\x00", 3, MUX_E_SHORT);
    mux_session_free(x);
    mux_session_free(c);
    mux_session_free(s);
}

static void test_newest_client_4mib(void **state)
{
    struct ev e;
    uint8_t out[64];
    struct mux_session *s = new_session(1, 0, &e);
    int err;
    struct mux_stream *st = mux_stream_open(s, &e, 0, &err);
    next(s, out);
    feed_ack(s, 0, 4194304);
    /* no extra grant: the client already assumes 4 MiB */
    assert_int_equal(next(s, out), 0);
    for (int i = 0; i < 128; i++)
        feed_dat(s, 0, 32768, 0);
    assert_int_equal(mux_session_buffered(s), 4194304);
    assert_int_equal(mux_stream_recv_credit(st), 0);
    feed_dat(s, 0, 1, MUX_E_FLOW);
    mux_session_free(s);
}

static void test_batched_acks(void **state)
{
    struct ev e;
    uint8_t out[64];
    struct mux_session *s = new_session(1, 0, &e);
    int err;
    struct mux_stream *st = mux_stream_open(s, &e, 0, &err);
    next(s, out);
    feed_ack(s, 0, MUX_DEFAULT_WINDOW);
    assert_int_equal(next(s, out), 0);
    int acks = 0;
    for (int i = 0; i < 64; i++) { /* 64 x 4 KiB = one window */
        feed_dat(s, 0, 4096, 0);
        mux_stream_consume(st, 4096);
        while (next(s, out) == 9)
            acks++;
    }
    /* one ACK per quarter window, not one per read */
    assert_int_equal(acks, 4);
    assert_int_equal(mux_stream_recv_credit(st), MUX_DEFAULT_WINDOW);
    mux_session_free(s);
}

static void test_unconsumed_holds_close(void **state)
{
    struct ev e;
    uint8_t out[64];
    struct mux_session *s = new_session(1, 0, &e);
    int err;
    struct mux_stream *st = mux_stream_open(s, &e, 0, &err);
    next(s, out);
    feed_ack(s, 0, 1024);
    next(s, out);
    feed_dat(s, 0, 100, 0);
    feed(s, "\x03\x00\x00\x00\x00", 5, 0);
    mux_stream_close(st);
    expect_frame(s, "\x03\x00\x00\x00\x00", 5);
    assert_int_equal(e.closed, 0); /* 100 bytes still with the application */
    mux_stream_consume(st, 60);
    assert_int_equal(e.closed, 0);
    mux_stream_consume(st, 40);
    assert_int_equal(e.closed, 1);
    assert_int_equal(mux_session_buffered(s), 0);
    assert_int_equal(mux_session_stream_count(s), 0);
    mux_session_free(s);
}

static void test_accept_timeout(void **state)
{
    for (int ext = 0; ext <= 1; ext++) {
        struct ev e;
        uint8_t out[64];
        struct mux_session *s = new_session(1, ext, &e);
        int err;
        mux_stream_open(s, &e, 1000, &err);
        next(s, out);
        assert_int_equal(mux_session_next_deadline(s), 31000);
        mux_session_tick(s, 30999);
        assert_int_equal(e.closed, 0);
        mux_session_tick(s, 31000);
        assert_int_equal(e.closed, 1);
        assert_int_equal(e.closed_err, MUX_E_TIMEOUT);
        assert_int_equal(mux_session_pending_syns(s), 0);
        if (ext) {
            expect_frame(s, "\x05\x00\x00\x00\x00\x03\x00\x00\x00", 9);
            assert_int_equal(mux_session_stream_count(s), 0);
        } else {
            expect_frame(s, "\x03\x00\x00\x00\x00", 5);
            /* lingers until the peer's FIN or the linger time */
            assert_int_equal(mux_session_stream_count(s), 1);
            feed_ack(s, 0, 1024); /* a late ACK is ignored */
            assert_int_equal(e.accepted, 0);
            mux_session_tick(s, 31000 + 30000);
            assert_int_equal(mux_session_stream_count(s), 0);
        }
        assert_int_equal(mux_session_next_deadline(s), -1);
        mux_session_free(s);
    }
}

static void test_pending_syn_limit(void **state)
{
    struct ev e;
    struct mux_config cfg;
    mux_config_defaults(&cfg, 1);
    cfg.max_pending_syn = 3;
    memset(&e, 0, sizeof e);
    struct mux_session *s = mux_session_new(&cfg, &cbs, &e);
    int err;
    for (int i = 0; i < 3; i++)
        assert_non_null(mux_stream_open(s, &e, 0, &err));
    assert_null(mux_stream_open(s, &e, 0, &err));
    assert_int_equal(err, MUX_E_LIMIT);
    feed_ack(s, 2, 1024);
    assert_non_null(mux_stream_open(s, &e, 0, &err));
    assert_int_equal(mux_session_pending_syns(s), 3);
    mux_session_free(s);
}

static void test_reset_compat_lingers(void **state)
{
    struct ev e;
    uint8_t out[64];
    struct mux_session *s = new_session(1, 0, &e);
    int err;
    struct mux_stream *st = mux_stream_open(s, &e, 0, &err);
    next(s, out);
    feed_ack(s, 0, 1024);
    while (next(s, out))
        ;
    mux_stream_write(st, "queued", 6);
    mux_stream_reset(st, MUX_REASON_CANCEL);
    /* queued data is dropped; a FIN goes out */
    expect_frame(s, "\x03\x00\x00\x00\x00", 5);
    assert_int_equal(next(s, out), 0);
    /* the peer's data is discarded but acknowledged so it reaches its FIN */
    feed_dat(s, 0, 500, 0);
    assert_int_equal(e.data, 0);
    expect_frame(s, "\x02\x00\x00\x00\x00\xf4\x01\x00\x00", 9);
    assert_int_equal(mux_session_stream_count(s), 1);
    feed(s, "\x03\x00\x00\x00\x00", 5, 0);
    assert_int_equal(mux_session_stream_count(s), 0);
    assert_int_equal(e.closed, 0); /* no callback after reset */
    /* reset of a stream whose SYN never left: nothing is sent at all */
    st = mux_stream_open(s, &e, 0, &err);
    mux_stream_reset(st, 0);
    assert_int_equal(next(s, out), 0);
    assert_int_equal(mux_session_stream_count(s), 0);
    assert_int_equal(mux_session_pending_syns(s), 0);
    mux_session_free(s);
}

static void test_ext_rst_and_goaway(void **state)
{
    struct ev e;
    uint8_t out[64];
    struct mux_session *s = new_session(1, 1, &e);
    int err;
    struct mux_stream *st = mux_stream_open(s, &e, 0, &err);
    next(s, out);
    feed_ack(s, 0, 1024);
    while (next(s, out))
        ;
    feed(s, "\x05\x00\x00\x00\x00\x05\x00\x00\x00", 9, 0);
    assert_int_equal(e.closed, 1);
    assert_int_equal(e.closed_err, MUX_E_RESET);
    assert_int_equal(mux_session_stream_count(s), 0);
    feed(s, "\x06\x00\x00\x00\x00\x06\x00\x00\x00", 9, 0);
    assert_int_equal(e.goaway, 1);
    assert_null(mux_stream_open(s, &e, 0, &err));
    assert_int_equal(err, MUX_E_GOAWAY);
    (void)st;
    struct ev e2;
    struct mux_session *c = new_session(0, 1, &e2);
    assert_int_equal(mux_session_goaway(c, MUX_REASON_DRAIN), 0);
    expect_frame(c, "\x06\x00\x00\x00\x00\x06\x00\x00\x00", 9);
    /* a SYN after our GOAWAY is refused with RST */
    e2.auto_accept = 1;
    feed(c, "\x01\x00\x00\x00\x00", 5, 0);
    assert_int_equal(e2.incoming, 0);
    expect_frame(c, "\x05\x00\x00\x00\x00\x01\x00\x00\x00", 9);
    assert_int_equal(mux_session_stream_count(c), 0);
    /* compat sessions cannot send GOAWAY */
    struct mux_session *p = new_session(0, 0, &e2);
    assert_int_equal(mux_session_goaway(p, 0), MUX_E_INVAL);
    mux_session_free(p);
    mux_session_free(c);
    mux_session_free(s);
}

static void test_control_first_and_round_robin(void **state)
{
    struct ev e;
    uint8_t out[9 + 65536];
    struct mux_session *s = new_session(1, 0, &e);
    int err;
    struct mux_stream *a = mux_stream_open(s, &e, 0, &err);
    struct mux_stream *b = mux_stream_open(s, &e, 0, &err);
    while (next(s, out))
        ;
    feed_ack(s, 0, 1 << 20);
    feed_ack(s, 2, 1 << 20);
    static uint8_t big[100000];
    mux_stream_write(a, big, sizeof big);
    mux_stream_write(b, big, sizeof big);
    struct mux_stream *c = mux_stream_open(s, &e, 0, &err);
    /* the new SYN goes ahead of queued data */
    assert_int_equal(next(s, out), 5);
    assert_int_equal(out[0], MUX_SYN);
    uint32_t order[6];
    for (int i = 0; i < 6; i++) {
        size_t n = next(s, out);
        assert_int_equal(out[0], MUX_DAT);
        assert_true(n <= 5 + MUX_DEFAULT_MAX_FRAME);
        order[i] = out[1];
    }
    for (int i = 0; i < 6; i++)
        assert_int_equal(order[i], (i % 2) * 2); /* a, b, a, b, ... */
    (void)c;
    mux_session_free(s);
}

static void test_writable_and_limits(void **state)
{
    struct ev e;
    uint8_t out[9 + 65536];
    struct mux_config cfg;
    mux_config_defaults(&cfg, 1);
    cfg.send_buffer = 1000;
    memset(&e, 0, sizeof e);
    struct mux_session *s = mux_session_new(&cfg, &cbs, &e);
    int err;
    struct mux_stream *st = mux_stream_open(s, &e, 0, &err);
    assert_int_equal(mux_stream_write(st, out, 1500), 1000);
    assert_int_equal(mux_stream_write(st, out, 10), 0);
    while (next(s, out))
        ;
    feed_ack(s, 0, 600);
    assert_int_equal(e.writable, 0);
    while (next(s, out))
        ;
    assert_int_equal(e.writable, 1);
    assert_int_equal(mux_stream_write_space(st), 600);
    mux_stream_close(st);
    assert_int_equal(mux_stream_write(st, "x", 1), MUX_E_CLOSED);
    mux_session_free(s);
}

static void test_abort_and_ids(void **state)
{
    struct ev e;
    struct mux_session *s = new_session(0, 0, &e);
    int err;
    for (int i = 0; i < 5; i++)
        assert_int_equal(mux_stream_id(mux_stream_open(s, &e, 0, &err)), 1 + 2 * i);
    mux_session_abort(s, MUX_E_ABORTED);
    assert_int_equal(e.closed, 5);
    assert_int_equal(e.closed_err, MUX_E_ABORTED);
    assert_int_equal(mux_session_feed(s, (const uint8_t *)"\x01\x00\x00\x00\x00", 5, 0), MUX_E_ABORTED);
    assert_null(mux_stream_open(s, &e, 0, &err));
    mux_session_free(s);
}

/* A reset from inside the data callback must not touch freed memory. */
static void reset_in_data_cb(struct mux_stream *st, const uint8_t *d, size_t n, void *ud)
{
    mux_stream_reset(st, 0);
}

static void test_reset_inside_callback(void **state)
{
    struct mux_callbacks c = cbs;
    c.stream_data_cb = reset_in_data_cb;
    struct mux_config cfg;
    mux_config_defaults(&cfg, 1);
    cfg.ext = 1;
    struct ev e;
    memset(&e, 0, sizeof e);
    struct mux_session *s = mux_session_new(&cfg, &c, &e);
    int err;
    uint8_t out[64];
    mux_stream_open(s, &e, 0, &err);
    next(s, out);
    feed_ack(s, 0, 1024);
    while (next(s, out))
        ;
    feed_dat(s, 0, 10, 0);
    expect_frame(s, "\x05\x00\x00\x00\x00\x00\x00\x00\x00", 9);
    assert_int_equal(mux_session_stream_count(s), 0);
    mux_session_free(s);
}

static int output_calls;
static void count_output_cb(struct mux_session *s, void *ud)
{
    output_calls++;
}

/* output_cb fires again once the queue has emptied, even when the adapter
 * stopped calling next() as soon as has_output went false. */
static void test_output_cb_resignals(void **state)
{
    struct mux_callbacks c = cbs;
    c.output_cb = count_output_cb;
    struct mux_config cfg;
    mux_config_defaults(&cfg, 0);
    struct ev e;
    memset(&e, 0, sizeof e);
    e.auto_accept = 1;
    struct mux_session *s = mux_session_new(&cfg, &c, &e);
    uint8_t out[64];
    output_calls = 0;
    feed(s, "\x01\x00\x00\x00\x00", 5, 0);
    assert_int_equal(output_calls, 1);
    do
        next(s, out);
    while (mux_session_has_output(s));
    mux_stream_write(e.in, "hello", 5);
    assert_int_equal(output_calls, 2);
    mux_session_free(s);
}

/* output_cb fires again when the output went away without next() (the
 * peer reset the only stream with data) and mux_session_next_ws() then
 * found nothing. Without it the writer never heard of the next frame: a
 * download stalled until another frame came (bench.sh caught it). */
static void test_output_cb_after_output_vanished(void **state)
{
    struct mux_callbacks c = cbs;
    c.output_cb = count_output_cb;
    struct mux_config cfg;
    mux_config_defaults(&cfg, 0);
    cfg.ext = 1; /* RST */
    struct ev e;
    memset(&e, 0, sizeof e);
    struct mux_session *s = mux_session_new(&cfg, &c, &e);
    uint8_t out[256], rst[9];
    int err;
    output_calls = 0;
    struct mux_stream *a = mux_stream_open(s, &e, 0, &err);
    assert_int_equal(output_calls, 1); /* its SYN */
    while (next(s, out) > 0)
        ;
    feed_ack(s, mux_stream_id(a), 1 << 16);
    assert_int_equal(mux_stream_write(a, "data", 4), 4);
    assert_int_equal(output_calls, 2);
    mux_frame_encode(rst, MUX_RST, mux_stream_id(a), 0);
    assert_int_equal(mux_session_feed(s, rst, 9, 0), 0);
    assert_false(mux_session_has_output(s)); /* the data went with the stream */
    assert_int_equal(mux_session_next_ws(s, out, sizeof out, NULL, NULL), 0);
    mux_stream_open(s, &e, 0, &err);
    assert_int_equal(output_calls, 3); /* the new SYN is heard of */
    mux_session_free(s);
}

/* ---- mux_session_next_ws(): frames made in place ---------------------------- */

static int key_calls;
static int counting_key(void *ud, uint8_t key[4])
{
    key_calls++;
    memcpy(key, ud, 4);
    return 0;
}
static int failing_key(void *ud, uint8_t key[4])
{
    return -1;
}

/* What the frames of mux_session_next_ws() said: the SYNs, and the DAT
 * payloads of streams 0 and 2 in order. */
struct heard {
    int frames, syns;
    uint8_t got[2][100000];
    size_t got_len[2];
};

/* Parses every WebSocket frame of out[len] (one wsmux frame each) into h,
 * checking that each header is the shortest form. */
static void parse_ws(uint8_t *out, size_t len, int masked, struct heard *h)
{
    struct ws_parser p;
    ws_parser_init(&p, masked ? WS_ROLE_SERVER : WS_ROLE_CLIENT, 1 << 20);
    size_t off = 0;
    while (off < len) {
        struct ws_event ev;
        size_t start = off;
        ssize_t n = ws_parse(&p, out + off, len - off, &ev);
        assert_true(n > 0);
        assert_int_equal(ev.type, WS_EV_MESSAGE);
        assert_int_equal(ev.opcode, WS_OP_BINARY);
        off += (size_t)n;
        assert_int_equal(off - start, ws_header_len(ev.len, masked) + ev.len);
        struct mux_frame f;
        assert_int_equal(mux_frame_decode(ev.data, ev.len, 0, &f), 0);
        if (f.type == MUX_SYN) {
            h->syns++;
        } else {
            assert_int_equal(f.type, MUX_DAT);
            assert_true(f.id == 0 || f.id == 2);
            memcpy(h->got[f.id / 2] + h->got_len[f.id / 2], f.payload, f.len);
            h->got_len[f.id / 2] += f.len;
        }
        h->frames++;
    }
    ws_parser_free(&p);
}

static void test_next_ws(void **state)
{
    static uint8_t big[100000], out[70000];
    static struct heard h;
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + i / 251);
    for (int masked = 0; masked <= 1; masked++) {
        uint8_t key[4] = {0x12, 0x34, 0x56, (uint8_t)(0x78 * masked)};
        struct ev e;
        struct mux_session *s = new_session(1, 0, &e);
        int err;
        assert_int_equal(mux_session_next_ws(s, out, sizeof out, NULL, NULL), 0); /* nothing yet */
        struct mux_stream *a = mux_stream_open(s, &e, 0, &err);
        struct mux_stream *b = mux_stream_open(s, &e, 0, &err);
        feed_ack(s, 0, 1 << 20);
        feed_ack(s, 2, 1 << 20);
        mux_stream_write(a, big, sizeof big);
        mux_stream_write(b, "tiny", 4); /* frames under 126 bytes: their headers are shorter */
        size_t caps[] = {sizeof out, 5000, WS_MAX_HEADER + MUX_MAX_CONTROL_LEN, 200};
        memset(&h, 0, sizeof h);
        key_calls = 0;
        for (int round = 0;; round++) {
            size_t cap = caps[round % 4];
            memset(out, 0xee, cap); /* so that a byte not written shows */
            size_t n = mux_session_next_ws(s, out, cap, masked ? counting_key : NULL, key);
            assert_true(n <= cap);
            if (n == 0)
                break;
            parse_ws(out, n, masked, &h);
        }
        assert_int_equal(h.syns, 2);
        assert_int_equal(h.got_len[0], sizeof big); /* every byte of a, in order */
        assert_memory_equal(h.got[0], big, sizeof big);
        assert_int_equal(h.got_len[1], 4);
        assert_memory_equal(h.got[1], "tiny", 4);
        assert_int_equal(key_calls, masked ? h.frames : 0); /* a key per frame */
        mux_session_free(s);
    }
    /* no key: nothing is sent, and the caller hears of it */
    struct ev e;
    struct mux_session *s = new_session(1, 0, &e);
    int err;
    mux_stream_open(s, &e, 0, &err);
    assert_int_equal(mux_session_next_ws(s, out, sizeof out, failing_key, NULL), (size_t)-1);
    mux_session_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_opens_like_capture),
        cmocka_unit_test(test_credit_never_exceeded),
        cmocka_unit_test(test_flow_violation_and_malformed),
        cmocka_unit_test(test_newest_client_4mib),
        cmocka_unit_test(test_batched_acks),
        cmocka_unit_test(test_unconsumed_holds_close),
        cmocka_unit_test(test_accept_timeout),
        cmocka_unit_test(test_pending_syn_limit),
        cmocka_unit_test(test_reset_compat_lingers),
        cmocka_unit_test(test_ext_rst_and_goaway),
        cmocka_unit_test(test_control_first_and_round_robin),
        cmocka_unit_test(test_writable_and_limits),
        cmocka_unit_test(test_abort_and_ids),
        cmocka_unit_test(test_reset_inside_callback),
        cmocka_unit_test(test_output_cb_resignals),
        cmocka_unit_test(test_output_cb_after_output_vanished),
        cmocka_unit_test(test_next_ws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
