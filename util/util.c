/* util: the clock, the worker-id rule, host:port parsing, malloc settings (see util.h). */
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

void util_keep_heap(void)
{
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
}

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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

const char *util_strerror(int err)
{
    switch (err) {
    case UTIL_OK: return "ok";
    case UTIL_E_HOST:
        return "bad host: expected a name or IPv4 address of letters, digits, '-', '.' and '_', or an "
               "[IPv6] address";
    case UTIL_E_PORT: return "bad port: expected 1-65535 in decimal, without sign or leading zero";
    case UTIL_E_TOO_LONG: return "host name too long (at most 253 bytes)";
    }
    return "unknown util error";
}

int util_port_parse(const char *s, size_t len, unsigned flags)
{
    int v = 0;
    if (!s || len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return UTIL_E_PORT;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return UTIL_E_PORT;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535 || (v == 0 && !(flags & UTIL_HP_PORT_ZERO)))
        return UTIL_E_PORT;
    return v;
}

/* A host name or IPv4 address (see util_hostport_parse). */
static int util__hostname(const char *s, size_t len)
{
    if (len == 0)
        return UTIL_E_HOST;
    if (len > UTIL_MAX_HOST_LEN)
        return UTIL_E_TOO_LONG;
    if (!util_chars_only(s, len, "-._") || s[0] == '.' || memmem(s, len, "..", 2))
        return UTIL_E_HOST;
    return 0;
}

int util_hostport_parse(const char *s, size_t len, unsigned flags, struct util_hostport *out)
{
    struct util_hostport hp = {.port = out->port};
    const char *end = s + len, *rest;
    int rc;
    if (!s || len == 0)
        return UTIL_E_HOST;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (!rb || !util__ipv6(s + 1, (size_t)(rb - s - 1)))
            return UTIL_E_HOST;
        hp.host = s + 1;
        hp.host_len = (size_t)(rb - s - 1);
        hp.ipv6 = 1;
        rest = rb + 1;
    } else {
        const char *colon = memchr(s, ':', len);
        rest = colon ? colon : end;
        hp.host = s;
        hp.host_len = (size_t)(rest - s);
        if ((rc = util__hostname(s, hp.host_len)) != 0)
            return rc;
    }
    if (rest == end) {
        if (!(flags & UTIL_HP_PORT_OPTIONAL))
            return UTIL_E_PORT;
    } else if (*rest != ':' || (hp.port = util_port_parse(rest + 1, (size_t)(end - rest - 1), flags)) < 0) {
        return UTIL_E_PORT;
    }
    *out = hp;
    return 0;
}

int util_hostport_format(char *out, size_t cap, const char *host, int port)
{
    int n = snprintf(out, cap, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    return n >= 0 && (size_t)n < cap ? n : -1;
}
