/* node/route: route_decide() as a pure function of a parsed request head and
 * a route_env whose two callbacks read a small fake table. Every decision is
 * made with a fwd buffer of exactly ROUTE_FWD_CAP(r) bytes on the heap, so
 * an ASan build catches any write past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/route.h"
#include "util/util.h"

/* ---- the fake node: which workers are here, which left while draining ---- */

struct fake {
    const char *local[4]; /* connected here */
    const char *gone[4];  /* left this draining node, no new home yet: moving() 0 */
    const char *moved[4]; /* registered on another node: moving() 1 */
    int draining;         /* moving() is only asked while draining */
    int has_calls, moving_calls;
};

static struct fake g_fake;

static int in_list(const char *const *list, const char *id, size_t len)
{
    for (size_t i = 0; i < 4 && list[i]; i++)
        if (strlen(list[i]) == len && memcmp(list[i], id, len) == 0)
            return 1;
    return 0;
}

static void *fake_find_worker(void *ud, const char *id, size_t len)
{
    struct fake *f = ud;
    assert_ptr_equal(f, &g_fake);
    assert_true(util_valid_worker_id(id, len)); /* never asked about a malformed id */
    f->has_calls++;
    return in_list(f->local, id, len) ? (void *)f : NULL; /* any non-NULL handle */
}

static int fake_moving(void *ud, const char *id, size_t len)
{
    struct fake *f = ud;
    assert_ptr_equal(f, &g_fake);
    assert_true(f->draining);
    assert_true(util_valid_worker_id(id, len));
    assert_false(in_list(f->local, id, len)); /* a worker here is LOCAL, not moving */
    f->moving_calls++;
    if (in_list(f->gone, id, len))
        return 0;
    if (in_list(f->moved, id, len))
        return 1;
    return -1;
}

/* An env over g_fake, which is reset to "w1" and "local" connected here,
 * "gone" left with no new home, "moved" on another node. */
static struct route_env env_of(const char *domain, int draining, int relayed, int cluster)
{
    memset(&g_fake, 0, sizeof g_fake);
    g_fake.local[0] = "w1";
    g_fake.local[1] = "local";
    g_fake.gone[0] = "gone";
    g_fake.moved[0] = "moved";
    g_fake.draining = draining;
    struct route_env e = {
        .domain = domain,
        .draining = draining,
        .relayed = relayed,
        .cluster = cluster,
        .find_worker = fake_find_worker,
        .moving = fake_moving,
        .ud = &g_fake,
    };
    return e;
}

/* ---- one decision, copied out before the request's buffer is freed ---- */

struct res {
    struct route rt;
    char id[300];                      /* LOCAL, RELAY, PARK, MISS: the id, NUL-terminated */
    char fwd[600];                     /* LOCAL, RELAY, PARK, MISS: the target the worker sees */
    char idh_name[64], idh_value[300]; /* REGISTER */
};

static struct http1_request g_req; /* large (100 headers): not on the stack */

/* Checks what holds for every decision on request r (buffer buf, len bytes)
 * with fwd of ROUTE_FWD_CAP(r) bytes. */
static void check_invariants(const struct route_env *env, const char *buf, size_t len,
                             const struct http1_request *r, const char *fwd, const struct route *rt)
{
    assert_in_range(rt->kind, ROUTE_ANSWER, ROUTE_FAIL);
    switch (rt->kind) {
    case ROUTE_ANSWER: assert_in_range(rt->endpoint, ROUTE_EP_HEARTBEAT, ROUTE_EP_CLUSTER); break;
    case ROUTE_REGISTER:
        assert_false(env->relayed);
        assert_false(env->draining);
        assert_non_null(rt->idh);
        assert_true(rt->idh >= &r->headers.h[0] && rt->idh < &r->headers.h[r->headers.count]);
        break;
    case ROUTE_FAIL:
        assert_true(rt->status == 400 || rt->status == 404 || rt->status == 503);
        assert_non_null(rt->body);
        assert_true(strlen(rt->body) > 0 && rt->body[strlen(rt->body) - 1] == '\n');
        break;
    default: /* LOCAL, RELAY, PARK, MISS */
        if (!util_valid_worker_id(rt->id, rt->id_len))
            fail_msg("kind %d with an invalid id \"%.*s\"", rt->kind, (int)rt->id_len, rt->id ? rt->id : "");
        assert_true(rt->id >= buf && rt->id + rt->id_len <= buf + len); /* into the request */
        assert_in_range(rt->fwd_len, 1, ROUTE_FWD_CAP(r));
        assert_int_equal(fwd[0], '/');
        if (rt->kind == ROUTE_PARK)
            assert_true(env->draining);
        if (rt->kind == ROUTE_MISS)
            assert_true(env->relayed);
        if (rt->kind == ROUTE_RELAY)
            assert_true(env->cluster || env->draining);
        break;
    }
}

/* Parses head (which must be one whole request head) from an exact-size
 * heap copy and decides it with env; fwd gets exactly ROUTE_FWD_CAP bytes. */
static struct res decide_n(const struct route_env *env, const char *head, size_t len)
{
    char *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, head, len);
    memset(&g_req, 0, sizeof g_req);
    int rc = http1_parse_request(buf, len, &g_req, 65536);
    if (rc != (int)len)
        fail_msg("request did not parse (%d, %s): %.*s", rc, http1_strerror(rc), (int)len, head);
    char *fwd = malloc(ROUTE_FWD_CAP(&g_req));
    assert_non_null(fwd);
    struct res x;
    memset(&x.rt, 0x5a, sizeof x.rt); /* route_decide() must set every field */
    memset(x.id, 0, sizeof x.id);
    memset(x.fwd, 0, sizeof x.fwd);
    memset(x.idh_name, 0, sizeof x.idh_name);
    memset(x.idh_value, 0, sizeof x.idh_value);
    route_decide(env, &g_req, fwd, &x.rt);
    check_invariants(env, buf, len, &g_req, fwd, &x.rt);
    if (x.rt.kind >= ROUTE_LOCAL && x.rt.kind <= ROUTE_MISS) {
        assert_true(x.rt.id_len < sizeof x.id && x.rt.fwd_len < sizeof x.fwd);
        memcpy(x.id, x.rt.id, x.rt.id_len);
        memcpy(x.fwd, fwd, x.rt.fwd_len);
        x.rt.id = NULL;
    }
    if (x.rt.kind == ROUTE_REGISTER) {
        const struct http1_header *h = x.rt.idh;
        assert_true(h->name_len < sizeof x.idh_name && h->value_len < sizeof x.idh_value);
        memcpy(x.idh_name, h->name, h->name_len);
        memcpy(x.idh_value, h->value, h->value_len);
        x.rt.idh = NULL;
    }
    free(fwd);
    free(buf);
    return x;
}

static struct res decide(const struct route_env *env, const char *head)
{
    return decide_n(env, head, strlen(head));
}

/* "GET <target> HTTP/1.1" with Host host (none if NULL) and an extra header
 * line (none if NULL). */
static struct res decide_get(const struct route_env *env, const char *target, const char *host,
                             const char *extra)
{
    char head[1024];
    int n = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\n%s%s%s%s\r\n", target, host ? "Host: " : "",
                     host ? host : "", host ? "\r\n" : "", extra ? extra : "");
    assert_true(n > 0 && (size_t)n < sizeof head);
    return decide(env, head);
}

static void assert_answer(const struct res *x, enum route_endpoint ep)
{
    assert_int_equal(x->rt.kind, ROUTE_ANSWER);
    assert_int_equal(x->rt.endpoint, ep);
}

static void assert_fail(const struct res *x, int status, const char *body)
{
    if (x->rt.kind != ROUTE_FAIL)
        fail_msg("kind %d (id \"%s\", fwd \"%s\"), want ROUTE_FAIL %d", x->rt.kind, x->id, x->fwd, status);
    assert_int_equal(x->rt.status, status);
    assert_string_equal(x->rt.body, body);
}

/* kind with worker id and forwarded target fwd, routed by path or not. */
static void assert_worker(const struct res *x, enum route_kind kind, const char *id, const char *fwd,
                          int path_mode)
{
    if (x->rt.kind != kind)
        fail_msg("kind %d, want %d (id \"%s\")", x->rt.kind, kind, x->id);
    assert_string_equal(x->id, id);
    assert_int_equal(x->rt.id_len, strlen(id));
    assert_string_equal(x->fwd, fwd);
    assert_int_equal(x->rt.fwd_len, strlen(fwd));
    assert_int_equal(x->rt.path_mode, path_mode);
    /* LOCAL carries what find_worker() found; nothing else carries a worker */
    if (kind == ROUTE_LOCAL)
        assert_ptr_equal(x->rt.worker, &g_fake);
    else
        assert_null(x->rt.worker);
}

#define NOT_FOUND "not found\n"
#define NO_CLIENT "No client is connected with that id\n"

/* ---- the node's endpoints ---- */

static void test_endpoints(void **state)
{
    static const struct {
        const char *target;
        enum route_endpoint ep;
    } eps[] = {
        {"/__lbheartbeat__", ROUTE_EP_HEARTBEAT},
        {"/__lbheartbeat__?x=1", ROUTE_EP_HEARTBEAT},
        {"/__heartbeat__", ROUTE_EP_HEARTBEAT},
        {"/__heartbeat__?", ROUTE_EP_HEARTBEAT},
        {"/__version__", ROUTE_EP_VERSION},
        {"/__version__?a=b&c", ROUTE_EP_VERSION},
        {"/__cluster__", ROUTE_EP_CLUSTER},
        {"/__cluster__?format=json", ROUTE_EP_CLUSTER},
        {"http://node.test/__version__", ROUTE_EP_VERSION}, /* absolute-form: the path after the authority */
        {"http://node.test/__cluster__?x", ROUTE_EP_CLUSTER},
    };
    for (int relayed = 0; relayed <= 1; relayed++) {
        for (int cluster = 0; cluster <= 1; cluster++) {
            for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
                struct route_env env = env_of(NULL, 0, relayed, cluster);
                struct res x = decide_get(&env, eps[i].target, "node.test", NULL);
                assert_answer(&x, eps[i].ep);
                /* an endpoint wins over domain mode and over an id header */
                env = env_of("example.com", 0, relayed, cluster);
                x = decide_get(&env, eps[i].target, "w1.example.com", "X-Websocktunnel-Id: w1\r\n");
                assert_answer(&x, eps[i].ep);
                assert_int_equal(g_fake.has_calls, 0);
            }
        }
    }

    /* draining: the load balancers' heartbeat says "send nothing new here" */
    struct route_env env = env_of(NULL, 1, 0, 1);
    struct res x = decide_get(&env, "/__lbheartbeat__", "node.test", NULL);
    assert_answer(&x, ROUTE_EP_DRAINING);
    x = decide_get(&env, "/__lbheartbeat__?x=1", "node.test", NULL);
    assert_answer(&x, ROUTE_EP_DRAINING);
    x = decide_get(&env, "/__heartbeat__", "node.test", NULL); /* the node itself still lives */
    assert_answer(&x, ROUTE_EP_HEARTBEAT);
    x = decide_get(&env, "/__version__", "node.test", NULL);
    assert_answer(&x, ROUTE_EP_VERSION);
    x = decide_get(&env, "/__cluster__", "node.test", NULL);
    assert_answer(&x, ROUTE_EP_CLUSTER);
    assert_int_equal(g_fake.moving_calls, 0);

    /* not endpoints: other paths that look like them are worker ids */
    env = env_of(NULL, 0, 0, 0);
    x = decide_get(&env, "/__version__/x", "node.test", NULL);
    assert_fail(&x, 404, NO_CLIENT);
    assert_int_equal(g_fake.has_calls, 1);
    g_fake.local[0] = "__version__";
    x = decide_get(&env, "/__version__/x?y", "node.test", NULL);
    assert_worker(&x, ROUTE_LOCAL, "__version__", "/x?y", 1);
    x = decide_get(&env, "/__version__x", "node.test", NULL);
    assert_fail(&x, 404, NO_CLIENT);
    x = decide_get(&env, "/__VERSION__", "node.test", NULL); /* paths are case-sensitive */
    assert_fail(&x, 404, NO_CLIENT);
    x = decide_get(&env, "/%5F_version__", "node.test", NULL); /* not percent-decoded */
    assert_fail(&x, 404, NO_CLIENT);
}

/* ---- registration ---- */

static void test_register(void **state)
{
    static const char *targets[] = {"/",
                                    "/?x=1",
                                    "/?",
                                    "http://node.test/",
                                    "http://node.test/?a",
                                    "http://node.test" /* the empty path of an absolute target is "/" */};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        for (int cluster = 0; cluster <= 1; cluster++) {
            struct route_env env = env_of(NULL, 0, 0, cluster);
            struct res x = decide_get(&env, targets[i], "node.test", "X-Websocktunnel-Id: w9\r\n");
            assert_int_equal(x.rt.kind, ROUTE_REGISTER);
            assert_string_equal(x.idh_name, "X-Websocktunnel-Id");
            assert_string_equal(x.idh_value, "w9");
            x = decide_get(&env, targets[i], "node.test", "x-webhooktunnel-id: w8\r\n");
            assert_int_equal(x.rt.kind, ROUTE_REGISTER);
            assert_string_equal(x.idh_name, "x-webhooktunnel-id");
            assert_string_equal(x.idh_value, "w8");
            assert_int_equal(g_fake.has_calls, 0);
        }
    }

    /* both: X-Websocktunnel-Id is the one, wherever it stands */
    struct route_env env = env_of(NULL, 0, 0, 0);
    struct res x =
        decide_get(&env, "/", "node.test", "X-Webhooktunnel-Id: old\r\nX-Websocktunnel-Id: new\r\n");
    assert_int_equal(x.rt.kind, ROUTE_REGISTER);
    assert_string_equal(x.idh_value, "new");

    /* in domain mode too: the id header on "/" registers */
    env = env_of("example.com", 0, 0, 1);
    x = decide_get(&env, "/", "w1.example.com", "X-Websocktunnel-Id: w1\r\n");
    assert_int_equal(x.rt.kind, ROUTE_REGISTER);

    /* the header on another path is not a registration: the path routes */
    env = env_of(NULL, 0, 0, 0);
    x = decide_get(&env, "/w1", "node.test", "X-Websocktunnel-Id: w2\r\n");
    assert_worker(&x, ROUTE_LOCAL, "w1", "/", 1);
    x = decide_get(&env, "/w1/", "node.test", "X-Webhooktunnel-Id: w2\r\n");
    assert_worker(&x, ROUTE_LOCAL, "w1", "/", 1);
    x = decide_get(&env, "//", "node.test", "X-Webhooktunnel-Id: w2\r\n");
    assert_fail(&x, 404, NOT_FOUND);
    x = decide_get(&env, "/nobody", "node.test", "X-Webhooktunnel-Id: w2\r\n");
    assert_fail(&x, 404, NO_CLIENT);
    /* "/" without the header is no worker */
    x = decide_get(&env, "/", "node.test", NULL);
    assert_fail(&x, 404, NOT_FOUND);
    x = decide_get(&env, "/", "node.test", "X-Websocktunnel-Idx: w1\r\n");
    assert_fail(&x, 404, NOT_FOUND);

    /* never through a peer; never on a draining node */
    for (int cluster = 0; cluster <= 1; cluster++) {
        env = env_of(NULL, 0, 1, cluster);
        x = decide_get(&env, "/", "node.test", "X-Websocktunnel-Id: w1\r\n");
        assert_fail(&x, 400, "registration cannot be relayed\n");
        x = decide_get(&env, "/?a", "node.test", "X-Webhooktunnel-Id: w1\r\n");
        assert_fail(&x, 400, "registration cannot be relayed\n");
        env = env_of(NULL, 1, 0, cluster);
        x = decide_get(&env, "/", "node.test", "X-Websocktunnel-Id: w1\r\n");
        assert_fail(&x, 503, "this node is draining: register with another one\n");
        x = decide_get(&env, "/", "node.test", "X-Webhooktunnel-Id: w1\r\n");
        assert_fail(&x, 503, "this node is draining: register with another one\n");
        env = env_of(NULL, 1, 1, cluster); /* both: relayed is the first answer */
        x = decide_get(&env, "/", "node.test", "X-Websocktunnel-Id: w1\r\n");
        assert_fail(&x, 400, "registration cannot be relayed\n");
        assert_int_equal(g_fake.has_calls + g_fake.moving_calls, 0);
    }
}

/* ---- path mode ---- */

static void test_path_mode(void **state)
{
    static const struct {
        const char *target, *id, *fwd;
    } ok[] = {
        {"/w1/rest?q", "w1", "/rest?q"},
        {"/w1", "w1", "/"},
        {"/w1?q", "w1", "/?q"},
        {"/w1?", "w1", "/?"},
        {"/w1/", "w1", "/"},
        {"/w1//", "w1", "//"},
        {"/w1?q/x", "w1", "/?q/x"},                            /* a '/' in the query is not a segment */
        {"/w1/a/b/../c%2F?x=1&y", "w1", "/a/b/../c%2F?x=1&y"}, /* as sent */
        {"/w1/?", "w1", "/?"},
        {"/local/x", "local", "/x"},
        {"/A-b_c.d~e%20/x", "A-b_c.d~e%20", "/x"}, /* every id char */
        {"http://node.test/w1/x?y", "w1", "/x?y"}, /* absolute-form, no domain: by path */
        {"http://node.test:8080/w1", "w1", "/"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct route_env env = env_of(NULL, 0, 0, 0);
        g_fake.local[2] = "A-b_c.d~e%20";
        struct res x = decide_get(&env, ok[i].target, "node.test", NULL);
        assert_worker(&x, ROUTE_LOCAL, ok[i].id, ok[i].fwd, 1);
        assert_int_equal(g_fake.has_calls, 1);
    }

    /* HTTP/1.0 without Host: by path */
    struct route_env env = env_of("example.com", 0, 0, 0);
    struct res x = decide(&env, "GET /w1/a HTTP/1.0\r\n\r\n");
    assert_worker(&x, ROUTE_LOCAL, "w1", "/a", 1);
    /* an empty Host (allowed by HTTP/1.1 for some targets) */
    x = decide(&env, "GET /w1/a HTTP/1.1\r\nHost:\r\n\r\n");
    assert_worker(&x, ROUTE_LOCAL, "w1", "/a", 1);
    /* other methods route alike */
    x = decide(&env, "POST /w1/hook HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n");
    assert_worker(&x, ROUTE_LOCAL, "w1", "/hook", 1);
}

static void test_path_mode_not_found(void **state)
{
    static const char *bad[] = {
        "/",
        "/?x=1",
        "//x",
        "//",
        "/w!1/x", /* not an id char */
        "/w:1",
        "/w@1/x",
        "/w,1",
        "/w;1",
        "/w=1",
        "/w+1",
        "/w$1",
        "/w'1",
        "/w*1",
        "/w(1)",
        "http://node.test",    /* absolute-form, no path: "/" */
        "http://node.test?x",  /* no path, a query */
        "http://node.test/?x", /* no id */
    };
    for (int relayed = 0; relayed <= 1; relayed++) {
        for (int cluster = 0; cluster <= 1; cluster++) {
            for (int draining = 0; draining <= 1; draining++) {
                for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                    struct route_env env = env_of(NULL, draining, relayed, cluster);
                    struct res x = decide_get(&env, bad[i], "node.test", NULL);
                    if (x.rt.kind != ROUTE_FAIL)
                        fail_msg("%s: kind %d id \"%s\"", bad[i], x.rt.kind, x.id);
                    assert_fail(&x, 404, NOT_FOUND);
                    assert_int_equal(g_fake.has_calls + g_fake.moving_calls, 0);
                }
            }
        }
    }

    /* the id's length: 255 bytes is the longest */
    char target[300], id[260];
    memset(id, 'a', sizeof id);
    id[UTIL_MAX_ID_LEN] = 0;
    struct route_env env = env_of(NULL, 0, 0, 0);
    g_fake.local[0] = id;
    snprintf(target, sizeof target, "/%s/x?y", id);
    struct res x = decide_get(&env, target, "node.test", NULL);
    assert_worker(&x, ROUTE_LOCAL, id, "/x?y", 1);
    snprintf(target, sizeof target, "/%s", id);
    x = decide_get(&env, target, "node.test", NULL);
    assert_worker(&x, ROUTE_LOCAL, id, "/", 1);
    id[UTIL_MAX_ID_LEN] = 'a';
    id[UTIL_MAX_ID_LEN + 1] = 0; /* 256 */
    snprintf(target, sizeof target, "/%s/x", id);
    x = decide_get(&env, target, "node.test", NULL);
    assert_fail(&x, 404, NOT_FOUND);
    snprintf(target, sizeof target, "/%s", id);
    x = decide_get(&env, target, "node.test", NULL);
    assert_fail(&x, 404, NOT_FOUND);
    assert_int_equal(g_fake.has_calls, 2);

    /* targets that are not paths */
    env = env_of(NULL, 0, 0, 1);
    x = decide(&env, "OPTIONS * HTTP/1.1\r\nHost: node.test\r\n\r\n");
    assert_fail(&x, 404, NOT_FOUND);
    x = decide(&env, "CONNECT node.test:443 HTTP/1.1\r\nHost: node.test:443\r\n\r\n");
    assert_fail(&x, 404, NOT_FOUND);
}

/* ---- domain mode ---- */

static void test_domain_mode(void **state)
{
    static const struct {
        const char *domain, *target, *host, *id, *fwd;
        int path_mode;
    } ok[] = {
        {"example.com", "/a?b", "w1.example.com", "w1", "/a?b", 0},
        {"example.com", "/", "w1.example.com", "w1", "/", 0},
        {"example.com", "/w1/x", "w1.example.com", "w1", "/w1/x", 0}, /* the whole path */
        {"example.com", "/?q", "w1.example.com:8080", "w1", "/?q", 0},
        {"example.com", "/x", "W1.EXAMPLE.COM", "W1", "/x", 0}, /* the id as sent */
        {"example.com", "/x", "w1.Example.Com:443", "w1", "/x", 0},
        {"Example.COM", "/x", "w1.example.com", "w1", "/x", 0},
        {"example.com", "/x", "local.example.com", "local", "/x", 0},
        {"example.com", "http://w1.example.com?x=1", "w1.example.com", "w1", "/?x=1", 0},
        {"example.com", "http://w1.example.com", "w1.example.com", "w1", "/", 0},
        {"example.com", "http://w1.example.com:81/p?q", "other.test", "w1", "/p?q",
         0}, /* the authority wins */
        {"example.com", "https://w1.example.com/", "w1.example.com", "w1", "/", 0},
        /* not "<id>.<domain>": path mode */
        {"example.com", "/w1/x", "w1example.com", "w1", "/x", 1},
        {"example.com", "/w1/x", "example.com", "w1", "/x", 1},
        {"example.com", "/w1/x", "example.com:80", "w1", "/x", 1},
        {"example.com", "/w1/x", ".example.com", "w1", "/x", 1},
        {"example.com", "/w1/x", "other.test", "w1", "/x", 1},
        {"example.com", "/w1/x", "w1.example.com.evil.test", "w1", "/x", 1},
        {"example.com", "/w1/x", "w1.example.co", "w1", "/x", 1},
        {"example.com", "/w1/x", "w1.xexample.com", "w1", "/x", 1},
        {"example.com", "/w1/x", "127.0.0.1:8080", "w1", "/x", 1},
        {"example.com", "/w1/x", "[::1]:8080", "w1", "/x", 1},
        {"example.com", "http://other.test/w1?q", "w1.example.com", "w1", "/?q", 1}, /* the authority wins */
        {"", "/w1/x", "w1.example.com", "w1", "/x", 1}, /* no domain configured */
        {NULL, "/w1/x", "w1.example.com", "w1", "/x", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct route_env env = env_of(ok[i].domain, 0, 0, 0);
        g_fake.local[2] = "W1";
        struct res x = decide_get(&env, ok[i].target, ok[i].host, NULL);
        if (x.rt.kind != ROUTE_LOCAL || strcmp(x.id, ok[i].id) != 0 || strcmp(x.fwd, ok[i].fwd) != 0 ||
            x.rt.path_mode != ok[i].path_mode)
            fail_msg("domain %s, GET %s, Host %s: kind %d id \"%s\" fwd \"%s\" path_mode %d", ok[i].domain,
                     ok[i].target, ok[i].host, x.rt.kind, x.id, x.fwd, x.rt.path_mode);
        assert_worker(&x, ROUTE_LOCAL, ok[i].id, ok[i].fwd, ok[i].path_mode);
    }

    /* the id part must be a valid id: it is not looked up in the path then */
    struct route_env env = env_of("example.com", 0, 0, 0);
    struct res x = decide_get(&env, "/w1/x", "a.b.example.com", NULL); /* '.' is an id char */
    assert_fail(&x, 404, NO_CLIENT);
    g_fake.local[2] = "a.b";
    x = decide_get(&env, "/w1/x", "a.b.example.com", NULL);
    assert_worker(&x, ROUTE_LOCAL, "a.b", "/w1/x", 0);
    x = decide_get(&env, "/w1/x", "nobody.example.com", NULL);
    assert_fail(&x, 404, NO_CLIENT);
    x = decide(&env, "GET /w1/x HTTP/1.1\r\nHost: w!1.example.com\r\n\r\n");
    assert_fail(&x, 404, NOT_FOUND);
}

/* ---- where a valid id goes ---- */

static void test_local_and_not(void **state)
{
    for (int relayed = 0; relayed <= 1; relayed++) {
        for (int cluster = 0; cluster <= 1; cluster++) {
            for (int draining = 0; draining <= 1; draining++) {
                /* here: LOCAL whatever the flags */
                struct route_env env = env_of(NULL, draining, relayed, cluster);
                struct res x = decide_get(&env, "/w1/p", "node.test", NULL);
                assert_worker(&x, ROUTE_LOCAL, "w1", "/p", 1);
                assert_int_equal(g_fake.moving_calls, 0);
                env = env_of("example.com", draining, relayed, cluster);
                x = decide_get(&env, "/p", "w1.example.com", NULL);
                assert_worker(&x, ROUTE_LOCAL, "w1", "/p", 0);

                /* not here, not moving */
                env = env_of(NULL, draining, relayed, cluster);
                x = decide_get(&env, "/w2/p?q", "node.test", NULL);
                if (relayed)
                    assert_worker(&x, ROUTE_MISS, "w2", "/p?q", 1); /* never relayed twice */
                else if (cluster)
                    assert_worker(&x, ROUTE_RELAY, "w2", "/p?q", 1);
                else
                    assert_fail(&x, 404, NO_CLIENT);
                assert_int_equal(g_fake.has_calls, 1);
                assert_int_equal(g_fake.moving_calls, draining);
            }
        }
    }
}

static void test_draining_moves(void **state)
{
    for (int relayed = 0; relayed <= 1; relayed++) {
        for (int cluster = 0; cluster <= 1; cluster++) {
            /* left, no new home yet: wait for it */
            struct route_env env = env_of(NULL, 1, relayed, cluster);
            struct res x = decide_get(&env, "/gone/x", "node.test", NULL);
            assert_worker(&x, ROUTE_PARK, "gone", "/x", 1);
            assert_int_equal(g_fake.moving_calls, 1);
            env = env_of("example.com", 1, relayed, cluster);
            x = decide_get(&env, "/x?y", "gone.example.com", NULL);
            assert_worker(&x, ROUTE_PARK, "gone", "/x?y", 0);

            /* registered elsewhere: follow it, even from a relayed request */
            env = env_of(NULL, 1, relayed, cluster);
            x = decide_get(&env, "/moved", "node.test", NULL);
            assert_worker(&x, ROUTE_RELAY, "moved", "/", 1);

            /* never here: the usual rules */
            x = decide_get(&env, "/never?x", "node.test", NULL);
            if (relayed)
                assert_worker(&x, ROUTE_MISS, "never", "/?x", 1);
            else if (cluster)
                assert_worker(&x, ROUTE_RELAY, "never", "/?x", 1);
            else
                assert_fail(&x, 404, NO_CLIENT);

            /* not draining: moving() is not asked, the usual rules */
            env = env_of(NULL, 0, relayed, cluster);
            x = decide_get(&env, "/gone/x", "node.test", NULL);
            if (relayed)
                assert_int_equal(x.rt.kind, ROUTE_MISS);
            else if (cluster)
                assert_int_equal(x.rt.kind, ROUTE_RELAY);
            else
                assert_fail(&x, 404, NO_CLIENT);
            assert_int_equal(g_fake.moving_calls, 0);
        }
    }
}

/* ---- every request of a table with every env ---- */

static void test_invariants(void **state)
{
    static const char *heads[] = {
        "GET / HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: w1.example.com\r\nX-Websocktunnel-Id: w1\r\n\r\n",
        "GET /?a HTTP/1.1\r\nHost: node.test\r\nX-Webhooktunnel-Id: w1\r\n\r\n",
        "GET /__lbheartbeat__ HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /__heartbeat__?x HTTP/1.1\r\nHost: w1.example.com\r\n\r\n",
        "GET /__version__ HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /__cluster__ HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /w1/a?b HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /w1 HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /w1?b HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /w2/a HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /gone/a HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /moved/a HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: w1.example.com\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: gone.example.com:8443\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: moved.EXAMPLE.com\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: nobody.example.com\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: w!.example.com\r\n\r\n",
        "GET http://w1.example.com?x=1 HTTP/1.1\r\nHost: w1.example.com\r\n\r\n",
        "GET http://w1.example.com HTTP/1.1\r\nHost: w1.example.com\r\n\r\n",
        "GET http://node.test?x=1 HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET http://node.test HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET //x HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /w!1 HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "GET /w1/x HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: node.test\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: w1.example.com\r\n\r\n",
        "CONNECT node.test:443 HTTP/1.1\r\nHost: node.test:443\r\n\r\n",
        "CONNECT w1.example.com:443 HTTP/1.1\r\nHost: w1.example.com:443\r\n\r\n",
        "POST /w1/hook HTTP/1.1\r\nHost: node.test\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    static const char *domains[] = {NULL, "", "example.com"};
    char longid[UTIL_MAX_ID_LEN + 40];
    for (size_t i = 0; i < sizeof heads / sizeof heads[0] + 2; i++) {
        const char *head = i < sizeof heads / sizeof heads[0] ? heads[i] : longid;
        if (!(i < sizeof heads / sizeof heads[0])) { /* a 255- and a 256-byte id */
            size_t n = UTIL_MAX_ID_LEN + (i - sizeof heads / sizeof heads[0]);
            memcpy(longid, "GET /", 5);
            memset(longid + 5, 'z', n);
            strcpy(longid + 5 + n, " HTTP/1.0\r\n\r\n");
        }
        for (unsigned bits = 0; bits < 3 * 8 * 4; bits++) {
            const char *domain = domains[bits % 3];
            int draining = (bits / 3) & 1, relayed = (bits / 6) & 1, cluster = (bits / 12) & 1;
            unsigned table = bits / 24; /* which fake tables are empty */
            struct route_env env = env_of(domain, draining, relayed, cluster);
            if (table & 1)
                memset(g_fake.local, 0, sizeof g_fake.local);
            if (table & 2)
                memset(g_fake.gone, 0, sizeof g_fake.gone), memset(g_fake.moved, 0, sizeof g_fake.moved);
            struct res a = decide(&env, head); /* decide() checks the invariants */
            struct res b = decide(&env, head);
            assert_int_equal(a.rt.kind, b.rt.kind); /* a pure function */
            assert_string_equal(a.id, b.id);
            assert_string_equal(a.fwd, b.fwd);
            if (!relayed && !cluster && !draining)
                assert_int_not_equal(a.rt.kind, ROUTE_RELAY);
            if (a.rt.kind == ROUTE_LOCAL && !(table & 1))
                assert_true(strcmp(a.id, "w1") == 0 || strcmp(a.id, "local") == 0);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),      cmocka_unit_test(test_register),
        cmocka_unit_test(test_path_mode),      cmocka_unit_test(test_path_mode_not_found),
        cmocka_unit_test(test_domain_mode),    cmocka_unit_test(test_local_and_not),
        cmocka_unit_test(test_draining_moves), cmocka_unit_test(test_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
