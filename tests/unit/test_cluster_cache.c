/* cluster/cache.c: the route cache (generations, LRU, limits, memory
 * accounting, per-node drops) and the member table (up, down, restarts,
 * polls racing messages). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cache.h"

#define S(x) x, strlen(x)

static struct cluster_cache *mk(size_t routes, size_t bytes, size_t nodes)
{
    struct cluster_cache_limits l = {routes, bytes, nodes};
    struct cluster_cache *c = NULL;
    assert_int_equal(cluster_cache_new(&l, 42, &c), 0);
    assert_non_null(c);
    return c;
}

static struct cluster_cache_stats stats(const struct cluster_cache *c)
{
    struct cluster_cache_stats st;
    cluster_cache_stats(c, &st);
    return st;
}

static void up(struct cluster_cache *c, const char *node, const char *addr, uint64_t boot, int64_t ms,
               int want)
{
    int ev = cluster_cache_member_up(c, S(node), S(addr), boot, ms, 0, NULL);
    if (ev != want)
        fail_msg("member_up(%s): %d, want %d", node, ev, want);
}

static void test_put_get(void **state)
{
    struct cluster_cache *c = mk(0, 0, 0);
    struct cluster_cache_route r;
    enum cluster_node_state ns;
    (void)state;

    assert_int_equal(cluster_cache_put(c, S("w1"), 100, S("A")), 1);
    /* node A never seen: cached, but no answer */
    assert_int_equal(cluster_cache_get(c, S("w1"), &r), 0);
    assert_int_equal(cluster_cache_peek(c, S("w1"), &r, &ns), 1);
    assert_int_equal(ns, CLUSTER_NODE_UNKNOWN);
    assert_string_equal(r.addr, "");
    up(c, "A", "10.0.0.1:7000", 1, 1000, CLUSTER_MEMBER_UP);
    assert_int_equal(cluster_cache_get(c, S("w1"), &r), 1);
    assert_true(r.gen == 100);
    assert_string_equal(r.node, "A");
    assert_string_equal(r.addr, "10.0.0.1:7000");
    assert_int_equal(cluster_cache_get(c, S("nope"), &r), 0);

    /* older and equal generations change nothing */
    assert_int_equal(cluster_cache_put(c, S("w1"), 99, S("B")), 0);
    assert_int_equal(cluster_cache_put(c, S("w1"), 100, S("B")), 0);
    assert_int_equal(cluster_cache_get(c, S("w1"), &r), 1);
    assert_string_equal(r.node, "A");
    /* newer moves it to B (UNKNOWN: no answer until B is up) */
    assert_int_equal(cluster_cache_put(c, S("w1"), 101, S("B")), 1);
    assert_int_equal(cluster_cache_get(c, S("w1"), &r), 0);
    up(c, "B", "10.0.0.2:7000", 2, 1000, CLUSTER_MEMBER_UP);
    assert_int_equal(cluster_cache_get(c, S("w1"), &r), 1);
    assert_string_equal(r.node, "B");
    assert_true(r.gen == 101);

    struct cluster_cache_stats st = stats(c);
    assert_int_equal(st.routes, 1);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.stale, 2);
    assert_int_equal(st.nodes, 2);
    assert_int_equal(st.nodes_up, 2);

    /* del: only an older-or-equal generation, or 0 */
    assert_int_equal(cluster_cache_del(c, S("w1"), 100), 0);
    assert_int_equal(cluster_cache_del(c, S("w1"), 101), 1);
    assert_int_equal(cluster_cache_del(c, S("w1"), 101), 0);
    assert_int_equal(cluster_cache_put(c, S("w1"), 5, S("A")), 1);
    assert_int_equal(cluster_cache_del(c, S("w1"), 0), 1);
    assert_int_equal(stats(c).routes, 0);

    /* bad input */
    assert_int_equal(cluster_cache_put(c, S("a b"), 1, S("A")), CLUSTER_E_INVAL);
    assert_int_equal(cluster_cache_put(c, S("w"), 0, S("A")), CLUSTER_E_INVAL);
    assert_int_equal(cluster_cache_put(c, S("w"), CLUSTER_GEN_MAX + 1, S("A")), CLUSTER_E_INVAL);
    assert_int_equal(cluster_cache_put(c, S("w"), 1, S("A~")), CLUSTER_E_INVAL);
    assert_int_equal(cluster_cache_get(c, NULL, 0, &r), 0);
    assert_int_equal(cluster_cache_member_up(c, S("A"), S("noport"), 1, 1, 0, NULL), CLUSTER_E_INVAL);
    cluster_cache_free(c);
}

static void test_node_down_drops_routes(void **state)
{
    struct cluster_cache *c = mk(0, 0, 0);
    struct cluster_cache_node old;
    struct cluster_cache_route r;
    char id[32];
    (void)state;
    up(c, "A", "a:1", 1, 10, CLUSTER_MEMBER_UP);
    up(c, "B", "b:1", 2, 10, CLUSTER_MEMBER_UP);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        assert_int_equal(cluster_cache_put(c, id, strlen(id), (uint64_t)i + 1, i % 3 ? "A" : "B", 1), 1);
    }
    assert_int_equal(stats(c).routes, 1000);
    /* a leave from an old incarnation of A changes nothing */
    uint64_t wrong = 9;
    assert_int_equal(cluster_cache_member_down(c, S("A"), &wrong, 20, &old), CLUSTER_MEMBER_NONE);
    uint64_t right = 1;
    assert_int_equal(cluster_cache_member_down(c, S("A"), &right, 20, &old), CLUSTER_MEMBER_DOWN);
    assert_string_equal(old.id, "A");
    assert_string_equal(old.addr, "a:1");
    assert_int_equal(old.routes, 666);
    struct cluster_cache_stats st = stats(c);
    assert_int_equal(st.routes, 334);
    assert_int_equal(st.dropped, 666);
    assert_int_equal(st.nodes_up, 1);
    assert_int_equal(cluster_cache_get(c, S("w1"), &r), 0);
    assert_int_equal(cluster_cache_peek(c, S("w1"), &r, NULL), 0);
    assert_int_equal(cluster_cache_get(c, S("w3"), &r), 1);
    assert_string_equal(r.node, "B");
    assert_int_equal(cluster_cache_node_state(c, S("A")), CLUSTER_NODE_DOWN);
    assert_int_equal(cluster_cache_node_state(c, S("Z")), CLUSTER_NODE_UNKNOWN);
    /* down twice: nothing more */
    assert_int_equal(cluster_cache_member_down(c, S("A"), NULL, 21, &old), CLUSTER_MEMBER_NONE);
    assert_int_equal(cluster_cache_member_down(c, S("nobody"), NULL, 21, &old), CLUSTER_MEMBER_NONE);
    /* back up */
    up(c, "A", "a:1", 1, 30, CLUSTER_MEMBER_UP);
    cluster_cache_free(c);
}

static void test_restart(void **state)
{
    struct cluster_cache *c = mk(0, 0, 0);
    struct cluster_cache_node old;
    struct cluster_cache_route r;
    (void)state;
    up(c, "A", "a:1", 1, 10, CLUSTER_MEMBER_UP);
    assert_int_equal(cluster_cache_put(c, S("w"), 7, S("A")), 1);
    up(c, "A", "a:1", 1, 11, CLUSTER_MEMBER_NONE); /* same incarnation */
    assert_int_equal(cluster_cache_member_up(c, S("A"), S("a:2"), 1, 12, 0, &old), CLUSTER_MEMBER_RESTARTED);
    assert_string_equal(old.addr, "a:1");
    assert_int_equal(old.routes, 1);
    assert_int_equal(cluster_cache_get(c, S("w"), &r), 0);
    assert_int_equal(cluster_cache_put(c, S("w"), 8, S("A")), 1);
    assert_int_equal(cluster_cache_member_up(c, S("A"), S("a:2"), 2, 13, 0, &old), CLUSTER_MEMBER_RESTARTED);
    assert_true(old.boot == 1);
    assert_int_equal(stats(c).routes, 0);
    struct cluster_cache_node n;
    assert_int_equal(cluster_cache_node_at(c, 0, &n), 1);
    assert_string_equal(n.id, "A");
    assert_string_equal(n.addr, "a:2");
    assert_true(n.boot == 2);
    assert_int_equal(n.state, CLUSTER_NODE_UP);
    assert_int_equal(cluster_cache_node_at(c, 1, &n), 0);
    assert_int_equal(cluster_cache_node_at(c, CLUSTER_MAX_NODES, &n), CLUSTER_E_INVAL);
    cluster_cache_free(c);
}

/* A poll that was taken before a message (on the other connection) must not undo it. */
static void test_poll_vs_messages(void **state)
{
    struct cluster_cache *c = mk(0, 0, 0);
    struct cluster_cache_node old;
    (void)state;

    /* poll at 100 sees A and B */
    cluster_cache_poll_begin(c);
    assert_int_equal(cluster_cache_member_up(c, S("A"), S("a:1"), 1, 100, 1, &old), CLUSTER_MEMBER_UP);
    assert_int_equal(cluster_cache_member_up(c, S("B"), S("b:1"), 2, 100, 1, &old), CLUSTER_MEMBER_UP);
    assert_int_equal(cluster_cache_poll_next_down(c, 100, &old), 0);

    /* C joins at 150 (message); a poll taken at 140 without C arrives later: C stays */
    up(c, "C", "c:1", 3, 150, CLUSTER_MEMBER_UP);
    cluster_cache_poll_begin(c);
    cluster_cache_member_up(c, S("A"), S("a:1"), 1, 140, 1, &old);
    cluster_cache_member_up(c, S("B"), S("b:1"), 2, 140, 1, &old);
    assert_int_equal(cluster_cache_poll_next_down(c, 140, &old), 0);
    assert_int_equal(cluster_cache_node_state(c, S("C")), CLUSTER_NODE_UP);

    /* B leaves at 160 (message); a poll taken at 155 still listing B: B stays down */
    uint64_t b = 2;
    assert_int_equal(cluster_cache_member_down(c, S("B"), &b, 160, &old), CLUSTER_MEMBER_DOWN);
    cluster_cache_poll_begin(c);
    assert_int_equal(cluster_cache_member_up(c, S("B"), S("b:1"), 2, 155, 1, &old), CLUSTER_MEMBER_NONE);
    assert_int_equal(cluster_cache_node_state(c, S("B")), CLUSTER_NODE_DOWN);

    /* a poll at 200 without A: A goes down, with its routes; C was seen */
    assert_int_equal(cluster_cache_put(c, S("wa"), 1, S("A")), 1);
    cluster_cache_poll_begin(c);
    cluster_cache_member_up(c, S("C"), S("c:1"), 3, 200, 1, &old);
    assert_int_equal(cluster_cache_poll_next_down(c, 200, &old), 1);
    assert_string_equal(old.id, "A");
    assert_int_equal(old.routes, 1);
    assert_int_equal(cluster_cache_poll_next_down(c, 200, &old), 0);
    assert_int_equal(stats(c).routes, 0);
    assert_int_equal(stats(c).nodes_up, 1);

    /* the same poll time again, or an older one, adds nothing */
    cluster_cache_poll_begin(c);
    assert_int_equal(cluster_cache_member_up(c, S("A"), S("a:1"), 1, 200, 1, &old), CLUSTER_MEMBER_NONE);
    assert_int_equal(cluster_cache_member_up(c, S("A"), S("a:1"), 1, 201, 1, &old), CLUSTER_MEMBER_UP);

    /* after a clock reset (new Redis), older times apply again */
    cluster_cache_members_reset_clock(c);
    cluster_cache_poll_begin(c);
    assert_int_equal(cluster_cache_member_up(c, S("C"), S("c:1"), 3, 5, 1, &old), CLUSTER_MEMBER_NONE);
    assert_int_equal(cluster_cache_poll_next_down(c, 5, &old), 1); /* A, not in this poll */
    assert_string_equal(old.id, "A");
    cluster_cache_free(c);
}

static void test_lru_count(void **state)
{
    struct cluster_cache *c = mk(3, 0, 0);
    struct cluster_cache_route r;
    (void)state;
    up(c, "A", "a:1", 1, 1, CLUSTER_MEMBER_UP);
    assert_int_equal(cluster_cache_put(c, S("w1"), 1, S("A")), 1);
    assert_int_equal(cluster_cache_put(c, S("w2"), 1, S("A")), 1);
    assert_int_equal(cluster_cache_put(c, S("w3"), 1, S("A")), 1);
    assert_int_equal(cluster_cache_get(c, S("w1"), &r), 1); /* w2 is now the least recent */
    assert_int_equal(cluster_cache_put(c, S("w4"), 1, S("A")), 1);
    assert_int_equal(cluster_cache_peek(c, S("w2"), &r, NULL), 0);
    assert_int_equal(cluster_cache_peek(c, S("w1"), &r, NULL), 1);
    assert_int_equal(cluster_cache_peek(c, S("w3"), &r, NULL), 1);
    assert_int_equal(cluster_cache_peek(c, S("w4"), &r, NULL), 1);
    /* a newer generation refreshes too */
    assert_int_equal(cluster_cache_put(c, S("w3"), 2, S("A")), 1);
    assert_int_equal(cluster_cache_put(c, S("w5"), 1, S("A")), 1);
    assert_int_equal(cluster_cache_peek(c, S("w1"), &r, NULL), 0);
    assert_int_equal(cluster_cache_peek(c, S("w3"), &r, NULL), 1);
    struct cluster_cache_stats st = stats(c);
    assert_int_equal(st.routes, 3);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.max_routes, 3);
    cluster_cache_free(c);
}

static void test_lru_bytes(void **state)
{
    const size_t limit = 256 * 1024;
    struct cluster_cache *c = mk(1000000, limit, 0);
    char id[CLUSTER_MAX_ID_LEN + 1];
    (void)state;
    up(c, "A", "a:1", 1, 1, CLUSTER_MEMBER_UP);
    size_t before = stats(c).bytes;
    assert_true(before < limit);
    memset(id, 'x', sizeof(id));
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(id, sizeof(id), "%d-", i);
        id[n] = 'x';
        assert_int_equal(cluster_cache_put(c, id, 200, (uint64_t)i + 1, S("A")), 1);
        assert_true(stats(c).bytes <= limit);
    }
    struct cluster_cache_stats st = stats(c);
    assert_true(st.evictions > 8000);
    assert_int_equal(st.routes + st.evictions, 10000);
    /* each 200-byte id costs more than 200 and less than 400 bytes */
    assert_true((st.bytes - before) / st.routes > 200);
    assert_true((st.bytes - before) / st.routes < 400);
    /* the most recent survive */
    assert_int_equal(snprintf(id, sizeof(id), "9999-"), 5);
    id[5] = 'x';
    assert_int_equal(cluster_cache_peek(c, id, 200, NULL, NULL), 1);
    cluster_cache_free(c);
}

static void test_memory_accounting(void **state)
{
    struct cluster_cache *c = mk(0, 0, 0);
    char id[64];
    (void)state;
    up(c, "A", "a:1", 1, 1, CLUSTER_MEMBER_UP);
    size_t empty = stats(c).bytes;
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(id, sizeof(id), "worker-%026d", i); /* 33 bytes, as docs/cluster.md */
        assert_int_equal(cluster_cache_put(c, id, (size_t)n, (uint64_t)i + 1, S("A")), 1);
    }
    struct cluster_cache_stats st = stats(c);
    size_t per = (st.bytes - empty) / st.routes;
    print_message("cache: %zu routes, %zu bytes, %zu bytes per 33-byte id (buckets included)\n", st.routes,
                  st.bytes, per);
    assert_true(per >= 100 && per <= 140);
    /* dropping the node frees them all, the estimate goes back (buckets stay) */
    uint64_t b = 1;
    assert_int_equal(cluster_cache_member_down(c, S("A"), &b, 2, NULL), CLUSTER_MEMBER_DOWN);
    st = stats(c);
    assert_int_equal(st.routes, 0);
    assert_true(st.bytes < empty + 2 * 1024 * 1024);
    cluster_cache_free(c);
}

static void test_node_table_limit(void **state)
{
    struct cluster_cache *c = mk(0, 0, 2);
    (void)state;
    assert_int_equal(cluster_cache_put(c, S("w1"), 1, S("A")), 1);
    assert_int_equal(cluster_cache_put(c, S("w2"), 1, S("B")), 1);
    assert_int_equal(cluster_cache_put(c, S("w3"), 1, S("C")), CLUSTER_E_LIMIT);
    assert_int_equal(cluster_cache_member_up(c, S("C"), S("c:1"), 1, 1, 0, NULL), CLUSTER_E_LIMIT);
    /* B goes down: its slot (no routes left) is reused */
    up(c, "B", "b:1", 1, 1, CLUSTER_MEMBER_UP);
    assert_int_equal(cluster_cache_member_down(c, S("B"), NULL, 2, NULL), CLUSTER_MEMBER_DOWN);
    assert_int_equal(cluster_cache_put(c, S("w3"), 1, S("C")), 1);
    assert_int_equal(cluster_cache_node_state(c, S("B")), CLUSTER_NODE_UNKNOWN);
    assert_int_equal(stats(c).nodes, 2);
    cluster_cache_free(c);

    struct cluster_cache_limits bad = {0, 1024, 0};
    struct cluster_cache *x = (struct cluster_cache *)1;
    assert_int_equal(cluster_cache_new(&bad, 1, &x), CLUSTER_E_INVAL);
    assert_null(x);
    struct cluster_cache_limits bad2 = {0, 0, CLUSTER_MAX_NODES + 1};
    assert_int_equal(cluster_cache_new(&bad2, 1, &x), CLUSTER_E_INVAL);
    assert_int_equal(cluster_cache_new(NULL, 1, &x), 0);
    struct cluster_cache_stats st = stats(x);
    assert_int_equal(st.max_routes, CLUSTER_CACHE_DEFAULT_ROUTES);
    assert_int_equal(st.max_bytes, CLUSTER_CACHE_DEFAULT_BYTES);
    cluster_cache_free(x);
    cluster_cache_free(NULL);
}

/* Routes churned at random against a simple model: the cache agrees with it
 * (within the count limit the model never evicts, so the limit is large). */
static void test_model(void **state)
{
    enum { IDS = 300, NODES = 5 };
    static uint64_t gen[IDS];
    static int node[IDS];
    static int up_[NODES];
    struct cluster_cache *c = mk(0, 0, 0);
    uint64_t rng = 88172645463325252ULL;
    char id[16], nid[8];
    (void)state;
    memset(gen, 0, sizeof(gen));
    for (int step = 0; step < 200000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int i = (int)(rng % IDS), n = (int)((rng >> 20) % NODES), op = (int)((rng >> 40) % 10);
        uint64_t g = (rng >> 44) % 1000 + 1;
        snprintf(id, sizeof(id), "w%d", i);
        snprintf(nid, sizeof(nid), "n%d", n);
        if (op < 5) {
            int rc = cluster_cache_put(c, id, strlen(id), g, nid, strlen(nid));
            int want = gen[i] < g;
            assert_int_equal(rc, want);
            if (want)
                gen[i] = g, node[i] = n;
        } else if (op < 7) {
            int rc = cluster_cache_del(c, id, strlen(id), g);
            int want = gen[i] && gen[i] <= g;
            assert_int_equal(rc, want);
            if (want)
                gen[i] = 0;
        } else if (op < 8) {
            char addr[16];
            snprintf(addr, sizeof(addr), "h%d:1", n);
            cluster_cache_member_up(c, nid, strlen(nid), addr, strlen(addr), 1, step, 0, NULL);
            up_[n] = 1;
        } else if (op < 9 && (rng >> 60) == 0) {
            cluster_cache_member_down(c, nid, strlen(nid), NULL, step, NULL);
            up_[n] = 0;
            for (int k = 0; k < IDS; k++)
                if (gen[k] && node[k] == n)
                    gen[k] = 0;
        } else {
            struct cluster_cache_route r;
            int rc = cluster_cache_get(c, id, strlen(id), &r);
            int want = gen[i] && up_[node[i]];
            assert_int_equal(rc, want);
            if (want) {
                assert_true(r.gen == gen[i]);
                assert_int_equal(r.node[1] - '0', node[i]);
            }
        }
    }
    size_t live = 0;
    for (int k = 0; k < IDS; k++)
        live += gen[k] != 0;
    assert_int_equal(stats(c).routes, live);
    cluster_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_node_down_drops_routes),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_poll_vs_messages),
        cmocka_unit_test(test_lru_count),
        cmocka_unit_test(test_lru_bytes),
        cmocka_unit_test(test_memory_accounting),
        cmocka_unit_test(test_node_table_limit),
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
