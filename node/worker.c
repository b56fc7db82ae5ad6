/* Sessions: a WebSocket (our mux/ws codec on a bufferevent) carrying a wsmux
 * session. A worker's registration WebSocket (server role) whose streams
 * serve viewers; or a link to a peer node (ext mode, either role), whose
 * streams go both ways: ours carry viewers this node relays, the peer's are
 * served by relay.c.
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
#define GO_SYN_LIMIT 190       /* Go clients abort the session past 200 unaccepted SYNs */
#define PEER_MAX_STREAMS 65536 /* streams one way on a link to a peer node */

static uint8_t scratch[WORKER_READ_CHUNK];
static uint8_t frame_buf[WS_MAX_HEADER + MUX_MAX_CONTROL_LEN + MUX_DEFAULT_MAX_FRAME];

/* Frames we send as a client must be masked; between our own nodes the key
 * is zero, which masks nothing (the link carries no browser traffic a
 * random key would protect proxies from). */
static const uint8_t zero_key[4];

static void arm_timer(struct worker *w);
static void worker_expire_waiting(struct worker *w, int64_t now);

static const uint8_t *mask_key(const struct worker *w)
{
    return w->is_client ? zero_key : NULL;
}

static const char *kind_name(const struct worker *w)
{
    return w->kind == SESSION_PEER ? "peer" : "worker";
}

static void send_close(struct worker *w, uint16_t code)
{
    uint8_t buf[WS_MAX_HEADER + 2];
    size_t n = ws_encode_close(buf, sizeof buf, code, NULL, mask_key(w));
    evbuffer_add(bufferevent_get_output(w->bev), buf, n);
}

static void send_control(struct worker *w, enum ws_opcode op, const uint8_t *data, size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t h = ws_encode_header(hdr, 1, op, len, mask_key(w));
    struct evbuffer *out = bufferevent_get_output(w->bev);
    evbuffer_add(out, hdr, h);
    if (len)
        evbuffer_add(out, data, len);
}

static void worker_flush(struct worker *w)
{
    if (!w || w->closing || w->connecting)
        return;
    struct evbuffer *out = bufferevent_get_output(w->bev);
    uint8_t *m = frame_buf + WS_MAX_HEADER;
    while (evbuffer_get_length(out) < WORKER_OUT_HIGH) {
        size_t n = mux_session_next(w->mux, m, sizeof frame_buf - WS_MAX_HEADER);
        if (n == 0)
            break;
        uint8_t hdr[WS_MAX_HEADER];
        size_t h = ws_encode_header(hdr, 1, WS_OP_BINARY, n, mask_key(w));
        evbuffer_add(out, hdr, h);
        evbuffer_add(out, m, n);
    }
    if (w->read_paused && mux_session_buffered(w->mux) <= w->buffer_limit) {
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
    struct worker *w = ud;
    if (w->kind == SESSION_PEER && !w->closing)
        relay_incoming(w, st);
    else
        mux_stream_reset(st, MUX_REASON_REFUSED); /* workers open nothing towards the node */
}

/* A stream's user data is a viewer or a relay (its first member says which). */
static enum stream_user user_of(void *ud)
{
    return ud ? *(enum stream_user *)ud : 0;
}

static void closed_cb(struct mux_stream *st, int err, void *ud)
{
    switch (user_of(ud)) {
    case SU_VIEWER: viewer_on_closed(st, err, ud); break;
    case SU_RELAY: relay_on_closed(st, err, ud); break;
    }
}

static void data_cb(struct mux_stream *st, const uint8_t *d, size_t n, void *ud)
{
    switch (user_of(ud)) {
    case SU_VIEWER: viewer_on_data(st, d, n, ud); break;
    case SU_RELAY: relay_on_data(st, d, n, ud); break;
    default: mux_stream_consume(st, n);
    }
}

static void eof_cb(struct mux_stream *st, void *ud)
{
    switch (user_of(ud)) {
    case SU_VIEWER: viewer_on_eof(st, ud); break;
    case SU_RELAY: relay_on_eof(st, ud); break;
    }
}

static void writable_cb(struct mux_stream *st, void *ud)
{
    switch (user_of(ud)) {
    case SU_VIEWER: viewer_on_writable(st, ud); break;
    case SU_RELAY: relay_on_writable(st, ud); break;
    }
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
    LOG_I("%s=%s session=%llu closed: %s", kind_name(w), w->id, (unsigned long long)w->serial, why);
    w->closing = 1;
    if (w->kind == SESSION_PEER) {
        peer_link_closed(w->node, w);
    } else {
        node_table_remove(w->node, w);
        w->node->stats.workers--;
        if (w->node->draining && !w->replaced && !w->node->stopping)
            peer_worker_moving(w->node, w); /* still ours in the registry until it re-registers elsewhere */
        else if (!w->replaced)
            peer_worker_closed(w->node, w);
    }
    bufferevent_disable(w->bev, EV_READ | EV_WRITE);
    while ((v = TAILQ_FIRST(&w->waiting))) {
        TAILQ_REMOVE(&w->waiting, v, wait_link);
        viewer_stream_ready(v, NULL, MUX_E_ABORTED);
    }
    mux_session_abort(w->mux, MUX_E_ABORTED); /* every viewer hears of its stream's end */
    event_del(w->timer_ev);
    if (evbuffer_get_length(bufferevent_get_output(w->bev)) > 0 && !w->node->stopping && !w->connecting) {
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
    case WS_EV_CLOSE:
        send_close(w, 1000);
        worker_close(w, w->kind == SESSION_PEER ? "closed by the peer" : "closed by the worker");
        break;
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
                send_close(w, ws_err_close_code((int)k));
                worker_close(w, ws_strerror((int)k));
                return;
            }
            off += (size_t)k;
            if (ev.type == WS_EV_NONE)
                break;
            handle_message(w, &ev);
        }
        if (!w->closing && mux_session_buffered(w->mux) > w->buffer_limit) {
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

static struct worker *session_new(struct node *n, struct bufferevent *bev, enum session_kind kind,
                                  const char *id, size_t id_len, int is_client, int ext)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w) {
        bufferevent_free(bev);
        return NULL;
    }
    w->node = n;
    w->kind = kind;
    memcpy(w->id, id, id_len);
    w->id[id_len] = 0;
    w->serial = ++n->next_serial;
    w->bev = bev;
    w->ext = ext;
    w->is_client = is_client;
    TAILQ_INIT(&w->waiting);
    ws_parser_init(&w->parser, is_client ? WS_ROLE_CLIENT : WS_ROLE_SERVER, WORKER_MAX_MESSAGE);
    struct mux_config mc;
    mux_config_defaults(&mc, !is_client);
    mc.ext = ext;
    mc.window = (uint32_t)n->cfg->stream_window;
    mc.send_buffer = (uint32_t)n->cfg->stream_window;
    if (kind == SESSION_PEER) {
        /* A link carries the relayed viewers of a pair of nodes: pausing it
         * for a few slow viewers would stall all the others. Our peers keep
         * to each stream's window, which bounds what a slow viewer holds. */
        w->buffer_limit = UINT64_MAX;
        w->max_streams = PEER_MAX_STREAMS;
        mc.max_pending_syn = PEER_MAX_STREAMS;
        mc.max_incoming = PEER_MAX_STREAMS;
    } else {
        w->buffer_limit = n->cfg->session_buffer;
        w->max_streams = (uint32_t)n->cfg->max_streams_per_worker;
        mc.max_pending_syn = w->max_streams < GO_SYN_LIMIT ? w->max_streams : GO_SYN_LIMIT;
    }
    w->mux = mux_session_new(&mc, &worker_mux_callbacks, w);
    w->flush_ev = event_new(n->base, -1, 0, flush_cb, w);
    w->timer_ev = evtimer_new(n->base, timer_cb, w);
    w->free_ev = event_new(n->base, -1, 0, free_cb, w);
    if (!w->mux || !w->flush_ev || !w->timer_ev || !w->free_ev) {
        LOG_E("%s=%s out of memory", kind_name(w), w->id);
        w->closing = 1;
        free_cb(-1, 0, w);
        return NULL;
    }
    return w;
}

/* The session runs on its bufferevent from now on. */
static void session_begin(struct worker *w)
{
    struct bufferevent *bev = w->bev;
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, WORKER_OUT_LOW, 0);
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, w);
    /* bulk data in few system calls (libevent's default is 16 KiB a call) */
    bufferevent_set_max_single_read(bev, NODE_MAX_SINGLE_IO);
    bufferevent_set_max_single_write(bev, NODE_MAX_SINGLE_IO);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    /* as the Go peers do: a ping as soon as the session starts; its pong is
     * due within one interval like any other */
    w->last_ping_ms = node_now_ms();
    w->last_pong_ms = w->last_ping_ms - 1;
    send_control(w, WS_OP_PING, NULL, 0);
    arm_timer(w);
    worker_flush(w);
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        read_cb(bev, w);
}

struct worker *worker_start(struct node *n, struct bufferevent *bev, const char *id, size_t id_len, int ext)
{
    struct worker *w = session_new(n, bev, SESSION_WORKER, id, id_len, 0, ext);
    if (!w)
        return NULL;
    struct worker *old = node_find_worker(n, id, id_len);
    if (old) {
        old->replaced = 1; /* the registry record passes to the new session */
        worker_close(old, "replaced by a new registration");
    }
    node_table_put(n, w);
    n->stats.workers++;
    peer_worker_registered(n, w);
    session_begin(w);
    return w;
}

struct worker *worker_new_peer(struct node *n, struct bufferevent *bev, const char *id, int is_client)
{
    struct worker *w = session_new(n, bev, SESSION_PEER, id, strlen(id), is_client, 1);
    if (!w)
        return NULL;
    if (is_client) {
        w->connecting = 1;
        return w; /* the dialer runs the bufferevent until worker_connected() */
    }
    session_begin(w);
    return w;
}

void worker_connected(struct worker *w)
{
    w->connecting = 0;
    session_begin(w);
}

int worker_attach(struct worker *w, struct viewer *v)
{
    if (w->closing || mux_session_remote_goaway(w->mux))
        return -1;
    if (w->draining) { /* wait for the worker's next node (peer.c) */
        v->wait_deadline_ms = w->node->drain_deadline_ms;
        TAILQ_INSERT_TAIL(&w->waiting, v, wait_link);
        arm_timer(w);
        return 0;
    }
    if (w->streams < w->max_streams && TAILQ_EMPTY(&w->waiting)) {
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
    if (w->draining) {
        /* a worker that got GOAWAY closes by itself once its streams are done; one that cannot (the
         * original protocol), or that moved already, is closed here */
        if (w->streams == 0 && (!w->ext || w->replaced))
            worker_close(w, w->replaced ? "moved to another node" : "drained: reconnect elsewhere");
        return;
    }
    while ((v = TAILQ_FIRST(&w->waiting)) && w->streams < w->max_streams) {
        int err;
        struct mux_stream *st = mux_stream_open(w->mux, v, node_now_ms(), &err);
        if (!st)
            break;
        TAILQ_REMOVE(&w->waiting, v, wait_link);
        w->streams++;
        viewer_stream_ready(v, st, 0);
    }
}

void worker_drain(struct worker *w)
{
    if (w->closing || w->kind != SESSION_WORKER || w->draining)
        return;
    w->draining = 1;
    if (w->ext) {
        mux_session_goaway(w->mux, MUX_REASON_DRAIN);
        worker_kick(w);
    }
    if (w->streams == 0 && !w->ext)
        worker_close(w, "drained: reconnect elsewhere");
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
