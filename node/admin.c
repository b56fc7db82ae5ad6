/* admin: the admin listener and its pages (see admin.h). Small HTTP/1.1
 * server: one request at a time per connection, keep-alive, bounded heads,
 * bounded connections, timeouts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "cluster/registry.h"
#include "node/admin.h"
#include "node/http1.h"
#include "node/links.h"
#include "node/log.h"
#include "node/metrics.h"
#include "node/net.h"
#include "node/node.h"
#include "node/respond.h"
#include "node/workers.h"
#include "util/util.h"

#define ADMIN_HEAD_MAX 8192
#define ADMIN_MAX_CONNS 64
#define ADMIN_TIMEOUT_S 30 /* a head, or an idle keep-alive connection */
#define ADMIN_PAGE_DEFAULT 100
#define ADMIN_PAGE_MAX 1000

extern const char node_dashboard_html[];
extern const unsigned long node_dashboard_html_len;

struct admin_conn {
    struct admin *admin;
    struct bufferevent *bev;
    size_t scan;
    int keep_alive, closing;
    struct cluster_info_req *info; /* /cluster waiting for Redis */
    LIST_ENTRY(admin_conn) entry;
};

struct admin {
    struct node *node;
    struct evconnlistener *listener;
    int port;
    unsigned nconns;
    LIST_HEAD(, admin_conn) conns;
};

/* ---- connections ------------------------------------------------------------------ */

static void conn_free(struct admin_conn *c)
{
    LIST_REMOVE(c, entry);
    c->admin->nconns--;
    cluster_info_cancel(c->info);
    bufferevent_free(c->bev);
    free(c);
}

static void read_cb(struct bufferevent *bev, void *ud);

/* The answer is out: the next request, or close once written. */
static void answered(struct admin_conn *c)
{
    if (!c->keep_alive) {
        c->closing = 1;
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    c->scan = 0;
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        read_cb(c->bev, c);
}

/* Writes a complete response with body (len bytes). */
static void reply(struct admin_conn *c, int status, const char *ctype, const char *body, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(
        out,
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
        "%s\r\n",
        status, respond_reason(status), ctype, len, c->keep_alive ? "" : "Connection: close\r\n");
    evbuffer_add(out, body, len);
    answered(c);
}

static void reply_text(struct admin_conn *c, int status, const char *text)
{
    reply(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Writes JSON (a new reference, consumed); 500 when it is NULL. */
static void reply_json(struct admin_conn *c, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(j);
    if (!s) {
        reply_text(c, 500, "out of memory\n");
        return;
    }
    reply(c, 200, "application/json", s, strlen(s));
    free(s);
}

/* ---- the pages ---------------------------------------------------------------------- */

static void metrics_page(struct admin_conn *c)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        reply_text(c, 500, "out of memory\n");
        return;
    }
    metrics_write(c->admin->node, b);
    size_t len = evbuffer_get_length(b);
    reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *)evbuffer_pullup(b, -1), len);
    evbuffer_free(b);
}

static void peer_json(const char *node, const char *addr, void *ud)
{
    json_array_append_new(ud, json_pack("{s:s, s:s}", "node", node, "addr", addr));
}

static json_t *peers_json(struct node *n)
{
    json_t *peers = json_array();
    if (n->cluster)
        cluster_registry_members(n->cluster, peer_json, peers);
    size_t i;
    json_t *p;
    json_array_foreach(peers, i, p)
    {
        json_object_set_new(p, "link",
                            json_string(links_state(n, json_string_value(json_object_get(p, "node")))));
    }
    return peers;
}

/* The value of query parameter name in the target, as an integer (def when absent or bad). */
static long query_long(const struct http1_request *r, const char *name, long def, long max);

static void status_page(struct admin_conn *c, const struct http1_request *r)
{
    struct node *n = c->admin->node;
    struct cluster_registry_stats cs;
    memset(&cs, 0, sizeof cs);
    if (n->cluster)
        cluster_registry_stats(n->cluster, &cs);
    long offset = query_long(r, "offset", 0, 1L << 30),
         limit = query_long(r, "limit", ADMIN_PAGE_DEFAULT, ADMIN_PAGE_MAX);
    json_t *j = json_pack(
        "{s:s, s:s, s:f, s:s, s:b, s:{s:b, s:b}, s:o, s:I, s:I, s:I, s:o}", "node",
        n->node_id[0] ? n->node_id : "standalone", "version", NODE_VERSION, "uptime_seconds",
        (double)(util_wall_ms() - n->start_wall_ms) / 1000.0, "mode", n->cluster ? "cluster" : "standalone",
        "draining", n->draining, "redis", "configured", n->cluster != NULL, "up", cs.redis_up, "peers",
        peers_json(n), "workers_total", (json_int_t)workers_count(n), "offset", (json_int_t)offset, "limit",
        (json_int_t)limit, "workers", workers_json(n, (size_t)offset, (size_t)limit));
    reply_json(c, j);
}

static json_t *node_json(const struct cluster_node_info *x)
{
    return json_pack("{s:s, s:s, s:b, s:s, s:o}", "node", x->node, "addr", x->addr ? x->addr : "", "self",
                     x->self, "state", x->known && x->draining ? "draining" : "up", "workers",
                     x->known ? json_integer(x->workers) : json_null());
}

static void info_cb(struct cluster_registry *reg, int result, const struct cluster_node_info *nodes,
                    size_t count, void *ud)
{
    struct admin_conn *c = ud;
    c->info = NULL;
    if (result != 0) {
        reply_text(c, 502, "the cluster registry did not answer\n");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(arr, node_json(&nodes[i]));
    reply_json(c, json_pack("{s:b, s:b, s:o}", "cluster", 1, "redis_up", 1, "nodes", arr));
}

static void cluster_page(struct admin_conn *c)
{
    struct node *n = c->admin->node;
    if (!n->cluster) {
        json_t *self =
            json_pack("{s:s, s:s, s:b, s:s, s:I}", "node", "standalone", "addr", "", "self", 1, "state",
                      n->draining ? "draining" : "up", "workers", (json_int_t)workers_count(n));
        reply_json(c, json_pack("{s:b, s:[o]}", "cluster", 0, "nodes", self));
        return;
    }
    int rc = cluster_registry_cluster_info(n->cluster, info_cb, c, &c->info);
    if (rc == 0)
        return; /* info_cb answers */
    c->info = NULL;
    if (rc == CLUSTER_E_DOWN) { /* what this node knows */
        json_t *peers = peers_json(n);
        reply_json(c, json_pack("{s:b, s:b, s:o, s:s}", "cluster", 1, "redis_up", 0, "peers", peers, "error",
                                cluster_strerror(rc)));
        return;
    }
    reply_text(c, 503, cluster_strerror(rc));
}

static void requests_page(struct admin_conn *c, const char *id, size_t len)
{
    json_t *j = util_valid_worker_id(id, len) ? workers_requests_json(c->admin->node, id, len) : NULL;
    if (!j) {
        reply_text(c, 404, "this node has no such worker\n");
        return;
    }
    reply_json(c, j);
}

/* ---- requests ------------------------------------------------------------------------- */

/* The target's path, without the query. */
static size_t path_len(const struct http1_request *r)
{
    const char *q = r->path_len ? memchr(r->path, '?', r->path_len) : NULL;
    return q ? (size_t)(q - r->path) : r->path_len;
}

/* The raw value of query parameter name (*len bytes), or NULL. */
static const char *query(const struct http1_request *r, const char *name, size_t *len)
{
    const char *q = r->path_len ? memchr(r->path, '?', r->path_len) : NULL, *end = r->path + r->path_len;
    size_t nl = strlen(name);
    while (q && q < end) {
        const char *k = q + 1, *amp = memchr(k, '&', (size_t)(end - k));
        const char *e = amp ? amp : end;
        if ((size_t)(e - k) > nl && memcmp(k, name, nl) == 0 && k[nl] == '=') {
            *len = (size_t)(e - k - nl - 1);
            return k + nl + 1;
        }
        q = amp;
    }
    return NULL;
}

static long query_long(const struct http1_request *r, const char *name, long def, long max)
{
    size_t len;
    const char *v = query(r, name, &len);
    long x = 0;
    if (!v || len == 0 || len > 9)
        return def;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return def;
        x = x * 10 + (v[i] - '0');
    }
    return x > max ? max : x;
}

/* The admin token, if one is set: from "Authorization: Bearer" or ?token=. */
static int authorized(const struct node *n, const struct http1_request *r)
{
    const char *want = n->cfg->admin_token;
    size_t wl = strlen(want), gl = 0;
    if (wl == 0)
        return 1;
    const struct http1_header *az = http1_find_header(&r->headers, "authorization");
    const char *got = NULL;
    if (az && az->value_len > 7 && strncasecmp(az->value, "Bearer ", 7) == 0) {
        got = az->value + 7;
        gl = az->value_len - 7;
    } else {
        got = query(r, "token", &gl);
    }
    return got && gl == wl && CRYPTO_memcmp(got, want, wl) == 0;
}

static int path_eq(const struct http1_request *r, const char *p)
{
    size_t n = strlen(p);
    return path_len(r) == n && memcmp(r->path, p, n) == 0;
}

static void serve(struct admin_conn *c, const struct http1_request *r)
{
    struct node *n = c->admin->node;
    static const char wprefix[] = "/workers/", wsuffix[] = "/requests";
    size_t pl = path_len(r), sl = sizeof wsuffix - 1;
    if (r->method_id != HTTP1_METHOD_GET)
        reply_text(c, 405, "GET only\n");
    else if (path_eq(r, "/healthz"))
        reply_text(c, 200, "ok\n");
    else if (path_eq(r, "/readyz"))
        reply_text(c, n->draining ? 503 : 200, n->draining ? "draining\n" : "ready\n");
    else if (path_eq(r, "/metrics"))
        metrics_page(c);
    else if (!authorized(n, r))
        reply_text(c, 401,
                   "this page needs the admin token (WHT_ADMIN_TOKEN): Authorization: Bearer or ?token=\n");
    else if (path_eq(r, "/status"))
        status_page(c, r);
    else if (path_eq(r, "/cluster"))
        cluster_page(c);
    else if (path_eq(r, "/dashboard") || path_eq(r, "/"))
        reply(c, 200, "text/html; charset=utf-8", node_dashboard_html, node_dashboard_html_len);
    else if (pl > sizeof wprefix - 1 + sl && memcmp(r->path, wprefix, sizeof wprefix - 1) == 0 &&
             memcmp(r->path + pl - sl, wsuffix, sl) == 0)
        requests_page(c, r->path + sizeof wprefix - 1, pl - (sizeof wprefix - 1) - sl);
    else
        reply_text(c, 404,
                   "not found: /metrics, /healthz, /readyz, /status, /cluster, /workers/<id>/requests, "
                   "/dashboard\n");
}

static void read_cb(struct bufferevent *bev, void *ud)
{
    struct admin_conn *c = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->closing || c->info)
        return; /* one request at a time */
    size_t len = evbuffer_get_length(in);
    if (len > ADMIN_HEAD_MAX + 1)
        len = ADMIN_HEAD_MAX + 1;
    const char *p = (const char *)evbuffer_pullup(in, (ssize_t)len);
    struct http1_request r;
    int rc = http1_parse_request_from(p, len, &r, ADMIN_HEAD_MAX, &c->scan);
    if (rc == HTTP1_INCOMPLETE)
        return;
    if (rc < 0) {
        c->keep_alive = 0;
        reply_text(c, http1_request_error_status(rc), http1_strerror(rc));
        return;
    }
    /* the request stays valid while it is served: its bytes are drained after */
    c->keep_alive = r.keep_alive;
    char *head = malloc((size_t)rc);
    if (!head) {
        conn_free(c);
        return;
    }
    memcpy(head, p, (size_t)rc);
    evbuffer_drain(in, (size_t)rc);
    http1_parse_request(head, (size_t)rc, &r, (size_t)rc);
    serve(c, &r);
    free(head);
}

static void write_cb(struct bufferevent *bev, void *ud)
{
    struct admin_conn *c = ud;
    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(c);
}

static void event_cb(struct bufferevent *bev, short what, void *ud)
{
    conn_free(ud);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *ud)
{
    struct admin *a = ud;
    struct admin_conn *c = a->nconns < ADMIN_MAX_CONNS ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->admin = a;
    c->bev = bufferevent_socket_new(a->node->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    LIST_INSERT_HEAD(&a->conns, c, entry);
    a->nconns++;
    struct timeval tv = {ADMIN_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_HEAD_MAX + 2);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- start and stop --------------------------------------------------------------------- */

int admin_start(struct node *n)
{
    const struct config *cfg = n->cfg;
    char addr[300];
    if (strcmp(cfg->admin_addr, "off") == 0)
        return 0;
    if (cfg->admin_addr[0])
        snprintf(addr, sizeof addr, "%s", cfg->admin_addr);
    else
        util_hostport_format(addr, sizeof addr, "127.0.0.1", cfg->port ? (int)cfg->port + 2 : 0);
    struct sockaddr_storage ss;
    int sslen;
    if (net_parse_sockaddr(addr, UTIL_HP_PORT_ZERO, &ss, &sslen) != 0) {
        fprintf(stderr, "whtunnel: bad admin address '%s' (WHT_ADMIN_ADDR / --admin-addr): an IP and port\n",
                addr);
        return -1;
    }
    struct admin *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    a->node = n;
    LIST_INIT(&a->conns);
    n->admin = a;
    a->listener = evconnlistener_new_bind(n->base, accept_cb, a, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
                                          64, (struct sockaddr *)&ss, sslen);
    if (!a->listener && !cfg->admin_addr[0]) { /* the default address is taken: run without */
        LOG_W("no admin listener: cannot listen on %s (the default: PORT + 2): %s; set WHT_ADMIN_ADDR", addr,
              strerror(errno));
        return 0;
    }
    if (!a->listener) {
        fprintf(stderr,
                "whtunnel: cannot listen for admin requests on %s (WHT_ADMIN_ADDR / --admin-addr): %s\n",
                addr, strerror(errno));
        return -1;
    }
    a->port = net_bound_port(evconnlistener_get_fd(a->listener));
    LOG_I("admin listener on %s (port %d): /metrics /healthz /readyz /status /cluster /dashboard%s", addr,
          a->port, cfg->admin_token[0] ? " (token required for the pages)" : "");
    return 0;
}

void admin_stop(struct node *n)
{
    struct admin *a = n->admin;
    if (!a)
        return;
    while (!LIST_EMPTY(&a->conns))
        conn_free(LIST_FIRST(&a->conns));
    if (a->listener)
        evconnlistener_free(a->listener);
    free(a);
    n->admin = NULL;
}

int admin_port(const struct node *n)
{
    return n->admin ? n->admin->port : 0;
}
