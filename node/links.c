/* links: node-to-node links, their dialer and their listener (see links.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/listener.h>
#include <openssl/rand.h>

#include "cluster/cluster.h"
#include "node/links.h"
#include "node/log.h"
#include "node/net.h"
#include "node/node.h"
#include "node/respond.h"
#include "node/token.h"
#include "util/util.h"

#define PEER_PATH "/__peer__"
#define PEER_TOKEN_TTL_S 300
#define PEER_HANDSHAKE_MS 3000 /* connect + 101, either side */
#define PEER_HEAD_MAX 8192
#define PEER_MAX_HANDSHAKES 256 /* connections on the peer port not yet through their handshake */

/* A link to a peer node. Freed when its session is (freed_cb). */
struct link {
    struct node *node;
    struct wsmux *ws;
    char client_key[25]; /* dialed: our Sec-WebSocket-Key */
    size_t scan;         /* dialed: where the search for the end of the 101 resumes */
    unsigned dialed : 1, in_list : 1;
    TAILQ_ENTRY(link) entry;
    char id[CLUSTER_MAX_NODE_LEN + 1]; /* the peer's node id */
};

/* A connection on the peer port that has not finished its handshake. */
struct peer_accept {
    struct links *ls;
    struct bufferevent *bev;
    char ip[64];
    int answered; /* refused: closing once the answer is out */
    size_t scan;  /* where the search for the end of the request head resumes */
    LIST_ENTRY(peer_accept) entry;
};

struct links {
    struct node *node;
    links_incoming_cb incoming;
    struct evconnlistener *listener;
    TAILQ_HEAD(, link) all;             /* at most one per peer node in use */
    LIST_HEAD(, peer_accept) accepting; /* still in their handshake */
    unsigned handshakes, count;
};

/* ---- the session ----------------------------------------------------------- */

static void link_closed(struct wsmux *s, enum wsmux_end end, void *ud)
{
    struct link *l = ud;
    struct links *ls = l->node->links;
    if (l->in_list) {
        TAILQ_REMOVE(&ls->all, l, entry);
        ls->count--;
        l->in_list = 0;
    }
}

static void link_incoming(struct wsmux *s, struct mux_stream *st, void *ud)
{
    struct link *l = ud;
    l->node->links->incoming(l->node, s, l->id, st);
}

static void link_freed(struct wsmux *s, void *ud)
{
    free(ud);
}

static const struct wsmux_events link_events = {
    .closed_cb = link_closed,
    .incoming_cb = link_incoming,
    .freed_cb = link_freed,
};

/* A link on bev to peer id; in the list (found first, serves first). */
static struct link *link_new(struct links *ls, struct bufferevent *bev, const char *id, int dialed)
{
    struct link *l = calloc(1, sizeof *l);
    if (!l) {
        bufferevent_free(bev);
        return NULL;
    }
    l->node = ls->node;
    l->dialed = dialed;
    snprintf(l->id, sizeof l->id, "%s", id);
    struct wsmux_options o = {
        .role = WSMUX_PEER, .is_client = dialed, .ext = 1, .name = l->id, .serial = ++ls->node->next_serial};
    l->ws = wsmux_new(ls->node, bev, &o, &link_events, l);
    if (!l->ws) {
        free(l);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&ls->all, l, entry);
    l->in_list = 1;
    ls->count++;
    return l;
}

unsigned links_count(const struct node *n)
{
    return n->links ? n->links->count : 0;
}

unsigned links_up(const struct node *n)
{
    const struct link *l;
    unsigned k = 0;
    if (!n->links)
        return 0;
    TAILQ_FOREACH(l, &n->links->all, entry)
    {
        k += wsmux_started(l->ws) && !wsmux_closing(l->ws);
    }
    return k;
}

const char *links_state(const struct node *n, const char *node_id)
{
    const struct link *l;
    const char *state = "none";
    if (!n->links)
        return state;
    TAILQ_FOREACH(l, &n->links->all, entry)
    {
        if (strcmp(l->id, node_id) == 0 && !wsmux_closing(l->ws)) {
            if (wsmux_started(l->ws))
                return "up";
            state = "connecting";
        }
    }
    return state;
}

void links_close_to(struct node *n, const char *node_id, const char *why)
{
    struct link *l, *next;
    for (l = TAILQ_FIRST(&n->links->all); l; l = next) {
        next = TAILQ_NEXT(l, entry);
        if (strcmp(l->id, node_id) == 0)
            wsmux_close(l->ws, WSMUX_END_CLOSED, why); /* leaves the list */
    }
}

/* ---- the dialer ------------------------------------------------------------ */

static void dial_fail(struct link *l, const char *what, const char *detail)
{
    char why[300];
    snprintf(why, sizeof why, "%s: %s", what, detail);
    LOG_W("peer=%s %s", l->id, why);
    wsmux_close(l->ws, WSMUX_END_LOST, why);
}

/* The 101 and its headers; NULL if it is one, else why not. */
static const char *check_101(const struct http1_response *r, const char *client_key, char *buf, size_t cap)
{
    if (r->status != 101) {
        snprintf(buf, cap, "status %d%s", r->status,
                 r->status == 401 ? " (the nodes' WHT_CLUSTER_SECRET differ)" : "");
        return buf;
    }
    struct ws_header hs[HTTP1_MAX_HEADERS];
    respond_ws_headers(&r->headers, hs);
    int wrc = ws_check_response(r->status, hs, r->headers.count, client_key);
    if (wrc != 0)
        return ws_strerror(wrc);
    const struct http1_header *ext = http1_find_header(&r->headers, "x-whtunnel-ext");
    if (!ext || ext->value_len != 1 || ext->value[0] != '1')
        return "no X-Whtunnel-Ext: 1 (not a whtunnel peer port?)";
    return NULL;
}

static void dial_read_cb(struct bufferevent *bev, void *ud)
{
    struct link *l = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    if (len > PEER_HEAD_MAX)
        len = PEER_HEAD_MAX;
    const char *p = (const char *)evbuffer_pullup(in, (ssize_t)len);
    struct http1_response r;
    memset(&r, 0, sizeof r);
    int rc = http1_parse_response_from(p, len, &r, PEER_HEAD_MAX, HTTP1_METHOD_GET, &l->scan);
    if (rc == HTTP1_INCOMPLETE)
        return;
    char buf[64];
    const char *why = rc < 0 ? http1_strerror(rc) : check_101(&r, l->client_key, buf, sizeof buf);
    if (why) {
        dial_fail(l, "refused the link", why);
        return;
    }
    evbuffer_drain(in, (size_t)rc);
    LOG_I("peer=%s link up (dialed)", l->id);
    wsmux_begin(l->ws);
}

static void dial_event_cb(struct bufferevent *bev, short what, void *ud)
{
    struct link *l = ud;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    const char *detail = (what & BEV_EVENT_TIMEOUT) ? "timed out"
                         : (what & BEV_EVENT_EOF)   ? "connection closed"
                         : bufferevent_socket_get_dns_error(bev)
                             ? evutil_gai_strerror(bufferevent_socket_get_dns_error(bev))
                             : evutil_socket_error_to_string(err);
    dial_fail(l, "cannot reach the peer", detail);
}

/* Queues the handshake request on l's bufferevent. Returns 0 or -1. */
static int dial_request(struct link *l, const char *addr)
{
    struct node *n = l->node;
    uint8_t rnd[16];
    char *tok = NULL;
    if (RAND_bytes(rnd, sizeof rnd) != 1 ||
        token_mint(n->cfg->cluster_secret, strlen(n->cfg->cluster_secret), n->node_id, (int64_t)time(NULL),
                   PEER_TOKEN_TTL_S, NODE_PEER_AUDIENCE, &tok) != 0)
        return -1;
    ws_client_key(rnd, l->client_key);
    char extra[2048], req[3072];
    snprintf(extra, sizeof extra, "Authorization: Bearer %s\r\nX-Whtunnel-Node: %s\r\nX-Whtunnel-Ext: 1\r\n",
             tok, n->node_id);
    free(tok);
    int len = ws_format_request(req, sizeof req, addr, PEER_PATH, l->client_key, extra);
    if (len <= 0)
        return -1;
    evbuffer_add(bufferevent_get_output(wsmux_bev(l->ws)), req, (size_t)len);
    return 0;
}

struct wsmux *links_get(struct node *n, const char *node_id, const char *addr)
{
    struct links *ls = n->links;
    struct link *l;
    TAILQ_FOREACH(l, &ls->all, entry)
    {
        if (!wsmux_closing(l->ws) && strcmp(l->id, node_id) == 0)
            return l->ws;
    }
    char host[300];
    struct util_hostport hp = {0};
    if (util_hostport_parse(addr, strlen(addr), 0, &hp) != 0 || hp.host_len >= sizeof host) {
        LOG_W("peer=%s bad peer address '%s'", node_id, addr);
        return NULL;
    }
    memcpy(host, hp.host, hp.host_len);
    host[hp.host_len] = 0;
    struct bufferevent *bev = bufferevent_socket_new(n->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev || !(l = link_new(ls, bev, node_id, 1)))
        return NULL;
    if (dial_request(l, addr) != 0) {
        wsmux_close(l->ws, WSMUX_END_LOST, "cannot make the handshake");
        return NULL;
    }
    struct timeval tv = {PEER_HANDSHAKE_MS / 1000, (suseconds_t)(PEER_HANDSHAKE_MS % 1000) * 1000};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setcb(bev, dial_read_cb, NULL, dial_event_cb, l);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    LOG_D("peer=%s dialing %s", node_id, addr);
    struct wsmux *ws = l->ws;
    if (bufferevent_socket_connect_hostname(bev, n->dns, AF_UNSPEC, host, hp.port) != 0) {
        dial_fail(l, "cannot dial the peer", addr);
        return NULL;
    }
    return wsmux_closing(ws) ? NULL : ws;
}

/* ---- the listener ------------------------------------------------------------ */

static void accept_free(struct peer_accept *pa)
{
    LIST_REMOVE(pa, entry);
    pa->ls->handshakes--;
    if (pa->bev)
        bufferevent_free(pa->bev);
    free(pa);
}

static void accept_refuse(struct peer_accept *pa, int status, const char *why)
{
    LOG_W("peer link from %s refused: %s", pa->ip, why);
    respond_text(pa->bev, status, why, 1);
    pa->answered = 1;
    bufferevent_disable(pa->bev, EV_READ);
}

/* Checks a peer's handshake request; 0 with its node id in id, or the
 * status to refuse with (*why set). */
static int check_peer(struct node *n, const struct http1_request *r, char id[CLUSTER_MAX_NODE_LEN + 1],
                      const char **why, char *buf, size_t cap)
{
    if (r->path_len != strlen(PEER_PATH) || memcmp(r->path, PEER_PATH, r->path_len) != 0)
        return *why = "this is a whtunnel peer port\n", 404;
    const struct http1_header *nh = http1_find_header(&r->headers, "x-whtunnel-node");
    const struct http1_header *az = http1_find_header(&r->headers, "authorization");
    const char *tok;
    size_t tok_len;
    if (!nh || !cluster_valid_node(nh->value, nh->value_len) || !az ||
        token_parse_bearer(az->value, az->value_len, &tok, &tok_len) != 0)
        return *why = "a peer link needs X-Whtunnel-Node and a bearer token\n", 401;
    memcpy(id, nh->value, nh->value_len);
    id[nh->value_len] = 0;
    int trc = token_verify(&n->peer_keys, tok, tok_len, id, strlen(id), (int64_t)time(NULL), NULL);
    if (trc != 0) {
        snprintf(buf, cap, "bad cluster token from node %s: %s\n", id, token_strerror(trc));
        return *why = buf, 401;
    }
    if (strcmp(id, n->node_id) == 0)
        return *why = "a node with this node id dialed itself: node ids must differ\n", 409;
    return 0;
}

/* The 101 for a checked request into resp; its length, or -1. */
static int answer_101(const struct http1_request *r, char *resp, size_t cap)
{
    struct ws_header hs[HTTP1_MAX_HEADERS];
    respond_ws_headers(&r->headers, hs);
    const char *key;
    size_t key_len;
    char accept[29];
    const struct http1_header *ext = http1_find_header(&r->headers, "x-whtunnel-ext");
    if (ws_check_request(r->method, r->method_len, r->version_minor, hs, r->headers.count, &key, &key_len) !=
            0 ||
        ws_accept_key(key, key_len, accept) != 0 || !ext || ext->value_len != 1 || ext->value[0] != '1')
        return -1;
    return ws_format_response_101(resp, cap, accept, "X-Whtunnel-Ext: 1\r\n");
}

static void accept_read_cb(struct bufferevent *bev, void *ud)
{
    struct peer_accept *pa = ud;
    struct links *ls = pa->ls;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    if (pa->answered)
        return;
    if (len > PEER_HEAD_MAX + 1)
        len = PEER_HEAD_MAX + 1;
    const char *p = (const char *)evbuffer_pullup(in, (ssize_t)len);
    struct http1_request r;
    memset(&r, 0, sizeof r);
    int rc = http1_parse_request_from(p, len, &r, PEER_HEAD_MAX, &pa->scan);
    if (rc == HTTP1_INCOMPLETE)
        return;
    if (rc < 0) {
        accept_refuse(pa, 400, "malformed request\n");
        return;
    }
    char id[CLUSTER_MAX_NODE_LEN + 1], buf[200], resp[512];
    const char *why;
    int status = check_peer(ls->node, &r, id, &why, buf, sizeof buf);
    if (status != 0) {
        accept_refuse(pa, status, why);
        return;
    }
    int hl = answer_101(&r, resp, sizeof resp);
    if (hl <= 0) {
        accept_refuse(pa, 400, "a peer link is a WebSocket upgrade with X-Whtunnel-Ext: 1\n");
        return;
    }
    evbuffer_drain(in, (size_t)rc);
    evbuffer_add(bufferevent_get_output(bev), resp, (size_t)hl);
    struct bufferevent *b = pa->bev;
    pa->bev = NULL;
    accept_free(pa);
    struct link *l = link_new(ls, b, id, 0);
    if (l) {
        LOG_I("peer=%s link up (accepted)", id);
        wsmux_begin(l->ws);
    }
}

static void accept_write_cb(struct bufferevent *bev, void *ud)
{
    struct peer_accept *pa = ud;
    if (pa->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        accept_free(pa);
}

static void accept_event_cb(struct bufferevent *bev, short what, void *ud)
{
    accept_free(ud);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *ud)
{
    struct links *ls = ud;
    if (ls->handshakes >= PEER_MAX_HANDSHAKES) {
        LOG_W("peer port: %u handshakes in progress, connection refused", ls->handshakes);
        evutil_closesocket(fd);
        return;
    }
    struct peer_accept *pa = calloc(1, sizeof *pa);
    if (!pa) {
        evutil_closesocket(fd);
        return;
    }
    net_format_ip(sa, pa->ip, sizeof pa->ip);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pa->ls = ls;
    pa->bev = bufferevent_socket_new(ls->node->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!pa->bev) {
        evutil_closesocket(fd);
        free(pa);
        return;
    }
    LIST_INSERT_HEAD(&ls->accepting, pa, entry);
    ls->handshakes++;
    struct timeval tv = {PEER_HANDSHAKE_MS / 1000, (suseconds_t)(PEER_HANDSHAKE_MS % 1000) * 1000};
    bufferevent_set_timeouts(pa->bev, &tv, &tv);
    bufferevent_setwatermark(pa->bev, EV_READ, 0, PEER_HEAD_MAX + 2);
    bufferevent_setcb(pa->bev, accept_read_cb, accept_write_cb, accept_event_cb, pa);
    bufferevent_enable(pa->bev, EV_READ | EV_WRITE);
}

/* ---- start and stop ------------------------------------------------------------ */

int links_start(struct node *n, const char *listen, links_incoming_cb incoming, int *bound_port)
{
    struct links *ls = calloc(1, sizeof *ls);
    if (!ls)
        return -1;
    ls->node = n;
    ls->incoming = incoming;
    TAILQ_INIT(&ls->all);
    LIST_INIT(&ls->accepting);
    n->links = ls;
    struct sockaddr_storage ss;
    int sslen;
    if (net_parse_sockaddr(listen, UTIL_HP_PORT_ZERO, &ss, &sslen) != 0) {
        fprintf(stderr, "whtunnel: bad peer address '%s' (WHT_PEER_ADDR / --peer-addr): use an IP and port\n",
                listen);
        return -1;
    }
    ls->listener = evconnlistener_new_bind(n->base, accept_cb, ls, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
                                           256, (struct sockaddr *)&ss, sslen);
    if (!ls->listener) {
        fprintf(stderr, "whtunnel: cannot listen for peers on %s (WHT_PEER_ADDR / --peer-addr): %s\n", listen,
                strerror(errno));
        return -1;
    }
    *bound_port = net_bound_port(evconnlistener_get_fd(ls->listener));
    return 0;
}

void links_stop(struct node *n)
{
    struct links *ls = n->links;
    if (!ls)
        return;
    struct link *l;
    while ((l = TAILQ_FIRST(&ls->all)))
        wsmux_close(l->ws, WSMUX_END_STOPPING, "node stopping");
    while (!LIST_EMPTY(&ls->accepting))
        accept_free(LIST_FIRST(&ls->accepting));
    if (ls->listener)
        evconnlistener_free(ls->listener);
    free(ls);
    n->links = NULL;
}
