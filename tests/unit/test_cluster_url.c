/* cluster/url.c: REDIS_URL parsing and the identifier checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cluster.h"
#include "util/util.h"

static int parse(const char *s, struct cluster_url *u)
{
    return cluster_url_parse(s, strlen(s), u);
}

static void test_url_valid(void **state)
{
    struct cluster_url u;
    (void)state;

    assert_int_equal(parse("redis://localhost", &u), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(u.has_password, 0);
    assert_int_equal(u.has_user, 0);
    assert_int_equal(u.ipv6, 0);

    assert_int_equal(parse("redis://redis.internal:6380/2", &u), 0);
    assert_string_equal(u.host, "redis.internal");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);

    assert_int_equal(parse("redis://:secret@10.0.0.7:1/0", &u), 0);
    assert_string_equal(u.host, "10.0.0.7");
    assert_int_equal(u.port, 1);
    assert_int_equal(u.has_password, 1);
    assert_int_equal(u.has_user, 0);
    assert_string_equal(u.password, "secret");
    assert_int_equal(u.password_len, 6);

    assert_int_equal(parse("redis://alice:pa%3Ass@h", &u), 0);
    assert_int_equal(u.has_user, 1);
    assert_string_equal(u.user, "alice");
    assert_int_equal(u.user_len, 5);
    assert_string_equal(u.password, "pa:ss");

    assert_int_equal(parse("redis://:p%40ss%2Fw%3F%23@h", &u), 0);
    assert_string_equal(u.password, "p@ss/w?#");

    assert_int_equal(parse("redis://:a:b:c+=!$&'()*,;~@h", &u), 0); /* ':' and sub-delims as they are */
    assert_string_equal(u.password, "a:b:c+=!$&'()*,;~");

    assert_int_equal(parse("redis://:p%00w@h", &u), 0); /* a NUL byte: AUTH is sent with its length */
    assert_int_equal(u.password_len, 3);
    assert_memory_equal(u.password, "p\0w", 3);

    assert_int_equal(parse("REDIS://H_1.example-x:65535/2147483647", &u), 0);
    assert_string_equal(u.host, "H_1.example-x");
    assert_int_equal(u.port, 65535);
    assert_int_equal(u.db, 2147483647);

    assert_int_equal(parse("redis://[::1]:6379/3", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.ipv6, 1);
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 3);

    assert_int_equal(parse("redis://[fe80::1:2.3.4.5]", &u), 0);
    assert_string_equal(u.host, "fe80::1:2.3.4.5");
    assert_int_equal(u.port, 6379);

    assert_int_equal(parse("redis://127.0.0.1:6379/", &u), 0);
    assert_int_equal(u.db, 0);
    assert_int_equal(parse("redis://h/0", &u), 0);
    assert_int_equal(u.db, 0);
}

static void test_url_invalid(void **state)
{
    static const struct {
        const char *url;
        int err;
    } bad[] = {
        {"", CLUSTER_E_URL},
        {"redis:/", CLUSTER_E_URL},
        {"redis://", CLUSTER_E_URL},
        {"redis:///0", CLUSTER_E_URL},
        {"redis://h:", CLUSTER_E_URL},
        {"redis://h:0", CLUSTER_E_URL},
        {"redis://h:65536", CLUSTER_E_URL},
        {"redis://h:06379", CLUSTER_E_URL},
        {"redis://h:+1", CLUSTER_E_URL},
        {"redis://h:6379x", CLUSTER_E_URL},
        {"redis://h:1:2", CLUSTER_E_URL},
        {"redis://h/abc", CLUSTER_E_URL},
        {"redis://h/01", CLUSTER_E_URL},
        {"redis://h/-1", CLUSTER_E_URL},
        {"redis://h/2147483648", CLUSTER_E_URL},
        {"redis://h/0/", CLUSTER_E_URL},
        {"redis://h?db=1", CLUSTER_E_URL},
        {"redis://h/0?x", CLUSTER_E_URL},
        {"redis://h#x", CLUSTER_E_URL},
        {"redis://h o", CLUSTER_E_URL},
        {"redis://h\t", CLUSTER_E_URL},
        {"redis://h%41", CLUSTER_E_URL},
        {"redis://user@h", CLUSTER_E_URL},
        {"redis://:@h", CLUSTER_E_URL},
        {"redis://u:@h", CLUSTER_E_URL},
        {"redis://:a@b@h", CLUSTER_E_URL},
        {"redis://:%4@h", CLUSTER_E_URL},
        {"redis://:%@h", CLUSTER_E_URL},
        {"redis://:%zz@h", CLUSTER_E_URL},
        {"redis://u%20x:p@h", CLUSTER_E_URL},
        {"redis://u%00:p@h", CLUSTER_E_URL},
        {"redis://:pw@", CLUSTER_E_URL},
        {"redis://:pw@:1", CLUSTER_E_URL},
        {"redis://[::1", CLUSTER_E_URL},
        {"redis://[::1]x", CLUSTER_E_URL},
        {"redis://[zz::]:1", CLUSTER_E_URL},
        {"redis://[1]:1", CLUSTER_E_URL},
        {"redis://[]:1", CLUSTER_E_URL},
        {"h:6379", CLUSTER_E_URL},
        {"localhost", CLUSTER_E_URL},
        {"rediss://h", CLUSTER_E_URL_SCHEME},
        {"REDISS://h:1/0", CLUSTER_E_URL_SCHEME},
        {"http://h", CLUSTER_E_URL_SCHEME},
        {"unix:///tmp/redis.sock", CLUSTER_E_URL_SCHEME},
    };
    struct cluster_url u;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&u, 0x55, sizeof(u));
        int rc = parse(bad[i].url, &u);
        if (rc != bad[i].err)
            fail_msg("\"%s\": got %d, want %d", bad[i].url, rc, bad[i].err);
        assert_int_equal(u.host[0], 0); /* zeroed on failure: no password left behind */
        assert_int_equal(u.password[0], 0);
    }
    assert_int_equal(cluster_url_parse("redis://h", 9, NULL), CLUSTER_E_INVAL);
    assert_int_equal(cluster_url_parse(NULL, 0, &u), CLUSTER_E_INVAL);
    /* an embedded NUL within the length */
    assert_int_equal(cluster_url_parse("redis://h\0x", 11, &u), CLUSTER_E_URL);
}

static void test_url_limits(void **state)
{
    struct cluster_url u;
    char buf[CLUSTER_MAX_URL_LEN + 64];
    (void)state;

    /* host of 253 (the longest DNS name, util_hostport_parse's limit) is fine, 254 too long */
    strcpy(buf, "redis://");
    memset(buf + 8, 'a', 253);
    buf[8 + 253] = '\0';
    assert_int_equal(parse(buf, &u), 0);
    assert_int_equal(strlen(u.host), 253);
    memset(buf + 8, 'a', 254);
    buf[8 + 254] = '\0';
    assert_int_equal(parse(buf, &u), CLUSTER_E_TOO_LONG);

    /* password of 1024 decoded bytes is fine, 1025 too long; "%41" counts as one */
    strcpy(buf, "redis://:");
    size_t n = 9;
    for (int i = 0; i < 1024; i++) {
        memcpy(buf + n, "%41", 3);
        n += 3;
    }
    strcpy(buf + n, "@h");
    assert_int_equal(parse(buf, &u), 0);
    assert_int_equal(u.password_len, 1024);
    assert_int_equal(u.password[1023], 'A');
    memmove(buf + 10, buf + 9, strlen(buf + 9) + 1);
    buf[9] = 'x';
    assert_int_equal(parse(buf, &u), CLUSTER_E_TOO_LONG);

    /* user of 256 fine, 257 too long */
    strcpy(buf, "redis://");
    memset(buf + 8, 'u', 256);
    strcpy(buf + 8 + 256, ":p@h");
    assert_int_equal(parse(buf, &u), 0);
    assert_int_equal(u.user_len, 256);
    memset(buf + 8, 'u', 257);
    strcpy(buf + 8 + 257, ":p@h");
    assert_int_equal(parse(buf, &u), CLUSTER_E_TOO_LONG);

    /* the whole URL */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "redis://", 8);
    assert_int_equal(cluster_url_parse(buf, CLUSTER_MAX_URL_LEN + 1, &u), CLUSTER_E_TOO_LONG);
}

/* Every prefix of a URL, with its exact outcome. */
static void test_url_every_prefix(void **state)
{
    static const char full[] = "redis://alice:p%40ss@[::1]:6380/12";
    const size_t at = sizeof("redis://alice:p%40ss") - 1, rb = sizeof("redis://alice:p%40ss@[::1]") - 1;
    struct cluster_url u;
    (void)state;
    for (size_t n = 0; n <= sizeof(full) - 1; n++) {
        int rc = cluster_url_parse(full, n, &u);
        if (n >= 9 && n <= 13) { /* "redis://a" .. "redis://alice": a host (no '@' yet) */
            assert_int_equal(rc, 0);
            assert_int_equal(strlen(u.host), n - 8);
            assert_int_equal(u.has_password, 0);
        } else if (n == rb) { /* "...@[::1]" */
            assert_int_equal(rc, 0);
            assert_int_equal(u.port, 6379);
        } else if (n > rb + 1) { /* "...:6" .. "...:6380/12" */
            static const int ports[] = {6, 63, 638, 6380, 6380, 6380, 6380};
            static const int dbs[] = {0, 0, 0, 0, 0, 1, 12};
            assert_int_equal(rc, 0);
            assert_int_equal(u.port, ports[n - rb - 2]);
            assert_int_equal(u.db, dbs[n - rb - 2]);
            assert_string_equal(u.user, "alice");
            assert_string_equal(u.password, "p@ss");
            assert_string_equal(u.host, "::1");
            assert_int_equal(u.ipv6, 1);
        } else {
            /* inside the scheme, an empty host, "alice:" + a non-numeric port, the '@', the brackets,
             * or the ':' before the port */
            if (rc == 0)
                fail_msg("prefix of %zu bytes parsed", n);
            assert_true(n < at + 1 || n > at);
        }
    }
}

static void test_identifiers(void **state)
{
    char big[400];
    (void)state;
    assert_true(util_valid_worker_id("a", 1));
    assert_true(util_valid_worker_id("AZaz09_~.%-", 11));
    assert_false(util_valid_worker_id("", 0));
    assert_false(util_valid_worker_id(NULL, 0));
    assert_false(util_valid_worker_id("a b", 3));
    assert_false(util_valid_worker_id("a/b", 3));
    assert_false(util_valid_worker_id("a\0b", 3));
    assert_false(util_valid_worker_id("a:b", 3));
    memset(big, 'x', sizeof(big));
    assert_true(util_valid_worker_id(big, 255));
    assert_false(util_valid_worker_id(big, 256));

    assert_true(cluster_valid_node("node-1.a_b", 10));
    assert_false(cluster_valid_node("n~1", 3));
    assert_false(cluster_valid_node("n%1", 3));
    assert_false(cluster_valid_node("", 0));
    assert_true(cluster_valid_node(big, 64));
    assert_false(cluster_valid_node(big, 65));

    assert_true(cluster_valid_prefix("", 0));
    assert_true(cluster_valid_prefix("wht:{a}/b.c_d-", 14));
    assert_false(cluster_valid_prefix("wht ", 4));
    assert_false(cluster_valid_prefix("a*", 2));
    assert_true(cluster_valid_prefix(big, 64));
    assert_false(cluster_valid_prefix(big, 65));

    assert_true(cluster_valid_addr("10.0.0.1:7000", 13));
    assert_true(cluster_valid_addr("node-1.svc:1", 12));
    assert_true(cluster_valid_addr("[::1]:65535", 11));
    assert_false(cluster_valid_addr("[::1]", 5));
    assert_false(cluster_valid_addr("[::1]:", 6));
    assert_false(cluster_valid_addr("h:0", 3));
    assert_false(cluster_valid_addr("h:65536", 7));
    assert_false(cluster_valid_addr("h:01", 4));
    assert_false(cluster_valid_addr("h", 1));
    assert_false(cluster_valid_addr(":1", 2));
    assert_false(cluster_valid_addr("h h:1", 5));
    assert_false(cluster_valid_addr("h:1 ", 4));
    assert_false(cluster_valid_addr("::1:80", 6));
    memset(big, 'h', 253);
    memcpy(big + 253, ":65535", 6);
    assert_true(cluster_valid_addr(big, 259));
    big[0] = 'h';
    memmove(big + 1, big, 259);
    assert_false(cluster_valid_addr(big, 260));
}

static void test_numbers(void **state)
{
    uint64_t v;
    char out[21];
    (void)state;
    assert_int_equal(cluster_parse_u64("0", 1, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cluster_parse_u64("10", 2, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(cluster_parse_u64("11", 2, 10, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_parse_u64("00", 2, 10, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_parse_u64("", 0, 10, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_parse_u64("-1", 2, 10, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_parse_u64("18446744073709551615", 20, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(cluster_parse_u64("18446744073709551616", 20, UINT64_MAX, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_parse_u64("9007199254740991", 16, CLUSTER_GEN_MAX, &v), 0);
    assert_int_equal(cluster_parse_u64("9007199254740992", 16, CLUSTER_GEN_MAX, &v), CLUSTER_E_SYNTAX);
    assert_int_equal(cluster_format_u64(out, 0), 1);
    assert_string_equal(out, "0");
    assert_int_equal(cluster_format_u64(out, UINT64_MAX), 20);
    assert_string_equal(out, "18446744073709551615");
}

static void test_strerror(void **state)
{
    (void)state;
    for (int e = 0; e >= -20; e--)
        assert_non_null(cluster_strerror(e));
    assert_string_equal(cluster_strerror(12345), "unknown cluster error");
    assert_non_null(strstr(cluster_strerror(CLUSTER_E_URL_SCHEME), "rediss"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_valid),   cmocka_unit_test(test_url_invalid),
        cmocka_unit_test(test_url_limits),  cmocka_unit_test(test_url_every_prefix),
        cmocka_unit_test(test_identifiers), cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
