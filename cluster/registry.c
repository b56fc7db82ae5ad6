/* cluster_registry: the public API (registry.h), options, the housekeeping
 * tick, and the helpers the other parts share. Held workers are in held.c,
 * lookups in lookup.c, membership and messages in members.c, the Redis
 * connections in conn.c; formats, replies and scripts in records.c; the
 * route cache in cache.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/registry_int.h"

static void reg__really_free(struct cluster_registry *reg);

/* ---- time, logging, callbacks ----------------------------------------------------------- */

/* This node's clock as a generation floor: wall-clock ms << CLUSTER_GEN_TIME_SHIFT. */
static uint64_t reg__gen_floor(void)
{
    uint64_t f = (uint64_t)util_wall_ms() << CLUSTER_GEN_TIME_SHIFT;
    return f > CLUSTER_GEN_MAX / 2 ? CLUSTER_GEN_MAX / 2 : f; /* clocks past 2248: stay exact in Lua */
}

void reg__log(struct cluster_registry *reg, enum cluster_log_level level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (!reg->cbs.log_cb || level > reg->cbs.log_level || reg->closing)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reg->cb_depth++;
    reg->cbs.log_cb(reg, level, msg, reg->ud);
    reg->cb_depth--;
}

void reg__call_takeover(struct cluster_registry *reg, const char *id, size_t len)
{
    reg->st.takeovers++;
    if (reg->closing || !reg->cbs.takeover_cb)
        return;
    reg->cb_depth++;
    reg->cbs.takeover_cb(reg, id, len, reg->ud);
    reg->cb_depth--;
}

void reg__call_elsewhere(struct cluster_registry *reg, const char *id, size_t len)
{
    if (reg->closing || !reg->cbs.elsewhere_cb)
        return;
    reg->cb_depth++;
    reg->cbs.elsewhere_cb(reg, id, len, reg->ud);
    reg->cb_depth--;
}

void reg__call_peer(struct cluster_registry *reg, int up, const char *node, const char *addr)
{
    void (*cb)(struct cluster_registry *, const char *, const char *, void *) =
        up ? reg->cbs.peer_up_cb : reg->cbs.peer_down_cb;
    reg__log(reg, CLUSTER_LOG_INFO, "peer %s %s at %s", node, up ? "up" : "down", addr);
    if (reg->closing || !cb)
        return;
    reg->cb_depth++;
    cb(reg, node, addr, reg->ud);
    reg->cb_depth--;
}

void reg__set_redis_state(struct cluster_registry *reg, enum reg__redis_state s, int err)
{
    if (reg->redis_state == s)
        return;
    reg->redis_state = s;
    if (reg->closing || !reg->cbs.redis_state_cb)
        return;
    reg->cb_depth++;
    reg->cbs.redis_state_cb(reg, s == REG_R_UP, s == REG_R_UP ? 0 : err, reg->ud);
    reg->cb_depth--;
}

int reg__is_self(const struct cluster_registry *reg, const char *node, size_t len)
{
    return len == reg->node_len && memcmp(node, reg->node_id, len) == 0;
}

void reg__saw_gen(struct cluster_registry *reg, uint64_t gen)
{
    if (gen > reg->last_gen && gen <= CLUSTER_GEN_MAX)
        reg->last_gen = gen;
}

/* A generation made by this node (Redis unreachable): after everything seen, at least floor. */
uint64_t reg__local_gen(struct cluster_registry *reg, uint64_t floor)
{
    uint64_t g = reg->last_gen + 1 > floor ? reg->last_gen + 1 : floor;
    if (g > CLUSTER_GEN_MAX)
        g = CLUSTER_GEN_MAX;
    reg->last_gen = g;
    return g;
}

size_t reg__route_key(const struct cluster_registry *reg, char *out, const char *id, size_t len)
{
    memcpy(out, reg->prefix, reg->prefix_len);
    memcpy(out + reg->prefix_len, "w:", 2);
    memcpy(out + reg->prefix_len + 2, id, len);
    out[reg->prefix_len + 2 + len] = '\0';
    return reg->prefix_len + 2 + len;
}

/* ---- the tick --------------------------------------------------------------------------- */

static void reg__check_attempt(struct cluster__conn *c, int64_t now)
{
    if ((c->state == REG_C_RESOLVING || c->state == REG_C_CONNECTING) && now - c->since_ms > c->timeout_ms)
        reg__conn_fail(c, CLUSTER_E_TIMEOUT);
}

/* 1 when a connection has waited longer than timeout_ms for an answer asked for at since_ms
 * and heard nothing else meanwhile either. A Redis that keeps answering what was queued
 * before (a registration storm, a re-assertion after an outage, a Redis short of CPU) is
 * busy, not dead: dropping the connection then would re-assert every held worker, more load
 * on the busy Redis (found by tests/bench/cluster_sim.py). A connection answers in order,
 * so the awaited answer comes once the ones before it are through. */
static int reg__silent(int64_t now, int64_t since_ms, int64_t heard_ms, int64_t timeout_ms)
{
    int64_t last = heard_ms > since_ms ? heard_ms : since_ms;
    return now - last > timeout_ms;
}

static void reg__tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cluster_registry *reg = arg;
    int64_t now = util_now_ms();
    (void)fd;
    (void)what;
    if (reg->closing)
        return;
    reg__lookup_timeouts(reg, now);
    reg__info_timeouts(reg, now);
    if (reg->leave_cb && now >= reg->leave_deadline_ms && !reg->closing) {
        cluster_done_cb *cb = reg->leave_cb;
        reg->leave_cb = NULL;
        reg->st.errors++;
        reg->cb_depth++;
        cb(reg, CLUSTER_E_TIMEOUT, reg->leave_ud);
        reg->cb_depth--;
    }
    if (reg->closing)
        return;
    reg__check_attempt(&reg->cmd, now);
    reg__check_attempt(&reg->sub, now);
    if (reg->sentinel) {
        reg__check_attempt(&reg->ask, now);
        reg__check_attempt(&reg->watch, now);
    }
    if (reg->cmd.state == REG_C_READY) {
        if (reg->beat_inflight &&
            reg__silent(now, reg->beat_sent_ms, reg->cmd.heard_ms, reg->command_timeout_ms)) {
            reg__log(reg, CLUSTER_LOG_WARN, "redis did not answer the heartbeat in %lld ms",
                     (long long)(now - reg->beat_sent_ms));
            reg__conn_fail(&reg->cmd, CLUSTER_E_TIMEOUT);
        } else if (!reg->beat_inflight && !reg->leaving &&
                   (now >= reg->next_beat_ms || reg__info_due(reg, now))) {
            reg__send_beat(reg);
        }
    }
    if (reg->sub.state == REG_C_READY && reg->ping_wait_ms &&
        reg__silent(now, reg->ping_wait_ms, reg->sub.heard_ms, reg->command_timeout_ms)) {
        reg__log(reg, CLUSTER_LOG_WARN, "redis subscriber connection silent: reconnecting");
        reg__conn_fail(&reg->sub, CLUSTER_E_TIMEOUT);
    }
    while (reg->retry.head && reg->retry.head->when_ms <= now)
        reg__list_push(reg, reg->retry.head, REG_L_DIRTY);
    if (reg->cmd.state == REG_C_READY) {
        int64_t period = reg->route_ttl_ms / 3;
        while (reg->refresh.head && reg->refresh.head->when_ms + period <= now)
            reg__list_push(reg, reg->refresh.head, REG_L_DIRTY);
    }
    reg__pump(reg);
}

/* ---- the API ---------------------------------------------------------------------------- */

static int reg__opt(int64_t v, int64_t def, int64_t min, int64_t max, int64_t *out)
{
    *out = v ? v : def;
    return *out >= min && *out <= max ? 0 : -1;
}

static size_t reg__opt_size(size_t v, size_t def)
{
    return v ? v : def;
}

/* The options with their defaults applied, into reg. Returns 0 or CLUSTER_E_INVAL. */
static int reg__options(struct cluster_registry *reg, const struct cluster_options *o)
{
    if (reg__opt(o->member_ttl_ms, 5000, 300, 600000, &reg->member_ttl_ms) ||
        reg__opt(o->refresh_ms, reg->member_ttl_ms / 4, 50, reg->member_ttl_ms / 2 - 1, &reg->refresh_ms) ||
        reg__opt(o->route_ttl_ms, 3600 * 1000, 10000, INT64_C(30) * 86400 * 1000, &reg->route_ttl_ms) ||
        reg__opt(o->lookup_timeout_ms, 1000, 10, 600000, &reg->lookup_timeout_ms) ||
        reg__opt(o->command_timeout_ms, reg->member_ttl_ms > 3000 ? reg->member_ttl_ms : 3000, 100, 600000,
                 &reg->command_timeout_ms) ||
        reg__opt(o->reconnect_min_ms, 100, 1, 600000, &reg->reconnect_min_ms) ||
        reg__opt(o->reconnect_max_ms, 2000, reg->reconnect_min_ms, 600000, &reg->reconnect_max_ms) ||
        reg__opt(o->sentinel_timeout_ms, 1000, 10, 600000, &reg->sentinel_timeout_ms))
        return CLUSTER_E_INVAL;
    reg->max_held = reg__opt_size(o->max_held, 1000000);
    reg->max_pending_lookups = reg__opt_size(o->max_pending_lookups, 10000);
    reg->max_lookup_waiters = reg__opt_size(o->max_lookup_waiters, 100000);
    reg->max_inflight = reg__opt_size(o->max_inflight, 1024);
    reg->max_release_queue = reg__opt_size(o->max_release_queue, 65536);
    return 0;
}

/* This node's identity (node id, address, boot id) and what is made of it:
 * its member value, its keys and channels. Returns 0 or an error. */
static int reg__names(struct cluster_registry *reg, const struct cluster_options *o, const char *prefix)
{
    int rc;
    reg->node_len = strlen(o->node_id);
    memcpy(reg->node_id, o->node_id, reg->node_len + 1);
    snprintf(reg->addr, sizeof(reg->addr), "%s", o->advertise);
    reg->prefix_len = strlen(prefix);
    memcpy(reg->prefix, prefix, reg->prefix_len + 1);
    reg->rng = util_random_seed() | 1;
    reg->boot = util_random_seed();
    rc = cluster_member_value_format(reg->member_value, sizeof(reg->member_value), reg->node_id,
                                     reg->node_len, reg->addr, strlen(reg->addr), reg->boot);
    if (rc < 0)
        return rc;
    snprintf(reg->node_boot, sizeof(reg->node_boot), "%s %s", reg->node_id,
             reg->member_value + reg->node_len + 1 + strlen(reg->addr) + 1);
    snprintf(reg->key_gen, sizeof(reg->key_gen), "%sgen", prefix);
    snprintf(reg->key_members, sizeof(reg->key_members), "%smembers", prefix);
    snprintf(reg->key_node, sizeof(reg->key_node), "%snode:%s", prefix, reg->node_id);
    snprintf(reg->key_info, sizeof(reg->key_info), "%sinfo:%s", prefix, reg->node_id);
    snprintf(reg->chan_events, sizeof(reg->chan_events), "%sevents:%d", prefix, reg->url.db);
    snprintf(reg->chan_ping, sizeof(reg->chan_ping), "%sping:%s:%s", prefix, reg->node_id,
             reg->node_boot + reg->node_len + 1);
    return 0;
}

/* The cache, the tables, both connections and the tick: what
 * reg__really_free() undoes. Returns 0 or an error. */
static int reg__parts(struct cluster_registry *reg, const struct cluster_options *o)
{
    struct cluster_cache_limits lim = {o->cache_max_routes, o->cache_max_bytes, 0};
    int rc;
    if ((rc = cluster_cache_new(&lim, util_random_seed(), &reg->cache)) != 0)
        return rc;
    util_htab_init(&reg->held, offsetof(struct cluster__held, id) - offsetof(struct cluster__held, h),
                   util_random_seed(), reg->max_held);
    util_htab_init(&reg->groups, offsetof(struct reg__group, id) - offsetof(struct reg__group, h),
                   util_random_seed(), reg->max_pending_lookups);
    if (reg__conn_init(reg, &reg->cmd, REG_CONN_CMD) != 0 ||
        reg__conn_init(reg, &reg->sub, REG_CONN_SUB) != 0 ||
        reg__conn_init(reg, &reg->ask, REG_CONN_ASK) != 0 ||
        reg__conn_init(reg, &reg->watch, REG_CONN_WATCH) != 0)
        return CLUSTER_E_NOMEM;
    reg->tick_ev = event_new(reg->base, -1, EV_PERSIST, reg__tick_cb, reg);
    if (!reg->tick_ev)
        return CLUSTER_E_NOMEM;
    return 0;
}

int cluster_registry_new(struct event_base *base, const struct cluster_options *o,
                         const struct cluster_callbacks *cbs, void *ud, struct cluster_registry **out)
{
    struct cluster_registry *reg;
    const char *prefix;
    int rc;

    if (!out)
        return CLUSTER_E_INVAL;
    *out = NULL;
    if (!base || !o || (!o->redis_url && !(o->sentinels && o->sentinels[0])) || !o->node_id || !o->advertise)
        return CLUSTER_E_INVAL;
    prefix = o->prefix ? o->prefix : "wht:";
    if (!cluster_valid_node(o->node_id, strlen(o->node_id)) ||
        !cluster_valid_addr(o->advertise, strlen(o->advertise)) ||
        !cluster_valid_prefix(prefix, strlen(prefix)))
        return CLUSTER_E_INVAL;
    reg = calloc(1, sizeof(*reg));
    if (!reg)
        return CLUSTER_E_NOMEM;
    reg->base = base;
    reg->dns = o->dns;
    if (cbs)
        reg->cbs = *cbs;
    reg->ud = ud;
    if ((rc = reg__sentinel_init(reg, o)) != 0 || (rc = reg__options(reg, o)) != 0 ||
        (rc = reg__names(reg, o, prefix)) != 0 || (rc = reg__parts(reg, o)) != 0)
        goto fail;
    struct timeval tv = {0, REG_TICK_MS * 1000};
    event_add(reg->tick_ev, &tv);
    if (reg->sentinel)
        reg__conn_start(&reg->watch);
    reg__conn_start(&reg->cmd);
    reg__conn_start(&reg->sub);
    *out = reg;
    return 0;
fail:
    reg->closing = 1;
    reg__really_free(reg);
    return rc;
}

static void reg__deferred_free_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reg__really_free(arg);
}

void cluster_registry_free(struct cluster_registry *reg)
{
    if (!reg || reg->free_pending)
        return;
    reg->closing = 1;
    if (reg->cb_depth > 0) {
        struct timeval tv = {0, 0};
        reg->free_pending = 1;
        if (event_base_once(reg->base, -1, EV_TIMEOUT, reg__deferred_free_cb, reg, &tv) == 0)
            return;
        /* cannot defer: better a leak than a use after free */
        return;
    }
    reg__really_free(reg);
}

static void reg__really_free(struct cluster_registry *reg)
{
    reg->closing = 1;
    if (reg->tick_ev)
        event_free(reg->tick_ev);
    if (reg->leave_ev)
        event_free(reg->leave_ev);
    /* replies still pending come back NULL now: requests are freed, entries in flight settle */
    reg__conn_close(&reg->cmd);
    reg__conn_close(&reg->sub);
    reg__conn_close(&reg->ask);
    reg__conn_close(&reg->watch);
    for (size_t i = 0; i < reg->held.nb; i++) {
        struct util_hnode *h = reg->held.b[i], *next;
        for (; h; h = next) {
            next = h->next;
            free((char *)h - offsetof(struct cluster__held, h));
        }
    }
    util_htab_free(&reg->held);
    /* groups: all had a GET in flight, answered NULL above; any left are freed here */
    while (reg->grp_head) {
        struct reg__group *g = reg->grp_head;
        reg__group_unlink(reg, g);
        while (g->head) {
            struct cluster_lookup *w = g->head;
            g->head = w->next;
            free(w);
        }
        free(g);
    }
    util_htab_free(&reg->groups);
    /* info requests: likewise freed by their NULL replies above; any still listed are freed here */
    while (reg->info_head) {
        struct cluster_info_req *q = reg->info_head;
        reg->info_head = q->next;
        free(q);
    }
    while (reg->rel_head) {
        struct reg__release *r = reg->rel_head;
        reg->rel_head = r->next;
        free(r);
    }
    cluster_cache_free(reg->cache);
    if (reg->own_dns && reg->dns)
        evdns_base_free(reg->dns,
                        1); /* abandoned resolutions end (failed) from the loop, freeing their context */
    explicit_bzero(&reg->url, sizeof(reg->url));
    free(reg);
}

int cluster_registry_register(struct cluster_registry *reg, const char *id, size_t id_len)
{
    struct cluster__held *e;
    if (!reg || !util_valid_worker_id(id, id_len))
        return CLUSTER_E_INVAL;
    if (reg->closing || reg->leaving)
        return CLUSTER_E_CLOSED;
    e = reg__held_find(reg, id, id_len);
    if (!e) {
        if (reg->held_n >= reg->max_held)
            return CLUSTER_E_LIMIT;
        e = calloc(1, sizeof(*e) + id_len + 1);
        if (!e)
            return CLUSTER_E_NOMEM;
        memcpy(e->id, id, id_len);
        e->h.klen = (uint16_t)id_len;
        e->h.hash = util_htab_hash(&reg->held, id, id_len);
        if (util_htab_insert(&reg->held, &e->h) != 0) {
            free(e);
            return CLUSTER_E_NOMEM;
        }
        reg->held_n++;
    }
    /* a cached route for it is stale now: this node holds it */
    cluster_cache_del(reg->cache, id, id_len, 0);
    e->seq++;
    e->floor = reg__gen_floor();
    e->other_gen = 0;
    e->confirmed = 0;
    e->gen = reg->cmd.state == REG_C_READY ? 0 : reg__local_gen(reg, e->floor);
    if (!e->inflight)
        reg__list_push(reg, e, REG_L_DIRTY);
    reg->st.registrations++;
    reg__pump(reg);
    return 0;
}

int cluster_registry_unregister(struct cluster_registry *reg, const char *id, size_t id_len)
{
    struct cluster__held *e;
    if (!reg || !util_valid_worker_id(id, id_len))
        return CLUSTER_E_INVAL;
    e = reg__held_find(reg, id, id_len);
    if (!e)
        return 0;
    reg__held_detach(reg, e, 1);
    if (e->inflight)
        return 1; /* its reply releases it */
    reg__release_queue(reg, e->id, e->h.klen, e->gen);
    free(e);
    reg__pump(reg);
    return 1;
}

int cluster_registry_holds(const struct cluster_registry *reg, const char *id, size_t id_len, uint64_t *gen)
{
    const struct cluster__held *e =
        reg && util_valid_worker_id(id, id_len) ? reg__held_find(reg, id, id_len) : NULL;
    if (e && gen)
        *gen = e->gen;
    return e != NULL;
}

static void reg__leave_down_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cluster_registry *reg = arg;
    (void)fd;
    (void)what;
    if (reg->leave_cb && !reg->closing) {
        cluster_done_cb *cb = reg->leave_cb;
        reg->leave_cb = NULL;
        reg->cb_depth++;
        cb(reg, CLUSTER_E_DOWN, reg->leave_ud);
        reg->cb_depth--;
    }
}

int cluster_registry_leave(struct cluster_registry *reg, cluster_done_cb *cb, void *ud)
{
    if (!reg || reg->closing || reg->leaving)
        return CLUSTER_E_CLOSED;
    reg->leaving = 1;
    reg->leave_cb = cb;
    reg->leave_ud = ud;
    reg->leave_deadline_ms = util_now_ms() + reg->command_timeout_ms;
    /* release every held worker, ahead of the leave script and regardless of the in-flight limit */
    for (size_t i = 0; i < reg->held.nb; i++) {
        struct util_hnode *h;
        while ((h = reg->held.b[i]) != NULL) {
            struct cluster__held *e = (struct cluster__held *)((char *)h - offsetof(struct cluster__held, h));
            reg__held_detach(reg, e, 1);
            if (!e->inflight) {
                reg__release_queue(reg, e->id, e->h.klen, e->gen);
                free(e);
            }
        }
    }
    if (reg->cmd.state == REG_C_READY) {
        size_t saved = reg->max_inflight;
        reg->max_inflight = SIZE_MAX;
        reg__pump(reg);
        reg->max_inflight = saved;
        const char *argv[9] = {"EVALSHA",
                               reg->sha[CLUSTER_SCRIPT_LEAVE],
                               "3",
                               reg->key_node,
                               reg->key_members,
                               reg->key_info,
                               reg->member_value,
                               reg->node_boot,
                               reg->chan_events};
        size_t lens[9] = {7,
                          40,
                          1,
                          strlen(reg->key_node),
                          strlen(reg->key_members),
                          strlen(reg->key_info),
                          strlen(reg->member_value),
                          strlen(reg->node_boot),
                          strlen(reg->chan_events)};
        struct cluster__req *rq = reg__req_new(&reg->cmd, REQ_LEAVE);
        if (rq && reg__send(&reg->cmd, rq, 9, argv, lens) == 0)
            return 0;
    }
    /* Redis away: say so from the loop */
    struct timeval tv = {0, 0};
    reg->leave_ev = evtimer_new(reg->base, reg__leave_down_cb, reg);
    if (reg->leave_ev)
        evtimer_add(reg->leave_ev, &tv);
    return 0;
}

void cluster_registry_stats(const struct cluster_registry *reg, struct cluster_registry_stats *st)
{
    struct cluster_cache_stats cs;
    *st = reg->st;
    cluster_cache_stats(reg->cache, &cs);
    st->redis_up = reg->cmd.state == REG_C_READY;
    st->sentinel_watching = reg->sentinel && reg->watch.state == REG_C_READY;
    st->master[0] = '\0';
    if (reg->confirmed_known)
        util_hostport_format(st->master, sizeof(st->master), reg->confirmed.host, reg->confirmed.port);
    st->subscribed = reg->sub.state == REG_C_READY;
    st->held = reg->held_n;
    st->held_unconfirmed = 0;
    for (size_t i = 0; i < reg->held.nb; i++)
        for (struct util_hnode *h = reg->held.b[i]; h; h = h->next)
            if (!((struct cluster__held *)((char *)h - offsetof(struct cluster__held, h)))->confirmed)
                st->held_unconfirmed++;
    st->peers_up = cs.nodes_up;
    st->pending_lookups = reg->groups_n;
    st->release_queue = reg->rel_n;
    st->cache_routes = cs.routes;
    st->cache_bytes = cs.bytes;
    st->cache_max_routes = cs.max_routes;
    st->cache_max_bytes = cs.max_bytes;
    st->cache_hits = cs.hits;
    st->cache_misses = cs.misses;
    st->cache_evictions = cs.evictions;
    st->cache_dropped = cs.dropped;
}

const char *cluster_registry_node_id(const struct cluster_registry *reg)
{
    return reg->node_id;
}

uint64_t cluster_registry_boot_id(const struct cluster_registry *reg)
{
    return reg->boot;
}
