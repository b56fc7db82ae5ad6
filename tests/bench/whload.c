/* whload: opens many worker registrations quickly and holds them (issue 12,
 * a load tool of the benchmarks; docs/benchmarks.md). One thread, one
 * libevent loop; every connection is a bufferevent (with OpenSSL for --tls).
 *
 *   whload workers --nodes HOST:PORT[,HOST:PORT...] --count N --secret S
 *                  [--prefix P] [--first K] [--concurrency C] [--hold SECONDS]
 *                  [--reconnect] [--stats-every SECONDS] [--timeout SECONDS]
 *                  [--aud AUDIENCE] [--tls]
 *
 * Worker ids P<K>..P<K+N-1>, each with its own HS256 token (node/token.c's
 * token_mint, as `whtunnel token --id ID` makes), registered with the request
 * whclient sends (client/wsconn.c), at most C handshakes in flight, worker P<i>
 * on node i mod len(nodes). The 101 is read with node/http1.c's response
 * parser and mux/ws.c's ws_check_response, the frames with mux/ws.c's
 * ws_parse: no parser of its own. Held sessions answer pings, refuse every
 * stream the node opens (RST, or ACK(0) + FIN without the extension), and
 * with --reconnect register again at once on the next node when the node
 * closes them or sends GOAWAY.
 *
 * stdout, one line each: "ready N seconds=T rate=R cpu=C failed=F" once
 * every id got its first 101 (T from the first connect to the last 101, C
 * whload's own CPU seconds since then, F failed attempts so far); "stats t=.. open=.. registered=..
 * reconnects=.. failed=.. closed=.. inflight=.. queued=.. cpu=.." every
 * --stats-every seconds; "done ..." (same fields) on exit: stdin EOF (when
 * stdin is a pipe, socket or terminal), SIGTERM/SIGINT, or --hold seconds
 * after ready (or after the --timeout registration deadline, when not every
 * id registered by then). Exit status 0 when every id registered, else 1.
 */
#include "mux/ws.h"
#include "node/http1.h"
#include "node/token.h"
#include "util/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WL_MAX_NODES 64
#define WL_MAX_COUNT 1000000
#define WL_FD_RESERVE 32      /* descriptors besides the workers' (stdio, epoll, signals, slack) */
#define WL_MAX_HEAD 8192      /* bytes of a registration answer's head */
#define WL_MAX_MESSAGE 65536  /* bytes of one WebSocket message from the node (wsmux DAT is <= 32 KiB) */
#define WL_MAX_TRIES 20       /* --reconnect: attempts in a row for one id before it is given up */
#define WL_MAX_CONN_TRIES 3   /* without --reconnect: attempts after connection errors (not answers) */
#define WL_HANDSHAKE_MAX_S 10 /* a handshake's own limit (--timeout, when shorter) */
#define WL_RETRY_MS 200       /* --reconnect: pause before another attempt after a failed one */
#define WL_ERRORS_SHOWN 5     /* failures described on stderr; the rest only counted */
#define WL_TOKEN_TTL_S 86400  /* tokens are minted once, at start */
#define WL_MAX_HOLD_S 604800  /* --hold, --timeout: at most a week */
#define WL_HEADERS_SEEN 32    /* response fields handed to ws_check_response */

/* wsmux frame types (docs/protocol.md, "Frames") */
#define WL_MUX_SYN 1
#define WL_MUX_ACK 2
#define WL_MUX_FIN 3
#define WL_MUX_RST 5
#define WL_MUX_GOAWAY 6
#define WL_MUX_RST_REFUSED 1

enum wl_state {
    WL_QUEUED = 0, /* waiting for a handshake slot (or a retry timer) */
    WL_HANDSHAKE,  /* connecting, request sent, waiting for the 101 */
    WL_OPEN,       /* registered and held */
    WL_GONE,       /* closed by the node (no --reconnect), or given up */
};

struct wl_node {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host[256];
    char hostport[300];
};

struct wl_worker {
    struct bufferevent *bev;
    char *token;
    uint32_t index; /* the id is prefix + (first + index) */
    uint16_t node;  /* index into wl.nodes */
    uint8_t state;  /* enum wl_state */
    uint8_t ext;    /* the node confirmed X-Whtunnel-Ext: 1 */
    uint8_t tries;  /* failed attempts in a row */
    uint8_t rereg;  /* this attempt registers the id again after a close */
    uint8_t ever;   /* the id got a 101 at least once */
    char key[25];   /* Sec-WebSocket-Key of the current attempt */
    struct ws_parser parser;
};

static struct {
    /* options */
    struct wl_node nodes[WL_MAX_NODES];
    unsigned nnodes;
    uint32_t count, first, concurrency;
    const char *prefix, *secret, *aud;
    double hold_s, stats_s, timeout_s;
    bool reconnect, tls;
    /* state */
    struct event_base *base;
    SSL_CTX *ssl_ctx;
    struct wl_worker *w;
    uint32_t *queue; /* ring of worker indices waiting for a handshake slot */
    uint32_t q_head, q_len;
    uint32_t inflight;
    struct event *hold_ev, *stats_ev, *deadline_ev, *stdin_ev, *sigterm_ev, *sigint_ev;
    int64_t start_ms, first_connect_ms, last_101_ms;
    double cpu0; /* CPU seconds used before the first connect (minting tokens) */
    bool ready;
    /* counters */
    uint64_t open, registered, reconnects, failed, closed, first_done, given_up;
    uint64_t rng;
} wl;

/* ---- small helpers ------------------------------------------------------------ */

static void wl_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("whload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* xorshift64*: mask keys and handshake nonces (not secrets; the node only
 * checks their shape) */
static uint64_t wl_rand(void)
{
    wl.rng ^= wl.rng >> 12;
    wl.rng ^= wl.rng << 25;
    wl.rng ^= wl.rng >> 27;
    return wl.rng * UINT64_C(2685821657736338717);
}

static double wl_seconds(int64_t ms)
{
    return (double)ms / 1000.0;
}

/* seconds a handshake may take */
static double wl_handshake_s(void)
{
    return wl.timeout_s < WL_HANDSHAKE_MAX_S ? wl.timeout_s : WL_HANDSHAKE_MAX_S;
}

static void wl_id(const struct wl_worker *w, char *out, size_t cap)
{
    snprintf(out, cap, "%s%" PRIu32, wl.prefix, wl.first + w->index);
}

/* CPU seconds (user + system) this process used so far */
static double wl_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void wl_counters(const char *what)
{
    printf("%s t=%.3f open=%" PRIu64 " registered=%" PRIu64 " reconnects=%" PRIu64 " failed=%" PRIu64
           " closed=%" PRIu64 " inflight=%" PRIu32 " queued=%" PRIu32 " cpu=%.3f\n",
           what, wl_seconds(util_now_ms() - wl.start_ms), wl.open, wl.registered, wl.reconnects, wl.failed,
           wl.closed, wl.inflight, wl.q_len, wl_cpu());
}

/* ---- the handshake queue ------------------------------------------------------- */

static void wl_start(struct wl_worker *w);
static void wl_start_hold(void);
static void wl_deadline_cb(evutil_socket_t fd, short what, void *arg);

static void wl_enqueue(struct wl_worker *w)
{
    w->state = WL_QUEUED;
    wl.queue[(wl.q_head + wl.q_len) % wl.count] = w->index; /* a worker is queued at most once */
    wl.q_len++;
}

/* Starts handshakes while there are slots and queued workers. */
static void wl_pump(void)
{
    while (wl.q_len > 0 && wl.inflight < wl.concurrency) {
        struct wl_worker *w = &wl.w[wl.queue[wl.q_head]];
        wl.q_head = (wl.q_head + 1) % wl.count;
        wl.q_len--;
        wl_start(w);
    }
}

static void wl_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    wl_enqueue(arg);
    wl_pump();
}

/* Drops the connection (no callback of it runs afterwards). */
static void wl_drop(struct wl_worker *w)
{
    if (w->bev) {
        bufferevent_free(w->bev); /* safe inside its own callbacks: libevent defers the free */
        w->bev = NULL;
    }
    ws_parser_free(&w->parser);
}

/* A handshake that did not end in a registration. */
static void wl_fail(struct wl_worker *w, int status, const char *why)
{
    wl.failed++;
    if (wl.failed <= WL_ERRORS_SHOWN) {
        char id[300];
        wl_id(w, id, sizeof id);
        if (status)
            fprintf(stderr, "whload: %s on %s: answered %d (%s)\n", id, wl.nodes[w->node].hostport, status,
                    why);
        else
            fprintf(stderr, "whload: %s on %s: %s\n", id, wl.nodes[w->node].hostport, why);
    }
    wl_drop(w);
    wl.inflight--;
    ++w->tries;
    /* with --reconnect any failure is tried again, on the next node; without,
     * only a connection that failed without an answer (reset, timeout), on
     * the same node: a loaded machine's hiccup is not the node's refusal */
    if ((wl.reconnect && w->tries < WL_MAX_TRIES) ||
        (!wl.reconnect && !status && w->tries < WL_MAX_CONN_TRIES)) {
        struct timeval tv = {0, WL_RETRY_MS * 1000};
        if (wl.reconnect)
            w->node = (uint16_t)((w->node + 1) % wl.nnodes);
        w->state = WL_QUEUED;
        if (event_base_once(wl.base, -1, EV_TIMEOUT, wl_retry_cb, w, &tv) != 0)
            wl_die("event_base_once failed");
    } else {
        w->state = WL_GONE;
        wl.given_up++;
        if (!wl.ready && wl.first_done + wl.given_up == wl.count &&
            event_pending(wl.deadline_ev, EV_TIMEOUT, NULL)) {
            event_del(wl.deadline_ev); /* nothing left to wait for */
            wl_deadline_cb(-1, EV_TIMEOUT, NULL);
        }
    }
    wl_pump();
}

/* The node closed a registered session (close frame, GOAWAY, EOF, reset). */
static void wl_closed(struct wl_worker *w)
{
    wl.closed++;
    wl.open--;
    wl_drop(w);
    if (!wl.reconnect) {
        w->state = WL_GONE;
        return;
    }
    w->node = (uint16_t)((w->node + 1) % wl.nnodes);
    w->rereg = 1;
    w->tries = 0;
    wl_enqueue(w);
    wl_pump();
}

/* ---- sending ------------------------------------------------------------------- */

/* Sends one masked frame (client to server) with a payload of at most 125 bytes. */
static void wl_send(struct wl_worker *w, enum ws_opcode op, const uint8_t *payload, size_t len)
{
    uint8_t out[WS_MAX_HEADER + WS_MAX_CONTROL_PAYLOAD];
    uint64_t r = wl_rand();
    uint8_t key[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
    size_t h = ws_encode_header(out, 1, op, len, key);
    if (h == 0 || len > WS_MAX_CONTROL_PAYLOAD)
        return;
    memcpy(out + h, payload, len);
    ws_mask(out + h, len, key, 0);
    bufferevent_write(w->bev, out, h + len);
}

/* A wsmux frame: type, stream id (LE), an optional 4-byte LE value. */
static void wl_send_mux(struct wl_worker *w, uint8_t type, uint32_t sid, const uint32_t *value)
{
    uint8_t f[9] = {type, (uint8_t)sid, (uint8_t)(sid >> 8), (uint8_t)(sid >> 16), (uint8_t)(sid >> 24)};
    size_t n = 5;
    if (value) {
        for (int i = 0; i < 4; i++)
            f[5 + i] = (uint8_t)(*value >> (8 * i));
        n = 9;
    }
    wl_send(w, WS_OP_BINARY, f, n);
}

static void wl_send_close(struct wl_worker *w, uint16_t code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    wl_send(w, WS_OP_CLOSE, p, code ? 2 : 0);
}

/* ---- receiving ----------------------------------------------------------------- */

/* One wsmux frame from the node. Returns 1 when the session is to end. */
static int wl_on_mux(struct wl_worker *w, const uint8_t *m, size_t len)
{
    if (len < 5)
        return 0;
    uint32_t sid = (uint32_t)m[1] | (uint32_t)m[2] << 8 | (uint32_t)m[3] << 16 | (uint32_t)m[4] << 24;
    switch (m[0]) {
    case WL_MUX_SYN: { /* an idle worker serves nothing: refuse the stream at once */
        uint32_t v = w->ext ? WL_MUX_RST_REFUSED : 0;
        if (w->ext) {
            wl_send_mux(w, WL_MUX_RST, sid, &v);
        } else {
            wl_send_mux(w, WL_MUX_ACK, sid, &v);
            wl_send_mux(w, WL_MUX_FIN, sid, NULL);
        }
        return 0;
    }
    case WL_MUX_GOAWAY: /* drain: leave at once (no streams here), as whclient does */
        if (!w->ext)
            return 0;
        wl_send_close(w, 1000);
        return 1;
    default: return 0;
    }
}

/* Feeds what arrived on a registered session to its WebSocket parser. */
static void wl_on_frames(struct wl_worker *w, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in), off = 0;
    uint8_t *buf = evbuffer_pullup(in, -1);
    int end = 0;
    struct ws_event ev;

    for (int guard = 0; guard <= (int)len && !end; guard++) { /* each event consumes >= 1 byte */
        ssize_t n = ws_parse(&w->parser, buf + off, len - off, &ev);
        if (n < 0) {
            wl_send_close(w, ws_err_close_code((int)n));
            end = 1;
            break;
        }
        off += (size_t)n;
        if (ev.type == WS_EV_NONE)
            break;
        if (ev.type == WS_EV_PING)
            wl_send(w, WS_OP_PONG, ev.data, ev.len);
        else if (ev.type == WS_EV_CLOSE) {
            wl_send_close(w, ev.close_code == WS_CLOSE_NO_STATUS ? 0 : 1000);
            end = 1;
        } else if (ev.type == WS_EV_MESSAGE && ev.opcode == WS_OP_BINARY)
            end = wl_on_mux(w, ev.data, ev.len);
    }
    evbuffer_drain(in, len);
    if (end) {
        /* one try to get the close frame out before the socket closes (a
         * plain socket; over TLS the node sees the connection end) */
        evutil_socket_t fd = bufferevent_getfd(w->bev);
        if (!wl.tls && fd >= 0)
            evbuffer_write(bufferevent_get_output(w->bev), fd);
        wl_closed(w);
    }
}

/* Copies the response's fields for ws_check_response(). */
static size_t wl_fields(const struct http1_response *r, struct ws_header *h, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->headers.count && n < cap; i++)
        h[n++] = (struct ws_header){.name = r->headers.h[i].name,
                                    .name_len = r->headers.h[i].name_len,
                                    .value = r->headers.h[i].value,
                                    .value_len = r->headers.h[i].value_len};
    return n;
}

static void wl_registered(struct wl_worker *w)
{
    int64_t now = util_now_ms();
    w->state = WL_OPEN;
    w->tries = 0;
    wl.inflight--;
    wl.open++;
    wl.registered++;
    if (w->rereg)
        wl.reconnects++;
    w->rereg = 0;
    bufferevent_set_timeouts(w->bev, NULL, NULL);
    ws_parser_init(&w->parser, WS_ROLE_CLIENT, WL_MAX_MESSAGE);
    if (!w->ever) {
        w->ever = 1;
        wl.first_done++;
        wl.last_101_ms = now;
    }
}

/* The answer to the registration request; returns 1 once registered. */
static int wl_on_head(struct wl_worker *w, struct evbuffer *in)
{
    static struct http1_response resp; /* one thread; too big for the stack of every call */
    struct ws_header h[WL_HEADERS_SEEN];
    size_t len = evbuffer_get_length(in);
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)(len < WL_MAX_HEAD ? len : WL_MAX_HEAD));
    int rc;

    memset(&resp, 0, sizeof resp);
    rc = http1_parse_response(buf, len < WL_MAX_HEAD ? len : WL_MAX_HEAD, &resp, WL_MAX_HEAD,
                              HTTP1_METHOD_GET);
    if (rc == HTTP1_INCOMPLETE)
        return 0;
    if (rc < 0) {
        wl_fail(w, 0, http1_strerror(rc));
        return 0;
    }
    if (resp.status != 101) {
        char why[128];
        snprintf(why, sizeof why, "%.*s", (int)(resp.reason_len < 100 ? resp.reason_len : 100), resp.reason);
        wl_fail(w, resp.status, why);
        return 0;
    }
    size_t n = wl_fields(&resp, h, WL_HEADERS_SEEN);
    int err = ws_check_response(resp.status, h, n, w->key);
    if (err) {
        wl_fail(w, 101, ws_strerror(err));
        return 0;
    }
    const struct http1_header *e = http1_find_header(&resp.headers, "x-whtunnel-ext");
    w->ext = e && e->value_len == 1 && e->value[0] == '1';
    evbuffer_drain(in, (size_t)rc);
    wl_registered(w);
    if (!wl.ready && wl.first_done == wl.count)
        wl_start_hold();
    wl_pump();
    return 1;
}

static void wl_read_cb(struct bufferevent *bev, void *arg)
{
    struct wl_worker *w = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (w->state == WL_HANDSHAKE) {
        if (!wl_on_head(w, in)) {
            if (w->state == WL_HANDSHAKE && evbuffer_get_length(in) > WL_MAX_HEAD)
                wl_fail(w, 0, "answer head over 8 KiB");
            return;
        }
    }
    if (w->state == WL_OPEN && evbuffer_get_length(in) > 0)
        wl_on_frames(w, in);
}

static void wl_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct wl_worker *w = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return;
    }
    if (w->state == WL_HANDSHAKE) {
        char why[160];
        int e = EVUTIL_SOCKET_ERROR();
        unsigned long ssl_err = wl.tls ? bufferevent_get_openssl_error(bev) : 0;
        if (what & BEV_EVENT_TIMEOUT)
            snprintf(why, sizeof why, "no answer within %.0f s", wl_handshake_s());
        else if (ssl_err)
            snprintf(why, sizeof why, "TLS: %s", ERR_reason_error_string(ssl_err));
        else if (what & BEV_EVENT_EOF)
            snprintf(why, sizeof why, "connection closed before an answer");
        else
            snprintf(why, sizeof why, "connection error: %s", evutil_socket_error_to_string(e));
        wl_fail(w, 0, why);
    } else if (w->state == WL_OPEN) {
        wl_closed(w);
    }
}

/* ---- starting a registration --------------------------------------------------- */

static struct bufferevent *wl_new_bev(const struct wl_node *nd)
{
    if (!wl.tls)
        return bufferevent_socket_new(wl.base, -1, BEV_OPT_CLOSE_ON_FREE);
    SSL *ssl = SSL_new(wl.ssl_ctx);
    if (!ssl)
        return NULL;
    SSL_set_tlsext_host_name(ssl, nd->host);
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(wl.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev)
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    else
        SSL_free(ssl);
    return bev;
}

static void wl_start(struct wl_worker *w)
{
    const struct wl_node *nd = &wl.nodes[w->node];
    char id[300], extra[TOKEN_MAX_LEN + 1024], req[TOKEN_MAX_LEN + 2048];
    uint8_t nonce[16];
    double hs = wl_handshake_s();
    struct timeval tv = {(time_t)hs, (suseconds_t)((hs - (double)(time_t)hs) * 1e6)};

    wl_id(w, id, sizeof id);
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = wl_rand();
        memcpy(nonce + i, &r, 8);
    }
    ws_client_key(nonce, w->key);
    snprintf(extra, sizeof extra,
             "Authorization: Bearer %s\r\nX-Websocktunnel-Id: %s\r\nX-Webhooktunnel-Id: %s\r\n"
             "X-Whtunnel-Ext: 1\r\n",
             w->token, id, id);
    int n = ws_format_request(req, sizeof req, nd->hostport, "/", w->key, extra);
    w->state = WL_HANDSHAKE;
    wl.inflight++;
    if (!wl.first_connect_ms)
        wl.first_connect_ms = util_now_ms();
    w->bev = n > 0 ? wl_new_bev(nd) : NULL;
    if (!w->bev) {
        wl_fail(w, 0, n > 0 ? "no bufferevent (out of memory or descriptors)" : "request does not fit");
        return;
    }
    bufferevent_setcb(w->bev, wl_read_cb, NULL, wl_event_cb, w);
    bufferevent_set_timeouts(w->bev, &tv, &tv);
    bufferevent_write(w->bev, req, (size_t)n);
    bufferevent_enable(w->bev, EV_READ | EV_WRITE);
    struct bufferevent *bev = w->bev;
    /* on some failures libevent has already run wl_event_cb (which failed w) */
    if (bufferevent_socket_connect(bev, (const struct sockaddr *)&nd->addr, (int)nd->addr_len) != 0 &&
        w->state == WL_HANDSHAKE && w->bev == bev)
        wl_fail(w, 0, "connect failed (out of descriptors or local ports?)");
}

/* ---- timers, signals, stdin ---------------------------------------------------- */

static void wl_finish(const char *why)
{
    wl_counters("done");
    if (why)
        fprintf(stderr, "whload: stopping: %s\n", why);
    event_base_loopbreak(wl.base);
}

static void wl_hold_cb(evutil_socket_t fd, short what, void *arg)
{
    wl_finish(NULL);
}
static void wl_stats_cb(evutil_socket_t fd, short what, void *arg)
{
    wl_counters("stats");
}
static void wl_signal_cb(evutil_socket_t fd, short what, void *arg)
{
    wl_finish(NULL);
}

static void wl_stdin_cb(evutil_socket_t fd, short what, void *arg)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        wl_finish(NULL);
}

static struct timeval wl_tv(double s)
{
    return (struct timeval){(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
}

static void wl_start_hold(void)
{
    struct timeval tv = wl_tv(wl.hold_s);
    if (wl.first_done == wl.count && !wl.ready) {
        int64_t t = wl.last_101_ms - wl.first_connect_ms;
        wl.ready = true;
        printf("ready %" PRIu32 " seconds=%.3f rate=%.0f cpu=%.3f failed=%" PRIu64 "\n", wl.count,
               wl_seconds(t), t > 0 ? (double)wl.count * 1000.0 / (double)t : 0.0, wl_cpu() - wl.cpu0,
               wl.failed);
        event_del(wl.deadline_ev);
    }
    event_add(wl.hold_ev, &tv);
}

static void wl_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    fprintf(stderr,
            "whload: only %" PRIu64 " of %" PRIu32 " ids registered (%" PRIu64 " given up) after %.1f s\n",
            wl.first_done, wl.count, wl.given_up, wl_seconds(util_now_ms() - wl.start_ms));
    wl_start_hold();
}

/* ---- options and set-up ------------------------------------------------------- */

static void wl_usage(FILE *f)
{
    fprintf(f, "usage: whload workers --nodes HOST:PORT[,HOST:PORT...] --count N --secret S\n"
               "                      [--prefix P] [--first K] [--concurrency C] [--hold SECONDS]\n"
               "                      [--reconnect] [--stats-every SECONDS] [--timeout SECONDS]\n"
               "                      [--aud AUDIENCE] [--tls]\n"
               "Registers workers P<K>..P<K+N-1> (default prefix w, first 0; worker i on node i mod\n"
               "the number of nodes), at most C handshakes at once (256), and holds them: answers\n"
               "pings, refuses streams; with --reconnect registers an id again on the next node when\n"
               "the node closes it (without it, a connection error is retried twice). --timeout: for all N\n"
               "to register (default 60) and per handshake (at most 10 s);\n"
               "--hold: seconds to hold after that (120). Prints 'ready N seconds=T rate=R', 'stats\n"
               "...' every --stats-every seconds (0: never) and 'done ...' on exit (stdin EOF,\n"
               "SIGTERM, or the end of --hold). --tls: wss (certificate not verified).\n");
}

static double wl_num(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi))
        wl_die("%s must be a number in %g..%g, not '%s'", opt, lo, hi, v);
    return d;
}

static void wl_add_node(const char *s, size_t len)
{
    struct util_hostport hp = {0};
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    struct wl_node *nd;

    if (wl.nnodes >= WL_MAX_NODES)
        wl_die("at most %d nodes", WL_MAX_NODES);
    nd = &wl.nodes[wl.nnodes];
    if (util_hostport_parse(s, len, 0, &hp) != 0 || hp.host_len == 0 || hp.host_len >= sizeof nd->host)
        wl_die("bad node address '%.*s' (HOST:PORT)", (int)len, s);
    memcpy(nd->host, hp.host, hp.host_len);
    nd->host[hp.host_len] = '\0';
    snprintf(port, sizeof port, "%d", hp.port);
    if (getaddrinfo(nd->host, port, &hints, &res) != 0 || !res || res->ai_addrlen > sizeof nd->addr)
        wl_die("cannot resolve '%s'", nd->host);
    memcpy(&nd->addr, res->ai_addr, res->ai_addrlen);
    nd->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    util_hostport_format(nd->hostport, sizeof nd->hostport, nd->host, hp.port);
    wl.nnodes++;
}

static void wl_parse_nodes(const char *list)
{
    const char *p = list;
    for (int guard = 0; guard < WL_MAX_NODES + 1; guard++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        wl_add_node(p, len);
        if (!comma)
            return;
        p = comma + 1;
    }
    wl_die("at most %d nodes", WL_MAX_NODES);
}

static void wl_parse_args(int argc, char **argv)
{
    const char *nodes = NULL;
    double count = -1;
    wl.prefix = "w";
    wl.concurrency = 256;
    wl.hold_s = 120;
    wl.timeout_s = 60;
    if (argc < 2 || strcmp(argv[1], "workers") != 0) {
        wl_usage(argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout : stderr);
        exit(argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? 0 : 2);
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reconnect")) {
            wl.reconnect = true;
            continue;
        }
        if (!strcmp(a, "--tls")) {
            wl.tls = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            wl_usage(stdout);
            exit(0);
        }
        if (!v)
            wl_die("%s needs a value (try --help)", a);
        i++;
        if (!strcmp(a, "--nodes"))
            nodes = v;
        else if (!strcmp(a, "--count"))
            count = wl_num(a, v, 1, WL_MAX_COUNT);
        else if (!strcmp(a, "--secret"))
            wl.secret = v;
        else if (!strcmp(a, "--prefix"))
            wl.prefix = v;
        else if (!strcmp(a, "--first"))
            wl.first = (uint32_t)wl_num(a, v, 0, 4e9);
        else if (!strcmp(a, "--concurrency"))
            wl.concurrency = (uint32_t)wl_num(a, v, 1, 100000);
        else if (!strcmp(a, "--hold"))
            wl.hold_s = wl_num(a, v, 0, WL_MAX_HOLD_S);
        else if (!strcmp(a, "--stats-every"))
            wl.stats_s = wl_num(a, v, 0, WL_MAX_HOLD_S);
        else if (!strcmp(a, "--timeout"))
            wl.timeout_s = wl_num(a, v, 0.1, WL_MAX_HOLD_S);
        else if (!strcmp(a, "--aud"))
            wl.aud = v;
        else
            wl_die("unknown option '%s' (try --help)", a);
    }
    if (!nodes || count < 1 || !wl.secret || !*wl.secret)
        wl_die("--nodes, --count and --secret are required (try --help)");
    if (count != (double)(uint32_t)count || (double)wl.first + count > 4294967295.0)
        wl_die("--count must be a whole number and --first + --count below 2^32");
    wl.count = (uint32_t)count;
    wl_parse_nodes(nodes);
}

/* Raises the open-files limit to the hard limit; refuses a count that cannot fit. */
static void wl_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        wl_die("getrlimit: %s", strerror(errno));
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        wl_die("setrlimit: %s", strerror(errno));
    if (rl.rlim_cur != RLIM_INFINITY && (uint64_t)wl.count + WL_FD_RESERVE > (uint64_t)rl.rlim_cur)
        wl_die(
            "--count %" PRIu32 " needs %" PRIu32 " descriptors but this process may hold at most %llu "
            "(hard RLIMIT_NOFILE): run several whload processes, each with its own --first, of at most %llu",
            wl.count, wl.count + WL_FD_RESERVE, (unsigned long long)rl.rlim_cur,
            (unsigned long long)(rl.rlim_cur > WL_FD_RESERVE ? rl.rlim_cur - WL_FD_RESERVE : 0));
}

/* One token per id, minted before the first connect (not counted in T). */
static void wl_mint(void)
{
    char id[300];
    int64_t now = (int64_t)time(NULL);
    if (wl.secret && strlen(wl.secret) > TOKEN_MAX_SECRET_LEN)
        wl_die("--secret is too long");
    for (uint32_t i = 0; i < wl.count; i++) {
        struct wl_worker *w = &wl.w[i];
        w->index = i;
        w->node =
            (uint16_t)((wl.first + i) % wl.nnodes); /* by id number: the same node whatever --first splits */
        wl_id(w, id, sizeof id);
        if (!util_valid_worker_id(id, strlen(id)))
            wl_die("'%s' is not a valid worker id ([a-zA-Z0-9_~.%%-]+)", id);
        int rc = token_mint(wl.secret, strlen(wl.secret), id, now, WL_TOKEN_TTL_S, wl.aud, &w->token);
        if (rc != 0)
            wl_die("cannot mint a token for %s: %s", id, token_strerror(rc));
    }
}

static void wl_setup_tls(void)
{
    wl.ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!wl.ssl_ctx)
        wl_die("SSL_CTX_new failed");
    SSL_CTX_set_verify(wl.ssl_ctx, SSL_VERIFY_NONE, NULL); /* a load tool against self-signed test nodes */
    SSL_CTX_set_session_cache_mode(wl.ssl_ctx, SSL_SESS_CACHE_OFF);
}

static void wl_setup_events(void)
{
    struct stat st;
    wl.hold_ev = evtimer_new(wl.base, wl_hold_cb, NULL);
    wl.deadline_ev = evtimer_new(wl.base, wl_deadline_cb, NULL);
    wl.sigterm_ev = evsignal_new(wl.base, SIGTERM, wl_signal_cb, NULL);
    wl.sigint_ev = evsignal_new(wl.base, SIGINT, wl_signal_cb, NULL);
    if (!wl.hold_ev || !wl.deadline_ev || !wl.sigterm_ev || !wl.sigint_ev)
        wl_die("out of memory");
    struct timeval dl = wl_tv(wl.timeout_s);
    event_add(wl.deadline_ev, &dl);
    event_add(wl.sigterm_ev, NULL);
    event_add(wl.sigint_ev, NULL);
    if (wl.stats_s > 0) {
        struct timeval tv = wl_tv(wl.stats_s);
        wl.stats_ev = event_new(wl.base, -1, EV_PERSIST, wl_stats_cb, NULL);
        if (!wl.stats_ev)
            wl_die("out of memory");
        event_add(wl.stats_ev, &tv);
    }
    /* stdin counts only when something can close it: not /dev/null or a file */
    if (fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(0))) {
        wl.stdin_ev = event_new(wl.base, 0, EV_READ | EV_PERSIST, wl_stdin_cb, NULL);
        if (wl.stdin_ev)
            event_add(wl.stdin_ev, NULL);
    }
}

/* Frees everything (so that leak checkers see a clean exit). */
static void wl_cleanup(void)
{
    for (uint32_t i = 0; i < wl.count; i++) {
        wl_drop(&wl.w[i]);
        free(wl.w[i].token);
    }
    event_base_loop(wl.base, EVLOOP_NONBLOCK); /* runs the bufferevents' deferred finalizers */
    struct event *evs[] = {wl.hold_ev, wl.stats_ev, wl.deadline_ev, wl.stdin_ev, wl.sigterm_ev, wl.sigint_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    event_base_free(wl.base);
    if (wl.ssl_ctx)
        SSL_CTX_free(wl.ssl_ctx);
    free(wl.w);
    free(wl.queue);
}

int main(int argc, char **argv)
{
    uint64_t seed;

    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    wl_parse_args(argc, argv);
    wl_raise_nofile();
    wl.w = calloc(wl.count, sizeof *wl.w);
    wl.queue = calloc(wl.count, sizeof *wl.queue);
    if (!wl.w || !wl.queue)
        wl_die("out of memory for %" PRIu32 " workers", wl.count);
    if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)
        seed = (uint64_t)util_now_us();
    wl.rng = seed | 1;
    wl_mint();
    if (wl.tls)
        wl_setup_tls();
    wl.base = event_base_new();
    if (!wl.base)
        wl_die("event_base_new failed");
    wl.start_ms = util_now_ms();
    wl.cpu0 = wl_cpu();
    wl_setup_events();
    for (uint32_t i = 0; i < wl.count; i++)
        wl_enqueue(&wl.w[i]);
    wl_pump();
    event_base_dispatch(wl.base);
    int rc = wl.first_done == wl.count ? 0 : 1;
    wl_cleanup();
    return rc;
}
