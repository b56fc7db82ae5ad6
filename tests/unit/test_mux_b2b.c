/* Two wsmux sessions back to back through the WebSocket codec and an
 * in-memory pipe that cuts the byte stream at random points and delays each
 * direction at random. 1,000 concurrent streams, opened from both sides,
 * carry 256 MiB in total in both directions; every byte is checked, credit is
 * checked on every DAT (the sessions would fail with MUX_E_FLOW otherwise, and
 * the test checks each stream's unconsumed bytes against its window), and
 * nothing may be left over at the end. Run in compat and in ext mode.
 * Prints the throughput. Set WHT_B2B_MIB to change the volume. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mux/mux.h"
#include "mux/ws.h"

#define NSTREAMS 1000
#define MAX_ROUNDS 5000000

struct fifo {
    uint8_t *buf;
    size_t off, len, cap;
};

static void fifo_add(struct fifo *f, const void *p, size_t n)
{
    if (f->off + f->len + n > f->cap) {
        if (f->len)
            memmove(f->buf, f->buf + f->off, f->len);
        f->off = 0;
        if (f->len + n > f->cap) {
            f->cap = (f->len + n) * 2;
            f->buf = realloc(f->buf, f->cap);
            assert_non_null(f->buf);
        }
    }
    memcpy(f->buf + f->off + f->len, p, n);
    f->len += n;
}

struct side;

struct tstream {
    struct side *side;
    struct mux_stream *st;
    uint32_t id;
    uint64_t sent, received, owed; /* owed: delivered, not yet consumed */
    int closed_write, got_eof, done;
};

struct side {
    const char *name;
    struct mux_session *s;
    struct ws_parser parser;
    struct fifo out;        /* bytes on the wire towards the other side */
    int is_server;
    struct tstream *streams[NSTREAMS * 2];
    int nstreams, to_open, closed_ok;
    uint64_t per_stream;
    uint64_t rx_total;
    uint32_t window;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The data sent on stream id by the side `dir` is a random table read
 * cyclically from a per-stream starting point; the table is stored twice so
 * any run of up to 64 KiB is contiguous. */
static uint8_t table[2 * 65536];

static void table_init(void)
{
    for (size_t i = 0; i < 65536; i++)
        table[i] = table[i + 65536] = (uint8_t)(rnd() >> 24);
}

static const uint8_t *pattern(uint32_t id, int dir, uint64_t i)
{
    return table + ((i + id * 7919u + (uint64_t)dir * 104729u) & 0xffff);
}

static struct tstream *tstream_new(struct side *sd, struct mux_stream *st)
{
    struct tstream *t = calloc(1, sizeof *t);
    t->side = sd;
    t->st = st;
    t->id = mux_stream_id(st);
    sd->streams[sd->nstreams++] = t;
    return t;
}

static void incoming_cb(struct mux_session *s, struct mux_stream *st, void *ud)
{
    struct side *sd = ud;
    struct tstream *t = tstream_new(sd, st);
    assert_int_equal(mux_stream_accept(st, t), 0);
}

static void accepted_cb(struct mux_stream *st, void *ud) {}

static void data_cb(struct mux_stream *st, const uint8_t *d, size_t n, void *ud)
{
    struct tstream *t = ud;
    struct side *sd = t->side;
    assert_true(n <= 65536);
    if (memcmp(d, pattern(t->id, !sd->is_server, t->received), n) != 0) {
        fprintf(stderr, "%s stream %u: bytes from %llu differ\n", sd->name, t->id,
                (unsigned long long)t->received);
        fail();
    }
    t->received += n;
    t->owed += n;
    sd->rx_total += n;
    /* the peer may never have more unconsumed data here than our window */
    assert_true(t->owed <= sd->window);
    if (rnd() % 2 == 0) {
        mux_stream_consume(st, (size_t)t->owed);
        t->owed = 0;
    }
}

static void eof_cb(struct mux_stream *st, void *ud)
{
    struct tstream *t = ud;
    assert_int_equal(t->received, t->side->per_stream);
    t->got_eof = 1;
}

static void writable_cb(struct mux_stream *st, void *ud) {}

static void closed_cb(struct mux_stream *st, int err, void *ud)
{
    struct tstream *t = ud;
    assert_int_equal(err, 0);
    assert_true(t->got_eof);
    assert_true(t->closed_write);
    t->done = 1;
    t->st = NULL;
    t->side->closed_ok++;
}

static const struct mux_callbacks cbs = {
    .stream_incoming_cb = incoming_cb,
    .stream_accepted_cb = accepted_cb,
    .stream_data_cb = data_cb,
    .stream_eof_cb = eof_cb,
    .stream_writable_cb = writable_cb,
    .stream_closed_cb = closed_cb,
};

static void side_init(struct side *sd, const char *name, int is_server, int ext, uint64_t per_stream)
{
    struct mux_config cfg;
    memset(sd, 0, sizeof *sd);
    sd->name = name;
    sd->is_server = is_server;
    sd->per_stream = per_stream;
    sd->to_open = NSTREAMS / 2;
    mux_config_defaults(&cfg, is_server);
    cfg.ext = ext;
    /* compat: the acceptor's first ACK is 4096 as a Go peer expects; the
     * rest of the 256 KiB window follows as extra credit */
    sd->window = cfg.window > cfg.accept_window || ext ? cfg.window : cfg.accept_window;
    sd->s = mux_session_new(&cfg, &cbs, sd);
    assert_non_null(sd->s);
    ws_parser_init(&sd->parser, is_server ? WS_ROLE_SERVER : WS_ROLE_CLIENT, 1 << 20);
}

/* Frames from the session onto the wire, as a socket with a bounded send buffer would take them. */
static void side_flush(struct side *sd)
{
    static uint8_t frame[WS_MAX_HEADER + 9 + 65536];
    size_t budget = 64 * 1024 + rnd() % (256 * 1024);
    while (budget > 0) {
        uint8_t *m = frame + WS_MAX_HEADER;
        size_t n = mux_session_next(sd->s, m, 9 + 65536);
        if (n == 0)
            break;
        uint8_t hdr[WS_MAX_HEADER];
        uint8_t key[4] = {(uint8_t)rnd(), (uint8_t)rnd(), (uint8_t)rnd(), (uint8_t)rnd()};
        size_t h = ws_encode_header(hdr, 1, WS_OP_BINARY, n, sd->is_server ? NULL : key);
        if (!sd->is_server)
            ws_mask(m, n, key, 0);
        fifo_add(&sd->out, hdr, h);
        fifo_add(&sd->out, m, n);
        if (rnd() % 64 == 0) { /* a keep-alive ping between messages */
            h = ws_encode_header(hdr, 1, WS_OP_PING, 0, sd->is_server ? NULL : key);
            fifo_add(&sd->out, hdr, h);
        }
        budget = n > budget ? 0 : budget - n;
    }
}

/* Moves a random cut of the wire bytes into the receiving side. */
static void deliver(struct side *from, struct side *to)
{
    if (from->out.len == 0 || rnd() % 4 == 0) /* delayed this round */
        return;
    size_t n = 1 + rnd() % (rnd() % 8 == 0 ? 64 : 200000);
    if (n > from->out.len)
        n = from->out.len;
    uint8_t *buf = from->out.buf + from->out.off;
    size_t off = 0;
    while (off < n) {
        struct ws_event ev;
        ssize_t k = ws_parse(&to->parser, buf + off, n - off, &ev);
        assert_true(k >= 0);
        off += (size_t)k;
        if (ev.type == WS_EV_MESSAGE) {
            assert_int_equal(ev.opcode, WS_OP_BINARY);
            assert_int_equal(mux_session_feed(to->s, ev.data, ev.len, 0), 0);
        } else if (ev.type == WS_EV_NONE) {
            break;
        }
    }
    from->out.off += n;
    from->out.len -= n;
}

static void side_work(struct side *sd)
{
    int err;
    while (sd->to_open > 0) {
        struct mux_stream *st = mux_stream_open(sd->s, NULL, 0, &err);
        if (!st) {
            assert_int_equal(err, MUX_E_LIMIT);
            break;
        }
        mux_stream_set_userdata(st, tstream_new(sd, st));
        sd->to_open--;
    }
    for (int i = 0; i < sd->nstreams; i++) {
        struct tstream *t = sd->streams[i];
        if (!t->st)
            continue;
        if (t->owed && rnd() % 3 == 0) {
            mux_stream_consume(t->st, (size_t)t->owed);
            t->owed = 0;
            if (!t->st)
                continue;
        }
        if (t->closed_write)
            continue;
        size_t want = (size_t)(sd->per_stream - t->sent);
        if (want > 16384)
            want = 1 + rnd() % 16384;
        ssize_t n = mux_stream_write(t->st, pattern(t->id, sd->is_server, t->sent), want);
        assert_true(n >= 0);
        t->sent += (uint64_t)n;
        if (t->sent == sd->per_stream) {
            assert_int_equal(mux_stream_close(t->st), 0);
            t->closed_write = 1;
        }
    }
}

static void side_free(struct side *sd)
{
    for (int i = 0; i < sd->nstreams; i++)
        free(sd->streams[i]);
    mux_session_free(sd->s);
    ws_parser_free(&sd->parser);
    free(sd->out.buf);
}

static void run(int ext)
{
    const char *env = getenv("WHT_B2B_MIB");
    uint64_t total = (env ? strtoull(env, NULL, 10) : 256) << 20;
    uint64_t per_stream = total / NSTREAMS / 2;
    struct side a, b;
    table_init();
    side_init(&a, "server", 1, ext, per_stream);
    side_init(&b, "client", 0, ext, per_stream);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long rounds = 0;
    while (a.closed_ok < NSTREAMS || b.closed_ok < NSTREAMS) {
        assert_true(++rounds < MAX_ROUNDS);
        side_work(&a);
        side_work(&b);
        side_flush(&a);
        side_flush(&b);
        deliver(&a, &b);
        deliver(&b, &a);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    uint64_t moved = a.rx_total + b.rx_total;
    assert_int_equal(moved, per_stream * NSTREAMS * 2);
    assert_int_equal(a.nstreams, NSTREAMS);
    assert_int_equal(b.nstreams, NSTREAMS);
    /* nothing left over */
    assert_int_equal(mux_session_stream_count(a.s), 0);
    assert_int_equal(mux_session_stream_count(b.s), 0);
    assert_int_equal(mux_session_buffered(a.s), 0);
    assert_int_equal(mux_session_buffered(b.s), 0);
    assert_int_equal(mux_session_next_deadline(a.s), -1);
    uint8_t tmp[64];
    assert_int_equal(mux_session_next(a.s, tmp, sizeof tmp), 0);
    assert_int_equal(mux_session_next(b.s, tmp, sizeof tmp), 0);
    assert_int_equal(mux_session_stats(a.s)->dropped_frames, 0);
    assert_int_equal(mux_session_stats(b.s)->dropped_frames, 0);
    printf("b2b %s: %d streams, %.1f MiB in %.2f s = %.1f MB/s (%ld rounds)\n", ext ? "ext" : "compat",
           NSTREAMS, (double)moved / (1 << 20), secs, (double)moved / 1e6 / secs, rounds);
    side_free(&a);
    side_free(&b);
}

static void test_b2b_compat(void **state) { run(0); }
static void test_b2b_ext(void **state) { run(1); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b2b_compat),
        cmocka_unit_test(test_b2b_ext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
