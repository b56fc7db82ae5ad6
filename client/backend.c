/* whclient: one raw TCP connection to 127.0.0.1:<target port> per stream the
 * node opens, with flow control as backpressure both ways:
 *
 *   node -> local port: stream data is copied into the backend's queue and
 *     reported to the session (mux_stream_consume) only as it is written to
 *     the socket, which is what grants the node more credit;
 *   local port -> node: socket data goes to mux_stream_write; when the stream
 *     takes less than offered, the rest waits in a stash and the socket is not
 *     read (lws_rx_flow_control) until stream_writable_cb.
 *
 * Data for the local port that arrives in one read from the node is sent
 * with one sendmsg() per backend when that read is handled (gathered as
 * iovecs pointing into lws's read buffer, see client_backend_flush()): an
 * upload's 32 KiB frames came in fours and went out one send() each, each
 * waking the local server.
 *
 * Lifetime: a backend lives while it has a stream (b->st) or a socket (b->wsi)
 * or is inside one of its own calls (b->busy); release() frees it when all
 * three are gone. A wsi is detached (its opaque pointer cleared) as soon as
 * lws reports it closing, so no later lws callback can reach a freed backend.
 */
#include "client/client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define QUEUE_MAX ((size_t)4 * 1024 * 1024) /* far above the window we grant: a bug guard */
#define STASH_MAX ((size_t)1024 * 1024)
#define GATHER_MAX 16 /* pieces gathered per backend before they are sent anyway */

struct client_backend {
    struct client *c;
    struct mux_stream *st; /* NULL once the stream is gone */
    struct lws *wsi;       /* NULL once the socket is gone */
    uint32_t id;           /* stream id, for logs */
    int busy;              /* calls in progress on this backend */
    unsigned connected : 1, failed : 1, node_eof : 1, shut_wr : 1, tcp_eof : 1, rx_paused : 1;
    uint8_t *q; /* node -> local port, not yet written */
    size_t q_off, q_len, q_cap;
    uint8_t *stash; /* local port -> node, not yet taken by the stream */
    size_t s_off, s_len;
    lws_sorted_usec_list_t sul_fin; /* socket gone, stream not yet: see fin_wait_cb */
    TAILQ_ENTRY(client_backend) link;
    /* node -> local port, gathered from the node's read buffer (its queue
     * comes after them, so q_len is 0 while g_n is not) */
    struct iovec g[GATHER_MAX];
    int g_n;
    int g_listed;                  /* on c->gather (until client_backend_flush()) */
    struct client_backend *g_next; /* ... next there */
};

static void hold(struct client_backend *b)
{
    b->busy++;
}

static void release(struct client_backend *b)
{
    if (--b->busy > 0 || b->st || b->wsi)
        return;
    lws_sul_cancel(&b->sul_fin);
    TAILQ_REMOVE(&b->c->backends, b, link);
    b->c->nbackends--;
    free(b->q);
    free(b->stash);
    free(b);
}

/* Forgets the wsi: lws will not reach this backend through it any more. */
static void detach(struct client_backend *b)
{
    if (!b->wsi)
        return;
    lws_set_opaque_user_data(b->wsi, NULL);
    b->wsi = NULL;
}

/* Closes the socket now (the stream is gone). */
static void kill_socket(struct client_backend *b)
{
    struct lws *wsi = b->wsi;
    if (!wsi)
        return;
    detach(b);
    lws_set_timeout(wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

/* Gives the session back the credit for queued bytes that will never be written. */
static void drop_queue(struct client_backend *b)
{
    size_t n = b->q_len;
    b->q_off = b->q_len = 0;
    if (n && b->st) {
        mux_stream_consume(b->st, n);
        client_rx_check(b->c);
    }
}

/* Abandons the stream: RST(reason) with the extensions; without them a FIN
 * (the node sees an empty reply), after which the session discards and
 * acknowledges what the node still sends until its FIN, or for 30 s: the Go
 * servers never send that FIN after answering 500, so a plain close would
 * keep the stream forever. No stream_closed_cb follows. */
static void reset_stream(struct client_backend *b, uint32_t reason)
{
    struct mux_stream *st = b->st;
    if (!st)
        return;
    b->st = NULL;
    mux_stream_reset(st, reason);
    client_timer_update(b->c);
}

static void connect_failed(struct client_backend *b, const char *why)
{
    if (b->failed)
        return;
    b->failed = 1;
    CLIENT_WARN("[stream %u] cannot connect to 127.0.0.1:%d: %s", b->id, client_cfg->target_port, why);
    drop_queue(b);
    reset_stream(b, MUX_REASON_BACKEND);
}

/* The socket is gone and our FIN is queued; the node's FIN normally follows.
 * A node that never sends it (the Go servers, after a reply they could not
 * parse) would keep the stream forever: once everything we had to send is
 * out, wait CLIENT_FIN_WAIT_S, then let the stream go. */
static void fin_wait_cb(lws_sorted_usec_list_t *sul)
{
    struct client_backend *b = lws_container_of(sul, struct client_backend, sul_fin);
    if (!b->st || b->c->state == CLIENT_STOPPING)
        return;
    hold(b);
    if (mux_stream_queued(b->st) > 0 || b->s_len > 0) {
        lws_sul_schedule(b->c->ctx, 0, &b->sul_fin, fin_wait_cb, CLIENT_FIN_WAIT_S * LWS_US_PER_SEC);
    } else {
        CLIENT_DEBUG("[stream %u] no FIN from the node after %d s: dropping the stream", b->id,
                     CLIENT_FIN_WAIT_S);
        reset_stream(b, MUX_REASON_CANCEL);
    }
    release(b);
}

/* The socket is gone (closed by either side, or never connected). */
static void socket_gone(struct client_backend *b, const char *why)
{
    detach(b);
    if (!b->st || b->failed || b->tcp_eof)
        return;
    if (!b->connected) {
        connect_failed(b, why);
        return;
    }
    CLIENT_DEBUG("[stream %u] local connection closed", b->id);
    b->tcp_eof = 1;
    drop_queue(b);
    if (b->st && b->s_len == 0) {
        mux_stream_close(b->st); /* FIN after what the stream already holds */
        client_timer_update(b->c);
    }
    if (b->st && b->c->state != CLIENT_STOPPING)
        lws_sul_schedule(b->c->ctx, 0, &b->sul_fin, fin_wait_cb, CLIENT_FIN_WAIT_S * LWS_US_PER_SEC);
}

/* ---- mux side ----------------------------------------------------------------- */

void client_backend_open(struct client *c, struct mux_stream *st)
{
    struct lws_client_connect_info i;
    struct client_backend *b = NULL;
    uint32_t id = mux_stream_id(st);

    if (c->nbackends >= CLIENT_MAX_BACKENDS || !(b = calloc(1, sizeof *b))) {
        if (c->nbackends >= CLIENT_MAX_BACKENDS)
            CLIENT_WARN("[stream %u] refused: %d streams are open already", id, CLIENT_MAX_BACKENDS);
        else
            CLIENT_ERROR("[stream %u] refused: out of memory", id);
        mux_stream_reset(st, MUX_REASON_REFUSED);
        client_timer_update(c);
        return;
    }
    b->c = c;
    b->st = st;
    b->id = id;
    b->busy = 1;
    TAILQ_INSERT_TAIL(&c->backends, b, link);
    c->nbackends++;
    mux_stream_accept(st, b);
    CLIENT_DEBUG("[stream %u] accepted; connecting to 127.0.0.1:%d", id, client_cfg->target_port);

    memset(&i, 0, sizeof i);
    i.context = c->ctx;
    i.address = "127.0.0.1";
    i.host = "127.0.0.1";
    i.port = client_cfg->target_port;
    i.method = "RAW";
    i.local_protocol_name = CLIENT_RAW_PROTOCOL;
    i.opaque_user_data = b;
    i.pwsi = &b->wsi;
    if (!lws_client_connect_via_info(&i)) {
        /* lws may already have reported the failure (and destroyed the wsi) */
        b->wsi = NULL;
        connect_failed(b, "connection failed");
    }
    release(b);
}

/* Writes up to n bytes at p to the local port now. The socket is lws's, but
 * only this file writes to it, with send() (never lws_write()), so lws has
 * nothing of its own queued there to overtake. Returns the bytes written
 * (0: the socket is full), or -1 on an error. */
static ssize_t send_now(struct client_backend *b, const uint8_t *p, size_t n)
{
    ssize_t w = send(lws_get_socket_fd(b->wsi), p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return w;
}

/* n bytes of the stream are out: that returns credit to the node. */
static void written(struct client_backend *b, size_t n)
{
    if (n && b->st) {
        mux_stream_consume(b->st, n);
        client_rx_check(b->c);
    }
}

/* Appends len bytes to the queue for the local port. Returns 0, or -1 when
 * they do not fit (the stream is reset and the socket closed). */
static int queue_add(struct client_backend *b, const uint8_t *data, size_t len)
{
    if (b->q_off + b->q_len + len > b->q_cap) {
        if (b->q_off) {
            memmove(b->q, b->q + b->q_off, b->q_len);
            b->q_off = 0;
        }
        if (b->q_len + len > b->q_cap) {
            size_t cap = b->q_cap ? b->q_cap : 16384;
            uint8_t *q;
            while (cap < b->q_len + len)
                cap *= 2;
            if (cap > QUEUE_MAX || !(q = realloc(b->q, cap))) {
                CLIENT_ERROR("[stream %u] cannot queue %zu more bytes for the local port: closing", b->id,
                             len);
                reset_stream(b, MUX_REASON_CANCEL);
                kill_socket(b);
                return -1;
            }
            b->q = q;
            b->q_cap = cap;
        }
    }
    memcpy(b->q + b->q_off + b->q_len, data, len);
    b->q_len += len;
    return 0;
}

/* Sends what was gathered, in one sendmsg(); what the socket does not take
 * goes to the queue (a send error is found again, and handled, by
 * on_writeable()). Without a socket, the bytes are discarded. */
static void send_gathered(struct client_backend *b)
{
    int n = b->g_n;
    size_t total = 0, w = 0;
    if (n == 0)
        return;
    b->g_n = 0;
    for (int i = 0; i < n; i++)
        total += b->g[i].iov_len;
    if (!b->wsi || b->failed) {
        written(b, total); /* nowhere to write: keep the node flowing */
        return;
    }
    struct msghdr m = {.msg_iov = b->g, .msg_iovlen = (size_t)n};
    ssize_t r = sendmsg(lws_get_socket_fd(b->wsi), &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0)
        w = (size_t)r;
    written(b, w);
    for (int i = 0; i < n && b->wsi; i++) {
        size_t skip = w < b->g[i].iov_len ? w : b->g[i].iov_len;
        w -= skip;
        if (skip < b->g[i].iov_len &&
            queue_add(b, (const uint8_t *)b->g[i].iov_base + skip, b->g[i].iov_len - skip) < 0)
            return;
    }
    if (b->wsi && b->q_len)
        lws_callback_on_writable(b->wsi);
}

void client_backend_flush(struct client *c)
{
    struct client_backend *b;
    while ((b = c->gather)) {
        c->gather = b->g_next;
        b->g_listed = 0;
        send_gathered(b);
        release(b); /* held while on the list */
    }
}

/* Whether data lies in the node's read buffer, which lives until
 * client_backend_flush(): the stream's bytes of a whole frame do (the mux
 * and WebSocket parsers hand them over in place). */
static int in_read_buffer(const struct client *c, const uint8_t *data, size_t len)
{
    return c->rx_lo && data >= c->rx_lo && data + len <= c->rx_hi;
}

void client_backend_data_cb(struct mux_stream *st, const uint8_t *data, size_t len, void *ud)
{
    struct client_backend *b = ud;
    hold(b);
    if (!b->wsi || b->failed) { /* nowhere to write: discard, keep the node flowing */
        mux_stream_consume(st, len);
        client_rx_check(b->c);
        goto out;
    }
    if (b->connected && b->q_len == 0 && !b->shut_wr && in_read_buffer(b->c, data, len)) {
        if (b->g_n == GATHER_MAX)
            send_gathered(b);
        if (b->wsi && b->q_len == 0) {
            if (!b->g_listed) {
                hold(b);
                b->g_listed = 1;
                b->g_next = b->c->gather;
                b->c->gather = b;
            }
            b->g[b->g_n].iov_base = (void *)data;
            b->g[b->g_n++].iov_len = len;
            goto out;
        }
    }
    send_gathered(b); /* what was gathered goes first */
    if (b->wsi && b->connected && b->q_len == 0 && !b->shut_wr) {
        /* straight to the socket, without a poll() round and a copy; an
         * error is found again, and handled, by on_writeable() */
        ssize_t w = send_now(b, data, len);
        if (w > 0) {
            data += w;
            len -= (size_t)w;
            written(b, (size_t)w);
        }
        if (len == 0 || !b->wsi)
            goto out;
    }
    if (b->wsi && queue_add(b, data, len) == 0 && b->connected)
        lws_callback_on_writable(b->wsi);
out:
    release(b);
}

void client_backend_eof_cb(struct mux_stream *st, void *ud)
{
    struct client_backend *b = ud;
    (void)st;
    send_gathered(b); /* before the FIN is acted on */
    b->node_eof = 1;
    CLIENT_DEBUG("[stream %u] end of request data from the node", b->id);
    if (b->wsi && b->connected)
        lws_callback_on_writable(b->wsi);
}

void client_backend_writable_cb(struct mux_stream *st, void *ud)
{
    struct client_backend *b = ud;
    hold(b);
    if (b->s_len) {
        ssize_t n = mux_stream_write(st, b->stash + b->s_off, b->s_len);
        if (n < 0) {
            b->s_len = 0;
            kill_socket(b);
        } else {
            b->s_off += (size_t)n;
            b->s_len -= (size_t)n;
        }
    }
    if (b->s_len == 0) {
        free(b->stash);
        b->stash = NULL;
        b->s_off = 0;
        if (b->tcp_eof && b->st) {
            mux_stream_close(b->st);
        } else if (b->rx_paused && b->wsi) {
            b->rx_paused = 0;
            lws_rx_flow_control(b->wsi, 1);
        }
    }
    release(b);
}

void client_backend_closed_cb(struct mux_stream *st, int err, void *ud)
{
    struct client_backend *b = ud;
    (void)st;
    hold(b);
    send_gathered(b); /* the stream's last bytes, before the socket is closed */
    b->st = NULL;
    if (err)
        CLIENT_DEBUG("[stream %u] ended: %s", b->id, mux_strerror(err));
    else
        CLIENT_DEBUG("[stream %u] done", b->id);
    kill_socket(b);
    release(b);
}

/* ---- socket side --------------------------------------------------------------- */

static int stash_add(struct client_backend *b, const uint8_t *p, size_t n)
{
    uint8_t *s;
    if (b->s_off) {
        memmove(b->stash, b->stash + b->s_off, b->s_len);
        b->s_off = 0;
    }
    if (b->s_len + n > STASH_MAX || !(s = realloc(b->stash, b->s_len + n)))
        return -1;
    memcpy(s + b->s_len, p, n);
    b->stash = s;
    b->s_len += n;
    return 0;
}

static int on_rx(struct client_backend *b, struct lws *wsi, const uint8_t *in, size_t len)
{
    ssize_t n = 0;
    if (!b->st)
        return 0;   /* the stream is gone: the socket is being closed */
    if (b->shut_wr) /* half-closed: an idle timeout, re-armed by traffic */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, CLIENT_HALF_CLOSE_IDLE_S);
    if (b->s_len == 0) {
        n = mux_stream_write(b->st, in, len);
        if (n < 0) {
            CLIENT_DEBUG("[stream %u] the stream takes no more data: %s", b->id, mux_strerror((int)n));
            return -1;
        }
    }
    if ((size_t)n < len) {
        if (stash_add(b, in + n, len - (size_t)n) != 0) {
            CLIENT_ERROR("[stream %u] out of memory: closing", b->id);
            return -1;
        }
        if (!b->rx_paused) {
            b->rx_paused = 1;
            lws_rx_flow_control(wsi, 0);
        }
    }
    return 0;
}

static int on_writeable(struct client_backend *b, struct lws *wsi)
{
    if (b->q_len) {
        ssize_t w = send_now(b, b->q + b->q_off, b->q_len);
        if (w < 0)
            return -1;
        b->q_off += (size_t)w;
        b->q_len -= (size_t)w;
        if (b->q_len == 0)
            b->q_off = 0;
        written(b, (size_t)w); /* this is what returns credit to the node */
        if (b->wsi && (b->q_len || (b->node_eof && !b->shut_wr)))
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (b->node_eof && !b->shut_wr) {
        /* lws calls WRITEABLE only once its own partial writes are out */
        b->shut_wr = 1;
        shutdown(lws_get_socket_fd(wsi), SHUT_WR);
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, CLIENT_HALF_CLOSE_IDLE_S);
        CLIENT_DEBUG("[stream %u] request forwarded; local write side shut", b->id);
    }
    return 0;
}

int client_backend_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                            size_t len)
{
    struct client_backend *b = lws_get_opaque_user_data(wsi);
    int rc = 0;
    (void)user;
    if (!b)
        return 0;
    hold(b);
    switch (reason) {
    case LWS_CALLBACK_RAW_CONNECTED:
        b->connected = 1;
        CLIENT_DEBUG("[stream %u] connected to 127.0.0.1:%d", b->id, client_cfg->target_port);
        if (b->q_len || b->node_eof)
            lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        socket_gone(b, in && len ? (const char *)in : "connection failed");
        break;
    case LWS_CALLBACK_RAW_RX: rc = on_rx(b, wsi, in, len); break;
    case LWS_CALLBACK_RAW_WRITEABLE: rc = on_writeable(b, wsi); break;
    case LWS_CALLBACK_RAW_CLOSE: socket_gone(b, "connection closed"); break;
    default: break;
    }
    release(b);
    return rc;
}

void client_backend_wsi_destroyed(struct client *c, struct lws *wsi)
{
    struct client_backend *b = lws_get_opaque_user_data(wsi);
    (void)c;
    if (!b || b->wsi != wsi)
        return;
    hold(b);
    socket_gone(b, "connection closed");
    release(b);
}

void client_backend_stop_all(struct client *c)
{
    struct client_backend *b, *next;
    for (b = TAILQ_FIRST(&c->backends); b; b = next) {
        next = TAILQ_NEXT(b, link);
        hold(b);
        lws_sul_cancel(&b->sul_fin);
        detach(b); /* lws_context_destroy() closes the socket */
        release(b);
    }
}
