/* wht-test-label: integration */
/* cluster/registry.c against a real redis-server (Debian's /usr/bin/redis-server,
 * started and killed by the test on a free 127.0.0.1 port, no persistence).
 * Several registries share one libevent loop in this process, as nodes of a
 * cluster would share one Redis. Every wait polls the loop with a deadline.
 * Skipped when redis-server is not installed (WHT_REDIS_SERVER overrides it). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cluster/registry.h"

/* ---- redis-server ----------------------------------------------------------------------- */

struct redis_proc {
    pid_t pid;
    int port;
    char pass[64];
    char dir[64];
};

static const char *redis_server_path(void)
{
    const char *p = getenv("WHT_REDIS_SERVER");
    return p && *p ? p : "/usr/bin/redis-server";
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A blocking admin connection (the test's own view of Redis). */
static redisContext *admin(const struct redis_proc *r)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (r->pass[0]) {
        redisReply *rep = redisCommand(c, "AUTH %s", r->pass);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    return c;
}

static pid_t children[16];

static void kill_children(void)
{
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
}

static void child_track(pid_t pid, int add)
{
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
        if (add ? children[i] == 0 : children[i] == pid) {
            children[i] = add ? pid : 0;
            return;
        }
}

static void redis_start(struct redis_proc *r)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        const char *argv[20] = {"redis-server", "--port", port,    "--bind", "127.0.0.1",  "--save", "",
                                "--appendonly", "no",     "--dir", r->dir,   "--loglevel", "warning"};
        int n = 13;
        if (r->pass[0]) {
            argv[n++] = "--requirepass";
            argv[n++] = r->pass;
        }
        argv[n] = NULL;
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execv(redis_server_path(), (char **)argv);
        _exit(127);
    }
    child_track(r->pid, 1);
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        redisContext *c = admin(r);
        if (c) {
            redisReply *rep = redisCommand(c, "PING");
            int ok = rep && rep->type == REDIS_REPLY_STATUS;
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return;
        }
        if (now_ms() > deadline)
            fail_msg("redis-server did not start on port %d", r->port);
        usleep(20000);
    }
}

static void redis_kill(struct redis_proc *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        child_track(r->pid, 0);
        r->pid = 0;
    }
}

static struct redis_proc *live_redis[4];

static struct redis_proc *redis_new(const char *pass)
{
    struct redis_proc *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->port = free_port();
    snprintf(r->pass, sizeof(r->pass), "%s", pass ? pass : "");
    snprintf(r->dir, sizeof(r->dir), "/tmp/wht-redis-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    for (size_t i = 0; i < sizeof(live_redis) / sizeof(live_redis[0]); i++)
        if (!live_redis[i]) {
            live_redis[i] = r;
            break;
        }
    redis_start(r);
    return r;
}

static void redis_free(struct redis_proc *r)
{
    for (size_t i = 0; i < sizeof(live_redis) / sizeof(live_redis[0]); i++)
        if (live_redis[i] == r)
            live_redis[i] = NULL;
    redis_kill(r);
    rmdir(r->dir);
    free(r);
}

/* Runs a command on the admin connection; returns the reply (caller frees). */
static redisReply *cmd(const struct redis_proc *r, const char *fmt, ...)
{
    va_list ap;
    redisContext *c = admin(r);
    assert_non_null(c);
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    redisFree(c);
    return rep;
}

/* GET key as a string ("" for nil) into out. */
static const char *get(const struct redis_proc *r, const char *key, char *out, size_t cap)
{
    redisReply *rep = cmd(r, "GET %s", key);
    snprintf(out, cap, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    return out;
}

/* Calls of a command since the last CONFIG RESETSTAT, from INFO commandstats. */
static long long calls(const struct redis_proc *r, const char *name)
{
    redisReply *rep = cmd(r, "INFO commandstats");
    char needle[64];
    long long n = 0;
    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", name);
    const char *p =
        rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS ? strstr(rep->str, needle) : NULL;
    if (p)
        n = atoll(p + strlen(needle));
    freeReplyObject(rep);
    return n;
}

/* ---- nodes ------------------------------------------------------------------------------ */

struct tnode {
    struct cluster_registry *reg;
    char name[16];
    int takeovers;
    char last_takeover[CLUSTER_MAX_ID_LEN + 1];
    int64_t takeover_ms;
    int elsewheres; /* elsewhere_cb: ids this node does not hold registered elsewhere */
    char last_elsewhere[CLUSTER_MAX_ID_LEN + 1];
    int ups, downs;
    char last_up[CLUSTER_MAX_NODE_LEN + 1], last_down[CLUSTER_MAX_NODE_LEN + 1];
    char last_up_addr[CLUSTER_MAX_ADDR_LEN + 1];
    int redis_up, state_calls, last_err;
    int peers_up[8];
};

static struct event_base *base;
static int verbose;

static void on_takeover(struct cluster_registry *reg, const char *id, size_t len, void *ud)
{
    struct tnode *n = ud;
    (void)reg;
    assert_int_equal(strlen(id), len);
    n->takeovers++;
    n->takeover_ms = now_ms();
    snprintf(n->last_takeover, sizeof(n->last_takeover), "%s", id);
}

static void on_elsewhere(struct cluster_registry *reg, const char *id, size_t len, void *ud)
{
    struct tnode *n = ud;
    (void)reg;
    n->elsewheres++;
    snprintf(n->last_elsewhere, sizeof(n->last_elsewhere), "%.*s", (int)len, id);
}

static void on_up(struct cluster_registry *reg, const char *node, const char *addr, void *ud)
{
    struct tnode *n = ud;
    (void)reg;
    n->ups++;
    snprintf(n->last_up, sizeof(n->last_up), "%s", node);
    snprintf(n->last_up_addr, sizeof(n->last_up_addr), "%s", addr);
}

static void on_down(struct cluster_registry *reg, const char *node, const char *addr, void *ud)
{
    struct tnode *n = ud;
    (void)reg;
    (void)addr;
    n->downs++;
    snprintf(n->last_down, sizeof(n->last_down), "%s", node);
}

static void on_state(struct cluster_registry *reg, int up, int err, void *ud)
{
    struct tnode *n = ud;
    (void)reg;
    n->redis_up = up;
    n->state_calls++;
    n->last_err = err;
}

static void on_log(struct cluster_registry *reg, enum cluster_log_level level, const char *msg, void *ud)
{
    struct tnode *n = ud;
    (void)reg;
    if (verbose)
        fprintf(stderr, "  [%s %d] %s\n", n->name, (int)level, msg);
}

static struct cluster_callbacks cbs = {.takeover_cb = on_takeover,
                                       .elsewhere_cb = on_elsewhere,
                                       .peer_up_cb = on_up,
                                       .peer_down_cb = on_down,
                                       .redis_state_cb = on_state,
                                       .log_cb = on_log,
                                       .log_level = CLUSTER_LOG_DEBUG};

static char url_buf[256];
static const char *url_of(const struct redis_proc *r)
{
    snprintf(url_buf, sizeof(url_buf), "redis://127.0.0.1:%d", r->port);
    return url_buf;
}

static struct tnode *live_nodes[8];

static struct tnode *node_new_url(const char *url, const char *prefix, const char *name, int ttl_ms)
{
    struct tnode *n = calloc(1, sizeof(*n));
    char addr[64];
    assert_non_null(n);
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(addr, sizeof(addr), "10.0.0.%d:7000", name[0]);
    struct cluster_options o = {
        .redis_url = url,
        .prefix = prefix,
        .node_id = name,
        .advertise = addr,
        .member_ttl_ms = ttl_ms,
        .command_timeout_ms = 1500,
        .reconnect_max_ms = 500,
        .lookup_timeout_ms = 500,
    };
    int rc = cluster_registry_new(base, &o, &cbs, n, &n->reg);
    if (rc != 0)
        fail_msg("cluster_registry_new: %s", cluster_strerror(rc));
    for (size_t i = 0; i < sizeof(live_nodes) / sizeof(live_nodes[0]); i++)
        if (!live_nodes[i]) {
            live_nodes[i] = n;
            break;
        }
    return n;
}

static struct tnode *node_new(const struct redis_proc *r, const char *prefix, const char *name, int ttl_ms)
{
    return node_new_url(url_of(r), prefix, name, ttl_ms);
}

static void node_free(struct tnode *n)
{
    for (size_t i = 0; i < sizeof(live_nodes) / sizeof(live_nodes[0]); i++)
        if (n && live_nodes[i] == n)
            live_nodes[i] = NULL;
    if (n) {
        cluster_registry_free(n->reg);
        free(n);
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
}

/* Runs the loop until cond holds, failing after ms. */
#define WAIT_UNTIL(cond, ms)                                                                                 \
    do {                                                                                                     \
        int64_t dl_ = now_ms() + (ms);                                                                       \
        while (!(cond)) {                                                                                    \
            if (now_ms() > dl_)                                                                              \
                fail_msg("line %d: timed out after %d ms waiting for %s", __LINE__, (int)(ms), #cond);       \
            event_base_loop(base, EVLOOP_ONCE);                                                              \
        }                                                                                                    \
    } while (0)

/* Runs the loop for ms. */
static void run_for(int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
}

static struct event *ticker;

static int setup(void **state)
{
    (void)state;
    if (access(redis_server_path(), X_OK) != 0)
        return 0;
    verbose = getenv("WHT_TEST_VERBOSE") != NULL;
    atexit(kill_children);
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    ticker = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 10000};
    event_add(ticker, &tv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill_children();
    if (ticker)
        event_free(ticker);
    if (base)
        event_base_free(base);
    return 0;
}

#define NEED_REDIS()                                                                                         \
    do {                                                                                                     \
        if (!base) {                                                                                         \
            print_message("redis-server not found: skipped\n");                                              \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

/* Lookup answers collected by lookup_cb. */
struct answer {
    int calls, result;
    struct cluster_route route;
};

static void lookup_cb(struct cluster_registry *reg, int result, const struct cluster_route *route, void *ud)
{
    struct answer *a = ud;
    (void)reg;
    a->calls++;
    a->result = result;
    if (route)
        a->route = *route;
}

#define S(x) x, strlen(x)

/* ---- tests ------------------------------------------------------------------------------ */

/* Register on A: B's cache learns it from pub/sub; cached lookups cost no Redis command;
 * misses cost one GET per id; unregister removes the record and B's route. */
static void test_register_learn_lookup(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct tnode *a = node_new(r, "t1:", "A", 3000), *b = node_new(r, "t1:", "B", 3000);
    struct cluster_route route;
    struct answer ans = {0};
    char v[128];

    WAIT_UNTIL(a->redis_up && b->redis_up, 5000);
    WAIT_UNTIL(a->ups == 1 && b->ups == 1, 5000);
    assert_string_equal(a->last_up, "B");
    assert_string_equal(b->last_up, "A");
    assert_string_equal(b->last_up_addr, "10.0.0.65:7000");

    assert_int_equal(cluster_registry_register(a->reg, S("worker-1")), 0);
    WAIT_UNTIL(cluster_registry_lookup(b->reg, S("worker-1"), &route, NULL, NULL, NULL) == 1, 3000);
    assert_string_equal(route.node, "A");
    assert_string_equal(route.addr, "10.0.0.65:7000");
    uint64_t gen = 0;
    /* A learns its generation from its script's answer, which may come after B's message */
    WAIT_UNTIL(cluster_registry_holds(a->reg, S("worker-1"), &gen) && gen != 0, 2000);
    assert_true(gen == route.gen);
    /* the generation is at least the registration time << 10 */
    assert_true((gen >> CLUSTER_GEN_TIME_SHIFT) > (uint64_t)time(NULL) * 1000 - 60000);
    snprintf(v, sizeof(v), "%llu A", (unsigned long long)gen);
    char got[128];
    assert_string_equal(get(r, "t1:w:worker-1", got, sizeof(got)), v);
    redisReply *ttl = cmd(r, "PTTL t1:w:worker-1");
    assert_true(ttl->integer > 3500 * 1000 && ttl->integer <= 3600 * 1000);
    freeReplyObject(ttl);
    /* the member keys */
    assert_non_null(strstr(get(r, "t1:node:A", got, sizeof(got)), "A 10.0.0.65:7000 "));

    /* 10,000 cached lookups: not one Redis command */
    freeReplyObject(cmd(r, "CONFIG RESETSTAT"));
    struct cluster_registry_stats st0, st1;
    cluster_registry_stats(b->reg, &st0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(cluster_registry_lookup(b->reg, S("worker-1"), &route, lookup_cb, &ans, NULL), 1);
    run_for(50);
    cluster_registry_stats(b->reg, &st1);
    assert_int_equal(calls(r, "get"), 0);
    assert_true(st1.cache_hits - st0.cache_hits == 10000);
    assert_true(st1.lookups_redis == st0.lookups_redis);
    print_message("10000 cached lookups: cmdstat_get calls = %lld, evalsha (heartbeats) = %lld\n",
                  calls(r, "get"), calls(r, "evalsha"));

    /* five lookups of an unknown id: one GET, five answers "not found" */
    struct answer miss[5] = {{0}};
    for (int i = 0; i < 5; i++)
        assert_int_equal(cluster_registry_lookup(b->reg, S("nobody"), &route, lookup_cb, &miss[i], NULL), 0);
    WAIT_UNTIL(miss[4].calls == 1, 2000);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(miss[i].calls, 1);
        assert_int_equal(miss[i].result, 0);
    }
    assert_int_equal(calls(r, "get"), 1);

    /* a lookup cancelled before its answer is never answered */
    struct answer cancelled = {0};
    struct cluster_lookup *h = NULL;
    assert_int_equal(cluster_registry_lookup(b->reg, S("nobody2"), &route, lookup_cb, &cancelled, &h), 0);
    assert_non_null(h);
    cluster_lookup_cancel(h);
    run_for(100);
    assert_int_equal(cancelled.calls, 0);

    /* a miss that Redis knows: cached afterwards */
    assert_int_equal(cluster_registry_forget(b->reg, S("worker-1")), 1);
    memset(&ans, 0, sizeof(ans));
    assert_int_equal(cluster_registry_lookup(b->reg, S("worker-1"), &route, lookup_cb, &ans, NULL), 0);
    WAIT_UNTIL(ans.calls == 1, 2000);
    assert_int_equal(ans.result, 1);
    assert_string_equal(ans.route.node, "A");
    assert_true(ans.route.gen == gen);
    assert_int_equal(cluster_registry_lookup(b->reg, S("worker-1"), &route, NULL, NULL, NULL), 1);

    /* A asking for its own worker: the record names A itself, "no live route" */
    memset(&ans, 0, sizeof(ans));
    assert_int_equal(cluster_registry_lookup(a->reg, S("worker-1"), &route, lookup_cb, &ans, NULL), 0);
    WAIT_UNTIL(ans.calls == 1, 2000);
    assert_int_equal(ans.result, 0);

    /* unregister: the record goes, and B's route with it */
    assert_int_equal(cluster_registry_unregister(a->reg, S("worker-1")), 1);
    assert_int_equal(cluster_registry_unregister(a->reg, S("worker-1")), 0);
    WAIT_UNTIL(cluster_registry_lookup(b->reg, S("worker-1"), &route, NULL, NULL, NULL) != 1, 3000);
    assert_string_equal(get(r, "t1:w:worker-1", got, sizeof(got)), "");
    assert_int_equal(a->takeovers + b->takeovers, 0);

    /* bad arguments */
    assert_int_equal(cluster_registry_register(a->reg, S("bad id")), CLUSTER_E_INVAL);
    assert_int_equal(cluster_registry_lookup(a->reg, S("bad/id"), &route, NULL, NULL, NULL), CLUSTER_E_INVAL);

    node_free(a);
    node_free(b);
    redis_free(r);
}

/* The same id registered on three nodes at once: exactly one holds it at the
 * end, the one the record names; the others got takeover_cb. 30 rounds. */
static void test_concurrent_registration(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct tnode *n[3] = {node_new(r, "t2:", "A", 3000), node_new(r, "t2:", "B", 3000),
                          node_new(r, "t2:", "C", 3000)};
    WAIT_UNTIL(n[0]->ups == 2 && n[1]->ups == 2 && n[2]->ups == 2, 5000);
    int wins[3] = {0};
    for (int round = 0; round < 30; round++) {
        char id[32], key[64], got[128];
        int before = n[0]->takeovers + n[1]->takeovers + n[2]->takeovers;
        snprintf(id, sizeof(id), "w%d", round);
        for (int k = 0; k < 3; k++)
            assert_int_equal(cluster_registry_register(n[(k + round) % 3]->reg, S(id)), 0);
        WAIT_UNTIL(n[0]->takeovers + n[1]->takeovers + n[2]->takeovers == before + 2, 3000);
        run_for(30);
        assert_int_equal(n[0]->takeovers + n[1]->takeovers + n[2]->takeovers, before + 2);
        int holders = 0, holder = -1;
        for (int k = 0; k < 3; k++)
            if (cluster_registry_holds(n[k]->reg, S(id), NULL))
                holders++, holder = k;
        assert_int_equal(holders, 1);
        snprintf(key, sizeof(key), "t2:w:%s", id);
        get(r, key, got, sizeof(got));
        assert_string_equal(strchr(got, ' ') + 1, n[holder]->name);
        wins[holder]++;
        /* the others' caches point at the holder */
        for (int k = 0; k < 3; k++) {
            struct cluster_route route;
            if (k == holder)
                continue;
            WAIT_UNTIL(cluster_registry_lookup(n[k]->reg, S(id), &route, NULL, NULL, NULL) == 1, 2000);
            assert_string_equal(route.node, n[holder]->name);
        }
    }
    print_message("30 three-way races won by A %d, B %d, C %d times\n", wins[0], wins[1], wins[2]);
    for (int k = 0; k < 3; k++)
        node_free(n[k]);
    redis_free(r);
}

/* A newer registration elsewhere closes ours within a second; release only if still ours. */
static void test_takeover_and_release(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct tnode *a = node_new(r, "t3:", "A", 3000), *b = node_new(r, "t3:", "B", 3000);
    char got[128], want[128];
    uint64_t gen;
    WAIT_UNTIL(a->ups == 1 && b->ups == 1, 5000);

    assert_int_equal(cluster_registry_register(a->reg, S("w")), 0);
    WAIT_UNTIL(cluster_registry_holds(a->reg, S("w"), &gen) && gen != 0, 2000);
    WAIT_UNTIL(b->elsewheres == 1, 1000); /* B does not hold w: told through elsewhere_cb */
    assert_string_equal(b->last_elsewhere, "w");
    int64_t t0 = now_ms();
    assert_int_equal(cluster_registry_register(b->reg, S("w")), 0);
    WAIT_UNTIL(a->takeovers == 1, 1000);
    assert_int_equal(a->elsewheres, 0); /* A held it: takeover_cb instead; its own "set" is not news */
    print_message("takeover %lld ms after the newer registration\n", (long long)(a->takeover_ms - t0));
    assert_string_equal(a->last_takeover, "w");
    assert_int_equal(cluster_registry_holds(a->reg, S("w"), NULL), 0);
    assert_int_equal(cluster_registry_unregister(a->reg, S("w")), 0); /* forgotten already */
    run_for(100);
    assert_int_equal(cluster_registry_holds(b->reg, S("w"), &gen), 1);
    snprintf(want, sizeof(want), "%llu B", (unsigned long long)gen);
    assert_string_equal(get(r, "t3:w:w", got, sizeof(got)), want);

    /* a node whose record was replaced behind its back (no message) must not delete the new one */
    assert_int_equal(cluster_registry_register(a->reg, S("x")), 0);
    WAIT_UNTIL(cluster_registry_holds(a->reg, S("x"), &gen) && gen != 0, 2000);
    snprintf(want, sizeof(want), "%llu Z", (unsigned long long)gen + 5);
    freeReplyObject(cmd(r, "SET t3:w:x %s", want));
    assert_int_equal(cluster_registry_unregister(a->reg, S("x")), 1);
    run_for(200);
    assert_string_equal(get(r, "t3:w:x", got, sizeof(got)), want);

    /* the same id registered again on the same node (the worker reconnected): no takeover, newer gen */
    uint64_t g1, g2;
    assert_int_equal(cluster_registry_register(b->reg, S("y")), 0);
    WAIT_UNTIL(cluster_registry_holds(b->reg, S("y"), &g1) && g1 != 0, 2000);
    assert_int_equal(cluster_registry_register(b->reg, S("y")), 0);
    WAIT_UNTIL(cluster_registry_holds(b->reg, S("y"), &g2) && g2 != 0, 2000);
    assert_true(g2 > g1);
    run_for(100);
    assert_int_equal(b->takeovers, 0);
    snprintf(want, sizeof(want), "%llu B", (unsigned long long)g2);
    assert_string_equal(get(r, "t3:w:y", got, sizeof(got)), want);

    /* a record with a newer generation elsewhere, written without a message: the refresh
     * or the next register tells; here: register again on A while "Z" holds a newer one */
    snprintf(want, sizeof(want), "%llu Z", (unsigned long long)CLUSTER_GEN_MAX - 1);
    freeReplyObject(cmd(r, "SET t3:w:z %s", want));
    freeReplyObject(cmd(r, "SET t3:gen 1"));
    assert_int_equal(cluster_registry_register(a->reg, S("z")), 0);
    WAIT_UNTIL(cluster_registry_holds(a->reg, S("z"), &gen) && gen != 0, 2000);
    /* gen 0 takes a new generation above the record's: A wins */
    assert_true(gen == CLUSTER_GEN_MAX);
    node_free(a);
    node_free(b);
    redis_free(r);
}

/* A node that stops (no leave: as with SIGKILL, its connections just close) leaves the
 * membership within its TTL; the others drop its routes. A clean leave is seen at once. */
static void test_membership_expiry(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct tnode *a = node_new(r, "t4:", "A", 1000), *b = node_new(r, "t4:", "B", 1000),
                 *c = node_new(r, "t4:", "C", 1000);
    struct cluster_route route;
    char got[128];
    WAIT_UNTIL(a->ups == 2 && b->ups == 2 && c->ups == 2, 5000);
    assert_int_equal(cluster_registry_register(a->reg, S("wa")), 0);
    assert_int_equal(cluster_registry_register(c->reg, S("wc")), 0);
    WAIT_UNTIL(cluster_registry_lookup(b->reg, S("wa"), &route, NULL, NULL, NULL) == 1, 2000);
    WAIT_UNTIL(cluster_registry_lookup(b->reg, S("wc"), &route, NULL, NULL, NULL) == 1, 2000);
    run_for(1200); /* past the start-up grace */

    /* A dies */
    node_free(a);
    int64_t t0 = now_ms();
    WAIT_UNTIL(b->downs == 1, 2500);
    int64_t seen = now_ms() - t0;
    print_message("member TTL 1000 ms: peer down seen %lld ms after the node stopped\n", (long long)seen);
    assert_true(seen <= 1000 + 300 + 500); /* TTL + one refresh (250 ms, run at 100 ms ticks) + slack */
    assert_string_equal(b->last_down, "A");
    assert_string_equal(get(r, "t4:node:A", got, sizeof(got)), "");
    /* its route is gone from the cache; Redis still has the record, but it names a node that
     * is not a member: held by a node that cannot be reached, not "no such worker" */
    assert_int_equal(cluster_registry_lookup(b->reg, S("wa"), &route, NULL, NULL, NULL), 0);
    struct answer ans = {0};
    assert_int_equal(cluster_registry_lookup(b->reg, S("wa"), &route, lookup_cb, &ans, NULL), 0);
    WAIT_UNTIL(ans.calls == 1, 2000);
    assert_int_equal(ans.result, CLUSTER_LOOKUP_NODE_DOWN);
    WAIT_UNTIL(c->downs == 1, 2500);

    /* C leaves cleanly: B hears it at once, the record is released */
    t0 = now_ms();
    assert_int_equal(cluster_registry_leave(c->reg, NULL, NULL), 0);
    assert_int_equal(cluster_registry_register(c->reg, S("late")), CLUSTER_E_CLOSED);
    WAIT_UNTIL(b->downs == 2, 500);
    print_message("clean leave seen %lld ms later\n", (long long)(now_ms() - t0));
    assert_string_equal(b->last_down, "C");
    assert_int_equal(cluster_registry_lookup(b->reg, S("wc"), &route, NULL, NULL, NULL), 0);
    assert_string_equal(get(r, "t4:w:wc", got, sizeof(got)), "");
    assert_string_equal(get(r, "t4:node:C", got, sizeof(got)), "");
    node_free(c);

    /* a node back with the same id: up again */
    a = node_new(r, "t4:", "A", 1000);
    WAIT_UNTIL(b->ups == 3, 2000);
    assert_string_equal(b->last_up, "A");
    node_free(a);
    node_free(b);
    redis_free(r);
}

/* Redis killed and restarted empty: the nodes keep serving their cache and
 * take registrations meanwhile, and re-assert everything within seconds. */
static void test_redis_restart(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct tnode *a = node_new(r, "t5:", "A", 2000), *b = node_new(r, "t5:", "B", 2000);
    struct cluster_route route;
    char got[128];
    WAIT_UNTIL(a->ups == 1 && b->ups == 1, 5000);
    assert_int_equal(cluster_registry_register(a->reg, S("w6")), 0);
    assert_int_equal(cluster_registry_register(b->reg, S("w7")), 0);
    WAIT_UNTIL(cluster_registry_lookup(b->reg, S("w6"), &route, NULL, NULL, NULL) == 1, 2000);
    WAIT_UNTIL(cluster_registry_lookup(a->reg, S("w7"), &route, NULL, NULL, NULL) == 1, 2000);

    redis_kill(r);
    WAIT_UNTIL(!a->redis_up && !b->redis_up, 3000);
    assert_int_equal(a->last_err, CLUSTER_E_CONNECT);
    /* the cache still answers; a miss cannot */
    assert_int_equal(cluster_registry_lookup(b->reg, S("w6"), &route, NULL, NULL, NULL), 1);
    assert_string_equal(route.node, "A");
    assert_int_equal(cluster_registry_lookup(b->reg, S("unknown"), &route, lookup_cb, NULL, NULL),
                     CLUSTER_E_DOWN);
    /* registrations are accepted locally */
    assert_int_equal(cluster_registry_register(a->reg, S("w8")), 0);
    uint64_t g8;
    assert_int_equal(cluster_registry_holds(a->reg, S("w8"), &g8), 1);
    assert_true(g8 != 0);
    struct cluster_registry_stats st;
    cluster_registry_stats(a->reg, &st);
    assert_int_equal(st.redis_up, 0);
    assert_int_equal(st.held, 2);
    assert_int_equal(st.held_unconfirmed, 2);
    run_for(1500);
    assert_int_equal(a->downs + b->downs, 0); /* peers are not declared gone while Redis is */

    int64_t t0 = now_ms();
    redis_start(r);
    WAIT_UNTIL(a->redis_up && b->redis_up, 5000);
    WAIT_UNTIL(strlen(get(r, "t5:w:w6", got, sizeof(got))) && strlen(get(r, "t5:w:w7", got, sizeof(got))) &&
                   strlen(get(r, "t5:w:w8", got, sizeof(got))),
               5000);
    print_message("Redis restarted empty: every session re-asserted %lld ms later\n",
                  (long long)(now_ms() - t0));
    char want[64];
    snprintf(want, sizeof(want), "%llu A", (unsigned long long)g8);
    assert_string_equal(get(r, "t5:w:w8", got, sizeof(got)), want); /* the local generation */
    assert_non_null(strstr(get(r, "t5:w:w7", got, sizeof(got)), " B"));
    WAIT_UNTIL(cluster_registry_lookup(b->reg, S("w8"), &route, NULL, NULL, NULL) == 1, 3000);
    assert_string_equal(route.node, "A");
    /* a new registration gets a generation above every one before the restart */
    assert_int_equal(cluster_registry_register(b->reg, S("w9")), 0);
    uint64_t g9;
    WAIT_UNTIL(cluster_registry_holds(b->reg, S("w9"), &g9) && g9 != 0, 2000);
    assert_true(g9 > g8);
    cluster_registry_stats(a->reg, &st);
    assert_int_equal(st.held_unconfirmed, 0);
    assert_int_equal(a->takeovers + b->takeovers, 0);
    run_for(2500);
    assert_int_equal(a->downs + b->downs, 0);
    node_free(a);
    node_free(b);
    redis_free(r);
}

/* The same id registered on two nodes while Redis was away: the most recent
 * registration (by generation: the registering node's clock) survives. */
static void test_outage_reconciliation(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct tnode *a = node_new(r, "t6:", "A", 2000), *b = node_new(r, "t6:", "B", 2000);
    char got[128];
    WAIT_UNTIL(a->ups == 1 && b->ups == 1, 5000);
    redis_kill(r);
    WAIT_UNTIL(!a->redis_up && !b->redis_up, 3000);

    assert_int_equal(cluster_registry_register(a->reg, S("early-a")), 0);
    assert_int_equal(cluster_registry_register(b->reg, S("early-b")), 0);
    run_for(20);
    assert_int_equal(cluster_registry_register(b->reg, S("early-a")), 0); /* B is more recent */
    assert_int_equal(cluster_registry_register(a->reg, S("early-b")), 0); /* A is more recent */
    redis_start(r);
    WAIT_UNTIL(a->takeovers == 1 && b->takeovers == 1, 5000);
    run_for(300);
    assert_int_equal(a->takeovers, 1);
    assert_int_equal(b->takeovers, 1);
    assert_string_equal(a->last_takeover, "early-a");
    assert_string_equal(b->last_takeover, "early-b");
    assert_non_null(strstr(get(r, "t6:w:early-a", got, sizeof(got)), " B"));
    assert_non_null(strstr(get(r, "t6:w:early-b", got, sizeof(got)), " A"));
    assert_int_equal(cluster_registry_holds(b->reg, S("early-a"), NULL), 1);
    assert_int_equal(cluster_registry_holds(a->reg, S("early-a"), NULL), 0);
    node_free(a);
    node_free(b);
    redis_free(r);
}

/* Redis that stops answering (SIGSTOP): lookups fail in time, the connection is remade. */
static void test_hung_redis(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct tnode *a = node_new(r, "t7:", "A", 1000);
    struct answer ans = {0};
    struct cluster_route route;
    WAIT_UNTIL(a->redis_up, 5000);
    kill(r->pid, SIGSTOP);
    int64_t t0 = now_ms();
    assert_int_equal(cluster_registry_lookup(a->reg, S("w"), &route, lookup_cb, &ans, NULL), 0);
    WAIT_UNTIL(ans.calls == 1, 1500);
    print_message("lookup against a stopped Redis answered %d after %lld ms\n", ans.result,
                  (long long)(now_ms() - t0));
    assert_int_equal(ans.result, CLUSTER_E_TIMEOUT);
    WAIT_UNTIL(!a->redis_up, 3000); /* the heartbeat watchdog */
    assert_int_equal(a->last_err, CLUSTER_E_TIMEOUT);
    kill(r->pid, SIGCONT);
    WAIT_UNTIL(a->redis_up, 5000);
    node_free(a);
    redis_free(r);
}

/* ---- a slow link to Redis -------------------------------------------------------------- */

#define SLOW_PAIRS 8

static int tcp_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The child's loop: requests go to Redis at once, Redis's answers come back at most `rate`
 * bytes per 100 ms per connection, for at most 60 s. */
static void slow_proxy_loop(int lfd, int redis_port, int rate)
{
    int cfd[SLOW_PAIRS], ufd[SLOW_PAIRS], budget[SLOW_PAIRS], n = 0;
    char buf[65536];
    int64_t end = now_ms() + 60000, refill = now_ms() + 100;
    while (now_ms() < end) {
        struct pollfd p[1 + 2 * SLOW_PAIRS];
        p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < n; i++) {
            p[1 + 2 * i] = (struct pollfd){.fd = cfd[i], .events = POLLIN};
            p[2 + 2 * i] = (struct pollfd){.fd = ufd[i], .events = budget[i] > 0 ? POLLIN : 0};
        }
        poll(p, (nfds_t)(1 + 2 * n), 10);
        if (now_ms() >= refill) {
            for (int i = 0; i < n; i++)
                budget[i] = rate;
            refill += 100;
        }
        if ((p[0].revents & POLLIN) && n < SLOW_PAIRS) {
            cfd[n] = accept(lfd, NULL, NULL);
            ufd[n] = tcp_to(redis_port);
            budget[n] = rate;
            if (cfd[n] >= 0 && ufd[n] >= 0)
                n++;
        }
        for (int i = 0; i < n; i++) {
            ssize_t got;
            if ((p[1 + 2 * i].revents & (POLLIN | POLLHUP)) && (got = read(cfd[i], buf, sizeof buf)) > 0)
                (void)!write(ufd[i], buf, (size_t)got);
            if (budget[i] > 0 && (p[2 + 2 * i].revents & (POLLIN | POLLHUP)) &&
                (got = read(ufd[i], buf, (size_t)budget[i])) > 0) {
                (void)!write(cfd[i], buf, (size_t)got);
                budget[i] -= (int)got;
            }
        }
    }
}

/* A TCP proxy in a child process on a free port (returned in *port) in front of Redis, whose
 * answers it passes back slowly: as a Redis short of CPU, or a storm's backlog, looks to a node. */
static pid_t slow_proxy(int redis_port, int rate, int *port)
{
    *port = free_port();
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)*port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(lfd >= 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        slow_proxy_loop(lfd, redis_port, rate);
        _exit(0);
    }
    close(lfd);
    child_track(pid, 1);
    return pid;
}

/* A busy Redis that keeps answering is not a dead one. Through a link that passes Redis's
 * answers back at 20 KB/s, 3,000 registrations queue up: a heartbeat waits seconds (more
 * than the 1.5 s command timeout) behind the asserts' answers, and the subscriber's
 * ping waits seconds behind the `set` messages; but answers and messages keep coming, so both
 * connections must stay up (before, the watchdogs dropped them, and each reconnection
 * re-asserted every held worker: more load on the busy Redis; found by
 * tests/bench/cluster_sim.py with 100,000 workers). */
static void test_busy_redis(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    int port;
    pid_t proxy = slow_proxy(r->port, 2048, &port);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    struct tnode *a = node_new_url(url, "t8:", "A", 1000);
    WAIT_UNTIL(a->redis_up, 5000);
    run_for(500);
    int calls0 = a->state_calls;
    char id[32], val[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "busy-worker-%d", i);
        assert_int_equal(cluster_registry_register(a->reg, S(id)), 0);
    }
    int64_t t0 = now_ms();
    WAIT_UNTIL(get(r, "t8:w:busy-worker-2999", val, sizeof(val)) != NULL, 30000);
    run_for(7000); /* the answers still on their way (about 5 s of them), and heartbeats after them */
    struct cluster_registry_stats st;
    cluster_registry_stats(a->reg, &st);
    print_message("3000 registrations through a slow link: in Redis after %lld ms; connection changes %d, "
                  "errors %llu\n",
                  (long long)(now_ms() - t0 - 7000), a->state_calls - calls0, (unsigned long long)st.errors);
    assert_int_equal(a->state_calls, calls0); /* never reported down */
    assert_true(a->redis_up);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.held, 3000);
    node_free(a);
    kill(proxy, SIGKILL);
    waitpid(proxy, NULL, 0);
    child_track(proxy, 0);
    redis_free(r);
}

/* Redis out of memory (maxmemory with noeviction) for longer than the member TTL: every heartbeat
 * is refused, every member key expires. When writes come back, the first node to beat must not
 * call the others gone before they had a TTL to beat again (their routes would be dropped). */
static void test_redis_out_of_memory(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct tnode *a = node_new(r, "t7m:", "A", 1000), *b = node_new(r, "t7m:", "B", 1000);
    struct cluster_route route;
    WAIT_UNTIL(a->ups == 1 && b->ups == 1, 5000);
    assert_int_equal(cluster_registry_register(a->reg, S("wa")), 0);
    WAIT_UNTIL(cluster_registry_lookup(b->reg, S("wa"), &route, NULL, NULL, NULL) == 1, 2000);
    run_for(1200); /* past the start-up grace */

    freeReplyObject(cmd(r, "CONFIG SET maxmemory-policy noeviction"));
    freeReplyObject(cmd(r, "CONFIG SET maxmemory 1"));
    redisReply *w = cmd(r, "SET probe x");
    assert_int_equal(w->type, REDIS_REPLY_ERROR); /* OOM in force */
    freeReplyObject(w);
    run_for(2500); /* past the member TTL: every member key expires */
    assert_int_equal(a->downs + b->downs, 0);
    freeReplyObject(cmd(r, "CONFIG SET maxmemory 0"));
    run_for(2500);
    assert_int_equal(a->downs + b->downs, 0);
    assert_int_equal(cluster_registry_lookup(b->reg, S("wa"), &route, NULL, NULL, NULL), 1);
    assert_string_equal(route.node, "A");
    node_free(a);
    node_free(b);
    redis_free(r);
}

/* requirepass, a password with characters that need escaping, an ACL user, and wrong passwords. */
static void test_requirepass(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new("p@ss:w/rd");
    char url[256], got[128];
    struct cluster_route route;

    snprintf(url, sizeof(url), "redis://:p%%40ss:w%%2Frd@localhost:%d/3", r->port);
    struct tnode *a = node_new_url(url, "t8:", "A", 2000);
    snprintf(url, sizeof(url), "redis://:p%%40ss:w%%2Frd@127.0.0.1:%d/3", r->port);
    struct tnode *b = node_new_url(url, "t8:", "B", 2000);
    WAIT_UNTIL(a->ups == 1 && b->ups == 1, 5000);
    assert_int_equal(cluster_registry_register(a->reg, S("w")), 0);
    WAIT_UNTIL(cluster_registry_lookup(b->reg, S("w"), &route, NULL, NULL, NULL) == 1, 3000);
    /* in db 3 */
    redisContext *c = admin(r);
    redisReply *rep = redisCommand(c, "SELECT 3");
    freeReplyObject(rep);
    rep = redisCommand(c, "GET t8:w:w");
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(rep->str, " A"));
    freeReplyObject(rep);
    redisFree(c);
    assert_string_equal(get(r, "t8:w:w", got, sizeof(got)), ""); /* not in db 0 */

    /* an ACL user */
    freeReplyObject(cmd(r, "ACL SETUSER alice on >alice-pw ~* &* +@all"));
    snprintf(url, sizeof(url), "redis://alice:alice-pw@127.0.0.1:%d/3", r->port);
    struct tnode *d = node_new_url(url, "t8:", "D", 2000);
    WAIT_UNTIL(d->redis_up && d->ups == 2, 5000);
    struct answer ans = {0};
    assert_int_equal(cluster_registry_lookup(d->reg, S("w"), &route, lookup_cb, &ans, NULL), 0);
    WAIT_UNTIL(ans.calls == 1, 2000);
    assert_int_equal(ans.result, 1);
    assert_string_equal(ans.route.node, "A");
    node_free(d);

    /* wrong password, no password */
    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d", r->port);
    struct tnode *e = node_new_url(url, "t8:", "E", 2000);
    WAIT_UNTIL(e->state_calls >= 1, 3000);
    assert_int_equal(e->redis_up, 0);
    assert_int_equal(e->last_err, CLUSTER_E_AUTH);
    node_free(e);
    struct tnode *f = node_new(r, "t8:", "F", 2000);
    WAIT_UNTIL(f->state_calls >= 1, 3000);
    assert_int_equal(f->redis_up, 0);
    assert_int_equal(f->last_err, CLUSTER_E_AUTH);
    node_free(f);

    node_free(a);
    node_free(b);
    redis_free(r);
}

/* Options and URLs refused up front; a Redis that is not there is reported, not waited for. */
static void test_new_errors(void **state)
{
    NEED_REDIS();
    (void)state;
    struct cluster_registry *reg = NULL;
    struct cluster_options o = {.redis_url = "redis://127.0.0.1:1", .node_id = "A", .advertise = "h:1"};
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, NULL), CLUSTER_E_INVAL);
    o.redis_url = "rediss://h";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_URL_SCHEME);
    assert_null(reg);
    o.redis_url = "redis://h:0";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_URL);
    o.redis_url = "redis://127.0.0.1:1";
    o.node_id = "bad id";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_INVAL);
    o.node_id = "A";
    o.advertise = "nope";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_INVAL);
    o.advertise = "h:1";
    o.prefix = "bad prefix";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_INVAL);
    o.prefix = NULL;
    o.member_ttl_ms = 10;
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_INVAL);
    o.member_ttl_ms = 1000;
    o.refresh_ms = 600;
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_INVAL);
    o.refresh_ms = 0;

    /* nothing listens on port 1: down is reported, the call did not block */
    struct tnode n = {.name = "X"};
    int64_t t0 = now_ms();
    assert_int_equal(cluster_registry_new(base, &o, &cbs, &n, &n.reg), 0);
    assert_true(now_ms() - t0 < 100);
    WAIT_UNTIL(n.state_calls == 1, 2000);
    assert_int_equal(n.redis_up, 0);
    assert_int_equal(n.last_err, CLUSTER_E_CONNECT);
    run_for(1000);
    assert_int_equal(n.state_calls, 1); /* reported once, not at every retry */
    int done = 0;
    assert_int_equal(cluster_registry_leave(n.reg, NULL, &done), 0);
    assert_int_equal(cluster_registry_leave(n.reg, NULL, &done), CLUSTER_E_CLOSED);
    cluster_registry_free(n.reg);
    cluster_registry_free(NULL);

    /* a host name that does not resolve: reported as such */
    struct tnode m = {.name = "Y"};
    o.redis_url = "redis://no-such-host.invalid:6379";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, &m, &m.reg), 0);
    WAIT_UNTIL(m.state_calls == 1, 6000);
    assert_true(m.last_err == CLUSTER_E_DNS || m.last_err == CLUSTER_E_TIMEOUT);
    cluster_registry_free(m.reg);

    /* freed while a resolution is in flight: evdns ends it later, from the loop (ASan checks) */
    for (int i = 0; i < 3; i++) {
        struct tnode k = {.name = "Z"};
        o.redis_url = i == 0 ? "redis://no-such-host.invalid:6379" : "redis://localhost:1";
        assert_int_equal(cluster_registry_new(base, &o, &cbs, &k, &k.reg), 0);
        if (i == 2)
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        cluster_registry_free(k.reg);
    }
    run_for(300);

    /* Redis Sentinel: settings refused up front */
    o.redis_url = NULL;
    o.sentinels = "127.0.0.1:1";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_MASTER_NAME);
    o.master_name = "bad name";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_MASTER_NAME);
    o.master_name = "m";
    o.sentinels = "127.0.0.1:1,";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_SENTINELS);
    o.sentinels = "127.0.0.1:1";
    o.redis_url = "redis://:pw@127.0.0.1:6379";
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_URL_HOST);
    o.redis_url = "redis://127.0.0.1:1";
    o.sentinels = NULL;
    assert_int_equal(cluster_registry_new(base, &o, &cbs, NULL, &reg), CLUSTER_E_SENTINELS);
    assert_null(reg);

    /* sentinels that refuse, and a Redis that does not know SENTINEL: no master, reported once */
    struct redis_proc *r = redis_new(NULL);
    char list[64];
    snprintf(list, sizeof list, "127.0.0.1:1, 127.0.0.1:%d", r->port);
    o.redis_url = "redis://";
    o.sentinels = list;
    struct tnode s = {.name = "S"};
    t0 = now_ms();
    assert_int_equal(cluster_registry_new(base, &o, &cbs, &s, &s.reg), 0);
    assert_true(now_ms() - t0 < 100);
    WAIT_UNTIL(s.state_calls == 1, 3000);
    assert_int_equal(s.redis_up, 0);
    assert_int_equal(s.last_err, CLUSTER_E_NO_MASTER);
    run_for(1000);
    assert_int_equal(s.state_calls, 1);
    struct cluster_registry_stats st;
    cluster_registry_stats(s.reg, &st);
    assert_true(st.discoveries >= 2); /* asked again after the backoff */
    assert_int_equal(st.redis_up, 0);
    assert_string_equal(st.master, "");
    cluster_registry_free(s.reg);
    redis_free(r);
    o.sentinels = NULL;
    o.master_name = NULL;
}

/* Freeing a registry from inside one of its callbacks is deferred safely. */
static struct cluster_registry *free_me;
static void free_on_up(struct cluster_registry *reg, int up, int err, void *ud)
{
    (void)err;
    (void)ud;
    if (up) {
        cluster_registry_free(reg);
        free_me = NULL;
    }
}

static void test_free_in_callback(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct cluster_callbacks c2 = {0};
    c2.redis_state_cb = free_on_up;
    struct cluster_options o = {.redis_url = url_of(r), .node_id = "A", .advertise = "h:1"};
    assert_int_equal(cluster_registry_new(base, &o, &c2, NULL, &free_me), 0);
    WAIT_UNTIL(free_me == NULL, 3000);
    run_for(100);
    redis_free(r);
}

/* ---- node info -------------------------------------------------------------------------- */

/* cluster_registry_cluster_info() answers, copied out of the callback. */
struct info_answer {
    int calls, result;
    size_t n;
    struct {
        char node[CLUSTER_MAX_NODE_LEN + 1], addr[CLUSTER_MAX_ADDR_LEN + 1];
        int self, known, draining;
        uint32_t workers;
    } nodes[8];
};

static void info_cb(struct cluster_registry *reg, int result, const struct cluster_node_info *nodes, size_t n,
                    void *ud)
{
    struct info_answer *a = ud;
    (void)reg;
    a->calls++;
    a->result = result;
    a->n = n;
    if (result != 0) {
        assert_null(nodes);
        assert_int_equal(n, 0);
    }
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(a->nodes[i].node, sizeof(a->nodes[i].node), "%s", nodes[i].node);
        snprintf(a->nodes[i].addr, sizeof(a->nodes[i].addr), "%s", nodes[i].addr);
        a->nodes[i].self = nodes[i].self;
        a->nodes[i].known = nodes[i].known;
        a->nodes[i].workers = nodes[i].workers;
        a->nodes[i].draining = nodes[i].draining;
    }
}

/* Asks n for the cluster's info and waits for the answer (0 or an error). */
static int info_of(struct tnode *n, struct info_answer *a)
{
    memset(a, 0, sizeof(*a));
    int rc = cluster_registry_cluster_info(n->reg, info_cb, a, NULL);
    if (rc != 0)
        return rc;
    WAIT_UNTIL(a->calls == 1, 3000);
    run_for(20);
    assert_int_equal(a->calls, 1);
    return a->result;
}

/* Where node id sits in a (-1 if absent). */
static int info_find(const struct info_answer *a, const char *node)
{
    for (size_t i = 0; i < a->n && i < 8; i++)
        if (strcmp(a->nodes[i].node, node) == 0)
            return (int)i;
    return -1;
}

/* Members collected by cluster_registry_members(). */
struct member_list {
    int n;
    char names[256];
};

static void member_cb(const char *node, const char *addr, void *ud)
{
    struct member_list *m = ud;
    size_t l = strlen(m->names);
    snprintf(m->names + l, sizeof(m->names) - l, "%s%s@%s", m->n ? "," : "", node, addr);
    m->n++;
}

/* set_info on A and B; B's cluster_info sees both (itself first), a member
 * without info as unknown, foreign or malformed values as unknown; changes
 * are written early but coalesced; the counters move. */
static void test_node_info(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    /* a long TTL: the heartbeat comes every 15 s, so what is written sooner is the early write */
    struct tnode *a = node_new(r, "t9:", "A", 60000), *b = node_new(r, "t9:", "B", 60000),
                 *c = node_new(r, "t9:", "C", 60000);
    struct info_answer ans;
    char got[128], want[128];
    struct cluster_registry_stats st0, st1;

    WAIT_UNTIL(a->ups == 2 && b->ups == 2 && c->ups == 2, 5000);
    cluster_registry_stats(a->reg, &st0);
    assert_true(st0.commands > 0); /* handshakes and the first heartbeat */
    assert_int_equal(cluster_registry_register(a->reg, S("w1")), 0);
    WAIT_UNTIL(cluster_registry_holds(a->reg, S("w1"), NULL) &&
                   (cluster_registry_stats(a->reg, &st1), st1.held_unconfirmed == 0),
               2000);
    assert_true(st1.commands > st0.commands);
    assert_int_equal(st1.errors, 0);

    /* nobody called set_info yet: no info key, every node unknown, itself included */
    assert_int_equal(info_of(b, &ans), 0);
    assert_int_equal(ans.n, 3);
    assert_string_equal(ans.nodes[0].node, "B");
    assert_int_equal(ans.nodes[0].self, 1);
    assert_int_equal(ans.nodes[0].known, 0);
    assert_string_equal(ans.nodes[1].node, "A"); /* then sorted by node id */
    assert_string_equal(ans.nodes[1].addr, "10.0.0.65:7000");
    assert_string_equal(ans.nodes[2].node, "C");
    assert_int_equal(ans.nodes[1].known + ans.nodes[2].known + ans.nodes[1].self + ans.nodes[2].self, 0);
    assert_string_equal(get(r, "t9:info:A", got, sizeof(got)), "");

    assert_int_equal(cluster_registry_set_info(a->reg, 3, 0), 0);
    assert_int_equal(cluster_registry_set_info(b->reg, 7, 5), 0); /* any non-zero is draining */
    assert_int_equal(cluster_registry_set_info(NULL, 1, 0), CLUSTER_E_INVAL);
    int64_t t0 = now_ms();
    snprintf(want, sizeof(want), "1 3 0 %016llx", (unsigned long long)cluster_registry_boot_id(a->reg));
    WAIT_UNTIL(strcmp(get(r, "t9:info:A", got, sizeof(got)), want) == 0, 2000);
    print_message("first set_info written %lld ms later\n", (long long)(now_ms() - t0));
    redisReply *ttl = cmd(r, "PTTL t9:info:A"), *nttl = cmd(r, "PTTL t9:node:A");
    assert_true(ttl->integer > 55000 && ttl->integer <= 60000); /* the member key's TTL */
    assert_true(llabs(nttl->integer - ttl->integer) < 200);     /* set together, by the heartbeat */
    freeReplyObject(ttl);
    freeReplyObject(nttl);
    snprintf(want, sizeof(want), "1 7 1 %016llx", (unsigned long long)cluster_registry_boot_id(b->reg));
    WAIT_UNTIL(strcmp(get(r, "t9:info:B", got, sizeof(got)), want) == 0, 2000);

    assert_int_equal(info_of(b, &ans), 0);
    assert_int_equal(ans.n, 3);
    assert_true(ans.nodes[0].self && ans.nodes[0].known && ans.nodes[0].workers == 7 &&
                ans.nodes[0].draining);
    assert_true(!ans.nodes[1].self && ans.nodes[1].known && ans.nodes[1].workers == 3 &&
                !ans.nodes[1].draining);
    assert_true(!ans.nodes[2].known);      /* C never gave its info: unknown, not an error */
    assert_int_equal(info_of(a, &ans), 0); /* and from A: B's info, A's own */
    assert_true(ans.nodes[0].self && ans.nodes[0].known && ans.nodes[0].workers == 3);
    int ib = info_find(&ans, "B");
    assert_true(ib > 0 && ans.nodes[ib].known && ans.nodes[ib].workers == 7 && ans.nodes[ib].draining == 1);

    /* a change is written before the next heartbeat (15 s away); many changes are coalesced */
    assert_int_equal(cluster_registry_set_info(a->reg, 4, 1), 0);
    t0 = now_ms();
    WAIT_UNTIL(info_of(b, &ans) == 0 && ans.nodes[1].known && ans.nodes[1].workers == 4, 2500);
    assert_int_equal(ans.nodes[1].draining, 1);
    print_message("a change seen by another node %lld ms later\n", (long long)(now_ms() - t0));
    cluster_registry_stats(a->reg, &st0);
    for (uint32_t i = 0; i < 20; i++) {
        assert_int_equal(cluster_registry_set_info(a->reg, 100 + i, 0), 0);
        run_for(100);
    }
    WAIT_UNTIL(info_of(b, &ans) == 0 && ans.nodes[1].workers == 119, 2500);
    cluster_registry_stats(a->reg, &st1);
    print_message("20 changes in 2 s: %llu commands sent\n",
                  (unsigned long long)(st1.commands - st0.commands));
    assert_true(st1.commands - st0.commands <= 5); /* at most one write a second (and a heartbeat) */

    /* values another incarnation wrote, malformed ones, another version's: unknown */
    freeReplyObject(cmd(r, "SET t9:info:C %s", "1 9 0 0123456789abcdef"));
    assert_int_equal(info_of(b, &ans), 0);
    assert_int_equal(ans.nodes[2].known, 0);
    snprintf(want, sizeof(want), "1 9 0 %016llx", (unsigned long long)cluster_registry_boot_id(c->reg));
    freeReplyObject(cmd(r, "SET t9:info:C %s", want));
    assert_int_equal(info_of(b, &ans), 0);
    assert_true(ans.nodes[2].known && ans.nodes[2].workers == 9); /* as if C had written it */
    /* with C's own boot id, but another version, a leading zero, a trailing space; no boot id at all */
    static const char *const foreign[][2] = {
        {"2 9 0 ", ""}, {"1 09 0 ", ""}, {"1 9 0 ", " "}, {"garbage", NULL}, {"", NULL}};
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        if (foreign[i][1])
            snprintf(want, sizeof(want), "%s%016llx%s", foreign[i][0],
                     (unsigned long long)cluster_registry_boot_id(c->reg), foreign[i][1]);
        else
            snprintf(want, sizeof(want), "%s", foreign[i][0]);
        freeReplyObject(cmd(r, "SET t9:info:C %s", want));
        assert_int_equal(info_of(b, &ans), 0);
        assert_int_equal(ans.n, 3);
        assert_int_equal(ans.nodes[2].known, 0);
        assert_true(ans.nodes[1].known); /* the others still read */
    }
    freeReplyObject(cmd(r, "DEL t9:info:C"));
    freeReplyObject(cmd(r, "HSET t9:info:C a b"));
    assert_int_equal(info_of(b, &ans), 0); /* MGET answers nil for a key of another type */
    assert_int_equal(ans.nodes[2].known, 0);

    /* the members, for /status: the others, not itself */
    struct member_list ml = {0};
    cluster_registry_members(b->reg, member_cb, &ml);
    assert_int_equal(ml.n, 2);
    assert_true(strstr(ml.names, "A@10.0.0.65:7000") && strstr(ml.names, "C@10.0.0.67:7000"));
    assert_null(strstr(ml.names, "B@"));
    cluster_registry_members(NULL, member_cb, &ml);
    cluster_registry_members(b->reg, NULL, NULL);
    assert_int_equal(cluster_registry_cluster_info(b->reg, NULL, NULL, NULL), CLUSTER_E_INVAL);
    assert_int_equal(cluster_registry_cluster_info(NULL, info_cb, &ans, NULL), CLUSTER_E_INVAL);
    cluster_info_cancel(NULL);

    node_free(a);
    node_free(b);
    node_free(c);
    redis_free(r);
}

/* A node killed without leaving: its info key expires with its member key.
 * A node that leaves: both are deleted at once. */
static void test_node_info_expiry(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct tnode *a = node_new(r, "t10:", "A", 1000), *b = node_new(r, "t10:", "B", 1000),
                 *c = node_new(r, "t10:", "C", 1000);
    struct info_answer ans;
    char got[128];
    WAIT_UNTIL(a->ups == 2 && b->ups == 2 && c->ups == 2, 5000);
    cluster_registry_set_info(a->reg, 1, 0);
    cluster_registry_set_info(b->reg, 2, 0);
    cluster_registry_set_info(c->reg, 3, 0);
    WAIT_UNTIL(strlen(get(r, "t10:info:A", got, sizeof(got))) &&
                   strlen(get(r, "t10:info:C", got, sizeof(got))),
               2000);
    run_for(1200); /* past the start-up grace */

    node_free(a); /* no leave */
    int64_t t0 = now_ms();
    WAIT_UNTIL(!strlen(get(r, "t10:node:A", got, sizeof(got))), 2500);
    int64_t node_gone = now_ms() - t0;
    WAIT_UNTIL(!strlen(get(r, "t10:info:A", got, sizeof(got))), 500);
    print_message("killed node: member key gone after %lld ms, info key after %lld ms\n",
                  (long long)node_gone, (long long)(now_ms() - t0));
    WAIT_UNTIL(b->downs == 1, 2500);
    assert_int_equal(info_of(b, &ans), 0);
    assert_int_equal(ans.n, 2);
    assert_int_equal(info_find(&ans, "A"), -1);
    assert_true(ans.nodes[1].known && ans.nodes[1].workers == 3);

    int done = 0;
    assert_int_equal(cluster_registry_leave(c->reg, NULL, &done), 0);
    WAIT_UNTIL(b->downs == 2, 1000);
    assert_string_equal(get(r, "t10:info:C", got, sizeof(got)), "");
    assert_string_equal(get(r, "t10:node:C", got, sizeof(got)), "");
    assert_true(strlen(get(r, "t10:info:B", got, sizeof(got))) > 0);
    node_free(c);
    node_free(b);
    redis_free(r);
}

/* Redis down: CLUSTER_E_DOWN at once; hung: CLUSTER_E_TIMEOUT within the
 * command timeout, at most CLUSTER_MAX_INFO_REQS in flight; cancelled or
 * freed with the registry: never answered; the error counter moves. */
static int all_called(const struct info_answer *a, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i].calls == 0)
            return 0;
    return 1;
}

static void test_node_info_failures(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    /* heartbeats 15 s apart: none in flight when Redis stops, so its watchdog does not drop the
     * connection before the requests time out */
    struct tnode *a = node_new(r, "t11:", "A", 60000), *b = node_new(r, "t11:", "B", 60000);
    struct info_answer ans, cancelled, many[CLUSTER_MAX_INFO_REQS], freed;
    struct cluster_info_req *h = NULL;
    struct cluster_registry_stats st;
    WAIT_UNTIL(a->ups == 1 && b->ups == 1, 5000);
    cluster_registry_set_info(a->reg, 5, 0);

    /* cancelled before the reply: no callback (ASan: nothing leaks) */
    memset(&cancelled, 0, sizeof(cancelled));
    assert_int_equal(cluster_registry_cluster_info(b->reg, info_cb, &cancelled, &h), 0);
    assert_non_null(h);
    cluster_info_cancel(h);
    memset(&ans, 0, sizeof(ans));
    assert_int_equal(cluster_registry_cluster_info(b->reg, info_cb, &ans, NULL), 0);
    WAIT_UNTIL(ans.calls == 1, 2000);
    run_for(100);
    assert_int_equal(cancelled.calls, 0);
    cluster_registry_stats(b->reg, &st);
    assert_int_equal(st.errors, 0);

    /* a hung Redis: answered CLUSTER_E_TIMEOUT within the command timeout (1500 ms) */
    kill(r->pid, SIGSTOP);
    int64_t t0 = now_ms();
    memset(&ans, 0, sizeof(ans));
    memset(&cancelled, 0, sizeof(cancelled));
    assert_int_equal(cluster_registry_cluster_info(b->reg, info_cb, &ans, NULL), 0);
    assert_int_equal(cluster_registry_cluster_info(b->reg, info_cb, &cancelled, &h), 0);
    cluster_info_cancel(h);
    memset(many, 0, sizeof(many));
    int sent = 2;
    for (int i = 0; sent < CLUSTER_MAX_INFO_REQS; i++, sent++)
        assert_int_equal(cluster_registry_cluster_info(b->reg, info_cb, &many[i], NULL), 0);
    assert_int_equal(cluster_registry_cluster_info(b->reg, info_cb, &many[CLUSTER_MAX_INFO_REQS - 1], NULL),
                     CLUSTER_E_LIMIT);
    WAIT_UNTIL(ans.calls == 1, 2000);
    int64_t waited = now_ms() - t0;
    print_message("cluster_info against a stopped Redis answered %d after %lld ms\n", ans.result,
                  (long long)waited);
    assert_int_equal(ans.result, CLUSTER_E_TIMEOUT);
    assert_true(waited >= 1300 && waited <= 1500 + 400); /* + the loop's own lateness on a busy machine */
    /* the others time out in the same timer pass, or in the next ones on a busy machine */
    WAIT_UNTIL(all_called(many, CLUSTER_MAX_INFO_REQS - 2), 1000);
    for (int i = 0; i < CLUSTER_MAX_INFO_REQS - 2; i++) {
        assert_int_equal(many[i].calls, 1);
        assert_int_equal(many[i].result, CLUSTER_E_TIMEOUT);
    }
    assert_int_equal(many[CLUSTER_MAX_INFO_REQS - 1].calls, 0);
    assert_int_equal(cancelled.calls, 0);
    cluster_registry_stats(b->reg, &st);
    assert_true(st.errors >= 1);
    kill(r->pid, SIGCONT);
    WAIT_UNTIL(b->redis_up && info_of(b, &ans) == 0, 5000);
    assert_int_equal(ans.n, 2);
    assert_true(ans.nodes[1].known && ans.nodes[1].workers == 5);

    /* Redis gone: CLUSTER_E_DOWN at once, never a callback; the members are still known */
    uint64_t errors_before = st.errors;
    redis_kill(r);
    WAIT_UNTIL(!b->redis_up, 3000);
    memset(&ans, 0, sizeof(ans));
    assert_int_equal(cluster_registry_cluster_info(b->reg, info_cb, &ans, &h), CLUSTER_E_DOWN);
    assert_null(h);
    run_for(200);
    assert_int_equal(ans.calls, 0);
    cluster_registry_stats(b->reg, &st);
    print_message("errors after Redis was killed: %llu (before: %llu)\n", (unsigned long long)st.errors,
                  (unsigned long long)errors_before);
    assert_true(st.errors > errors_before);
    struct member_list ml = {0};
    cluster_registry_members(b->reg, member_cb, &ml);
    assert_string_equal(ml.names, "A@10.0.0.65:7000");

    /* freed with a request in flight: its callback never comes */
    redis_start(r);
    WAIT_UNTIL(b->redis_up, 5000);
    memset(&freed, 0, sizeof(freed));
    assert_int_equal(cluster_registry_cluster_info(b->reg, info_cb, &freed, NULL), 0);
    node_free(b);
    run_for(200);
    assert_int_equal(freed.calls, 0);
    node_free(a);
    redis_free(r);
}

/* Freeing the registry from inside a cluster_info callback is deferred safely,
 * and the other request in flight is never answered. */
static int info_free_calls;
static void info_free_cb(struct cluster_registry *reg, int result, const struct cluster_node_info *nodes,
                         size_t n, void *ud)
{
    (void)result, (void)nodes, (void)n, (void)ud;
    info_free_calls++;
    cluster_registry_free(reg);
    free_me = NULL;
}

static void test_node_info_free_in_callback(void **state)
{
    NEED_REDIS();
    (void)state;
    struct redis_proc *r = redis_new(NULL);
    struct cluster_options o = {.redis_url = url_of(r), .node_id = "A", .advertise = "h:1"};
    struct tnode n = {.name = "A"};
    struct info_answer other = {0};
    assert_int_equal(cluster_registry_new(base, &o, &cbs, &n, &free_me), 0);
    WAIT_UNTIL(n.redis_up, 3000);
    assert_int_equal(cluster_registry_set_info(free_me, 1, 0), 0);
    info_free_calls = 0;
    assert_int_equal(cluster_registry_cluster_info(free_me, info_free_cb, NULL, NULL), 0);
    assert_int_equal(cluster_registry_cluster_info(free_me, info_cb, &other, NULL), 0);
    WAIT_UNTIL(free_me == NULL, 3000);
    run_for(100);
    assert_int_equal(info_free_calls, 1);
    assert_int_equal(other.calls, 0);
    redis_free(r);
}

/* After each test, pass or fail: whatever it left behind. */
static int test_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(live_nodes) / sizeof(live_nodes[0]); i++)
        if (live_nodes[i])
            node_free(live_nodes[i]);
    for (size_t i = 0; i < sizeof(live_redis) / sizeof(live_redis[0]); i++)
        if (live_redis[i])
            redis_free(live_redis[i]);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_register_learn_lookup, test_teardown),
        cmocka_unit_test_teardown(test_concurrent_registration, test_teardown),
        cmocka_unit_test_teardown(test_takeover_and_release, test_teardown),
        cmocka_unit_test_teardown(test_membership_expiry, test_teardown),
        cmocka_unit_test_teardown(test_redis_restart, test_teardown),
        cmocka_unit_test_teardown(test_outage_reconciliation, test_teardown),
        cmocka_unit_test_teardown(test_hung_redis, test_teardown),
        cmocka_unit_test_teardown(test_busy_redis, test_teardown),
        cmocka_unit_test_teardown(test_redis_out_of_memory, test_teardown),
        cmocka_unit_test_teardown(test_requirepass, test_teardown),
        cmocka_unit_test_teardown(test_new_errors, test_teardown),
        cmocka_unit_test_teardown(test_free_in_callback, test_teardown),
        cmocka_unit_test_teardown(test_node_info, test_teardown),
        cmocka_unit_test_teardown(test_node_info_expiry, test_teardown),
        cmocka_unit_test_teardown(test_node_info_failures, test_teardown),
        cmocka_unit_test_teardown(test_node_info_free_in_callback, test_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
