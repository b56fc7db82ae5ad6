/* Viewer connections: read a request head, have route.c decide what answers
 * it, and carry it over a wsmux stream to the worker (or to the peer node
 * that holds the worker), streaming bodies both ways with backpressure.
 *
 * Backpressure: viewer -> worker, the viewer is read only while the stream's
 * outbound queue has room; worker -> viewer, the bytes a stream delivers are
 * consumed (credit returned to the worker) only once the viewer's output
 * buffer has drained below VIEWER_OUT_LOW. So a stream never holds more than
 * its window plus VIEWER_OUT_LOW, whatever the sizes and speeds. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/registry.h"
#include "node/log.h"
#include "node/node.h"

#define VIEWER_OUT_LOW (64 * 1024)
#define VIEWER_IN_HIGH (64 * 1024)
#define RESP_HEAD_MAX (64 * 1024)

static void pump_up(struct viewer *v);

/* ---- small helpers ---------------------------------------------------- */

void viewer_finish(struct viewer *v)
{
    v->state = V_CLOSING;
    v->keep_alive = 0;
    bufferevent_disable(v->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(v->bev)) == 0)
        viewer_free(v);
}

/* Answers the current request with a small error page and closes. */
void viewer_fail(struct viewer *v, int status, const char *reason, const char *body)
{
    if (status >= 500)
        v->node->stats.responses_5xx++;
    else
        v->node->stats.responses_4xx++;
    node_respond(v->bev, status, reason, "text/plain; charset=utf-8", body, 1);
    viewer_finish(v);
}

/* Lets go of the stream (and the worker slot) without waiting for the worker. */
void viewer_release_stream(struct viewer *v)
{
    if (v->lookup) {
        cluster_lookup_cancel(v->lookup);
        v->lookup = NULL;
    }
    peer_unpark(v);
    if (v->stream) {
        struct mux_stream *st = v->stream;
        v->stream = NULL;
        mux_stream_reset(st, MUX_REASON_CANCEL);
        worker_stream_done(v->worker);
        worker_kick(v->worker);
    }
    if (v->state == V_WAIT && v->worker)
        worker_detach_waiting(v->worker, v);
    v->worker = NULL;
    v->owed = 0;
    v->stream_reusable = 0;
}

static void maybe_consume(struct viewer *v)
{
    if (v->stream && v->owed && evbuffer_get_length(bufferevent_get_output(v->bev)) <= VIEWER_OUT_LOW) {
        uint64_t n = v->owed;
        v->owed = 0;
        mux_stream_consume(v->stream, (size_t)n);
        worker_kick(v->worker);
    }
}

/* The head being read must be complete by header_timeout from its first byte
 * (from the accept for a connection's first request), however it trickles in. */
static void head_timeout_cb(evutil_socket_t fd, short what, void *ud)
{
    struct viewer *v = ud;
    if (v->state != V_HEAD)
        return;
    if (evbuffer_get_length(bufferevent_get_input(v->bev)) == 0) {
        viewer_free(v); /* a connection that never sent anything */
        return;
    }
    LOG_D("conn=%llu request head not complete in time", (unsigned long long)v->serial);
    viewer_fail(v, 408, "Request Timeout", "request head not received in time\n");
}

static void arm_head_deadline(struct viewer *v)
{
    int64_t ms = v->node->cfg->header_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(v->head_ev, &tv);
}

void viewer_free(struct viewer *v)
{
    if (v->dead)
        return;
    v->dead = 1;
    viewer_release_stream(v);
    if (v->relay) {
        /* what the viewer left unsent goes to the relay, which sends it and closes the stream */
        if (v->bev)
            bufferevent_flush(v->bev, EV_WRITE, BEV_FLUSH);
        relay_viewer_gone(v->relay);
        v->relay = NULL;
    }
    if (v->bev)
        bufferevent_free(v->bev);
    if (v->head_ev)
        event_free(v->head_ev);
    if (v->resp_head)
        evbuffer_free(v->resp_head);
    free(v->head);
    free(v->fwd_path);
    TAILQ_REMOVE(&v->node->viewers, v, all_link);
    v->node->nconns--;
    free(v);
}

void viewer_abort(struct viewer *v)
{
    v->relay = NULL; /* the relay is going away itself */
    viewer_free(v);
}

/* ---- the request going up --------------------------------------------- */

static void add_header(struct evbuffer *b, const char *name, const char *value, size_t len)
{
    evbuffer_add_printf(b, "%s: %.*s\r\n", name, (int)len, value);
}

/* Whether h is named name (lowercase, NUL-terminated), case-insensitively. */
static int header_is(const struct http1_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Writes h as received: "Name: value". */
static void copy_header(struct evbuffer *b, const struct http1_header *h)
{
    evbuffer_add(b, h->name, h->name_len);
    evbuffer_add(b, ": ", 2);
    evbuffer_add(b, h->value, h->value_len);
    evbuffer_add(b, "\r\n", 2);
}

/* Writes the request head as the worker must see it; to a peer that holds
 * the worker, the viewer's own head (after the preamble on a new stream):
 * the peer rewrites it as it would for a viewer of its own. */
static void write_request_head(struct viewer *v, const char *path, size_t path_len, int path_mode)
{
    if (v->worker && v->worker->kind == SESSION_PEER) {
        if (v->stream_fresh) {
            char pre[RELAY_PREAMBLE_MAX];
            int n = relay_format_preamble(pre, sizeof pre, v->peer_ip, v->tls);
            if (n < 0)
                n = relay_format_preamble(pre, sizeof pre, "0.0.0.0", v->tls); /* "unknown" */
            mux_stream_write(v->stream, pre, (size_t)n);
            v->stream_fresh = 0;
        }
        mux_stream_write(v->stream, v->head, v->head_len);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    const struct http1_request *r = &v->req;
    evbuffer_add_printf(b, "%.*s %.*s HTTP/1.1\r\n", (int)r->method_len, r->method, (int)path_len, path);
    const char *xff = NULL;
    size_t xff_len = 0;
    for (size_t i = 0; i < r->headers.count; i++) {
        const struct http1_header *h = &r->headers.h[i];
        if (http1_is_hop_by_hop(&r->headers, h->name, h->name_len))
            continue;
        if (header_is(h, "content-length"))
            continue;
        if (header_is(h, "x-forwarded-for")) {
            xff = h->value;
            xff_len = h->value_len;
            continue;
        }
        if (header_is(h, "x-forwarded-proto") || header_is(h, "x-forwarded-host") ||
            header_is(h, "x-webhooktunnel-original-path") || header_is(h, "x-websocktunnel-original-path"))
            continue;
        copy_header(b, h);
    }
    if (!r->host) /* HTTP/1.0 without Host */
        evbuffer_add_printf(b, "Host: %s\r\n", v->worker_id);
    if (xff)
        evbuffer_add_printf(b, "X-Forwarded-For: %.*s, %s\r\n", (int)xff_len, xff, v->peer_ip);
    else
        evbuffer_add_printf(b, "X-Forwarded-For: %s\r\n", v->peer_ip);
    evbuffer_add_printf(b, "X-Forwarded-Proto: %s\r\n", v->tls ? "https" : "http");
    if (r->host)
        add_header(b, "X-Forwarded-Host", r->host, r->host_len);
    if (path_mode) {
        add_header(b, "X-Webhooktunnel-Original-Path", r->path, r->path_len);
        add_header(b, "X-Websocktunnel-Original-Path", r->path, r->path_len);
    }
    if (r->body == HTTP1_BODY_LENGTH)
        evbuffer_add_printf(b, "Content-Length: %llu\r\n", (unsigned long long)r->content_length);
    else if (r->body == HTTP1_BODY_CHUNKED)
        evbuffer_add(b, "Transfer-Encoding: chunked\r\n", 28);
    if (r->upgrade) {
        const struct http1_header *u = http1_find_header(&r->headers, "upgrade");
        evbuffer_add(b, "Connection: Upgrade\r\n", 21);
        add_header(b, "Upgrade", u->value, u->value_len);
    } else if (!v->keep_alive) {
        evbuffer_add(b, "Connection: close\r\n", 19);
    }
    evbuffer_add(b, "\r\n", 2);
    size_t len = evbuffer_get_length(b);
    const void *p = evbuffer_pullup(b, -1);
    /* a fresh or idle stream has room for any head we accept */
    mux_stream_write(v->stream, p, len);
    evbuffer_free(b);
}

void viewer_send_request(struct viewer *v)
{
    v->state = V_PROXY;
    v->req_body = v->req.body;
    v->req_left = v->req.content_length;
    v->req_done = v->req_body == HTTP1_BODY_NONE || (v->req_body == HTTP1_BODY_LENGTH && v->req_left == 0);
    http1_chunked_init(&v->req_chunked, HTTP1_CHUNK_TRAILER_MAX);
    evbuffer_drain(v->resp_head, evbuffer_get_length(v->resp_head));
    v->resp_started = v->resp_done = 0;
    v->stream_reusable = 0;
    write_request_head(v, v->fwd_path, v->fwd_path_len, v->path_mode);
    worker_kick(v->worker);
    pump_up(v);
}

void viewer_stream_ready(struct viewer *v, struct mux_stream *st, int err)
{
    if (!st) {
        v->worker = NULL;
        if (err == MUX_E_TIMEOUT)
            viewer_fail(v, 503, "Service Unavailable", "the worker is busy: too many requests in flight\n");
        else
            viewer_fail(v, 502, "Bad Gateway", "the worker could not take the request\n");
        return;
    }
    v->stream = st;
    v->stream_fresh = v->worker && v->worker->kind == SESSION_PEER;
    viewer_send_request(v);
}

void viewer_next_head(struct viewer *v)
{
    struct evbuffer *in = bufferevent_get_input(v->bev);
    size_t max = (size_t)v->node->cfg->max_header_bytes;
    size_t len = evbuffer_get_length(in);
    v->state = V_HEAD;
    bufferevent_enable(v->bev, EV_READ);
    if (len == 0)
        return;
    if (!evtimer_pending(v->head_ev, NULL)) /* the first byte of a head: its deadline starts */
        arm_head_deadline(v);
    if (len > max + 1)
        len = max + 1;
    const char *p = (const char *)evbuffer_pullup(in, (ssize_t)len);
    int rc = http1_parse_request(p, len, &v->req, max);
    if (rc == HTTP1_INCOMPLETE)
        return;
    if (rc < 0) {
        int status = http1_request_error_status(rc);
        LOG_D("conn=%llu bad request: %s", (unsigned long long)v->serial, http1_strerror(rc));
        viewer_fail(v, status,
                    status == 431   ? "Request Header Fields Too Large"
                    : status == 505 ? "HTTP Version Not Supported"
                    : status == 501 ? "Not Implemented"
                                    : "Bad Request",
                    http1_strerror(rc));
        return;
    }
    evtimer_del(v->head_ev);
    free(v->head);
    v->head = malloc((size_t)rc);
    memcpy(v->head, p, (size_t)rc);
    v->head_len = (size_t)rc;
    evbuffer_drain(in, (size_t)rc);
    memset(&v->req, 0, sizeof v->req);
    http1_parse_request(v->head, v->head_len, &v->req, v->head_len); /* pointers into our copy */
    v->keep_alive = v->req.keep_alive && !v->node->draining;
    v->retried = 0;
    v->node->stats.requests++;
    v->nreq++;
    viewer_route(v);
}

/* Moves viewer bytes into the stream, as far as the request framing and the
 * stream's room allow. */
static void pump_up(struct viewer *v)
{
    struct evbuffer *in = bufferevent_get_input(v->bev);
    while (v->stream && (v->state == V_TUNNEL || (v->state == V_PROXY && !v->req_done))) {
        struct evbuffer_iovec vec;
        if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 || vec.iov_len == 0)
            break;
        size_t n = vec.iov_len, space = mux_stream_write_space(v->stream);
        if (space == 0) {
            mux_stream_write(v->stream, vec.iov_base, 1); /* takes nothing; arms stream_writable */
            bufferevent_disable(v->bev, EV_READ);
            return;
        }
        if (n > space)
            n = space;
        if (v->state == V_PROXY && v->req_body == HTTP1_BODY_LENGTH && n > v->req_left)
            n = (size_t)v->req_left;
        if (v->state == V_PROXY && v->req_body == HTTP1_BODY_CHUNKED) {
            ssize_t k = http1_chunked_scan(&v->req_chunked, vec.iov_base, n);
            if (k < 0) {
                if (!v->resp_started) {
                    viewer_release_stream(v);
                    viewer_fail(v, 400, "Bad Request", http1_strerror((int)k));
                } else {
                    viewer_finish(v);
                }
                return;
            }
            n = (size_t)k;
            if (http1_chunked_done(&v->req_chunked))
                v->req_done = 1;
        }
        if (n > 0)
            mux_stream_write(v->stream, vec.iov_base, n); /* fits: n <= space */
        evbuffer_drain(in, n);
        if (v->state == V_PROXY && v->req_body == HTTP1_BODY_LENGTH) {
            v->req_left -= n;
            if (v->req_left == 0)
                v->req_done = 1;
        }
    }
    if (v->worker)
        worker_kick(v->worker);
    /* reading stays on after the request too: a pipelined request waits in the
     * input buffer (bounded by the read watermark) for this response, and a
     * viewer that leaves mid-response is noticed at once (EOF or error), which
     * frees its stream */
    if (v->state == V_PROXY || v->state == V_TUNNEL)
        bufferevent_enable(v->bev, EV_READ);
}

/* ---- the response coming down ----------------------------------------- */

static void response_complete(struct viewer *v)
{
    v->resp_done = 1;
    v->stream_reusable =
        v->resp_keep_alive && v->req_done && v->stream && !mux_stream_eof_received(v->stream);
    if (!v->stream_reusable)
        viewer_release_stream(v);
    if (!v->keep_alive || !v->req_done) {
        viewer_finish(v);
        return;
    }
    viewer_next_head(v);
}

static void write_response_head(struct viewer *v, const struct http1_response *r)
{
    struct evbuffer *out = bufferevent_get_output(v->bev);
    evbuffer_add_printf(out, "HTTP/1.1 %d %.*s\r\n", r->status, (int)r->reason_len, r->reason);
    for (size_t i = 0; i < r->headers.count; i++) {
        const struct http1_header *h = &r->headers.h[i];
        if (http1_is_hop_by_hop(&r->headers, h->name, h->name_len))
            continue;
        /* Content-Length is ours to write, except where it only describes a
         * body not sent (HEAD, 304): then the worker's value goes through */
        if (header_is(h, "content-length") &&
            !(r->body == HTTP1_BODY_NONE && (v->req.method_id == HTTP1_METHOD_HEAD || r->status == 304)))
            continue;
        copy_header(out, h);
    }
    if (r->upgrade) {
        const struct http1_header *u = http1_find_header(&r->headers, "upgrade");
        evbuffer_add(out, "Connection: Upgrade\r\n", 21);
        if (u)
            add_header(out, "Upgrade", u->value, u->value_len);
    } else {
        if (r->body == HTTP1_BODY_LENGTH)
            evbuffer_add_printf(out, "Content-Length: %llu\r\n", (unsigned long long)r->content_length);
        else if (r->body == HTTP1_BODY_CHUNKED && !v->resp_dechunk)
            evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);

        if (r->body == HTTP1_BODY_CLOSE || v->resp_dechunk)
            v->keep_alive = 0; /* the body ends when the connection does */
        if (!v->keep_alive)
            evbuffer_add(out, "Connection: close\r\n", 19);
    }
    evbuffer_add(out, "\r\n", 2);
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

/* Body bytes from the worker; counted is whether they are owed (consumed
 * only as the viewer drains) or were consumed already. */
static void body_down(struct viewer *v, const uint8_t *data, size_t len, int counted)
{
    struct evbuffer *out = bufferevent_get_output(v->bev);
    size_t take = len;
    if (v->state == V_PROXY && !v->resp_done) {
        if (v->resp_body == HTTP1_BODY_LENGTH) {
            if (take > v->resp_left)
                take = (size_t)v->resp_left;
        } else if (v->resp_body == HTTP1_BODY_CHUNKED) {
            ssize_t k = v->resp_dechunk ? dechunk(v, data, len)
                                        : http1_chunked_scan(&v->resp_chunked, (const char *)data, len);
            if (k < 0) {
                LOG_I("conn=%llu worker=%s bad chunked response: %s", (unsigned long long)v->serial,
                      v->worker_id, http1_strerror((int)k));
                if (counted)
                    mux_stream_consume(v->stream, len);
                viewer_release_stream(v);
                viewer_finish(v);
                return;
            }
            take = (size_t)k;
        } else if (v->resp_body == HTTP1_BODY_NONE) {
            take = 0;
        }
    } else if (v->state != V_TUNNEL) {
        take = 0; /* bytes after the end of a response: the backend broke framing */
    }
    if (take && !(v->resp_dechunk && v->state == V_PROXY))
        evbuffer_add(out, data, take); /* (dechunk() wrote the payload itself) */
    if (counted) {
        v->owed += take;
        if (len > take && v->stream)
            mux_stream_consume(v->stream, len - take);
    }
    if (len > take)
        v->stream_reusable = 0, v->resp_keep_alive = 0;
    if (v->state == V_PROXY && !v->resp_done) {
        if (v->resp_body == HTTP1_BODY_LENGTH) {
            v->resp_left -= take;
            if (v->resp_left == 0) {
                response_complete(v);
                return;
            }
        } else if (v->resp_body == HTTP1_BODY_CHUNKED && http1_chunked_done(&v->resp_chunked)) {
            response_complete(v);
            return;
        }
    }
    maybe_consume(v);
}

static void try_response_head(struct viewer *v)
{
    for (;;) {
        size_t hl = evbuffer_get_length(v->resp_head);
        if (hl == 0)
            return;
        const char *p = (const char *)evbuffer_pullup(v->resp_head, -1);
        struct http1_response r;
        memset(&r, 0, sizeof r);
        int rc = http1_parse_response(p, hl, &r, RESP_HEAD_MAX, v->req.method_id);
        if (rc == HTTP1_INCOMPLETE)
            return;
        if (rc < 0) {
            LOG_I("conn=%llu worker=%s bad response head: %s", (unsigned long long)v->serial, v->worker_id,
                  http1_strerror(rc));
            viewer_release_stream(v);
            viewer_fail(v, 502, "Bad Gateway", "the worker sent a malformed response\n");
            return;
        }
        if (r.status == 404 && v->worker && v->worker->kind == SESSION_PEER &&
            http1_find_header(&r.headers, "x-whtunnel-relay")) {
            /* the node we relayed to does not hold the worker (any more): ask again */
            struct node *n = v->node;
            n->stats.relay_misses++;
            cluster_registry_forget(n->cluster, v->worker_id, strlen(v->worker_id));
            if (!v->retried && v->req.body == HTTP1_BODY_NONE) {
                v->retried = 1;
                n->stats.relay_retries++;
                evbuffer_drain(v->resp_head, evbuffer_get_length(v->resp_head));
                viewer_release_stream(v);
                viewer_relay_route(v);
                return;
            }
            if (v->req.body != HTTP1_BODY_NONE) {
                viewer_release_stream(v);
                viewer_fail(v, 502, "Bad Gateway",
                            "the worker moved while the request was relayed; try again\n");
                return;
            }
        }
        if (r.status < 200 && !r.upgrade) { /* interim (100 Continue): pass on, read the next head */
            evbuffer_add(bufferevent_get_output(v->bev), p, (size_t)rc);
            evbuffer_drain(v->resp_head, (size_t)rc);
            continue;
        }
        v->resp_started = 1;
        v->resp_keep_alive = r.keep_alive;
        v->resp_body = r.body;
        v->resp_dechunk = r.body == HTTP1_BODY_CHUNKED && v->req.version_minor == 0;
        v->resp_left = r.content_length;
        http1_chunked_init(&v->resp_chunked, HTTP1_CHUNK_TRAILER_MAX);
        write_response_head(v, &r);
        evbuffer_drain(v->resp_head, (size_t)rc);
        size_t rest = evbuffer_get_length(v->resp_head);
        uint8_t *tmp = NULL;
        if (rest) {
            tmp = malloc(rest);
            evbuffer_remove(v->resp_head, tmp, rest);
        }
        if (r.upgrade) {
            if (!v->req.upgrade) { /* a 101 nobody asked for */
                free(tmp);
                viewer_release_stream(v);
                viewer_finish(v);
                return;
            }
            v->state = V_TUNNEL;
            v->keep_alive = 0;
            if (rest)
                body_down(v, tmp, rest, 0);
            free(tmp);
            pump_up(v);
            return;
        }
        if (r.body == HTTP1_BODY_NONE || (r.body == HTTP1_BODY_LENGTH && r.content_length == 0)) {
            if (rest)
                v->resp_keep_alive = 0; /* bytes after a complete response: framing broken */
            free(tmp);
            response_complete(v);
            return;
        }
        if (rest)
            body_down(v, tmp, rest, 0);
        free(tmp);
        return;
    }
}

/* ---- stream events (called from the worker's mux session) ------------- */

void viewer_on_data(struct mux_stream *st, const uint8_t *data, size_t len, void *ud)
{
    struct viewer *v = ud;
    if (v->state == V_PROXY && !v->resp_started) {
        if (evbuffer_get_length(v->resp_head) + len > RESP_HEAD_MAX + 1) {
            mux_stream_consume(st, len);
            viewer_release_stream(v);
            viewer_fail(v, 502, "Bad Gateway", "the worker's response head is too large\n");
            return;
        }
        evbuffer_add(v->resp_head, data, len);
        mux_stream_consume(st, len);
        try_response_head(v);
        return;
    }
    body_down(v, data, len, 1);
}

void viewer_on_eof(struct mux_stream *st, void *ud)
{
    struct viewer *v = ud;
    v->stream_reusable = 0;
    if (v->state == V_TUNNEL) {
        viewer_finish(v);
    } else if (v->state == V_PROXY && !v->resp_done) {
        if (!v->resp_started) {
            viewer_release_stream(v);
            viewer_fail(v, 502, "Bad Gateway", "the worker closed the stream before answering\n");
        } else if (v->resp_body == HTTP1_BODY_CLOSE) {
            v->keep_alive = 0;
            response_complete(v);
        } else {
            viewer_finish(v); /* truncated: the viewer sees the connection close */
        }
    } else if (v->state == V_HEAD) {
        viewer_release_stream(v); /* the idle backend connection went away */
    }
}

void viewer_on_writable(struct mux_stream *st, void *ud)
{
    pump_up(ud);
}

void viewer_on_closed(struct mux_stream *st, int err, void *ud)
{
    struct viewer *v = ud;
    struct worker *w = v->worker;
    v->stream = NULL;
    v->worker = NULL;
    v->owed = 0;
    v->stream_reusable = 0;
    if (w)
        worker_stream_done(w);
    if (v->state == V_PROXY && !v->resp_done) {
        if (!v->resp_started)
            viewer_fail(v, 502, "Bad Gateway", "the worker went away before answering\n");
        else
            viewer_finish(v);
    } else if (v->state == V_TUNNEL) {
        viewer_finish(v);
    }
}

/* ---- the viewer's socket ---------------------------------------------- */

static void read_cb(struct bufferevent *bev, void *ud)
{
    struct viewer *v = ud;
    if (v->state == V_HEAD)
        viewer_next_head(v);
    else if (v->state == V_PROXY || v->state == V_TUNNEL)
        pump_up(v);
}

static void write_cb(struct bufferevent *bev, void *ud)
{
    struct viewer *v = ud;
    if (v->state == V_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            viewer_free(v);
        return;
    }
    maybe_consume(v);
}

static void event_cb(struct bufferevent *bev, short what, void *ud)
{
    struct viewer *v = ud;
    if (what == BEV_EVENT_CONNECTED)
        return; /* TLS: the handshake is done; the request head follows */
    if ((what & BEV_EVENT_TIMEOUT) && v->state == V_HEAD) {
        if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
            viewer_fail(v, 408, "Request Timeout", "request head not received in time\n");
            return;
        }
    }
    if ((what & BEV_EVENT_EOF) && v->state == V_TUNNEL && v->stream) {
        /* the viewer finished sending: pass the half-close on, keep reading the worker */
        mux_stream_close(v->stream);
        worker_kick(v->worker);
        bufferevent_disable(bev, EV_READ);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (v->state == V_TUNNEL || v->state == V_PROXY || v->state == V_WAIT)) {
        bufferevent_enable(bev, EV_READ | EV_WRITE); /* long-lived exchanges are not timed out */
        return;
    }
    viewer_free(v);
}

struct viewer *viewer_start(struct node *n, struct bufferevent *bev, int tls, const char *peer_ip,
                            struct relay *relay)
{
    struct viewer *v = calloc(1, sizeof *v);
    if (!v) {
        bufferevent_free(bev);
        return NULL;
    }
    v->tag = SU_VIEWER;
    v->relay = relay;
    v->relayed = relay != NULL;
    v->node = n;
    v->serial = ++n->next_serial;
    v->bev = bev;
    v->tls = tls;
    snprintf(v->peer_ip, sizeof v->peer_ip, "%s", peer_ip);
    v->resp_head = evbuffer_new();
    n->nconns++;
    n->stats.connections++;
    TAILQ_INSERT_TAIL(&n->viewers, v, all_link);
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, v);
    bufferevent_set_max_single_read(bev, NODE_MAX_SINGLE_IO);
    bufferevent_set_max_single_write(bev, NODE_MAX_SINGLE_IO);
    bufferevent_setwatermark(bev, EV_READ, 0, VIEWER_IN_HIGH + (size_t)n->cfg->max_header_bytes);
    bufferevent_setwatermark(bev, EV_WRITE, VIEWER_OUT_LOW, 0);
    /* the read timeout closes idle keep-alive connections; exchanges in
     * progress re-arm it (event_cb) */
    int64_t idle = n->cfg->idle_timeout_ms;
    struct timeval tv = {(time_t)(idle / 1000), (suseconds_t)(idle % 1000) * 1000};
    bufferevent_set_timeouts(bev, &tv, NULL);
    v->head_ev = evtimer_new(n->base, head_timeout_cb, v);
    if (!v->head_ev) {
        v->relay = NULL;
        viewer_free(v);
        return NULL;
    }
    arm_head_deadline(v); /* a new connection has header_timeout to send its first head */
    if (relay) {
        v->state = V_HEAD;
        bufferevent_enable(bev, EV_READ);
        return v; /* nothing arrived yet: the relay writes, the read callback follows */
    }
    viewer_next_head(v);
    return v;
}

void viewer_close_all(struct node *n)
{
    struct viewer *v;
    while ((v = TAILQ_FIRST(&n->viewers)))
        viewer_free(v);
}
