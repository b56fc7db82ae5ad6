/* node/log: the text and JSON lines (exact text, JSON parsed back with
 * jansson), ugly messages, the access line, the rate limit and the global
 * cap, and the output buffer. Both clocks are fakes: no test sleeps. Lines
 * go to a temporary file that take() reads from where it last stopped. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "node/log.h"

#define WALL_MS 1796155201123ll /* 2026-12-01T20:00:01.123Z */
#define TIME "2026-12-01T20:00:01.123Z"

static int64_t g_now = 1000000; /* the fake monotonic clock */
static FILE *g_file;            /* the sink */
static long g_read;             /* how much of it take() has returned */

static int64_t fake_now(void)
{
    return g_now;
}

static int64_t fake_wall(void)
{
    return WALL_MS;
}

static int setup(void **state)
{
    (void)state;
    g_file = tmpfile();
    if (!g_file)
        return -1;
    g_read = 0;
    g_now = 1000000;
    log__set_clock(fake_now);
    log__set_wall_clock(fake_wall);
    log__reset();
    log_set_format(LOG_FORMAT_TEXT);
    log_current_level = LOG_INFO;
    log_set_fd(fileno(g_file));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log__reset();
    log_set_fd(2);
    log__set_clock(NULL);
    log__set_wall_clock(NULL);
    fclose(g_file);
    return 0;
}

/* What the sink got since the last take(), NUL-terminated; the caller frees it. */
static char *take(void)
{
    int fd = fileno(g_file);
    off_t end = lseek(fd, 0, SEEK_END);
    assert_true(end >= g_read);
    size_t n = (size_t)(end - g_read);
    char *s = malloc(n + 1);
    assert_non_null(s);
    assert_int_equal(pread(fd, s, n, g_read), (ssize_t)n);
    s[n] = 0;
    g_read = (long)end;
    return s;
}

static void assert_taken(const char *want)
{
    char *got = take();
    assert_string_equal(got, want);
    free(got);
}

/* How many lines of what the sink got since the last take() contain needle. */
static int count_taken(const char *needle)
{
    char *got = take();
    int n = 0;
    for (char *p = got; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(got);
    return n;
}

/* Parses the one JSON line the sink got since the last take(); the caller
 * json_decref()s it. */
static json_t *take_json(void)
{
    char *got = take();
    size_t len = strlen(got);
    assert_true(len > 1);
    assert_int_equal(got[len - 1], '\n');
    assert_null(memchr(got, '\n', len - 1)); /* one line */
    json_error_t err;
    json_t *j = json_loads(got, 0, &err);
    if (!j)
        fail_msg("not JSON (%s): %.200s", err.text, got);
    free(got);
    assert_true(json_is_object(j));
    assert_string_equal(json_string_value(json_object_get(j, "time")), TIME);
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

static json_int_t jint(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

/* ---- text and JSON lines ---------------------------------------------------- */

static void test_text_lines(void **state)
{
    (void)state;
    LOG_I("conn=%d worker=%s registered (%s, url %s)", 12, "w1", "ext", "http://x");
    LOG_D("not at info level %d", 1);
    log_flush();
    assert_taken(TIME " info  conn=12 worker=w1 registered (ext, url http://x)\n");
    LOG_W("peer=%s link down", "n2");
    assert_taken(TIME " warn  peer=n2 link down\n");
    LOG_E("bad %s", "thing");
    assert_taken(TIME " error bad thing\n");
    log_current_level = LOG_DEBUG;
    LOG_D("now at debug %d", 2);
    log_flush();
    assert_taken(TIME " debug now at debug 2\n");
    assert_int_equal(log_dropped_total(), 0);
}

static void test_parse_level(void **state)
{
    enum log_level l = LOG_ERROR;
    (void)state;
    assert_int_equal(log_parse_level("debug", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_parse_level("warn", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_parse_level("verbose", &l), -1);
    assert_int_equal(l, LOG_WARN);
}

static void test_json_lifted_fields(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_JSON);
    LOG_W("conn=%d worker=%s registered (ext, url %s)", 12, "w1", "http://x");
    json_t *j = take_json();
    assert_int_equal(json_object_size(j), 5);
    assert_string_equal(jstr(j, "level"), "warn");
    assert_string_equal(jstr(j, "msg"), "conn=12 worker=w1 registered (ext, url http://x)");
    assert_int_equal(jint(j, "conn"), 12);
    assert_string_equal(jstr(j, "worker"), "w1");
    json_decref(j);

    LOG_E("peer=%s session=%d request_id=%s closed: %s", "n2", 7, "ab.c", "gone");
    j = take_json();
    assert_int_equal(json_object_size(j), 6);
    assert_string_equal(jstr(j, "level"), "error");
    assert_string_equal(jstr(j, "peer"), "n2");
    assert_int_equal(jint(j, "session"), 7);
    assert_string_equal(jstr(j, "request_id"), "ab.c");
    json_decref(j);

    /* a conn that is not a number stays a string; lifting stops at the first other token */
    LOG_E("conn=%s other=1 worker=w9 x", "a\"b");
    j = take_json();
    assert_int_equal(json_object_size(j), 4);
    assert_string_equal(jstr(j, "conn"), "a\"b");
    assert_null(json_object_get(j, "worker"));
    json_decref(j);

    /* a leading zero is not a JSON number */
    LOG_E("conn=%s session=%s x", "007", "0");
    j = take_json();
    assert_string_equal(jstr(j, "conn"), "007");
    assert_int_equal(jint(j, "session"), 0);
    json_decref(j);

    /* not leading, empty or repeated: not lifted */
    LOG_E("registered conn=%d", 1);
    j = take_json();
    assert_int_equal(json_object_size(j), 3);
    json_decref(j);
    LOG_E("conn= worker=%s", "w1");
    j = take_json();
    assert_int_equal(json_object_size(j), 3);
    json_decref(j);
    LOG_E("worker=%s worker=%s", "w1", "w2");
    j = take_json();
    assert_int_equal(json_object_size(j), 4);
    assert_string_equal(jstr(j, "worker"), "w1");
    json_decref(j);
    /* a whole message of tokens */
    LOG_E("worker=%s", "w3");
    j = take_json();
    assert_string_equal(jstr(j, "worker"), "w3");
    assert_string_equal(jstr(j, "msg"), "worker=w3");
    json_decref(j);
}

static void test_json_ugly(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_JSON);
    /* quotes, backslash, newline, CR, tab, \x01, DEL; valid 2-, 3- and 4-byte UTF-8; then invalid
     * UTF-8: a lone 0xff, a cut 3-byte sequence, an overlong '/' in 2 and 3 bytes, a surrogate, past
     * U+10FFFF */
    static const char ugly[] = "say \"hi\" \\ a\nb\rc\td\x01"
                               "e\x7f"
                               "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                               "|\xff|\xe2\x82|\xc0\xaf|\xe0\x80\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|";
    static const char want[] = "say \"hi\" \\ a\nb\rc\td\x01"
                               "e\x7f"
                               "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                               "|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd"
                               "|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                               "|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|";
    LOG_E("%s", ugly);
    char *raw = take();
    assert_non_null(strstr(raw, "\\u0001"));
    assert_non_null(strstr(raw, "\\ufffd"));
    free(raw);
    LOG_E("worker=%s", "w\n\x01\xff");
    json_t *j = take_json();
    assert_string_equal(jstr(j, "worker"), "w\n\x01\xef\xbf\xbd");
    json_decref(j);

    g_now += LOG_RATE_WINDOW_MS; /* "%s" is one kind of line */
    LOG_E("%s", ugly);
    j = take_json();
    assert_string_equal(jstr(j, "msg"), want);
    json_decref(j);

    /* 100 KiB, with a quote every KiB: written directly, whole */
    size_t big_len = 100 * 1024;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = i % 1024 == 1023 ? '"' : (char)('a' + i % 26);
    big[big_len] = 0;
    LOG_I("%s", big);
    j = take_json();
    assert_string_equal(jstr(j, "msg"), big);
    json_decref(j);

    log_set_format(LOG_FORMAT_TEXT);
    LOG_I("%s", big);
    char *line = take();
    assert_int_equal(strlen(line), 31 + big_len + 1);
    assert_memory_equal(line, TIME " info  ", 31);
    assert_memory_equal(line + 31, big, big_len);
    free(line);
    free(big);
}

/* ---- the access line -------------------------------------------------------- */

static const char ACCESS_PATH[] = "/x/a b\x01\xc3\xa9?token=secret";

static struct log_access sample_access(void)
{
    return (struct log_access){
        .worker = "w1",
        .method = "GETX",
        .method_len = 3,
        .path = ACCESS_PATH,
        .path_len = sizeof ACCESS_PATH - 1,
        .status = 200,
        .bytes_in = 10,
        .bytes_out = 12345678901ull,
        .duration_ms = 1.25,
        .via = "local",
        .request_id = "0123456789abcdef",
        .client = "10.0.0.7",
        .conn = 12,
    };
}

static void test_access_text(void **state)
{
    (void)state;
    struct log_access a = sample_access();
    log_access(&a);
    log_flush();
    assert_taken(TIME " info  access conn=12 worker=w1 method=GET path=/x/a%20b%01%C3%A9 status=200 in=10 "
                      "out=12345678901 ms=1.25 via=local request_id=0123456789abcdef client=10.0.0.7\n");
    a = (struct log_access){
        .status = 502, .duration_ms = -1, .via = "endpoint", .method = "G T", .method_len = 3};
    log_access(&a);
    log_flush();
    assert_taken(TIME " info  access conn=0 worker= method=G%20T path= status=502 in=0 out=0 ms=0.00 "
                      "via=endpoint request_id= client=\n");
    log_current_level = LOG_WARN;
    log_access(&a);
    log_flush();
    assert_taken("");
}

static void test_access_json(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_JSON);
    struct log_access a = sample_access();
    a.worker = "w\"1";
    log_access(&a);
    log_flush();
    json_t *j = take_json();
    assert_int_equal(json_object_size(j), 14);
    assert_string_equal(jstr(j, "level"), "info");
    assert_string_equal(jstr(j, "msg"), "access");
    assert_int_equal(jint(j, "conn"), 12);
    assert_string_equal(jstr(j, "worker"), "w\"1");
    assert_string_equal(jstr(j, "method"), "GET");
    assert_string_equal(jstr(j, "path"), "/x/a b\x01\xc3\xa9");
    assert_int_equal(jint(j, "status"), 200);
    assert_int_equal(jint(j, "bytes_in"), 10);
    assert_int_equal(jint(j, "bytes_out"), 12345678901ll);
    json_t *ms = json_object_get(j, "duration_ms");
    assert_true(json_is_real(ms));
    assert_true(json_real_value(ms) == 1.25);
    assert_string_equal(jstr(j, "via"), "local");
    assert_string_equal(jstr(j, "request_id"), "0123456789abcdef");
    assert_string_equal(jstr(j, "client"), "10.0.0.7");
    json_decref(j);
}

static void test_access_not_limited(void **state)
{
    (void)state;
    struct log_access a = sample_access();
    for (int i = 0; i < 2 * LOG_GLOBAL_MAX; i++)
        log_access(&a);
    log_flush();
    assert_int_equal(count_taken(" access "), 2 * LOG_GLOBAL_MAX);
    assert_int_equal(log_dropped_total(), 0);
}

/* ---- the rate limit --------------------------------------------------------- */

static void same_line(int i)
{
    LOG_I("same line %d", i);
}

static void other_line(int i)
{
    LOG_I("other line %d", i);
}

static void test_rate_limit(void **state)
{
    (void)state;
    for (int i = 0; i < 30; i++) {
        same_line(i);
        if (i % 6 == 0)
            other_line(i);
    }
    log_flush();
    char *got = take();
    int same = 0;
    for (char *p = got; (p = strstr(p, "same line ")) != NULL; p++)
        same++;
    assert_int_equal(same, LOG_RATE_MAX);
    assert_non_null(strstr(got, "same line 9\n"));
    assert_null(strstr(got, "same line 10\n"));
    assert_non_null(strstr(got, "other line 24\n")); /* a different format is not affected */
    assert_null(strstr(got, "dropped"));
    free(got);
    assert_int_equal(log_dropped_total(), 20);

    g_now += LOG_RATE_WINDOW_MS - 1; /* still the same window */
    same_line(30);
    log_flush();
    assert_taken("");
    assert_int_equal(log_dropped_total(), 21);

    g_now += 1; /* the next window */
    same_line(31);
    log_flush();
    assert_taken(TIME " info  same line 31 (21 similar lines dropped)\n");
    same_line(32);
    log_flush();
    assert_taken(TIME " info  same line 32\n");
}

static void test_rate_limit_json(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_JSON);
    for (int i = 0; i < 30; i++)
        same_line(i);
    log_flush();
    assert_int_equal(count_taken("same line"), LOG_RATE_MAX);
    g_now += LOG_RATE_WINDOW_MS;
    same_line(30);
    log_flush();
    json_t *j = take_json();
    assert_string_equal(jstr(j, "msg"), "same line 30 (20 similar lines dropped)");
    assert_int_equal(jint(j, "dropped"), 20);
    json_decref(j);
    assert_int_equal(log_dropped_total(), 20);
}

/* A flood that stops is still summarised, once its window is over, once. */
static void test_summarize(void **state)
{
    (void)state;
    for (int i = 0; i < 30; i++)
        same_line(i);
    log_summarize(); /* the window is not over: nothing yet */
    log_flush();
    assert_int_equal(count_taken("same line"), LOG_RATE_MAX);
    g_now += LOG_RATE_WINDOW_MS;
    log_summarize();
    log_flush();
    assert_taken(TIME " warn  20 lines like \"same line %d\" dropped (at most 10 a second of one kind)\n");
    log_summarize(); /* said once */
    log_flush();
    assert_taken("");
    same_line(31); /* and not said again on the next line of the kind */
    log_flush();
    assert_taken(TIME " info  same line 31\n");

    log_set_format(LOG_FORMAT_JSON);
    for (int i = 0; i < 12; i++)
        other_line(i);
    log_flush();
    assert_int_equal(count_taken("other line"), LOG_RATE_MAX);
    g_now += LOG_RATE_WINDOW_MS;
    log_summarize();
    log_flush();
    json_t *j = take_json();
    assert_string_equal(jstr(j, "level"), "warn");
    assert_string_equal(jstr(j, "msg"),
                        "2 lines like \"other line %d\" dropped (at most 10 a second of one kind)");
    assert_int_equal(jint(j, "dropped"), 2);
    json_decref(j);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
static void kind_line(const char *fmt, int i)
{
    log_write(LOG_INFO, fmt, i);
}
#pragma GCC diagnostic pop

/* Kinds of line: a distinct format pointer each. */
#define KINDS 1000
static char g_kinds[KINDS][16];

static void test_global_cap(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++)
        snprintf(g_kinds[k], sizeof g_kinds[k], "kind%d %%d", k);
    /* far more kinds than the table has slots: each is written, the table stays bounded */
    for (int k = 0; k < LOG_GLOBAL_MAX; k++)
        kind_line(g_kinds[k], 0);
    log_flush();
    assert_int_equal(count_taken("kind"), LOG_GLOBAL_MAX);
    assert_int_equal(log_dropped_total(), 0);

    /* 101 kinds 10 times each in one window: each under its own limit, the last 10 over the cap */
    g_now += LOG_RATE_WINDOW_MS;
    for (int r = 0; r < LOG_RATE_MAX; r++)
        for (int k = 0; k < 101; k++)
            kind_line(g_kinds[k], r);
    struct log_access a = sample_access();
    log_access(&a); /* access lines do not count, and are not capped */
    log_flush();
    char *got = take();
    int lines = 0;
    for (char *p = got; (p = strstr(p, "kind")) != NULL; p++)
        lines++;
    assert_int_equal(lines, LOG_GLOBAL_MAX);
    assert_non_null(strstr(got, " access "));
    free(got);
    assert_int_equal(log_dropped_total(), 101 * LOG_RATE_MAX - LOG_GLOBAL_MAX);

    /* the next window: lines again, and a kind that lost lines says so */
    g_now += LOG_RATE_WINDOW_MS;
    kind_line(g_kinds[100], 99);
    kind_line(g_kinds[90], 99);
    log_flush();
    assert_taken(TIME " info  kind100 99 (1 similar lines dropped)\n" TIME " info  kind90 99\n");
}

/* ---- the buffer ------------------------------------------------------------- */

static void test_buffer(void **state)
{
    (void)state;
    struct log_access a = sample_access();
    log_access(&a);
    log_access(&a);
    assert_taken(""); /* access lines wait */
    LOG_I("an event %d", 1);
    char *got = take(); /* an event line writes them all, in order, itself last */
    char *access = strstr(got, " access "), *event = strstr(got, "an event 1");
    assert_true(access && event && access < event && strstr(access + 1, " access ") < event);
    free(got);
    log_current_level = LOG_DEBUG;
    LOG_D("a debug event %d", 2); /* at once, whatever the level */
    assert_taken(TIME " debug a debug event 2\n");
    log_current_level = LOG_INFO;

    /* an access line more than LOG_FLUSH_MS after the oldest buffered one writes the buffer */
    log_access(&a);
    g_now += LOG_FLUSH_MS - 1;
    log_access(&a);
    assert_taken("");
    g_now += 1;
    log_access(&a);
    got = take();
    size_t line = strlen(got) / 2;
    assert_int_equal(strlen(got), 2 * line);
    free(got);
    log_flush();
    got = take();
    assert_int_equal(strlen(got), line);
    free(got);

    /* a full buffer is written in one piece of whole lines */
    size_t fit = LOG_BUF_SIZE / line;
    for (size_t i = 0; i <= fit; i++)
        log_access(&a);
    got = take();
    assert_int_equal(strlen(got), fit * line);
    free(got);
    log_flush();
    got = take();
    assert_int_equal(strlen(got), line);
    free(got);
}

static void test_set_fd_flushes(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct log_access a = sample_access();
    log_access(&a);
    log_set_fd(p[1]); /* what was buffered goes to the old sink */
    char *got = take();
    assert_non_null(strstr(got, " access "));
    free(got);
    LOG_E("to the pipe %d", 2);
    char buf[128] = {0};
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 5000), 1); /* written at once: no waiting, but never hang */
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    assert_true(n > 0);
    assert_string_equal(buf, TIME " error to the pipe 2\n");
    log_set_fd(fileno(g_file));
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_lifted_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_ugly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_not_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summarize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_fd_flushes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
