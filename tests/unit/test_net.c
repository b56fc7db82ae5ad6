/* node/net: net_read_own(), the node's own reads of a plain socket
 * bufferevent, against a real TCP connection on 127.0.0.1 and a real
 * libevent loop: every byte in order, EOF, a reset, the read timeout, the
 * read high watermark, a bufferevent freed from its own read callback, and
 * the first read of a viewer kept small. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "node/net.h"
#include "node/node.h"

/* ---- a TCP connection on 127.0.0.1: fds[0] is read by the node's way ---- */

static void tcp_pair(int fds[2])
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fds[1], (struct sockaddr *)&sa, sizeof sa), 0);
    fds[0] = accept(l, NULL, NULL);
    assert_true(fds[0] >= 0);
    close(l);
    assert_int_equal(evutil_make_socket_nonblocking(fds[0]), 0);
    assert_int_equal(evutil_make_socket_nonblocking(fds[1]), 0);
}

struct reader;
static void run_for(struct reader *r, int ms);

/* The byte at offset off of what the writer sends. */
static unsigned char pattern_byte(size_t off)
{
    return (unsigned char)(off * 7 + 3);
}

/* Writes n bytes of the pattern from offset off to fd (non-blocking); while
 * the socket is full, r's loop runs (and reads), 10 ms at a time, at most
 * 10 s in all. */
static void send_pattern(struct reader *r, int fd, size_t off, size_t n)
{
    unsigned char buf[8192];
    int waits = 0;
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = pattern_byte(off + i);
        ssize_t w = write(fd, buf, k);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            assert_true(++waits < 1000);
            run_for(r, 10);
            continue;
        }
        assert_true(w > 0);
        off += (size_t)w;
        n -= (size_t)w;
    }
}

struct reader {
    struct event_base *base;
    struct bufferevent *bev;
    size_t got;       /* bytes checked against the pattern and drained */
    size_t max_input; /* the most the input held when the read callback ran */
    int drain;        /* 0: the read callback leaves the input alone */
    int free_in_read; /* the read callback frees the bufferevent */
    int reads;        /* read callbacks */
    int events;       /* event callbacks */
    short what;       /* the last event's flags */
};

static void read_cb(struct bufferevent *bev, void *ud)
{
    struct reader *r = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    r->reads++;
    if (n > r->max_input)
        r->max_input = n;
    if (r->free_in_read) {
        bufferevent_free(bev);
        r->bev = NULL;
        event_base_loopbreak(r->base);
        return;
    }
    if (!r->drain)
        return;
    unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern_byte(r->got + i))
            fail_msg("byte %zu differs", r->got + i);
    r->got += n;
    evbuffer_drain(in, n);
}

static void event_cb(struct bufferevent *bev, short what, void *ud)
{
    struct reader *r = ud;
    (void)bev;
    r->events++;
    r->what = what;
    event_base_loopbreak(r->base);
}

static void reader_start(struct reader *r, int fd, int bulk)
{
    memset(r, 0, sizeof *r);
    r->drain = 1;
    r->base = event_base_new();
    assert_non_null(r->base);
    r->bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(r->bev);
    bufferevent_setcb(r->bev, read_cb, NULL, event_cb, r);
    bufferevent_enable(r->bev, EV_READ);
    net_read_own(r->bev, bulk);
}

/* Runs the loop until an event callback, or for at most ms. */
static void run_for(struct reader *r, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(r->base, &tv);
    event_base_dispatch(r->base);
}

static void reader_end(struct reader *r)
{
    if (r->bev)
        bufferevent_free(r->bev);
    event_base_free(r->base);
}

/* ---- the tests ---- */

/* 3 MB then the FIN, with both first-read sizes: every byte in order, then
 * one EOF event (reading disabled), no read bigger than the node's cap. */
static void test_every_byte_then_eof(void **state)
{
    (void)state;
    for (int bulk = 0; bulk <= 1; bulk++) {
        int fds[2];
        struct reader r;
        size_t total = 3 * 1000 * 1000 + 17;
        tcp_pair(fds);
        reader_start(&r, fds[0], bulk);
        send_pattern(&r, fds[1], 0, 1000); /* the first read of a viewer is small: more than it */
        run_for(&r, 200);
        assert_int_equal(r.got, 1000);
        /* the rest as fast as the socket takes it: the loop reads while it is full */
        send_pattern(&r, fds[1], 1000, total - 1000);
        shutdown(fds[1], SHUT_WR);
        for (int i = 0; i < 200 && r.events == 0; i++)
            run_for(&r, 50);
        assert_int_equal(r.got, total);
        assert_int_equal(r.events, 1);
        assert_int_equal(r.what, BEV_EVENT_EOF | BEV_EVENT_READING);
        assert_int_equal(bufferevent_get_enabled(r.bev) & EV_READ, 0);
        assert_true(r.max_input <= NODE_MAX_SINGLE_IO);
        reader_end(&r);
        close(fds[1]);
    }
}

/* The peer resets the connection (SO_LINGER 0): an error event. */
static void test_reset(void **state)
{
    (void)state;
    int fds[2];
    struct reader r;
    struct linger lg = {1, 0};
    tcp_pair(fds);
    reader_start(&r, fds[0], 0);
    send_pattern(&r, fds[1], 0, 10);
    run_for(&r, 100);
    assert_int_equal(r.got, 10);
    assert_int_equal(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fds[1]);
    for (int i = 0; i < 40 && r.events == 0; i++)
        run_for(&r, 50);
    assert_int_equal(r.events, 1);
    assert_int_equal(r.what, BEV_EVENT_ERROR | BEV_EVENT_READING);
    reader_end(&r);
}

/* Nothing arrives within the read timeout: a timeout event, reading
 * disabled; a timeout set after net_read_own() counts as well. */
static void test_read_timeout(void **state)
{
    (void)state;
    int fds[2];
    struct reader r;
    struct timeval tv = {0, 100 * 1000};
    tcp_pair(fds);
    reader_start(&r, fds[0], 1);
    bufferevent_set_timeouts(r.bev, &tv, NULL);
    run_for(&r, 3000);
    assert_int_equal(r.events, 1);
    assert_int_equal(r.what, BEV_EVENT_TIMEOUT | BEV_EVENT_READING);
    assert_int_equal(bufferevent_get_enabled(r.bev) & EV_READ, 0);
    assert_int_equal(r.reads, 0);
    reader_end(&r);
    close(fds[1]);
}

/* An input left alone fills to the read high watermark exactly (the second
 * read of a turn stops there), reading stops, and resumes when it drains. */
static void test_high_watermark(void **state)
{
    (void)state;
    int fds[2];
    struct reader r;
    struct evbuffer *in;
    tcp_pair(fds);
    reader_start(&r, fds[0], 0);
    r.drain = 0;
    bufferevent_setwatermark(r.bev, EV_READ, 0, 10000);
    send_pattern(&r, fds[1], 0, 50000);
    run_for(&r, 300);
    in = bufferevent_get_input(r.bev);
    assert_int_equal(evbuffer_get_length(in), 10000);
    evbuffer_drain(in, 4000);
    run_for(&r, 300);
    assert_int_equal(evbuffer_get_length(in), 10000);
    /* the rest, checked from byte 4000 (the input's first now) on */
    r.drain = 1;
    r.got = 4000;
    bufferevent_setwatermark(r.bev, EV_READ, 0, 0);
    for (int i = 0; i < 20 && r.got < 50000; i++)
        run_for(&r, 50);
    assert_int_equal(r.got, 50000);
    assert_int_equal(r.events, 0);
    reader_end(&r);
    close(fds[1]);
}

/* The read callback frees the bufferevent (a viewer closed on a bad head):
 * nothing runs after it (ASan: nothing touched after the free). */
static void test_free_in_read_callback(void **state)
{
    (void)state;
    int fds[2];
    struct reader r;
    tcp_pair(fds);
    reader_start(&r, fds[0], 0);
    r.free_in_read = 1;
    send_pattern(&r, fds[1], 0, 60000); /* a second read is due after the first */
    shutdown(fds[1], SHUT_WR);
    run_for(&r, 1000);
    assert_null(r.bev);
    assert_int_equal(r.reads, 1);
    run_for(&r, 100);
    assert_int_equal(r.reads, 1);
    assert_int_equal(r.events, 0);
    reader_end(&r);
    close(fds[1]);
}

/* A viewer's first read is NET_READ_SMALL: a partial head of a few bytes
 * sits in one chain of 1 KiB, not in a bulk read's 64 KiB. */
static void test_small_first_read(void **state)
{
    (void)state;
    int fds[2];
    struct reader r;
    struct evbuffer_iovec v[2];
    tcp_pair(fds);
    reader_start(&r, fds[0], 0);
    r.drain = 0;
    send_pattern(&r, fds[1], 0, 5);
    run_for(&r, 200);
    struct evbuffer *in = bufferevent_get_input(r.bev);
    assert_int_equal(evbuffer_get_length(in), 5);
    /* the chain's free space: all of it, in the one chain that holds the 5 bytes */
    evbuffer_unfreeze(in, 0); /* a bufferevent's input is frozen at its end */
    int nv = evbuffer_reserve_space(in, 1, v, 1);
    evbuffer_freeze(in, 0);
    assert_int_equal(nv, 1);
    assert_true(v[0].iov_len >= NET_READ_SMALL - 5 && v[0].iov_len < 1024);
    reader_end(&r);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte_then_eof),   cmocka_unit_test(test_reset),
        cmocka_unit_test(test_read_timeout),          cmocka_unit_test(test_high_watermark),
        cmocka_unit_test(test_free_in_read_callback), cmocka_unit_test(test_small_first_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
