/* util/: the host:port rule (its ugly cases), the worker-id rule, util_chars_only, the clocks, the
 * hash table, and CIDR lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/cidr.h"
#include "util/htab.h"
#include "util/util.h"

/* Parses s (strlen bytes) with flags and a default port of 7; returns the result. */
static int hp(const char *s, unsigned flags, struct util_hostport *out)
{
    memset(out, 0, sizeof(*out));
    out->port = 7;
    return util_hostport_parse(s, strlen(s), flags, out);
}

static void assert_host(const struct util_hostport *h, const char *host, int port, int ipv6)
{
    assert_int_equal(h->host_len, strlen(host));
    assert_memory_equal(h->host, host, h->host_len);
    assert_int_equal(h->port, port);
    assert_int_equal(h->ipv6, ipv6);
}

static void test_hostport_valid(void **state)
{
    struct util_hostport h;
    (void)state;
    assert_int_equal(hp("example.com:80", 0, &h), 0);
    assert_host(&h, "example.com", 80, 0);
    assert_int_equal(hp("10.0.0.1:65535", 0, &h), 0);
    assert_host(&h, "10.0.0.1", 65535, 0);
    assert_int_equal(hp("a_b-c.d:1", 0, &h), 0);
    assert_host(&h, "a_b-c.d", 1, 0);
    assert_int_equal(hp("fqdn.example.:443", 0, &h), 0); /* one trailing dot: fully qualified */
    assert_host(&h, "fqdn.example.", 443, 0);
    assert_int_equal(hp("[::1]:8080", 0, &h), 0);
    assert_host(&h, "::1", 8080, 1);
    assert_int_equal(hp("[::]:7000", 0, &h), 0);
    assert_host(&h, "::", 7000, 1);
    assert_int_equal(hp("[FE80::1:2.3.4.5]:9", 0, &h), 0);
    assert_host(&h, "FE80::1:2.3.4.5", 9, 1);
    /* the port optional: the caller's default stays */
    assert_int_equal(hp("host", UTIL_HP_PORT_OPTIONAL, &h), 0);
    assert_host(&h, "host", 7, 0);
    assert_int_equal(hp("[::1]", UTIL_HP_PORT_OPTIONAL, &h), 0);
    assert_host(&h, "::1", 7, 1);
    assert_int_equal(hp("host:9", UTIL_HP_PORT_OPTIONAL, &h), 0);
    assert_host(&h, "host", 9, 0);
    /* port 0 only when asked for */
    assert_int_equal(hp("0.0.0.0:0", UTIL_HP_PORT_ZERO, &h), 0);
    assert_host(&h, "0.0.0.0", 0, 0);
    assert_int_equal(hp("[::1]:0", UTIL_HP_PORT_ZERO | UTIL_HP_PORT_OPTIONAL, &h), 0);
    assert_host(&h, "::1", 0, 1);
    /* no NUL needed: only len bytes are read */
    memset(&h, 0, sizeof(h));
    assert_int_equal(util_hostport_parse("h:8080garbage", 6, 0, &h), 0);
    assert_host(&h, "h", 8080, 0);
}

static void test_hostport_invalid(void **state)
{
    static const struct {
        const char *s;
        unsigned flags;
        int err;
    } bad[] = {
        {"", UTIL_HP_PORT_OPTIONAL, UTIL_E_HOST},
        {":", UTIL_HP_PORT_OPTIONAL, UTIL_E_HOST},
        {":80", 0, UTIL_E_HOST},
        {"h", 0, UTIL_E_PORT},     /* the port is required */
        {"[::1]", 0, UTIL_E_PORT}, /* the port is required */
        {"h:", UTIL_HP_PORT_OPTIONAL, UTIL_E_PORT},
        {"[::1]:", UTIL_HP_PORT_OPTIONAL, UTIL_E_PORT},
        {"[::1]:0", 0, UTIL_E_PORT}, /* 0 needs UTIL_HP_PORT_ZERO */
        {"h:0", 0, UTIL_E_PORT},
        {"h:65536", UTIL_HP_PORT_ZERO, UTIL_E_PORT},
        {"h:99999", 0, UTIL_E_PORT},
        {"h:100000", 0, UTIL_E_PORT},
        {"h:00080", 0, UTIL_E_PORT}, /* no leading zero: one spelling per port */
        {"h:080", 0, UTIL_E_PORT},
        {"h:00", UTIL_HP_PORT_ZERO, UTIL_E_PORT},
        {"h:+1", 0, UTIL_E_PORT},
        {"h:-1", 0, UTIL_E_PORT},
        {"h: 1", 0, UTIL_E_PORT},
        {"h:1 ", 0, UTIL_E_PORT},
        {"h:0x10", 0, UTIL_E_PORT},
        {"a:b:c", 0, UTIL_E_PORT},
        {"h:1:2", 0, UTIL_E_PORT},
        {"::1:80", 0, UTIL_E_HOST},           /* an IPv6 address needs brackets */
        {"[1.2.3.4]:80", 0, UTIL_E_HOST},     /* brackets hold IPv6 only */
        {"[fe80::1%eth0]:1", 0, UTIL_E_HOST}, /* no zone ids */
        {"[fe80::1%25eth0]:1", 0, UTIL_E_HOST},
        {"[]:1", 0, UTIL_E_HOST},
        {"[:]:1", 0, UTIL_E_HOST},
        {"[1]:1", 0, UTIL_E_HOST},
        {"[::1", UTIL_HP_PORT_OPTIONAL, UTIL_E_HOST},
        {"[zz::]:1", 0, UTIL_E_HOST},
        {"[::1]x", UTIL_HP_PORT_OPTIONAL, UTIL_E_PORT},
        {"[::1]]:1", 0, UTIL_E_PORT},
        {"::1]:1", 0, UTIL_E_HOST},
        {"h h:1", 0, UTIL_E_HOST},
        {"h/x:1", 0, UTIL_E_HOST},
        {"h%41:1", 0, UTIL_E_HOST},
        {"user@h:1", 0, UTIL_E_HOST},
        {".h:1", 0, UTIL_E_HOST}, /* an empty label */
        {"a..b:1", 0, UTIL_E_HOST},
        {".:1", 0, UTIL_E_HOST},
        {"h\xc3\xa9:1", 0, UTIL_E_HOST}, /* non-ASCII */
        {"\xff:1", 0, UTIL_E_HOST},
        {"h:\xd9\xa1", 0, UTIL_E_PORT}, /* a non-ASCII digit */
        {"[::\xc3\xa9]:1", 0, UTIL_E_HOST},
    };
    struct util_hostport h;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&h, 0x55, sizeof(h));
        int rc = util_hostport_parse(bad[i].s, strlen(bad[i].s), bad[i].flags, &h);
        if (rc != bad[i].err)
            fail_msg("\"%s\": got %d, want %d", bad[i].s, rc, bad[i].err);
        assert_int_equal(h.port, 0x55555555); /* out unchanged on failure */
        assert_non_null(util_strerror(rc));
    }
    assert_string_equal(util_strerror(12345), "unknown util error");
}

/* A NUL inside len is a byte like any other: refused. */
static void test_hostport_nul(void **state)
{
    struct util_hostport h = {0};
    (void)state;
    assert_int_equal(util_hostport_parse("h:80\0", 5, 0, &h), UTIL_E_PORT);
    assert_int_equal(util_hostport_parse("h\0:80", 5, 0, &h), UTIL_E_HOST);
    assert_int_equal(util_hostport_parse("[::1]\0", 6, UTIL_HP_PORT_OPTIONAL, &h), UTIL_E_PORT);
    assert_int_equal(util_hostport_parse("[::\0]:1", 7, 0, &h), UTIL_E_HOST);
    assert_int_equal(util_hostport_parse("h:80", 4, 0, &h), 0);
}

static void test_hostport_limits(void **state)
{
    char buf[512];
    struct util_hostport h;
    (void)state;
    /* a host of UTIL_MAX_HOST_LEN (253) bytes is fine, 254 is too long */
    memset(buf, 'a', UTIL_MAX_HOST_LEN);
    strcpy(buf + UTIL_MAX_HOST_LEN, ":1");
    assert_int_equal(hp(buf, 0, &h), 0);
    assert_int_equal(h.host_len, 253);
    memset(buf, 'a', UTIL_MAX_HOST_LEN + 1);
    strcpy(buf + UTIL_MAX_HOST_LEN + 1, ":1");
    assert_int_equal(hp(buf, 0, &h), UTIL_E_TOO_LONG);
    buf[UTIL_MAX_HOST_LEN + 1] = '\0';
    assert_int_equal(hp(buf, UTIL_HP_PORT_OPTIONAL, &h), UTIL_E_TOO_LONG);
    /* an IPv6 literal of 45 bytes is fine, 46 is not */
    strcpy(buf, "[0000:0000:0000:0000:0000:ffff:255.255.255.255]:1");
    assert_int_equal(hp(buf, 0, &h), 0);
    assert_int_equal(h.host_len, 45);
    strcpy(buf, "[0000:0000:0000:0000:0000:ffff:255.255.255.2550]:1");
    assert_int_equal(hp(buf, 0, &h), UTIL_E_HOST);
    /* every port from 1 to 65535 in its one spelling, 0 with the flag */
    for (int p = 0; p <= 65536; p++) {
        snprintf(buf, sizeof(buf), "h:%d", p);
        int want = p >= 1 && p <= 65535 ? 0 : UTIL_E_PORT;
        if (hp(buf, 0, &h) != want || (want == 0 && h.port != p))
            fail_msg("port %d", p);
        want = p <= 65535 ? 0 : UTIL_E_PORT;
        if (hp(buf, UTIL_HP_PORT_ZERO, &h) != want || (want == 0 && h.port != p))
            fail_msg("port %d with UTIL_HP_PORT_ZERO", p);
    }
}

/* Every prefix of an address: only those ending after a port digit parse. */
static void test_hostport_every_prefix(void **state)
{
    static const char full[] = "[fd00::1]:7000";
    struct util_hostport h;
    (void)state;
    for (size_t n = 0; n <= sizeof(full) - 1; n++) {
        memset(&h, 0, sizeof(h));
        int rc = util_hostport_parse(full, n, 0, &h);
        assert_int_equal(rc == 0, n >= sizeof("[fd00::1]:7") - 1);
        rc = util_hostport_parse(full, n, UTIL_HP_PORT_OPTIONAL, &h);
        assert_int_equal(rc == 0, n == sizeof("[fd00::1]") - 1 || n >= sizeof("[fd00::1]:7") - 1);
    }
}

static void test_port(void **state)
{
    (void)state;
    assert_int_equal(util_port_parse("1", 1, 0), 1);
    assert_int_equal(util_port_parse("65535", 5, 0), 65535);
    assert_int_equal(util_port_parse("0", 1, 0), UTIL_E_PORT);
    assert_int_equal(util_port_parse("0", 1, UTIL_HP_PORT_ZERO), 0);
    assert_int_equal(util_port_parse("65536", 5, 0), UTIL_E_PORT);
    assert_int_equal(util_port_parse("00080", 5, 0), UTIL_E_PORT);
    assert_int_equal(util_port_parse("+1", 2, 0), UTIL_E_PORT);
    assert_int_equal(util_port_parse("-1", 2, 0), UTIL_E_PORT);
    assert_int_equal(util_port_parse("", 0, 0), UTIL_E_PORT);
    assert_int_equal(util_port_parse(NULL, 0, 0), UTIL_E_PORT);
    assert_int_equal(util_port_parse("8080", 2, 0), 80); /* len bytes only */
}

static void test_hostport_format(void **state)
{
    char out[64];
    struct util_hostport h;
    (void)state;
    assert_int_equal(util_hostport_format(out, sizeof(out), "example.com", 80), 14);
    assert_string_equal(out, "example.com:80");
    assert_int_equal(util_hostport_format(out, sizeof(out), "::1", 0), 7);
    assert_string_equal(out, "[::1]:0");
    assert_int_equal(util_hostport_parse(out, 7, UTIL_HP_PORT_ZERO, &h), 0);
    assert_host(&h, "::1", 0, 1);
    assert_int_equal(util_hostport_format(out, 15, "example.com", 80), 14);
    assert_int_equal(util_hostport_format(out, 14, "example.com", 80), -1); /* no room for the NUL */
}

static void test_worker_id(void **state)
{
    char big[300], one[2] = {0};
    (void)state;
    memset(big, 'x', sizeof(big));
    assert_false(util_valid_worker_id(big, 0));
    assert_false(util_valid_worker_id(NULL, 0));
    assert_false(util_valid_worker_id(NULL, 1));
    assert_true(util_valid_worker_id(big, 1));
    assert_true(util_valid_worker_id(big, 255));
    assert_true(util_valid_worker_id(big, UTIL_MAX_ID_LEN));
    assert_false(util_valid_worker_id(big, 256));
    assert_true(util_valid_worker_id("AZaz09", 6));
    /* each allowed punctuation mark, alone and inside an id */
    for (const char *p = UTIL_ID_CHARS; *p; p++) {
        char id[4] = {'a', *p, 'b', 0};
        one[0] = *p;
        assert_true(util_valid_worker_id(one, 1));
        assert_true(util_valid_worker_id(id, 3));
    }
    assert_int_equal(strlen(UTIL_ID_CHARS), 5);
    /* every other byte is refused */
    for (int c = 0; c < 256; c++) {
        char id[3] = {'a', (char)c, 'b'};
        int want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c != 0 && strchr(UTIL_ID_CHARS, c));
        if (util_valid_worker_id(id, 3) != want)
            fail_msg("byte 0x%02x", c);
    }
    assert_false(util_valid_worker_id("a/b", 3));
    assert_false(util_valid_worker_id("a\0b", 3));
    assert_false(util_valid_worker_id("ab\0", 3)); /* a trailing NUL inside the length */
    assert_false(util_valid_worker_id("a:b", 3));
    assert_false(util_valid_worker_id("a b", 3));
}

static void test_chars_only(void **state)
{
    (void)state;
    assert_true(util_chars_only("", 0, ""));
    assert_true(util_chars_only(NULL, 0, "")); /* nothing is read */
    assert_true(util_chars_only("aZ09", 4, ""));
    assert_false(util_chars_only("a-b", 3, ""));
    assert_true(util_chars_only("a-b", 3, "-"));
    assert_true(util_chars_only("{a}/b:c", 7, "{}/:"));
    assert_false(util_chars_only("a\0b", 3, "-")); /* NUL never matches the set's terminator */
    assert_false(util_chars_only("\xc3\xa9", 2, "-"));
    assert_true(util_chars_only("a\0b", 1, "")); /* only len bytes */
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t prev = util_now_ms(), wall = util_wall_ms();
    assert_true(prev >= 0);
    assert_true(wall > INT64_C(1577836800000)); /* after 2020-01-01 */
    for (int i = 0; i < 100000; i++) {
        int64_t now = util_now_ms();
        if (now < prev)
            fail_msg("the monotonic clock went back from %lld to %lld", (long long)prev, (long long)now);
        prev = now;
    }
    assert_true(util_wall_ms() >= wall - 1000);
}

struct item {
    struct util_hnode h;
    char key[8];
};

static void test_htab(void **state)
{
    static struct item items[100];
    struct util_htab t;
    (void)state;
    util_htab_init(&t, offsetof(struct item, key) - offsetof(struct item, h), 42, 32);
    assert_null(util_htab_find(&t, "x", 1, util_htab_hash(&t, "x", 1)));
    for (int i = 0; i < 100; i++) {
        int n = snprintf(items[i].key, sizeof(items[i].key), "k%d", i);
        items[i].h.klen = (uint16_t)n;
        items[i].h.hash = util_htab_hash(&t, items[i].key, (size_t)n);
        assert_int_equal(util_htab_insert(&t, &items[i].h), 0);
    }
    assert_int_equal(t.n, 100);
    assert_int_equal(t.nb, 32); /* grown up to max_buckets, not past it */
    for (int i = 0; i < 100; i++) {
        size_t n = items[i].h.klen;
        assert_ptr_equal(util_htab_find(&t, items[i].key, n, util_htab_hash(&t, items[i].key, n)),
                         &items[i].h);
    }
    for (int i = 0; i < 100; i += 2)
        util_htab_remove(&t, &items[i].h);
    assert_int_equal(t.n, 50);
    for (int i = 0; i < 100; i++) {
        size_t n = items[i].h.klen;
        struct util_hnode *f = util_htab_find(&t, items[i].key, n, util_htab_hash(&t, items[i].key, n));
        assert_ptr_equal(f, i % 2 ? &items[i].h : NULL);
    }
    assert_int_equal(util_htab_bytes(&t), 32 * sizeof(void *));
    util_htab_free(&t);
    assert_int_equal(t.nb, 0);
}

/* ---- CIDR lists ---- */

static struct util_cidr_list g_cidrs;

/* Parses s; returns the result, and the entry at fault as text in bad (when not NULL). */
static int cidrs(const char *s, char *bad)
{
    size_t off = 999, len = 999;
    int rc = util_cidr_parse_list(s, strlen(s), &g_cidrs, &off, &len);
    if (rc == 0) {
        assert_int_equal(off, 999);
    } else {
        assert_int_equal(g_cidrs.count, 0);
        assert_true(off + len <= strlen(s));
        if (bad) {
            memcpy(bad, s + off, len);
            bad[len] = 0;
        }
    }
    return rc;
}

static int in(const char *ip)
{
    return util_cidr_match_text(&g_cidrs, ip);
}

static void test_cidr_parse(void **state)
{
    char bad[128];
    assert_int_equal(cidrs("", NULL), 0);
    assert_int_equal(g_cidrs.count, 0);
    assert_int_equal(cidrs("  \t ", NULL), 0);
    assert_int_equal(g_cidrs.count, 0);
    assert_int_equal(cidrs("10.0.0.0/8,127.0.0.1/32,::1/128", NULL), 0);
    assert_int_equal(g_cidrs.count, 3);
    assert_int_equal(g_cidrs.net[0].v6, 0);
    assert_int_equal(g_cidrs.net[0].bits, 8);
    assert_int_equal(g_cidrs.net[0].addr[0], 10);
    assert_int_equal(g_cidrs.net[2].v6, 1);
    assert_int_equal(g_cidrs.net[2].bits, 128);
    assert_int_equal(g_cidrs.net[2].addr[15], 1);
    /* blanks around entries; a bare address is one host; /0 is everything */
    assert_int_equal(cidrs(" 10.0.0.0/8 ,\t192.168.1.7 , 2001:db8::/32 ", NULL), 0);
    assert_int_equal(g_cidrs.count, 3);
    assert_int_equal(g_cidrs.net[1].bits, 32);
    assert_int_equal(cidrs("0.0.0.0/0,::/0", NULL), 0);
    assert_int_equal(g_cidrs.count, 2);
    /* an IPv4-mapped network is the IPv4 network */
    assert_int_equal(cidrs("::ffff:10.0.0.0/104", NULL), 0);
    assert_int_equal(g_cidrs.net[0].v6, 0);
    assert_int_equal(g_cidrs.net[0].bits, 8);
    assert_int_equal(g_cidrs.net[0].addr[0], 10);
    assert_int_equal(g_cidrs.net[0].addr[4], 0);
    /* the ugly ones, each with the entry at fault */
    static const struct {
        const char *text, *bad;
        int rc;
    } cases[] = {
        {"10.0.0.0/8,", "", UTIL_CIDR_E_EMPTY},
        {",10.0.0.0/8", "", UTIL_CIDR_E_EMPTY},
        {"10.0.0.0/8,,::1", "", UTIL_CIDR_E_EMPTY},
        {"10.0.0.0/8, ,::1", "", UTIL_CIDR_E_EMPTY},
        {"10.0.0.1/8", "10.0.0.1/8", UTIL_CIDR_E_HOST_BITS},
        {"::1/64", "::1/64", UTIL_CIDR_E_HOST_BITS},
        {"11.0.0.0/7", "11.0.0.0/7", UTIL_CIDR_E_HOST_BITS},
        {"10.0.0.0/33", "10.0.0.0/33", UTIL_CIDR_E_PREFIX},
        {"::/129", "::/129", UTIL_CIDR_E_PREFIX},
        {"10.0.0.0/", "10.0.0.0/", UTIL_CIDR_E_PREFIX},
        {"10.0.0.0/08", "10.0.0.0/08", UTIL_CIDR_E_PREFIX},
        {"10.0.0.0/+8", "10.0.0.0/+8", UTIL_CIDR_E_PREFIX},
        {"10.0.0.0/-8", "10.0.0.0/-8", UTIL_CIDR_E_PREFIX},
        {"10.0.0.0/8/8", "10.0.0.0/8/8", UTIL_CIDR_E_PREFIX},
        {"10.0.0.0/ 8", "10.0.0.0/ 8", UTIL_CIDR_E_PREFIX},
        {"10.0.0.0/1000", "10.0.0.0/1000", UTIL_CIDR_E_PREFIX},
        {"127.0.0.1/32 ::1", "127.0.0.1/32 ::1", UTIL_CIDR_E_PREFIX},
        {"/8", "/8", UTIL_CIDR_E_ADDR},
        {"10.0.0/8", "10.0.0/8", UTIL_CIDR_E_ADDR},
        {"010.0.0.0/8", "010.0.0.0/8", UTIL_CIDR_E_ADDR},
        {"256.0.0.0/8", "256.0.0.0/8", UTIL_CIDR_E_ADDR},
        {"10.0.0.0.0", "10.0.0.0.0", UTIL_CIDR_E_ADDR},
        {"localhost", "localhost", UTIL_CIDR_E_ADDR},
        {"1.2.3.4, [::1]/128", "[::1]/128", UTIL_CIDR_E_ADDR},
        {"fe80::1%eth0", "fe80::1%eth0", UTIL_CIDR_E_ADDR},
        {"::1::2", "::1::2", UTIL_CIDR_E_ADDR},
        {"0x0a.0.0.0/8", "0x0a.0.0.0/8", UTIL_CIDR_E_ADDR},
        {"10.0.0.0;8", "10.0.0.0;8", UTIL_CIDR_E_ADDR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = cidrs(cases[i].text, bad);
        if (rc != cases[i].rc || strcmp(bad, cases[i].bad) != 0)
            fail_msg("'%s': %d '%s', expected %d '%s'", cases[i].text, rc, bad, cases[i].rc, cases[i].bad);
        assert_non_null(util_cidr_strerror(rc));
    }
    /* an entry too long to be an address; a NUL inside */
    assert_int_equal(cidrs("1111:2222:3333:4444:5555:6666:7777:8888/128     ", NULL), 0);
    assert_int_equal(cidrs("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd/128", NULL),
                     UTIL_CIDR_E_ADDR);
    size_t off, len;
    assert_int_equal(util_cidr_parse_list("1.2.3.4\0/8", 10, &g_cidrs, &off, &len), UTIL_CIDR_E_ADDR);
    /* at most UTIL_CIDR_MAX networks */
    char many[UTIL_CIDR_MAX * 16 + 16];
    size_t n = 0;
    for (int i = 0; i < UTIL_CIDR_MAX; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%s10.%d.0.0/16", i ? "," : "", i);
    assert_int_equal(cidrs(many, NULL), 0);
    assert_int_equal(g_cidrs.count, UTIL_CIDR_MAX);
    snprintf(many + n, sizeof many - n, ",11.0.0.0/8");
    assert_int_equal(cidrs(many, bad), UTIL_CIDR_E_TOO_MANY);
    assert_string_equal(bad, "11.0.0.0/8");
}

/* Every split of a list is either a list that parses or fails cleanly (never reads past len). */
static void test_cidr_prefixes_of_text(void **state)
{
    static const char text[] = "10.0.0.0/8, 127.0.0.1/32, ::1/128, 2001:db8:1::/48";
    for (size_t n = 0; n <= sizeof text - 1; n++) {
        char *copy = malloc(n ? n : 1); /* exact size: ASan sees a read past it */
        assert_non_null(copy);
        memcpy(copy, text, n);
        size_t off = 0, len = 0;
        int rc = util_cidr_parse_list(copy, n, &g_cidrs, &off, &len);
        if (rc != 0)
            assert_true(off + len <= n);
        free(copy);
    }
}

static void test_cidr_match(void **state)
{
    assert_int_equal(cidrs("10.0.0.0/8, 127.0.0.1/32, ::1/128, 2001:db8:1::/48, 192.168.0.0/23", NULL), 0);
    assert_true(in("10.0.0.0"));
    assert_true(in("10.255.255.255"));
    assert_false(in("11.0.0.0"));
    assert_false(in("9.255.255.255"));
    assert_true(in("127.0.0.1"));
    assert_false(in("127.0.0.2"));
    assert_true(in("192.168.1.255"));
    assert_false(in("192.168.2.0"));
    assert_true(in("::1"));
    assert_false(in("::2"));
    assert_true(in("2001:db8:1::5"));
    assert_true(in("2001:db8:1:ffff:ffff:ffff:ffff:ffff"));
    assert_false(in("2001:db8:2::"));
    /* an IPv4 client on an IPv6 socket */
    assert_true(in("::ffff:10.1.2.3"));
    assert_true(in("::ffff:127.0.0.1"));
    assert_false(in("::ffff:127.0.0.5"));
    /* families never mix otherwise */
    assert_false(in("::a00:1")); /* ::10.0.0.1, IPv4-compatible, not mapped */
    assert_false(in("not an ip"));
    assert_false(in(""));
    /* an empty list matches nothing; /0 everything of its family */
    assert_int_equal(cidrs("", NULL), 0);
    assert_false(in("127.0.0.1"));
    assert_int_equal(cidrs("0.0.0.0/0", NULL), 0);
    assert_true(in("1.2.3.4"));
    assert_true(in("::ffff:1.2.3.4"));
    assert_false(in("::1"));
    assert_int_equal(cidrs("::/0", NULL), 0);
    assert_true(in("::1"));
    assert_false(in("1.2.3.4"));
    /* the binary form */
    assert_int_equal(cidrs("127.0.0.0/8,::ffff:192.0.2.0/120", NULL), 0);
    uint8_t v4[4] = {127, 9, 9, 9}, v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 77};
    assert_true(util_cidr_match(&g_cidrs, 0, v4));
    assert_true(util_cidr_match(&g_cidrs, 1, v6));
    v6[14] = 3;
    assert_false(util_cidr_match(&g_cidrs, 1, v6));
    assert_true(in("192.0.2.200"));
    /* odd prefix lengths */
    assert_int_equal(cidrs("172.16.0.0/12,2001:db8::/31", NULL), 0);
    assert_true(in("172.31.255.255"));
    assert_false(in("172.32.0.0"));
    assert_true(in("2001:db9:ffff::"));
    assert_false(in("2001:dba::"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostport_valid),
        cmocka_unit_test(test_hostport_invalid),
        cmocka_unit_test(test_hostport_nul),
        cmocka_unit_test(test_hostport_limits),
        cmocka_unit_test(test_hostport_every_prefix),
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_hostport_format),
        cmocka_unit_test(test_worker_id),
        cmocka_unit_test(test_chars_only),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_htab),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_prefixes_of_text),
        cmocka_unit_test(test_cidr_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
