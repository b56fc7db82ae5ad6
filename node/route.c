/* What answers a viewer's request head: the Dockerflow and cluster
 * endpoints, worker registration, routing by domain or path to a local
 * worker, or (in a cluster) to the node that holds it: the route cache or
 * Redis says which, and the request goes over the link to that node. The
 * streaming itself is proxy.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/registry.h"
#include "node/log.h"
#include "node/node.h"
#include "util/util.h"

static int path_is(const struct http1_request *r, const char *p)
{
    size_t n = strlen(p), len = r->path_len;
    const char *q = memchr(r->path, '?', len);
    if (q)
        len = (size_t)(q - r->path);
    return len == n && memcmp(r->path, p, n) == 0;
}

static const struct http1_header *header(const struct viewer *v, const char *name)
{
    return http1_find_header(&v->req.headers, name);
}

/* ---- registration ----------------------------------------------------- */

static void client_url(struct viewer *v, const char *id, char *out, size_t cap)
{
    const struct config *cfg = v->node->cfg;
    const char *scheme = v->tls ? "https" : "http";
    if (cfg->domain && cfg->domain[0]) {
        /* domain mode: <scheme>://<id>.<domain>, the scheme (and port) of the
         * URL prefix when one is configured */
        const char *port = "";
        if (cfg->url_prefix && cfg->url_prefix[0]) {
            scheme = strncmp(cfg->url_prefix, "https:", 6) == 0 ? "https" : "http";
            const char *h = strstr(cfg->url_prefix, "://");
            h = h ? h + 3 : cfg->url_prefix;
            const char *c = strchr(h, ':');
            if (c)
                port = c;
        }
        size_t plen = strcspn(port, "/");
        snprintf(out, cap, "%s://%s.%s%.*s", scheme, id, cfg->domain, (int)plen, port);
        return;
    }
    if (cfg->url_prefix && cfg->url_prefix[0]) {
        size_t n = strlen(cfg->url_prefix);
        while (n > 0 && cfg->url_prefix[n - 1] == '/')
            n--;
        snprintf(out, cap, "%.*s/%s", (int)n, cfg->url_prefix, id);
        return;
    }
    snprintf(out, cap, "%s://%.*s/%s", scheme, (int)v->req.host_len, v->req.host ? v->req.host : "", id);
}

static void register_worker(struct viewer *v, const struct http1_header *idh)
{
    struct node *n = v->node;
    char id[NODE_MAX_ID + 1];
    if (!util_valid_worker_id(idh->value, idh->value_len)) {
        viewer_fail(v, 400, "Bad Request", "invalid worker id\n");
        return;
    }
    memcpy(id, idh->value, idh->value_len);
    id[idh->value_len] = 0;
    const struct http1_header *az = header(v, "authorization");
    const char *tok;
    size_t tok_len;
    int brc = az ? token_parse_bearer(az->value, az->value_len, &tok, &tok_len) : TOKEN_E_BEARER;
    if (brc == TOKEN_E_TOO_LONG) {
        viewer_fail(v, 401, "Unauthorized", "invalid token\n");
        return;
    }
    if (brc != 0) {
        viewer_fail(v, 400, "Bad Request", "missing or malformed Authorization: Bearer token\n");
        return;
    }
    struct ws_header hs[HTTP1_MAX_HEADERS];
    node_ws_headers(&v->req.headers, hs);
    const char *wskey;
    size_t wskey_len;
    int rc = ws_check_request(v->req.method, v->req.method_len, v->req.version_minor, hs,
                              v->req.headers.count, &wskey, &wskey_len);
    if (rc == WS_E_NOT_UPGRADE || rc == WS_E_BAD_METHOD) {
        viewer_fail(v, 404, "Not Found", "registration needs a WebSocket upgrade\n");
        return;
    }
    if (rc != 0) {
        viewer_fail(v, 400, "Bad Request", ws_strerror(rc));
        return;
    }
    struct token_claims claims;
    rc = token_verify(&n->keys, tok, tok_len, id, strlen(id), (int64_t)time(NULL), &claims);
    if (rc != 0) {
        LOG_I("conn=%llu worker=%s registration refused: %s", (unsigned long long)v->serial, id,
              token_strerror(rc));
        viewer_fail(v, 401, "Unauthorized", "invalid token\n");
        return;
    }
    char accept[29];
    if (ws_accept_key(wskey, wskey_len, accept) != 0) {
        viewer_fail(v, 400, "Bad Request", "bad Sec-WebSocket-Key\n");
        return;
    }
    const struct http1_header *ext = header(v, "x-whtunnel-ext");
    int use_ext = ext && ext->value_len == 1 && ext->value[0] == '1';
    char url[600], extra[1400], resp[2048];
    client_url(v, id, url, sizeof url);
    snprintf(extra, sizeof extra, "X-Webhooktunnel-Client-Url: %s\r\nX-Websocktunnel-Client-Url: %s\r\n%s",
             url, url, use_ext ? "X-Whtunnel-Ext: 1\r\n" : "");
    int len = ws_format_response_101(resp, sizeof resp, accept, extra);
    if (len <= 0) {
        viewer_fail(v, 500, "Internal Server Error", "response too large\n");
        return;
    }
    evbuffer_add(bufferevent_get_output(v->bev), resp, (size_t)len);
    n->stats.registrations++;
    LOG_I("conn=%llu worker=%s registered (%s, url %s)", (unsigned long long)v->serial, id,
          use_ext ? "ext" : "compat", url);
    struct bufferevent *bev = v->bev;
    v->bev = NULL; /* the worker owns it now */
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    viewer_free(v);
    worker_start(n, bev, id, strlen(id), use_ext);
}

/* ---- relaying to the node that holds the worker ----------------------- */

static void relay_attach(struct viewer *v, const struct cluster_route *rt)
{
    struct worker *link = peer_link_get(v->node, rt->node, rt->addr);
    if (!link) {
        viewer_fail(v, 502, "Bad Gateway", "the node that holds this worker cannot be reached\n");
        return;
    }
    v->node->stats.relayed_out++;
    v->worker = link;
    v->state = V_WAIT;
    if (worker_attach(link, v) != 0) {
        v->worker = NULL;
        viewer_fail(v, 502, "Bad Gateway", "the node that holds this worker is going away\n");
    }
}

static void lookup_cb(struct cluster_registry *reg, int result, const struct cluster_route *rt, void *ud)
{
    struct viewer *v = ud;
    v->lookup = NULL;
    if (result == 1)
        relay_attach(v, rt);
    else if (result == 0)
        viewer_fail(v, 404, "Not Found", "No client is connected with that id\n");
    else
        viewer_fail(v, 502, "Bad Gateway", "the cluster registry did not answer\n");
}

/* Finds the node that holds v->worker_id (the route cache, else Redis) and relays to it. */
void viewer_relay_route(struct viewer *v)
{
    struct cluster_route rt;
    struct cluster_lookup *h = NULL;
    int rc =
        cluster_registry_lookup(v->node->cluster, v->worker_id, strlen(v->worker_id), &rt, lookup_cb, v, &h);
    if (rc == 1) {
        relay_attach(v, &rt);
    } else if (rc == 0) {
        v->lookup = h;
        v->state = V_WAIT; /* reading stays on: a viewer that leaves is noticed */
    } else {
        LOG_D("conn=%llu worker=%s lookup failed: %s", (unsigned long long)v->serial, v->worker_id,
              cluster_strerror(rc));
        if (rc == CLUSTER_E_DOWN)
            viewer_fail(v, 502, "Bad Gateway",
                        "No client is connected with that id here, and the cluster registry "
                        "is unreachable\n");
        else
            viewer_fail(v, 502, "Bad Gateway", "the cluster registry cannot take the request\n");
    }
}

/* A relayed request for a worker this node does not hold: the sender asks
 * the registry again (and retries once) when it sees the marker. */
static void relay_miss(struct viewer *v)
{
    static const char body[] = "No client is connected with that id\n";
    v->node->stats.responses_4xx++;
    evbuffer_add_printf(bufferevent_get_output(v->bev),
                        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: %zu\r\nCache-Control: no-store\r\nX-Whtunnel-Relay: miss\r\n"
                        "Connection: close\r\n\r\n%s",
                        sizeof body - 1, body);
    viewer_finish(v);
}

static void cluster_status(struct viewer *v)
{
    struct node *n = v->node;
    char buf[1024];
    if (!n->cluster) {
        snprintf(buf, sizeof buf, "{\"cluster\":false}\n");
    } else {
        struct cluster_registry_stats st;
        struct worker *w;
        unsigned links = 0;
        cluster_registry_stats(n->cluster, &st);
        TAILQ_FOREACH(w, &n->peers, peer_link)
        links++;
        snprintf(buf, sizeof buf,
                 "{\"cluster\":true,\"node\":\"%s\",\"redis_up\":%s,\"workers\":%u,\"held\":%zu,"
                 "\"peers_up\":%zu,\"links\":%u,\"cache_routes\":%zu,\"cache_bytes\":%zu,"
                 "\"cache_max_routes\":%zu,\"cache_max_bytes\":%zu,\"cache_hits\":%llu,"
                 "\"cache_misses\":%llu,\"lookups_redis\":%llu,\"takeovers\":%llu,\"relayed_out\":%llu,"
                 "\"relayed_in\":%llu,\"relay_misses\":%llu,\"relay_retries\":%llu}\n",
                 n->node_id, st.redis_up ? "true" : "false", n->nworkers, st.held, st.peers_up, links,
                 st.cache_routes, st.cache_bytes, st.cache_max_routes, st.cache_max_bytes,
                 (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses,
                 (unsigned long long)st.lookups_redis, (unsigned long long)st.takeovers,
                 (unsigned long long)n->stats.relayed_out, (unsigned long long)n->stats.relayed_in,
                 (unsigned long long)n->stats.relay_misses, (unsigned long long)n->stats.relay_retries);
    }
    node_respond(v->bev, 200, "OK", "application/json", buf, !v->keep_alive);
}

void viewer_route(struct viewer *v)
{
    struct node *n = v->node;
    const struct config *cfg = n->cfg;
    const struct http1_request *r = &v->req;
    if (n->draining && path_is(r, "/__lbheartbeat__")) { /* load balancers: send nothing new here */
        node_respond(v->bev, 503, "Service Unavailable", "application/json", "{\"status\":\"draining\"}\n",
                     1);
        v->keep_alive = 0;
        goto answered;
    }
    if (path_is(r, "/__lbheartbeat__") || path_is(r, "/__heartbeat__")) {
        node_respond(v->bev, 200, "OK", "application/json", "{\"status\":\"ok\"}\n", !v->keep_alive);
        goto answered;
    }
    if (path_is(r, "/__version__")) {
        node_respond(v->bev, 200, "OK", "application/json",
                     "{\"source\":\"webhooktunnel-c\",\"version\":\"" NODE_VERSION "\",\"commit\":\"\","
                     "\"build\":\"\"}\n",
                     !v->keep_alive);
        goto answered;
    }
    if (path_is(r, "/__cluster__")) {
        cluster_status(v);
        goto answered;
    }
    const struct http1_header *idh = header(v, "x-websocktunnel-id");
    if (!idh)
        idh = header(v, "x-webhooktunnel-id");
    if (idh && path_is(r, "/")) {
        viewer_release_stream(v);
        if (v->relayed) { /* a worker registers with the node it dialed, never through a peer */
            viewer_fail(v, 400, "Bad Request", "registration cannot be relayed\n");
            return;
        }
        if (n->draining) {
            viewer_fail(v, 503, "Service Unavailable", "this node is draining: register with another one\n");
            return;
        }
        register_worker(v, idh);
        return;
    }
    /* which worker: <id>.<domain> in the Host, else the first path segment */
    const char *id = NULL;
    size_t id_len = 0;
    v->path_mode = 0;
    const char *path = r->path_len ? r->path : "/";
    size_t path_len = r->path_len ? r->path_len : 1;
    if (cfg->domain && cfg->domain[0] && r->host) {
        size_t hl = r->host_len, dl = strlen(cfg->domain);
        const char *colon = memchr(r->host, ':', hl);
        if (colon)
            hl = (size_t)(colon - r->host);
        if (hl > dl + 1 && r->host[hl - dl - 1] == '.' &&
            strncasecmp(r->host + hl - dl, cfg->domain, dl) == 0) {
            id = r->host;
            id_len = hl - dl - 1;
        }
    }
    free(v->fwd_path);
    v->fwd_path = malloc(path_len + 2);
    char *route_path = v->fwd_path;
    size_t route_path_len;
    if (id) {
        memcpy(route_path, path, path_len);
        route_path_len = path_len;
        if (route_path[0] == '?') { /* absolute-form with no path */
            memmove(route_path + 1, route_path, route_path_len);
            route_path[0] = '/';
            route_path_len++;
        }
    } else {
        v->path_mode = 1;
        if (path[0] != '/') {
            viewer_fail(v, 404, "Not Found", "not found\n");
            return;
        }
        id = path + 1;
        while (id_len < path_len - 1 && id[id_len] != '/' && id[id_len] != '?')
            id_len++;
        const char *rest = id + id_len;
        size_t rest_len = path_len - 1 - id_len;
        route_path_len = 0;
        if (rest_len == 0 || rest[0] == '?')
            route_path[route_path_len++] = '/';
        memcpy(route_path + route_path_len, rest, rest_len);
        route_path_len += rest_len;
    }
    v->fwd_path_len = route_path_len;
    if (id_len == 0 || !util_valid_worker_id(id, id_len)) {
        viewer_fail(v, 404, "Not Found", "not found\n");
        return;
    }
    struct worker *w = node_find_worker(n, id, id_len);
    if (!w && n->draining) {
        viewer_release_stream(v);
        memcpy(v->worker_id, id, id_len);
        v->worker_id[id_len] = 0;
        int rc = peer_park(n, v);
        if (rc == 0)
            return; /* the worker left this node moments ago: wait for its next one */
        if (rc == 1) {
            viewer_relay_route(v); /* it has a new home: follow it (even from a relayed request) */
            return;
        }
    }
    if (!w && v->relayed) {
        viewer_release_stream(v);
        v->node->stats.relay_misses++;
        relay_miss(v); /* never relayed twice */
        return;
    }
    if (!w && n->cluster) {
        if (v->stream && v->stream_reusable && v->worker && v->worker->kind == SESSION_PEER &&
            strlen(v->worker_id) == id_len && memcmp(v->worker_id, id, id_len) == 0) {
            viewer_send_request(v); /* keep-alive through the same peer stream */
            return;
        }
        viewer_release_stream(v);
        memcpy(v->worker_id, id, id_len);
        v->worker_id[id_len] = 0;
        viewer_relay_route(v);
        return;
    }
    if (!w) {
        viewer_release_stream(v);
        viewer_fail(v, 404, "Not Found", "No client is connected with that id\n");
        return;
    }
    if (v->stream && v->stream_reusable && v->worker == w) {
        viewer_send_request(v); /* keep-alive: same worker, same stream, same backend connection */
        return;
    }
    viewer_release_stream(v);
    memcpy(v->worker_id, id, id_len);
    v->worker_id[id_len] = 0;
    v->worker = w;
    v->state = V_WAIT; /* reading stays on: a viewer that leaves is noticed (EOF) while it waits */
    if (worker_attach(w, v) != 0) {
        v->worker = NULL;
        viewer_fail(v, 502, "Bad Gateway", "the worker is going away\n");
    }
    return;
answered:
    if (!v->keep_alive)
        viewer_finish(v);
    else
        viewer_next_head(v);
}
