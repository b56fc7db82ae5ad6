/* cluster_registry: route lookups. A cached route answers at once; a miss
 * sends one GET per id, which every lookup of that id waits on, each with
 * its own callback, until the answer or lookup_timeout_ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/registry_int.h"

/* ---- lookups ---------------------------------------------------------------------------- */

void reg__group_unlink(struct cluster_registry *reg, struct reg__group *g)
{
    if (!g->in_table)
        return;
    util_htab_remove(&reg->groups, &g->h);
    if (g->prev)
        g->prev->next = g->next;
    else
        reg->grp_head = g->next;
    if (g->next)
        g->next->prev = g->prev;
    else
        reg->grp_tail = g->prev;
    g->prev = g->next = NULL;
    g->in_table = 0;
}

/* Answers every lookup waiting on g (which is out of the table), one at a time. */
static void reg__group_answer(struct cluster_registry *reg, struct reg__group *g, int result,
                              const struct cluster_route *route)
{
    struct cluster_lookup *w;
    while ((w = g->head) != NULL) {
        g->head = w->next;
        if (g->head)
            g->head->prev = NULL;
        else
            g->tail = NULL;
        reg->waiters_n--;
        w->group = NULL;
        cluster_lookup_cb *cb = w->cb;
        void *ud = w->ud;
        free(w);
        if (reg->closing || !cb)
            continue;
        reg->cb_depth++;
        cb(reg, result, result == 1 ? route : NULL, ud);
        reg->cb_depth--;
    }
}

static void reg__fill_route(struct cluster_route *out, const struct cluster_cache_route *r)
{
    snprintf(out->node, sizeof(out->node), "%s", r->node);
    snprintf(out->addr, sizeof(out->addr), "%s", r->addr);
    out->gen = r->gen;
}

void reg__get_reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r)
{
    struct reg__group *g = rq->group;
    struct cluster_route_value v;
    struct cluster_route route;
    int found = 0, result;
    int rc = r ? cluster_reply_get(r, &found, &v) : CLUSTER_E_DOWN;

    reg->groups_n--;
    if (!g->in_table) { /* timed out already */
        free(g);
        return;
    }
    reg__group_unlink(reg, g);
    if (rc != 0) {
        result = rc;
    } else if (!found || reg__is_self(reg, v.node, v.node_len)) {
        result = 0;
    } else {
        struct cluster_cache_route cr;
        enum cluster_node_state st;
        reg__saw_gen(reg, v.gen);
        cluster_cache_put(reg->cache, g->id, g->h.klen, v.gen, v.node, v.node_len);
        /* the cache may know a newer generation than this reply (a message overtook it) */
        if (cluster_cache_peek(reg->cache, g->id, g->h.klen, &cr, &st) && st == CLUSTER_NODE_UP) {
            reg__fill_route(&route, &cr);
            result = 1;
        } else {
            /* held, by a node that is not a member (dead, frozen, cut off): not "no such worker" */
            result = CLUSTER_LOOKUP_NODE_DOWN;
        }
    }
    if (rc != 0 && r)
        reg__log(reg, CLUSTER_LOG_WARN, "lookup of worker %s: %s", g->id, cluster_strerror(rc));
    reg__group_answer(reg, g, result, &route);
    free(g);
}

/* A new group for id, its GET sent: in the table and at the tail of the
 * deadline list. Returns 0 with *out, or an error. */
static int reg__group_start(struct cluster_registry *reg, const char *id, size_t id_len, uint32_t hash,
                            struct reg__group **out)
{
    char key[REG_ROUTE_KEY_MAX];
    struct cluster__req *rq;
    struct reg__group *g;
    if (reg->groups_n >= reg->max_pending_lookups)
        return CLUSTER_E_LIMIT;
    g = calloc(1, sizeof(*g) + id_len + 1);
    if (!g)
        return CLUSTER_E_NOMEM;
    memcpy(g->id, id, id_len);
    g->h.klen = (uint16_t)id_len;
    g->h.hash = hash;
    rq = reg__req_new(&reg->cmd, REQ_GET);
    if (!rq || util_htab_insert(&reg->groups, &g->h) != 0) {
        free(rq);
        free(g);
        return CLUSTER_E_NOMEM;
    }
    rq->group = g;
    size_t kl = reg__route_key(reg, key, id, id_len);
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, kl};
    if (reg__send(&reg->cmd, rq, 2, argv, lens) != 0) {
        util_htab_remove(&reg->groups, &g->h);
        free(g);
        return CLUSTER_E_DOWN;
    }
    g->in_table = 1;
    g->deadline_ms = util_now_ms() + reg->lookup_timeout_ms;
    g->prev = reg->grp_tail;
    if (reg->grp_tail)
        reg->grp_tail->next = g;
    else
        reg->grp_head = g;
    reg->grp_tail = g;
    reg->groups_n++;
    reg->st.lookups_redis++;
    *out = g;
    return 0;
}

/* A lookup waiting on g, at the tail of its list. NULL when out of memory. */
static struct cluster_lookup *reg__waiter_add(struct cluster_registry *reg, struct reg__group *g,
                                              cluster_lookup_cb *cb, void *ud)
{
    struct cluster_lookup *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->reg = reg;
    w->group = g;
    w->cb = cb;
    w->ud = ud;
    w->prev = g->tail;
    if (g->tail)
        g->tail->next = w;
    else
        g->head = w;
    g->tail = w;
    reg->waiters_n++;
    return w;
}

int cluster_registry_lookup(struct cluster_registry *reg, const char *id, size_t id_len,
                            struct cluster_route *route, cluster_lookup_cb *cb, void *ud,
                            struct cluster_lookup **handle)
{
    struct cluster_cache_route cr;
    struct reg__group *g;
    struct cluster_lookup *w;
    int rc;

    if (handle)
        *handle = NULL;
    if (!reg || !util_valid_worker_id(id, id_len))
        return CLUSTER_E_INVAL;
    if (cluster_cache_get(reg->cache, id, id_len, &cr)) {
        if (route)
            reg__fill_route(route, &cr);
        return 1;
    }
    if (reg->closing)
        return CLUSTER_E_CLOSED;
    if (reg->cmd.state != REG_C_READY)
        return CLUSTER_E_DOWN;
    if (reg->waiters_n >= reg->max_lookup_waiters)
        return CLUSTER_E_LIMIT;
    uint32_t hash = util_htab_hash(&reg->groups, id, id_len);
    struct util_hnode *h = util_htab_find(&reg->groups, id, id_len, hash);
    g = h ? (struct reg__group *)((char *)h - offsetof(struct reg__group, h)) : NULL;
    if (!g && (rc = reg__group_start(reg, id, id_len, hash, &g)) != 0)
        return rc;
    w = reg__waiter_add(reg, g, cb, ud);
    if (!w)
        return CLUSTER_E_NOMEM; /* the group is answered to nobody; harmless */
    if (handle)
        *handle = w;
    return 0;
}

void cluster_lookup_cancel(struct cluster_lookup *w)
{
    if (!w || !w->group)
        return;
    struct reg__group *g = w->group;
    if (w->prev)
        w->prev->next = w->next;
    else
        g->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        g->tail = w->prev;
    w->reg->waiters_n--;
    free(w);
}

void reg__lookup_timeouts(struct cluster_registry *reg, int64_t now)
{
    struct reg__group *g;
    while ((g = reg->grp_head) != NULL && g->deadline_ms <= now) {
        reg__group_unlink(reg, g); /* stays allocated until its GET is answered */
        size_t n = 0;
        for (struct cluster_lookup *w = g->head; w; w = w->next)
            n++;
        reg->st.lookup_timeouts += n;
        reg->st.errors++; /* one GET unanswered in time */
        reg__group_answer(reg, g, CLUSTER_E_TIMEOUT, NULL);
    }
}

int cluster_registry_forget(struct cluster_registry *reg, const char *id, size_t id_len)
{
    if (!reg || !util_valid_worker_id(id, id_len))
        return 0;
    return cluster_cache_del(reg->cache, id, id_len, 0);
}
