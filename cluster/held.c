/* cluster_registry: the workers this node holds. Registrations are asserted
 * in Redis by the assert script (pumped under an in-flight limit), refreshed
 * at a third of the route TTL, asserted again after a reconnection; session
 * ends become releases; a newer generation elsewhere becomes a takeover. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/registry_int.h"

/* ---- lists of held workers -------------------------------------------------------------- */

static struct reg__list *reg__list_of(struct cluster_registry *reg, enum reg__list_id id)
{
    switch (id) {
    case REG_L_DIRTY:
        return &reg->dirty;
    case REG_L_RETRY:
        return &reg->retry;
    case REG_L_REFRESH:
        return &reg->refresh;
    case REG_L_NONE:
        break;
    }
    return NULL;
}

static void reg__list_remove(struct cluster_registry *reg, struct cluster__held *e)
{
    struct reg__list *l = reg__list_of(reg, e->list);
    if (!l)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    e->list = REG_L_NONE;
    l->n--;
}

void reg__list_push(struct cluster_registry *reg, struct cluster__held *e, enum reg__list_id id)
{
    struct reg__list *l = reg__list_of(reg, id);
    reg__list_remove(reg, e);
    e->list = id;
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n++;
}

struct cluster__held *reg__held_find(const struct cluster_registry *reg, const char *id, size_t len)
{
    struct util_hnode *h =
        util_htab_find(&reg->held, id, len, util_htab_hash(&reg->held, id, len));
    return h ? (struct cluster__held *)((char *)h - offsetof(struct cluster__held, h)) : NULL;
}

/* Takes e out of the table and its list. It is freed now, or by its assert's reply. */
void reg__held_detach(struct cluster_registry *reg, struct cluster__held *e, int release)
{
    util_htab_remove(&reg->held, &e->h);
    reg__list_remove(reg, e);
    reg->held_n--;
    e->detached = 1;
    e->release = release ? 1 : 0;
}

/* ---- releases --------------------------------------------------------------------------- */

void reg__release_queue(struct cluster_registry *reg, const char *id, size_t len, uint64_t gen)
{
    struct reg__release *r;
    if (gen == 0 || reg->closing)
        return;
    while (reg->rel_n >= reg->max_release_queue && reg->rel_head) {
        struct reg__release *old = reg->rel_head;
        reg->rel_head = old->next;
        if (!reg->rel_head)
            reg->rel_tail = NULL;
        reg->rel_n--;
        reg->st.releases_dropped++;
        free(old);
    }
    r = malloc(sizeof(*r) + len + 1);
    if (!r) {
        reg->st.releases_dropped++;
        return; /* the record expires with its TTL */
    }
    r->next = NULL;
    r->gen = gen;
    r->id_len = len;
    memcpy(r->id, id, len);
    r->id[len] = '\0';
    if (reg->rel_tail)
        reg->rel_tail->next = r;
    else
        reg->rel_head = r;
    reg->rel_tail = r;
    reg->rel_n++;
}

/* Sends r: 0 (the reply frees it), 1 if r was unusable and freed, or an error (r still ours). */
static int reg__send_release(struct cluster_registry *reg, struct reg__release *r)
{
    char key[REG_ROUTE_KEY_MAX], value[CLUSTER_MAX_ROUTE_VALUE + 1];
    size_t kl = reg__route_key(reg, key, r->id, r->id_len);
    int vl = cluster_route_value_format(value, sizeof(value), r->gen, reg->node_id, reg->node_len);
    const char *argv[7] = {"EVALSHA",       reg->sha[CLUSTER_SCRIPT_RELEASE], "1", key, r->id, value,
                           reg->chan_events};
    size_t lens[7] = {7, 40, 1, kl, r->id_len, (size_t)(vl > 0 ? vl : 0), strlen(reg->chan_events)};
    struct cluster__req *rq;
    if (vl < 0) {
        free(r);
        return 1;
    }
    rq = reg__req_new(&reg->cmd, REQ_RELEASE);
    if (!rq)
        return CLUSTER_E_NOMEM;
    rq->rel = r;
    return reg__send(&reg->cmd, rq, 7, argv, lens);
}

/* ---- asserting held workers ------------------------------------------------------------- */

static int reg__send_assert(struct cluster_registry *reg, struct cluster__held *e)
{
    char key[REG_ROUTE_KEY_MAX], gen[21], floor[21], ttl[21];
    size_t kl = reg__route_key(reg, key, e->id, e->h.klen);
    const char *argv[11] = {"EVALSHA",
                            reg->sha[CLUSTER_SCRIPT_ASSERT],
                            "2",
                            key,
                            reg->key_gen,
                            e->id,
                            reg->node_id,
                            gen,
                            floor,
                            ttl,
                            reg->chan_events};
    size_t lens[11] = {7,
                       40,
                       1,
                       kl,
                       strlen(reg->key_gen),
                       e->h.klen,
                       reg->node_len,
                       cluster_format_u64(gen, e->gen),
                       cluster_format_u64(floor, e->floor),
                       cluster_format_u64(ttl, (uint64_t)reg->route_ttl_ms),
                       strlen(reg->chan_events)};
    struct cluster__req *rq = reg__req_new(&reg->cmd, REQ_ASSERT);
    int rc;
    if (!rq)
        return CLUSTER_E_NOMEM;
    rq->held = e;
    rq->seq = e->seq;
    if ((rc = reg__send(&reg->cmd, rq, 11, argv, lens)) != 0)
        return rc;
    e->inflight = 1;
    reg->inflight++;
    reg->st.asserts++;
    return 0;
}

/* Sends what is due while the command connection is up and the in-flight
 * limit allows: asserts first (registrations matter most), then releases. */
void reg__pump(struct cluster_registry *reg)
{
    while (!reg->closing && reg->cmd.state == REG_C_READY && reg->inflight < reg->max_inflight) {
        if (reg->dirty.head) {
            struct cluster__held *e = reg->dirty.head;
            reg__list_remove(reg, e);
            if (reg__send_assert(reg, e) != 0) {
                reg__list_push(reg, e, REG_L_DIRTY);
                return;
            }
        } else if (reg->rel_head) {
            struct reg__release *r = reg->rel_head;
            reg->rel_head = r->next;
            if (!reg->rel_head)
                reg->rel_tail = NULL;
            reg->rel_n--;
            r->next = NULL;
            int rc = reg__send_release(reg, r);
            if (rc < 0) {
                reg__release_queue(reg, r->id, r->id_len, r->gen);
                free(r);
                return;
            }
            if (rc == 0)
                reg->inflight++;
        } else {
            return;
        }
    }
}

/* Marks every held worker to be asserted again (Redis came back, or the
 * subscription was remade and messages may have been missed). */
void reg__reassert_all(struct cluster_registry *reg)
{
    for (size_t i = 0; i < reg->held.nb; i++)
        for (struct util_hnode *h = reg->held.b[i]; h; h = h->next) {
            struct cluster__held *e = (struct cluster__held *)((char *)h - offsetof(struct cluster__held, h));
            if (e->inflight)
                e->again = 1;
            else if (e->list != REG_L_DIRTY)
                reg__list_push(reg, e, REG_L_DIRTY);
        }
}

static void reg__takeover(struct cluster_registry *reg, struct cluster__held *e)
{
    char id[CLUSTER_MAX_ID_LEN + 1];
    size_t len = e->h.klen;
    memcpy(id, e->id, len + 1);
    reg__held_detach(reg, e, 0);
    if (!e->inflight)
        free(e);
    reg__log(reg, CLUSTER_LOG_INFO, "worker %s registered on another node: takeover", id);
    reg__call_takeover(reg, id, len);
}

void reg__assert_reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r)
{
    struct cluster__held *e = rq->held;
    struct cluster_route_value v;
    int status = 0, rc;

    e->inflight = 0;
    reg->inflight--;
    rc = r ? cluster_reply_assert(r, reg->node_id, reg->node_len, &status, &v) : CLUSTER_E_CONNECT;
    if (rc == 0)
        reg__saw_gen(reg, v.gen);
    if (e->detached) {
        if (e->release) {
            if (rc == 0 && status != CLUSTER_ASSERT_LOST)
                reg__release_queue(reg, e->id, e->h.klen, v.gen);
            else if (rc != 0)
                reg__release_queue(reg, e->id, e->h.klen, e->gen);
        }
        free(e);
        return;
    }
    if (rc != 0) {
        if (rc == CLUSTER_E_REDIS && r && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            reg__log(reg, CLUSTER_LOG_WARN, "redis lost the scripts (SCRIPT FLUSH?): reconnecting");
            reg__conn_fail(&reg->cmd, CLUSTER_E_REDIS);
        } else if (r) {
            reg__log(reg, CLUSTER_LOG_WARN, "assert of worker %s failed: %.200s", e->id,
                     r->type == REDIS_REPLY_ERROR && r->str ? r->str : cluster_strerror(rc));
        }
        if (e->gen == 0)
            e->gen = reg__local_gen(reg, e->floor); /* from now on its registration time decides */
        if (r) {
            e->when_ms = util_now_ms() + REG_RETRY_MS;
            reg__list_push(reg, e, REG_L_RETRY);
        } else {
            reg__list_push(reg, e, REG_L_DIRTY); /* connection lost: re-asserted when it is back */
        }
        return;
    }
    if (rq->seq != e->seq) {
        e->again = 0;
        reg__list_push(reg, e, REG_L_DIRTY); /* registered again meanwhile: assert the new one */
        return;
    }
    if (status == CLUSTER_ASSERT_LOST) {
        cluster_cache_put(reg->cache, e->id, e->h.klen, v.gen, v.node, v.node_len);
        reg__takeover(reg, e);
        return;
    }
    e->gen = v.gen;
    if (e->other_gen > e->gen) {
        reg__takeover(reg, e);
        return;
    }
    e->other_gen = 0;
    e->confirmed = 1;
    e->when_ms = util_now_ms();
    if (e->again) {
        e->again = 0;
        reg__list_push(reg, e, REG_L_DIRTY);
    } else {
        reg__list_push(reg, e, REG_L_REFRESH);
    }
}

/* ---- messages --------------------------------------------------------------------------- */

void reg__msg_set(struct cluster_registry *reg, const struct cluster_msg *m)
{
    reg__saw_gen(reg, m->gen);
    if (reg__is_self(reg, m->node, m->node_len))
        return;
    struct cluster__held *e = reg__held_find(reg, m->id, m->id_len);
    if (e) {
        if (e->gen == 0) {
            if (m->gen > e->other_gen)
                e->other_gen = m->gen; /* decided when our assert answers */
        } else if (m->gen >= e->gen) {
            cluster_cache_put(reg->cache, m->id, m->id_len, m->gen, m->node, m->node_len);
            reg__takeover(reg, e);
            return;
        } else if (!e->inflight) {
            /* an older generation elsewhere was written: Redis lost our record; assert it again */
            reg__list_push(reg, e, REG_L_DIRTY);
            reg__pump(reg);
        }
    }
    cluster_cache_put(reg->cache, m->id, m->id_len, m->gen, m->node, m->node_len);
    if (!e)
        reg__call_elsewhere(reg, m->id, m->id_len);
}

void reg__msg_del(struct cluster_registry *reg, const struct cluster_msg *m)
{
    if (reg__is_self(reg, m->node, m->node_len))
        return;
    cluster_cache_del(reg->cache, m->id, m->id_len, m->gen);
    struct cluster__held *e = reg__held_find(reg, m->id, m->id_len);
    if (e && e->gen != 0 && !e->inflight) {
        reg__list_push(reg, e, REG_L_DIRTY); /* another node's record was there: make sure ours is */
        reg__pump(reg);
    }
}
