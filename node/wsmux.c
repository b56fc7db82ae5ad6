/* wsmux: a wsmux session on a WebSocket on a bufferevent (see wsmux.h).
 *
 * Input: WebSocket bytes are parsed in place in the bufferevent's input
 * (never copied into a shared buffer: a message may start another session's
 * read, e.g. a pipelined registration, before this one is done) into
 * messages, each fed to the mux session; reading stops while the session
 * holds more received-but-unconsumed bytes than its buffer limit
 * (WHT_SESSION_BUFFER for a worker: a newest Go client may send 4 MiB per
 * stream before any ACK), which pushes back through TCP.
 * Output: mux frames are pulled while the socket's output buffer is below
 * WSMUX_OUT_HIGH, and again whenever it drains.
 * Timers: an idle session holds no event of its own (memory per idle worker):
 * its deferred flush and free, and its pings, run from events the node's
 * sessions share (struct wsmux_shared); its own timer exists once it has had
 * a stream or waiter deadline. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "mux/ws.h"
#include "node/log.h"
#include "node/net.h"
#include "node/node.h"
#include "node/wsmux.h"
#include "util/util.h"

#define WSMUX_OUT_HIGH (256 * 1024)
#define WSMUX_FLUSH_ROUNDS 4 /* writes of WSMUX_OUT_HIGH one flush may make before the loop turns */
#define WSMUX_OUT_LOW (64 * 1024)
#define WSMUX_READ_CHUNK 65536
#define WSMUX_MAX_MESSAGE (1024 * 1024 + 64)
#define GO_SYN_LIMIT 190       /* Go clients abort the session past 200 unaccepted SYNs */
#define PEER_MAX_STREAMS 65536 /* streams one way on a link to a peer node */

struct wsmux {
    struct node *node;
    struct wsmux_options o;
    const struct wsmux_events *ev;
    void *ud;
    struct bufferevent *bev;
    struct ws_parser parser;
    struct mux_session *mux;
    struct wsmux *next_deferred;  /* on the node's list of deferred flushes and frees */
    TAILQ_ENTRY(wsmux) ping_link; /* on the node's ping list once started, until closed */
    struct event *timer_ev;       /* mux and waiters' deadlines, the closing bound; made when first needed */
    int64_t timer_at;             /* when timer_ev fires (monotonic ms), INT64_MAX: not pending */
    int64_t last_pong_ms, last_ping_ms;
    int64_t drain_deadline_ms;
    uint32_t streams;      /* streams we opened, still open */
    uint32_t max_streams;  /* ... at most */
    uint64_t buffer_limit; /* reading pauses while the session holds more unconsumed bytes */
    uint64_t accounted;    /* its unconsumed bytes as counted in the node's total (node->buffered) */
    struct wsmux_waiter_list waiting;
    const char *idle_why; /* close once the last stream is done */
    enum wsmux_end idle_end;
    unsigned closing : 1, read_paused : 1, started : 1, draining : 1;
    unsigned deferred : 1, free_pending : 1, pinged : 1;
};

/* What the sessions of a node share, so that an idle one holds no event of
 * its own: one event runs the deferred flushes and frees, another the pings.
 * Every session pings at the same interval from its last ping, so the list
 * in the order of their last pings is also the order they are due in. */
struct wsmux_shared {
    struct node *node;
    struct event *defer_ev;
    struct wsmux *defer_head, **defer_tail;
    struct event *ping_ev;
    TAILQ_HEAD(, wsmux) pings;
};

/* Frames sent as a client must be masked; between our own nodes the key is
 * zero, which masks nothing (a link carries no browser traffic that a
 * random key would protect proxies from). */
static const uint8_t zero_key[4];
/* bytes of frames added to the output at once when streams have data: with
 * libevent's chain header one 64 KiB allocation (64 KiB itself would make a
 * 128 KiB chain) */
#define WSMUX_BATCH (64 * 1024 - 256)
#define WSMUX_CONTROL 512 /* ... when only control frames are due */

static void arm_timer(struct wsmux *w);
static void defer(struct wsmux *w);

/* Brings the node's total of unconsumed bytes (WHT_MAX_BUFFERED) up to date
 * with this session's; returns the session's. */
static uint64_t account(struct wsmux *w)
{
    uint64_t b = w->closing ? 0 : mux_session_buffered(w->mux);
    w->node->buffered += b;
    w->node->buffered -= w->accounted;
    w->accounted = b;
    return b;
}

/* Reading stops while the session holds more than its own limit, or, while
 * the node holds more than WHT_MAX_BUFFERED in all, more than one stream
 * window (those slow to drain wait; the others keep moving). It starts again
 * under the session's limit and under 7/8 of the node's (or one window). */
static int over_limit(struct wsmux *w, uint64_t b, int resuming)
{
    const struct config *cfg = w->node->cfg;
    uint64_t node_cap = resuming ? cfg->max_buffered / 8 * 7 : cfg->max_buffered;
    return b > w->buffer_limit || (w->node->buffered > node_cap && b > cfg->stream_window);
}

static const uint8_t *mask_key(const struct wsmux *w)
{
    return w->o.is_client ? zero_key : NULL;
}

static const char *kind_name(const struct wsmux *w)
{
    return w->o.role == WSMUX_PEER ? "peer" : "worker";
}

static void send_close_reason(struct wsmux *w, uint16_t code, const char *reason)
{
    uint8_t buf[WS_MAX_HEADER + 125];
    size_t n = ws_encode_close(buf, sizeof buf, code, reason, mask_key(w));
    evbuffer_add(bufferevent_get_output(w->bev), buf, n);
}

static void send_close(struct wsmux *w, uint16_t code)
{
    send_close_reason(w, code, NULL);
}

static void send_control(struct wsmux *w, enum ws_opcode op, const uint8_t *data, size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t h = ws_encode_header(hdr, 1, op, len, mask_key(w));
    struct evbuffer *out = bufferevent_get_output(w->bev);
    evbuffer_add(out, hdr, h);
    if (len)
        evbuffer_add(out, data, len);
}

/* mux_session_next_ws()'s key for a link we dialled: zero_key */
static int zero_mask(void *ud, uint8_t key[4])
{
    (void)ud;
    memcpy(key, zero_key, 4);
    return 0;
}

/* Adds the mux's next frames to the output until it holds WSMUX_OUT_HIGH,
 * made in place in space reserved at the output's end, WSMUX_BATCH bytes at
 * a time (each commit runs the bufferevent's callbacks), or WSMUX_CONTROL
 * when only control frames are due: the space usually comes from a new chain
 * freed once written, and 64 KiB chains taken and freed for a window update
 * each made glibc trim and grow the heap (a brk() pair per flush). Returns 1 if it
 * stopped at WSMUX_OUT_HIGH (the mux may have more), 0 if the mux had
 * nothing more. */
static int fill(struct wsmux *w)
{
    struct evbuffer *out = bufferevent_get_output(w->bev);
    while (evbuffer_get_length(out) < WSMUX_OUT_HIGH) {
        /* space is reserved only for frames that are due: a reservation
         * left uncommitted stays in the output as an empty chain (1 KiB per
         * idle worker) */
        if (!mux_session_has_output(w->mux))
            return 0;
        struct evbuffer_iovec v;
        size_t want = mux_session_has_data(w->mux) ? WSMUX_BATCH : WSMUX_CONTROL;
        if (evbuffer_reserve_space(out, want, &v, 1) < 1)
            return 1; /* out of memory: the next flush tries again */
        v.iov_len =
            mux_session_next_ws(w->mux, v.iov_base, v.iov_len, w->o.is_client ? zero_mask : NULL, NULL);
        evbuffer_commit_space(out, &v, 1);
        if (v.iov_len == 0)
            return 0; /* (not while a frame is due; a dead session has none) */
    }
    return 1;
}

static void flush(struct wsmux *w)
{
    if (w->closing || !w->started)
        return;
    /* the frames of every stream that moved in this turn of the loop go out
     * in one write, now (the socket usually takes them all) */
    for (int round = 0; round < WSMUX_FLUSH_ROUNDS; round++) {
        int more = fill(w);
        if (!net_write_now(w->bev, NODE_MAX_SINGLE_IO) || !more ||
            evbuffer_get_length(bufferevent_get_output(w->bev)) > 0)
            break;
    }
    uint64_t b = account(w);
    if (w->read_paused && !over_limit(w, b, 1)) {
        w->read_paused = 0;
        bufferevent_enable(w->bev, EV_READ);
    }
}

void wsmux_kick(struct wsmux *w)
{
    if (w && !w->closing)
        defer(w);
}

/* ---- the mux session's callbacks ---------------------------------------- */

static void output_cb(struct mux_session *s, void *ud)
{
    wsmux_kick(ud);
}

static void incoming_cb(struct mux_session *s, struct mux_stream *st, void *ud)
{
    struct wsmux *w = ud;
    if (w->o.role == WSMUX_PEER && !w->closing && w->ev->incoming_cb)
        w->ev->incoming_cb(w, st, w->ud);
    else
        mux_stream_reset(st, MUX_REASON_REFUSED); /* workers open nothing towards the node */
}

/* A stream's user data starts with its ops. */
static const struct wsmux_stream_ops *ops_of(void *ud)
{
    return ud ? *(const struct wsmux_stream_ops **)ud : NULL;
}

static void closed_cb(struct mux_stream *st, int err, void *ud)
{
    const struct wsmux_stream_ops *ops = ops_of(ud);
    if (ops)
        ops->closed(st, err, ud);
}

static void data_cb(struct mux_stream *st, const uint8_t *d, size_t n, void *ud)
{
    const struct wsmux_stream_ops *ops = ops_of(ud);
    if (ops)
        ops->data(st, d, n, ud);
    else
        mux_stream_consume(st, n);
}

static void eof_cb(struct mux_stream *st, void *ud)
{
    const struct wsmux_stream_ops *ops = ops_of(ud);
    if (ops)
        ops->eof(st, ud);
}

static void writable_cb(struct mux_stream *st, void *ud)
{
    const struct wsmux_stream_ops *ops = ops_of(ud);
    if (ops)
        ops->writable(st, ud);
}

static void accepted_cb(struct mux_stream *st, void *ud)
{
    const struct wsmux_stream_ops *ops = ops_of(ud);
    if (ops && ops->accepted)
        ops->accepted(st, ud);
}

static const struct mux_callbacks wsmux_mux_callbacks = {
    .stream_incoming_cb = incoming_cb,
    .stream_accepted_cb = accepted_cb,
    .stream_data_cb = data_cb,
    .stream_eof_cb = eof_cb,
    .stream_writable_cb = writable_cb,
    .stream_closed_cb = closed_cb,
    .output_cb = output_cb,
};

/* ---- closing and freeing -------------------------------------------------- */

static void free_session(struct wsmux *w)
{
    if (w->ev->freed_cb)
        w->ev->freed_cb(w, w->ud);
    mux_session_free(w->mux);
    ws_parser_free(&w->parser);
    if (w->bev)
        bufferevent_free(w->bev);
    if (w->timer_ev)
        event_free(w->timer_ev);
    free(w);
}

/* w's flush, or its free, runs from the node's deferred event: never from
 * inside a callback, and once however often it was asked for. */
static void defer(struct wsmux *w)
{
    struct wsmux_shared *sh = w->node->wsmux;
    if (w->deferred)
        return;
    w->deferred = 1;
    w->next_deferred = NULL;
    *sh->defer_tail = w;
    sh->defer_tail = &w->next_deferred;
    event_active(sh->defer_ev, EV_TIMEOUT, 0);
}

/* Runs the deferred flushes and frees, those asked for meanwhile too. */
static void defer_cb(evutil_socket_t fd, short what, void *ud)
{
    struct wsmux_shared *sh = ud;
    struct wsmux *w;
    while ((w = sh->defer_head)) {
        sh->defer_head = w->next_deferred;
        if (!sh->defer_head)
            sh->defer_tail = &sh->defer_head;
        w->deferred = 0;
        if (w->free_pending)
            free_session(w);
        else
            flush(w);
    }
}

static void free_later(struct wsmux *w)
{
    w->free_pending = 1;
    if (w->timer_ev)
        event_del(w->timer_ev);
    defer(w);
}

static void closing_write_cb(struct bufferevent *bev, void *ud)
{
    struct wsmux *w = ud;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        free_later(w);
}

static void closing_event_cb(struct bufferevent *bev, short what, void *ud)
{
    free_later(ud);
}

static void timer_cb(evutil_socket_t fd, short what, void *ud);

/* The session's own timer, made when first needed; NULL when out of memory. */
static struct event *timer_event(struct wsmux *w)
{
    if (!w->timer_ev)
        w->timer_ev = evtimer_new(w->node->base, timer_cb, w);
    return w->timer_ev;
}

static void unping(struct wsmux *w)
{
    if (w->pinged) {
        TAILQ_REMOVE(&w->node->wsmux->pings, w, ping_link);
        w->pinged = 0;
    }
}

void wsmux_close(struct wsmux *w, enum wsmux_end end, const char *why)
{
    if (w->closing)
        return;
    LOG_I("%s=%s session=%llu closed: %s", kind_name(w), w->o.name, (unsigned long long)w->o.serial, why);
    w->closing = 1;
    if (end == WSMUX_END_REPLACED && w->started) /* tell the worker why, or it retries at once */
        send_close_reason(w, MUX_WS_CLOSE_REPLACED, "replaced by another registration");
    if (w->ev->closed_cb)
        w->ev->closed_cb(w, end, w->ud);
    bufferevent_disable(w->bev, EV_READ | EV_WRITE);
    /* a link that closes before its waiters got streams: the node behind it cannot be reached */
    wsmux_release_waiters(w, w->o.role == WSMUX_PEER ? WSMUX_WAIT_UNREACHABLE : WSMUX_WAIT_GONE);
    mux_session_abort(w->mux, MUX_E_ABORTED); /* every stream's owner hears of its end */
    account(w);                               /* its bytes leave the node's total */
    unping(w);
    if (w->timer_ev)
        event_del(w->timer_ev);
    if (evbuffer_get_length(bufferevent_get_output(w->bev)) > 0 && !w->node->stopping && w->started &&
        timer_event(w)) {
        /* let a queued close frame reach the other side, for at most a second (timer_cb) */
        struct timeval tv = {1, 0};
        bufferevent_setcb(w->bev, NULL, closing_write_cb, closing_event_cb, w);
        bufferevent_setwatermark(w->bev, EV_WRITE, 0, 0);
        bufferevent_enable(w->bev, EV_WRITE);
        event_add(w->timer_ev, &tv);
        return;
    }
    free_later(w);
}

/* ---- reading ---------------------------------------------------------------- */

static void handle_message(struct wsmux *w, const struct ws_event *ev)
{
    int64_t now = util_now_ms();
    switch (ev->type) {
    case WS_EV_MESSAGE:
        if (ev->opcode == WS_OP_BINARY) {
            int rc = mux_session_feed(w->mux, ev->data, ev->len, now);
            if (rc != 0)
                wsmux_close(w, WSMUX_END_PROTOCOL, mux_strerror(rc));
        }
        break;
    case WS_EV_PING: send_control(w, WS_OP_PONG, ev->data, ev->len); break;
    case WS_EV_PONG: w->last_pong_ms = now; break;
    case WS_EV_CLOSE:
        send_close(w, 1000);
        wsmux_close(w, WSMUX_END_CLOSED,
                    w->o.role == WSMUX_PEER ? "closed by the peer" : "closed by the worker");
        break;
    default: break;
    }
}

/* Parses one chunk in place; returns -1 when the session closed. */
static int read_chunk(struct wsmux *w, uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (!w->closing) {
        struct ws_event ev;
        ssize_t k = ws_parse(&w->parser, buf + off, len - off, &ev);
        if (k < 0) {
            send_close(w, ws_err_close_code((int)k));
            wsmux_close(w, WSMUX_END_PROTOCOL, ws_strerror((int)k));
            return -1;
        }
        off += (size_t)k;
        if (ev.type == WS_EV_NONE)
            break;
        handle_message(w, &ev);
    }
    return w->closing ? -1 : 0;
}

static void read_cb(struct bufferevent *bev, void *ud)
{
    struct wsmux *w = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!w->closing && !w->read_paused) {
        size_t n = evbuffer_get_length(in);
        if (n == 0)
            break;
        if (n > WSMUX_READ_CHUNK)
            n = WSMUX_READ_CHUNK;
        uint8_t *p = evbuffer_pullup(in, (ssize_t)n);
        int rc = p ? read_chunk(w, p, n) : -1;
        evbuffer_drain(in, n); /* parsed: the parser keeps what a partial frame needs */
        if (rc != 0)
            return;
        if (over_limit(w, account(w), 0)) {
            w->read_paused = 1; /* resumed by flush() once the streams' owners have drained */
            bufferevent_disable(bev, EV_READ);
        }
    }
    flush(w);
}

static void write_cb(struct bufferevent *bev, void *ud)
{
    flush(ud);
}

static void event_cb(struct bufferevent *bev, short what, void *ud)
{
    wsmux_close(ud, WSMUX_END_LOST, (what & BEV_EVENT_EOF) ? "connection closed" : "connection error");
}

/* ---- timers: pings, mux deadlines, waiters ------------------------------------ */

static void expire_waiting(struct wsmux *w, int64_t now)
{
    struct wsmux_waiter *wt;
    while ((wt = TAILQ_FIRST(&w->waiting)) && wt->deadline_ms <= now) {
        wsmux_detach(wt);
        wt->ready_cb(wt, NULL, w->draining ? WSMUX_WAIT_LOST : WSMUX_WAIT_BUSY);
    }
}

static struct timeval timeval_until(int64_t at, int64_t now)
{
    int64_t wait = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    return tv;
}

/* The session's deadlines, and its ping when due (then it goes to the end
 * of the ping list; no pong since the last ping: the session closes). */
static void tick(struct wsmux *w, int64_t now)
{
    mux_session_tick(w->mux, now);
    expire_waiting(w, now);
    if (w->closing)
        return;
    if (w->pinged && now - w->last_ping_ms >= w->node->cfg->ping_interval_ms) {
        if (w->last_pong_ms < w->last_ping_ms) {
            wsmux_close(w, WSMUX_END_PING_TIMEOUT, "no pong within the ping interval");
            return;
        }
        send_control(w, WS_OP_PING, NULL, 0);
        w->last_ping_ms = now;
        TAILQ_REMOVE(&w->node->wsmux->pings, w, ping_link);
        TAILQ_INSERT_TAIL(&w->node->wsmux->pings, w, ping_link);
    }
    flush(w);
    arm_timer(w);
}

static void timer_cb(evutil_socket_t fd, short what, void *ud)
{
    struct wsmux *w = ud;
    if (w->closing) { /* the close frame did not leave within a second */
        free_later(w);
        return;
    }
    tick(w, util_now_ms());
}

static void arm_pings(struct wsmux_shared *sh, int64_t now)
{
    struct wsmux *w = TAILQ_FIRST(&sh->pings);
    if (!w) {
        event_del(sh->ping_ev);
        return;
    }
    struct timeval tv = timeval_until(w->last_ping_ms + sh->node->cfg->ping_interval_ms, now);
    event_add(sh->ping_ev, &tv);
}

/* The sessions whose ping is due, at the head of the list, tick. */
static void ping_cb(evutil_socket_t fd, short what, void *ud)
{
    struct wsmux_shared *sh = ud;
    int64_t now = util_now_ms();
    struct wsmux *w;
    while ((w = TAILQ_FIRST(&sh->pings)) && now - w->last_ping_ms >= sh->node->cfg->ping_interval_ms) {
        tick(w, now);
        if (TAILQ_FIRST(&sh->pings) == w)
            break; /* (cannot be: tick() moved it to the end, or it closed) */
    }
    arm_pings(sh, now);
}

/* The session's timer at its next deadline besides pings (the ping list
 * ticks every session at least once an interval, so a session without the
 * memory for its own timer meets its deadlines late, not never). */
static void arm_timer(struct wsmux *w)
{
    int64_t at = mux_session_next_deadline(w->mux);
    struct wsmux_waiter *wt = TAILQ_FIRST(&w->waiting);
    if (wt && (at < 0 || wt->deadline_ms < at))
        at = wt->deadline_ms;
    if (at < 0 || !timer_event(w)) {
        if (w->timer_ev)
            event_del(w->timer_ev);
        w->timer_at = INT64_MAX;
        return;
    }
    struct timeval tv = timeval_until(at, util_now_ms());
    w->timer_at = at;
    event_add(w->timer_ev, &tv);
}

/* ---- start ------------------------------------------------------------------ */

static void limits(struct wsmux *w, struct mux_config *mc)
{
    const struct config *cfg = w->node->cfg;
    mux_config_defaults(mc, !w->o.is_client);
    mc->ext = w->o.ext;
    mc->window = (uint32_t)cfg->stream_window;
    mc->send_buffer = (uint32_t)cfg->stream_window;
    mc->accept_timeout_ms = cfg->accept_timeout_ms;
    if (w->o.role == WSMUX_PEER) {
        /* A link carries the relayed viewers of a pair of nodes: pausing it
         * for a few slow viewers would stall all the others. Our peers keep
         * to each stream's window, which bounds what a slow viewer holds. */
        w->buffer_limit = UINT64_MAX;
        w->max_streams = PEER_MAX_STREAMS;
        mc->max_pending_syn = PEER_MAX_STREAMS;
        mc->max_incoming = PEER_MAX_STREAMS;
    } else {
        w->buffer_limit = cfg->session_buffer;
        w->max_streams = (uint32_t)cfg->max_streams_per_worker;
        mc->max_pending_syn = w->max_streams < GO_SYN_LIMIT ? w->max_streams : GO_SYN_LIMIT;
    }
}

/* The node's shared part, made with its first session; NULL when out of memory. */
static struct wsmux_shared *shared(struct node *n)
{
    if (n->wsmux)
        return n->wsmux;
    struct wsmux_shared *sh = calloc(1, sizeof *sh);
    if (!sh)
        return NULL;
    sh->node = n;
    sh->defer_tail = &sh->defer_head;
    TAILQ_INIT(&sh->pings);
    sh->defer_ev = event_new(n->base, -1, 0, defer_cb, sh);
    sh->ping_ev = evtimer_new(n->base, ping_cb, sh);
    if (!sh->defer_ev || !sh->ping_ev) {
        if (sh->defer_ev)
            event_free(sh->defer_ev);
        if (sh->ping_ev)
            event_free(sh->ping_ev);
        free(sh);
        return NULL;
    }
    n->wsmux = sh;
    return sh;
}

void wsmux_stop(struct node *n)
{
    struct wsmux_shared *sh = n->wsmux;
    if (!sh)
        return;
    defer_cb(-1, 0, sh); /* frees still due */
    event_free(sh->defer_ev);
    event_free(sh->ping_ev);
    free(sh);
    n->wsmux = NULL;
}

struct wsmux *wsmux_new(struct node *n, struct bufferevent *bev, const struct wsmux_options *o,
                        const struct wsmux_events *ev, void *ud)
{
    struct wsmux *w = shared(n) ? calloc(1, sizeof *w) : NULL;
    if (!w) {
        LOG_E("%s=%s out of memory", o->role == WSMUX_PEER ? "peer" : "worker", o->name);
        bufferevent_free(bev);
        return NULL;
    }
    w->node = n;
    w->o = *o;
    w->ev = ev;
    w->ud = ud;
    w->bev = bev;
    TAILQ_INIT(&w->waiting);
    ws_parser_init(&w->parser, o->is_client ? WS_ROLE_CLIENT : WS_ROLE_SERVER, WSMUX_MAX_MESSAGE);
    struct mux_config mc;
    limits(w, &mc);
    w->mux = mux_session_new(&mc, &wsmux_mux_callbacks, w);
    w->timer_at = INT64_MAX;
    if (!w->mux) {
        LOG_E("%s=%s out of memory", kind_name(w), o->name);
        static const struct wsmux_events none;
        w->ev = &none; /* the owner never heard of w */
        free_session(w);
        return NULL;
    }
    return w;
}

void wsmux_begin(struct wsmux *w)
{
    struct bufferevent *bev = w->bev;
    w->started = 1;
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, WSMUX_OUT_LOW, 0);
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, w);
    /* bulk data in few system calls (libevent's default is 16 KiB a call) */
    bufferevent_set_max_single_read(bev, NODE_MAX_SINGLE_IO);
    bufferevent_set_max_single_write(bev, NODE_MAX_SINGLE_IO);
    net_read_own(bev, 1);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    /* as the Go peers do: a ping as soon as the session starts; its pong is
     * due within one interval like any other */
    w->last_ping_ms = util_now_ms();
    w->last_pong_ms = w->last_ping_ms - 1;
    send_control(w, WS_OP_PING, NULL, 0);
    struct wsmux_shared *sh = w->node->wsmux;
    TAILQ_INSERT_TAIL(&sh->pings, w, ping_link); /* its last ping is the latest */
    w->pinged = 1;
    if (TAILQ_FIRST(&sh->pings) == w)
        arm_pings(sh, w->last_ping_ms);
    arm_timer(w);
    flush(w);
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        read_cb(bev, w);
}

struct bufferevent *wsmux_bev(struct wsmux *w)
{
    return w->bev;
}

int wsmux_closing(const struct wsmux *w)
{
    return w->closing;
}

int wsmux_started(const struct wsmux *w)
{
    return w->started;
}

enum wsmux_role wsmux_role(const struct wsmux *w)
{
    return w->o.role;
}

uint32_t wsmux_streams(const struct wsmux *w)
{
    return w->streams;
}

int wsmux_ext(const struct wsmux *w)
{
    return w->o.ext;
}

/* ---- streams for waiters ------------------------------------------------------- */

/* A stream opened for a waiter is open (+1) or done (-1): the session's
 * slots and the node's gauge. */
static void count_stream(struct wsmux *w, int d)
{
    w->streams = (uint32_t)((int64_t)w->streams + d);
    if (w->o.role == WSMUX_PEER)
        w->node->stats.streams_peer += d;
    else
        w->node->stats.streams_worker += d;
}

/* Opens a stream for wt (taken off the queue if it was on it); 0, or the mux error. Streams opened on
 * a dialed link before its handshake is done wait in the mux session. */
static int open_for(struct wsmux *w, struct wsmux_waiter *wt)
{
    int err;
    int64_t now = util_now_ms();
    struct mux_stream *st = mux_stream_open(w->mux, wt->stream_ud, now, &err);
    if (!st)
        return err;
    if (w->started && now + w->node->cfg->accept_timeout_ms < w->timer_at)
        arm_timer(w); /* its accept deadline comes before the next tick */
    wsmux_detach(wt); /* when it was queued */
    count_stream(w, 1);
    wt->session = w;
    wt->ready_cb(wt, st, WSMUX_WAIT_STREAM);
    return 0;
}

static void enqueue(struct wsmux *w, struct wsmux_waiter *wt, int64_t deadline_ms)
{
    wt->deadline_ms = deadline_ms;
    wt->on = w;
    TAILQ_INSERT_TAIL(&w->waiting, wt, link);
    arm_timer(w);
}

int wsmux_attach(struct wsmux *w, struct wsmux_waiter *wt)
{
    if (w->closing || mux_session_remote_goaway(w->mux))
        return -1;
    /* over WHT_MAX_BUFFERED, or not being read until the node is back under
     * 7/8 of it (or the session under its own limit): a new stream would
     * only wait for its answer */
    if (w->node->buffered > w->node->cfg->max_buffered || w->read_paused) {
        w->node->stats.buffer_refusals++;
        return WSMUX_E_MEMORY;
    }
    if (w->draining) { /* wait for the worker's next node */
        enqueue(w, wt, w->drain_deadline_ms);
        return 0;
    }
    if (w->streams < w->max_streams && TAILQ_EMPTY(&w->waiting)) {
        int err = open_for(w, wt);
        if (err == 0)
            return 0;
        if (err != MUX_E_LIMIT)
            return -1;
    }
    enqueue(w, wt, util_now_ms() + w->node->cfg->queue_timeout_ms);
    return 0;
}

int wsmux_has_waiters(const struct wsmux *w)
{
    return !TAILQ_EMPTY(&w->waiting);
}

void wsmux_detach(struct wsmux_waiter *wt)
{
    if (wt->on) {
        TAILQ_REMOVE(&wt->on->waiting, wt, link);
        wt->on = NULL;
    }
}

void wsmux_take_waiters(struct wsmux *w, struct wsmux_waiter_list *list)
{
    struct wsmux_waiter *wt;
    while ((wt = TAILQ_FIRST(&w->waiting))) {
        wsmux_detach(wt);
        TAILQ_INSERT_TAIL(list, wt, link);
    }
}

void wsmux_release_waiters(struct wsmux *w, enum wsmux_wait result)
{
    struct wsmux_waiter *wt;
    while ((wt = TAILQ_FIRST(&w->waiting))) {
        wsmux_detach(wt);
        wt->ready_cb(wt, NULL, result);
    }
}

/* A slot is free: the waiters at the head get streams. */
static void serve_waiting(struct wsmux *w)
{
    struct wsmux_waiter *wt;
    while ((wt = TAILQ_FIRST(&w->waiting)) && w->streams < w->max_streams)
        if (open_for(w, wt) != 0)
            break;
}

void wsmux_stream_done(struct wsmux *w)
{
    if (!w)
        return;
    if (w->streams > 0)
        count_stream(w, -1);
    if (w->closing)
        return;
    if (w->draining) {
        if (w->streams == 0 && w->idle_why)
            wsmux_close(w, w->idle_end, w->idle_why);
        return;
    }
    serve_waiting(w);
}

void wsmux_drain(struct wsmux *w, int64_t deadline_ms)
{
    if (w->closing || w->draining)
        return;
    w->draining = 1;
    w->drain_deadline_ms = deadline_ms;
    if (w->o.ext) {
        mux_session_goaway(w->mux, MUX_REASON_DRAIN);
        wsmux_kick(w);
    }
}

void wsmux_close_when_idle(struct wsmux *w, enum wsmux_end end, const char *why)
{
    w->idle_why = why;
    w->idle_end = end;
    if (w->draining && w->streams == 0)
        wsmux_close(w, end, why);
}
