/* libFuzzer target for cluster/cache.c: the input is a script of operations
 * on a small cache (tight count and byte limits, 4 member slots, 6 nodes and
 * 24 worker ids to choose from), checked against a model after every step.
 *
 * Each operation is 3 bytes: op, a, b.
 *   op % 8 == 0  put     id a%24, gen b+1, node a/24%6
 *            1  get     id a%24
 *            2  del     id a%24, gen b (0: any)
 *            3  up      node a%6, addr b%3, boot b/3%2, ms b, from message
 *            4  poll    nodes whose bit is set in a are present, at ms b; then downs
 *            5  leave   node a%6, boot b%2 (or any when b&4), ms b
 *            6  reset the members' clock
 *            7  peek    id a%24
 * Invariants: counts and bytes within the limits; a route is only answered
 * when its node is up, with the newest generation put and not deleted or
 * dropped since; no route survives its node going down or restarting. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IDS 24
#define NODES 6
#define MAX_ROUTES 16

struct model_route {
    uint64_t gen; /* 0: absent (or possibly evicted: see maybe) */
    int node;
};

#define S(x) x, strlen(x)

/* How many cached routes name node. */
static int no_route_of(const struct cluster_cache *c, const char *node)
{
    char id[8];
    int n = 0;
    for (int j = 0; j < IDS; j++) {
        struct cluster_cache_route r;
        snprintf(id, sizeof(id), "w%d", j);
        if (cluster_cache_peek(c, id, strlen(id), &r, NULL) && strcmp(r.node, node) == 0)
            n++;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cluster_cache_limits lim = {MAX_ROUTES, 64 * 1024, 4};
    struct cluster_cache *c;
    struct model_route m[IDS];
    char id[8], node[8], addr[16];
    if (size > 3 * 4096 || cluster_cache_new(&lim, 7, &c) != 0)
        return 0;
    memset(m, 0, sizeof(m));
    for (size_t p = 0; p + 3 <= size; p += 3) {
        uint8_t op = data[p] % 8, a = data[p + 1], b = data[p + 2];
        struct cluster_cache_route r;
        struct cluster_cache_node old;
        enum cluster_node_state st;
        int i = a % IDS, n = a / IDS % NODES, rc;
        snprintf(id, sizeof(id), "w%d", i);
        switch (op) {
        case 0:
            snprintf(node, sizeof(node), "n%d", n);
            rc = cluster_cache_put(c, id, strlen(id), (uint64_t)b + 1, node, strlen(node));
            if (rc == 1) {
                m[i].gen = (uint64_t)b + 1;
                m[i].node = n;
            } else if (rc == 0) {
                if (!m[i].gen || m[i].gen < (uint64_t)b + 1)
                    abort(); /* refused although nothing newer was cached */
            } else if (rc != CLUSTER_E_LIMIT) {
                abort();
            }
            break;
        case 1:
        case 7:
            rc = op == 1 ? cluster_cache_get(c, id, strlen(id), &r)
                         : cluster_cache_peek(c, id, strlen(id), &r, &st);
            if (rc == 1) {
                if (!m[i].gen || r.gen != m[i].gen || r.node[0] != 'n' || r.node[1] - '0' != m[i].node)
                    abort();
                if (op == 1 && cluster_cache_node_state(c, r.node, strlen(r.node)) != CLUSTER_NODE_UP)
                    abort();
            } else {
                if (op == 7)
                    m[i].gen = 0; /* absent: dropped or evicted */
            }
            break;
        case 2:
            rc = cluster_cache_del(c, id, strlen(id), b);
            if (rc == 1 && (!m[i].gen || (b && m[i].gen > b)))
                abort();
            if (rc == 1 || (m[i].gen && (b == 0 || m[i].gen <= b)))
                m[i].gen = 0; /* (rc 0 there means it had been evicted) */
            break;
        case 3:
            snprintf(node, sizeof(node), "n%d", a % NODES);
            snprintf(addr, sizeof(addr), "h%d:1", b % 3);
            rc = cluster_cache_member_up(c, node, strlen(node), addr, strlen(addr), (uint64_t)(b / 3 % 2), b,
                                         0, &old);
            if (rc < 0 && rc != CLUSTER_E_LIMIT)
                abort();
            if (rc == CLUSTER_MEMBER_RESTARTED && no_route_of(c, node) != 0)
                abort();
            if (rc >= 0 && cluster_cache_node_state(c, node, strlen(node)) != CLUSTER_NODE_UP)
                abort();
            break;
        case 4:
            cluster_cache_poll_begin(c);
            for (int k = 0; k < NODES; k++)
                if (a >> k & 1) {
                    snprintf(node, sizeof(node), "n%d", k);
                    cluster_cache_member_up(c, node, strlen(node), "h0:1", 4, 0, b, 1, &old);
                }
            while (cluster_cache_poll_next_down(c, b, &old) == 1) {
                if (a >> (old.id[1] - '0') & 1)
                    abort(); /* it was present in the poll */
                if (no_route_of(c, old.id) != 0 ||
                    cluster_cache_node_state(c, S(old.id)) != CLUSTER_NODE_DOWN)
                    abort();
            }
            break;
        case 5: {
            uint64_t boot = b % 2;
            snprintf(node, sizeof(node), "n%d", a % NODES);
            rc = cluster_cache_member_down(c, node, strlen(node), b & 4 ? NULL : &boot, b, &old);
            if ((rc == CLUSTER_MEMBER_DOWN ||
                 cluster_cache_node_state(c, node, strlen(node)) != CLUSTER_NODE_UP) &&
                no_route_of(c, node) != 0)
                abort();
            break;
        }
        case 6:
            cluster_cache_members_reset_clock(c);
            break;
        }
        /* global invariants */
        struct cluster_cache_stats cs;
        cluster_cache_stats(c, &cs);
        if (cs.routes > MAX_ROUTES || cs.bytes > lim.max_bytes || cs.nodes > 4 || cs.nodes_up > cs.nodes)
            abort();
        size_t live = 0;
        for (int j = 0; j < IDS; j++) {
            snprintf(id, sizeof(id), "w%d", j);
            int present = cluster_cache_peek(c, id, strlen(id), &r, &st);
            if (present && (!m[j].gen || r.gen != m[j].gen))
                abort(); /* a route the model does not have, or an old generation */
            if (!present)
                m[j].gen = 0; /* evicted */
            live += present;
        }
        if (live != cs.routes)
            abort();
    }
    cluster_cache_free(c);
    return 0;
}
