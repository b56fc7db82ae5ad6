/* cluster_registry: node info for the admin pages. This node's info (workers,
 * draining) rides on its heartbeat into <prefix>info:<node>, with the member
 * key's TTL; cluster_registry_cluster_info() reads the members' info keys
 * with one MGET; cluster_registry_members() lists the members that are up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/registry_int.h"

/* ---- this node's info ------------------------------------------------------------------- */

int cluster_registry_set_info(struct cluster_registry *reg, uint32_t workers, int draining)
{
    if (!reg)
        return CLUSTER_E_INVAL;
    draining = draining ? 1 : 0;
    if (!reg->info_set || workers != reg->info_workers || draining != reg->info_draining)
        reg->info_dirty = 1;
    reg->info_set = 1;
    reg->info_workers = workers;
    reg->info_draining = draining;
    return 0;
}

size_t reg__info_value(const struct cluster_registry *reg, char *out)
{
    int n = reg->info_set ? cluster_info_value_format(out, CLUSTER_MAX_INFO_VALUE + 1, reg->info_workers,
                                                      reg->info_draining, reg->boot)
                          : 0;
    if (n <= 0) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

void reg__info_sent(struct cluster_registry *reg, int64_t now)
{
    if (!reg->info_set)
        return;
    reg->info_dirty = 0;
    reg->info_sent_ms = now;
}

int reg__info_due(const struct cluster_registry *reg, int64_t now)
{
    return reg->info_dirty && now - reg->info_sent_ms >= REG_INFO_MIN_MS;
}

/* ---- members ---------------------------------------------------------------------------- */

void cluster_registry_members(const struct cluster_registry *reg,
                              void (*cb)(const char *node, const char *addr, void *ud), void *ud)
{
    struct cluster_cache_node m;
    int rc;
    if (!reg || !cb)
        return;
    for (size_t i = 0; (rc = cluster_cache_node_at(reg->cache, i, &m)) >= 0; i++)
        if (rc == 1 && m.state == CLUSTER_NODE_UP && !reg__is_self(reg, m.id, strlen(m.id)))
            cb(m.id, m.addr, ud);
}

/* ---- cluster_registry_cluster_info() ---------------------------------------------------- */

/* The members that are up, copied into peers (NULL: only counted). Returns how many. */
static size_t info__members(const struct cluster_registry *reg, struct reg__info_peer *peers, size_t cap)
{
    struct cluster_cache_node m;
    size_t n = 0;
    int rc;
    for (size_t i = 0; (rc = cluster_cache_node_at(reg->cache, i, &m)) >= 0; i++) {
        if (rc != 1 || m.state != CLUSTER_NODE_UP || reg__is_self(reg, m.id, strlen(m.id)))
            continue;
        if (peers && n < cap) {
            memcpy(peers[n].node, m.id, sizeof(m.id));
            memcpy(peers[n].addr, m.addr, sizeof(m.addr));
            peers[n].boot = m.boot;
        }
        n++;
    }
    return n;
}

static int info__peer_cmp(const void *a, const void *b)
{
    return strcmp(((const struct reg__info_peer *)a)->node, ((const struct reg__info_peer *)b)->node);
}

/* A request with a snapshot of the members, sorted. NULL when out of memory. */
static struct cluster_info_req *info__new(struct cluster_registry *reg)
{
    size_t cap = info__members(reg, NULL, 0);
    struct cluster_info_req *q =
        calloc(1, sizeof(*q) + (cap + 1) * sizeof(q->out[0]) + cap * sizeof(struct reg__info_peer));
    if (!q)
        return NULL;
    q->reg = reg;
    q->peers = (struct reg__info_peer *)(void *)(q->out + cap + 1);
    q->n = info__members(reg, q->peers, cap);
    if (q->n > cap)
        q->n = cap;
    qsort(q->peers, q->n, sizeof(q->peers[0]), info__peer_cmp);
    return q;
}

/* Sends "MGET <this node's info key> <each member's info key>" for q. Returns 0 or an error (q still ours).
 */
static int info__send(struct cluster_registry *reg, struct cluster_info_req *q)
{
    const size_t key_cap = sizeof(reg->key_info);
    const char **argv = calloc(q->n + 2, sizeof(*argv));
    size_t *lens = calloc(q->n + 2, sizeof(*lens));
    char *keys = malloc(q->n * key_cap + 1);
    struct cluster__req *rq = reg__req_new(&reg->cmd, REQ_INFO);
    int rc = CLUSTER_E_NOMEM;
    if (!argv || !lens || !keys || !rq) {
        free(rq);
        goto out;
    }
    argv[0] = "MGET";
    lens[0] = 4;
    argv[1] = reg->key_info;
    lens[1] = strlen(reg->key_info);
    for (size_t i = 0; i < q->n; i++) {
        char *k = keys + i * key_cap;
        argv[i + 2] = k;
        lens[i + 2] = (size_t)snprintf(k, key_cap, "%sinfo:%s", reg->prefix, q->peers[i].node);
    }
    rq->info = q;
    rc = reg__send(&reg->cmd, rq, (int)(q->n + 2), argv, lens); /* frees rq on failure */
out:
    free(argv);
    free(lens);
    free(keys);
    return rc;
}

int cluster_registry_cluster_info(struct cluster_registry *reg, cluster_info_cb *cb, void *ud,
                                  struct cluster_info_req **handle)
{
    struct cluster_info_req *q;
    int rc;
    if (handle)
        *handle = NULL;
    if (!reg || !cb)
        return CLUSTER_E_INVAL;
    if (reg->closing)
        return CLUSTER_E_CLOSED;
    if (reg->cmd.state != REG_C_READY)
        return CLUSTER_E_DOWN;
    if (reg->info_n >= CLUSTER_MAX_INFO_REQS)
        return CLUSTER_E_LIMIT;
    if (!(q = info__new(reg)))
        return CLUSTER_E_NOMEM;
    if ((rc = info__send(reg, q)) != 0) {
        free(q);
        return rc;
    }
    q->cb = cb;
    q->ud = ud;
    /* answered by the tick: at most REG_TICK_MS late, so aim that much early */
    q->deadline_ms =
        util_now_ms() + (reg->command_timeout_ms > 2 * REG_TICK_MS ? reg->command_timeout_ms - REG_TICK_MS
                                                                   : reg->command_timeout_ms);
    q->pending = 1;
    q->prev = reg->info_tail;
    if (reg->info_tail)
        reg->info_tail->next = q;
    else
        reg->info_head = q;
    reg->info_tail = q;
    reg->info_n++;
    if (handle)
        *handle = q;
    return 0;
}

/* Takes q out of the pending list: its callback is not due any more. */
static void info__unlink(struct cluster_registry *reg, struct cluster_info_req *q)
{
    if (!q->pending)
        return;
    if (q->prev)
        q->prev->next = q->next;
    else
        reg->info_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        reg->info_tail = q->prev;
    q->prev = q->next = NULL;
    q->pending = 0;
}

void cluster_info_cancel(struct cluster_info_req *q)
{
    if (!q || !q->pending)
        return;
    info__unlink(q->reg, q);
    q->cb = NULL; /* the MGET's reply frees it */
}

static void info__call(struct cluster_registry *reg, struct cluster_info_req *q, int result, size_t n)
{
    if (reg->closing || !q->cb)
        return;
    reg->cb_depth++;
    q->cb(reg, result, result == 0 ? q->out : NULL, result == 0 ? n : 0, q->ud);
    reg->cb_depth--;
}

/* Fills q->out from a checked MGET reply. Returns the number of entries. */
static size_t info__fill(struct cluster_registry *reg, struct cluster_info_req *q, const redisReply *r)
{
    struct cluster_node_info *o = q->out;
    o[0] = (struct cluster_node_info){reg->node_id, reg->addr, 1, reg->info_set, 0, 0};
    if (reg->info_set) {
        o[0].workers = reg->info_workers;
        o[0].draining = reg->info_draining;
    }
    for (size_t i = 0; i < q->n; i++) {
        struct cluster_info_value v;
        int found = 0;
        struct cluster_node_info *e = &o[i + 1];
        *e = (struct cluster_node_info){q->peers[i].node, q->peers[i].addr, 0, 0, 0, 0};
        if (cluster_reply_info(r, i + 1, &found, &v) != 0)
            reg__log(reg, CLUSTER_LOG_DEBUG, "info of node %s malformed or of another version: ignored",
                     q->peers[i].node);
        else if (found && v.boot == q->peers[i].boot) { /* else another incarnation's */
            e->known = 1;
            e->workers = v.workers;
            e->draining = v.draining;
        }
    }
    return q->n + 1;
}

void reg__info_reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r)
{
    struct cluster_info_req *q = rq->info;
    reg->info_n--;
    if (!q->pending || reg->closing) { /* answered (timeout), cancelled, or the registry is going */
        info__unlink(reg, q);
        free(q);
        return;
    }
    info__unlink(reg, q);
    int rc = r ? cluster_reply_mget(r, q->n + 1) : CLUSTER_E_DOWN;
    if (rc != 0) {
        if (r)
            reg__log(reg, CLUSTER_LOG_WARN, "reading the nodes' info failed: %.200s",
                     r->type == REDIS_REPLY_ERROR && r->str ? r->str : cluster_strerror(rc));
        info__call(reg, q, rc, 0);
    } else {
        info__call(reg, q, 0, info__fill(reg, q, r));
    }
    free(q);
}

void reg__info_timeouts(struct cluster_registry *reg, int64_t now)
{
    struct cluster_info_req *q;
    while (!reg->closing && (q = reg->info_head) != NULL && q->deadline_ms <= now) {
        info__unlink(reg, q); /* stays allocated until its MGET is answered */
        reg->st.errors++;
        info__call(reg, q, CLUSTER_E_TIMEOUT, 0);
    }
}
