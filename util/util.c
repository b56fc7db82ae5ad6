/* util: the clock, the worker-id rule, host:port parsing (see util.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int util__alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int util_chars_only(const char *s, size_t len, const char *extra)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!util__alnum(c) && (c == '\0' || !strchr(extra, c)))
            return 0;
    }
    return 1;
}

int util_valid_worker_id(const char *id, size_t len)
{
    return id && len >= 1 && len <= UTIL_MAX_ID_LEN && util_chars_only(id, len, UTIL_ID_CHARS);
}

/* An IPv6 literal as it stands between brackets: a loose check, the
 * resolver has the final word. */
static int util__ipv6(const char *s, size_t len)
{
    size_t colons = 0;
    if (len < 2 || len > 45)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ':')
            colons++;
        else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.'))
            return 0;
    }
    return colons >= 2;
}

static int util__port(const char *s, size_t len, unsigned flags, int *port)
{
    int v = 0;
    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535 || (v == 0 && !(flags & UTIL_HP_PORT_ZERO)))
        return -1;
    *port = v;
    return 0;
}

int util_hostport_parse(const char *s, size_t len, unsigned flags, struct util_hostport *out)
{
    struct util_hostport hp = {.port = out->port};
    const char *end = s + len, *rest;
    if (!s || len == 0)
        return -1;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (!rb || !util__ipv6(s + 1, (size_t)(rb - s - 1)))
            return -1;
        hp.host = s + 1;
        hp.host_len = (size_t)(rb - s - 1);
        hp.ipv6 = 1;
        rest = rb + 1;
    } else {
        const char *colon = memchr(s, ':', len);
        rest = colon ? colon : end;
        hp.host = s;
        hp.host_len = (size_t)(rest - s);
        if (hp.host_len == 0 || hp.host_len > 253 || !util_chars_only(s, hp.host_len, "-._"))
            return -1;
    }
    if (rest == end) {
        if (!(flags & UTIL_HP_PORT_OPTIONAL))
            return -1;
    } else if (*rest != ':' || util__port(rest + 1, (size_t)(end - rest - 1), flags, &hp.port) != 0) {
        return -1;
    }
    *out = hp;
    return 0;
}

int util_hostport_format(char *out, size_t cap, const char *host, int port)
{
    int n = snprintf(out, cap, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    return n >= 0 && (size_t)n < cap ? n : -1;
}
