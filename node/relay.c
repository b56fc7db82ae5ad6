/* relay: requests for workers held by other nodes, both ways (see relay.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "cluster/registry.h"
#include "node/links.h"
#include "node/log.h"
#include "node/node.h"
#include "node/pump.h"
#include "node/relay.h"

#define RELAY_LOW ((size_t)64 * 1024)  /* consume stream bytes once our pair output is below this */
#define RELAY_HIGH ((size_t)64 * 1024) /* the viewer's output we hold before the stream takes it */

struct relays {
    const struct relay_hooks *hooks;
    LIST_HEAD(, relay) all;
};

/* A relayed stream this node serves, joined to a viewer through a pair. */
struct relay {
    const struct wsmux_stream_ops *ops; /* the stream's user data starts here */
    struct node *node;
    struct wsmux *link;
    struct mux_stream *st;
    struct bufferevent *bev; /* our end of the pair */
    void *viewer;            /* on the other end */
    char line[RELAY_PREAMBLE_MAX];
    size_t line_len;
    uint64_t owed;         /* stream bytes given to the viewer, not yet consumed */
    struct event *pump_ev; /* deferred work after the viewer went away */
    struct event *free_ev; /* deferred free */
    unsigned started : 1, viewer_gone : 1, fin_sent : 1, dead : 1;
    LIST_ENTRY(relay) entry;
    char peer[65];
};

/* ---- the preamble ------------------------------------------------------------ */

int relay_format_preamble(char *out, size_t cap, const char *ip, int tls)
{
    size_t n = strlen(ip);
    if (n == 0 || n >= RELAY_MAX_IP || strspn(ip, RELAY_IP_CHARS) != n)
        return -1;
    int len = snprintf(out, cap, "WHT-RELAY 1 %s %d\r\n", ip, tls ? 1 : 0);
    return len > 0 && (size_t)len < cap ? len : -1;
}

int relay_parse_preamble(const char *line, size_t len, char ip[RELAY_MAX_IP], int *tls)
{
    static const char magic[] = "WHT-RELAY 1 ";
    size_t m = sizeof magic - 1;
    if (len >= 2 && line[len - 2] == '\r' && line[len - 1] == '\n')
        len -= 2;
    else if (len >= 1 && line[len - 1] == '\n')
        len -= 1;
    if (len < m + 3 || memcmp(line, magic, m) != 0)
        return -1;
    const char *p = line + m, *end = line + len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || sp == p || (size_t)(sp - p) >= RELAY_MAX_IP || end - sp != 2 || (sp[1] != '0' && sp[1] != '1'))
        return -1;
    for (const char *q = p; q < sp; q++)
        if (!*q || !strchr(RELAY_IP_CHARS, *q))
            return -1;
    memcpy(ip, p, (size_t)(sp - p));
    ip[sp - p] = 0;
    *tls = sp[1] == '1';
    return 0;
}

/* ---- sending ------------------------------------------------------------------- */

static void attach(struct node *n, const struct cluster_route *rt, struct wsmux_waiter *wt)
{
    struct wsmux *link = links_get(n, rt->node, rt->addr);
    if (!link) {
        wt->ready_cb(wt, NULL, WSMUX_WAIT_UNREACHABLE);
        return;
    }
    n->stats.relayed_out++;
    int rc = wsmux_attach(link, wt);
    if (rc != 0)
        wt->ready_cb(wt, NULL, rc == WSMUX_E_MEMORY ? WSMUX_WAIT_NO_MEMORY : WSMUX_WAIT_LINK_GONE);
}

static void lookup_cb(struct cluster_registry *reg, int result, const struct cluster_route *rt, void *ud)
{
    struct relay_lookup *lk = ud;
    lk->h = NULL;
    if (result == 1)
        attach(lk->node, rt, lk->wt);
    else
        lk->wt->ready_cb(lk->wt, NULL,
                         result == 0                          ? WSMUX_WAIT_NOT_FOUND
                         : result == CLUSTER_LOOKUP_NODE_DOWN ? WSMUX_WAIT_UNREACHABLE
                                                              : WSMUX_WAIT_REGISTRY_SILENT);
}

void relay_find(struct node *n, const char *id, size_t len, struct wsmux_waiter *wt, struct relay_lookup *lk)
{
    struct cluster_route rt;
    lk->node = n;
    lk->wt = wt;
    lk->h = NULL;
    int rc = cluster_registry_lookup(n->cluster, id, len, &rt, lookup_cb, lk, &lk->h);
    if (rc == 0)
        return; /* Redis is asked; reading stays on: a viewer that leaves is noticed */
    lk->h = NULL;
    if (rc == 1) {
        attach(n, &rt, wt);
        return;
    }
    LOG_D("worker=%.*s lookup failed: %s", (int)len, id, cluster_strerror(rc));
    wt->ready_cb(wt, NULL, rc == CLUSTER_E_DOWN ? WSMUX_WAIT_NO_REGISTRY : WSMUX_WAIT_REGISTRY_FULL);
}

void relay_cancel(struct relay_lookup *lk)
{
    if (lk->h) {
        cluster_lookup_cancel(lk->h);
        lk->h = NULL;
    }
}

void relay_write_request(struct mux_stream *st, int fresh, const char *ip, int tls, const char *head,
                         size_t len, const char *request_id)
{
    if (fresh) {
        char pre[RELAY_PREAMBLE_MAX];
        int n = relay_format_preamble(pre, sizeof pre, ip, tls);
        if (n < 0)
            n = relay_format_preamble(pre, sizeof pre, "0.0.0.0", tls); /* "unknown" */
        mux_stream_write(st, pre, (size_t)n);
    }
    /* a fresh or idle stream has room for any head we accept */
    const char *eol = request_id ? memchr(head, '\n', len) : NULL;
    if (eol) {
        char line[96];
        size_t first = (size_t)(eol - head) + 1;
        int k = snprintf(line, sizeof line, "X-Request-Id: %s\r\n", request_id);
        mux_stream_write(st, head, first);
        mux_stream_write(st, line, (size_t)k);
        head += first;
        len -= first;
    }
    mux_stream_write(st, head, len);
}

enum relay_miss relay_check_miss(struct node *n, const char *id, const struct http1_response *r, int has_body,
                                 unsigned *retried)
{
    if (r->status != 404 || !http1_find_header(&r->headers, "x-whtunnel-relay"))
        return RELAY_NOT_MISS;
    /* the node we relayed to does not hold the worker (any more): ask again */
    n->stats.relay_misses++;
    cluster_registry_forget(n->cluster, id, strlen(id));
    if (*retried || has_body)
        return RELAY_MISS_FAIL;
    *retried = 1;
    n->stats.relay_retries++;
    return RELAY_MISS_RETRY;
}

/* ---- receiving ------------------------------------------------------------------- */

void relay_answer_miss(struct bufferevent *bev)
{
    static const char body[] = "No client is connected with that id\n";
    evbuffer_add_printf(bufferevent_get_output(bev),
                        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: %zu\r\nCache-Control: no-store\r\nX-Whtunnel-Relay: miss\r\n"
                        "Connection: close\r\n\r\n%s",
                        sizeof body - 1, body);
}

static void free_cb(evutil_socket_t fd, short what, void *ud)
{
    struct relay *r = ud;
    LIST_REMOVE(r, entry);
    r->node->relays_open--;
    if (r->bev)
        bufferevent_free(r->bev);
    event_free(r->pump_ev);
    event_free(r->free_ev);
    free(r);
}

/* Ends the relay: the stream is reset (if still open), the viewer closed. */
static void relay_end(struct relay *r, uint32_t reason)
{
    if (r->dead)
        return;
    r->dead = 1;
    if (r->st) {
        struct mux_stream *st = r->st;
        r->st = NULL;
        mux_stream_set_userdata(st, NULL);
        mux_stream_reset(st, reason);
        wsmux_kick(r->link);
    }
    if (r->viewer) {
        void *v = r->viewer;
        r->viewer = NULL;
        r->node->relays->hooks->abort(v);
    }
    event_active(r->free_ev, EV_TIMEOUT, 0);
}

static void relay_credit(struct relay *r)
{
    if (r->bev &&
        pump_credit(r->st, &r->owed, evbuffer_get_length(bufferevent_get_output(r->bev)), RELAY_LOW))
        wsmux_kick(r->link);
}

/* The viewer's output (our input) into the stream, as far as it has room. */
static void relay_pump_up(struct relay *r)
{
    if (!r->bev || r->dead)
        return;
    struct evbuffer *in = bufferevent_get_input(r->bev);
    uint8_t *p;
    size_t n;
    int rc = 0;
    while (r->st && (rc = pump_peek(in, r->st, &p, &n)) == 1)
        pump_commit(in, r->st, p, n);
    if (rc < 0) {
        bufferevent_disable(r->bev, EV_READ);
    } else if (r->viewer_gone && r->st && !r->fin_sent && evbuffer_get_length(in) == 0) {
        r->fin_sent = 1;
        mux_stream_close(r->st); /* the viewer side closed: so does the stream */
        bufferevent_free(r->bev);
        r->bev = NULL;
    } else if (!r->viewer_gone) {
        bufferevent_enable(r->bev, EV_READ);
    }
    wsmux_kick(r->link);
}

static void pair_read_cb(struct bufferevent *bev, void *ud)
{
    relay_pump_up(ud);
}

static void pair_write_cb(struct bufferevent *bev, void *ud)
{
    relay_credit(ud);
}

static void pair_event_cb(struct bufferevent *bev, short what, void *ud)
{
    /* the viewer's end finished (relay_viewer_gone() says so first) */
    relay_pump_up(ud);
}

static void pump_cb(evutil_socket_t fd, short what, void *ud)
{
    relay_pump_up(ud);
}

/* The preamble is complete: start the viewer on the other end of a pair. */
static int relay_start(struct relay *r)
{
    char ip[RELAY_MAX_IP];
    int tls;
    if (relay_parse_preamble(r->line, r->line_len, ip, &tls) != 0) {
        LOG_W("peer=%s relayed stream with a bad preamble", r->peer);
        return -1;
    }
    struct bufferevent *pair[2];
    if (bufferevent_pair_new(r->node->base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair) != 0)
        return -1;
    r->bev = pair[1];
    bufferevent_setwatermark(r->bev, EV_READ, 0, RELAY_HIGH);
    bufferevent_setwatermark(r->bev, EV_WRITE, RELAY_LOW, 0);
    bufferevent_setcb(r->bev, pair_read_cb, pair_write_cb, pair_event_cb, r);
    bufferevent_enable(r->bev, EV_READ | EV_WRITE);
    r->viewer = r->node->relays->hooks->serve(r->node, pair[0], tls, ip, r); /* nothing to read yet */
    if (!r->viewer)
        return -1;
    r->started = 1;
    return 0;
}

/* Collects the preamble line; returns the bytes of data it took, or -1 when
 * the stream must end. */
static ssize_t take_preamble(struct relay *r, const uint8_t *data, size_t len)
{
    size_t i = 0;
    while (i < len && r->line_len < sizeof r->line) {
        char c = (char)data[i++];
        r->line[r->line_len++] = c;
        if (c == '\n')
            break;
    }
    if (r->line_len > 0 && r->line[r->line_len - 1] == '\n')
        return relay_start(r) == 0 ? (ssize_t)i : -1;
    return r->line_len >= sizeof r->line ? -1 : (ssize_t)i; /* a preamble cut across frames */
}

static void stream_data(struct mux_stream *st, const uint8_t *data, size_t len, void *ud)
{
    struct relay *r = ud;
    if (!r->started) {
        ssize_t k = take_preamble(r, data, len);
        if (k < 0) {
            mux_stream_consume(st, len);
            relay_end(r, MUX_REASON_PROTOCOL);
            return;
        }
        mux_stream_consume(st, (size_t)k);
        if (!r->st || !r->started)
            return;
        data += k;
        len -= (size_t)k;
        if (len == 0)
            return;
    }
    if (!r->bev || r->viewer_gone) {
        mux_stream_consume(st, len); /* nobody to take them */
        return;
    }
    evbuffer_add(bufferevent_get_output(r->bev), data, len);
    r->owed += len;
    relay_credit(r);
}

static void stream_eof(struct mux_stream *st, void *ud)
{
    struct relay *r = ud;
    /* the sender's viewer finished sending: the viewer here reads EOF after the bytes */
    if (r->bev && !r->viewer_gone)
        bufferevent_flush(r->bev, EV_WRITE, BEV_FINISHED);
    else if (!r->started)
        relay_end(r, MUX_REASON_CANCEL);
}

static void stream_writable(struct mux_stream *st, void *ud)
{
    relay_pump_up(ud);
}

static void stream_closed(struct mux_stream *st, int err, void *ud)
{
    struct relay *r = ud;
    r->st = NULL;
    relay_end(r, 0);
}

static const struct wsmux_stream_ops relay_stream_ops = {
    .data = stream_data,
    .eof = stream_eof,
    .writable = stream_writable,
    .closed = stream_closed,
};

void relay_incoming(struct node *n, struct wsmux *link, const char *peer_id, struct mux_stream *st)
{
    struct relay *r = calloc(1, sizeof *r);
    if (r) {
        r->pump_ev = event_new(n->base, -1, 0, pump_cb, r);
        r->free_ev = event_new(n->base, -1, 0, free_cb, r);
    }
    if (!r || !r->pump_ev || !r->free_ev) {
        if (r && r->pump_ev)
            event_free(r->pump_ev);
        if (r && r->free_ev)
            event_free(r->free_ev);
        free(r);
        mux_stream_reset(st, MUX_REASON_REFUSED);
        return;
    }
    r->ops = &relay_stream_ops;
    r->node = n;
    r->link = link;
    r->st = st;
    snprintf(r->peer, sizeof r->peer, "%s", peer_id);
    LIST_INSERT_HEAD(&n->relays->all, r, entry);
    n->relays_open++;
    n->stats.relayed_in++;
    mux_stream_accept(st, r);
    wsmux_kick(link);
}

void relay_viewer_gone(struct relay *r)
{
    r->viewer = NULL;
    r->viewer_gone = 1;
    if (!r->dead)
        event_active(r->pump_ev, EV_TIMEOUT, 0); /* send what it left, then FIN */
}

int relay_init(struct node *n, const struct relay_hooks *hooks)
{
    struct relays *rs = calloc(1, sizeof *rs);
    if (!rs)
        return -1;
    rs->hooks = hooks;
    LIST_INIT(&rs->all);
    n->relays = rs;
    return 0;
}

void relay_free(struct node *n)
{
    struct relays *rs = n->relays;
    struct relay *r;
    if (!rs)
        return;
    while ((r = LIST_FIRST(&rs->all))) {
        relay_end(r, MUX_REASON_CANCEL);
        event_del(r->free_ev);
        free_cb(-1, 0, r);
    }
    free(rs);
    n->relays = NULL;
}
