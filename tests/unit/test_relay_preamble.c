/* node/relay.c: the preamble line of a relayed stream, formatted and parsed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/relay.h"

static int parse(const char *s, char ip[RELAY_MAX_IP], int *tls)
{
    return relay_parse_preamble(s, strlen(s), ip, tls);
}

static void test_good_lines(void **state)
{
    char ip[RELAY_MAX_IP];
    int tls = -1;
    assert_int_equal(parse("WHT-RELAY 1 127.0.0.1 0\r\n", ip, &tls), 0);
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(tls, 0);
    assert_int_equal(parse("WHT-RELAY 1 2001:db8::1 1\n", ip, &tls), 0);
    assert_string_equal(ip, "2001:db8::1");
    assert_int_equal(tls, 1);
    assert_int_equal(parse("WHT-RELAY 1 ::ffff:10.0.0.1 1", ip, &tls), 0); /* no line end */
    assert_string_equal(ip, "::ffff:10.0.0.1");
}

static void test_bad_lines(void **state)
{
    static const char *bad[] = {
        "",
        "\r\n",
        "WHT-RELAY 1 \r\n",
        "WHT-RELAY 1 1.2.3.4\r\n",        /* no tls */
        "WHT-RELAY 1 1.2.3.4 2\r\n",      /* tls not 0/1 */
        "WHT-RELAY 1 1.2.3.4 10\r\n",     /* tls too long */
        "WHT-RELAY 1 1.2.3.4  1\r\n",     /* two spaces */
        "WHT-RELAY 1  1.2.3.4 1\r\n",     /* empty ip */
        "WHT-RELAY 2 1.2.3.4 1\r\n",      /* version */
        "wht-relay 1 1.2.3.4 1\r\n",      /* case */
        "WHT-RELAY 1 1.2.3.4 1\r\r\n",    /* CR inside */
        "WHT-RELAY 1 host.example 1\r\n", /* not an address */
        "WHT-RELAY 1 1.2.3.4\t1\r\n",     /* tab */
        "WHT-RELAY 1 unknown 0\r\n",      /* the node always knows the address */
        "GET / HTTP/1.1\r\n",             /* a request without the preamble */
        "WHT-RELAY 1 1.2.3.4 1 extra\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char ip[RELAY_MAX_IP];
        int tls;
        if (parse(bad[i], ip, &tls) != -1)
            fail_msg("accepted: %s", bad[i]);
    }
    /* a NUL inside the address */
    char ip[RELAY_MAX_IP];
    int tls;
    static const char nul[] = "WHT-RELAY 1 1.2\0.4 1\r\n";
    assert_int_equal(relay_parse_preamble(nul, sizeof nul - 1, ip, &tls), -1);
    /* the longest address fits, one more does not */
    char line[200], addr[RELAY_MAX_IP + 1];
    memset(addr, '1', sizeof addr);
    addr[RELAY_MAX_IP - 1] = 0;
    snprintf(line, sizeof line, "WHT-RELAY 1 %s 0\r\n", addr);
    assert_int_equal(parse(line, ip, &tls), 0);
    addr[RELAY_MAX_IP - 1] = '1';
    addr[RELAY_MAX_IP] = 0;
    snprintf(line, sizeof line, "WHT-RELAY 1 %s 0\r\n", addr);
    assert_int_equal(parse(line, ip, &tls), -1);
}

static void test_format_round_trip(void **state)
{
    char out[RELAY_PREAMBLE_MAX], ip[RELAY_MAX_IP];
    int tls;
    int n = relay_format_preamble(out, sizeof out, "10.1.2.3", 1);
    assert_int_equal(n, (int)strlen("WHT-RELAY 1 10.1.2.3 1\r\n"));
    assert_string_equal(out, "WHT-RELAY 1 10.1.2.3 1\r\n");
    assert_int_equal(relay_parse_preamble(out, (size_t)n, ip, &tls), 0);
    assert_string_equal(ip, "10.1.2.3");
    assert_int_equal(tls, 1);
    assert_int_equal(relay_format_preamble(out, sizeof out, "", 0), -1);
    assert_int_equal(relay_format_preamble(out, sizeof out, "unknown", 0), -1);
    assert_int_equal(relay_format_preamble(out, sizeof out, "1.2.3.4\r\nX", 0), -1);
    assert_int_equal(relay_format_preamble(out, 10, "1.2.3.4", 0), -1); /* too small */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_lines),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
