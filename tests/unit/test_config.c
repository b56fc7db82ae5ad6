/* config: the settings table, its parsers, --help, the dump and validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "node/config.h"

/* Every setting: variable and flag, as documented in config.h. */
static const char *const ALL_ENV[] = {
    "PORT",
    "WHT_LISTEN_ADDR",
    "URL_PREFIX",
    "WHT_DOMAIN",
    "TASKCLUSTER_PROXY_SECRET_A",
    "TASKCLUSTER_PROXY_SECRET_B",
    "AUDIENCE",
    "TLS_KEY",
    "TLS_CERTIFICATE",
    "ENV",
    "WHT_LOG_LEVEL",
    "WHT_MAX_HEADER_BYTES",
    "WHT_HEADER_TIMEOUT",
    "WHT_IDLE_TIMEOUT",
    "WHT_MAX_STREAMS_PER_WORKER",
    "WHT_QUEUE_TIMEOUT",
    "WHT_STREAM_WINDOW",
    "WHT_SESSION_BUFFER",
    "WHT_PING_INTERVAL",
    "WHT_MAX_CONNECTIONS",
    "REDIS_URL",
    "WHT_NODE_ID",
    "WHT_PEER_ADDR",
    "WHT_PEER_ADVERTISE",
    "WHT_CLUSTER_SECRET",
    "WHT_REDIS_PREFIX",
    "WHT_PROXY_PROTOCOL",
    "WHT_TRUSTED_PROXIES",
    "WHT_REDIS_SENTINELS",
    "WHT_REDIS_MASTER",
};
static const char *const ALL_FLAGS[] = {
    "--port",
    "--listen",
    "--url-prefix",
    "--domain",
    "--secret-a",
    "--secret-b",
    "--audience",
    "--tls-key",
    "--tls-certificate",
    "--env",
    "--log-level",
    "--max-header-bytes",
    "--header-timeout",
    "--idle-timeout",
    "--max-streams-per-worker",
    "--queue-timeout",
    "--stream-window",
    "--session-buffer",
    "--ping-interval",
    "--max-connections",
    "--redis-url",
    "--node-id",
    "--peer-addr",
    "--peer-advertise",
    "--cluster-secret",
    "--redis-prefix",
    "--proxy-protocol",
    "--trusted-proxies",
    "--redis-sentinels",
    "--redis-master",
};
#define NSET (sizeof(ALL_ENV) / sizeof(ALL_ENV[0]))

static char err[512];

static int argc_of(char **argv)
{
    int n = 0;
    while (argv && argv[n])
        n++;
    return n;
}

/* Loads env and argv (NULL-terminated; argv[0] is the program) into a fresh config. */
static int load(struct config *c, char **env, char **argv)
{
    config_defaults(c);
    memset(err, 0, sizeof(err));
    return config_load(c, env, argc_of(argv), argv, err, sizeof(err));
}

/* Not inlined: gcc 12 then takes the returned text for the local `buf`
 * itself (whose address open_memstream() keeps) and warns of a dangling
 * pointer at every use (-Wdangling-pointer, a false positive). */
__attribute__((noinline)) static char *capture_help(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_print_help(f, "whtunnel");
    fclose(f);
    return buf;
}

static char *capture_dump(const struct config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_dump(c, f);
    fclose(f);
    return buf;
}

/* ---- defaults and sources -------------------------------------------------------------- */

static void test_defaults(void **state)
{
    struct config c;
    config_defaults(&c);
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.listen_addr, "0.0.0.0");
    assert_string_equal(c.url_prefix, "");
    assert_string_equal(c.domain, "");
    assert_string_equal(c.secret_a, "");
    assert_string_equal(c.secret_b, "");
    assert_false(c.secret_generated);
    assert_string_equal(c.audience, "");
    assert_string_equal(c.tls_key, "");
    assert_string_equal(c.tls_certificate, "");
    assert_string_equal(c.env, "development");
    assert_string_equal(c.log_level, "info");
    assert_int_equal(c.max_header_bytes, 16 * 1024);
    assert_int_equal(c.header_timeout_ms, 10000);
    assert_int_equal(c.idle_timeout_ms, 120000);
    assert_int_equal(c.max_streams_per_worker, 128);
    assert_int_equal(c.queue_timeout_ms, 5000);
    assert_int_equal(c.accept_timeout_ms, 30000);
    assert_int_equal(c.response_timeout_ms, 60000);
    assert_int_equal(c.stream_idle_timeout_ms, 600000);
    assert_int_equal(c.stream_idle_timeout_upgraded_ms, 3600000);
    assert_int_equal(c.stream_window, 256 * 1024);
    assert_int_equal(c.session_buffer, 8 * 1024 * 1024);
    assert_int_equal(c.ping_interval_ms, 20000);
    assert_int_equal(c.max_connections, 10000);
    assert_string_equal(c.redis_url, "");
    assert_string_equal(c.node_id, "");
    assert_string_equal(c.peer_addr, "");
    assert_string_equal(c.peer_advertise, "");
    assert_string_equal(c.cluster_secret, "");
    assert_string_equal(c.redis_prefix, "wht:");
    /* defaults are valid; development without secrets asks for a generated one */
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
    assert_false(config_is_production(&c));
    assert_true(config_needs_generated_secret(&c));
    /* no arguments, no environment: still the defaults */
    char *argv[] = {"whtunnel", NULL};
    config_free(&c);
    assert_int_equal(load(&c, NULL, argv), 0);
    assert_int_equal(c.port, 8080);
    assert_string_equal(err, "");
    config_free(&c);
    assert_int_equal(load(&c, NULL, NULL), 0);
    config_free(&c);
}

static void test_env_only(void **state)
{
    char *env[] = {"HOME=/root",
                   "PORT=9000",
                   "WHT_LISTEN_ADDR=127.0.0.1",
                   "URL_PREFIX=https://tunnel.example.com",
                   "WHT_DOMAIN=tunnel.example.com",
                   "TASKCLUSTER_PROXY_SECRET_A=sa",
                   "TASKCLUSTER_PROXY_SECRET_B=sb",
                   "AUDIENCE=taskcluster",
                   "TLS_KEY=/k.pem",
                   "TLS_CERTIFICATE=/c.pem",
                   "ENV=production",
                   "WHT_LOG_LEVEL=debug",
                   "WHT_MAX_HEADER_BYTES=32k",
                   "WHT_HEADER_TIMEOUT=1500ms",
                   "WHT_IDLE_TIMEOUT=2m",
                   "WHT_MAX_STREAMS_PER_WORKER=190",
                   "WHT_QUEUE_TIMEOUT=0",
                   "WHT_ACCEPT_TIMEOUT=1500ms",
                   "WHT_RESPONSE_TIMEOUT=0",
                   "WHT_STREAM_IDLE_TIMEOUT=1h",
                   "WHT_STREAM_IDLE_TIMEOUT_UPGRADED=0",
                   "WHT_STREAM_WINDOW=1m",
                   "WHT_SESSION_BUFFER=1g",
                   "WHT_PING_INTERVAL=5m",
                   "WHT_MAX_CONNECTIONS=1000000",
                   "REDIS_URL=redis://:pw@redis:6379/2",
                   "WHT_NODE_ID=node-1",
                   "WHT_PEER_ADDR=0.0.0.0:7000",
                   "WHT_PEER_ADVERTISE=[fd00::1]:7000",
                   "WHT_CLUSTER_SECRET=0123456789abcdef",
                   "WHT_REDIS_PREFIX={wht}:",
                   "PORTX=1",
                   "XPORT=2",
                   "NOEQUALS",
                   NULL};
    char *argv[] = {"whtunnel", NULL};
    struct config c;
    assert_int_equal(load(&c, env, argv), 0);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.listen_addr, "127.0.0.1");
    assert_string_equal(c.url_prefix, "https://tunnel.example.com");
    assert_string_equal(c.domain, "tunnel.example.com");
    assert_string_equal(c.secret_a, "sa");
    assert_string_equal(c.secret_b, "sb");
    assert_string_equal(c.audience, "taskcluster");
    assert_string_equal(c.tls_key, "/k.pem");
    assert_string_equal(c.tls_certificate, "/c.pem");
    assert_string_equal(c.env, "production");
    assert_true(config_is_production(&c));
    assert_string_equal(c.log_level, "debug");
    assert_int_equal(c.max_header_bytes, 32768);
    assert_int_equal(c.header_timeout_ms, 1500);
    assert_int_equal(c.idle_timeout_ms, 120000);
    assert_int_equal(c.max_streams_per_worker, 190);
    assert_int_equal(c.queue_timeout_ms, 0);
    assert_int_equal(c.accept_timeout_ms, 1500);
    assert_int_equal(c.response_timeout_ms, 0);
    assert_int_equal(c.stream_idle_timeout_ms, 3600000);
    assert_int_equal(c.stream_idle_timeout_upgraded_ms, 0);
    assert_int_equal(c.stream_window, 1 << 20);
    assert_int_equal(c.session_buffer, 1 << 30);
    assert_int_equal(c.ping_interval_ms, 300000);
    assert_int_equal(c.max_connections, 1000000);
    assert_string_equal(c.redis_url, "redis://:pw@redis:6379/2");
    assert_string_equal(c.node_id, "node-1");
    assert_string_equal(c.peer_addr, "0.0.0.0:7000");
    assert_string_equal(c.peer_advertise, "[fd00::1]:7000");
    assert_string_equal(c.cluster_secret, "0123456789abcdef");
    assert_string_equal(c.redis_prefix, "{wht}:");
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
    assert_false(config_needs_generated_secret(&c));
    config_free(&c);
}

static void test_env_empty_is_unset(void **state)
{
    char *env[] = {"PORT=", "WHT_LISTEN_ADDR=", "ENV=", "WHT_HEADER_TIMEOUT=", NULL};
    struct config c;
    assert_int_equal(load(&c, env, NULL), 0);
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.listen_addr, "0.0.0.0");
    assert_string_equal(c.env, "development");
    assert_int_equal(c.header_timeout_ms, 10000);
    config_free(&c);
    /* the first of duplicated variables counts, as getenv() */
    char *env2[] = {"PORT=1", "PORT=2", NULL};
    assert_int_equal(load(&c, env2, NULL), 0);
    assert_int_equal(c.port, 1);
    config_free(&c);
}

static void test_flag_overrides_env(void **state)
{
    char *env[] = {"PORT=9000", "WHT_LOG_LEVEL=debug", "TASKCLUSTER_PROXY_SECRET_A=from-env", NULL};
    char *argv[] = {"whtunnel", "--port", "9001", "--secret-a=from-flag", NULL};
    struct config c;
    assert_int_equal(load(&c, env, argv), 0);
    assert_int_equal(c.port, 9001);
    assert_string_equal(c.log_level, "debug"); /* untouched by flags */
    assert_string_equal(c.secret_a, "from-flag");
    config_free(&c);
    /* repeated flags: the last wins */
    char *argv2[] = {"whtunnel", "--port=1", "--port", "2", "--port=3", NULL};
    assert_int_equal(load(&c, env, argv2), 0);
    assert_int_equal(c.port, 3);
    config_free(&c);
    /* a flag may set a string back to "" */
    char *env3[] = {"WHT_DOMAIN=example.com", NULL};
    char *argv3[] = {"whtunnel", "--domain=", NULL};
    assert_int_equal(load(&c, env3, argv3), 0);
    assert_string_equal(c.domain, "");
    config_free(&c);
}

static void test_flag_forms(void **state)
{
    char *a1[] = {"whtunnel",
                  "--listen",
                  "::1",
                  "--url-prefix",
                  "http://localhost:8080",
                  "--domain=a.b",
                  "--audience",
                  "aud",
                  "--tls-key",
                  "k",
                  "--tls-certificate=c",
                  "--env",
                  "staging",
                  "--log-level=warn",
                  "--max-header-bytes",
                  "1m",
                  "--header-timeout=100ms",
                  "--idle-timeout",
                  "1d",
                  "--max-streams-per-worker=1",
                  "--queue-timeout",
                  "10m",
                  "--stream-window=4k",
                  "--session-buffer",
                  "64k",
                  "--ping-interval=1s",
                  "--max-connections",
                  "1",
                  "--redis-url=redis://r",
                  "--node-id",
                  "n_1.x-y",
                  "--peer-addr=p:1",
                  "--peer-advertise",
                  "q:65535",
                  "--cluster-secret=0123456789abcdef",
                  "--redis-prefix",
                  "p:",
                  "--secret-b",
                  "b",
                  NULL};
    struct config c;
    assert_int_equal(load(&c, NULL, a1), 0);
    assert_string_equal(c.listen_addr, "::1");
    assert_string_equal(c.url_prefix, "http://localhost:8080");
    assert_string_equal(c.domain, "a.b");
    assert_string_equal(c.audience, "aud");
    assert_string_equal(c.tls_key, "k");
    assert_string_equal(c.tls_certificate, "c");
    assert_string_equal(c.env, "staging");
    assert_false(config_is_production(&c));
    assert_string_equal(c.log_level, "warn");
    assert_int_equal(c.max_header_bytes, 1 << 20);
    assert_int_equal(c.header_timeout_ms, 100);
    assert_int_equal(c.idle_timeout_ms, 86400000);
    assert_int_equal(c.max_streams_per_worker, 1);
    assert_int_equal(c.queue_timeout_ms, 600000);
    assert_int_equal(c.stream_window, 4096);
    assert_int_equal(c.session_buffer, 65536);
    assert_int_equal(c.ping_interval_ms, 1000);
    assert_int_equal(c.max_connections, 1);
    assert_string_equal(c.redis_url, "redis://r");
    assert_string_equal(c.node_id, "n_1.x-y");
    assert_string_equal(c.peer_addr, "p:1");
    assert_string_equal(c.peer_advertise, "q:65535");
    assert_string_equal(c.cluster_secret, "0123456789abcdef");
    assert_string_equal(c.redis_prefix, "p:");
    assert_string_equal(c.secret_b, "b");
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
    config_free(&c);
    /* a value may contain '=' and, with the = form, start with -- */
    char *a2[] = {"whtunnel", "--secret-a=a=b", "--audience=--x", "--port", "-0", NULL};
    assert_int_equal(load(&c, NULL, a2), 0);
    assert_string_equal(c.secret_a, "a=b");
    assert_string_equal(c.audience, "--x");
    assert_int_equal(c.port, 0);
    config_free(&c);
    /* a separate value may start with a single dash */
    char *a3[] = {"whtunnel", "--audience", "-x", NULL};
    assert_int_equal(load(&c, NULL, a3), 0);
    assert_string_equal(c.audience, "-x");
    config_free(&c);
}

/* ---- bad values ------------------------------------------------------------------------ */

struct bad_case {
    const char *flag, *value;
};

static void test_bad_values(void **state)
{
    static const struct bad_case cases[] = {
        /* int */
        {"--port", "abc"},
        {"--port", "80x"},
        {"--port", ""},
        {"--port", "-1"},
        {"--port", "65536"},
        {"--port", "0x50"},
        {"--port", " 80"},
        {"--port", "80 "},
        {"--port", "+80"},
        {"--port", "1e3"},
        {"--port", "99999999999999999999999"},
        {"--port", "-"},
        {"--max-streams-per-worker", "0"},
        {"--max-streams-per-worker", "191"},
        {"--max-streams-per-worker", "200"},
        {"--max-connections", "0"},
        {"--max-connections", "1000001"},
        /* size */
        {"--max-header-bytes", "1023"},
        {"--max-header-bytes", "1025k"},
        {"--max-header-bytes", "2m"},
        {"--max-header-bytes", "16kb"},
        {"--max-header-bytes", "k"},
        {"--max-header-bytes", "-1k"},
        {"--max-header-bytes", "1.5k"},
        {"--max-header-bytes", "16 k"},
        {"--max-header-bytes", ""},
        {"--stream-window", "4095"},
        {"--stream-window", "17m"},
        {"--session-buffer", "63k"},
        {"--session-buffer", "2g"},
        {"--session-buffer", "99999999999999999999g"},
        {"--session-buffer", "1t"},
        /* duration */
        {"--header-timeout", "10"},
        {"--header-timeout", "99ms"},
        {"--header-timeout", "11m"},
        {"--header-timeout", "1h30m"},
        {"--header-timeout", "5S"},
        {"--header-timeout", "s"},
        {"--header-timeout", "1.5s"},
        {"--header-timeout", "-5s"},
        {"--header-timeout", "5s "},
        {"--header-timeout", "5sec"},
        {"--header-timeout", "5ms5"},
        {"--header-timeout", ""},
        {"--header-timeout", "0"},
        {"--idle-timeout", "999ms"},
        {"--idle-timeout", "2d"},
        {"--queue-timeout", "10m1ms"},
        {"--accept-timeout", "0"},
        {"--accept-timeout", "99ms"},
        {"--accept-timeout", "10m1ms"},
        {"--response-timeout", "1d1ms"},
        {"--stream-idle-timeout", "25h"},
        {"--stream-idle-timeout-upgraded", "-1s"},
        {"--ping-interval", "0"},
        {"--ping-interval", "9999999999999999999d"},
        /* choice */
        {"--log-level", "INFO"},
        {"--log-level", "verbose"},
        {"--log-level", ""},
        {"--log-level", "info "},
        /* string */
        {"--listen", "a\nb"},
        {"--url-prefix", "http://x\r\n"},
        {"--domain", "a\tb"},
        {"--env", "\x7f"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        char *argv[] = {"whtunnel", (char *)cases[i].flag, (char *)cases[i].value, NULL};
        int rc = load(&c, NULL, argv);
        if (rc != CONFIG_E_VALUE)
            fail_msg("%s '%s': got %d, want %d", cases[i].flag, cases[i].value, rc, CONFIG_E_VALUE);
        /* the message names the flag and says what is expected */
        if (!strstr(err, cases[i].flag) || !strstr(err, "expected"))
            fail_msg("%s '%s': message \"%s\"", cases[i].flag, cases[i].value, err);
        config_free(&c);
    }
}

static void test_bounds_accepted(void **state)
{
    static const struct bad_case cases[] = {
        {"--port", "0"},
        {"--port", "65535"},
        {"--max-streams-per-worker", "190"},
        {"--max-header-bytes", "1k"},
        {"--max-header-bytes", "1024"},
        {"--max-header-bytes", "1M"},
        {"--max-header-bytes", "1048576"},
        {"--stream-window", "16m"},
        {"--session-buffer", "1G"},
        {"--header-timeout", "100ms"},
        {"--header-timeout", "10m"},
        {"--header-timeout", "1m1ms"},
        {"--header-timeout", "9m59s999ms"},
        {"--idle-timeout", "1s"},
        {"--idle-timeout", "24h"},
        {"--queue-timeout", "0"},
        {"--queue-timeout", "0s"},
        {"--queue-timeout", "0ms"},
        {"--accept-timeout", "100ms"},
        {"--accept-timeout", "10m"},
        {"--response-timeout", "0"},
        {"--response-timeout", "1d"},
        {"--stream-idle-timeout", "0"},
        {"--stream-idle-timeout-upgraded", "24h"},
        {"--ping-interval", "10m"},
        {"--log-level", "error"},
        {"--log-level", "debug"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        char *argv[] = {"whtunnel", (char *)cases[i].flag, (char *)cases[i].value, NULL};
        int rc = load(&c, NULL, argv);
        if (rc != 0)
            fail_msg("%s '%s': got %d (%s)", cases[i].flag, cases[i].value, rc, err);
        config_free(&c);
    }
}

static void test_error_messages(void **state)
{
    struct config c;
    char *argv[] = {"whtunnel", "--port", "http", NULL};
    assert_int_equal(load(&c, NULL, argv), CONFIG_E_VALUE);
    assert_string_equal(err,
                        "invalid value \"http\" for port (PORT, --port) given by --port: expected an integer "
                        "from 0 to 65535");
    config_free(&c);
    char *env[] = {"WHT_HEADER_TIMEOUT=10", NULL};
    assert_int_equal(load(&c, env, NULL), CONFIG_E_VALUE);
    assert_string_equal(
        err, "invalid value \"10\" for header-timeout (WHT_HEADER_TIMEOUT, --header-timeout) given "
             "by environment variable WHT_HEADER_TIMEOUT: expected a duration from 100ms to 10m "
             "(with ms, s, m, h or d, as in 30s or 1h30m)");
    config_free(&c);
    char *env2[] = {"WHT_STREAM_WINDOW=1g", NULL};
    assert_int_equal(load(&c, env2, NULL), CONFIG_E_VALUE);
    assert_non_null(strstr(err, "expected a size from 4k to 16m"));
    config_free(&c);
    char *env3[] = {"WHT_LOG_LEVEL=loud", NULL};
    assert_int_equal(load(&c, env3, NULL), CONFIG_E_VALUE);
    assert_non_null(strstr(err, "expected one of error, warn, info, debug"));
    config_free(&c);
    /* a bad environment variable is an error even when a flag would override it */
    char *env4[] = {"PORT=x", NULL};
    char *argv4[] = {"whtunnel", "--port", "1", NULL};
    assert_int_equal(load(&c, env4, argv4), CONFIG_E_VALUE);
    assert_non_null(strstr(err, "environment variable PORT"));
    config_free(&c);
    /* control characters are not echoed raw, long values are cut */
    char *argv5[] = {"whtunnel", "--listen", "a\nb", NULL};
    assert_int_equal(load(&c, NULL, argv5), CONFIG_E_VALUE);
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, "\"a?b\""));
    config_free(&c);
    char longv[200];
    memset(longv, '9', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    char *argv6[] = {"whtunnel", "--port", longv, NULL};
    assert_int_equal(load(&c, NULL, argv6), CONFIG_E_VALUE);
    assert_true(strlen(err) < 200);
    assert_non_null(strstr(err, "...\""));
    config_free(&c);
    /* err may be NULL */
    config_defaults(&c);
    assert_int_equal(config_load(&c, NULL, 3, argv, NULL, 0), CONFIG_E_VALUE);
    config_free(&c);
}

static void test_string_limits(void **state)
{
    struct config c;
    char *big = malloc(CONFIG_MAX_STRING + 2);
    memset(big, 's', CONFIG_MAX_STRING + 1);
    big[CONFIG_MAX_STRING] = '\0';
    char *argv[] = {"whtunnel", "--secret-a", big, "--audience", big, NULL};
    assert_int_equal(load(&c, NULL, argv), 0);
    assert_int_equal(strlen(c.secret_a), CONFIG_MAX_STRING);
    config_free(&c);
    big[CONFIG_MAX_STRING] = 's';
    big[CONFIG_MAX_STRING + 1] = '\0';
    assert_int_equal(load(&c, NULL, argv), CONFIG_E_VALUE);
    /* the secret's value is never in the message */
    assert_non_null(strstr(err, "--secret-a"));
    assert_non_null(strstr(err, "TASKCLUSTER_PROXY_SECRET_A"));
    assert_null(strstr(err, "sss"));
    config_free(&c);
    /* secrets may hold any byte but NUL, control characters included */
    char *argv2[] = {"whtunnel", "--secret-b", "a\tb\nc", NULL};
    assert_int_equal(load(&c, NULL, argv2), 0);
    assert_string_equal(c.secret_b, "a\tb\nc");
    config_free(&c);
    free(big);
}

/* ---- argv errors ----------------------------------------------------------------------- */

static void test_unknown_and_stray(void **state)
{
    struct config c;
    char *a1[] = {"whtunnel", "--prot", "80", NULL};
    assert_int_equal(load(&c, NULL, a1), CONFIG_E_UNKNOWN);
    assert_string_equal(err, "unknown option \"--prot\" (see --help)");
    config_free(&c);
    /* the value after = of an unknown option is not echoed (it may be a secret) */
    char *a2[] = {"whtunnel", "--secret-aa=hunter2", NULL};
    assert_int_equal(load(&c, NULL, a2), CONFIG_E_UNKNOWN);
    assert_non_null(strstr(err, "\"--secret-aa\""));
    assert_null(strstr(err, "hunter2"));
    config_free(&c);
    char *a3[] = {"whtunnel", "-p", "80", NULL};
    assert_int_equal(load(&c, NULL, a3), CONFIG_E_UNKNOWN);
    assert_non_null(strstr(err, "\"-p\""));
    config_free(&c);
    char *a4[] = {"whtunnel", "--PORT=80", NULL};
    assert_int_equal(load(&c, NULL, a4), CONFIG_E_UNKNOWN);
    config_free(&c);
    /* stray arguments are refused and not echoed */
    char *a5[] = {"whtunnel", "--port", "80", "hunter2", NULL};
    assert_int_equal(load(&c, NULL, a5), CONFIG_E_ARGUMENT);
    assert_null(strstr(err, "hunter2"));
    assert_non_null(strstr(err, "argument 3"));
    config_free(&c);
    char *a6[] = {"whtunnel", "--", NULL};
    assert_int_equal(load(&c, NULL, a6), CONFIG_E_ARGUMENT);
    config_free(&c);
    char *a7[] = {"whtunnel", "-", NULL};
    assert_int_equal(load(&c, NULL, a7), CONFIG_E_ARGUMENT);
    config_free(&c);
    char *a8[] = {"whtunnel", "", NULL};
    assert_int_equal(load(&c, NULL, a8), CONFIG_E_ARGUMENT);
    config_free(&c);
    /* the environment is not argv: unknown variables are ignored */
    char *env[] = {"WHT_NO_SUCH=1", NULL};
    assert_int_equal(load(&c, env, NULL), 0);
    config_free(&c);
}

static void test_missing_value(void **state)
{
    struct config c;
    char *a1[] = {"whtunnel", "--port", NULL};
    assert_int_equal(load(&c, NULL, a1), CONFIG_E_MISSING_VALUE);
    assert_non_null(strstr(err, "--port needs a value"));
    assert_non_null(strstr(err, "PORT"));
    config_free(&c);
    char *a2[] = {"whtunnel", "--url-prefix", "--domain", "x", NULL};
    assert_int_equal(load(&c, NULL, a2), CONFIG_E_MISSING_VALUE);
    assert_non_null(strstr(err, "--url-prefix needs a value"));
    config_free(&c);
    char *a3[] = {"whtunnel", "--secret-a", NULL};
    assert_int_equal(load(&c, NULL, a3), CONFIG_E_MISSING_VALUE);
    config_free(&c);
    /* with = the value may be empty; for an int that is a bad value */
    char *a4[] = {"whtunnel", "--port=", NULL};
    assert_int_equal(load(&c, NULL, a4), CONFIG_E_VALUE);
    config_free(&c);
}

static void test_help(void **state)
{
    struct config c;
    char *a1[] = {"whtunnel", "--help", NULL};
    char *a2[] = {"whtunnel", "--port", "1", "-h", "--bogus", NULL};
    char *a3[] = {"whtunnel", "--bogus", "--help", NULL};
    assert_int_equal(load(&c, NULL, a1), CONFIG_HELP);
    config_free(&c);
    assert_int_equal(load(&c, NULL, a2), CONFIG_HELP); /* met before the bad option */
    config_free(&c);
    assert_int_equal(load(&c, NULL, a3), CONFIG_E_UNKNOWN);
    config_free(&c);

    char *help = capture_help();
    assert_non_null(strstr(help, "Usage: whtunnel [options]"));
    for (size_t i = 0; i < NSET; i++) {
        char want[64];
        snprintf(want, sizeof(want), "[%s]", ALL_ENV[i]);
        if (!strstr(help, want))
            fail_msg("help lacks %s", want);
        snprintf(want, sizeof(want), "  %s <", ALL_FLAGS[i]);
        if (!strstr(help, want))
            fail_msg("help lacks %s", ALL_FLAGS[i]);
    }
    /* groups, in order */
    const char *groups[] = {"\nListener:\n", "\nTokens:\n", "\nTLS:\n",    "\nRouting:\n",
                            "\nLimits:\n",   "\nCluster",   "\nLogging:\n"};
    const char *prev = help;
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        const char *at = strstr(help, groups[i]);
        if (!at || at < prev)
            fail_msg("group %s missing or out of order", groups[i]);
        prev = at;
    }
    /* secrets say so, and have no default */
    assert_non_null(strstr(
        help, "[TASKCLUSTER_PROXY_SECRET_A_FILE]\n      Secret that signs worker tokens (HS256). Tried "
              "first.\n      (secret; the _FILE"));
    assert_non_null(strstr(help, "[WHT_CLUSTER_SECRET]\n"));
    assert_non_null(strstr(strstr(help, "[WHT_CLUSTER_SECRET]\n"), "      (secret; "));
    assert_non_null(strstr(help, "\n      (1..190, default 128)\n"));
    assert_non_null(strstr(help, "\n      (1k..1m, default 16k)\n"));
    assert_non_null(strstr(help, "\n      (100ms..10m, default 10s)\n"));
    assert_non_null(strstr(help, "\n      (default info)\n"));
    /* lines fit in 79 columns unless one word is longer */
    for (const char *l = help; *l;) {
        size_t n = strcspn(l, "\n");
        if (n > 79 && memchr(l, ' ', n))
            fail_msg("long help line: %.*s", (int)n, l);
        l += n + (l[n] == '\n');
    }
    free(help);
}

static void test_dump_hides_secrets(void **state)
{
    char *env[] = {"TASKCLUSTER_PROXY_SECRET_A=topsecret-a", "WHT_CLUSTER_SECRET=cluster-topsecret", NULL};
    char *argv[] = {"whtunnel", "--port",          "1234",   "--session-buffer",
                    "3m",       "--queue-timeout", "1500ms", NULL};
    struct config c;
    assert_int_equal(load(&c, env, argv), 0);
    char *dump = capture_dump(&c);
    assert_null(strstr(dump, "topsecret"));
    assert_non_null(strstr(dump, "TASKCLUSTER_PROXY_SECRET_A"));
    assert_non_null(strstr(dump, "= ***\n"));
    assert_non_null(strstr(dump, "TASKCLUSTER_PROXY_SECRET_B   = (unset)\n"));
    assert_non_null(strstr(dump, "WHT_CLUSTER_SECRET           = ***\n"));
    assert_non_null(strstr(dump, "PORT                         = 1234\n"));
    assert_non_null(strstr(dump, "WHT_SESSION_BUFFER           = 3m\n"));
    assert_non_null(strstr(dump, "WHT_QUEUE_TIMEOUT            = 1500ms\n"));
    assert_non_null(strstr(dump, "WHT_HEADER_TIMEOUT           = 10s\n"));
    assert_non_null(strstr(dump, "WHT_LOG_LEVEL                = \"info\"\n"));
    for (size_t i = 0; i < NSET; i++)
        if (!strstr(dump, ALL_ENV[i]))
            fail_msg("dump lacks %s", ALL_ENV[i]);
    free(dump);
    config_free(&c);
    /* a generated secret is marked, and still hidden */
    config_defaults(&c);
    assert_int_equal(config_set_generated_secret(&c, "gen-topsecret"), 0);
    dump = capture_dump(&c);
    assert_null(strstr(dump, "topsecret"));
    assert_non_null(strstr(dump, "*** (generated)"));
    free(dump);
    config_free(&c);
    /* help never shows a secret either (it shows no values at all) */
    char *help = capture_help();
    assert_null(strstr(help, "topsecret"));
    free(help);
}

/* ---- validation ------------------------------------------------------------------------ */

static int validate_with(char **env)
{
    struct config c;
    int rc = load(&c, env, NULL);
    if (rc == 0)
        rc = config_validate(&c, err, sizeof(err));
    config_free(&c);
    return rc;
}

static void test_validate(void **state)
{
    static const struct {
        const char *env1, *env2, *env3;
        int rc;
        const char *msg; /* part of the message, for failures */
    } cases[] = {
        {"TLS_KEY=/k", NULL, NULL, CONFIG_E_INVALID, "TLS_CERTIFICATE"},
        {"TLS_CERTIFICATE=/c", NULL, NULL, CONFIG_E_INVALID, "TLS_KEY"},
        {"TLS_CERTIFICATE=/c", "TLS_KEY=/k", NULL, 0, NULL},
        {"ENV=production", NULL, NULL, CONFIG_E_INVALID, "TASKCLUSTER_PROXY_SECRET_A"},
        {"ENV=production", "TASKCLUSTER_PROXY_SECRET_B=b", NULL, 0, NULL},
        {"ENV=production", "TASKCLUSTER_PROXY_SECRET_A=a", NULL, 0, NULL},
        {"ENV=Production", NULL, NULL, 0, NULL}, /* exactly "production", as the original */
        {"WHT_STREAM_WINDOW=16m", "WHT_SESSION_BUFFER=8m", NULL, CONFIG_E_INVALID, "WHT_SESSION_BUFFER"},
        {"WHT_STREAM_WINDOW=8m", "WHT_SESSION_BUFFER=8m", NULL, 0, NULL},
        {"URL_PREFIX=http://localhost:8080", NULL, NULL, 0, NULL},
        {"URL_PREFIX=https://t.example.com/base/", NULL, NULL, 0, NULL},
        {"URL_PREFIX=http://[::1]:8080", NULL, NULL, 0, NULL},
        {"URL_PREFIX=tunnel.example.com", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"URL_PREFIX=ftp://x", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"URL_PREFIX=https://", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"URL_PREFIX=https:///x", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"URL_PREFIX=https://a b", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"URL_PREFIX=https://a/?q=1", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"URL_PREFIX=https://u:p@a", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"URL_PREFIX=https://a:0", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"URL_PREFIX=https://a:", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"URL_PREFIX=https://a:x", NULL, NULL, CONFIG_E_INVALID, "URL_PREFIX"},
        {"WHT_DOMAIN=tunnel.example.com", NULL, NULL, 0, NULL},
        {"WHT_DOMAIN=https://tunnel.example.com", NULL, NULL, CONFIG_E_INVALID, "WHT_DOMAIN"},
        {"WHT_DOMAIN=tunnel.example.com:443", NULL, NULL, CONFIG_E_INVALID, "WHT_DOMAIN"},
        {"WHT_DOMAIN=.example.com", NULL, NULL, CONFIG_E_INVALID, "WHT_DOMAIN"},
        {"WHT_DOMAIN=a..b", NULL, NULL, CONFIG_E_INVALID, "WHT_DOMAIN"},
        {"WHT_DOMAIN=example.com.", NULL, NULL, CONFIG_E_INVALID, "WHT_DOMAIN"},
        {"REDIS_URL=redis://r:6379", "WHT_CLUSTER_SECRET=0123456789abcdef", NULL, 0, NULL},
        {"REDIS_URL=redis://r:6379", NULL, NULL, CONFIG_E_INVALID, "WHT_CLUSTER_SECRET"},
        {"REDIS_URL=redis://r:6379", "WHT_CLUSTER_SECRET=0123456789abcde", NULL, CONFIG_E_INVALID,
         "WHT_CLUSTER_SECRET"},
        {"REDIS_URL=rediss://r:6379", "WHT_CLUSTER_SECRET=0123456789abcdef", NULL, CONFIG_E_INVALID,
         "rediss"},
        {"REDIS_URL=r:6379", "WHT_CLUSTER_SECRET=0123456789abcdef", NULL, CONFIG_E_INVALID, "REDIS_URL"},
        {"REDIS_URL=redis://", "WHT_CLUSTER_SECRET=0123456789abcdef", NULL, CONFIG_E_INVALID, "REDIS_URL"},
        {"WHT_CLUSTER_SECRET=short", NULL, NULL, 0, NULL}, /* standalone: not used */
        {"WHT_PEER_ADDR=0.0.0.0:7000", "WHT_PEER_ADVERTISE=node-1.svc:7000", NULL, 0, NULL},
        {"WHT_PEER_ADDR=[::]:7000", NULL, NULL, 0, NULL},
        {"WHT_PEER_ADDR=7000", NULL, NULL, CONFIG_E_INVALID, "WHT_PEER_ADDR"},
        {"WHT_PEER_ADDR=host:65536", NULL, NULL, CONFIG_E_INVALID, "WHT_PEER_ADDR"},
        {"WHT_PEER_ADVERTISE=host:0", NULL, NULL, CONFIG_E_INVALID, "WHT_PEER_ADVERTISE"},
        {"WHT_PEER_ADDR=host:65536", NULL, NULL, CONFIG_E_INVALID, "WHT_PEER_ADDR"},
        {"WHT_PEER_ADDR=:7000", NULL, NULL, CONFIG_E_INVALID, "WHT_PEER_ADDR"},
        {"WHT_PEER_ADDR=[]:7000", NULL, NULL, CONFIG_E_INVALID, "WHT_PEER_ADDR"},
        {"WHT_PEER_ADVERTISE=a b:1", NULL, NULL, CONFIG_E_INVALID, "WHT_PEER_ADVERTISE"},
        {"WHT_NODE_ID=node/1", NULL, NULL, CONFIG_E_INVALID, "WHT_NODE_ID"},
        {"WHT_NODE_ID=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL, NULL,
         CONFIG_E_INVALID, "WHT_NODE_ID"},
        {"WHT_REDIS_PREFIX=a b", NULL, NULL, CONFIG_E_INVALID, "WHT_REDIS_PREFIX"},
        {"WHT_PROXY_PROTOCOL=10.0.0.0/8,127.0.0.1/32,::1/128", "WHT_TRUSTED_PROXIES=192.168.0.0/16, fd00::/8",
         NULL, 0, NULL},
        {"WHT_PROXY_PROTOCOL=127.0.0.1", "WHT_TRUSTED_PROXIES=::1", NULL, 0, NULL},
        {"WHT_PROXY_PROTOCOL=10.0.0.1/8", NULL, NULL, CONFIG_E_INVALID,
         "WHT_PROXY_PROTOCOL (--proxy-protocol): entry \"10.0.0.1/8\": address bits set"},
        {"WHT_PROXY_PROTOCOL=10.0.0.0/8,localhost", NULL, NULL, CONFIG_E_INVALID,
         "entry \"localhost\": not a numeric"},
        {"WHT_PROXY_PROTOCOL=10.0.0.0/8,", NULL, NULL, CONFIG_E_INVALID, "WHT_PROXY_PROTOCOL"},
        {"WHT_TRUSTED_PROXIES=::1/129", NULL, NULL, CONFIG_E_INVALID,
         "WHT_TRUSTED_PROXIES (--trusted-proxies): entry \"::1/129\": bad prefix length"},
        {"WHT_TRUSTED_PROXIES=10.0.0.0/8 10.1.0.0/16", NULL, NULL, CONFIG_E_INVALID, "WHT_TRUSTED_PROXIES"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *env[] = {(char *)cases[i].env1, (char *)cases[i].env2, (char *)cases[i].env3, NULL};
        int rc = validate_with(env);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s %s): got %d, want %d: %s", i, cases[i].env1,
                     cases[i].env2 ? cases[i].env2 : "", rc, cases[i].rc, err);
        if (cases[i].msg && !strstr(err, cases[i].msg))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err, cases[i].msg);
        if (rc == 0 && err[0])
            fail_msg("case %zu: message on success: %s", i, err);
    }
    /* the Redis URL may hold a password: not echoed */
    char *env[] = {"REDIS_URL=rediss://:hunter2@r", "WHT_CLUSTER_SECRET=0123456789abcdef", NULL};
    assert_int_equal(validate_with(env), CONFIG_E_INVALID);
    assert_null(strstr(err, "hunter2"));
    /* an empty listen address */
    struct config c;
    char *argv[] = {"whtunnel", "--listen=", NULL};
    assert_int_equal(load(&c, NULL, argv), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), CONFIG_E_INVALID);
    assert_non_null(strstr(err, "WHT_LISTEN_ADDR"));
    config_free(&c);
}

static void test_validate_sentinels(void **state)
{
    static const struct {
        const char *sentinels, *master, *url; /* NULL: unset */
        int rc;
        const char *msg;
    } cases[] = {
        {"s1:26379,s2:26379,s3", "mymaster", NULL, 0, NULL},
        {"s1:26379", "mymaster", "redis://:pw@/2", 0, NULL},
        {"s1:26379", "mymaster", "redis://", 0, NULL},
        {"[::1]:26379, 10.0.0.2", "a.b:c-d_e", "redis://user:pw@", 0, NULL},
        {"s1:26379", NULL, NULL, CONFIG_E_INVALID, "WHT_REDIS_MASTER (--redis-master)"},
        {NULL, "mymaster", NULL, CONFIG_E_INVALID, "WHT_REDIS_SENTINELS (--redis-sentinels)"},
        {NULL, "mymaster", "redis://r:6379", CONFIG_E_INVALID, "go together"},
        {"s1:26379,", "mymaster", NULL, CONFIG_E_INVALID, "invalid WHT_REDIS_SENTINELS"},
        {"s1:26379,s1:26379", "mymaster", NULL, CONFIG_E_INVALID, "invalid WHT_REDIS_SENTINELS"},
        {"s1:0", "mymaster", NULL, CONFIG_E_INVALID, "invalid WHT_REDIS_SENTINELS"},
        {"s1:26379", "my master", NULL, CONFIG_E_INVALID, "invalid WHT_REDIS_MASTER"},
        {"s1:26379", "m/x", NULL, CONFIG_E_INVALID, "invalid WHT_REDIS_MASTER"},
        {"s1:26379", "mymaster", "redis://:pw@r:6379/2", CONFIG_E_INVALID, "without a host"},
        {"s1:26379", "mymaster", "redis://r", CONFIG_E_INVALID, "REDIS_URL (--redis-url)"},
        {"s1:26379", "mymaster", "rediss://:pw@/1", CONFIG_E_INVALID, "rediss:// is not supported"},
        {"s1:26379", "mymaster", "redis://:pw@/x", CONFIG_E_INVALID, "redis://[[user]:password@]/[db]"},
    };
    char sen[128], mas[128], url[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *env[5] = {"WHT_CLUSTER_SECRET=0123456789abcdef"};
        int n = 1;
        if (cases[i].sentinels)
            snprintf(sen, sizeof sen, "WHT_REDIS_SENTINELS=%s", cases[i].sentinels), env[n++] = sen;
        if (cases[i].master)
            snprintf(mas, sizeof mas, "WHT_REDIS_MASTER=%s", cases[i].master), env[n++] = mas;
        if (cases[i].url)
            snprintf(url, sizeof url, "REDIS_URL=%s", cases[i].url), env[n++] = url;
        env[n] = NULL;
        int rc = validate_with(env);
        if (rc != cases[i].rc)
            fail_msg("case %zu: got %d, want %d: %s", i, rc, cases[i].rc, err);
        if (cases[i].msg && !strstr(err, cases[i].msg))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err, cases[i].msg);
        assert_null(strstr(err, ":pw@")); /* the URL's password is never echoed */
    }
    /* sentinels turn cluster mode on, and so need the cluster secret */
    struct config c;
    char *env[] = {"WHT_REDIS_SENTINELS=s1", "WHT_REDIS_MASTER=m", NULL};
    assert_int_equal(load(&c, env, NULL), 0);
    assert_true(config_cluster_mode(&c));
    assert_int_equal(config_validate(&c, err, sizeof(err)), CONFIG_E_INVALID);
    assert_non_null(strstr(err, "WHT_REDIS_SENTINELS (--redis-sentinels) needs WHT_CLUSTER_SECRET"));
    config_free(&c);
    assert_int_equal(load(&c, NULL, NULL), 0);
    assert_false(config_cluster_mode(&c));
    config_free(&c);
}

static void test_generated_secret(void **state)
{
    struct config c;
    config_defaults(&c);
    assert_true(config_needs_generated_secret(&c));
    assert_int_equal(config_set_generated_secret(&c, ""), CONFIG_E_VALUE);
    assert_int_equal(config_set_generated_secret(&c, NULL), CONFIG_E_VALUE);
    assert_int_equal(config_set_generated_secret(&c, "0123abcd"), 0);
    assert_string_equal(c.secret_a, "0123abcd");
    assert_true(c.secret_generated);
    assert_false(config_needs_generated_secret(&c));
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
    config_free(&c);
    /* production never needs (nor accepts) a generated secret */
    char *env[] = {"ENV=production", NULL};
    assert_int_equal(load(&c, env, NULL), 0);
    assert_false(config_needs_generated_secret(&c));
    assert_int_equal(config_set_generated_secret(&c, "0123abcd"), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), CONFIG_E_INVALID);
    assert_non_null(strstr(err, "ENV=production"));
    config_free(&c);
    /* with secret B configured, a generated A is not needed; in production B suffices */
    char *env2[] = {"ENV=production", "TASKCLUSTER_PROXY_SECRET_B=b", NULL};
    assert_int_equal(load(&c, env2, NULL), 0);
    assert_false(config_needs_generated_secret(&c));
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
    config_free(&c);
    char *env3[] = {"TASKCLUSTER_PROXY_SECRET_A=a", NULL};
    assert_int_equal(load(&c, env3, NULL), 0);
    assert_false(config_needs_generated_secret(&c));
    config_free(&c);
}

/* ---- secrets from files (<VARIABLE>_FILE, --<flag>-file) -------------------------------- */

/* A file in a fresh temporary directory holding len bytes of content; its path in out. */
static void write_file(char *out, size_t cap, const char *name, const char *content, size_t len)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/wht-test-config-XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    snprintf(out, cap, "%s/%s", dir, name);
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
}

static void test_file_value(void **state)
{
    size_t n;
    /* one trailing newline is dropped, LF or CRLF; anything else is kept */
    assert_null(config_file_value("abc", 3, &n));
    assert_int_equal(n, 3);
    assert_null(config_file_value("abc\n", 4, &n));
    assert_int_equal(n, 3);
    assert_null(config_file_value("abc\r\n", 5, &n));
    assert_int_equal(n, 3);
    assert_null(config_file_value("abc\n\n", 5, &n));
    assert_int_equal(n, 4);
    assert_null(config_file_value("abc\r", 4, &n));
    assert_int_equal(n, 4);
    assert_null(config_file_value(" a b \t", 6, &n));
    assert_int_equal(n, 6);
    assert_null(config_file_value("\r\n\n", 3, &n));
    assert_int_equal(n, 2);
    assert_string_equal(config_file_value("", 0, &n), "is empty");
    assert_string_equal(config_file_value("\n", 1, &n), "is empty");
    assert_string_equal(config_file_value("\r\n", 2, &n), "is empty");
    assert_string_equal(config_file_value("a\0b", 3, &n), "holds a NUL byte");
    assert_string_equal(config_file_value("\0\n", 2, &n), "holds a NUL byte");
    /* CONFIG_MAX_STRING bytes are fine, with or without the newline; one more is not */
    char *big = malloc(CONFIG_MAX_STRING + 3);
    assert_non_null(big);
    memset(big, 'x', CONFIG_MAX_STRING + 3);
    assert_null(config_file_value(big, CONFIG_MAX_STRING, &n));
    big[CONFIG_MAX_STRING] = '\r', big[CONFIG_MAX_STRING + 1] = '\n';
    assert_null(config_file_value(big, CONFIG_MAX_STRING + 2, &n));
    assert_int_equal(n, CONFIG_MAX_STRING);
    memset(big, 'x', CONFIG_MAX_STRING + 3);
    assert_string_equal(config_file_value(big, CONFIG_MAX_STRING + 1, &n), "is longer than 4096 bytes");
    big[CONFIG_MAX_STRING + 1] = '\n';
    assert_string_equal(config_file_value(big, CONFIG_MAX_STRING + 2, &n), "is longer than 4096 bytes");
    free(big);
    /* every prefix of a line ending: no split confuses it */
    const char text[] = "s3cr\r\net\r\n";
    for (size_t len = 0; len <= sizeof text - 1; len++) {
        const char *why = config_file_value(text, len, &n);
        if (len == 0)
            assert_non_null(why);
        else
            assert_true(n == len || (text[len - 1] == '\n' && n == len - (text[len - 2] == '\r' ? 2 : 1)));
    }
}

static void test_secret_files(void **state)
{
    struct config c;
    char a[256], b[256], cs[256], tok[256], ru[256], env1[300], env2[300], env3[300], env4[300], env5[300];
    write_file(a, sizeof a, "a", "from-file-a\n", 12);
    write_file(b, sizeof b, "b", "from-file-b\r\n", 13);
    write_file(cs, sizeof cs, "cs", "0123456789abcdef-cluster", 24);
    write_file(tok, sizeof tok, "tok", "admin\n\n", 7);
    write_file(ru, sizeof ru, "ru", "redis://:pw@127.0.0.1:1/2\n", 26);
    snprintf(env1, sizeof env1, "TASKCLUSTER_PROXY_SECRET_A_FILE=%s", a);
    snprintf(env2, sizeof env2, "TASKCLUSTER_PROXY_SECRET_B_FILE=%s", b);
    snprintf(env3, sizeof env3, "WHT_CLUSTER_SECRET_FILE=%s", cs);
    snprintf(env4, sizeof env4, "WHT_ADMIN_TOKEN_FILE=%s", tok);
    snprintf(env5, sizeof env5, "REDIS_URL_FILE=%s", ru);
    char *env[] = {env1, env2, env3, env4, env5, NULL};
    char *argv[] = {"whtunnel", NULL};
    assert_int_equal(load(&c, env, argv), 0);
    assert_string_equal(c.secret_a, "from-file-a");
    assert_string_equal(c.secret_b, "from-file-b");
    assert_string_equal(c.cluster_secret, "0123456789abcdef-cluster");
    assert_string_equal(c.admin_token, "admin\n");
    assert_string_equal(c.redis_url, "redis://:pw@127.0.0.1:1/2");
    assert_string_equal(c.secret_a_file, a);
    assert_string_equal(c.redis_url_file, ru);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    /* the dump names the files, never the values */
    char *dump = capture_dump(&c);
    assert_non_null(strstr(dump, "TASKCLUSTER_PROXY_SECRET_A_FILE"));
    assert_non_null(strstr(dump, a));
    assert_null(strstr(dump, "from-file-a"));
    free(dump);
    config_free(&c);

    /* flags: --x-file and --x-file=path */
    char fa[300], fb[300];
    snprintf(fa, sizeof fa, "--secret-b-file=%s", b);
    char *argv2[] = {"whtunnel", "--secret-a-file", a, fa, "--admin-token-file", tok, NULL};
    assert_int_equal(load(&c, NULL, argv2), 0);
    assert_string_equal(c.secret_a, "from-file-a");
    assert_string_equal(c.secret_b, "from-file-b");
    assert_string_equal(c.admin_token, "admin\n");
    config_free(&c);

    /* a flag wins over the variable, in either form */
    char *env6[] = {"TASKCLUSTER_PROXY_SECRET_A=from-env", NULL};
    char *argv3[] = {"whtunnel", "--secret-a-file", a, NULL};
    assert_int_equal(load(&c, env6, argv3), 0);
    assert_string_equal(c.secret_a, "from-file-a");
    config_free(&c);
    char *env7[] = {env1, NULL};
    char *argv4[] = {"whtunnel", "--secret-a", "from-flag", NULL};
    assert_int_equal(load(&c, env7, argv4), 0);
    assert_string_equal(c.secret_a, "from-flag");
    assert_string_equal(c.secret_a_file, "");
    config_free(&c);
    /* an empty NAME_FILE is unset, as an empty NAME */
    char *env8[] = {"TASKCLUSTER_PROXY_SECRET_A_FILE=", "TASKCLUSTER_PROXY_SECRET_A=v", NULL};
    assert_int_equal(load(&c, env8, argv), 0);
    assert_string_equal(c.secret_a, "v");
    config_free(&c);
    snprintf(fb, sizeof fb, "%s", fa); /* keep fa used */
}

static void test_secret_file_errors(void **state)
{
    struct config c;
    char a[256], e1[300], empty[256], nul[256], big[256], dirp[256];
    write_file(a, sizeof a, "a2", "secret-value-x\n", 15);
    write_file(empty, sizeof empty, "empty", "\r\n", 2);
    write_file(nul, sizeof nul, "nul", "secret-value-x\0y", 16);
    char *bigc = malloc(CONFIG_MAX_STRING + 1);
    assert_non_null(bigc);
    memset(bigc, 's', CONFIG_MAX_STRING + 1);
    write_file(big, sizeof big, "big", bigc, CONFIG_MAX_STRING + 1);
    free(bigc);
    snprintf(dirp, sizeof dirp, "%s", a);
    *strrchr(dirp, '/') = '\0';

    /* NAME and NAME_FILE both: the message names both */
    snprintf(e1, sizeof e1, "TASKCLUSTER_PROXY_SECRET_A_FILE=%s", a);
    char *env[] = {"TASKCLUSTER_PROXY_SECRET_A=secret-value-x", e1, NULL};
    char *argv[] = {"whtunnel", NULL};
    assert_int_equal(load(&c, env, argv), CONFIG_E_VALUE);
    assert_non_null(strstr(err, "TASKCLUSTER_PROXY_SECRET_A and TASKCLUSTER_PROXY_SECRET_A_FILE"));
    assert_null(strstr(err, "secret-value-x"));
    config_free(&c);
    char *argv2[] = {"whtunnel", "--cluster-secret-file", a, "--cluster-secret=secret-value-x", NULL};
    assert_int_equal(load(&c, NULL, argv2), CONFIG_E_VALUE);
    assert_non_null(strstr(err, "--cluster-secret and --cluster-secret-file"));
    assert_null(strstr(err, "secret-value-x"));
    config_free(&c);

    /* unreadable, a directory, empty, NUL, too long: the setting and the path, never the value */
    const struct {
        const char *path, *want;
    } bad[] = {
        {"/nonexistent/wht-secret", "No such file or directory"},
        {dirp, "not a regular file"},
        {empty, "is empty"},
        {nul, "holds a NUL byte"},
        {big, "is longer than 4096 bytes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv3[] = {"whtunnel", "--secret-b-file", (char *)bad[i].path, NULL};
        assert_int_equal(load(&c, NULL, argv3), CONFIG_E_FILE);
        assert_non_null(strstr(err, "TASKCLUSTER_PROXY_SECRET_B_FILE"));
        assert_non_null(strstr(err, "--secret-b-file"));
        assert_non_null(strstr(err, bad[i].path));
        assert_non_null(strstr(err, bad[i].want));
        assert_null(strstr(err, "secret-value-x"));
        assert_null(strstr(err, "sss"));
        config_free(&c);
    }
    /* a REDIS_URL from a file is not echoed either (it may hold a password) */
    char ru[256], e2[300];
    write_file(ru, sizeof ru, "ru2", "redis://:hunter2\x01@h", 19);
    snprintf(e2, sizeof e2, "REDIS_URL_FILE=%s", ru);
    char *env2[] = {e2, NULL};
    assert_int_equal(load(&c, env2, argv), CONFIG_E_VALUE);
    assert_non_null(strstr(err, "REDIS_URL_FILE"));
    assert_null(strstr(err, "hunter2"));
    config_free(&c);
    /* only the file-backed settings take -file */
    char *argv4[] = {"whtunnel", "--port-file", a, NULL};
    assert_int_equal(load(&c, NULL, argv4), CONFIG_E_UNKNOWN);
    config_free(&c);
    char *argv5[] = {"whtunnel", "--secret-a-file", NULL};
    assert_int_equal(load(&c, NULL, argv5), CONFIG_E_MISSING_VALUE);
    assert_non_null(strstr(err, "--secret-a-file"));
    config_free(&c);
}

static void test_help_lists_files(void **state)
{
    char *help = capture_help();
    const char *const files[] = {"--secret-a-file <file>  [TASKCLUSTER_PROXY_SECRET_A_FILE]",
                                 "--secret-b-file <file>  [TASKCLUSTER_PROXY_SECRET_B_FILE]",
                                 "--cluster-secret-file <file>  [WHT_CLUSTER_SECRET_FILE]",
                                 "--admin-token-file <file>  [WHT_ADMIN_TOKEN_FILE]",
                                 "--redis-url-file <file>  [REDIS_URL_FILE]"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        assert_non_null(strstr(help, files[i]));
    assert_null(strstr(help, "--port-file"));
    assert_non_null(strstr(help, "re-read on SIGHUP"));
    assert_non_null(strstr(help, "read at start only"));
    free(help);
}

static void test_reload_files(void **state)
{
    struct config c, fresh;
    char a[256], b[256], e1[300], e2[300];
    write_file(a, sizeof a, "ra", "old-a\n", 6);
    write_file(b, sizeof b, "rb", "old-b\n", 6);
    snprintf(e1, sizeof e1, "TASKCLUSTER_PROXY_SECRET_A_FILE=%s", a);
    snprintf(e2, sizeof e2, "TASKCLUSTER_PROXY_SECRET_B_FILE=%s", b);
    char *env[] = {e1, e2, "ENV=production", "WHT_ADMIN_TOKEN=t", NULL};
    char *argv[] = {"whtunnel", "--port", "1234", NULL};
    char changed[256];
    assert_int_equal(load(&c, env, argv), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);

    /* nothing changed */
    assert_int_equal(config_reload_files(&c, &fresh, err, sizeof err), 0);
    assert_int_equal(config_changed_files(&c, &fresh, changed, sizeof changed), 0);
    assert_string_equal(changed, "");
    assert_int_equal(fresh.port, 1234);
    assert_string_equal(fresh.admin_token, "t");
    assert_ptr_not_equal(fresh.admin_token, c.admin_token);
    config_free(&fresh);

    /* A rotated: only A changes; adopting swaps it in */
    write_file(a, sizeof a, "ra", "new-a\r\n", 7);
    assert_int_equal(config_reload_files(&c, &fresh, err, sizeof err), 0);
    assert_int_equal(config_changed_files(&c, &fresh, changed, sizeof changed), 1);
    assert_string_equal(changed, "TASKCLUSTER_PROXY_SECRET_A");
    config_adopt_files(&c, &fresh);
    assert_string_equal(c.secret_a, "new-a");
    assert_string_equal(fresh.secret_a, "old-a");
    config_free(&fresh);

    /* a bad file: an error, and c untouched */
    write_file(b, sizeof b, "rb", "", 0);
    assert_int_equal(config_reload_files(&c, &fresh, err, sizeof err), CONFIG_E_FILE);
    assert_non_null(strstr(err, "TASKCLUSTER_PROXY_SECRET_B_FILE"));
    config_free(&fresh);
    assert_string_equal(c.secret_b, "old-b");
    unlink(b);
    assert_int_equal(config_reload_files(&c, &fresh, err, sizeof err), CONFIG_E_FILE);
    assert_non_null(strstr(err, "No such file"));
    config_free(&fresh);

    /* both rotated, then reported together */
    write_file(b, sizeof b, "rb", "new-b", 5);
    write_file(a, sizeof a, "ra", "newer-a", 7);
    assert_int_equal(config_reload_files(&c, &fresh, err, sizeof err), 0);
    assert_int_equal(config_changed_files(&c, &fresh, changed, sizeof changed), 2);
    assert_string_equal(changed, "TASKCLUSTER_PROXY_SECRET_A, TASKCLUSTER_PROXY_SECRET_B");
    config_free(&fresh);
    config_free(&c);

    /* the whole is validated: a cluster secret that became too short is refused */
    char cs[256], e3[300];
    write_file(cs, sizeof cs, "rcs", "0123456789abcdef\n", 17);
    snprintf(e3, sizeof e3, "WHT_CLUSTER_SECRET_FILE=%s", cs);
    char *env2[] = {e3, "REDIS_URL=redis://127.0.0.1:1", NULL};
    assert_int_equal(load(&c, env2, argv), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    write_file(cs, sizeof cs, "rcs", "short\n", 6);
    assert_int_equal(config_reload_files(&c, &fresh, err, sizeof err), CONFIG_E_INVALID);
    assert_non_null(strstr(err, "WHT_CLUSTER_SECRET"));
    assert_null(strstr(err, "short"));
    config_free(&fresh);
    /* REDIS_URL_FILE is read at start only: a reload does not read it */
    config_free(&c);
}

/* ---- the exported parsers -------------------------------------------------------------- */

static void test_parse_duration(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"0", 0},
        {"0s", 0},
        {"0ms", 0},
        {"1ms", 1},
        {"30s", 30000},
        {"2m", 120000},
        {"1h", 3600000},
        {"7d", 604800000},
        {"1h30m", 5400000},
        {"1m1ms", 60001},
        {"1s500ms", 1500},
        {"500ms1s", 1500},
        {"24h", 86400000},
        {"31d", 2678400000},
        {"1d1h1m1s1ms", 90061001},
        {"9223372036854775807ms", INT64_MAX},
        {"007s", 7000},
    };
    static const char *const bad[] = {"",
                                      "10",
                                      "s",
                                      "ms",
                                      "-1s",
                                      "+1s",
                                      "1.5s",
                                      "1S",
                                      "1 s",
                                      " 1s",
                                      "1s ",
                                      "1x",
                                      "1sms",
                                      "1mss",
                                      "1y",
                                      "1w",
                                      "1msx",
                                      "9223372036854775808ms",
                                      "9223372036854775807ms1ms",
                                      "106751991167301d",
                                      "99999999999999999999s",
                                      "00"};
    int64_t v;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = -1;
        if (config_parse_duration_ms(good[i].s, &v) != 0 || v != good[i].ms)
            fail_msg("duration \"%s\": got %lld", good[i].s, (long long)v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (config_parse_duration_ms(bad[i], &v) != CONFIG_E_VALUE)
            fail_msg("duration \"%s\" accepted", bad[i]);
    assert_int_equal(config_parse_duration_ms(NULL, &v), CONFIG_E_VALUE);
    assert_int_equal(config_parse_duration_ms("1s", NULL), CONFIG_E_VALUE);
    /* the whtunnel token --ttl values */
    assert_int_equal(config_parse_duration_ms("24h", &v), 0);
    assert_int_equal(v / 1000, 86400);
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"0", 0},
        {"1", 1},
        {"1k", 1024},
        {"1K", 1024},
        {"256k", 262144},
        {"8m", 8388608},
        {"8M", 8388608},
        {"1g", 1073741824},
        {"16G", 17179869184ULL},
        {"18446744073709551615", UINT64_MAX},
        {"17179869183g", 17179869183ULL << 30},
    };
    static const char *const bad[] = {"",
                                      "k",
                                      "1kb",
                                      "1KiB",
                                      "1t",
                                      "1.5k",
                                      "-1",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1kk",
                                      "0x10",
                                      "18446744073709551616",
                                      "17179869184g"};
    uint64_t v;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 7;
        if (config_parse_size(good[i].s, &v) != 0 || v != good[i].v)
            fail_msg("size \"%s\": got %llu", good[i].s, (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (config_parse_size(bad[i], &v) != CONFIG_E_VALUE)
            fail_msg("size \"%s\" accepted", bad[i]);
    assert_int_equal(config_parse_size(NULL, &v), CONFIG_E_VALUE);
}

static void test_parse_bool(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "1", "yes", "On"};
    static const char *const no[] = {"false", "False", "0", "no", "OFF"};
    static const char *const bad[] = {"", "2", "y", "n", "tru", "true ", "enabled"};
    bool b;
    for (size_t i = 0; i < 5; i++) {
        b = false;
        assert_int_equal(config_parse_bool(yes[i], &b), 0);
        assert_true(b);
        b = true;
        assert_int_equal(config_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(config_parse_bool(bad[i], &b), CONFIG_E_VALUE);
}

static void test_free_and_strerror(void **state)
{
    struct config c;
    config_defaults(&c);
    config_free(&c);
    assert_null(c.listen_addr);
    assert_null(c.secret_a);
    config_free(&c); /* twice is harmless */
    config_free(NULL);
    for (int e = CONFIG_HELP; e >= CONFIG_E_NOMEM; e--) {
        assert_non_null(config_strerror(e));
        assert_string_not_equal(config_strerror(e), "unknown config error");
    }
    assert_string_equal(config_strerror(-99), "unknown config error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),           cmocka_unit_test(test_env_only),
        cmocka_unit_test(test_env_empty_is_unset), cmocka_unit_test(test_flag_overrides_env),
        cmocka_unit_test(test_flag_forms),         cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_bounds_accepted),    cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_string_limits),      cmocka_unit_test(test_unknown_and_stray),
        cmocka_unit_test(test_missing_value),      cmocka_unit_test(test_help),
        cmocka_unit_test(test_dump_hides_secrets), cmocka_unit_test(test_validate),
        cmocka_unit_test(test_validate_sentinels), cmocka_unit_test(test_generated_secret),
        cmocka_unit_test(test_parse_duration),     cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_bool),         cmocka_unit_test(test_free_and_strerror),
        cmocka_unit_test(test_file_value),         cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_secret_file_errors), cmocka_unit_test(test_help_lists_files),
        cmocka_unit_test(test_reload_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
