/* viewer: one viewer connection as a state machine (see viewer.h and
 * docs/architecture.md).
 *
 * Backpressure (pump.h): viewer -> worker, the viewer is read only while the
 * stream's outbound queue has room; worker -> viewer, the bytes a stream
 * delivers are consumed (credit returned to the worker) only once the
 * viewer's output buffer has drained below VIEWER_OUT_LOW. So a stream never
 * holds more than its window plus VIEWER_OUT_LOW, whatever the sizes and
 * speeds. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include "node/drain.h"
#include "node/endpoints.h"
#include "node/log.h"
#include "node/metrics.h"
#include "node/net.h"
#include "node/node.h"
#include "node/proxyproto.h"
#include "node/pump.h"
#include "node/relay.h"
#include "node/respond.h"
#include "node/returning.h"
#include "node/rewrite.h"
#include "node/route.h"
#include "node/viewer.h"
#include "node/workers.h"
#include "node/wsmux.h"
#include "util/cidr.h"
#include "util/util.h"

#define VIEWER_OUT_LOW (64 * 1024)
#define VIEWER_IN_HIGH (64 * 1024)
#define RESP_HEAD_MAX (64 * 1024)
#define RELAY_GRACE_MS 1000 /* relaying: the owner's limits, plus this, before ours end the wait */

/* Where a viewer connection is. */
enum viewer_state {
    V_HEAD,    /* reading a request head */
    V_WAIT,    /* routed, waiting for a stream: a slot on its worker, a route from Redis, a moving worker */
    V_PROXY,   /* request (body) going up, response coming down */
    V_TUNNEL,  /* after a 101: raw bytes both ways */
    V_CLOSING, /* flushing the last bytes, then close */
    V_CLOSED,  /* closed: freed from the loop */
    V_PP,      /* a connection from WHT_PROXY_PROTOCOL: reading its PROXY header (no bufferevent yet) */
};

#define S(x) (1u << (x))
/* The states each state may move to. */
static const unsigned transitions[] = {
    [V_HEAD] = S(V_HEAD) | S(V_WAIT) | S(V_PROXY) | S(V_CLOSING) | S(V_CLOSED),
    [V_WAIT] = S(V_WAIT) | S(V_PROXY) | S(V_CLOSING) | S(V_CLOSED),
    [V_PROXY] = S(V_HEAD) | S(V_WAIT) | S(V_PROXY) | S(V_TUNNEL) | S(V_CLOSING) | S(V_CLOSED),
    [V_TUNNEL] = S(V_CLOSING) | S(V_CLOSED),
    [V_CLOSING] = S(V_CLOSED),
    [V_CLOSED] = 0,
    [V_PP] = S(V_HEAD) | S(V_CLOSED),
};
static const char *const state_names[] = {"head",    "wait",   "proxy",       "tunnel",
                                          "closing", "closed", "proxy-header"};

struct viewer {
    const struct wsmux_stream_ops *ops; /* a stream's user data starts here */
    struct node *node;
    uint64_t serial;
    struct bufferevent *bev;
    enum viewer_state state;
    int tls;
    char peer_ip[64];    /* the viewer's address: the socket's, a PROXY header's, or a relay preamble's */
    evutil_socket_t fd;  /* V_PP: the socket until its header is read, then -1 */
    struct event *pp_ev; /* V_PP: the socket is readable */
    uint8_t *pp_buf;     /* V_PP: the header bytes taken off the socket so far (PROXYPROTO_MAX) */
    size_t pp_len;
    struct http1_request req; /* the current request head (points into head) */
    char *head;               /* the current request head bytes, malloc'd */
    size_t head_len;
    size_t head_scan; /* where the search for the end of the head being read resumes */
    size_t resp_scan; /* ... of the response head being read */
    char *fwd_path;   /* the request-target the worker sees */
    size_t fwd_path_len;
    int path_mode; /* routed by path: add the original-path headers */
    /* the session (a worker's, or a link to the node holding it) and the
     * stream serving this connection, kept across keep-alive requests */
    struct wsmux *worker;
    struct mux_stream *stream;
    struct wsmux_waiter waiter; /* waiting for a stream */
    struct relay_lookup lookup; /* asking Redis where worker_id lives */
    char worker_id[UTIL_MAX_ID_LEN + 1];
    int stream_reusable; /* the last response left the backend connection open */
    /* request body going up */
    enum http1_body req_body;
    uint64_t req_left; /* LENGTH: bytes still to send */
    struct http1_chunked req_chunked;
    int req_done;
    /* response coming down */
    struct evbuffer *resp_head; /* response head bytes until complete */
    enum http1_body resp_body;
    uint64_t resp_left;
    struct http1_chunked resp_chunked;
    int resp_started, resp_done, resp_keep_alive;
    int resp_dechunk;          /* an HTTP/1.0 viewer: the chunked body goes as its bare payload */
    uint64_t owed;             /* stream bytes delivered, not yet consumed */
    struct event *timer_ev;    /* the head's deadline, or the exchange's limits (lazily: see timer_cb) */
    int64_t timer_at;          /* timer_ev fires at this or earlier (monotonic ms); INT64_MAX: not pending */
    int64_t mark_ms;           /* the exchange last moved: stream accepted, request sent, a byte either way */
    uint64_t up_taken;         /* relaying: request bytes the link stream had sent when last looked at */
    int keep_alive;            /* the viewer may send another request */
    uint32_t nreq;             /* request heads read on this connection */
    unsigned relayed : 1;      /* arrived over a peer link: never relayed again */
    unsigned trusted : 1;      /* peer_ip is in WHT_TRUSTED_PROXIES: its X-Forwarded-For is kept */
    unsigned stream_fresh : 1; /* relaying: the stream still needs its preamble */
    unsigned retried;          /* relaying: this request was sent again after a miss */
    unsigned head_timed : 1;   /* timer_ev is the deadline of the head being read */
    unsigned accepted : 1;     /* the stream was accepted by the worker (or the owner node) */
    /* the current request, for the metrics, the access log and the worker's ring */
    int64_t req_start_us; /* monotonic: when its head was read */
    uint64_t req_in, req_out;
    int status; /* of the response head written, 0 before */
    enum node_via via;
    unsigned in_request : 1, tls_done : 1, id_made : 1;
    unsigned req_worker : 1; /* the request is for worker_id */
    char request_id[65];
    struct relay *relay;            /* relayed: the stream this connection is joined to */
    TAILQ_ENTRY(viewer) link;       /* the node's live viewers, then the dead ones */
    TAILQ_ENTRY(viewer) write_link; /* in the node's list of viewers to write at the end of this turn */
    unsigned write_soon : 1;        /* ... is in it */
};

TAILQ_HEAD(viewer_list, viewer);

struct viewers {
    struct viewer_list live;
    struct viewer_list dead; /* closed, freed by reap_ev */
    struct event *reap_ev;
    struct viewer_list to_write; /* response bytes added in this turn of the loop: written by write_ev */
    struct event *write_ev;
    struct evbuffer *scratch; /* a request head being rewritten (empty between uses) */
};

static const struct wsmux_stream_ops viewer_stream_ops;
static void pump_up(struct viewer *v);
static void next_head(struct viewer *v);
static void close_viewer(struct viewer *v);

/* ---- state ---------------------------------------------------------------------- */

/* Every state change: checked against the table, traced. */
static void set_state(struct viewer *v, enum viewer_state to)
{
    if (!(transitions[v->state] & S(to))) {
        LOG_E("conn=%llu bad state change %s -> %s", (unsigned long long)v->serial, state_names[v->state],
              state_names[to]);
#ifndef NDEBUG
        abort();
#endif
    }
    if (v->state != to)
        LOG_D("conn=%llu %s -> %s", (unsigned long long)v->serial, state_names[v->state], state_names[to]);
    if (to == V_TUNNEL && v->state != V_TUNNEL)
        v->node->stats.websockets_open++;
    else if (v->state == V_TUNNEL && to != V_TUNNEL)
        v->node->stats.websockets_open--;
    v->state = to;
}

static struct viewer *of_waiter(struct wsmux_waiter *wt)
{
    return (struct viewer *)((char *)wt - offsetof(struct viewer, waiter));
}

/* ---- the current request's figures ---------------------------------------------------------- */

/* The response head (status) is written: the time to it. */
static void head_written(struct viewer *v, int status)
{
    if (!v->in_request || v->status)
        return;
    v->status = status;
    metrics_head_time(&v->node->stats, (double)(util_now_us() - v->req_start_us) / 1e6);
}

static const char *const via_names[NODE_VIA_COUNT] = {"local", "relayed_in", "relayed_out", "endpoint"};

/* The request is over (answered, failed, or the viewer left): counted, logged
 * and remembered by its worker. Once per request. */
static void request_end(struct viewer *v)
{
    if (!v->in_request)
        return;
    v->in_request = 0;
    struct node *n = v->node;
    int status = v->status ? v->status : 499; /* no answer: the viewer went away */
    double ms = (double)(util_now_us() - v->req_start_us) / 1000.0;
    const char *q = v->req.path_len ? memchr(v->req.path, '?', v->req.path_len) : NULL;
    size_t path_len = q ? (size_t)(q - v->req.path) : v->req.path_len;
    metrics_request(&n->stats, v->via, status);
    if (n->cfg->access_log) {
        struct log_access a = {.worker = v->req_worker ? v->worker_id : "",
                               .method = v->req.method,
                               .method_len = v->req.method_len,
                               .path = v->req.path,
                               .path_len = path_len,
                               .status = status,
                               .bytes_in = v->req_in,
                               .bytes_out = v->req_out,
                               .duration_ms = ms,
                               .via = via_names[v->via],
                               .request_id = v->request_id,
                               .client = v->peer_ip,
                               .conn = v->serial};
        log_access(&a);
    }
    if (v->via == NODE_VIA_LOCAL || v->via == NODE_VIA_RELAYED_IN) {
        struct workers_request r = {.time_ms = util_wall_ms(),
                                    .method = v->req.method,
                                    .method_len = v->req.method_len,
                                    .path = v->req.path,
                                    .path_len = path_len,
                                    .status = status,
                                    .duration_ms = ms,
                                    .bytes_in = v->req_in,
                                    .bytes_out = v->req_out,
                                    .relayed = v->relayed,
                                    .request_id = v->request_id};
        if (v->req_worker)
            workers_record(n, v->worker_id, strlen(v->worker_id), &r);
    }
}

/* A sane X-Request-Id of the viewer's, or one made here. */
static void request_id(struct viewer *v)
{
    const struct http1_header *h = http1_find_header(&v->req.headers, "x-request-id");
    v->id_made =
        !(h && h->value_len >= 1 && h->value_len <= 64 && util_chars_only(h->value, h->value_len, "._:-"));
    if (!v->id_made) {
        memcpy(v->request_id, h->value, h->value_len);
        v->request_id[h->value_len] = 0;
        return;
    }
    struct node *n = v->node;
    static const char hex[] = "0123456789abcdef";
    uint64_t x = (uint64_t)n->request_id_prefix << 32 | (++n->request_ids & 0xffffffffu);
    for (int i = 15; i >= 0; i--, x >>= 4)
        v->request_id[i] = hex[x & 15];
    v->request_id[16] = 0;
}

/* A request head was read: its figures start. */
static void request_start(struct viewer *v)
{
    v->in_request = 1;
    v->req_start_us = util_now_us();
    v->req_in = v->head_len;
    v->req_out = 0;
    v->status = 0;
    v->via = v->relayed ? NODE_VIA_RELAYED_IN : NODE_VIA_LOCAL;
    v->req_worker = 0;
    v->node->stats.bytes_in += v->head_len;
    request_id(v);
}

/* The viewer's output: its length now, and the bytes added since mark
 * counted as sent (every write to the viewer is counted so; the socket
 * drains nothing while the node's code runs). */
static size_t out_mark(struct viewer *v)
{
    return evbuffer_get_length(bufferevent_get_output(v->bev));
}

static void sent(struct viewer *v, size_t n)
{
    v->req_out += n;
    v->node->stats.bytes_out += n;
}

static void out_count(struct viewer *v, size_t mark)
{
    sent(v, out_mark(v) - mark);
}

/* Closes once the output is out. */
static void finish(struct viewer *v)
{
    if (v->state == V_CLOSED)
        return;
    set_state(v, V_CLOSING);
    v->keep_alive = 0;
    bufferevent_disable(v->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(v->bev)) == 0)
        close_viewer(v);
}

/* Answers the current request with a small text and closes. */
/* Answers status with extra header lines (NULL: none) and a text body, and closes. */
static void fail_with(struct viewer *v, int status, const char *extra, const char *body)
{
    size_t mark = out_mark(v);
    respond(v->bev, status, respond_reason(status), "text/plain; charset=utf-8", extra, body, 1);
    out_count(v, mark);
    head_written(v, status);
    request_end(v);
    finish(v);
}

static void fail(struct viewer *v, int status, const char *body)
{
    fail_with(v, status, NULL, body);
}

/* Lets go of the stream (reset with reason), the worker slot and any wait, without waiting for the worker. */
static void reset_stream(struct viewer *v, uint32_t reason)
{
    relay_cancel(&v->lookup);
    returning_unpark(&v->waiter);
    wsmux_detach(&v->waiter);
    if (v->stream) {
        struct mux_stream *st = v->stream;
        v->stream = NULL;
        mux_stream_reset(st, reason);
        wsmux_stream_done(v->worker);
        wsmux_kick(v->worker);
    }
    v->worker = NULL;
    v->owed = 0;
    v->stream_reusable = 0;
    v->accepted = 0;
}

static void release_stream(struct viewer *v)
{
    reset_stream(v, MUX_REASON_CANCEL);
}

static void credit(struct viewer *v)
{
    if (pump_credit(v->stream, &v->owed, evbuffer_get_length(bufferevent_get_output(v->bev)), VIEWER_OUT_LOW))
        wsmux_kick(v->worker);
}

/* ---- the lifetime ------------------------------------------------------------------ */

static void reap_cb(evutil_socket_t fd, short what, void *ud)
{
    struct viewers *vs = ud;
    struct viewer *v;
    while ((v = TAILQ_FIRST(&vs->dead))) {
        TAILQ_REMOVE(&vs->dead, v, link);
        free(v);
    }
}

/* The one way a viewer ends: everything it holds is let go now, the struct
 * is freed from the loop (a caller up the stack may still look at it). */
static void close_viewer(struct viewer *v)
{
    if (v->state == V_CLOSED)
        return;
    if (v->state == V_TUNNEL)
        head_written(v, 101);
    request_end(v);
    set_state(v, V_CLOSED);
    if (v->write_soon) {
        TAILQ_REMOVE(&v->node->viewers->to_write, v, write_link);
        v->write_soon = 0;
    }
    release_stream(v);
    if (v->relay) {
        /* what the viewer left unsent goes to the relay, which sends it and closes the stream */
        if (v->bev)
            bufferevent_flush(v->bev, EV_WRITE, BEV_FLUSH);
        relay_viewer_gone(v->relay);
        v->relay = NULL;
    }
    if (v->bev)
        bufferevent_free(v->bev);
    v->bev = NULL;
    if (v->pp_ev)
        event_free(v->pp_ev);
    if (v->fd >= 0)
        evutil_closesocket(v->fd);
    free(v->pp_buf);
    if (v->timer_ev)
        event_free(v->timer_ev);
    if (v->resp_head)
        evbuffer_free(v->resp_head);
    free(v->head);
    free(v->fwd_path);
    struct viewers *vs = v->node->viewers;
    TAILQ_REMOVE(&vs->live, v, link);
    TAILQ_INSERT_TAIL(&vs->dead, v, link);
    event_active(vs->reap_ev, EV_TIMEOUT, 0);
    v->node->nconns--;
}

void viewer_abort(struct viewer *v)
{
    v->relay = NULL; /* the relay is going away itself */
    close_viewer(v);
}

/* ---- the request head ------------------------------------------------------------- */

static void unparsed_request(struct viewer *v);
static void pp_refuse(struct viewer *v, enum node_pp why, const char *what);

/* The head being read must be complete by header_timeout from its first byte
 * (from the accept for a connection's first request, its PROXY header
 * included), however it trickles in. */
static void head_timeout(struct viewer *v)
{
    if (v->state == V_PP) {
        pp_refuse(v, NODE_PP_TIMEOUT, "no complete PROXY protocol header within WHT_HEADER_TIMEOUT");
        return;
    }
    if (evbuffer_get_length(bufferevent_get_input(v->bev)) == 0) {
        close_viewer(v); /* a connection that never sent anything */
        return;
    }
    LOG_D("conn=%llu request head not complete in time", (unsigned long long)v->serial);
    unparsed_request(v);
    fail(v, 408, "request head not received in time\n");
}

static void arm_head_deadline(struct viewer *v)
{
    int64_t ms = v->node->cfg->header_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    v->head_timed = 1;
    v->timer_at = INT64_MIN; /* (set once the head is read) */
    evtimer_add(v->timer_ev, &tv);
}

/* Parses the head in the input; the head length, HTTP1_INCOMPLETE, or an error. */
static int parse_head(struct viewer *v, const char **p)
{
    struct evbuffer *in = bufferevent_get_input(v->bev);
    size_t max = (size_t)v->node->cfg->max_header_bytes;
    size_t len = evbuffer_get_length(in);
    if (len > max + 1)
        len = max + 1;
    *p = (const char *)evbuffer_pullup(in, (ssize_t)len);
    return http1_parse_request_from(*p, len, &v->req, max, &v->head_scan);
}

/* A head that could not be parsed is a request too (for the figures). */
static void unparsed_request(struct viewer *v)
{
    memset(&v->req, 0, sizeof v->req);
    v->head_len = evbuffer_get_length(bufferevent_get_input(v->bev)); /* what came of it */
    request_start(v);
}

/* A PROXY protocol header from an address not in WHT_PROXY_PROTOCOL (a bad
 * request anyway): 1 when that is what the input starts with, answered. */
static int unexpected_proxy_header(struct viewer *v)
{
    struct evbuffer *in = bufferevent_get_input(v->bev);
    size_t len = evbuffer_get_length(in);
    if (len > 12)
        len = 12;
    const uint8_t *p = evbuffer_pullup(in, (ssize_t)len);
    if (len < 6 || !proxyproto_looks_like(p, len))
        return 0;
    v->node->stats.proxy_headers[NODE_PP_UNEXPECTED]++;
    LOG_I("conn=%llu client=%s sent a PROXY protocol header but is not in WHT_PROXY_PROTOCOL: 400",
          (unsigned long long)v->serial, v->peer_ip);
    fail(v, 400, "PROXY protocol header refused: this address may not send one\n");
    return 1;
}

static void bad_request(struct viewer *v, int rc)
{
    unparsed_request(v);
    if (unexpected_proxy_header(v))
        return;
    int status = http1_request_error_status(rc);
    LOG_D("conn=%llu request_id=%s bad request: %s", (unsigned long long)v->serial, v->request_id,
          http1_strerror(rc));
    fail(v, status, http1_strerror(rc));
}

static void route_request(struct viewer *v);

/* Reads the next request head (V_HEAD) and routes it once complete. */
static void next_head(struct viewer *v)
{
    struct evbuffer *in = bufferevent_get_input(v->bev);
    if (v->state != V_HEAD) {
        set_state(v, V_HEAD);
        v->head_scan = 0;
    }
    bufferevent_enable(v->bev, EV_READ);
    if (evbuffer_get_length(in) == 0)
        return;
    if (!v->head_timed) /* the first byte of a head: its deadline starts */
        arm_head_deadline(v);
    const char *p;
    int rc = parse_head(v, &p);
    if (rc == HTTP1_INCOMPLETE)
        return;
    if (rc < 0) {
        bad_request(v, rc);
        return;
    }
    v->head_timed = 0; /* the timer stays: it looks at the exchange's limits when it fires */
    free(v->head);
    v->head = malloc((size_t)rc);
    memcpy(v->head, p, (size_t)rc);
    v->head_len = (size_t)rc;
    v->head_scan = 0;
    evbuffer_drain(in, (size_t)rc);
    memset(&v->req, 0, sizeof v->req);
    http1_parse_request(v->head, v->head_len, &v->req, v->head_len); /* pointers into our copy */
    v->keep_alive = v->req.keep_alive && !v->node->draining;
    v->retried = 0;
    v->nreq++;
    request_start(v);
    /* the head's deadline is pending: it is this, at the latest */
    v->timer_at = v->req_start_us / 1000 + v->node->cfg->header_timeout_ms;
    route_request(v);
}

/* ---- time limits of an exchange with the worker ------------------------------------------ */

/* The timer fires at `at` (now: the time now, ms), unless it fires earlier
 * already: its callback then looks again. */
static void arm_at(struct viewer *v, int64_t now, int64_t at)
{
    if (at >= v->timer_at)
        return;
    v->timer_at = at;
    int64_t ms = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(v->timer_ev, &tv);
}

/* The limit (ms, 0: none) on the exchange's current wait, and its kind:
 * before the response head, WHT_RESPONSE_TIMEOUT (or the idle limit when it
 * is off); after it, WHT_STREAM_IDLE_TIMEOUT (_UPGRADED after a 101). On a
 * stream to the owner node (peer), the owner's limits run first: its answer
 * (a 504) comes through before ours would end the wait. */
static int64_t exchange_limit(const struct viewer *v, int peer, enum node_timeout *kind)
{
    const struct config *c = v->node->cfg;
    enum node_timeout k = NODE_TIMEOUT_IDLE;
    int64_t lim, extra = 0;
    if (v->state == V_TUNNEL) {
        lim = c->stream_idle_timeout_upgraded_ms;
    } else if (v->resp_started) {
        lim = c->stream_idle_timeout_ms;
    } else {
        lim = c->response_timeout_ms ? c->response_timeout_ms : c->stream_idle_timeout_ms;
        k = c->response_timeout_ms ? NODE_TIMEOUT_RESPONSE : NODE_TIMEOUT_IDLE;
        extra = c->accept_timeout_ms; /* the owner waits for its worker to accept first */
    }
    if (kind)
        *kind = k;
    return lim && peer ? lim + extra + RELAY_GRACE_MS : lim;
}

/* The exchange's wait starts again at now: the stream was accepted, a request
 * went on a kept stream, the response head or a 101 came. */
static void exchange_restart(struct viewer *v, int64_t now)
{
    int peer = wsmux_role(v->worker) == WSMUX_PEER;
    v->mark_ms = now;
    if (peer && v->stream) { /* what has credit goes at once: only the rest tells that the owner moves */
        uint64_t q = mux_stream_queued(v->stream), credit = mux_stream_send_credit(v->stream);
        v->up_taken = v->req_in - q + (q < credit ? q : credit);
    }
    int64_t lim = exchange_limit(v, peer, NULL);
    if (lim)
        arm_at(v, now, now + lim);
}

/* A limit ran out: 504 before the response head, else the stream is reset
 * and the connection closed (the viewer has a head already). */
static void exchange_timed_out(struct viewer *v, enum node_timeout kind, int peer)
{
    static const char *const kinds[NODE_TIMEOUT_COUNT] = {"accept", "response", "idle"};
    v->node->stats.stream_timeouts[kind]++;
    LOG_I("conn=%llu worker=%s request_id=%s %s timeout (%s)", (unsigned long long)v->serial, v->worker_id,
          v->request_id, kinds[kind], state_names[v->state]);
    if (v->state == V_PROXY && !v->resp_started) {
        reset_stream(v, MUX_REASON_TIMEOUT);
        fail(v, 504,
             peer ? "the node that holds the worker did not answer in time\n"
                  : "the worker did not send a response in time\n");
        return;
    }
    reset_stream(v, MUX_REASON_TIMEOUT);
    close_viewer(v);
}

static void exchange_timer(struct viewer *v)
{
    int peer = wsmux_role(v->worker) == WSMUX_PEER;
    enum node_timeout kind;
    int64_t lim = exchange_limit(v, peer, &kind);
    if (!lim)
        return;
    int64_t now = util_now_ms();
    if (peer) { /* the owner took request bytes from the link: its worker moves */
        uint64_t taken = v->req_in - mux_stream_queued(v->stream);
        if (taken != v->up_taken) {
            v->up_taken = taken;
            v->mark_ms = now;
        }
    }
    if (now < v->mark_ms + lim) {
        arm_at(v, now, v->mark_ms + lim);
        return;
    }
    exchange_timed_out(v, kind, peer);
}

static void timer_cb(evutil_socket_t fd, short what, void *ud)
{
    struct viewer *v = ud;
    v->timer_at = INT64_MAX;
    if ((v->state == V_HEAD || v->state == V_PP) && v->head_timed)
        head_timeout(v);
    else if ((v->state == V_PROXY || v->state == V_TUNNEL) && v->stream && v->accepted)
        exchange_timer(v);
    /* else a deadline that no longer applies; an unaccepted stream has the session's accept timeout */
}

/* ---- the request going up ------------------------------------------------------------ */

/* Writes the request head to the stream: to a peer that holds the worker,
 * the viewer's own head (the relay's job); else rewritten for the worker. */
static void write_request_head(struct viewer *v)
{
    if (wsmux_role(v->worker) == WSMUX_PEER) {
        relay_write_request(v->stream, v->stream_fresh, v->peer_ip, v->tls, v->head, v->head_len,
                            v->id_made ? v->request_id : NULL);
        v->stream_fresh = 0;
        return;
    }
    struct evbuffer *b = v->node->viewers->scratch;
    struct rewrite_request x = {
        .target = v->fwd_path,
        .target_len = v->fwd_path_len,
        .worker_id = v->worker_id,
        .peer_ip = v->peer_ip,
        .keep_xff = v->trusted,
        .tls = v->tls,
        .path_mode = v->path_mode,
        .keep_alive = v->keep_alive,
        .request_id = v->request_id,
    };
    rewrite_request_head(b, &v->req, &x);
    size_t len = evbuffer_get_length(b);
    const void *p = evbuffer_pullup(b, -1);
    mux_stream_write(v->stream, p, len); /* a fresh or idle stream has room for any head we accept */
    evbuffer_drain(b, len);
}

static void send_request(struct viewer *v)
{
    set_state(v, V_PROXY);
    v->req_body = v->req.body;
    v->req_left = v->req.content_length;
    v->req_done = v->req_body == HTTP1_BODY_NONE || (v->req_body == HTTP1_BODY_LENGTH && v->req_left == 0);
    http1_chunked_init(&v->req_chunked, HTTP1_CHUNK_TRAILER_MAX);
    evbuffer_drain(v->resp_head, evbuffer_get_length(v->resp_head));
    v->resp_scan = 0;
    v->resp_started = v->resp_done = 0;
    v->stream_reusable = 0;
    write_request_head(v);
    if (v->accepted) /* a kept stream: the wait for the answer starts (else once accepted) */
        exchange_restart(v, v->req_start_us / 1000);
    wsmux_kick(v->worker);
    pump_up(v);
}

/* How many of the n request bytes at p belong to the body (<= n), or a
 * negative http1_err for a malformed chunked body. */
static ssize_t body_bytes(struct viewer *v, const uint8_t *p, size_t n)
{
    if (v->state != V_PROXY)
        return (ssize_t)n; /* a tunnel: everything */
    if (v->req_body == HTTP1_BODY_LENGTH && n > v->req_left)
        n = (size_t)v->req_left;
    if (v->req_body == HTTP1_BODY_CHUNKED) {
        ssize_t k = http1_chunked_scan(&v->req_chunked, (const char *)p, n);
        if (k >= 0 && http1_chunked_done(&v->req_chunked))
            v->req_done = 1;
        return k;
    }
    return (ssize_t)n;
}

/* Moves viewer bytes into the stream, as far as the request framing and the
 * stream's room allow. */
static void pump_up(struct viewer *v)
{
    struct evbuffer *in = bufferevent_get_input(v->bev);
    while (v->stream && (v->state == V_TUNNEL || (v->state == V_PROXY && !v->req_done))) {
        uint8_t *p;
        size_t n;
        int rc = pump_peek(in, v->stream, &p, &n);
        if (rc < 0) {
            bufferevent_disable(v->bev, EV_READ);
            return;
        }
        if (rc == 0)
            break;
        ssize_t k = body_bytes(v, p, n);
        if (k < 0) {
            if (!v->resp_started) {
                release_stream(v);
                fail(v, 400, http1_strerror((int)k));
            } else {
                finish(v);
            }
            return;
        }
        pump_commit(in, v->stream, p, (size_t)k);
        if (k > 0)
            v->mark_ms = util_now_ms(); /* the exchange moved */
        v->req_in += (size_t)k;
        v->node->stats.bytes_in += (size_t)k;
        if (v->state == V_PROXY && v->req_body == HTTP1_BODY_LENGTH) {
            v->req_left -= (size_t)k;
            if (v->req_left == 0)
                v->req_done = 1;
        }
    }
    if (v->worker)
        wsmux_kick(v->worker);
    /* reading stays on after the request too: a pipelined request waits in the
     * input buffer (bounded by the read watermark) for this response, and a
     * viewer that leaves mid-response is noticed at once (EOF or error), which
     * frees its stream */
    if (v->state == V_PROXY || v->state == V_TUNNEL)
        bufferevent_enable(v->bev, EV_READ);
}

/* ---- carrying the route out ------------------------------------------------------------ */

static void set_worker_id(struct viewer *v, const char *id, size_t len)
{
    memcpy(v->worker_id, id, len);
    v->worker_id[len] = 0;
}

/* The answer a viewer gets when the wait for a stream ended without one:
 * its status and text, and the seconds after which trying again makes
 * sense (Retry-After), 0 when it does not. A 404 means only that no node
 * holds the id; a node or registry that cannot be reached is a 503. */
static int wait_failure(enum wsmux_wait result, int draining, const char **body, int *retry_s)
{
    *retry_s = 0;
    switch (result) {
    case WSMUX_WAIT_BUSY:
        *body = "the worker is busy: too many requests in flight\n";
        *retry_s = 1;
        return 503;
    case WSMUX_WAIT_LOST:
        *body = draining ? "the worker left this node and did not come back in time\n"
                         : "the worker left and did not come back within the accept limit\n";
        return 502;
    case WSMUX_WAIT_NOT_FOUND: *body = "No client is connected with that id\n"; return 404;
    case WSMUX_WAIT_UNREACHABLE:
        *body = "the node that holds this worker cannot be reached; try again shortly\n";
        *retry_s = 5;
        return 503;
    case WSMUX_WAIT_LINK_GONE:
        *body = "the node that holds this worker is going away; try again shortly\n";
        *retry_s = 1;
        return 503;
    case WSMUX_WAIT_NO_REGISTRY:
        *body = "No client is connected with that id here, and the cluster registry is unreachable\n";
        *retry_s = 5;
        return 503;
    case WSMUX_WAIT_REGISTRY_SILENT:
        *body = "the cluster registry did not answer\n";
        *retry_s = 5;
        return 503;
    case WSMUX_WAIT_REGISTRY_FULL:
        *body = "the cluster registry cannot take the request\n";
        *retry_s = 1;
        return 503;
    case WSMUX_WAIT_NO_MEMORY:
        *body = "the node is short of buffer memory; try again shortly\n";
        *retry_s = 1;
        return 503;
    default: *body = "the worker could not take the request\n"; return 502;
    }
}

static void relay_route(struct viewer *v);
static void attach(struct viewer *v, struct wsmux *w);

/* The wait for a stream is over (wsmux.h: from a session, the relay or the drain). */
static void stream_ready(struct wsmux_waiter *wt, struct mux_stream *st, enum wsmux_wait result)
{
    struct viewer *v = of_waiter(wt);
    if (result == WSMUX_WAIT_STREAM) {
        v->worker = wt->session;
        v->stream = st;
        v->stream_fresh = wsmux_role(v->worker) == WSMUX_PEER;
        v->accepted = 0; /* stream_accepted() starts the wait for the answer */
        send_request(v);
        return;
    }
    v->worker = NULL;
    if (result == WSMUX_WAIT_RETURNED) { /* the worker registered here again: its new session */
        struct wsmux *w = workers_find(v->node, v->worker_id, strlen(v->worker_id));
        if (w) {
            attach(v, w);
            return;
        }
        result = v->node->cluster ? WSMUX_WAIT_MOVED : WSMUX_WAIT_LOST; /* and left again meanwhile */
    }
    if (result == WSMUX_WAIT_MOVED) {
        relay_route(v); /* the worker has a new home: follow it */
        return;
    }
    const char *body = NULL;
    char extra[32] = "";
    int retry_s;
    int status = wait_failure(result, v->node->draining, &body, &retry_s);
    if (retry_s)
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", retry_s);
    fail_with(v, status, extra[0] ? extra : NULL, body);
}

/* Queues v for a stream on session w (a worker's, or a link). */
static void attach(struct viewer *v, struct wsmux *w)
{
    v->worker = w;
    set_state(v, V_WAIT); /* reading stays on: a viewer that leaves is noticed (EOF) while it waits */
    int rc = wsmux_attach(w, &v->waiter);
    if (rc == WSMUX_E_MEMORY) {
        v->worker = NULL;
        fail_with(v, 503, "Retry-After: 1\r\n", "the node is short of buffer memory; try again shortly\n");
    } else if (rc != 0) {
        v->worker = NULL;
        fail(v, 502, "the worker is going away\n");
    }
}

/* Relays to the node that holds v->worker_id (the route cache, else Redis). */
static void relay_route(struct viewer *v)
{
    set_state(v, V_WAIT);
    if (!v->relayed)
        v->via = NODE_VIA_RELAYED_OUT;
    relay_find(v->node, v->worker_id, strlen(v->worker_id), &v->waiter, &v->lookup);
}

static void answer(struct viewer *v, enum route_endpoint ep)
{
    v->via = NODE_VIA_ENDPOINT;
    size_t mark = out_mark(v);
    endpoints_answer(v->node, ep, v->bev, v->keep_alive);
    out_count(v, mark);
    head_written(v, ep == ROUTE_EP_DRAINING ? 503 : 200);
    request_end(v);
    if (ep == ROUTE_EP_DRAINING)
        v->keep_alive = 0;
    if (!v->keep_alive)
        finish(v);
    else
        next_head(v);
}

static void register_worker(struct viewer *v, const struct http1_header *idh)
{
    struct workers_refusal why;
    release_stream(v);
    v->in_request = 0; /* a registration: counted as one, not as a viewer request */
    if (workers_register(v->node, v->bev, &v->req, idh, v->tls, v->serial, &why) != 0) {
        v->node->stats.reg[why.outcome]++;
        fail_with(v, why.status, why.extra[0] ? why.extra : NULL, why.body);
        return;
    }
    v->bev = NULL; /* the worker's session owns it now */
    close_viewer(v);
}

static void *find_worker(void *ud, const char *id, size_t len)
{
    return workers_find(ud, id, len);
}

static int moving(void *ud, const char *id, size_t len)
{
    return drain_moving(ud, id, len);
}

/* The stream v holds can carry this request too (keep-alive). */
static int reuse_stream(struct viewer *v, const struct route *rt)
{
    return v->stream && v->stream_reusable && strlen(v->worker_id) == rt->id_len &&
           memcmp(v->worker_id, rt->id, rt->id_len) == 0 &&
           (rt->kind == ROUTE_LOCAL ? v->worker == rt->worker : wsmux_role(v->worker) == WSMUX_PEER);
}

/* Carries a route to a worker out: a stream, a relay, a wait or a miss. */
static void to_worker(struct viewer *v, const struct route *rt)
{
    if ((rt->kind == ROUTE_LOCAL || rt->kind == ROUTE_RELAY) && reuse_stream(v, rt)) {
        v->req_worker = 1;
        if (rt->kind == ROUTE_RELAY && !v->relayed)
            v->via = NODE_VIA_RELAYED_OUT;
        send_request(v); /* keep-alive: same worker, same stream, same backend connection */
        return;
    }
    release_stream(v);
    set_worker_id(v, rt->id, rt->id_len);
    v->req_worker = 1;
    v->waiter.since_ms = v->req_start_us / 1000; /* a hold for the worker's return counts from here */
    switch (rt->kind) {
    case ROUTE_LOCAL: attach(v, rt->worker); break;
    case ROUTE_RELAY: relay_route(v); break;
    case ROUTE_PARK:
        set_state(v, V_WAIT); /* reading stays on: a viewer that leaves is noticed */
        if (drain_park(v->node, rt->id, rt->id_len, &v->waiter) != 0)
            relay_route(v); /* it found its new home meanwhile */
        break;
    case ROUTE_MISS: {
        v->node->stats.relay_misses++;
        size_t mark = out_mark(v);
        relay_answer_miss(v->bev); /* never relayed twice */
        out_count(v, mark);
        head_written(v, 404);
        request_end(v);
        finish(v);
        break;
    }
    default: break;
    }
}

/* A request head was read into v->req: carries out what route.c decides. */
static void route_request(struct viewer *v)
{
    struct node *n = v->node;
    struct route_env env = {
        .domain = n->cfg->domain,
        .draining = n->draining,
        .relayed = v->relayed,
        .cluster = n->cluster != NULL,
        .find_worker = find_worker,
        .moving = moving,
        .ud = n,
    };
    struct route rt;
    free(v->fwd_path);
    v->fwd_path = malloc(ROUTE_FWD_CAP(&v->req));
    route_decide(&env, &v->req, v->fwd_path, &rt);
    v->fwd_path_len = rt.fwd_len;
    v->path_mode = rt.path_mode;
    switch (rt.kind) {
    case ROUTE_ANSWER: answer(v, rt.endpoint); break;
    case ROUTE_REGISTER: register_worker(v, rt.idh); break;
    case ROUTE_FAIL:
        release_stream(v);
        if (rt.idh) { /* a registration refused: relayed, or the node drains */
            v->in_request = 0;
            n->stats.reg[rt.status == 503 ? NODE_REG_DRAINING : NODE_REG_RELAYED]++;
        }
        fail(v, rt.status, rt.body);
        break;
    default: to_worker(v, &rt); break;
    }
}

/* ---- the response coming down -------------------------------------------------------------- */

static void response_complete(struct viewer *v)
{
    v->resp_done = 1;
    request_end(v);
    /* a stream slot held from one request to the next is kept from the
     * requests queued for one: give it up when any wait (FIFO fairness) */
    v->stream_reusable = v->resp_keep_alive && v->req_done && v->stream &&
                         !mux_stream_eof_received(v->stream) && !(v->worker && wsmux_has_waiters(v->worker));
    if (!v->stream_reusable)
        release_stream(v);
    if (!v->keep_alive || !v->req_done) {
        finish(v);
        return;
    }
    next_head(v);
}

/* An HTTP/1.0 viewer cannot read chunked coding: the payload of the chunked
 * body in data goes to it as is (the connection's end will end the body).
 * Returns the bytes of data that belong to the body, or an http1_err. */
static ssize_t dechunk(struct viewer *v, const uint8_t *data, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(v->bev);
    size_t off = 0;
    while (off < len && !http1_chunked_done(&v->resp_chunked)) {
        size_t doff, dlen;
        ssize_t k = http1_chunked_decode(&v->resp_chunked, (const char *)data + off, len - off, &doff, &dlen);
        if (k < 0)
            return k;
        if (dlen)
            evbuffer_add(out, data + off + doff, dlen);
        if (k == 0)
            break;
        off += (size_t)k;
    }
    return (ssize_t)off;
}

/* How many of the len response bytes at data belong to the response, or a
 * negative http1_err. */
static ssize_t response_bytes(struct viewer *v, const uint8_t *data, size_t len)
{
    if (v->state == V_TUNNEL)
        return (ssize_t)len;
    if (v->state != V_PROXY || v->resp_done)
        return 0; /* bytes after the end of a response: the backend broke framing */
    switch (v->resp_body) {
    case HTTP1_BODY_LENGTH: return (ssize_t)(len > v->resp_left ? v->resp_left : len);
    case HTTP1_BODY_CHUNKED:
        return v->resp_dechunk ? dechunk(v, data, len)
                               : http1_chunked_scan(&v->resp_chunked, (const char *)data, len);
    case HTTP1_BODY_NONE: return 0;
    default: return (ssize_t)len;
    }
}

/* Body bytes from the worker; counted is whether they are owed (consumed
 * only as the viewer drains) or were consumed already. */
static void body_down(struct viewer *v, const uint8_t *data, size_t len, int counted)
{
    size_t mark = out_mark(v);
    ssize_t k = response_bytes(v, data, len);
    if (k < 0) {
        out_count(v, mark);
        LOG_I("conn=%llu worker=%s request_id=%s bad chunked response: %s", (unsigned long long)v->serial,
              v->worker_id, v->request_id, http1_strerror((int)k));
        if (counted)
            mux_stream_consume(v->stream, len);
        release_stream(v);
        finish(v);
        return;
    }
    size_t take = (size_t)k;
    if (take && !(v->resp_dechunk && v->state == V_PROXY))
        evbuffer_add(bufferevent_get_output(v->bev), data, take); /* (dechunk() wrote the payload itself) */
    out_count(v, mark);
    if (counted) {
        v->owed += take;
        if (len > take && v->stream)
            mux_stream_consume(v->stream, len - take);
    }
    if (len > take)
        v->stream_reusable = 0, v->resp_keep_alive = 0;
    if (v->state == V_PROXY && !v->resp_done) {
        if ((v->resp_body == HTTP1_BODY_LENGTH && (v->resp_left -= take) == 0) ||
            (v->resp_body == HTTP1_BODY_CHUNKED && http1_chunked_done(&v->resp_chunked))) {
            response_complete(v);
            return;
        }
    }
    if (take)
        v->mark_ms = util_now_ms(); /* the exchange moved */
    credit(v);
}

/* The bytes after a response head (rest of them), taken out of resp_head. */
static uint8_t *take_rest(struct viewer *v, size_t *rest)
{
    *rest = evbuffer_get_length(v->resp_head);
    uint8_t *tmp = *rest ? malloc(*rest) : NULL;
    if (tmp)
        evbuffer_remove(v->resp_head, tmp, *rest);
    else
        *rest = 0;
    return tmp;
}

/* A final response head r (rc bytes) came: write it, then what followed it. */
static void response_head(struct viewer *v, const struct http1_response *r, int rc)
{
    v->resp_started = 1;
    v->resp_keep_alive = r->keep_alive;
    v->resp_body = r->body;
    v->resp_dechunk = r->body == HTTP1_BODY_CHUNKED && v->req.version_minor == 0;
    v->resp_left = r->content_length;
    http1_chunked_init(&v->resp_chunked, HTTP1_CHUNK_TRAILER_MAX);
    size_t mark = out_mark(v);
    rewrite_response_head(bufferevent_get_output(v->bev), r, v->req.method_id, v->resp_dechunk,
                          &v->keep_alive);
    out_count(v, mark);
    head_written(v, r->status);
    evbuffer_drain(v->resp_head, (size_t)rc);
    size_t rest;
    uint8_t *tmp = take_rest(v, &rest);
    if (r->upgrade && !v->req.upgrade) { /* a 101 nobody asked for */
        release_stream(v);
        finish(v);
    } else if (r->upgrade) {
        set_state(v, V_TUNNEL);
        v->keep_alive = 0;
        exchange_restart(v, util_now_ms()); /* the upgraded connection's idle limit */
        if (rest)
            body_down(v, tmp, rest, 0);
        if (v->state == V_TUNNEL)
            pump_up(v);
    } else if (r->body == HTTP1_BODY_NONE || (r->body == HTTP1_BODY_LENGTH && r->content_length == 0)) {
        if (rest)
            v->resp_keep_alive = 0; /* bytes after a complete response: framing broken */
        response_complete(v);
    } else {
        if (rest)
            body_down(v, tmp, rest, 0);
        if (v->state == V_PROXY && v->resp_started && !v->resp_done) /* the body follows: its idle limit */
            exchange_restart(v, util_now_ms());
    }
    free(tmp);
}

/* The owner of a relayed request's worker answered that it does not hold
 * it: 1 when that was handled (asked again, or failed). */
static int relay_missed(struct viewer *v, const struct http1_response *r)
{
    if (wsmux_role(v->worker) != WSMUX_PEER)
        return 0;
    switch (relay_check_miss(v->node, v->worker_id, r, v->req.body != HTTP1_BODY_NONE, &v->retried)) {
    case RELAY_MISS_RETRY:
        evbuffer_drain(v->resp_head, evbuffer_get_length(v->resp_head));
        release_stream(v);
        relay_route(v);
        return 1;
    case RELAY_MISS_FAIL:
        if (v->req.body == HTTP1_BODY_NONE)
            return 0; /* retried once already: the 404 goes to the viewer */
        release_stream(v);
        fail(v, 502, "the worker moved while the request was relayed; try again\n");
        return 1;
    default: return 0;
    }
}

static void try_response_head(struct viewer *v)
{
    while (v->state == V_PROXY && !v->resp_started && evbuffer_get_length(v->resp_head) > 0) {
        size_t hl = evbuffer_get_length(v->resp_head);
        const char *p = (const char *)evbuffer_pullup(v->resp_head, -1);
        struct http1_response r;
        memset(&r, 0, sizeof r);
        int rc = http1_parse_response_from(p, hl, &r, RESP_HEAD_MAX, v->req.method_id, &v->resp_scan);
        if (rc == HTTP1_INCOMPLETE)
            return;
        if (rc < 0) {
            LOG_I("conn=%llu worker=%s request_id=%s bad response head: %s", (unsigned long long)v->serial,
                  v->worker_id, v->request_id, http1_strerror(rc));
            release_stream(v);
            fail(v, 502, "the worker sent a malformed response\n");
            return;
        }
        if (relay_missed(v, &r))
            return;
        if (r.status < 200 && !r.upgrade) { /* interim (100 Continue): pass on, read the next head */
            if (v->req.version_minor > 0)   /* never to an HTTP/1.0 viewer (RFC 9110 15.2) */
            {
                evbuffer_add(bufferevent_get_output(v->bev), p, (size_t)rc);
                sent(v, (size_t)rc);
            }
            evbuffer_drain(v->resp_head, (size_t)rc);
            v->resp_scan = 0; /* the next head starts */
            continue;
        }
        response_head(v, &r, rc);
        return;
    }
}

/* ---- stream events (from the session's mux) ------------------------------------------------- */

/* What the worker's frames added to the viewer's output goes out at the end
 * of this turn of the loop, in one write for all the frames the session read
 * (net_write_now(); a TLS viewer's by libevent's own write, made to run in
 * this turn; not a relayed viewer's pair). */
static void write_soon(struct viewer *v)
{
    if (v->write_soon || v->state == V_CLOSED || v->relayed || !v->bev)
        return;
    struct viewers *vs = v->node->viewers;
    v->write_soon = 1;
    TAILQ_INSERT_TAIL(&vs->to_write, v, write_link);
    event_active(vs->write_ev, EV_WRITE, 0);
}

static void stream_data(struct mux_stream *st, const uint8_t *data, size_t len, void *ud)
{
    struct viewer *v = ud;
    if (v->state == V_PROXY && !v->resp_started) {
        mux_stream_consume(st, len);
        if (evbuffer_get_length(v->resp_head) + len > RESP_HEAD_MAX + 1) {
            release_stream(v);
            fail(v, 502, "the worker's response head is too large\n");
            return;
        }
        evbuffer_add(v->resp_head, data, len);
        try_response_head(v);
    } else {
        body_down(v, data, len, 1);
    }
    write_soon(v);
}

static void stream_eof(struct mux_stream *st, void *ud)
{
    struct viewer *v = ud;
    v->stream_reusable = 0;
    if (v->state == V_TUNNEL) {
        finish(v);
    } else if (v->state == V_PROXY && !v->resp_done) {
        if (!v->resp_started) {
            release_stream(v);
            fail(v, 502, "the worker closed the stream before answering\n");
        } else if (v->resp_body == HTTP1_BODY_CLOSE) {
            v->keep_alive = 0;
            response_complete(v);
        } else {
            finish(v); /* truncated: the viewer sees the connection close */
        }
    } else if (v->state == V_HEAD) {
        release_stream(v); /* the idle backend connection went away */
    }
    write_soon(v);
}

static void stream_writable(struct mux_stream *st, void *ud)
{
    pump_up(ud);
}

/* The stream was never accepted and the worker's session ends (the worker
 * left, or a newer registration replaced it): the request never reached
 * the worker's backend. Unless something of its body was taken from the
 * viewer already (the head is written again from v->req, the body is not
 * kept), it waits for the worker's next session, here or on another node,
 * until WHT_ACCEPT_TIMEOUT after it started (returning.h). 1 if it waits. */
static int hold_for_return(struct viewer *v, int err, struct wsmux *w, int accepted)
{
    if (v->state != V_PROXY || accepted || err != MUX_E_ABORTED || !w || wsmux_role(w) != WSMUX_WORKER ||
        !wsmux_closing(w) || v->req_in != v->head_len || v->resp_started)
        return 0;
    int64_t deadline = v->waiter.since_ms + v->node->cfg->accept_timeout_ms;
    if (returning_park(v->node, v->worker_id, strlen(v->worker_id), &v->waiter, deadline) != 0)
        return 0;
    LOG_D("conn=%llu worker=%s request_id=%s never reached the worker: it waits for its next session",
          (unsigned long long)v->serial, v->worker_id, v->request_id);
    set_state(v, V_WAIT);
    return 1;
}

static void stream_closed(struct mux_stream *st, int err, void *ud)
{
    struct viewer *v = ud;
    struct wsmux *w = v->worker;
    int peer = w && wsmux_role(w) == WSMUX_PEER, accepted = v->accepted;
    v->stream = NULL;
    v->worker = NULL;
    v->owed = 0;
    v->stream_reusable = 0;
    v->accepted = 0;
    wsmux_stream_done(w);
    if (hold_for_return(v, err, w, accepted))
        return;
    if (v->state == V_PROXY && !v->resp_done) {
        if (!v->resp_started && wsmux_role(w) == WSMUX_PEER && !wsmux_started(w))
            /* the link to the owner closed before its handshake was done */
            fail_with(v, 503, "Retry-After: 5\r\n",
                      "the node that holds this worker cannot be reached; try again "
                      "shortly\n");
        else if (err == MUX_E_TIMEOUT) { /* not accepted within WHT_ACCEPT_TIMEOUT; the session reset it */
            v->node->stats.stream_timeouts[NODE_TIMEOUT_ACCEPT]++;
            LOG_I("conn=%llu worker=%s request_id=%s accept timeout", (unsigned long long)v->serial,
                  v->worker_id, v->request_id);
            fail(v, 504,
                 peer ? "the node that holds the worker did not accept the stream in time\n"
                      : "the worker did not accept the stream in time\n");
        } else if (!v->resp_started && mux_stream_reset_reason(st) == MUX_REASON_BACKEND)
            fail(v, 502,
                 "the worker could not reach its local service (nothing answered on its target port)\n");
        else if (!v->resp_started)
            fail(v, 502, "the worker went away before answering\n");
        else
            finish(v);
    } else if (v->state == V_TUNNEL) {
        finish(v);
    }
}

static void stream_accepted(struct mux_stream *st, void *ud)
{
    struct viewer *v = ud;
    v->accepted = 1;
    if (v->state == V_PROXY)
        exchange_restart(v, util_now_ms()); /* the request is the worker's: the wait for the answer starts */
}

static const struct wsmux_stream_ops viewer_stream_ops = {
    .data = stream_data,
    .eof = stream_eof,
    .writable = stream_writable,
    .closed = stream_closed,
    .accepted = stream_accepted,
};

/* ---- the viewer's socket ------------------------------------------------------------------ */

static void read_cb(struct bufferevent *bev, void *ud)
{
    struct viewer *v = ud;
    (void)bev;
    if (v->state == V_HEAD)
        next_head(v);
    else if (v->state == V_PROXY || v->state == V_TUNNEL)
        pump_up(v);
}

static void write_cb(struct bufferevent *bev, void *ud)
{
    struct viewer *v = ud;
    if (v->state == V_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            close_viewer(v);
        return;
    }
    credit(v);
}

/* Writes the viewers that write_soon() listed; runs as libevent's write
 * callback would have (the output down to its low watermark). */
static void write_soon_cb(evutil_socket_t fd, short what, void *ud)
{
    struct viewers *vs = ud;
    struct viewer *v;
    while ((v = TAILQ_FIRST(&vs->to_write))) {
        TAILQ_REMOVE(&vs->to_write, v, write_link);
        v->write_soon = 0;
        if (net_write_now(v->bev, NODE_MAX_SINGLE_IO) &&
            evbuffer_get_length(bufferevent_get_output(v->bev)) <= VIEWER_OUT_LOW)
            write_cb(v->bev, v);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *ud)
{
    struct viewer *v = ud;
    if (what == BEV_EVENT_CONNECTED) { /* TLS: the handshake is done; the request head follows */
        v->tls_done = 1;
        v->node->stats.tls_handshakes++;
        return;
    }
    if (v->tls && !v->relayed && !v->tls_done) {
        v->tls_done = 1; /* counted once */
        v->node->stats.tls_failures++;
    }
    if ((what & BEV_EVENT_TIMEOUT) && v->state == V_HEAD) {
        if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
            unparsed_request(v);
            fail(v, 408, "request head not received in time\n");
            return;
        }
    }
    if ((what & BEV_EVENT_EOF) && v->state == V_TUNNEL && v->stream) {
        /* the viewer finished sending: pass the half-close on, keep reading the worker */
        mux_stream_close(v->stream);
        wsmux_kick(v->worker);
        bufferevent_disable(bev, EV_READ);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (v->state == V_TUNNEL || v->state == V_PROXY || v->state == V_WAIT)) {
        bufferevent_enable(bev, EV_READ | EV_WRITE); /* long-lived exchanges are not timed out */
        return;
    }
    close_viewer(v);
}

/* ---- start and stop ------------------------------------------------------------------------- */

static void setup_bev(struct viewer *v)
{
    struct bufferevent *bev = v->bev;
    const struct config *cfg = v->node->cfg;
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, v);
    bufferevent_set_max_single_read(bev, NODE_MAX_SINGLE_IO);
    bufferevent_set_max_single_write(bev, NODE_MAX_SINGLE_IO);
    bufferevent_setwatermark(bev, EV_READ, 0, VIEWER_IN_HIGH + (size_t)cfg->max_header_bytes);
    bufferevent_setwatermark(bev, EV_WRITE, VIEWER_OUT_LOW, 0);
    /* the read timeout closes idle keep-alive connections; exchanges in
     * progress re-arm it (event_cb) */
    int64_t idle = cfg->idle_timeout_ms;
    struct timeval tv = {(time_t)(idle / 1000), (suseconds_t)(idle % 1000) * 1000};
    bufferevent_set_timeouts(bev, &tv, NULL);
    net_read_own(bev, 0);
}

/* The viewer's address: also whether it is a trusted proxy (one check per
 * connection, none with WHT_TRUSTED_PROXIES empty). */
static void set_peer(struct viewer *v, const char *ip)
{
    const struct util_cidr_list *t = &v->node->trusted;
    snprintf(v->peer_ip, sizeof v->peer_ip, "%s", ip);
    v->trusted = t->count > 0 && util_cidr_match_text(t, v->peer_ip);
}

/* A new viewer in V_HEAD, without its socket yet; NULL if out of memory. */
static struct viewer *viewer_new(struct node *n, int tls, const char *peer_ip, struct relay *relay)
{
    struct viewer *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->ops = &viewer_stream_ops;
    v->waiter.ready_cb = stream_ready;
    v->waiter.stream_ud = v;
    v->relay = relay;
    v->relayed = relay != NULL;
    v->node = n;
    v->serial = ++n->next_serial;
    v->fd = -1;
    v->tls = tls;
    set_peer(v, peer_ip);
    v->resp_head = evbuffer_new();
    n->nconns++;
    TAILQ_INSERT_TAIL(&n->viewers->live, v, link);
    v->timer_ev = evtimer_new(n->base, timer_cb, v);
    if (!v->timer_ev || !v->resp_head) {
        v->relay = NULL;
        close_viewer(v);
        return NULL;
    }
    arm_head_deadline(v); /* a new connection has header_timeout to send its first head */
    return v;
}

struct viewer *viewer_start(struct node *n, struct bufferevent *bev, int tls, const char *peer_ip,
                            struct relay *relay)
{
    struct viewer *v = viewer_new(n, tls, peer_ip, relay);
    if (!v) {
        bufferevent_free(bev);
        return NULL;
    }
    v->bev = bev;
    setup_bev(v);
    if (relay) {
        bufferevent_enable(bev, EV_READ);
        return v; /* nothing arrived yet: the relay writes, the read callback follows */
    }
    next_head(v);
    return v;
}

/* ---- the PROXY protocol header (WHT_PROXY_PROTOCOL) ------------------------------------- */

/* The socket's bufferevent, with TLS when the viewer port has it; NULL
 * (fd closed) if that fails. */
static struct bufferevent *viewer_socket(struct node *n, evutil_socket_t fd)
{
    struct bufferevent *bev;
    if (n->ssl) {
        SSL *ssl = SSL_new(n->ssl);
        bev = ssl ? bufferevent_openssl_socket_new(n->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                   BEV_OPT_CLOSE_ON_FREE)
                  : NULL;
        if (bev)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!bev)
        evutil_closesocket(fd);
    return bev;
}

/* A connection from WHT_PROXY_PROTOCOL without a good header: closed, no answer. */
static void pp_refuse(struct viewer *v, enum node_pp why, const char *what)
{
    v->node->stats.proxy_headers[why]++;
    LOG_W("conn=%llu client=%s (in WHT_PROXY_PROTOCOL) closed: %s", (unsigned long long)v->serial, v->peer_ip,
          what);
    close_viewer(v);
}

/* The header is read: the connection goes on as any other, with its
 * bufferevent (TLS starts now) and the header's address. */
static void pp_done(struct viewer *v, const struct proxyproto_header *h)
{
    struct node *n = v->node;
    char ip[64];
    n->stats.proxy_headers[h->local ? NODE_PP_LOCAL : NODE_PP_PROXY]++;
    if (!h->local && proxyproto_source_ip(h, ip, sizeof ip) == 0) {
        LOG_D("conn=%llu PROXY v%d header from %s: client %s", (unsigned long long)v->serial, h->version,
              v->peer_ip, ip);
        set_peer(v, ip);
    }
    event_free(v->pp_ev);
    v->pp_ev = NULL;
    free(v->pp_buf);
    v->pp_buf = NULL;
    evutil_socket_t fd = v->fd;
    v->fd = -1;
    v->bev = viewer_socket(n, fd);
    if (!v->bev) {
        close_viewer(v);
        return;
    }
    setup_bev(v);
    next_head(v); /* the deadline set at the accept still runs */
}

/* The socket is readable: what it holds is looked at (MSG_PEEK) and only
 * header bytes are taken off it, so that what follows (a TLS ClientHello, a
 * request) stays for the bufferevent. */
static void pp_read_cb(evutil_socket_t fd, short what, void *ud)
{
    struct viewer *v = ud;
    struct proxyproto_header h;
    ssize_t n = recv(fd, v->pp_buf + v->pp_len, PROXYPROTO_MAX - v->pp_len, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        if (v->pp_len > 0)
            pp_refuse(v, NODE_PP_INVALID, "connection ended inside its PROXY protocol header");
        else
            close_viewer(v); /* never sent anything */
        return;
    }
    int rc = proxyproto_parse(v->pp_buf, v->pp_len + (size_t)n, &h);
    if (rc < 0) {
        pp_refuse(v, rc == PROXYPROTO_E_NOT_PROXY ? NODE_PP_MISSING : NODE_PP_INVALID,
                  proxyproto_strerror(rc));
        return;
    }
    /* incomplete: every byte seen belongs to the header; else the header's rest */
    size_t take = rc == PROXYPROTO_INCOMPLETE ? (size_t)n : (size_t)rc - v->pp_len;
    if (recv(fd, v->pp_buf + v->pp_len, take, 0) != (ssize_t)take) {
        close_viewer(v);
        return;
    }
    v->pp_len += take;
    if (rc > 0)
        pp_done(v, &h);
}

void viewer_accept(struct node *n, evutil_socket_t fd, const struct sockaddr *sa, const char *ip)
{
    if (n->proxy_from.count == 0 || !net_in_cidrs(&n->proxy_from, sa)) {
        struct bufferevent *bev = viewer_socket(n, fd);
        if (bev)
            viewer_start(n, bev, n->ssl != NULL, ip, NULL);
        return;
    }
    struct viewer *v = viewer_new(n, n->ssl != NULL, ip, NULL);
    if (!v) {
        evutil_closesocket(fd);
        return;
    }
    v->state = V_PP; /* where such a connection starts (not a change: nothing happened in V_HEAD) */
    v->fd = fd;
    v->pp_buf = malloc(PROXYPROTO_MAX);
    v->pp_ev = event_new(n->base, fd, EV_READ | EV_PERSIST, pp_read_cb, v);
    if (!v->pp_buf || !v->pp_ev || event_add(v->pp_ev, NULL) != 0)
        close_viewer(v);
}

void viewer_drain_all(struct node *n)
{
    struct viewer *v, *next;
    for (v = TAILQ_FIRST(&n->viewers->live); v; v = next) {
        next = TAILQ_NEXT(v, link);
        v->keep_alive = 0;
        if (v->state == V_HEAD && v->nreq > 0 && evbuffer_get_length(bufferevent_get_input(v->bev)) == 0)
            close_viewer(v);
    }
}

int viewer_init(struct node *n)
{
    struct viewers *vs = calloc(1, sizeof *vs);
    if (!vs)
        return -1;
    TAILQ_INIT(&vs->live);
    TAILQ_INIT(&vs->dead);
    TAILQ_INIT(&vs->to_write);
    vs->reap_ev = event_new(n->base, -1, 0, reap_cb, vs);
    vs->write_ev = event_new(n->base, -1, 0, write_soon_cb, vs);
    vs->scratch = evbuffer_new();
    if (!vs->reap_ev || !vs->write_ev || !vs->scratch) {
        if (vs->reap_ev)
            event_free(vs->reap_ev);
        if (vs->write_ev)
            event_free(vs->write_ev);
        if (vs->scratch)
            evbuffer_free(vs->scratch);
        free(vs);
        return -1;
    }
    n->viewers = vs;
    return 0;
}

void viewer_free_all(struct node *n)
{
    struct viewers *vs = n->viewers;
    struct viewer *v;
    if (!vs)
        return;
    while ((v = TAILQ_FIRST(&vs->live)))
        close_viewer(v);
    reap_cb(-1, 0, vs);
    event_free(vs->reap_ev);
    event_free(vs->write_ev);
    evbuffer_free(vs->scratch);
    free(vs);
    n->viewers = NULL;
}
