/* workers: registration, the table of connected workers, their sessions
 * (see workers.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "node/log.h"
#include "node/node.h"
#include "node/respond.h"
#include "node/token.h"
#include "node/workers.h"

#include <jansson.h>
#include "util/htab.h"
#include "util/util.h"

/* One connected worker: its place in the table and its session. Freed when
 * the session is (freed_cb). */
struct worker {
    struct util_hnode h; /* key: id */
    struct node *node;
    struct wsmux *ws;
    uint64_t serial;
    int64_t since_ms; /* wall clock at registration */
    uint64_t requests, bytes_in, bytes_out;
    struct ring *ring; /* recent requests, from the first one on */
    unsigned in_table : 1;
    unsigned replaced : 1; /* a newer registration holds the id: the registry record is not ours to drop */
    unsigned client : 2;   /* enum client */
    char id[];
};

/* The generation of a worker's client, as its registration shows it. */
enum client { CLIENT_WHCLIENT, CLIENT_WEBSOCKTUNNEL, CLIENT_WEBHOOKTUNNEL };
static const char *const client_names[] = {"whclient", "websocktunnel", "webhooktunnel"};

/* A remembered request (fixed size: the ring is one allocation). */
struct ring_entry {
    int64_t time_ms;
    double duration_ms;
    uint64_t bytes_in, bytes_out;
    int status;
    uint8_t relayed;
    char method[16];
    char path[WORKERS_RING_PATH];
    char request_id[65];
};

struct ring {
    unsigned next, count;
    struct ring_entry e[WORKERS_RING];
};

struct workers {
    struct util_htab tab;
    const struct workers_events *ev;
};

static void table_remove(struct workers *ws, struct worker *w)
{
    if (w->in_table) {
        util_htab_remove(&ws->tab, &w->h);
        w->in_table = 0;
    }
}

static struct worker *find(struct workers *ws, const char *id, size_t len)
{
    if (len > UTIL_MAX_ID_LEN)
        return NULL;
    struct util_hnode *h = util_htab_find(&ws->tab, id, len, util_htab_hash(&ws->tab, id, len));
    return (struct worker *)h;
}

int workers_init(struct node *n, const struct workers_events *ev)
{
    struct workers *ws = calloc(1, sizeof *ws);
    if (!ws)
        return -1;
    util_htab_init(&ws->tab, offsetof(struct worker, id), util_random_seed(), (size_t)1 << 24);
    ws->ev = ev;
    n->workers = ws;
    return 0;
}

uint32_t workers_count(const struct node *n)
{
    return n->workers ? (uint32_t)n->workers->tab.n : 0;
}

struct wsmux *workers_find(struct node *n, const char *id, size_t len)
{
    struct worker *w = find(n->workers, id, len);
    return w ? w->ws : NULL;
}

/* Every worker in the table, for a loop that may close them. */
static struct worker **snapshot(struct workers *ws, size_t *count)
{
    struct worker **all = calloc(ws->tab.n + 1, sizeof *all);
    size_t k = 0;
    for (size_t i = 0; all && i < ws->tab.nb; i++)
        for (struct util_hnode *h = ws->tab.b[i]; h && k < ws->tab.n; h = h->next)
            all[k++] = (struct worker *)h;
    *count = k;
    return all;
}

void workers_free(struct node *n)
{
    struct workers *ws = n->workers;
    if (!ws)
        return;
    size_t k;
    struct worker **all = snapshot(ws, &k);
    for (size_t i = 0; i < k; i++)
        wsmux_close(all[i]->ws, WSMUX_END_STOPPING, "node stopping");
    free(all);
    util_htab_free(&ws->tab);
    free(ws);
    n->workers = NULL;
}

/* ---- a worker's session ---------------------------------------------------- */

static void session_closed(struct wsmux *s, enum wsmux_end end, void *ud)
{
    struct worker *w = ud;
    struct node *n = w->node;
    table_remove(n->workers, w);
    n->stats.workers--;
    if ((unsigned)end < NODE_END_KINDS)
        n->stats.sessions_closed[end]++;
    struct wsmux_waiter_list waiting;
    TAILQ_INIT(&waiting);
    wsmux_take_waiters(s, &waiting);
    if (n->workers->ev->closed_cb)
        n->workers->ev->closed_cb(n, w->id, w->replaced, &waiting);
    struct wsmux_waiter *wt;
    while ((wt = TAILQ_FIRST(&waiting))) {
        TAILQ_REMOVE(&waiting, wt, link);
        wt->ready_cb(wt, NULL, WSMUX_WAIT_GONE);
    }
}

static void session_freed(struct wsmux *s, void *ud)
{
    struct worker *w = ud;
    free(w->ring);
    free(w);
}

static const struct wsmux_events worker_events = {
    .closed_cb = session_closed,
    .freed_cb = session_freed,
};

static struct worker *worker_start(struct node *n, struct bufferevent *bev, const char *id, int ext,
                                   enum client client)
{
    size_t len = strlen(id);
    struct worker *w = calloc(1, sizeof *w + len + 1);
    if (!w) {
        bufferevent_free(bev);
        return NULL;
    }
    memcpy(w->id, id, len + 1);
    w->node = n;
    w->serial = ++n->next_serial;
    w->since_ms = util_wall_ms();
    w->client = client;
    struct wsmux_options o = {.role = WSMUX_WORKER, .ext = ext, .name = w->id, .serial = w->serial};
    w->ws = wsmux_new(n, bev, &o, &worker_events, w);
    if (!w->ws) {
        free(w);
        return NULL;
    }
    struct worker *old = find(n->workers, id, len);
    if (old) {
        old->replaced = 1; /* the registry record passes to the new session */
        wsmux_close(old->ws, WSMUX_END_REPLACED, "replaced by a new registration");
    }
    w->h.klen = (uint16_t)len;
    w->h.hash = util_htab_hash(&n->workers->tab, id, len);
    if (util_htab_insert(&n->workers->tab, &w->h) == 0)
        w->in_table = 1;
    n->stats.workers++;
    n->stats.sessions_opened++;
    if (n->workers->ev->registered_cb)
        n->workers->ev->registered_cb(n, w->id);
    wsmux_begin(w->ws);
    return w;
}

/* ---- registration ------------------------------------------------------------ */

/* The URL the worker is reachable at, for the X-*-Client-Url headers. */
static void client_url(const struct node *n, const struct http1_request *req, int tls, const char *id,
                       char *out, size_t cap)
{
    const struct config *cfg = n->cfg;
    const char *scheme = tls ? "https" : "http";
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
        size_t k = strlen(cfg->url_prefix);
        while (k > 0 && cfg->url_prefix[k - 1] == '/')
            k--;
        snprintf(out, cap, "%.*s/%s", (int)k, cfg->url_prefix, id);
        return;
    }
    snprintf(out, cap, "%s://%.*s/%s", scheme, (int)req->host_len, req->host ? req->host : "", id);
}

/* What a worker's owner can do about a refused token. */
static const char *token_hint(int rc)
{
    switch (rc) {
    case TOKEN_E_SIGNATURE:
        return " (was the node's secret changed? TASKCLUSTER_PROXY_SECRET_A/B must be the one the token was "
               "made "
               "with)";
    case TOKEN_E_TID: return " (the token is for another worker id: make one for this id)";
    case TOKEN_E_EXPIRED: return " (get a new token)";
    case TOKEN_E_NOT_YET_VALID: return " (is this machine's clock, or the node's, wrong?)";
    case TOKEN_E_AUDIENCE: return " (the node checks AUDIENCE: the token needs that aud)";
    case TOKEN_E_WINDOW: return " (a token may be valid for 31 days at most)";
    default: return "";
    }
}

static int refuse(struct workers_refusal *why, int status, const char *body, enum node_reg outcome)
{
    why->status = status;
    why->body = body;
    why->outcome = outcome;
    return -1;
}

/* The bearer token and the WebSocket key of a registration, checked. */
static int check_request(const struct http1_request *req, const char **tok, size_t *tok_len, const char **key,
                         size_t *key_len, struct workers_refusal *why)
{
    const struct http1_header *az = http1_find_header(&req->headers, "authorization");
    int brc = az ? token_parse_bearer(az->value, az->value_len, tok, tok_len) : TOKEN_E_BEARER;
    if (brc == TOKEN_E_TOO_LONG) {
        snprintf(
            why->extra, sizeof why->extra,
            "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"token too long\"\r\n");
        return refuse(why, 401, "invalid token\n", NODE_REG_BAD_TOKEN);
    }
    if (brc != 0)
        return refuse(why, 400, "missing or malformed Authorization: Bearer token\n",
                      NODE_REG_BAD_AUTHORIZATION);
    struct ws_header hs[HTTP1_MAX_HEADERS];
    respond_ws_headers(&req->headers, hs);
    int rc = ws_check_request(req->method, req->method_len, req->version_minor, hs, req->headers.count, key,
                              key_len);
    if (rc == WS_E_NOT_UPGRADE || rc == WS_E_BAD_METHOD)
        return refuse(why, 404, "registration needs a WebSocket upgrade\n", NODE_REG_NOT_WEBSOCKET);
    if (rc != 0)
        return refuse(why, 400, ws_strerror(rc), NODE_REG_BAD_HANDSHAKE);
    return 0;
}

int workers_register(struct node *n, struct bufferevent *bev, const struct http1_request *req,
                     const struct http1_header *idh, int tls, uint64_t conn_serial,
                     struct workers_refusal *why)
{
    char id[UTIL_MAX_ID_LEN + 1];
    const char *tok, *wskey;
    why->extra[0] = 0; /* the refusals that need header lines write them */
    size_t tok_len, wskey_len;
    if (!util_valid_worker_id(idh->value, idh->value_len))
        return refuse(why, 400, "invalid worker id\n", NODE_REG_BAD_ID);
    memcpy(id, idh->value, idh->value_len);
    id[idh->value_len] = 0;
    if (check_request(req, &tok, &tok_len, &wskey, &wskey_len, why) != 0)
        return -1;
    struct token_claims claims;
    int rc = token_verify(&n->keys, tok, tok_len, id, strlen(id), (int64_t)time(NULL), &claims);
    if (rc != 0) {
        LOG_I("conn=%llu worker=%s registration refused: %s", (unsigned long long)conn_serial, id,
              token_strerror(rc));
        snprintf(why->text, sizeof why->text, "invalid token: %s%s\n", token_strerror(rc), token_hint(rc));
        /* the reason and the hint hold no '"' or '\\', as error_description requires */
        snprintf(why->extra, sizeof why->extra,
                 "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"%s%s\"\r\n",
                 token_strerror(rc), token_hint(rc));
        return refuse(why, 401, why->text, NODE_REG_BAD_TOKEN);
    }
    if (workers_count(n) >= (uint32_t)n->cfg->max_workers && !find(n->workers, id, strlen(id))) {
        LOG_W("conn=%llu worker=%s registration refused: this node holds %u workers (WHT_MAX_WORKERS)",
              (unsigned long long)conn_serial, id, workers_count(n));
        snprintf(why->extra, sizeof why->extra, "Retry-After: 5\r\n");
        return refuse(why, 503, "this node holds as many workers as it may: register with another node\n",
                      NODE_REG_FULL);
    }
    char accept[29];
    if (ws_accept_key(wskey, wskey_len, accept) != 0)
        return refuse(why, 400, "bad Sec-WebSocket-Key\n", NODE_REG_BAD_HANDSHAKE);
    const struct http1_header *ext = http1_find_header(&req->headers, "x-whtunnel-ext");
    int use_ext = ext && ext->value_len == 1 && ext->value[0] == '1';
    char url[600], extra[1400], resp[2048];
    client_url(n, req, tls, id, url, sizeof url);
    snprintf(extra, sizeof extra, "X-Webhooktunnel-Client-Url: %s\r\nX-Websocktunnel-Client-Url: %s\r\n%s",
             url, url, use_ext ? "X-Whtunnel-Ext: 1\r\n" : "");
    int len = ws_format_response_101(resp, sizeof resp, accept, extra);
    if (len <= 0)
        return refuse(why, 500, "response too large\n", NODE_REG_BAD_HANDSHAKE);
    evbuffer_add(bufferevent_get_output(bev), resp, (size_t)len);
    n->stats.reg[NODE_REG_OK]++;
    LOG_I("conn=%llu worker=%s registered (%s, url %s)", (unsigned long long)conn_serial, id,
          use_ext ? "ext" : "compat", url);
    enum client client = use_ext                                                  ? CLIENT_WHCLIENT
                         : http1_find_header(&req->headers, "x-websocktunnel-id") ? CLIENT_WEBSOCKTUNNEL
                                                                                  : CLIENT_WEBHOOKTUNNEL;
    worker_start(n, bev, id, use_ext, client);
    return 0;
}

/* ---- the cluster and the drain ------------------------------------------------- */

void workers_moved(struct node *n, const char *id, size_t len)
{
    struct worker *w = find(n->workers, id, len);
    if (!w)
        return;
    w->replaced = 1; /* the registry has forgotten it already */
    if (n->draining) {
        /* it moved before its session here ended: what is in flight
         * finishes, the rest follows it */
        LOG_I("worker=%s registered on another node: requests for it go there", w->id);
        table_remove(n->workers, w);
        wsmux_release_waiters(w->ws, WSMUX_WAIT_MOVED);
        wsmux_close_when_idle(w->ws, WSMUX_END_MOVED, "moved to another node");
        if (wsmux_streams(w->ws) == 0)
            wsmux_close(w->ws, WSMUX_END_MOVED, "moved to another node");
    } else {
        wsmux_close(w->ws, WSMUX_END_REPLACED, "a newer registration lives on another node");
    }
}

void workers_drain(struct node *n, int64_t deadline_ms)
{
    size_t k;
    struct worker **all = snapshot(n->workers, &k);
    for (size_t i = 0; i < k; i++) {
        struct worker *w = all[i];
        wsmux_drain(w->ws, deadline_ms);
        /* a worker that got GOAWAY closes by itself once its streams are
         * done; one that cannot (the original protocol) is closed here */
        if (!wsmux_ext(w->ws))
            wsmux_close_when_idle(w->ws, WSMUX_END_DRAINED, "drained: reconnect elsewhere");
    }
    free(all);
}

/* ---- what the workers did ------------------------------------------------------ */

/* Copies at most cap-1 bytes of src (len) into dst, NUL-terminated; a cut
 * string ends in "...". */
static void copy_cut(char *dst, size_t cap, const char *src, size_t len)
{
    if (len < cap) {
        memcpy(dst, src, len);
        dst[len] = 0;
        return;
    }
    memcpy(dst, src, cap - 4);
    memcpy(dst + cap - 4, "...", 4);
}

void workers_record(struct node *n, const char *id, size_t len, const struct workers_request *r)
{
    struct worker *w = n->workers ? find(n->workers, id, len) : NULL;
    if (!w)
        return;
    w->requests++;
    w->bytes_in += r->bytes_in;
    w->bytes_out += r->bytes_out;
    if (!w->ring && !(w->ring = calloc(1, sizeof *w->ring)))
        return;
    struct ring_entry *e = &w->ring->e[w->ring->next];
    w->ring->next = (w->ring->next + 1) % WORKERS_RING;
    if (w->ring->count < WORKERS_RING)
        w->ring->count++;
    e->time_ms = r->time_ms;
    e->duration_ms = r->duration_ms;
    e->bytes_in = r->bytes_in;
    e->bytes_out = r->bytes_out;
    e->status = r->status;
    e->relayed = (uint8_t)(r->relayed != 0);
    copy_cut(e->method, sizeof e->method, r->method, r->method_len);
    copy_cut(e->path, sizeof e->path, r->path, r->path_len);
    copy_cut(e->request_id, sizeof e->request_id, r->request_id ? r->request_id : "",
             r->request_id ? strlen(r->request_id) : 0);
}

/* "2026-12-01T20:00:01.123Z" for a wall-clock time in ms. */
static json_t *json_time(int64_t ms)
{
    char buf[40];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, sizeof buf - k, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

static int by_id(const void *a, const void *b)
{
    return strcmp((*(struct worker *const *)a)->id, (*(struct worker *const *)b)->id);
}

static json_t *worker_json(const struct worker *w)
{
    return json_pack("{s:s, s:o, s:s, s:I, s:I, s:I, s:I}", "id", w->id, "connected_since",
                     json_time(w->since_ms), "client", client_names[w->client], "streams",
                     (json_int_t)wsmux_streams(w->ws), "requests", (json_int_t)w->requests, "bytes_in",
                     (json_int_t)w->bytes_in, "bytes_out", (json_int_t)w->bytes_out);
}

json_t *workers_json(struct node *n, size_t offset, size_t limit)
{
    size_t k;
    struct worker **all = snapshot(n->workers, &k);
    json_t *arr = json_array();
    if (!all || !arr) {
        free(all);
        json_decref(arr);
        return NULL;
    }
    qsort(all, k, sizeof *all, by_id);
    for (size_t i = offset; i < k && i - offset < limit; i++)
        json_array_append_new(arr, worker_json(all[i]));
    free(all);
    return arr;
}

static json_t *entry_json(const struct ring_entry *e)
{
    return json_pack("{s:o, s:s, s:s, s:i, s:f, s:I, s:I, s:s, s:s}", "time", json_time(e->time_ms), "method",
                     e->method, "path", e->path, "status", e->status, "duration_ms", e->duration_ms,
                     "bytes_in", (json_int_t)e->bytes_in, "bytes_out", (json_int_t)e->bytes_out, "via",
                     e->relayed ? "relayed" : "local", "request_id", e->request_id);
}

json_t *workers_requests_json(struct node *n, const char *id, size_t len)
{
    struct worker *w = find(n->workers, id, len);
    if (!w)
        return NULL;
    json_t *arr = json_array();
    for (unsigned i = 0; w->ring && i < w->ring->count; i++) {
        unsigned k = (w->ring->next + WORKERS_RING - 1 - i) % WORKERS_RING; /* newest first */
        json_array_append_new(arr, entry_json(&w->ring->e[k]));
    }
    return json_pack("{s:s, s:b, s:o}", "worker", w->id, "connected", 1, "requests", arr);
}
