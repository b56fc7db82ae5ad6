/* cluster/records.c: route and member values, pub/sub messages, the
 * interpretation of Redis replies (built from RESP bytes by hiredis's own
 * sans-I/O reader, fed whole, one byte at a time and split at every offset),
 * and the Lua scripts' text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster/cluster.h"

/* ---- values ----------------------------------------------------------------------------- */

static void test_route_value(void **state)
{
    struct cluster_route_value v;
    char out[CLUSTER_MAX_ROUTE_VALUE + 1];
    (void)state;

    assert_int_equal(cluster_route_value_format(out, sizeof(out), 1838000000001234, "node-7", 6), 23);
    assert_string_equal(out, "1838000000001234 node-7");
    assert_int_equal(cluster_route_value_parse(out, strlen(out), &v), 0);
    assert_true(v.gen == 1838000000001234);
    assert_int_equal(v.node_len, 6);
    assert_memory_equal(v.node, "node-7", 6);
    assert_ptr_equal(v.node, out + 17); /* points into the input */

    assert_int_equal(cluster_route_value_parse("9007199254740991 n", 18, &v), 0);
    assert_true(v.gen == CLUSTER_GEN_MAX);

    static const char *const bad[] = {
        "",
        " ",
        "1",
        "1 ",
        " 1 n",
        "01 n",
        "0 n",
        "1  n",
        "1 n ",
        "1 n x",
        "9007199254740992 n",
        "-1 n",
        "+1 n",
        "1\tn",
        "1 a/b",
        "1 a~b",
        "1 n\n",
        "x n",
        "1 \xff",
        "1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* node of 65 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cluster_route_value_parse(bad[i], strlen(bad[i]), &v) != CLUSTER_E_SYNTAX)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(cluster_route_value_parse("1 n\0", 4, &v), CLUSTER_E_SYNTAX);

    assert_int_equal(cluster_route_value_format(out, sizeof(out), 0, "n", 1), CLUSTER_E_INVAL);
    assert_int_equal(cluster_route_value_format(out, sizeof(out), CLUSTER_GEN_MAX + 1, "n", 1),
                     CLUSTER_E_INVAL);
    assert_int_equal(cluster_route_value_format(out, sizeof(out), 1, "a b", 3), CLUSTER_E_INVAL);
    assert_int_equal(cluster_route_value_format(out, 5, 1, "nn", 2), 4); /* "1 nn" and its NUL */
    assert_int_equal(cluster_route_value_format(out, 4, 1, "nn", 2), CLUSTER_E_TOO_LONG);
}

static void test_member_value(void **state)
{
    struct cluster_member_value m;
    char out[CLUSTER_MAX_MEMBER_VALUE + 1];
    (void)state;

    assert_int_equal(cluster_member_value_format(out, sizeof(out), "n1", 2, "10.0.0.1:7000", 13,
                                                 UINT64_C(0x0123456789abcdef)),
                     33);
    assert_string_equal(out, "n1 10.0.0.1:7000 0123456789abcdef");
    assert_int_equal(cluster_member_value_parse(out, strlen(out), &m), 0);
    assert_memory_equal(m.node, "n1", 2);
    assert_int_equal(m.node_len, 2);
    assert_memory_equal(m.addr, "10.0.0.1:7000", 13);
    assert_int_equal(m.addr_len, 13);
    assert_true(m.boot == UINT64_C(0x0123456789abcdef));

    assert_int_equal(cluster_member_value_parse("n [::1]:1 ffffffffffffffff", 26, &m), 0);
    assert_true(m.boot == UINT64_MAX);

    static const char *const bad[] = {
        "n 10.0.0.1:7000 0123456789ABCDEF",
        "n 10.0.0.1:7000 0123456789abcde",
        "n 10.0.0.1:7000 0123456789abcdef0",
        "n 10.0.0.1 0123456789abcdef",
        "n 10.0.0.1:0 0123456789abcdef",
        "n  10.0.0.1:1 0123456789abcdef",
        "n~ h:1 0123456789abcdef",
        "n h:1",
        "n h:1 0123456789abcdef x",
        "",
        "n h:1 0123456789abcdeg",
        " n h:1 0123456789abcdef",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cluster_member_value_parse(bad[i], strlen(bad[i]), &m) != CLUSTER_E_SYNTAX)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(cluster_member_value_format(out, sizeof(out), "n", 1, "nope", 4, 0), CLUSTER_E_INVAL);
    assert_int_equal(cluster_member_value_format(out, 10, "n", 1, "h:1", 3, 0), CLUSTER_E_TOO_LONG);
}

/* "1 <workers> <draining> <boot>", at <prefix>info:<node> */
static void test_info_value(void **state)
{
    struct cluster_info_value v;
    char out[CLUSTER_MAX_INFO_VALUE + 1];
    (void)state;

    assert_int_equal(cluster_info_value_format(out, sizeof(out), 0, 0, 0), 22);
    assert_string_equal(out, "1 0 0 0000000000000000");
    assert_int_equal(cluster_info_value_format(out, sizeof(out), 12, 1, UINT64_C(0x0123456789abcdef)), 23);
    assert_string_equal(out, "1 12 1 0123456789abcdef");
    assert_int_equal(cluster_info_value_parse(out, strlen(out), &v), 0);
    assert_int_equal(v.workers, 12);
    assert_int_equal(v.draining, 1);
    assert_true(v.boot == UINT64_C(0x0123456789abcdef));
    /* the longest value */
    assert_int_equal(cluster_info_value_format(out, sizeof(out), UINT32_MAX, 1, UINT64_MAX),
                     CLUSTER_MAX_INFO_VALUE);
    assert_string_equal(out, "1 4294967295 1 ffffffffffffffff");
    assert_int_equal(cluster_info_value_parse(out, strlen(out), &v), 0);
    assert_true(v.workers == UINT32_MAX && v.draining == 1 && v.boot == UINT64_MAX);
    assert_int_equal(cluster_info_value_parse("1 0 0 0000000000000000", 22, &v), 0);
    assert_true(v.workers == 0 && v.draining == 0 && v.boot == 0);

    static const char *const bad[] = {
        "",
        " ",
        "1",
        "1 ",
        "1 0",
        "1 0 0",                    /* missing boot */
        "1 0 0 ",                   /* empty boot */
        "1 0 0123456789abcdef",     /* missing a field */
        "1 0 0 0123456789abcdef 5", /* a field too many */
        "1 0 0 0123456789abcdef ",  /* trailing space */
        " 1 0 0 0123456789abcdef",  /* leading space */
        "1  0 0 0123456789abcdef",  /* double spaces */
        "1 0  0 0123456789abcdef",
        "1 0 0  0123456789abcdef",
        "1\t0 0 0123456789abcdef", /* other blanks */
        "1 0 0 0123456789abcdef\n",
        "1 0 0 0123456789abcdef\r\n",
        "1 +5 0 0123456789abcdef", /* signs */
        "1 -5 0 0123456789abcdef",
        "1 -0 0 0123456789abcdef",
        "1 0 +1 0123456789abcdef",
        "1 0 -1 0123456789abcdef",
        "+1 0 0 0123456789abcdef",
        "1 05 0 0123456789abcdef", /* leading zeros */
        "1 00 0 0123456789abcdef",
        "1 0 00 0123456789abcdef",
        "1 0 01 0123456789abcdef",
        "01 0 0 0123456789abcdef",
        "1 4294967296 0 0123456789abcdef", /* overflow: UINT32_MAX + 1 */
        "1 9999999999 0 0123456789abcdef",
        "1 18446744073709551616 0 0123456789abcdef",
        "1 99999999999999999999999 0 0123456789abcdef",
        "1 0x10 0 0123456789abcdef", /* not decimal */
        "1 1e3 0 0123456789abcdef",
        "1 5.0 0 0123456789abcdef",
        "1 0 2 0123456789abcdef", /* draining is 0 or 1 */
        "1 0 true 0123456789abcdef",
        "1 0 0 0123456789ABCDEF", /* boot: 16 lowercase hex digits */
        "1 0 0 0123456789abcde",
        "1 0 0 0123456789abcdef0",
        "1 0 0 0123456789abcdeg",
        "1 0 0 -123456789abcdef",
        "0 0 0 0123456789abcdef", /* unknown versions */
        "2 0 0 0123456789abcdef",
        "2 0 0 0123456789abcdef extra",
        "10 0 0 0123456789abcdef",
        "v1 0 0 0123456789abcdef",
        "n1 10.0.0.1:7000 0123456789abcdef", /* a member value is not an info value */
        "1838000000001234 node-7",           /* nor a route value */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cluster_info_value_parse(bad[i], strlen(bad[i]), &v) != CLUSTER_E_SYNTAX)
            fail_msg("accepted \"%s\"", bad[i]);
    /* NUL bytes, and a length that cuts the value short */
    assert_int_equal(cluster_info_value_parse("1 0 0 0123456789abcdef\0", 23, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_info_value_parse("1 0\0 0 0123456789abcdef", 23, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_info_value_parse("1 0 0 0123456789abcdef", 21, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_info_value_parse(NULL, 0, &v), CLUSTER_E_SYNTAX);
    /* every proper prefix of a good value is refused */
    const char *good = "1 4294967295 1 ffffffffffffffff";
    for (size_t len = 0; len < strlen(good); len++)
        assert_int_equal(cluster_info_value_parse(good, len, &v), CLUSTER_E_SYNTAX);

    assert_int_equal(cluster_info_value_format(out, sizeof(out), 1, 2, 0), CLUSTER_E_INVAL);
    assert_int_equal(cluster_info_value_format(out, sizeof(out), 1, -1, 0), CLUSTER_E_INVAL);
    assert_int_equal(cluster_info_value_format(NULL, 10, 1, 0, 0), CLUSTER_E_INVAL);
    assert_int_equal(cluster_info_value_format(out, 23, 0, 0, 0), 22); /* the value and its NUL */
    assert_int_equal(cluster_info_value_format(out, 22, 0, 0, 0), CLUSTER_E_TOO_LONG);
    assert_int_equal(cluster_info_value_format(out, 0, 0, 0, 0), CLUSTER_E_TOO_LONG);
}

/* ---- messages --------------------------------------------------------------------------- */

static const char *const good_msgs[] = {
    "set worker-1 1838000000001234 node-a", "del w 1 n",
    "set %7E_.-x 9007199254740991 n.1_-",   "join node-b 10.1.2.3:9000 00000000000000ff 1795553989511",
    "join n [::1]:1 ffffffffffffffff 0",    "leave node-b 00000000000000ff 1795553989999",
};

/* Any accepted text formats back to exactly itself. */
static void check_canonical(const char *buf, size_t len)
{
    struct cluster_msg m;
    char out[CLUSTER_MAX_MSG_LEN + 1];
    if (cluster_msg_parse(buf, len, &m) != 0)
        return;
    int n = cluster_msg_format(out, sizeof(out), &m);
    if (n < 0 || (size_t)n != len || memcmp(out, buf, len) != 0)
        fail_msg("\"%.*s\" parsed but formats to \"%s\"", (int)len, buf, n < 0 ? "(error)" : out);
}

static void test_messages(void **state)
{
    struct cluster_msg m;
    (void)state;

    assert_int_equal(cluster_msg_parse(good_msgs[0], strlen(good_msgs[0]), &m), 0);
    assert_int_equal(m.type, CLUSTER_MSG_SET);
    assert_int_equal(m.id_len, 8);
    assert_memory_equal(m.id, "worker-1", 8);
    assert_true(m.gen == 1838000000001234);
    assert_int_equal(m.node_len, 6);
    assert_memory_equal(m.node, "node-a", 6);

    assert_int_equal(cluster_msg_parse(good_msgs[1], strlen(good_msgs[1]), &m), 0);
    assert_int_equal(m.type, CLUSTER_MSG_DEL);
    assert_true(m.gen == 1);

    assert_int_equal(cluster_msg_parse(good_msgs[3], strlen(good_msgs[3]), &m), 0);
    assert_int_equal(m.type, CLUSTER_MSG_JOIN);
    assert_memory_equal(m.node, "node-b", 6);
    assert_memory_equal(m.addr, "10.1.2.3:9000", 13);
    assert_int_equal(m.addr_len, 13);
    assert_true(m.boot == 255);
    assert_true(m.ms == 1795553989511);

    assert_int_equal(cluster_msg_parse(good_msgs[5], strlen(good_msgs[5]), &m), 0);
    assert_int_equal(m.type, CLUSTER_MSG_LEAVE);
    assert_true(m.boot == 255);
    assert_true(m.ms == 1795553989999);

    for (size_t i = 0; i < sizeof(good_msgs) / sizeof(good_msgs[0]); i++) {
        const char *g = good_msgs[i];
        size_t len = strlen(g);
        assert_int_equal(cluster_msg_parse(g, len, &m), 0);
        check_canonical(g, len);
        /* every prefix is rejected or canonical (a shorter node id or number can be valid) */
        for (size_t n = 0; n < len; n++)
            check_canonical(g, n);
        /* every one-byte change too */
        char *buf = malloc(len);
        for (size_t k = 0; k < len; k++) {
            static const char subst[] = {' ', '\0', 'x', '0', '9', ':', '-', '\n', '\xff', 'A'};
            for (size_t s = 0; s < sizeof(subst); s++) {
                memcpy(buf, g, len);
                buf[k] = subst[s];
                check_canonical(buf, len);
            }
        }
        free(buf);
    }

    static const char *const bad[] = {
        "",
        "set",
        "set ",
        "set w 1",
        "set w 1 n x",
        "SET w 1 n",
        "sets w 1 n",
        "set w 0 n",
        "set w 01 n",
        "set w 9007199254740992 n",
        "set w/x 1 n",
        "set w 1 n~",
        "del  w 1 n",
        "join n h:1 00000000000000ff",
        "join n h 00000000000000ff 1",
        "join n h:1 00000000000000FF 1",
        "join n h:1 00000000000000ff -1",
        "join n h:1 00000000000000ff 9007199254740992",
        "leave n 00000000000000ff",
        "leave n h:1 00000000000000ff 1",
        "ping",
        "set w 1 n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cluster_msg_parse(bad[i], strlen(bad[i]), &m) != CLUSTER_E_SYNTAX)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(cluster_msg_parse(NULL, 0, &m), CLUSTER_E_SYNTAX);

    /* longest possible message fits CLUSTER_MAX_MSG_LEN */
    char id[CLUSTER_MAX_ID_LEN], node[CLUSTER_MAX_NODE_LEN], out[CLUSTER_MAX_MSG_LEN + 1];
    memset(id, 'i', sizeof(id));
    memset(node, 'n', sizeof(node));
    struct cluster_msg big = {.type = CLUSTER_MSG_SET,
                              .id = id,
                              .id_len = sizeof(id),
                              .gen = CLUSTER_GEN_MAX,
                              .node = node,
                              .node_len = sizeof(node)};
    int n = cluster_msg_format(out, sizeof(out), &big);
    assert_true(n > 0 && (size_t)n <= CLUSTER_MAX_MSG_LEN);
    assert_int_equal(cluster_msg_parse(out, (size_t)n, &m), 0);
    assert_int_equal(cluster_msg_format(out, 10, &big), CLUSTER_E_TOO_LONG);
    big.gen = 0;
    assert_int_equal(cluster_msg_format(out, sizeof(out), &big), CLUSTER_E_INVAL);
    big.type = 99;
    assert_int_equal(cluster_msg_format(out, sizeof(out), &big), CLUSTER_E_INVAL);
}

/* ---- replies ---------------------------------------------------------------------------- */

typedef void interpret_fn(const redisReply *r, char *out, size_t cap);

static redisReply *resp_whole(const char *bytes, size_t len)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, bytes, len), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

/* Interprets bytes fed whole, one byte at a time and split at every offset:
 * the results must agree, and no reply may come out before the last byte. */
static void interpret(const char *bytes, interpret_fn *fn, char *out, size_t cap)
{
    size_t len = strlen(bytes);
    char other[512];
    redisReply *r = resp_whole(bytes, len);
    fn(r, out, cap);
    freeReplyObject(r);

    for (size_t split = 0; split <= len; split++) {
        redisReader *rd = redisReaderCreate();
        void *reply = NULL;
        if (split == 0) { /* one byte at a time */
            for (size_t i = 0; i < len; i++) {
                assert_int_equal(redisReaderFeed(rd, bytes + i, 1), REDIS_OK);
                assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
                if (i + 1 < len)
                    assert_null(reply);
            }
        } else {
            assert_int_equal(redisReaderFeed(rd, bytes, split), REDIS_OK);
            assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
            if (split < len) {
                assert_null(reply);
                assert_int_equal(redisReaderFeed(rd, bytes + split, len - split), REDIS_OK);
                assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
            }
        }
        assert_non_null(reply);
        fn(reply, other, sizeof(other));
        assert_string_equal(other, out);
        freeReplyObject(reply);
        redisReaderFree(rd);
    }
}

static void fn_assert(const redisReply *r, char *out, size_t cap)
{
    int st = -1;
    struct cluster_route_value v = {0, "", 0};
    int rc = cluster_reply_assert(r, "self", 4, &st, &v);
    snprintf(out, cap, "%d %d %llu %.*s", rc, rc == 0 ? st : -1, rc == 0 ? (unsigned long long)v.gen : 0ULL,
             rc == 0 ? (int)v.node_len : 0, v.node);
}

static void fn_release(const redisReply *r, char *out, size_t cap)
{
    int d = -1;
    int rc = cluster_reply_release(r, &d);
    snprintf(out, cap, "%d %d", rc, rc == 0 ? d : -1);
}

static void fn_get(const redisReply *r, char *out, size_t cap)
{
    int found = -1;
    struct cluster_route_value v = {0, "", 0};
    int rc = cluster_reply_get(r, &found, &v);
    snprintf(out, cap, "%d %d %llu %.*s", rc, rc == 0 ? found : -1,
             rc == 0 && found ? (unsigned long long)v.gen : 0ULL, rc == 0 && found ? (int)v.node_len : 0,
             v.node);
}

static void fn_beat(const redisReply *r, char *out, size_t cap)
{
    int64_t now = -1;
    const redisReply *m = NULL;
    const char *prev = NULL;
    size_t prev_len = 0;
    int rc = cluster_reply_heartbeat(r, &now, &m, &prev, &prev_len);
    int n = snprintf(out, cap, "%d", rc);
    if (rc != 0)
        return;
    n += snprintf(out + n, cap - (size_t)n, " %lld prev=%.*s", (long long)now, (int)prev_len,
                  prev ? prev : "");
    for (size_t i = 0; i < m->elements && (size_t)n < cap; i++) {
        struct cluster_member_value mv;
        int mrc = cluster_reply_member(m, i, &mv);
        if (mrc == 0)
            n += snprintf(out + n, cap - (size_t)n, " [%.*s@%.*s#%llx]", (int)mv.node_len, mv.node,
                          (int)mv.addr_len, mv.addr, (unsigned long long)mv.boot);
        else
            n += snprintf(out + n, cap - (size_t)n, " [bad %d]", mrc);
    }
}

/* An MGET of three info keys. */
static void fn_mget3(const redisReply *r, char *out, size_t cap)
{
    int rc = cluster_reply_mget(r, 3);
    int n = snprintf(out, cap, "%d", rc);
    if (rc != 0)
        return;
    for (size_t i = 0; i < 3; i++) {
        struct cluster_info_value v;
        int found = -1;
        int irc = cluster_reply_info(r, i, &found, &v);
        if (irc != 0)
            n += snprintf(out + n, cap - (size_t)n, " [bad %d %d]", irc, found);
        else if (!found)
            n += snprintf(out + n, cap - (size_t)n, " [nil]");
        else
            n += snprintf(out + n, cap - (size_t)n, " [%u %d %llx]", (unsigned)v.workers, v.draining,
                          (unsigned long long)v.boot);
    }
}

static void fn_sha(const redisReply *r, char *out, size_t cap)
{
    char sha[41] = "";
    int rc = cluster_reply_sha(r, sha);
    snprintf(out, cap, "%d %s", rc, sha);
}

static void fn_ok(const redisReply *r, char *out, size_t cap)
{
    snprintf(out, cap, "%d", cluster_reply_ok(r));
}

static void fn_push(const redisReply *r, char *out, size_t cap)
{
    int kind = -1;
    const char *ch = "", *p = "";
    size_t chl = 0, pl = 0;
    int rc = cluster_reply_push(r, &kind, &ch, &chl, &p, &pl);
    snprintf(out, cap, "%d %d %.*s %.*s", rc, rc == 0 ? kind : -1, rc == 0 ? (int)chl : 0, ch,
             rc == 0 && p ? (int)pl : 0, p ? p : "");
}

#define CHECK(bytes, fn, want)                                                                               \
    do {                                                                                                     \
        char got_[512];                                                                                      \
        interpret(bytes, fn, got_, sizeof(got_));                                                            \
        if (strcmp(got_, want) != 0)                                                                         \
            fail_msg("%s: got \"%s\", want \"%s\"", #bytes, got_, want);                                     \
    } while (0)

static void test_reply_assert(void **state)
{
    (void)state;
    CHECK("*2\r\n:2\r\n$6\r\n5 self\r\n", fn_assert, "0 2 5 self");
    CHECK("*2\r\n:1\r\n$21\r\n1838000000001234 self\r\n", fn_assert, "0 1 1838000000001234 self");
    CHECK("*2\r\n:0\r\n$7\r\n9 other\r\n", fn_assert, "0 0 9 other");
    /* a LOST naming us, or OURS/WRITTEN naming another: the script never says that */
    CHECK("*2\r\n:0\r\n$6\r\n9 self\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*2\r\n:2\r\n$7\r\n9 other\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*2\r\n:3\r\n$6\r\n5 self\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*2\r\n:-1\r\n$6\r\n5 self\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*3\r\n:2\r\n$6\r\n5 self\r\n:1\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*1\r\n:2\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*2\r\n$1\r\n2\r\n$6\r\n5 self\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*2\r\n:2\r\n$-1\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*2\r\n:2\r\n$7\r\n05 self\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*2\r\n:2\r\n*0\r\n", fn_assert, "-6 -1 0 ");
    CHECK("-NOSCRIPT No matching script.\r\n", fn_assert, "-11 -1 0 ");
    CHECK("$-1\r\n", fn_assert, "-6 -1 0 ");
    CHECK("*-1\r\n", fn_assert, "-6 -1 0 ");
    CHECK("+OK\r\n", fn_assert, "-6 -1 0 ");
}

static void test_reply_release_get(void **state)
{
    (void)state;
    CHECK(":1\r\n", fn_release, "0 1");
    CHECK(":0\r\n", fn_release, "0 0");
    CHECK(":2\r\n", fn_release, "-6 -1");
    CHECK("+OK\r\n", fn_release, "-6 -1");
    CHECK("-ERR x\r\n", fn_release, "-11 -1");
    CHECK("$1\r\n1\r\n", fn_release, "-6 -1");

    CHECK("$-1\r\n", fn_get, "0 0 0 ");
    CHECK("$6\r\n5 node\r\n", fn_get, "0 1 5 node");
    CHECK("$3\r\nabc\r\n", fn_get, "-6 -1 0 ");
    CHECK("$0\r\n\r\n", fn_get, "-6 -1 0 ");
    CHECK("*0\r\n", fn_get, "-6 -1 0 ");
    CHECK(":5\r\n", fn_get, "-6 -1 0 ");
    CHECK("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", fn_get, "-11 -1 0 ");
}

static void test_reply_heartbeat(void **state)
{
    (void)state;
    CHECK("*3\r\n:1795553989511\r\n*2\r\n$33\r\nn1 10.0.0.1:7000 0123456789abcdef\r\n"
          "$27\r\nn2 [::1]:7 ffffffffffffffff\r\n$0\r\n\r\n",
          fn_beat, "0 1795553989511 prev= [n1@10.0.0.1:7000#123456789abcdef] [n2@[::1]:7#ffffffffffffffff]");
    /* a bad member is reported as such, the others still parse */
    CHECK("*3\r\n:1\r\n*3\r\n$3\r\nbad\r\n:5\r\n$22\r\nn h:1 0000000000000001\r\n$3\r\nold\r\n", fn_beat,
          "0 1 prev=old [bad -6] [bad -6] [n@h:1#1]");
    CHECK("*3\r\n:1\r\n*0\r\n$0\r\n\r\n", fn_beat, "0 1 prev=");
    CHECK("*3\r\n:-1\r\n*0\r\n$0\r\n\r\n", fn_beat, "-6");
    CHECK("*3\r\n:9007199254740992\r\n*0\r\n$0\r\n\r\n", fn_beat, "-6");
    CHECK("*3\r\n:1\r\n$0\r\n\r\n$0\r\n\r\n", fn_beat, "-6");
    CHECK("*3\r\n:1\r\n*0\r\n$-1\r\n", fn_beat, "-6");
    CHECK("*2\r\n:1\r\n*0\r\n", fn_beat, "-6");
    CHECK("-BUSY Redis is busy running a script\r\n", fn_beat, "-11");

    /* more members than CLUSTER_MAX_NODES */
    size_t cap = 64 + (CLUSTER_MAX_NODES + 1) * 8;
    char *big = malloc(cap);
    int n = snprintf(big, cap, "*3\r\n:1\r\n*%d\r\n", CLUSTER_MAX_NODES + 1);
    for (int i = 0; i <= CLUSTER_MAX_NODES; i++)
        n += snprintf(big + n, cap - (size_t)n, "$1\r\nx\r\n");
    snprintf(big + n, cap - (size_t)n, "$0\r\n\r\n");
    redisReply *r = resp_whole(big, strlen(big));
    int64_t now;
    const redisReply *m;
    const char *prev;
    size_t pl;
    assert_int_equal(cluster_reply_heartbeat(r, &now, &m, &prev, &pl), CLUSTER_E_SYNTAX);
    freeReplyObject(r);
    free(big);
    assert_int_equal(cluster_reply_member(NULL, 0, NULL), CLUSTER_E_SYNTAX);
}

static void test_reply_info(void **state)
{
    (void)state;
    CHECK("*3\r\n$-1\r\n$22\r\n1 5 1 0123456789abcdef\r\n$3\r\nbad\r\n", fn_mget3,
          "0 [nil] [5 1 123456789abcdef] [bad -6 0]");
    CHECK("*3\r\n$22\r\n1 0 0 0000000000000000\r\n$-1\r\n$-1\r\n", fn_mget3, "0 [0 0 0] [nil] [nil]");
    /* another version, an empty string, an overflow: unknown, the others still read */
    CHECK("*3\r\n$22\r\n2 5 1 0123456789abcdef\r\n$0\r\n\r\n$31\r\n1 4294967296 0 0123456789abcdef\r\n",
          fn_mget3, "0 [bad -6 0] [bad -6 0] [bad -6 0]");
    /* the wrong number of elements, or elements that are neither nil nor strings */
    CHECK("*2\r\n$-1\r\n$-1\r\n", fn_mget3, "-6");
    CHECK("*4\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n", fn_mget3, "-6");
    CHECK("*3\r\n$-1\r\n:1\r\n$-1\r\n", fn_mget3, "-6");
    CHECK("*3\r\n$-1\r\n*1\r\n$-1\r\n$-1\r\n", fn_mget3, "-6");
    CHECK("*3\r\n$-1\r\n+1 5 1 0123456789abcdef\r\n$-1\r\n", fn_mget3, "-6");
    CHECK("*3\r\n$-1\r\n-ERR x\r\n$-1\r\n", fn_mget3, "-6");
    CHECK("*-1\r\n", fn_mget3, "-6");
    CHECK("$-1\r\n", fn_mget3, "-6");
    CHECK("$22\r\n1 5 1 0123456789abcdef\r\n", fn_mget3, "-6");
    CHECK("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", fn_mget3, "-11");
    CHECK("-NOAUTH Authentication required.\r\n", fn_mget3, "-11");

    redisReply *r = resp_whole("*0\r\n", 4);
    int found = -1;
    struct cluster_info_value v;
    assert_int_equal(cluster_reply_mget(r, 0), 0);
    assert_int_equal(cluster_reply_mget(r, 1), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_reply_info(r, 0, &found, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(found, 0);
    freeReplyObject(r);
    r = resp_whole("*1\r\n$-1\r\n", 9);
    assert_int_equal(cluster_reply_info(r, 1, &found, &v), CLUSTER_E_SYNTAX); /* past the end */
    freeReplyObject(r);
    assert_int_equal(cluster_reply_mget(NULL, 0), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_reply_info(NULL, 0, &found, &v), CLUSTER_E_SYNTAX);
}

static void test_reply_misc(void **state)
{
    (void)state;
    CHECK("$40\r\n0123456789abcdef0123456789abcdef01234567\r\n", fn_sha,
          "0 0123456789abcdef0123456789abcdef01234567");
    CHECK("$40\r\n0123456789ABCDEF0123456789abcdef01234567\r\n", fn_sha, "-6 ");
    CHECK("$39\r\n0123456789abcdef0123456789abcdef0123456\r\n", fn_sha, "-6 ");
    CHECK("+0123456789abcdef0123456789abcdef01234567\r\n", fn_sha, "-6 ");
    CHECK("-NOAUTH Authentication required.\r\n", fn_sha, "-10 ");
    CHECK("-ERR Error compiling script\r\n", fn_sha, "-11 ");

    CHECK("+OK\r\n", fn_ok, "0");
    CHECK("+QUEUED\r\n", fn_ok, "-6");
    CHECK("$2\r\nOK\r\n", fn_ok, "-6");
    CHECK("-WRONGPASS invalid username-password pair or user is disabled.\r\n", fn_ok, "-10");
    CHECK("-ERR invalid password\r\n", fn_ok, "-10");
    CHECK(
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your "
        "configuration is correct?\r\n",
        fn_ok, "-10");
    CHECK("-ERR DB index is out of range\r\n", fn_ok, "-11");
    CHECK("-\r\n", fn_ok, "-11");

    CHECK("*3\r\n$7\r\nmessage\r\n$10\r\nwht:events\r\n$9\r\nset a 1 n\r\n", fn_push,
          "0 1 wht:events set a 1 n");
    CHECK("*3\r\n$9\r\nsubscribe\r\n$10\r\nwht:events\r\n:1\r\n", fn_push, "0 2 wht:events ");
    CHECK("*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n:1\r\n", fn_push, "-6 -1  ");
    CHECK("*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n$1\r\n1\r\n", fn_push, "-6 -1  ");
    CHECK("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nm\r\n", fn_push, "-6 -1  ");
    CHECK("*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n", fn_push, "-6 -1  ");
    CHECK("*2\r\n$4\r\npong\r\n$0\r\n\r\n", fn_push, "-6 -1  ");
    CHECK("*3\r\n:1\r\n$1\r\nc\r\n$1\r\nm\r\n", fn_push, "-6 -1  ");
    CHECK("-NOAUTH Authentication required.\r\n", fn_push, "-10 -1  ");

    /* NULL replies are never interpreted as anything */
    int st, d, found, kind;
    struct cluster_route_value v;
    char sha[41];
    const char *c, *p;
    size_t cl, pl;
    assert_int_equal(cluster_reply_assert(NULL, "s", 1, &st, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_reply_release(NULL, &d), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_reply_get(NULL, &found, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_reply_sha(NULL, sha), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_reply_ok(NULL), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_reply_push(NULL, &kind, &c, &cl, &p, &pl), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_reply_error(NULL), 0);
}

static void test_scripts(void **state)
{
    (void)state;
    for (int i = 0; i < CLUSTER_SCRIPT_COUNT; i++) {
        const char *t = cluster_script_text((enum cluster_script)i);
        assert_non_null(t);
        assert_true(strlen(t) > 50);
        /* numbers above 1e14 must never go through tostring() (it prints 1.8e+15) */
        assert_null(strstr(t, "tostring("));
    }
    assert_null(cluster_script_text(CLUSTER_SCRIPT_COUNT));
    assert_non_null(strstr(cluster_script_text(CLUSTER_SCRIPT_ASSERT), "'set ' .. ARGV[1]"));
    assert_non_null(strstr(cluster_script_text(CLUSTER_SCRIPT_RELEASE), "'del ' .. ARGV[1]"));
    assert_non_null(strstr(cluster_script_text(CLUSTER_SCRIPT_BEAT), "'join ' .. ARGV[1]"));
    assert_non_null(strstr(cluster_script_text(CLUSTER_SCRIPT_LEAVE), "'leave ' .. ARGV[2]"));
    /* the info key: written with the member key's TTL, deleted on leave only if this incarnation's */
    assert_non_null(
        strstr(cluster_script_text(CLUSTER_SCRIPT_BEAT), "'SET', KEYS[3], ARGV[6], 'PX', ARGV[2]"));
    assert_non_null(strstr(cluster_script_text(CLUSTER_SCRIPT_LEAVE), "redis.call('DEL', KEYS[3])"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_value),     cmocka_unit_test(test_member_value),
        cmocka_unit_test(test_info_value),      cmocka_unit_test(test_messages),
        cmocka_unit_test(test_reply_assert),    cmocka_unit_test(test_reply_release_get),
        cmocka_unit_test(test_reply_heartbeat), cmocka_unit_test(test_reply_info),
        cmocka_unit_test(test_reply_misc),      cmocka_unit_test(test_scripts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
