/* Streams a peer node relays to this one (the owner of the worker).
 *
 * A relayed stream starts with one line, "WHT-RELAY 1 <viewer ip> <tls>\r\n"
 * (tls 0 or 1: how the viewer reached the sending node), followed by the
 * viewer's bytes exactly as the sending node received them: request heads
 * and bodies, keep-alive requests one after the other, or after a 101 the
 * raw bytes of the upgraded connection. The answer is what a viewer would
 * get from this node.
 *
 * The stream is joined to one end of a bufferevent pair; the other end is
 * served by proxy.c as an ordinary viewer connection, marked relayed (it is
 * never relayed again: a worker not held here gets a 404 that the sender
 * recognises by "X-Whtunnel-Relay: miss"). Backpressure both ways: stream
 * bytes are consumed (credit returned to the sender) only once the viewer
 * side has taken them, and the viewer's output is read only while the stream
 * has room. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/node.h"

#define RELAY_LOW ((size_t)64 * 1024)  /* consume stream bytes once our pair output is below this */
#define RELAY_HIGH ((size_t)64 * 1024) /* the viewer's output we hold before the stream takes it */

struct relay {
    enum stream_user tag; /* SU_RELAY */
    struct node *node;
    struct worker *link;
    struct mux_stream *st;
    struct bufferevent *bev; /* our end of the pair */
    struct viewer *viewer;   /* on the other end */
    char line[RELAY_PREAMBLE_MAX];
    size_t line_len;
    uint64_t owed;         /* stream bytes given to the viewer, not yet consumed */
    struct event *pump_ev; /* deferred work after the viewer went away */
    struct event *free_ev; /* deferred free */
    unsigned started : 1, viewer_gone : 1, fin_sent : 1, dead : 1;
    LIST_ENTRY(relay) link_entry;
};

static void relay_pump_up(struct relay *r);

static void free_cb(evutil_socket_t fd, short what, void *ud)
{
    struct relay *r = ud;
    LIST_REMOVE(r, link_entry);
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
        worker_kick(r->link);
    }
    if (r->viewer) {
        struct viewer *v = r->viewer;
        r->viewer = NULL;
        viewer_abort(v);
    }
    event_active(r->free_ev, EV_TIMEOUT, 0);
}

static void relay_credit(struct relay *r)
{
    if (r->st && r->owed && r->bev && evbuffer_get_length(bufferevent_get_output(r->bev)) <= RELAY_LOW) {
        uint64_t n = r->owed;
        r->owed = 0;
        worker_kick(r->link);
        mux_stream_consume(r->st, (size_t)n); /* may close the stream: r->st is then NULL */
    }
}

/* The viewer's output (our input) into the stream, as far as it has room. */
static void relay_pump_up(struct relay *r)
{
    if (!r->bev || r->dead)
        return;
    struct evbuffer *in = bufferevent_get_input(r->bev);
    while (r->st && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec vec;
        if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 || vec.iov_len == 0)
            break;
        size_t n = vec.iov_len, space = mux_stream_write_space(r->st);
        if (space == 0) {
            mux_stream_write(r->st, vec.iov_base, 1); /* takes nothing; arms stream_writable */
            bufferevent_disable(r->bev, EV_READ);
            worker_kick(r->link);
            return;
        }
        if (n > space)
            n = space;
        mux_stream_write(r->st, vec.iov_base, n);
        evbuffer_drain(in, n);
    }
    if (r->viewer_gone && r->st && !r->fin_sent && evbuffer_get_length(in) == 0) {
        r->fin_sent = 1;
        mux_stream_close(r->st); /* the viewer side closed: so does the stream */
        bufferevent_free(r->bev);
        r->bev = NULL;
    } else if (!r->viewer_gone) {
        bufferevent_enable(r->bev, EV_READ);
    }
    worker_kick(r->link);
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

void relay_incoming(struct worker *link, struct mux_stream *st)
{
    struct node *n = link->node;
    struct relay *r = calloc(1, sizeof *r);
    if (r) {
        r->pump_ev = event_new(n->base, -1, 0, pump_cb, r);
        r->free_ev = event_new(n->base, -1, 0, free_cb, r);
    }
    if (!r || !r->pump_ev || !r->free_ev) {
        if (r) {
            if (r->pump_ev)
                event_free(r->pump_ev);
            if (r->free_ev)
                event_free(r->free_ev);
            free(r);
        }
        mux_stream_reset(st, MUX_REASON_REFUSED);
        return;
    }
    r->tag = SU_RELAY;
    r->node = n;
    r->link = link;
    r->st = st;
    LIST_INSERT_HEAD(&n->relays, r, link_entry);
    n->stats.relayed_in++;
    mux_stream_accept(st, r);
    worker_kick(link);
}

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

/* The preamble is complete: start the viewer on the other end of a pair. */
static int relay_start(struct relay *r)
{
    char ip[RELAY_MAX_IP];
    int tls;
    if (relay_parse_preamble(r->line, r->line_len, ip, &tls) != 0) {
        LOG_W("peer=%s relayed stream with a bad preamble", r->link->id);
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
    r->viewer = viewer_start(r->node, pair[0], tls, ip, r); /* nothing to read yet: returns at once */
    if (!r->viewer)
        return -1;
    r->started = 1;
    return 0;
}

void relay_on_data(struct mux_stream *st, const uint8_t *data, size_t len, void *ud)
{
    struct relay *r = ud;
    if (!r->started) {
        size_t i = 0;
        while (i < len && r->line_len < sizeof r->line) {
            char c = (char)data[i++];
            r->line[r->line_len++] = c;
            if (c == '\n')
                break;
        }
        if (r->line_len == 0 || r->line[r->line_len - 1] != '\n') {
            if (r->line_len >= sizeof r->line) {
                mux_stream_consume(st, len);
                relay_end(r, MUX_REASON_PROTOCOL);
                return;
            }
            mux_stream_consume(st, len); /* a preamble cut across frames */
            return;
        }
        if (relay_start(r) != 0) {
            mux_stream_consume(st, len);
            relay_end(r, MUX_REASON_PROTOCOL);
            return;
        }
        mux_stream_consume(st, i);
        if (!r->st)
            return;
        data += i;
        len -= i;
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

void relay_on_eof(struct mux_stream *st, void *ud)
{
    struct relay *r = ud;
    /* the sender's viewer finished sending: the viewer here reads EOF after the bytes */
    if (r->bev && !r->viewer_gone)
        bufferevent_flush(r->bev, EV_WRITE, BEV_FINISHED);
    else if (!r->started)
        relay_end(r, MUX_REASON_CANCEL);
}

void relay_on_writable(struct mux_stream *st, void *ud)
{
    relay_pump_up(ud);
}

void relay_on_closed(struct mux_stream *st, int err, void *ud)
{
    struct relay *r = ud;
    r->st = NULL;
    relay_end(r, 0);
}

void relay_viewer_gone(struct relay *r)
{
    r->viewer = NULL;
    r->viewer_gone = 1;
    if (!r->dead)
        event_active(r->pump_ev, EV_TIMEOUT, 0); /* send what it left, then FIN */
}

void relay_close_all(struct node *n)
{
    struct relay *r;
    while ((r = LIST_FIRST(&n->relays))) {
        relay_end(r, MUX_REASON_CANCEL);
        event_del(r->free_ev);
        free_cb(-1, 0, r);
    }
}
