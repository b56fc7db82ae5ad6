/* cluster/sentinel.c (WHT_REDIS_SENTINELS, WHT_REDIS_MASTER, the sentinels'
 * and ROLE's replies, +switch-master messages) and url.c's host-less
 * REDIS_URL. Replies are built from RESP bytes by hiredis's own sans-I/O
 * reader, fed whole, a byte at a time and split at every offset. */
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

/* ---- WHT_REDIS_SENTINELS ---------------------------------------------------------------- */

static int sparse(const char *s, struct cluster_sentinels *out)
{
    return cluster_sentinels_parse(s, strlen(s), out);
}

static void test_sentinels_valid(void **state)
{
    struct cluster_sentinels sl;
    (void)state;
    assert_int_equal(sparse("127.0.0.1:26379", &sl), 0);
    assert_int_equal(sl.n, 1);
    assert_string_equal(sl.s[0].host, "127.0.0.1");
    assert_int_equal(sl.s[0].port, 26379);

    assert_int_equal(sparse("s1:1,s2.example.com:26380, [::1]:7 ,\ts4", &sl), 0);
    assert_int_equal(sl.n, 4);
    assert_string_equal(sl.s[0].host, "s1");
    assert_int_equal(sl.s[0].port, 1);
    assert_string_equal(sl.s[1].host, "s2.example.com");
    assert_int_equal(sl.s[1].port, 26380);
    assert_string_equal(sl.s[2].host, "::1");
    assert_int_equal(sl.s[2].port, 7);
    assert_string_equal(sl.s[3].host, "s4");
    assert_int_equal(sl.s[3].port, CLUSTER_SENTINEL_PORT); /* default port */

    /* the same host on other ports is fine */
    assert_int_equal(sparse("h:1,h:2,h", &sl), 0);
    assert_int_equal(sl.n, 3);

    /* 16 entries, not 17 */
    char buf[256] = "";
    for (int i = 0; i < CLUSTER_MAX_SENTINELS; i++)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%sh:%d", i ? "," : "", i + 1);
    assert_int_equal(sparse(buf, &sl), 0);
    assert_int_equal(sl.n, CLUSTER_MAX_SENTINELS);
    strcat(buf, ",h:99");
    assert_int_equal(sparse(buf, &sl), CLUSTER_E_SENTINELS);
    assert_int_equal(sl.n, 0);
}

static void test_sentinels_invalid(void **state)
{
    struct cluster_sentinels sl;
    (void)state;
    static const char *const bad[] = {
        "",        " ",       ",",     "h:1,",    ",h:1",        "h:1,,h:2",    "h:1, ,h:2",
        "h:0",     "h:65536", "h:01",  "h:-1",    "h:1:2",       "h 1",         "h;1",
        "h:1;h:2", "[::1",    "::1:5", "h:1,h:1", "h,h:26379",   "a..b:1",      "h:1/x",
        "h:1\n",   "\xff:1",  "h:",    "h:1 h:2", "redis://h:1", "h:1,h:2,h:1", "[fe80::1%eth0]:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sl.n = 99;
        int rc = sparse(bad[i], &sl);
        if (rc != CLUSTER_E_SENTINELS)
            fail_msg("\"%s\": %d", bad[i], rc);
        assert_int_equal(sl.n, 0);
    }
    char big[CLUSTER_MAX_SENTINELS_LEN + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(sparse(big, &sl), CLUSTER_E_TOO_LONG);
    memset(big, 'a', 300); /* one host name over 253 bytes */
    big[300] = '\0';
    assert_int_equal(sparse(big, &sl), CLUSTER_E_TOO_LONG);
    assert_int_equal(cluster_sentinels_parse(NULL, 0, &sl), CLUSTER_E_INVAL);
    assert_int_equal(cluster_sentinels_parse("h", 1, NULL), CLUSTER_E_INVAL);
    /* a NUL inside */
    assert_int_equal(cluster_sentinels_parse("h:1\0,h:2", 8, &sl), CLUSTER_E_SENTINELS);
}

/* Every prefix of a valid list either parses to a prefix of its entries or is refused. */
static void test_sentinels_every_prefix(void **state)
{
    static const char s[] = "s1:26379, s2:26380,[::1]:26381,host.example:1";
    struct cluster_sentinels sl;
    (void)state;
    for (size_t n = 0; n <= strlen(s); n++) {
        int rc = cluster_sentinels_parse(s, n, &sl);
        assert_true(rc == 0 || rc == CLUSTER_E_SENTINELS);
        if (rc == 0) {
            assert_true(sl.n >= 1 && sl.n <= 4);
            for (size_t i = 0; i < sl.n; i++)
                assert_true(sl.s[i].port >= 1 && strlen(sl.s[i].host) >= 1);
        }
    }
}

static void test_master_name_and_host(void **state)
{
    (void)state;
    assert_true(cluster_valid_master_name("mymaster", 8));
    assert_true(cluster_valid_master_name("a.b_c-d:e", 9));
    assert_false(cluster_valid_master_name("", 0));
    assert_false(cluster_valid_master_name(NULL, 0));
    assert_false(cluster_valid_master_name("my master", 9));
    assert_false(cluster_valid_master_name("m/x", 3));
    assert_false(cluster_valid_master_name("m\0", 2));
    char name[CLUSTER_MAX_MASTER_NAME_LEN + 1];
    memset(name, 'm', sizeof(name));
    assert_true(cluster_valid_master_name(name, CLUSTER_MAX_MASTER_NAME_LEN));
    assert_false(cluster_valid_master_name(name, CLUSTER_MAX_MASTER_NAME_LEN + 1));

    assert_true(cluster_valid_host("10.0.0.1", 8));
    assert_true(cluster_valid_host("redis-1.internal", 16));
    assert_true(cluster_valid_host("::1", 3));
    assert_true(cluster_valid_host("fe80::1:2", 9));
    assert_false(cluster_valid_host("", 0));
    assert_false(cluster_valid_host("[::1]", 5));
    assert_false(cluster_valid_host("a b", 3));
    assert_false(cluster_valid_host("a:", 2));
    assert_false(cluster_valid_host("1:2", 3)); /* one ':' is no IPv6 address */
    assert_false(cluster_valid_host("a]:[b", 5));
    assert_false(cluster_valid_host("h:1", 3));
}

/* ---- the host-less REDIS_URL ------------------------------------------------------------ */

static void test_url_auth(void **state)
{
    struct cluster_url u;
    (void)state;
#define P(s) cluster_url_parse_auth(s, strlen(s), &u)
    assert_int_equal(P("redis://"), 0);
    assert_string_equal(u.host, "");
    assert_int_equal(u.port, 0);
    assert_int_equal(u.db, 0);
    assert_int_equal(u.has_password, 0);

    assert_int_equal(P("redis://:s%40cret@/3"), 0);
    assert_int_equal(u.has_password, 1);
    assert_string_equal(u.password, "s@cret");
    assert_int_equal(u.db, 3);
    assert_string_equal(u.host, "");

    assert_int_equal(P("REDIS://alice:pw@"), 0);
    assert_int_equal(u.has_user, 1);
    assert_string_equal(u.user, "alice");
    assert_int_equal(P("redis:///"), 0);
    assert_int_equal(P("redis:///15"), 0);
    assert_int_equal(u.db, 15);

    assert_int_equal(P("redis://h"), CLUSTER_E_URL_HOST);
    assert_int_equal(P("redis://:pw@h:6379/1"), CLUSTER_E_URL_HOST);
    assert_int_equal(u.has_password, 0); /* zeroed on failure: nothing of the password stays */
    assert_int_equal(P("redis://:6379"), CLUSTER_E_URL_HOST);
    assert_int_equal(P("redis://:pw@[::1]"), CLUSTER_E_URL_HOST);
    assert_int_equal(P("rediss://:pw@/1"), CLUSTER_E_URL_SCHEME);
    assert_int_equal(P("http://x"), CLUSTER_E_URL_SCHEME);
    assert_int_equal(P("redis://:pw@/x"), CLUSTER_E_URL);
    assert_int_equal(P("redis://:pw@/1?x"), CLUSTER_E_URL);
    assert_int_equal(P("redis://:@/1"), CLUSTER_E_URL);
    assert_int_equal(P("redis://user@/1"), CLUSTER_E_URL);
    assert_int_equal(P(""), CLUSTER_E_URL);
#undef P
    /* the usual form still needs its host */
    assert_int_equal(cluster_url_parse("redis://:pw@/1", 14, &u), CLUSTER_E_URL);
    assert_string_equal(
        cluster_strerror(CLUSTER_E_URL_SCHEME),
        "REDIS_URL must start with redis:// (rediss:// is not supported: hiredis 0.14 has no TLS)");
    assert_non_null(strstr(cluster_strerror(CLUSTER_E_URL_HOST), "without a host"));
}

/* ---- replies ---------------------------------------------------------------------------- */

typedef void interpret_fn(const redisReply *r, char *out, size_t cap);

/* Interprets bytes fed whole, one byte at a time and split at every offset:
 * the results must agree, and no reply may come out before the last byte. */
static void interpret(const char *bytes, size_t len, interpret_fn *fn, char *out, size_t cap)
{
    char other[512];
    for (size_t split = 0; split <= len + 1; split++) {
        redisReader *rd = redisReaderCreate();
        void *reply = NULL;
        assert_non_null(rd);
        if (split == len + 1) { /* one byte at a time */
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
        fn(reply, split == 0 ? out : other, split == 0 ? cap : sizeof(other));
        if (split > 0)
            assert_string_equal(other, out);
        freeReplyObject(reply);
        redisReaderFree(rd);
    }
}

static void fn_addr(const redisReply *r, char *out, size_t cap)
{
    struct cluster_addr a = {"", 0};
    int found = -1;
    int rc = cluster_reply_master_addr(r, &found, &a);
    snprintf(out, cap, "%d %d %s %u", rc, rc == 0 ? found : -1, rc == 0 && found ? a.host : "-",
             rc == 0 && found ? (unsigned)a.port : 0);
}

static void fn_role(const redisReply *r, char *out, size_t cap)
{
    int role = -1;
    int rc = cluster_reply_role(r, &role);
    snprintf(out, cap, "%d %d", rc, rc == 0 ? role : -1);
}

static void check(const char *resp, interpret_fn *fn, const char *want)
{
    char out[512];
    interpret(resp, strlen(resp), fn, out, sizeof(out));
    if (strcmp(out, want) != 0)
        fail_msg("%s: got \"%s\", want \"%s\"", resp, out, want);
}

static void test_reply_master_addr(void **state)
{
    char want[64];
    (void)state;
    check("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n", fn_addr, "0 1 127.0.0.1 6379");
    check("*2\r\n$3\r\n::1\r\n$5\r\n65535\r\n", fn_addr, "0 1 ::1 65535");
    check("*2\r\n$14\r\nredis-0.redis.\r\n$1\r\n1\r\n", fn_addr, "0 1 redis-0.redis. 1");
    check("*-1\r\n", fn_addr, "0 0 - 0"); /* the sentinel does not monitor that name */
    check("$-1\r\n", fn_addr, "0 0 - 0");
    snprintf(want, sizeof(want), "%d -1 - 0", CLUSTER_E_REDIS);
    check("-IDONTKNOW No such master with that name\r\n", fn_addr, want);
    snprintf(want, sizeof(want), "%d -1 - 0", CLUSTER_E_AUTH);
    check("-NOAUTH Authentication required.\r\n", fn_addr, want);
    snprintf(want, sizeof(want), "%d -1 - 0", CLUSTER_E_SYNTAX);
    static const char *const bad[] = {
        "*0\r\n",
        "*1\r\n$9\r\n127.0.0.1\r\n",
        "*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n$1\r\nx\r\n",
        "*2\r\n$9\r\n127.0.0.1\r\n:6379\r\n", /* the port as an integer */
        "*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n",
        "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n",
        "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n06379\r\n",
        "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n 6379\r\n",
        "*2\r\n$0\r\n\r\n$4\r\n6379\r\n",
        "*2\r\n$5\r\n[::1]\r\n$4\r\n6379\r\n",
        "*2\r\n$3\r\na b\r\n$4\r\n6379\r\n",
        "*2\r\n$-1\r\n$4\r\n6379\r\n",
        "*2\r\n*0\r\n$4\r\n6379\r\n",
        ":1\r\n",
        "+OK\r\n",
        "$9\r\n127.0.0.1\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check(bad[i], fn_addr, want);
    assert_int_equal(cluster_reply_master_addr(NULL, NULL, NULL), CLUSTER_E_SYNTAX);
}

static void test_reply_role(void **state)
{
    char want[32];
    (void)state;
    check("*3\r\n$6\r\nmaster\r\n:3129659\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$7\r\n3129242\r\n",
          fn_role, "0 1");
    check("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n", fn_role, "0 1");
    check("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n$9\r\nconnected\r\n:3167038\r\n", fn_role, "0 2");
    check("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n$10\r\nconnecting\r\n:-1\r\n", fn_role, "0 2");
    check("*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n", fn_role, "0 3");
    snprintf(want, sizeof(want), "%d -1", CLUSTER_E_REDIS);
    check("-ERR unknown command 'ROLE'\r\n", fn_role, want);
    check("-NOPERM this user has no permissions to run the 'role' command\r\n", fn_role, want);
    snprintf(want, sizeof(want), "%d -1", CLUSTER_E_AUTH);
    check("-NOAUTH Authentication required.\r\n", fn_role, want);
    snprintf(want, sizeof(want), "%d -1", CLUSTER_E_SYNTAX);
    static const char *const bad[] = {
        "*0\r\n",
        "*1\r\n$6\r\nmaster\r\n",
        "*3\r\n$6\r\nMASTER\r\n:0\r\n*0\r\n",
        "*3\r\n$6\r\nmaster\r\n$1\r\n0\r\n*0\r\n",
        "*3\r\n$6\r\nmaster\r\n:0\r\n$0\r\n\r\n",
        "*4\r\n$6\r\nmaster\r\n:0\r\n*0\r\n:1\r\n",
        "*3\r\n$7\r\nreplica\r\n:0\r\n*0\r\n",
        "*4\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n$9\r\nconnected\r\n",
        "*5\r\n$5\r\nslave\r\n:1\r\n:9000\r\n$9\r\nconnected\r\n:3\r\n",
        "*2\r\n$8\r\nsentinel\r\n$1\r\nx\r\n",
        "*2\r\n$-1\r\n:0\r\n",
        "*2\r\n:1\r\n:0\r\n",
        "+master\r\n",
        ":1\r\n",
        "$-1\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check(bad[i], fn_role, want);
    assert_int_equal(cluster_reply_role(NULL, NULL), CLUSTER_E_SYNTAX);
}

/* ---- +switch-master --------------------------------------------------------------------- */

static void test_switch(void **state)
{
    struct cluster_switch m;
    char out[CLUSTER_MAX_SWITCH_LEN + 1];
    (void)state;
    static const char ok[] = "mymaster 127.0.0.1 6379 127.0.0.2 6380";
    assert_int_equal(cluster_switch_parse(ok, strlen(ok), &m), 0);
    assert_int_equal(m.name_len, 8);
    assert_memory_equal(m.name, "mymaster", 8);
    assert_ptr_equal(m.name, ok);
    assert_int_equal(m.old_host_len, 9);
    assert_memory_equal(m.old_host, "127.0.0.1", 9);
    assert_int_equal(m.old_port, 6379);
    assert_memory_equal(m.new_host, "127.0.0.2", 9);
    assert_int_equal(m.new_port, 6380);
    assert_int_equal(cluster_switch_format(out, sizeof(out), &m), (int)strlen(ok));
    assert_string_equal(out, ok);
    assert_int_equal(cluster_switch_format(out, strlen(ok), &m), CLUSTER_E_TOO_LONG);
    assert_int_equal(cluster_switch_format(out, strlen(ok) + 1, &m), (int)strlen(ok));

    static const char v6[] = "m ::1 1 fe80::2 65535";
    assert_int_equal(cluster_switch_parse(v6, strlen(v6), &m), 0);
    assert_int_equal(m.new_port, 65535);

    static const char *const bad[] = {
        "",
        "m",
        "m 1.1.1.1 1 2.2.2.2",
        "m 1.1.1.1 1 2.2.2.2 2 ",
        "m 1.1.1.1 1 2.2.2.2 2 x",
        " m 1.1.1.1 1 2.2.2.2 2",
        "m  1.1.1.1 1 2.2.2.2 2",
        "m 1.1.1.1 1 2.2.2.2 0",
        "m 1.1.1.1 01 2.2.2.2 2",
        "m 1.1.1.1 1 2.2.2.2 65536",
        "m [::1] 1 2.2.2.2 2",
        "m/x 1.1.1.1 1 2.2.2.2 2",
        "m 1.1.1.1 1 2.2.2.2 2\n",
        "m\t1.1.1.1 1 2.2.2.2 2",
        "m 1.1.1.1 1 2..2 2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cluster_switch_parse(bad[i], strlen(bad[i]), &m) != CLUSTER_E_SYNTAX)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(cluster_switch_parse("m 1.1.1.1 1 2.2.2.2 2\0", 22, &m), CLUSTER_E_SYNTAX);

    /* every prefix, and every one-byte change: refused, or formats back to itself */
    char buf[sizeof(ok)];
    for (size_t n = 0; n < strlen(ok); n++) {
        int rc = cluster_switch_parse(ok, n, &m);
        if (rc == 0) { /* only the new port cut short */
            assert_true(n > strlen(ok) - 4);
            assert_int_equal(cluster_switch_format(out, sizeof(out), &m), (int)n);
            assert_memory_equal(out, ok, n);
        } else {
            assert_int_equal(rc, CLUSTER_E_SYNTAX);
        }
    }
    for (size_t i = 0; i < strlen(ok); i++) {
        for (int c = 0; c < 256; c++) {
            memcpy(buf, ok, sizeof(ok));
            buf[i] = (char)c;
            if (cluster_switch_parse(buf, strlen(ok), &m) != 0)
                continue;
            assert_int_equal(cluster_switch_format(out, sizeof(out), &m), (int)strlen(ok));
            assert_memory_equal(out, buf, strlen(ok));
        }
    }

    struct cluster_switch z = {"m", 1, "h", "h", 1, 1, 1, 0};
    assert_int_equal(cluster_switch_format(out, sizeof(out), &z), CLUSTER_E_INVAL);
    z.new_port = 2;
    assert_int_equal(cluster_switch_format(out, sizeof(out), &z), 9);
    z.name = "a b";
    z.name_len = 3;
    assert_int_equal(cluster_switch_format(out, sizeof(out), &z), CLUSTER_E_INVAL);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int e = CLUSTER_E_NOT_MASTER; e >= CLUSTER_E_MASTER_NAME; e--)
        assert_string_not_equal(cluster_strerror(e), "unknown cluster error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentinels_valid),
        cmocka_unit_test(test_sentinels_invalid),
        cmocka_unit_test(test_sentinels_every_prefix),
        cmocka_unit_test(test_master_name_and_host),
        cmocka_unit_test(test_url_auth),
        cmocka_unit_test(test_reply_master_addr),
        cmocka_unit_test(test_reply_role),
        cmocka_unit_test(test_switch),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
