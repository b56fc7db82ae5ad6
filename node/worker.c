/* Worker sessions: the registration WebSocket (server role, our mux/ws codec
 * on a bufferevent) carrying a wsmux session whose streams serve viewers.
 *
 * Input: WebSocket bytes are parsed into messages, each fed to the mux
 * session; reading stops while the session holds more received-but-unconsumed
 * bytes than WHT_SESSION_BUFFER (a newest Go client may send 4 MiB per stream
 * before any ACK), which pushes back through TCP.
 * Output: mux frames are pulled while the socket's output buffer is below
 * WORKER_OUT_HIGH, and again whenever it drains. */
#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/node.h"

#define WORKER_OUT_HIGH (256 * 1024)
#define WORKER_OUT_LOW (64 * 1024)
#define WORKER_READ_CHUNK 65536
#define WORKER_MAX_MESSAGE (1024 * 1024 + 64)
#define GO_SYN_LIMIT 190 /* Go clients abort the session past 200 unaccepted SYNs */

static uint8_t scratch[WORKER_READ_CHUNK];
static uint8_t frame_buf[WS_MAX_HEADER + MUX_MAX_CONTROL_LEN + MUX_DEFAULT_MAX_FRAME];

static void arm_timer(struct worker *w);
static void worker_expire_waiting(struct worker *w, int64_t now);

static void send_control(struct worker *w, enum ws_opcode op, const uint8_t *data, size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t h = ws_encode_header(hdr, 1, op, len, NULL);
    struct evbuffer *out = bufferevent_get_output(w->bev);
    evbuffer_add(out, hdr, h);
    if (len)
        evbuffer_add(out, data, len);
}

static void worker_flush(struct worker *w)
{
    if (!w || w->closing)
        return;
    struct evbuffer *out = bufferevent_get_output(w->bev);
    uint8_t *m = frame_buf + WS_MAX_HEADER;
    while (evbuffer_get_length(out) < WORKER_OUT_HIGH) {
        size_t n = mux_session_next(w->mux, m, sizeof frame_buf - WS_MAX_HEADER);
        if (n == 0)
            break;
        uint8_t hdr[WS_MAX_HEADER];
        size_t h = ws_encode_header(hdr, 1, WS_OP_BINARY, n, NULL);
        evbuffer_add(out, hdr, h);
        evbuffer_add(out, m, n);
    }
    if (w->read_paused && mux_session_buffered(w->mux) <= (uint64_t)w->node->cfg->session_buffer) {
        w->read_paused = 0;
        bufferevent_enable(w->bev, EV_READ);
    }
}

void worker_kick(struct worker *w)
{
    if (!w || w->closing)
        return;
    event_active(w->flush_ev, EV_WRITE, 0);
}

static void flush_cb(evutil_socket_t fd, short what, void *ud)
{
    worker_flush(ud);
}

static void output_cb(struct mux_session *s, void *ud)
{
    struct worker *w = ud;
    if (!w->closing)
        event_active(w->flush_ev, EV_WRITE, 0);
}

static void incoming_cb(struct mux_session *s, struct mux_stream *st, void *ud)
{
    mux_stream_reset(st, MUX_REASON_REFUSED); /* workers open nothing towards the node */
}

static void closed_cb(struct mux_stream *st, int err, void *ud)
{
    if (ud)
        viewer_on_closed(st, err, ud);
}

static void data_cb(struct mux_stream *st, const uint8_t *d, size_t n, void *ud)
{
    if (ud)
        viewer_on_data(st, d, n, ud);
    else
        mux_stream_consume(st, n);
}

static void eof_cb(struct mux_stream *st, void *ud)
{
    if (ud)
        viewer_on_eof(st, ud);
}

static void writable_cb(struct mux_stream *st, void *ud)
{
    if (ud)
        viewer_on_writable(st, ud);
}

static const struct mux_callbacks worker_mux_callbacks = {
    .stream_incoming_cb = incoming_cb,
    .stream_data_cb = data_cb,
    .stream_eof_cb = eof_cb,
    .stream_writable_cb = writable_cb,
    .stream_closed_cb = closed_cb,
    .output_cb = output_cb,
};

static void free_cb(evutil_socket_t fd, short what, void *ud)
{
    struct worker *w = ud;
    mux_session_free(w->mux);
    ws_parser_free(&w->parser);
    if (w->bev)
        bufferevent_free(w->bev);
    event_free(w->flush_ev);
    event_free(w->timer_ev);
    event_free(w->free_ev);
    free(w);
}

static void closing_write_cb(struct bufferevent *bev, void *ud)
{
    struct worker *w = ud;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        event_active(w->free_ev, EV_TIMEOUT, 0);
}

static void closing_event_cb(struct bufferevent *bev, short what, void *ud)
{
    struct worker *w = ud;
    event_active(w->free_ev, EV_TIMEOUT, 0);
}

void worker_close(struct worker *w, const char *why)
{
    struct viewer *v;
    if (w->closing)
        return;
    LOG_I("worker=%s session=%llu closed: %s", w->id, (unsigned long long)w->serial, why);
    w->closing = 1;
    node_table_remove(w->node, w);
    w->node->stats.workers--;
    bufferevent_disable(w->bev, EV_READ | EV_WRITE);
    while ((v = TAILQ_FIRST(&w->waiting))) {
        TAILQ_REMOVE(&w->waiting, v, wait_link);
        viewer_stream_ready(v, NULL, MUX_E_ABORTED);
    }
    mux_session_abort(w->mux, MUX_E_ABORTED); /* every viewer hears of its stream's end */
    event_del(w->timer_ev);
    if (evbuffer_get_length(bufferevent_get_output(w->bev)) > 0 && !w->node->stopping) {
        /* let a queued close frame reach the worker, for at most a second */
        struct timeval tv = {1, 0};
        bufferevent_setcb(w->bev, NULL, closing_write_cb, closing_event_cb, w);
        bufferevent_setwatermark(w->bev, EV_WRITE, 0, 0);
        bufferevent_enable(w->bev, EV_WRITE);
        event_add(w->free_ev, &tv);
        return;
    }
    event_active(w->free_ev, EV_TIMEOUT, 0);
}

static void handle_message(struct worker *w, const struct ws_event *ev)
{
    int64_t now = node_now_ms();
    switch (ev->type) {
    case WS_EV_MESSAGE:
        if (ev->opcode == WS_OP_BINARY) {
            int rc = mux_session_feed(w->mux, ev->data, ev->len, now);
            if (rc != 0)
                worker_close(w, mux_strerror(rc));
        }
        break;
    case WS_EV_PING: send_control(w, WS_OP_PONG, ev->data, ev->len); break;
    case WS_EV_PONG: w->last_pong_ms = now; break;
    case WS_EV_CLOSE: {
        uint8_t buf[WS_MAX_HEADER + 2];
        size_t n = ws_encode_close(buf, sizeof buf, 1000, NULL, NULL);
        evbuffer_add(bufferevent_get_output(w->bev), buf, n);
        worker_close(w, "closed by the worker");
        break;
    }
    default: break;
    }
}

static void read_cb(struct bufferevent *bev, void *ud)
{
    struct worker *w = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!w->closing && !w->read_paused) {
        int n = evbuffer_remove(in, scratch, sizeof scratch);
        if (n <= 0)
            break;
        size_t off = 0, len = (size_t)n;
        while (!w->closing) {
            struct ws_event ev;
            ssize_t k = ws_parse(&w->parser, scratch + off, len - off, &ev);
            if (k < 0) {
                uint8_t buf[WS_MAX_HEADER + 2];
                size_t c = ws_encode_close(buf, sizeof buf, ws_err_close_code((int)k), NULL, NULL);
                evbuffer_add(bufferevent_get_output(bev), buf, c);
                worker_close(w, ws_strerror((int)k));
                return;
            }
            off += (size_t)k;
            if (ev.type == WS_EV_NONE)
                break;
            handle_message(w, &ev);
        }
        if (!w->closing && mux_session_buffered(w->mux) > (uint64_t)w->node->cfg->session_buffer) {
            w->read_paused = 1; /* resumed by worker_flush once viewers have drained */
            bufferevent_disable(bev, EV_READ);
        }
    }
    worker_flush(w);
}

static void write_cb(struct bufferevent *bev, void *ud)
{
    worker_flush(ud);
}

static void event_cb(struct bufferevent *bev, short what, void *ud)
{
    worker_close(ud, (what & BEV_EVENT_EOF) ? "connection closed" : "connection error");
}

static void timer_cb(evutil_socket_t fd, short what, void *ud)
{
    struct worker *w = ud;
    int64_t now = node_now_ms();
    mux_session_tick(w->mux, now);
    worker_expire_waiting(w, now);
    if (w->closing)
        return;
    int64_t interval = w->node->cfg->ping_interval_ms;
    if (now - w->last_ping_ms >= interval) {
        if (w->last_pong_ms < w->last_ping_ms) {
            worker_close(w, "no pong within the ping interval");
            return;
        }
        send_control(w, WS_OP_PING, NULL, 0);
        w->last_ping_ms = now;
    }
    worker_flush(w);
    arm_timer(w);
}

static void arm_timer(struct worker *w)
{
    int64_t now = node_now_ms();
    int64_t at = w->last_ping_ms + w->node->cfg->ping_interval_ms;
    int64_t d = mux_session_next_deadline(w->mux);
    if (d >= 0 && d < at)
        at = d;
    struct viewer *v = TAILQ_FIRST(&w->waiting);
    if (v && v->wait_deadline_ms < at)
        at = v->wait_deadline_ms;
    int64_t wait = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    event_add(w->timer_ev, &tv);
}

struct worker *worker_start(struct node *n, struct bufferevent *bev, const char *id, size_t id_len, int ext)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w) {
        bufferevent_free(bev);
        return NULL;
    }
    w->node = n;
    memcpy(w->id, id, id_len);
    w->id[id_len] = 0;
    w->serial = ++n->next_serial;
    w->bev = bev;
    w->ext = ext;
    TAILQ_INIT(&w->waiting);
    ws_parser_init(&w->parser, WS_ROLE_SERVER, WORKER_MAX_MESSAGE);
    struct mux_config mc;
    mux_config_defaults(&mc, 1);
    mc.ext = ext;
    mc.window = (uint32_t)n->cfg->stream_window;
    mc.send_buffer = (uint32_t)n->cfg->stream_window;
    mc.max_pending_syn = n->cfg->max_streams_per_worker < GO_SYN_LIMIT
                             ? (uint32_t)n->cfg->max_streams_per_worker
                             : GO_SYN_LIMIT;
    w->mux = mux_session_new(&mc, &worker_mux_callbacks, w);
    w->flush_ev = event_new(n->base, -1, 0, flush_cb, w);
    w->timer_ev = evtimer_new(n->base, timer_cb, w);
    w->free_ev = event_new(n->base, -1, 0, free_cb, w);
    if (!w->mux || !w->flush_ev || !w->timer_ev || !w->free_ev) {
        LOG_E("worker=%s out of memory", w->id);
        w->closing = 1;
        free_cb(-1, 0, w);
        return NULL;
    }
    struct worker *old = node_find_worker(n, id, id_len);
    if (old)
        worker_close(old, "replaced by a new registration");
    node_table_put(n, w);
    n->stats.workers++;
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, WORKER_OUT_LOW, 0);
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, w);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    /* as the Go peers do: a ping as soon as the session starts; its pong is
     * due within one interval like any other */
    w->last_ping_ms = node_now_ms();
    w->last_pong_ms = w->last_ping_ms - 1;
    send_control(w, WS_OP_PING, NULL, 0);
    arm_timer(w);
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        read_cb(bev, w);
    return w;
}

int worker_attach(struct worker *w, struct viewer *v)
{
    if (w->closing || mux_session_remote_goaway(w->mux))
        return -1;
    if (w->streams < (uint32_t)w->node->cfg->max_streams_per_worker && TAILQ_EMPTY(&w->waiting)) {
        int err;
        struct mux_stream *st = mux_stream_open(w->mux, v, node_now_ms(), &err);
        if (st) {
            w->streams++;
            viewer_stream_ready(v, st, 0);
            return 0;
        }
        if (err != MUX_E_LIMIT)
            return -1;
    }
    v->wait_deadline_ms = node_now_ms() + w->node->cfg->queue_timeout_ms;
    TAILQ_INSERT_TAIL(&w->waiting, v, wait_link);
    arm_timer(w);
    return 0;
}

void worker_detach_waiting(struct worker *w, struct viewer *v)
{
    TAILQ_REMOVE(&w->waiting, v, wait_link);
}

void worker_stream_done(struct worker *w)
{
    struct viewer *v;
    if (!w)
        return;
    if (w->streams > 0)
        w->streams--;
    if (w->closing)
        return;
    while ((v = TAILQ_FIRST(&w->waiting)) && w->streams < (uint32_t)w->node->cfg->max_streams_per_worker) {
        int err;
        struct mux_stream *st = mux_stream_open(w->mux, v, node_now_ms(), &err);
        if (!st)
            break;
        TAILQ_REMOVE(&w->waiting, v, wait_link);
        w->streams++;
        viewer_stream_ready(v, st, 0);
    }
}

/* Viewers that waited too long for a slot get 503. Called from the timer. */
static void worker_expire_waiting(struct worker *w, int64_t now)
{
    struct viewer *v;
    while ((v = TAILQ_FIRST(&w->waiting)) && v->wait_deadline_ms <= now) {
        TAILQ_REMOVE(&w->waiting, v, wait_link);
        viewer_stream_ready(v, NULL, MUX_E_TIMEOUT);
    }
}
