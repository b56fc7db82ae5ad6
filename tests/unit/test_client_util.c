/* whclient's pure helpers: server URLs, ids (util_valid_worker_id, as main.c checks them), tokens,
 * ports, reconnect backoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client/util.c"

static void test_urls(void **state)
{
    struct client_url u;
    const char *why;
    assert_int_equal(client_url_parse("ws://127.0.0.1:8080", &u, &why), 0);
    assert_int_equal(u.tls, 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.authority, "127.0.0.1:8080");
    assert_string_equal(u.path, "/");
    assert_int_equal(client_url_parse("wss://tunnel.example.com/base?x=1", &u, &why), 0);
    assert_int_equal(u.tls, 1);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.authority, "tunnel.example.com");
    assert_string_equal(u.path, "/base?x=1");
    assert_int_equal(client_url_parse("https://h", &u, &why), 0);
    assert_int_equal(u.tls, 1);
    assert_int_equal(client_url_parse("http://[::1]:9000/", &u, &why), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9000);
    const char *bad[] = {"", "ftp://h", "ws://", "ws://h:0", "ws://h:65536", "ws://h:12a", "ws://u@h",
                         "ws://h/#frag", "127.0.0.1:8080", "ws://[::1", "ws://h:"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why = NULL;
        assert_int_equal(client_url_parse(bad[i], &u, &why), -1);
        assert_non_null(why);
    }
}

static void test_ids_tokens_ports(void **state)
{
    assert_true(util_valid_worker_id("A-z_0~9.%41", strlen("A-z_0~9.%41")));
    assert_false(util_valid_worker_id("", strlen("")));
    assert_false(util_valid_worker_id("a b", strlen("a b")));
    assert_false(util_valid_worker_id("a/b", strlen("a/b")));
    char long_id[300];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    assert_false(util_valid_worker_id(long_id, strlen(long_id)));
    assert_true(client_token_valid("abc.DEF-_9", 10));
    assert_false(client_token_valid("abc def", 7));
    assert_false(client_token_valid("", 0));
    assert_int_equal(client_port_parse("1"), 1);
    assert_int_equal(client_port_parse("65535"), 65535);
    assert_int_equal(client_port_parse("0"), -1);
    assert_int_equal(client_port_parse("65536"), -1);
    assert_int_equal(client_port_parse("-1"), -1);
    assert_int_equal(client_port_parse("80x"), -1);
    assert_int_equal(client_port_parse(""), -1);
}

static void test_backoff(void **state)
{
    /* full jitter: random(0, min(60 s, 0.5 s x 1.5^n)) */
    assert_int_equal(client_backoff_ms(0, 1.0), 500);
    assert_int_equal(client_backoff_ms(0, 0.0), 0);
    assert_int_equal(client_backoff_ms(1, 1.0), 750);
    assert_int_equal(client_backoff_ms(2, 1.0), 1125);
    assert_int_equal(client_backoff_ms(2, 0.5), 563); /* rounded */
    assert_int_equal(client_backoff_ms(30, 1.0), 60000);
    assert_int_equal(client_backoff_ms(1000, 1.0), 60000);
    for (unsigned n = 0; n < 64; n++)
        assert_true(client_backoff_ms(n, 0.999) <= 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_ids_tokens_ports),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
