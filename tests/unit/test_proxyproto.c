/* node/proxyproto: PROXY protocol headers v1 and v2, whole and at every
 * split, the good ones, the ugly ones, and what follows them left alone. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/proxyproto.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define AFTER "GET / HTTP/1.1\r\n" /* what a connection sends after its header */

static struct proxyproto_header g_h;

/* Parses len bytes at p from an exact-size heap copy (ASan sees a read past it). */
static int parse(const void *p, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, p, len);
    int rc = proxyproto_parse(copy, len, &g_h);
    free(copy);
    return rc;
}

/* Every prefix of the len bytes at p: shorter than want (> 0, the header's
 * length) is incomplete, the rest gives want; with want <= 0 (an error),
 * every prefix is incomplete or that error, and the whole is the error. */
static void every_split(const void *p, size_t len, int want)
{
    for (size_t k = 0; k <= len; k++) {
        int rc = parse(p, k);
        if (want > 0) {
            int expect = k < (size_t)want ? PROXYPROTO_INCOMPLETE : want;
            if (rc != expect)
                fail_msg("split at %zu of %zu: %d (%s), expected %d", k, len, rc, proxyproto_strerror(rc),
                         expect);
        } else if (rc != PROXYPROTO_INCOMPLETE && rc != want) {
            fail_msg("split at %zu of %zu: %d (%s), expected %d or incomplete", k, len, rc,
                     proxyproto_strerror(rc), want);
        }
    }
    assert_int_equal(parse(p, len), want);
}

static void assert_src(const char *ip, unsigned port)
{
    char text[64];
    assert_int_equal(g_h.local, 0);
    assert_int_equal(proxyproto_source_ip(&g_h, text, sizeof text), 0);
    assert_string_equal(text, ip);
    assert_int_equal(g_h.src_port, port);
}

/* A v1 line followed by AFTER: parsed at every split, its length is the line's. */
static void v1_good(const char *line)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s" AFTER, line);
    every_split(buf, strlen(buf), (int)strlen(line));
    assert_int_equal(g_h.version, 1);
}

static void v1_bad(const char *line, int err)
{
    every_split(line, strlen(line), err);
    char buf[512];
    snprintf(buf, sizeof buf, "%s" AFTER, line);
    assert_int_equal(parse(buf, strlen(buf)), err);
}

static void test_v1_tcp4(void **state)
{
    v1_good("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    assert_src("192.0.2.1", 56324);
    assert_int_equal(g_h.v6, 0);
    assert_int_equal(g_h.dst_port, 443);
    assert_memory_equal(g_h.dst, "\xc6\x33\x64\x02", 4);
    v1_good("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
    assert_src("0.0.0.0", 0);
    assert_int_equal(g_h.dst_port, 65535);
}

static void test_v1_tcp6(void **state)
{
    v1_good("PROXY TCP6 2001:db8::1 ::1 1 8080\r\n");
    assert_src("2001:db8::1", 1);
    assert_int_equal(g_h.v6, 1);
    assert_int_equal(g_h.dst[15], 1);
    v1_good("PROXY TCP6 ::ffff:127.0.0.5 ::ffff:127.0.0.1 40000 80\r\n");
    assert_src("::ffff:127.0.0.5", 40000);
    /* the longest TCP6 line: 104 bytes */
    static const char longest[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(longest), 104);
    v1_good(longest);
    assert_src("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    /* the longest line the spec allows: UNKNOWN with the same, 107 bytes */
    static const char unknown[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(unknown), PROXYPROTO_V1_MAX);
    v1_good(unknown);
    assert_int_equal(g_h.local, 1);
}

static void test_v1_unknown(void **state)
{
    v1_good("PROXY UNKNOWN\r\n");
    assert_int_equal(g_h.local, 1);
    /* anything after UNKNOWN up to CR LF is ignored (the spec) */
    v1_good("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n");
    assert_int_equal(g_h.local, 1);
    v1_good("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n");
    assert_int_equal(g_h.local, 1);
}

static void test_v1_bad(void **state)
{
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PROXYPROTO_E_V1_SYNTAX); /* LF alone */
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", PROXYPROTO_E_V1_SYNTAX);
    v1_bad("PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", PROXYPROTO_E_V1_SYNTAX);
    v1_bad("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", PROXYPROTO_E_V1_SYNTAX);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", PROXYPROTO_E_V1_SYNTAX);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", PROXYPROTO_E_V1_SYNTAX);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PROXYPROTO_E_V1_SYNTAX);
    v1_bad("PROXY TCP4\r\n", PROXYPROTO_E_V1_SYNTAX);
    v1_bad("PROXY \r\n", PROXYPROTO_E_V1_PROTOCOL);
    v1_bad("PROXY\r\n", PROXYPROTO_E_NOT_PROXY);
    v1_bad("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", PROXYPROTO_E_V1_PROTOCOL);
    v1_bad("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", PROXYPROTO_E_V1_PROTOCOL);
    v1_bad("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXYPROTO_E_V1_PROTOCOL);
    v1_bad("PROXY UNKNOWNX\r\n", PROXYPROTO_E_V1_PROTOCOL);
    v1_bad("PROXY  UNKNOWN\r\n", PROXYPROTO_E_V1_PROTOCOL);
    v1_bad("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", PROXYPROTO_E_V1_ADDRESS);
    v1_bad("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", PROXYPROTO_E_V1_ADDRESS);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n", PROXYPROTO_E_V1_ADDRESS);
    v1_bad("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", PROXYPROTO_E_V1_ADDRESS);
    v1_bad("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", PROXYPROTO_E_V1_ADDRESS);
    v1_bad("PROXY TCP4 host 5.6.7.8 1 2\r\n", PROXYPROTO_E_V1_ADDRESS);
    v1_bad("PROXY TCP6 fe80::1%lo ::1 1 2\r\n", PROXYPROTO_E_V1_ADDRESS);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", PROXYPROTO_E_V1_PORT);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", PROXYPROTO_E_V1_PORT);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", PROXYPROTO_E_V1_PORT);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", PROXYPROTO_E_V1_PORT);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 0x50\r\n", PROXYPROTO_E_V1_PORT);
    v1_bad("PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n", PROXYPROTO_E_V1_PORT);
    /* a NUL inside the line */
    static const char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
    every_split(nul, sizeof nul - 1, PROXYPROTO_E_V1_ADDRESS);
}

static void test_v1_too_long(void **state)
{
    char line[300];
    /* 108 bytes with its CR LF: one over */
    snprintf(line, sizeof line, "PROXY UNKNOWN %092d\r\n", 0);
    assert_int_equal(strlen(line), PROXYPROTO_V1_MAX + 1);
    every_split(line, strlen(line), PROXYPROTO_E_V1_TOO_LONG);
    /* and one less is fine */
    snprintf(line, sizeof line, "PROXY UNKNOWN %091d\r\n", 0);
    v1_good(line);
    /* no line end at all */
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY ", 6);
    every_split(line, sizeof line, PROXYPROTO_E_V1_TOO_LONG);
    assert_int_equal(parse(line, PROXYPROTO_V1_MAX - 1), PROXYPROTO_INCOMPLETE);
    assert_int_equal(parse(line, PROXYPROTO_V1_MAX), PROXYPROTO_E_V1_TOO_LONG);
}

/* ---- v2 ---- */

/* A v2 header: ver_cmd, fam, then blen bytes of block; into out, followed by AFTER. Returns its length. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *block, size_t blen)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    if (blen)
        memcpy(out + 16, block, blen);
    memcpy(out + 16 + blen, AFTER, strlen(AFTER));
    return 16 + blen;
}

static uint8_t g_buf[PROXYPROTO_MAX + 512];

static void v2_good(uint8_t ver_cmd, uint8_t fam, const void *block, size_t blen)
{
    size_t n = v2(g_buf, ver_cmd, fam, block, blen);
    every_split(g_buf, n + strlen(AFTER), (int)n);
    assert_int_equal(g_h.version, 2);
}

static void v2_bad(uint8_t ver_cmd, uint8_t fam, const void *block, size_t blen, int err)
{
    size_t n = v2(g_buf, ver_cmd, fam, block, blen);
    every_split(g_buf, n, err);
    assert_int_equal(parse(g_buf, n + strlen(AFTER)), err);
}

static const uint8_t inet[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb};

static void test_v2_proxy_inet(void **state)
{
    v2_good(0x21, 0x11, inet, sizeof inet);
    assert_src("192.0.2.1", 56324);
    assert_int_equal(g_h.dst_port, 443);
    assert_memory_equal(g_h.dst, "\xc6\x33\x64\x02", 4);
    assert_int_equal(g_h.v6, 0);
}

static void test_v2_proxy_inet6(void **state)
{
    uint8_t block[36] = {0};
    inet_pton(AF_INET6, "2001:db8::7", block);
    inet_pton(AF_INET6, "::1", block + 16);
    block[32] = 0x9c, block[33] = 0x40, block[34] = 0, block[35] = 80;
    v2_good(0x21, 0x21, block, sizeof block);
    assert_src("2001:db8::7", 40000);
    assert_int_equal(g_h.v6, 1);
    assert_int_equal(g_h.dst_port, 80);
    assert_int_equal(g_h.dst[15], 1);
}

static void test_v2_tlvs(void **state)
{
    /* addresses, then TLVs: ALPN "h2", AUTHORITY, a NOOP of length 0, and a big custom one (skipped) */
    uint8_t block[12 + 5 + 3 + 11 + 3 + 1000];
    size_t n = 0;
    memcpy(block, inet, 12), n = 12;
    memcpy(block + n, "\x01\x00\x02h2", 5), n += 5;
    memcpy(block + n, "\x04\x00\x00", 3), n += 3;
    memcpy(block + n,
           "\x02\x00\x08"
           "a.b.test",
           11),
        n += 11;
    block[n++] = 0xe0, block[n++] = 1000 >> 8, block[n++] = 1000 & 0xff;
    memset(block + n, 0xaa, 1000), n += 1000;
    assert_int_equal(n, sizeof block);
    v2_good(0x21, 0x11, block, n);
    assert_src("192.0.2.1", 56324);
    /* a TLV that runs past the block; one byte or two left over */
    v2_bad(0x21, 0x11, block, 12 + 5 + 3 + 11 + 3 + 999, PROXYPROTO_E_V2_TLV);
    v2_bad(0x21, 0x11, block, 12 + 4, PROXYPROTO_E_V2_TLV);
    v2_bad(0x21, 0x11, block, 13, PROXYPROTO_E_V2_TLV);
    v2_bad(0x21, 0x11, block, 14, PROXYPROTO_E_V2_TLV);
}

static void test_v2_local_and_other_families(void **state)
{
    /* LOCAL (a health check by the balancer): the family and block are ignored */
    v2_good(0x20, 0x00, NULL, 0);
    assert_int_equal(g_h.local, 1);
    v2_good(0x20, 0x11, inet, sizeof inet);
    assert_int_equal(g_h.local, 1);
    v2_good(0x20, 0xff, "junk", 4);
    assert_int_equal(g_h.local, 1);
    /* PROXY with no family: the connection's address */
    v2_good(0x21, 0x00, NULL, 0);
    assert_int_equal(g_h.local, 1);
    /* AF_UNIX stream and datagram: 216 bytes of paths; the connection's address */
    uint8_t unix_block[216] = {0};
    memcpy(unix_block, "/run/lb.sock", 12);
    memcpy(unix_block + 108, "/run/node.sock", 14);
    v2_good(0x21, 0x31, unix_block, sizeof unix_block);
    assert_int_equal(g_h.local, 1);
    v2_good(0x21, 0x32, unix_block, sizeof unix_block);
    assert_int_equal(g_h.local, 1);
    v2_bad(0x21, 0x31, unix_block, 215, PROXYPROTO_E_V2_LENGTH);
    /* TCP over IPv4 with the transport unspecified, or UDP: no TCP client to name */
    v2_good(0x21, 0x10, inet, sizeof inet);
    assert_int_equal(g_h.local, 1);
    v2_good(0x21, 0x12, inet, sizeof inet);
    assert_int_equal(g_h.local, 1);
}

static void test_v2_bad(void **state)
{
    v2_bad(0x11, 0x11, inet, sizeof inet, PROXYPROTO_E_V2_VERSION);
    v2_bad(0x31, 0x11, inet, sizeof inet, PROXYPROTO_E_V2_VERSION);
    v2_bad(0x01, 0x11, inet, sizeof inet, PROXYPROTO_E_V2_VERSION);
    v2_bad(0x22, 0x11, inet, sizeof inet, PROXYPROTO_E_V2_COMMAND);
    v2_bad(0x2f, 0x11, inet, sizeof inet, PROXYPROTO_E_V2_COMMAND);
    v2_bad(0x21, 0x41, inet, sizeof inet, PROXYPROTO_E_V2_FAMILY);
    v2_bad(0x21, 0x13, inet, sizeof inet, PROXYPROTO_E_V2_FAMILY);
    v2_bad(0x21, 0x11, inet, 11, PROXYPROTO_E_V2_LENGTH);
    v2_bad(0x21, 0x21, inet, 12, PROXYPROTO_E_V2_LENGTH);
    v2_bad(0x21, 0x11, NULL, 0, PROXYPROTO_E_V2_LENGTH);
    /* the length field over the limit: refused from the 16 bytes alone */
    uint8_t head[16];
    memcpy(head, SIG, 12);
    head[12] = 0x21, head[13] = 0x11, head[14] = (PROXYPROTO_V2_MAX_LEN + 1) >> 8,
    head[15] = (PROXYPROTO_V2_MAX_LEN + 1) & 0xff;
    every_split(head, sizeof head, PROXYPROTO_E_V2_TOO_LONG);
    head[14] = 0xff, head[15] = 0xff;
    every_split(head, sizeof head, PROXYPROTO_E_V2_TOO_LONG);
    /* at the limit: fine (LOCAL, and PROXY with TLVs filling it) */
    static uint8_t block[PROXYPROTO_V2_MAX_LEN];
    memcpy(block, inet, 12);
    size_t vlen = PROXYPROTO_V2_MAX_LEN - 12 - 3;
    block[12] = 0xe1, block[13] = (uint8_t)(vlen >> 8), block[14] = (uint8_t)vlen;
    v2_good(0x21, 0x11, block, sizeof block);
    assert_src("192.0.2.1", 56324);
    v2_good(0x20, 0x00, block, sizeof block);
    assert_int_equal(g_h.local, 1);
    /* a signature wrong in any byte */
    for (size_t i = 0; i < 12; i++) {
        size_t n = v2(g_buf, 0x21, 0x11, inet, sizeof inet);
        g_buf[i] ^= 0x40;
        if (i == 0 && g_buf[0] == 'P')
            continue;
        every_split(g_buf, n, PROXYPROTO_E_NOT_PROXY);
        assert_int_equal(parse(g_buf, i + 1), PROXYPROTO_E_NOT_PROXY); /* said at the first wrong byte */
    }
}

/* ---- neither ---- */

static void test_garbage(void **state)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXX TCP4",
        "PROXYTCP4",
        "\r\n\r\nGET / HTTP/1.1\r\n",
        "\r\r",
        "\n",
        "\0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]) ? strlen(bad[i]) : 1;
        every_split(bad[i], n, PROXYPROTO_E_NOT_PROXY);
        assert_int_equal(proxyproto_looks_like((const uint8_t *)bad[i], n), 0);
    }
    assert_int_equal(parse("", 0), PROXYPROTO_INCOMPLETE);
    /* every error has its own text */
    for (int rc = PROXYPROTO_E_V2_TLV; rc <= 1; rc++)
        for (int other = PROXYPROTO_E_V2_TLV; other < rc; other++)
            assert_string_not_equal(proxyproto_strerror(rc), proxyproto_strerror(other));
    assert_string_equal(proxyproto_strerror(-100), "unknown PROXY protocol error");
}

static void test_looks_like(void **state)
{
    assert_int_equal(proxyproto_looks_like((const uint8_t *)"PROXY TCP4 1.2.3.4", 18), 1);
    assert_int_equal(proxyproto_looks_like((const uint8_t *)"PRO", 3), 1);
    assert_int_equal(proxyproto_looks_like((const uint8_t *)SIG "\x21", 13), 1);
    assert_int_equal(proxyproto_looks_like((const uint8_t *)SIG, 5), 1);
    assert_int_equal(proxyproto_looks_like((const uint8_t *)"POST / HTTP/1.1", 15), 0);
    assert_int_equal(proxyproto_looks_like((const uint8_t *)"\r\n\r\nGET", 7), 0);
    assert_int_equal(proxyproto_looks_like((const uint8_t *)"", 0), 0);
    char small[8];
    v1_good("PROXY TCP6 2001:db8::1 ::1 1 8080\r\n");
    assert_int_equal(proxyproto_source_ip(&g_h, small, sizeof small), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_bad),
        cmocka_unit_test(test_v1_too_long),
        cmocka_unit_test(test_v2_proxy_inet),
        cmocka_unit_test(test_v2_proxy_inet6),
        cmocka_unit_test(test_v2_tlvs),
        cmocka_unit_test(test_v2_local_and_other_families),
        cmocka_unit_test(test_v2_bad),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_looks_like),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
