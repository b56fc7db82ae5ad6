/* The route cache and member table (see cache.h). */
#include <stdlib.h>
#include <string.h>

#include "cluster/cache.h"
#include "util/htab.h"

struct cache__route {
    struct cache__route *lru_prev, *lru_next;   /* most recent at c->lru_head */
    struct cache__route *node_prev, *node_next; /* the routes of one member */
    uint64_t gen;
    uint16_t node; /* member slot index */
    struct util_hnode h;
    char id[]; /* klen bytes and a NUL */
};

struct cache__node {
    char id[CLUSTER_MAX_NODE_LEN + 1];
    char addr[CLUSTER_MAX_ADDR_LEN + 1];
    size_t id_len;
    uint64_t boot;
    enum cluster_node_state state;
    int64_t changed_ms; /* Redis time of the latest evidence applied; -1: none */
    uint32_t poll_mark;
    size_t routes;
    struct cache__route *head;
};

struct cluster_cache {
    struct util_htab tab;
    struct cache__route *lru_head, *lru_tail;
    size_t max_routes, max_bytes, max_nodes;
    size_t entry_bytes; /* routes' estimated allocation sizes */
    struct cache__node *nodes[CLUSTER_MAX_NODES];
    size_t nodes_used;
    uint32_t poll_mark;
    struct cluster_cache_stats st;
};

#define CACHE_KEY_OFF (offsetof(struct cache__route, id) - offsetof(struct cache__route, h))

/* What malloc really hands out for n bytes (glibc: 8 bytes of header, 16-byte granules). */
static size_t cache__alloc_size(size_t n)
{
    n = (n + 8 + 15) & ~(size_t)15;
    return n < 32 ? 32 : n;
}

static size_t cache__route_bytes(size_t id_len)
{
    return cache__alloc_size(offsetof(struct cache__route, id) + id_len + 1);
}

static size_t cache__bytes(const struct cluster_cache *c)
{
    return c->entry_bytes + util_htab_bytes(&c->tab) +
           c->nodes_used * cache__alloc_size(sizeof(struct cache__node)) + sizeof(*c);
}

int cluster_cache_new(const struct cluster_cache_limits *lim, uint64_t seed, struct cluster_cache **out)
{
    struct cluster_cache_limits l = {0, 0, 0};
    struct cluster_cache *c;
    *out = NULL;
    if (lim)
        l = *lim;
    if (!l.max_routes)
        l.max_routes = CLUSTER_CACHE_DEFAULT_ROUTES;
    if (!l.max_bytes)
        l.max_bytes = CLUSTER_CACHE_DEFAULT_BYTES;
    if (!l.max_nodes)
        l.max_nodes = CLUSTER_MAX_NODES;
    if (l.max_nodes > CLUSTER_MAX_NODES || l.max_bytes < 64 * 1024 || l.max_routes > (SIZE_MAX >> 8))
        return CLUSTER_E_INVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return CLUSTER_E_NOMEM;
    c->max_routes = l.max_routes;
    c->max_bytes = l.max_bytes;
    c->max_nodes = l.max_nodes;
    /* one bucket per route at most: beyond, chains get longer instead of the array */
    util_htab_init(&c->tab, CACHE_KEY_OFF, seed, l.max_routes);
    *out = c;
    return 0;
}

static struct cache__route *cache__from_h(struct util_hnode *h)
{
    return h ? (struct cache__route *)((char *)h - offsetof(struct cache__route, h)) : NULL;
}

static struct cache__route *cache__find(const struct cluster_cache *c, const char *id, size_t len)
{
    return cache__from_h(util_htab_find(&c->tab, id, len, util_htab_hash(&c->tab, id, len)));
}

static void cache__lru_unlink(struct cluster_cache *c, struct cache__route *r)
{
    if (r->lru_prev)
        r->lru_prev->lru_next = r->lru_next;
    else
        c->lru_head = r->lru_next;
    if (r->lru_next)
        r->lru_next->lru_prev = r->lru_prev;
    else
        c->lru_tail = r->lru_prev;
    r->lru_prev = r->lru_next = NULL;
}

static void cache__lru_front(struct cluster_cache *c, struct cache__route *r)
{
    r->lru_prev = NULL;
    r->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = r;
    else
        c->lru_tail = r;
    c->lru_head = r;
}

static void cache__node_unlink(struct cluster_cache *c, struct cache__route *r)
{
    struct cache__node *n = c->nodes[r->node];
    if (r->node_prev)
        r->node_prev->node_next = r->node_next;
    else
        n->head = r->node_next;
    if (r->node_next)
        r->node_next->node_prev = r->node_prev;
    r->node_prev = r->node_next = NULL;
    n->routes--;
}

static void cache__node_link(struct cluster_cache *c, struct cache__route *r, uint16_t idx)
{
    struct cache__node *n = c->nodes[idx];
    r->node = idx;
    r->node_prev = NULL;
    r->node_next = n->head;
    if (n->head)
        n->head->node_prev = r;
    n->head = r;
    n->routes++;
}

static void cache__remove(struct cluster_cache *c, struct cache__route *r)
{
    util_htab_remove(&c->tab, &r->h);
    cache__lru_unlink(c, r);
    cache__node_unlink(c, r);
    c->entry_bytes -= cache__route_bytes(r->h.klen);
    c->st.routes--;
    free(r);
}

void cluster_cache_free(struct cluster_cache *c)
{
    if (!c)
        return;
    struct cache__route *r = c->lru_head, *next;
    for (; r; r = next) {
        next = r->lru_next;
        free(r);
    }
    for (size_t i = 0; i < CLUSTER_MAX_NODES; i++)
        free(c->nodes[i]);
    util_htab_free(&c->tab);
    free(c);
}

/* ---- members ---------------------------------------------------------------------------- */

static int cache__node_find(const struct cluster_cache *c, const char *node, size_t len)
{
    for (size_t i = 0; i < c->max_nodes; i++) {
        const struct cache__node *n = c->nodes[i];
        if (n && n->id_len == len && memcmp(n->id, node, len) == 0)
            return (int)i;
    }
    return -1;
}

static void cache__node_copy(const struct cache__node *n, struct cluster_cache_node *out)
{
    if (!out)
        return;
    memcpy(out->id, n->id, sizeof(out->id));
    memcpy(out->addr, n->addr, sizeof(out->addr));
    out->boot = n->boot;
    out->state = n->state;
    out->routes = n->routes;
}

/* Finds node's slot or makes one (UNKNOWN), reusing a slot that is not UP
 * and has no routes when the table is full. Returns the index or a negative error. */
static int cache__node_get(struct cluster_cache *c, const char *node, size_t len)
{
    int i = cache__node_find(c, node, len), free_i = -1, reuse_i = -1;
    if (i >= 0)
        return i;
    for (size_t k = 0; k < c->max_nodes; k++) {
        const struct cache__node *n = c->nodes[k];
        if (!n && free_i < 0)
            free_i = (int)k;
        else if (n && n->state != CLUSTER_NODE_UP && n->routes == 0 && reuse_i < 0)
            reuse_i = (int)k;
    }
    if (free_i >= 0) {
        c->nodes[free_i] = calloc(1, sizeof(struct cache__node));
        if (!c->nodes[free_i])
            return CLUSTER_E_NOMEM;
        c->nodes_used++;
        i = free_i;
    } else if (reuse_i >= 0) {
        i = reuse_i;
        memset(c->nodes[i], 0, sizeof(struct cache__node));
    } else {
        return CLUSTER_E_LIMIT;
    }
    struct cache__node *n = c->nodes[i];
    memcpy(n->id, node, len);
    n->id[len] = '\0';
    n->id_len = len;
    n->state = CLUSTER_NODE_UNKNOWN;
    n->changed_ms = -1;
    return i;
}

static void cache__drop_routes(struct cluster_cache *c, struct cache__node *n)
{
    while (n->head) {
        c->st.dropped++;
        cache__remove(c, n->head);
    }
}

int cluster_cache_member_up(struct cluster_cache *c, const char *node, size_t node_len, const char *addr,
                            size_t addr_len, uint64_t boot, int64_t ms, int from_poll,
                            struct cluster_cache_node *old)
{
    if (!cluster_valid_node(node, node_len) || !cluster_valid_addr(addr, addr_len))
        return CLUSTER_E_INVAL;
    int i = cache__node_get(c, node, node_len);
    if (i < 0)
        return i;
    struct cache__node *n = c->nodes[i];
    int same =
        n->addr[0] && n->boot == boot && strlen(n->addr) == addr_len && memcmp(n->addr, addr, addr_len) == 0;
    int ev = CLUSTER_MEMBER_NONE;

    if (from_poll) {
        n->poll_mark = c->poll_mark;
        if (n->changed_ms >= ms)
            return CLUSTER_MEMBER_NONE; /* a message overtook this poll */
    }
    if (n->state == CLUSTER_NODE_UP && !same) {
        cache__node_copy(n, old);
        cache__drop_routes(c, n);
        ev = CLUSTER_MEMBER_RESTARTED;
    } else if (n->state != CLUSTER_NODE_UP) {
        /* routes learnt while it was not up are kept, unless they name another incarnation */
        if (n->addr[0] && !same)
            cache__drop_routes(c, n);
        ev = CLUSTER_MEMBER_UP;
    }
    memcpy(n->addr, addr, addr_len);
    n->addr[addr_len] = '\0';
    n->boot = boot;
    n->state = CLUSTER_NODE_UP;
    if (ms > n->changed_ms)
        n->changed_ms = ms;
    return ev;
}

int cluster_cache_member_down(struct cluster_cache *c, const char *node, size_t node_len,
                              const uint64_t *boot, int64_t ms, struct cluster_cache_node *old)
{
    if (!cluster_valid_node(node, node_len))
        return CLUSTER_E_INVAL;
    int i = cache__node_find(c, node, node_len);
    if (i < 0)
        return CLUSTER_MEMBER_NONE;
    struct cache__node *n = c->nodes[i];
    if (boot && n->state == CLUSTER_NODE_UP && n->boot != *boot)
        return CLUSTER_MEMBER_NONE;
    int was_up = n->state == CLUSTER_NODE_UP;
    if (was_up)
        cache__node_copy(n, old);
    cache__drop_routes(c, n);
    n->state = CLUSTER_NODE_DOWN;
    if (ms > n->changed_ms)
        n->changed_ms = ms;
    return was_up ? CLUSTER_MEMBER_DOWN : CLUSTER_MEMBER_NONE;
}

void cluster_cache_poll_begin(struct cluster_cache *c)
{
    c->poll_mark++;
}

int cluster_cache_poll_next_down(struct cluster_cache *c, int64_t ms, struct cluster_cache_node *out)
{
    for (size_t i = 0; i < c->max_nodes; i++) {
        struct cache__node *n = c->nodes[i];
        if (!n || n->state != CLUSTER_NODE_UP || n->poll_mark == c->poll_mark || n->changed_ms >= ms)
            continue;
        cache__node_copy(n, out);
        cache__drop_routes(c, n);
        n->state = CLUSTER_NODE_DOWN;
        n->changed_ms = ms;
        return 1;
    }
    return 0;
}

void cluster_cache_members_reset_clock(struct cluster_cache *c)
{
    for (size_t i = 0; i < c->max_nodes; i++)
        if (c->nodes[i])
            c->nodes[i]->changed_ms = -1;
}

enum cluster_node_state cluster_cache_node_state(const struct cluster_cache *c, const char *node,
                                                 size_t node_len)
{
    int i = cache__node_find(c, node, node_len);
    return i < 0 ? CLUSTER_NODE_UNKNOWN : c->nodes[i]->state;
}

int cluster_cache_node_at(const struct cluster_cache *c, size_t i, struct cluster_cache_node *out)
{
    if (i >= c->max_nodes)
        return CLUSTER_E_INVAL;
    if (!c->nodes[i])
        return 0;
    cache__node_copy(c->nodes[i], out);
    return 1;
}

/* ---- routes ----------------------------------------------------------------------------- */

static void cache__evict(struct cluster_cache *c, const struct cache__route *keep)
{
    while (c->lru_tail && (c->st.routes > c->max_routes || cache__bytes(c) > c->max_bytes)) {
        struct cache__route *r = c->lru_tail;
        if (r == keep) {
            if (!r->lru_prev)
                break;
            r = r->lru_prev;
        }
        c->st.evictions++;
        cache__remove(c, r);
    }
}

int cluster_cache_put(struct cluster_cache *c, const char *id, size_t id_len, uint64_t gen, const char *node,
                      size_t node_len)
{
    if (!util_valid_worker_id(id, id_len) || !cluster_valid_node(node, node_len) || gen == 0 ||
        gen > CLUSTER_GEN_MAX)
        return CLUSTER_E_INVAL;
    struct cache__route *r = cache__find(c, id, id_len);
    if (r && r->gen >= gen) {
        c->st.stale++;
        return 0;
    }
    int idx = cache__node_get(c, node, node_len);
    if (idx < 0)
        return idx;
    if (r) {
        r->gen = gen;
        if (r->node != idx) {
            cache__node_unlink(c, r);
            cache__node_link(c, r, (uint16_t)idx);
        }
        cache__lru_unlink(c, r);
        cache__lru_front(c, r);
        return 1;
    }
    r = malloc(offsetof(struct cache__route, id) + id_len + 1);
    if (!r)
        return CLUSTER_E_NOMEM;
    memset(r, 0, sizeof(*r));
    memcpy(r->id, id, id_len);
    r->id[id_len] = '\0';
    r->gen = gen;
    r->h.klen = (uint16_t)id_len;
    r->h.hash = util_htab_hash(&c->tab, id, id_len);
    if (util_htab_insert(&c->tab, &r->h) != 0) {
        free(r);
        return CLUSTER_E_NOMEM;
    }
    cache__node_link(c, r, (uint16_t)idx);
    cache__lru_front(c, r);
    c->entry_bytes += cache__route_bytes(id_len);
    c->st.routes++;
    cache__evict(c, r);
    return 1;
}

static void cache__fill(const struct cluster_cache *c, const struct cache__route *r,
                        struct cluster_cache_route *out)
{
    if (!out)
        return;
    out->gen = r->gen;
    out->node = c->nodes[r->node]->id;
    out->addr = c->nodes[r->node]->addr;
}

int cluster_cache_get(struct cluster_cache *c, const char *id, size_t id_len, struct cluster_cache_route *out)
{
    struct cache__route *r = id && id_len <= CLUSTER_MAX_ID_LEN ? cache__find(c, id, id_len) : NULL;
    if (!r || c->nodes[r->node]->state != CLUSTER_NODE_UP) {
        c->st.misses++;
        return 0;
    }
    c->st.hits++;
    if (c->lru_head != r) {
        cache__lru_unlink(c, r);
        cache__lru_front(c, r);
    }
    cache__fill(c, r, out);
    return 1;
}

int cluster_cache_peek(const struct cluster_cache *c, const char *id, size_t id_len,
                       struct cluster_cache_route *out, enum cluster_node_state *state)
{
    const struct cache__route *r = id && id_len <= CLUSTER_MAX_ID_LEN ? cache__find(c, id, id_len) : NULL;
    if (!r)
        return 0;
    cache__fill(c, r, out);
    if (state)
        *state = c->nodes[r->node]->state;
    return 1;
}

int cluster_cache_del(struct cluster_cache *c, const char *id, size_t id_len, uint64_t gen)
{
    struct cache__route *r = id && id_len <= CLUSTER_MAX_ID_LEN ? cache__find(c, id, id_len) : NULL;
    if (!r || (gen != 0 && r->gen > gen))
        return 0;
    cache__remove(c, r);
    return 1;
}

void cluster_cache_stats(const struct cluster_cache *c, struct cluster_cache_stats *st)
{
    *st = c->st;
    st->bytes = cache__bytes(c);
    st->max_routes = c->max_routes;
    st->max_bytes = c->max_bytes;
    st->nodes = c->nodes_used;
    st->nodes_up = 0;
    for (size_t i = 0; i < c->max_nodes; i++)
        if (c->nodes[i] && c->nodes[i]->state == CLUSTER_NODE_UP)
            st->nodes_up++;
}
