/* The registry's Redis connections: commands and subscriber to the master,
 * and with Redis Sentinel the two sentinel connections (discover.c says
 * where each goes and what their answers mean): resolving the host without
 * blocking (evdns), connecting with hiredis on the node's libevent loop, the
 * handshake (AUTH, SELECT, ROLE with sentinels, SCRIPT LOAD or SUBSCRIBE; on
 * a sentinel SENTINEL get-master-addr-by-name or SUBSCRIBE +switch-master),
 * failure and reconnection with jittered exponential backoff.
 *
 * hiredis 0.14 rules this code lives by:
 *   - after a failed connect the connect callback runs and hiredis frees the
 *     context itself; after a drop the disconnect callback runs and hiredis
 *     frees it itself: in both we only forget our pointer;
 *   - redisAsyncFree() inside one of the context's callbacks is deferred to
 *     the callback's return; it then calls every pending reply callback with
 *     a NULL reply (and every subscription callback once per channel);
 *   - in subscribed mode nothing but (P)(UN)SUBSCRIBE may be sent (PING's
 *     reply confuses it), so the subscriber's liveness is checked with a
 *     message the heartbeat publishes on this node's own ping channel.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/util.h>
#include <hiredis/adapters/libevent.h>

#include "cluster/registry_int.h"

static void conn__retry_cb(evutil_socket_t fd, short what, void *arg);

int reg__conn_init(struct cluster_registry *reg, struct cluster__conn *c, enum reg__conn_kind kind)
{
    memset(c, 0, sizeof(*c));
    c->reg = reg;
    c->kind = kind;
    c->backoff_ms = reg->reconnect_min_ms;
    c->timeout_ms =
        kind == REG_CONN_ASK || kind == REG_CONN_WATCH ? reg->sentinel_timeout_ms : reg->command_timeout_ms;
    c->retry_ev = evtimer_new(reg->base, conn__retry_cb, c);
    return c->retry_ev ? 0 : CLUSTER_E_NOMEM;
}

static const char *conn__name(const struct cluster__conn *c)
{
    static const char *const names[] = {"command", "subscriber", "sentinel query", "sentinel watch"};
    return names[c->kind];
}

int reg__addr_eq(const struct cluster_addr *a, const struct cluster_addr *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* xorshift64*, for backoff jitter only */
static uint64_t conn__rand(struct cluster_registry *reg)
{
    uint64_t x = reg->rng ? reg->rng : UINT64_C(0x2545f4914f6cdd1d);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    reg->rng = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

static void conn__schedule(struct cluster__conn *c)
{
    struct cluster_registry *reg = c->reg;
    int64_t d = c->backoff_ms;
    /* 75%..125% of the backoff, so that nodes do not reconnect in step */
    d = d * 3 / 4 + (int64_t)(conn__rand(reg) % (uint64_t)(d / 2 + 1));
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
    c->backoff_ms = c->backoff_ms * 2 > reg->reconnect_max_ms ? reg->reconnect_max_ms : c->backoff_ms * 2;
    c->state = REG_C_IDLE;
    evtimer_add(c->retry_ev, &tv);
}

/* Forgets the context and frees it unless hiredis is freeing it already. */
static void conn__drop_ac(struct cluster__conn *c, int hiredis_frees)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    if (ac) {
        ac->data = NULL;
        if (!hiredis_frees)
            redisAsyncFree(
                ac); /* pending callbacks run with NULL replies (now, or when the current one returns) */
    }
}

/* Abandons the resolution in progress (see struct reg__dns_ctx). */
static void conn__cancel_dns(struct cluster__conn *c)
{
    if (c->dns) {
        c->dns->c = NULL;
        c->dns = NULL;
    }
}

static void conn__failed(struct cluster__conn *c, int err, int hiredis_frees)
{
    struct cluster_registry *reg = c->reg;
    int was_ready = c->state == REG_C_READY;
    conn__cancel_dns(c);
    conn__drop_ac(c, hiredis_frees);
    c->last_err = err;
    c->state = REG_C_IDLE;
    if (reg->closing)
        return;
    reg->st.errors++;
    if (was_ready)
        reg__log(reg, CLUSTER_LOG_WARN, "redis %s connection lost: %s", conn__name(c), cluster_strerror(err));
    else
        reg__log(reg, CLUSTER_LOG_DEBUG, "redis %s connection attempt failed: %s", conn__name(c),
                 cluster_strerror(err));
    if (c->kind == REG_CONN_CMD)
        reg__cmd_down(reg, err);
    if (!reg->closing && c->state == REG_C_IDLE && !evtimer_pending(c->retry_ev, NULL) &&
        reg__sentinel_conn_failed(c, err))
        conn__schedule(c);
}

void reg__conn_fail(struct cluster__conn *c, int err)
{
    conn__failed(c, err, 0);
}

void reg__conn_done(struct cluster__conn *c)
{
    conn__cancel_dns(c);
    conn__drop_ac(c, 0);
    c->state = REG_C_IDLE;
    c->backoff_ms = c->reg->reconnect_min_ms;
}

void reg__conn_start_now(struct cluster__conn *c)
{
    if (c->state != REG_C_IDLE || c->reg->closing)
        return;
    evtimer_del(c->retry_ev);
    reg__conn_start(c);
}

void reg__conn_close(struct cluster__conn *c)
{
    conn__cancel_dns(c);
    conn__drop_ac(c, 0);
    if (c->retry_ev) {
        event_free(c->retry_ev);
        c->retry_ev = NULL;
    }
    c->state = REG_C_IDLE;
}

struct cluster__req *reg__req_new(struct cluster__conn *c, enum reg__req_kind kind)
{
    struct cluster__req *rq = calloc(1, sizeof(*rq));
    if (rq) {
        rq->reg = c->reg;
        rq->ac = c->ac;
        rq->kind = kind;
    }
    return rq;
}

/* 1 if r is Redis saying it is a replica now (READONLY: a demoted master). */
static int conn__readonly(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && r->len >= 8 && strncmp(r->str, "READONLY", 8) == 0;
}

static void conn__reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct cluster__req *rq = privdata;
    struct cluster_registry *reg = rq->reg;
    int readonly = conn__readonly(reply) && ac == reg->cmd.ac && reg->cmd.state == REG_C_READY;
    if (reply && ac == reg->cmd.ac)
        reg->cmd.heard_ms = util_now_ms();
    if (reply && ((redisReply *)reply)->type == REDIS_REPLY_ERROR && !reg->closing)
        reg->st.errors++;
    reg__reply(reg, rq, reply);
    if (readonly && !reg->closing && ac == reg->cmd.ac) {
        reg__log(reg, CLUSTER_LOG_ERROR, "redis at %s:%u is a replica now (READONLY): it is not the master",
                 reg->cmd.target.host, (unsigned)reg->cmd.target.port);
        reg__conn_fail(&reg->cmd, CLUSTER_E_NOT_MASTER);
    }
}

int reg__send(struct cluster__conn *c, struct cluster__req *rq, int argc, const char **argv,
              const size_t *lens)
{
    if (!c->ac || c->reg->closing) {
        free(rq);
        return CLUSTER_E_DOWN;
    }
    rq->ac = c->ac;
    if (redisAsyncCommandArgv(c->ac, conn__reply_cb, rq, argc, argv, lens) != REDIS_OK) {
        free(rq);
        return CLUSTER_E_DOWN;
    }
    c->reg->st.commands++;
    return 0;
}

/* ---- handshake -------------------------------------------------------------------------- */

/* One more handshake reply was fine: c is ready once all are in. */
static void conn__handshake_step(struct cluster__conn *c)
{
    struct cluster_registry *reg = c->reg;
    if (--c->handshake_left > 0)
        return;
    c->state = REG_C_READY;
    c->backoff_ms = reg->reconnect_min_ms;
    if (c->kind == REG_CONN_CMD || c->kind == REG_CONN_SUB)
        reg->st.reconnects++;
    reg__log(reg, CLUSTER_LOG_INFO, "redis %s connection ready (%s:%u)", conn__name(c), c->target.host,
             (unsigned)c->target.port);
    if (c->kind == REG_CONN_CMD || c->kind == REG_CONN_SUB)
        reg__sentinel_confirmed(c);
    if (c->kind == REG_CONN_CMD)
        reg__cmd_ready(reg);
    else if (c->kind == REG_CONN_SUB)
        reg__sub_ready(reg);
    else
        reg__watch_ready(reg);
}

static const char *conn__errstr(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply";
}

/* ROLE's answer on a CMD or SUB connection: 0 for a master. */
static int conn__role(struct cluster__conn *c, const redisReply *r)
{
    int role = 0, rc = cluster_reply_role(r, &role);
    if (rc == 0 && role == CLUSTER_ROLE_MASTER)
        return 0;
    if (rc == 0)
        reg__log(c->reg, CLUSTER_LOG_WARN, "redis at %s:%u is a %s, not a master: asking the sentinels again",
                 c->target.host, (unsigned)c->target.port,
                 role == CLUSTER_ROLE_REPLICA ? "replica" : "sentinel");
    else
        reg__log(c->reg, CLUSTER_LOG_ERROR, "redis at %s:%u refused ROLE: %.200s", c->target.host,
                 (unsigned)c->target.port, conn__errstr(r));
    return rc == CLUSTER_E_AUTH ? rc : CLUSTER_E_NOT_MASTER;
}

void reg__conn_handshake_reply(struct cluster__conn *c, struct cluster__req *rq, redisReply *r)
{
    int rc;
    if (!r || rq->ac != c->ac || c->state != REG_C_CONNECTING)
        return; /* an old context going away */
    switch (rq->kind) {
    case REQ_AUTH:
    case REQ_SELECT:
        rc = cluster_reply_ok(r);
        if (rc == CLUSTER_E_AUTH || (rc != 0 && rq->kind == REQ_AUTH)) {
            reg__log(c->reg, CLUSTER_LOG_ERROR, "redis refused AUTH: %.200s", conn__errstr(r));
            rc = CLUSTER_E_AUTH;
        } else if (rc != 0) {
            reg__log(c->reg, CLUSTER_LOG_ERROR, "redis refused SELECT %d: %.200s", c->reg->url.db,
                     conn__errstr(r));
        }
        break;
    case REQ_ROLE: rc = conn__role(c, r); break;
    case REQ_SCRIPT_LOAD:
        rc = cluster_reply_sha(r, c->reg->sha[rq->index]);
        if (rc != 0)
            reg__log(c->reg, rc == CLUSTER_E_AUTH ? CLUSTER_LOG_ERROR : CLUSTER_LOG_WARN,
                     "redis SCRIPT LOAD failed: %.200s", conn__errstr(r));
        break;
    default: return;
    }
    if (rc != 0) {
        reg__conn_fail(c, rc);
        return;
    }
    conn__handshake_step(c);
}

static void conn__sub_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct cluster__conn *c = privdata;
    redisReply *r = reply;
    int kind;
    const char *ch, *payload;
    size_t chl, pl;
    if (!r || c->ac != ac || ac == NULL)
        return; /* going away: the disconnect path reports it */
    c->heard_ms = util_now_ms();
    int rc = cluster_reply_push(r, &kind, &ch, &chl, &payload, &pl);
    if (rc != 0) {
        c->reg->st.bad_messages++;
        if (r->type == REDIS_REPLY_ERROR)
            c->reg->st.errors++;
        reg__log(c->reg, CLUSTER_LOG_WARN, "redis %s: unexpected reply (%s)", conn__name(c),
                 cluster_strerror(rc));
        if (c->state == REG_C_CONNECTING)
            reg__conn_fail(c, rc == CLUSTER_E_AUTH ? CLUSTER_E_AUTH : CLUSTER_E_REDIS);
        return;
    }
    if (kind == CLUSTER_PUSH_SUBSCRIBE) {
        if (c->state == REG_C_CONNECTING)
            conn__handshake_step(c);
        return;
    }
    if (c->kind == REG_CONN_WATCH)
        reg__watch_message(c->reg, ch, chl, payload, pl);
    else
        reg__sub_message(c->reg, ch, chl, payload, pl);
}

static int conn__send_auth(struct cluster__conn *c)
{
    struct cluster_registry *reg = c->reg;
    const char *argv[3] = {"AUTH"};
    size_t lens[3] = {4};
    int argc = 1;
    struct cluster__req *rq;
    if (!reg->url.has_password)
        return 0;
    if (reg->url.has_user) {
        argv[argc] = reg->url.user;
        lens[argc++] = reg->url.user_len;
    }
    argv[argc] = reg->url.password;
    lens[argc++] = reg->url.password_len;
    rq = reg__req_new(c, REQ_AUTH);
    if (!rq)
        return CLUSTER_E_NOMEM;
    c->handshake_left++;
    return reg__send(c, rq, argc, argv, lens);
}

/* A command of the handshake, answered through reg__reply(). */
static int conn__send_step(struct cluster__conn *c, enum reg__req_kind kind, int index, int argc,
                           const char **argv, const size_t *lens)
{
    struct cluster__req *rq = reg__req_new(c, kind);
    if (!rq)
        return CLUSTER_E_NOMEM;
    rq->index = index;
    c->handshake_left++;
    return reg__send(c, rq, argc, argv, lens);
}

static int conn__subscribe(struct cluster__conn *c, int argc, const char **argv, const size_t *lens)
{
    c->handshake_left += argc - 1; /* one confirmation per channel */
    if (redisAsyncCommandArgv(c->ac, conn__sub_cb, c, argc, argv, lens) != REDIS_OK)
        return CLUSTER_E_DOWN;
    c->reg->st.commands++;
    return 0;
}

/* A sentinel connection's handshake: no AUTH (sentinels run without one here). */
static int conn__sentinel_handshake(struct cluster__conn *c)
{
    struct cluster_registry *reg = c->reg;
    if (c->kind == REG_CONN_WATCH) {
        const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
        size_t lens[2] = {9, 14};
        redisEnableKeepAlive(&c->ac->c); /* a sentinel says nothing for hours: find a dead path */
        return conn__subscribe(c, 2, argv, lens);
    }
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", reg->master_name};
    size_t lens[3] = {8, 23, strlen(reg->master_name)};
    reg->st.discoveries++;
    return conn__send_step(c, REQ_ASK, 0, 3, argv, lens);
}

static int conn__handshake(struct cluster__conn *c)
{
    struct cluster_registry *reg = c->reg;
    int rc;
    c->handshake_left = 0;
    if (c->kind == REG_CONN_ASK || c->kind == REG_CONN_WATCH)
        return conn__sentinel_handshake(c);
    if ((rc = conn__send_auth(c)) != 0)
        return rc;
    if (reg->sentinel) { /* a stale sentinel, or a master demoted since it answered */
        const char *argv[1] = {"ROLE"};
        size_t lens[1] = {4};
        if ((rc = conn__send_step(c, REQ_ROLE, 0, 1, argv, lens)) != 0)
            return rc;
    }
    if (c->kind == REG_CONN_SUB) {
        const char *argv[3] = {"SUBSCRIBE", reg->chan_events, reg->chan_ping};
        size_t lens[3] = {9, strlen(reg->chan_events), strlen(reg->chan_ping)};
        return conn__subscribe(c, 3, argv, lens);
    }
    if (reg->url.db != 0) {
        char db[21];
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, cluster_format_u64(db, (uint64_t)reg->url.db)};
        if ((rc = conn__send_step(c, REQ_SELECT, 0, 2, argv, lens)) != 0)
            return rc;
    }
    for (int i = 0; i < CLUSTER_SCRIPT_COUNT; i++) {
        const char *text = cluster_script_text((enum cluster_script)i);
        const char *argv[3] = {"SCRIPT", "LOAD", text};
        size_t lens[3] = {6, 4, strlen(text)};
        if ((rc = conn__send_step(c, REQ_SCRIPT_LOAD, i, 3, argv, lens)) != 0)
            return rc;
    }
    return 0;
}

/* ---- connecting ------------------------------------------------------------------------- */

static void conn__connect_cb(const redisAsyncContext *ac, int status)
{
    struct cluster__conn *c = ac->data;
    if (!c || c->ac != ac)
        return;
    if (status != REDIS_OK)
        conn__failed(c, CLUSTER_E_CONNECT, 1); /* hiredis frees the context after this */
}

static void conn__disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct cluster__conn *c = ac->data;
    (void)status;
    if (!c || c->ac != ac)
        return; /* we freed it ourselves */
    conn__failed(c, CLUSTER_E_CONNECT, 1);
}

static void conn__connect(struct cluster__conn *c, const char *ip)
{
    struct cluster_registry *reg = c->reg;
    redisAsyncContext *ac = redisAsyncConnect(ip, c->target.port);
    int rc;
    if (!ac) {
        conn__failed(c, CLUSTER_E_NOMEM, 1);
        return;
    }
    if (ac->err) {
        char hp[CLUSTER_MAX_HOST_LEN + 8];
        util_hostport_format(hp, sizeof(hp), ip, c->target.port);
        reg__log(reg, CLUSTER_LOG_DEBUG, "redis connect %s: %.200s", hp, ac->errstr);
        redisAsyncFree(ac);
        conn__failed(c, CLUSTER_E_CONNECT, 1);
        return;
    }
    if (redisLibeventAttach(ac, reg->base) != REDIS_OK) {
        redisAsyncFree(ac);
        conn__failed(c, CLUSTER_E_NOMEM, 1);
        return;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, conn__connect_cb);
    redisAsyncSetDisconnectCallback(ac, conn__disconnect_cb);
    c->ac = ac;
    c->state = REG_C_CONNECTING;
    if ((rc = conn__handshake(c)) != 0)
        reg__conn_fail(c, rc);
}

static void conn__dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct reg__dns_ctx *ctx = arg;
    struct cluster__conn *c = ctx->c;
    char ip[INET6_ADDRSTRLEN];
    free(ctx);
    if (!c) { /* abandoned; the registry may be gone */
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    c->dns = NULL;
    if (result != 0 || !res) {
        if (res)
            evutil_freeaddrinfo(res);
        reg__log(c->reg, CLUSTER_LOG_WARN, "cannot resolve %s host %s: %s",
                 c->kind == REG_CONN_ASK || c->kind == REG_CONN_WATCH ? "sentinel" : "redis", c->target.host,
                 evutil_gai_strerror(result));
        conn__failed(c, CLUSTER_E_DNS, 1);
        return;
    }
    size_t n = 0;
    for (struct evutil_addrinfo *a = res; a; a = a->ai_next)
        n++;
    struct evutil_addrinfo *a = res;
    for (size_t k = c->rotor++ % n; k; k--)
        a = a->ai_next;
    const void *src = a->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr
                                               : (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr;
    if (!evutil_inet_ntop(a->ai_family, src, ip, sizeof(ip))) {
        evutil_freeaddrinfo(res);
        conn__failed(c, CLUSTER_E_DNS, 1);
        return;
    }
    evutil_freeaddrinfo(res);
    conn__connect(c, ip);
}

void reg__conn_start(struct cluster__conn *c)
{
    struct cluster_registry *reg = c->reg;
    unsigned char buf[sizeof(struct in6_addr)];
    if (reg->closing || c->state != REG_C_IDLE)
        return;
    if (!reg__conn_target(c))
        return; /* waits for the sentinels to name the master */
    c->since_ms = util_now_ms();
    c->state = REG_C_RESOLVING;
    const char *host = c->target.host;
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        conn__connect(c, host);
        return;
    }
    if (!reg->dns) {
        reg->dns = evdns_base_new(reg->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (!reg->dns) {
            conn__failed(c, CLUSTER_E_DNS, 1);
            return;
        }
        reg->own_dns = 1;
        evdns_base_set_option(reg->dns, "randomize-case:", "0"); /* as node/glue.c says */
    }
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    struct reg__dns_ctx *ctx = malloc(sizeof(*ctx));
    if (!ctx) {
        conn__failed(c, CLUSTER_E_NOMEM, 1);
        return;
    }
    ctx->c = c;
    c->dns = ctx;
    /* may answer (and free ctx) before it returns */
    evdns_getaddrinfo(reg->dns, host, NULL, &hints, conn__dns_cb, ctx);
}

static void conn__retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cluster__conn *c = arg;
    (void)fd;
    (void)what;
    reg__conn_start(c);
}
