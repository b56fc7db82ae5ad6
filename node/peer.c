/* The node's cluster side (REDIS_URL set): the registry glue (workers
 * registered and released, takeovers, peers leaving), the peer listener
 * that accepts links from other nodes, and the dialer that opens a link to
 * a peer on first need. docs/cluster.md describes the whole.
 *
 * A link is a WebSocket carrying a wsmux session in ext mode (worker.c,
 * kind SESSION_PEER). The dialer sends
 *     GET /__peer__ HTTP/1.1
 *     X-Whtunnel-Node: <its node id>
 *     Authorization: Bearer <HS256 token, tid = node id, aud = whtunnel-peer,
 *                            signed with WHT_CLUSTER_SECRET, valid 5 minutes>
 *     X-Whtunnel-Ext: 1   (and the usual WebSocket upgrade headers)
 * and the acceptor answers 101 or refuses (401 without the secret). Either
 * side then opens streams on it: a node relays a viewer to the worker's
 * owner over whichever link it has to that node, so a pair of nodes keeps
 * one link (two only while both dial at the same moment). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <openssl/rand.h>

#include "cluster/registry.h"
#include "node/log.h"
#include "node/node.h"

#define PEER_PATH "/__peer__"
#define PEER_AUDIENCE "whtunnel-peer"
#define PEER_TOKEN_TTL_S 300
#define PEER_HANDSHAKE_MS 3000 /* connect + 101, either side */
#define PEER_HEAD_MAX 8192
#define PEER_STATS_MS 60000
#define PEER_MAX_HANDSHAKES 256 /* connections on the peer port not yet through their handshake */

/* A worker whose session ended on this node while it drains: the requests
 * for it wait here until it registers on another node (takeover), then go
 * there; or until the drain ends (502). */
struct moving {
    char id[NODE_MAX_ID + 1];
    struct viewer_list parked;
    int moved; /* registered elsewhere: a forwarding address until `until` */
    int64_t until;
    LIST_ENTRY(moving) link;
};

/* How long a drained worker's new home is remembered, for the requests that
 * peers still send here before they learn of the move. */
#define MOVED_FORWARD_MS 5000

/* A connection on the peer port that has not finished its handshake. */
struct peer_accept {
    struct node *node;
    struct bufferevent *bev;
    char ip[64];
    int answered; /* refused: closing once the answer is out */
    LIST_ENTRY(peer_accept) link;
};

/* ---- drain: workers move, the requests for them follow -------------- */

static struct moving *moving_find(struct node *n, const char *id, size_t len)
{
    struct moving *m;
    LIST_FOREACH(m, &n->moving, link)
    {
        if (strlen(m->id) == len && memcmp(m->id, id, len) == 0)
            return m;
    }
    return NULL;
}

int peer_park(struct node *n, struct viewer *v)
{
    struct moving *m = moving_find(n, v->worker_id, strlen(v->worker_id));
    if (!m)
        return -1;
    if (m->moved)
        return 1;
    v->parked = m;
    v->worker = NULL;
    v->state = V_WAIT; /* reading stays on: a viewer that leaves is noticed */
    TAILQ_INSERT_TAIL(&m->parked, v, wait_link);
    return 0;
}

void peer_unpark(struct viewer *v)
{
    if (v->parked) {
        TAILQ_REMOVE(&v->parked->parked, v, wait_link);
        v->parked = NULL;
    }
}

void peer_worker_moving(struct node *n, struct worker *w)
{
    struct moving *m = moving_find(n, w->id, strlen(w->id));
    if (!m) {
        m = calloc(1, sizeof *m);
        if (!m)
            return; /* its waiting viewers get their 502 from worker_close() */
        snprintf(m->id, sizeof m->id, "%s", w->id);
        TAILQ_INIT(&m->parked);
        LIST_INSERT_HEAD(&n->moving, m, link);
    }
    m->moved = 0; /* this session is the newest news of it */
    struct viewer *v;
    while ((v = TAILQ_FIRST(&w->waiting))) {
        TAILQ_REMOVE(&w->waiting, v, wait_link);
        v->worker = NULL;
        v->parked = m;
        TAILQ_INSERT_TAIL(&m->parked, v, wait_link);
    }
    LOG_I("worker=%s left while the node drains: requests for it wait for its next node", w->id);
}

/* Sends the viewers waiting for a worker to the node that now holds it
 * (relay), or fails them (the drain is over). A viewer that arrived over a
 * relay makes a second hop here: its request reached no worker, and the new
 * owner never relays it further. */
static void release_waiting(struct viewer_list *list, int relay)
{
    struct viewer *v;
    while ((v = TAILQ_FIRST(list))) {
        TAILQ_REMOVE(list, v, wait_link);
        v->parked = NULL;
        v->worker = NULL;
        if (relay)
            viewer_relay_route(v);
        else
            viewer_fail(v, 502, "Bad Gateway", "the worker left this node and did not come back in time\n");
    }
}

static void moving_free(struct moving *m, int relay)
{
    LIST_REMOVE(m, link);
    release_waiting(&m->parked, relay);
    free(m);
}

/* ---- registry callbacks ------------------------------------------------ */

static void on_takeover(struct cluster_registry *reg, const char *id, size_t id_len, void *ud)
{
    struct node *n = ud;
    struct worker *w = node_find_worker(n, id, id_len);
    if (w && w->draining) {
        /* it moved before its session here ended: what is in flight finishes, the rest follows it */
        LOG_I("worker=%s registered on another node: requests for it go there", w->id);
        w->replaced = 1;
        node_table_remove(n, w);
        release_waiting(&w->waiting, 1);
        if (w->streams == 0)
            worker_close(w, "moved to another node");
    } else if (w) {
        w->replaced = 1; /* the registry has forgotten it already */
        worker_close(w, "a newer registration lives on another node");
    }
    struct moving *m = moving_find(n, id, id_len);
    if (m && !m->moved) {
        LOG_I("worker=%s registered on another node: the requests waiting for it go there", m->id);
        m->moved = 1;
        m->until = node_now_ms() + MOVED_FORWARD_MS;
        release_waiting(&m->parked, 1);
    }
}

static void close_links_to(struct node *n, const char *node_id, const char *why)
{
    struct worker *w, *next;
    for (w = TAILQ_FIRST(&n->peers); w; w = next) {
        next = TAILQ_NEXT(w, peer_link);
        if (strcmp(w->id, node_id) == 0)
            worker_close(w, why); /* removes w from the list */
    }
}

static void on_peer_up(struct cluster_registry *reg, const char *node_id, const char *addr, void *ud)
{
    LOG_I("cluster: node %s is up at %s", node_id, addr);
}

static void on_peer_down(struct cluster_registry *reg, const char *node_id, const char *addr, void *ud)
{
    LOG_I("cluster: node %s (%s) left", node_id, addr);
    close_links_to(ud, node_id, "the peer left the cluster");
}

static void on_redis_state(struct cluster_registry *reg, int up, int err, void *ud)
{
    if (up)
        LOG_I("cluster: Redis is up");
    else
        LOG_W("cluster: Redis is unreachable (%s): serving local workers and cached routes",
              cluster_strerror(err));
}

static void on_log(struct cluster_registry *reg, enum cluster_log_level level, const char *msg, void *ud)
{
    switch (level) {
    case CLUSTER_LOG_ERROR: LOG_E("cluster: %s", msg); break;
    case CLUSTER_LOG_WARN: LOG_W("cluster: %s", msg); break;
    case CLUSTER_LOG_INFO: LOG_I("cluster: %s", msg); break;
    default: LOG_D("cluster: %s", msg); break;
    }
}

void peer_worker_registered(struct node *n, struct worker *w)
{
    if (!n->cluster)
        return;
    int rc = cluster_registry_register(n->cluster, w->id, strlen(w->id));
    if (rc < 0)
        LOG_W("worker=%s not recorded in the cluster registry: %s (served by this node only)", w->id,
              cluster_strerror(rc));
}

void peer_worker_closed(struct node *n, struct worker *w)
{
    if (n->cluster && !n->stopping)
        cluster_registry_unregister(n->cluster, w->id, strlen(w->id));
}

/* ---- links ------------------------------------------------------------- */

void peer_link_closed(struct node *n, struct worker *w)
{
    TAILQ_REMOVE(&n->peers, w, peer_link);
}

/* Splits "host:port" or "[v6]:port" (port 0 only when allow_zero). Returns 0 or -1. */
static int split_hostport_z(const char *addr, char *host, size_t cap, int *port, int allow_zero)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr)
        return -1;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']')
        h++, hl -= 2;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (hl == 0 || hl >= cap || *end || end == colon + 1 || p < (allow_zero ? 0 : 1) || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    *port = (int)p;
    return 0;
}

static int split_hostport(const char *addr, char *host, size_t cap, int *port)
{
    return split_hostport_z(addr, host, cap, port, 0);
}

static void dial_fail(struct worker *w, const char *what, const char *detail)
{
    char why[300];
    snprintf(why, sizeof why, "%s: %s", what, detail);
    LOG_W("peer=%s %s", w->id, why);
    worker_close(w, why);
}

static void dial_read_cb(struct bufferevent *bev, void *ud)
{
    struct worker *w = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    if (len > PEER_HEAD_MAX)
        len = PEER_HEAD_MAX;
    const char *p = (const char *)evbuffer_pullup(in, (ssize_t)len);
    struct http1_response r;
    memset(&r, 0, sizeof r);
    int rc = http1_parse_response(p, len, &r, PEER_HEAD_MAX, HTTP1_METHOD_GET);
    if (rc == HTTP1_INCOMPLETE)
        return;
    if (rc < 0) {
        dial_fail(w, "refused the link", http1_strerror(rc));
        return;
    }
    if (r.status != 101) {
        char st[64];
        snprintf(st, sizeof st, "%d%s", r.status,
                 r.status == 401 ? " (the nodes' WHT_CLUSTER_SECRET differ)" : "");
        dial_fail(w, "refused the link: status", st);
        return;
    }
    struct ws_header hs[HTTP1_MAX_HEADERS];
    node_ws_headers(&r.headers, hs);
    int wrc = ws_check_response(r.status, hs, r.headers.count, w->client_key);
    const struct http1_header *ext = http1_find_header(&r.headers, "x-whtunnel-ext");
    if (wrc != 0) {
        dial_fail(w, "refused the link", ws_strerror(wrc));
        return;
    }
    if (!ext || ext->value_len != 1 || ext->value[0] != '1') {
        dial_fail(w, "refused the link", "no X-Whtunnel-Ext: 1 (not a whtunnel peer port?)");
        return;
    }
    evbuffer_drain(in, (size_t)rc);
    LOG_I("peer=%s link up (dialed)", w->id);
    worker_connected(w);
}

static void dial_event_cb(struct bufferevent *bev, short what, void *ud)
{
    struct worker *w = ud;
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
    dial_fail(w, "cannot reach the peer", detail);
}

struct worker *peer_link_get(struct node *n, const char *node_id, const char *addr)
{
    struct worker *w;
    TAILQ_FOREACH(w, &n->peers, peer_link)
    {
        if (!w->closing && strcmp(w->id, node_id) == 0)
            return w;
    }
    char host[300];
    int port;
    if (split_hostport(addr, host, sizeof host, &port) != 0) {
        LOG_W("peer=%s bad peer address '%s'", node_id, addr);
        return NULL;
    }
    char *tok = NULL;
    if (token_mint(n->cfg->cluster_secret, strlen(n->cfg->cluster_secret), n->node_id, (int64_t)time(NULL),
                   PEER_TOKEN_TTL_S, PEER_AUDIENCE, &tok) != 0)
        return NULL;
    uint8_t rnd[16];
    struct bufferevent *bev = bufferevent_socket_new(n->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev || RAND_bytes(rnd, sizeof rnd) != 1) {
        if (bev)
            bufferevent_free(bev);
        free(tok);
        return NULL;
    }
    w = worker_new_peer(n, bev, node_id, 1);
    if (!w) {
        free(tok);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&n->peers, w, peer_link);
    n->stats.peer_links++;
    ws_client_key(rnd, w->client_key);
    char extra[2048], req[3072];
    snprintf(extra, sizeof extra, "Authorization: Bearer %s\r\nX-Whtunnel-Node: %s\r\nX-Whtunnel-Ext: 1\r\n",
             tok, n->node_id);
    free(tok);
    int len = ws_format_request(req, sizeof req, addr, PEER_PATH, w->client_key, extra);
    if (len <= 0) {
        worker_close(w, "handshake too large");
        return NULL;
    }
    evbuffer_add(bufferevent_get_output(bev), req, (size_t)len);
    struct timeval tv = {PEER_HANDSHAKE_MS / 1000, (suseconds_t)(PEER_HANDSHAKE_MS % 1000) * 1000};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setcb(bev, dial_read_cb, NULL, dial_event_cb, w);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    LOG_D("peer=%s dialing %s", node_id, addr);
    if (bufferevent_socket_connect_hostname(bev, n->dns, AF_UNSPEC, host, port) != 0) {
        dial_fail(w, "cannot dial the peer", addr);
        return NULL;
    }
    return w->closing ? NULL : w;
}

/* ---- the peer listener ------------------------------------------------- */

static void accept_free(struct peer_accept *pa)
{
    LIST_REMOVE(pa, link);
    pa->node->handshakes--;
    if (pa->bev)
        bufferevent_free(pa->bev);
    free(pa);
}

static void accept_refuse(struct peer_accept *pa, int status, const char *reason, const char *why)
{
    LOG_W("peer link from %s refused: %s", pa->ip, why);
    node_respond(pa->bev, status, reason, "text/plain; charset=utf-8", why, 1);
    pa->answered = 1;
    bufferevent_disable(pa->bev, EV_READ);
}

static void accept_read_cb(struct bufferevent *bev, void *ud)
{
    struct peer_accept *pa = ud;
    struct node *n = pa->node;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    if (pa->answered)
        return;
    if (len > PEER_HEAD_MAX + 1)
        len = PEER_HEAD_MAX + 1;
    const char *p = (const char *)evbuffer_pullup(in, (ssize_t)len);
    struct http1_request r;
    memset(&r, 0, sizeof r);
    int rc = http1_parse_request(p, len, &r, PEER_HEAD_MAX);
    if (rc == HTTP1_INCOMPLETE)
        return;
    if (rc < 0) {
        accept_refuse(pa, 400, "Bad Request", "malformed request\n");
        return;
    }
    size_t pl = r.path_len;
    if (pl != strlen(PEER_PATH) || memcmp(r.path, PEER_PATH, pl) != 0) {
        accept_refuse(pa, 404, "Not Found", "this is a whtunnel peer port\n");
        return;
    }
    const struct http1_header *nh = http1_find_header(&r.headers, "x-whtunnel-node");
    const struct http1_header *az = http1_find_header(&r.headers, "authorization");
    const char *tok;
    size_t tok_len;
    if (!nh || !cluster_valid_node(nh->value, nh->value_len) || !az ||
        token_parse_bearer(az->value, az->value_len, &tok, &tok_len) != 0) {
        accept_refuse(pa, 401, "Unauthorized", "a peer link needs X-Whtunnel-Node and a bearer token\n");
        return;
    }
    char id[CLUSTER_MAX_NODE_LEN + 1];
    memcpy(id, nh->value, nh->value_len);
    id[nh->value_len] = 0;
    int trc = token_verify(&n->peer_keys, tok, tok_len, id, strlen(id), (int64_t)time(NULL), NULL);
    if (trc != 0) {
        char why[200];
        snprintf(why, sizeof why, "bad cluster token from node %s: %s\n", id, token_strerror(trc));
        accept_refuse(pa, 401, "Unauthorized", why);
        return;
    }
    if (strcmp(id, n->node_id) == 0) {
        accept_refuse(pa, 409, "Conflict", "a node with this node id dialed itself: node ids must differ\n");
        return;
    }
    struct ws_header hs[HTTP1_MAX_HEADERS];
    node_ws_headers(&r.headers, hs);
    const char *key;
    size_t key_len;
    char accept[29], resp[512];
    const struct http1_header *ext = http1_find_header(&r.headers, "x-whtunnel-ext");
    if (ws_check_request(r.method, r.method_len, r.version_minor, hs, r.headers.count, &key, &key_len) != 0 ||
        ws_accept_key(key, key_len, accept) != 0 || !ext || ext->value_len != 1 || ext->value[0] != '1') {
        accept_refuse(pa, 400, "Bad Request", "a peer link is a WebSocket upgrade with X-Whtunnel-Ext: 1\n");
        return;
    }
    int hl = ws_format_response_101(resp, sizeof resp, accept, "X-Whtunnel-Ext: 1\r\n");
    evbuffer_drain(in, (size_t)rc);
    evbuffer_add(bufferevent_get_output(bev), resp, (size_t)hl);
    struct bufferevent *b = pa->bev;
    pa->bev = NULL;
    accept_free(pa);
    struct worker *w = worker_new_peer(n, b, id, 0);
    if (w) {
        /* links found first serve first: an accepted link goes after one this node dialed */
        TAILQ_INSERT_TAIL(&n->peers, w, peer_link);
        n->stats.peer_links++;
        LOG_I("peer=%s link up (accepted)", id);
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

static void peer_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                           void *ud)
{
    struct node *n = ud;
    if (n->handshakes >= PEER_MAX_HANDSHAKES) {
        LOG_W("peer port: %u handshakes in progress, connection refused", n->handshakes);
        evutil_closesocket(fd);
        return;
    }
    struct peer_accept *pa = calloc(1, sizeof *pa);
    if (!pa) {
        evutil_closesocket(fd);
        return;
    }
    snprintf(pa->ip, sizeof pa->ip, "unknown");
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, pa->ip, sizeof pa->ip);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, pa->ip, sizeof pa->ip);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pa->node = n;
    pa->bev = bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!pa->bev) {
        evutil_closesocket(fd);
        free(pa);
        return;
    }
    LIST_INSERT_HEAD(&n->accepting, pa, link);
    n->handshakes++;
    struct timeval tv = {PEER_HANDSHAKE_MS / 1000, (suseconds_t)(PEER_HANDSHAKE_MS % 1000) * 1000};
    bufferevent_set_timeouts(pa->bev, &tv, &tv);
    bufferevent_setwatermark(pa->bev, EV_READ, 0, PEER_HEAD_MAX + 2);
    bufferevent_setcb(pa->bev, accept_read_cb, accept_write_cb, accept_event_cb, pa);
    bufferevent_enable(pa->bev, EV_READ | EV_WRITE);
}

/* ---- drain: start, progress, end -------------------------------------- */

static void left_cb(struct cluster_registry *reg, int result, void *ud)
{
    struct node *n = ud;
    if (result == 0)
        LOG_I("cluster: left (the other nodes dropped this node's routes)");
    else
        LOG_W("cluster: could not leave cleanly (%s): the member key expires by itself",
              cluster_strerror(result));
    event_base_loopexit(n->base, NULL);
}

/* Leaves the cluster (bounded by the registry's command timeout), then exits the loop. */
void peer_drain_end(struct node *n)
{
    if (n->drain_ev)
        event_del(n->drain_ev);
    if (n->leaving)
        return;
    n->leaving = 1;
    if (cluster_registry_leave(n->cluster, left_cb, n) != 0)
        event_base_loopexit(n->base, NULL);
}

static void drain_cb(evutil_socket_t fd, short what, void *ud)
{
    struct node *n = ud;
    int64_t now = node_now_ms();
    if (now >= n->drain_deadline_ms) {
        LOG_W("drain: not idle after %lld ms (%u worker sessions, %u connections): stopping",
              (long long)n->cfg->drain_timeout_ms, (unsigned)n->stats.workers, n->nconns);
        while (!LIST_EMPTY(&n->moving))
            moving_free(LIST_FIRST(&n->moving), 0);
        peer_drain_end(n);
        return;
    }
    struct moving *m, *mnext;
    int waiting_moves = 0;
    for (m = LIST_FIRST(&n->moving); m; m = mnext) {
        mnext = LIST_NEXT(m, link);
        if (m->moved && now >= m->until)
            moving_free(m, 0);
        else if (!m->moved)
            waiting_moves++;
    }
    if (n->stats.workers == 0 && waiting_moves == 0 && n->nconns == 0 && LIST_EMPTY(&n->relays)) {
        LOG_I("drain: done, every worker moved and every request finished");
        peer_drain_end(n);
    }
}

int peer_drain_start(struct node *n)
{
    if (!n->cluster || n->draining)
        return -1;
    n->draining = 1;
    n->drain_deadline_ms = node_now_ms() + n->cfg->drain_timeout_ms;
    LOG_I("drain: asking %u workers to reconnect elsewhere; exiting once idle, at most in %lld ms",
          n->nworkers, (long long)n->cfg->drain_timeout_ms);
    /* workers: no new streams; ext clients get GOAWAY and reconnect once
     * their streams are done, the others are closed once idle */
    struct worker **all = calloc(n->nworkers + 1, sizeof *all);
    uint32_t k = 0;
    for (uint32_t i = 0; all && i < n->nbuckets; i++)
        for (struct worker *w = n->buckets[i]; w && k < n->nworkers; w = w->hnext)
            all[k++] = w;
    for (uint32_t i = 0; i < k; i++)
        worker_drain(all[i]);
    free(all);
    /* viewers: no more keep-alive; connections idle between two requests
     * close now (a new one keeps its chance to send its first request, which
     * may be on its way) */
    struct viewer *v, *next;
    for (v = TAILQ_FIRST(&n->viewers); v; v = next) {
        next = TAILQ_NEXT(v, all_link);
        v->keep_alive = 0;
        if (v->state == V_HEAD && v->nreq > 0 && evbuffer_get_length(bufferevent_get_input(v->bev)) == 0)
            viewer_free(v);
    }
    n->drain_ev = event_new(n->base, -1, EV_PERSIST, drain_cb, n);
    struct timeval tv = {0, 100 * 1000};
    if (!n->drain_ev || event_add(n->drain_ev, &tv) != 0) {
        peer_drain_end(n);
        return 0;
    }
    drain_cb(-1, 0, n);
    return 0;
}

/* ---- start and stop ---------------------------------------------------- */

static void stats_cb(evutil_socket_t fd, short what, void *ud)
{
    struct node *n = ud;
    struct cluster_registry_stats st;
    cluster_registry_stats(n->cluster, &st);
    LOG_I("cluster: redis %s, %zu workers held, %zu peers up, route cache %zu routes %zu bytes "
          "(limits %zu, %zu), hits %llu misses %llu, relayed out %llu in %llu",
          st.redis_up ? "up" : "DOWN", st.held, st.peers_up, st.cache_routes, st.cache_bytes,
          st.cache_max_routes, st.cache_max_bytes, (unsigned long long)st.cache_hits,
          (unsigned long long)st.cache_misses, (unsigned long long)n->stats.relayed_out,
          (unsigned long long)n->stats.relayed_in);
}

/* Fills in two settings left empty: the node id (the host name, "" if
 * unknown, and a random suffix) and the peer address to listen on (PORT + 1
 * on the listen address). */
static void peer_addresses(struct node *n, const char *hostname, char *listen, size_t cap)
{
    const struct config *cfg = n->cfg;
    const char *host = hostname[0] ? hostname : "localhost";
    if (cfg->node_id[0]) {
        snprintf(n->node_id, sizeof n->node_id, "%s", cfg->node_id);
    } else {
        uint8_t r[3];
        char clean[48];
        size_t k = 0;
        for (const char *p = host; *p && k < sizeof clean - 1; p++)
            clean[k++] = cluster_valid_node(p, 1) ? *p : '-';
        clean[k] = 0;
        RAND_bytes(r, sizeof r);
        snprintf(n->node_id, sizeof n->node_id, "%s-%02x%02x%02x", clean, r[0], r[1], r[2]);
    }
    if (cfg->peer_addr[0]) {
        snprintf(listen, cap, "%s", cfg->peer_addr);
    } else {
        const char *la = cfg->listen_addr[0] ? cfg->listen_addr : "0.0.0.0";
        int port = cfg->port ? cfg->port + 1 : 0;
        if (strchr(la, ':'))
            snprintf(listen, cap, "[%s]:%d", la, port);
        else
            snprintf(listen, cap, "%s:%d", la, port);
    }
}

int peer_start(struct node *n)
{
    const struct config *cfg = n->cfg;
    TAILQ_INIT(&n->peers);
    LIST_INIT(&n->accepting);
    LIST_INIT(&n->relays);
    LIST_INIT(&n->moving);
    if (!cfg->redis_url[0])
        return 0;
    char listen[320], hostname[256] = "";
    if (gethostname(hostname, sizeof hostname - 1) != 0)
        hostname[0] = 0;
    hostname[sizeof hostname - 1] = 0;
    peer_addresses(n, hostname, listen, sizeof listen);
    n->peer_keys.secret_a = cfg->cluster_secret;
    n->peer_keys.secret_a_len = strlen(cfg->cluster_secret);
    n->peer_keys.audience = PEER_AUDIENCE;
    n->peer_keys.leeway_s = 60;
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    char lhost[256], any_port[300];
    int lport;
    if (split_hostport_z(listen, lhost, sizeof lhost, &lport, 1) == 0)
        snprintf(any_port, sizeof any_port, strchr(lhost, ':') ? "[%s]:1" : "%s:1", lhost);
    else
        any_port[0] = 0;
    if (!any_port[0] || evutil_parse_sockaddr_port(any_port, (struct sockaddr *)&ss, &sslen) != 0) {
        fprintf(stderr, "whtunnel: bad peer address '%s' (WHT_PEER_ADDR / --peer-addr): use an IP and port\n",
                listen);
        return -1;
    }
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)lport);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)lport);
    n->peer_listener =
        evconnlistener_new_bind(n->base, peer_accept_cb, n, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 256,
                                (struct sockaddr *)&ss, sslen);
    if (!n->peer_listener) {
        fprintf(stderr, "whtunnel: cannot listen for peers on %s (WHT_PEER_ADDR / --peer-addr): %s\n", listen,
                strerror(errno));
        return -1;
    }
    /* the port actually bound (0 lets the kernel pick) */
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    int bport = 0;
    if (getsockname(evconnlistener_get_fd(n->peer_listener), (struct sockaddr *)&bound, &bl) == 0)
        bport = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    if (cfg->peer_advertise[0]) {
        snprintf(n->advertise, sizeof n->advertise, "%s", cfg->peer_advertise);
    } else {
        /* the advertised address: the peer address, with the host name for a
         * wildcard host, and the port actually bound */
        const char *host = lhost;
        if (!host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
            host = hostname[0] ? hostname : "127.0.0.1";
        if (strchr(host, ':'))
            snprintf(n->advertise, sizeof n->advertise, "[%s]:%d", host, bport);
        else
            snprintf(n->advertise, sizeof n->advertise, "%s:%d", host, bport);
    }
    n->dns = evdns_base_new(n->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!n->dns)
        n->dns = evdns_base_new(n->base, 0); /* no resolv.conf: addresses still work */
    struct cluster_options opts = {
        .redis_url = cfg->redis_url,
        .prefix = cfg->redis_prefix,
        .node_id = n->node_id,
        .advertise = n->advertise,
        .dns = n->dns,
    };
    struct cluster_callbacks cbs = {
        .takeover_cb = on_takeover,
        .peer_up_cb = on_peer_up,
        .peer_down_cb = on_peer_down,
        .redis_state_cb = on_redis_state,
        .log_cb = on_log,
        .log_level = log_current_level >= LOG_DEBUG ? CLUSTER_LOG_DEBUG : CLUSTER_LOG_INFO,
    };
    int rc = cluster_registry_new(n->base, &opts, &cbs, n, &n->cluster);
    if (rc != 0) {
        fprintf(stderr,
                "whtunnel: cannot start the cluster registry: %s (REDIS_URL, WHT_NODE_ID, "
                "WHT_PEER_ADVERTISE, WHT_REDIS_PREFIX)\n",
                cluster_strerror(rc));
        return -1;
    }
    n->stats_ev = event_new(n->base, -1, EV_PERSIST, stats_cb, n);
    struct timeval tv = {PEER_STATS_MS / 1000, 0};
    if (n->stats_ev)
        event_add(n->stats_ev, &tv);
    LOG_I("cluster: node %s, peers dial %s (listening on %s), registry prefix '%s'", n->node_id, n->advertise,
          listen, cfg->redis_prefix);
    return 0;
}

void peer_stop(struct node *n)
{
    struct worker *w;
    while ((w = TAILQ_FIRST(&n->peers)))
        worker_close(w, "node stopping");
    while (!LIST_EMPTY(&n->accepting))
        accept_free(LIST_FIRST(&n->accepting));
    relay_close_all(n);
    while (!LIST_EMPTY(&n->moving))
        moving_free(LIST_FIRST(&n->moving), 0);
    if (n->drain_ev)
        event_free(n->drain_ev);
    if (n->stats_ev)
        event_free(n->stats_ev);
    if (n->peer_listener)
        evconnlistener_free(n->peer_listener);
    cluster_registry_free(n->cluster);
    n->cluster = NULL;
    if (n->dns)
        evdns_base_free(n->dns, 1);
    n->dns = NULL;
}
