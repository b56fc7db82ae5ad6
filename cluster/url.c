/* REDIS_URL parsing and the identifier checks shared by the cluster module
 * (the worker-id and host:port rules are util/util.h's). Sans-I/O: strings
 * in, a struct out. */
#include <string.h>
#include <strings.h>

#include "cluster/cluster.h"

const char *cluster_strerror(int err)
{
    switch (err) {
    case CLUSTER_OK: return "ok";
    case CLUSTER_E_INVAL: return "invalid argument";
    case CLUSTER_E_NOMEM: return "out of memory";
    case CLUSTER_E_URL: return "malformed REDIS_URL: expected redis://[[user]:password@]host[:port][/db]";
    case CLUSTER_E_URL_SCHEME:
        return "REDIS_URL must start with redis:// (rediss:// is not supported: hiredis 0.14 has no TLS)";
    case CLUSTER_E_TOO_LONG: return "value too long";
    case CLUSTER_E_SYNTAX: return "malformed value from Redis";
    case CLUSTER_E_LIMIT: return "cluster table full";
    case CLUSTER_E_DOWN: return "Redis is unreachable";
    case CLUSTER_E_TIMEOUT: return "Redis did not answer in time";
    case CLUSTER_E_AUTH: return "Redis refused the credentials (check the password in REDIS_URL)";
    case CLUSTER_E_REDIS: return "Redis answered with an error";
    case CLUSTER_E_DNS: return "cannot resolve the Redis host";
    case CLUSTER_E_CLOSED: return "cluster registry closed";
    case CLUSTER_E_CONNECT: return "cannot connect to Redis";
    case CLUSTER_E_NOT_MASTER:
        return "the Redis a sentinel named is not a master (a stale sentinel or a demoted master)";
    case CLUSTER_E_NO_MASTER:
        return "no sentinel gave the master's address (check WHT_REDIS_SENTINELS and WHT_REDIS_MASTER)";
    case CLUSTER_E_SENTINELS:
        return "malformed WHT_REDIS_SENTINELS: expected host:port[,host:port...] (at most 16)";
    case CLUSTER_E_URL_HOST:
        return "with WHT_REDIS_SENTINELS, REDIS_URL gives only the credentials and the database: "
               "redis://[[user]:password@]/[db], without a host (the sentinels name the master)";
    case CLUSTER_E_MASTER_NAME: return "malformed WHT_REDIS_MASTER: expected 1 to 128 of [A-Za-z0-9_.:-]";
    }
    return "unknown cluster error";
}

/* ---- identifiers ------------------------------------------------------------------------ */

int cluster_valid_node(const char *s, size_t len)
{
    return s && len >= 1 && len <= CLUSTER_MAX_NODE_LEN && util_chars_only(s, len, "_.-");
}

int cluster_valid_prefix(const char *s, size_t len)
{
    return (s || len == 0) && len <= CLUSTER_MAX_PREFIX_LEN && util_chars_only(s, len, "_.:/{}-");
}

int cluster_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return CLUSTER_E_SYNTAX;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CLUSTER_E_SYNTAX;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return CLUSTER_E_SYNTAX;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

size_t cluster_format_u64(char out[21], uint64_t v)
{
    char tmp[21];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

int cluster_valid_addr(const char *s, size_t len)
{
    struct util_hostport hp = {0};
    if (!s || len == 0 || len > CLUSTER_MAX_ADDR_LEN)
        return 0;
    return util_hostport_parse(s, len, 0, &hp) == 0;
}

/* ---- REDIS_URL -------------------------------------------------------------------------- */

static int url__hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s (len bytes, printable ASCII but '@') into out (cap bytes
 * plus a NUL). Returns the decoded length, -1 on bad syntax, -2 if too long. */
static long url__decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '@')
            return -1;
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                return -1;
            hi = url__hex((unsigned char)s[i + 1]);
            lo = url__hex((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (n >= cap)
            return -2;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return (long)n;
}

static int url__fail(struct cluster_url *out, int err)
{
    memset(out, 0, sizeof(*out));
    return err;
}

/* "redis://" (any case) starts url; else which error it is. */
static int url__scheme(const char *url, size_t len)
{
    static const char scheme[] = "redis://";
    const size_t sl = sizeof(scheme) - 1;
    if (len >= sl && strncasecmp(url, scheme, sl) == 0)
        return 0;
    if (len >= 9 && strncasecmp(url, "rediss://", 9) == 0)
        return CLUSTER_E_URL_SCHEME;
    /* "host:port" alone, "unix://", "http://"...: not a redis:// URL */
    return memchr(url, ':', len) && memmem(url, len, "://", 3) ? CLUSTER_E_URL_SCHEME : CLUSTER_E_URL;
}

/* The user information p..at ("[user]:password", before the '@' at at; auth_end
 * ends the authority) into out. Returns 0 or an error. */
static int url__userinfo(const char *p, const char *at, const char *auth_end, struct cluster_url *out)
{
    const char *colon = memchr(p, ':', (size_t)(at - p));
    long n;
    if (!colon)
        return CLUSTER_E_URL; /* "user@" without a password */
    if (memchr(at + 1, '@', (size_t)(auth_end - at - 1)))
        return CLUSTER_E_URL; /* a password's own '@' is written %40 */
    n = url__decode(p, (size_t)(colon - p), out->user, CLUSTER_MAX_USER_LEN);
    if (n < 0)
        return n == -2 ? CLUSTER_E_TOO_LONG : CLUSTER_E_URL;
    out->user_len = (size_t)n;
    out->has_user = n > 0;
    if (memchr(out->user, '\0', out->user_len) || memchr(out->user, ' ', out->user_len))
        return CLUSTER_E_URL;
    n = url__decode(colon + 1, (size_t)(at - colon - 1), out->password, CLUSTER_MAX_PASSWORD_LEN);
    if (n < 0)
        return n == -2 ? CLUSTER_E_TOO_LONG : CLUSTER_E_URL;
    if (n == 0)
        return CLUSTER_E_URL; /* "redis://:@host": an empty password */
    out->password_len = (size_t)n;
    out->has_password = 1;
    return 0;
}

/* host[:port], len bytes at p, into out (port 6379 when absent). */
static int url__hostport(const char *p, size_t len, struct cluster_url *out)
{
    struct util_hostport hp = {.port = 6379};
    int rc = util_hostport_parse(p, len, UTIL_HP_PORT_OPTIONAL, &hp);
    if (rc != 0)
        return rc == UTIL_E_TOO_LONG ? CLUSTER_E_TOO_LONG : CLUSTER_E_URL;
    memcpy(out->host, hp.host, hp.host_len);
    out->host[hp.host_len] = '\0';
    out->ipv6 = hp.ipv6;
    out->port = (uint16_t)hp.port;
    return 0;
}

/* [/[db]]: the rest of the URL after the authority, len bytes at p. */
static int url__db(const char *p, size_t len, struct cluster_url *out)
{
    uint64_t v;
    if (len == 0)
        return 0;
    if (*p != '/')
        return CLUSTER_E_URL; /* a query or fragment */
    if (len > 1) {
        if (cluster_parse_u64(p + 1, len - 1, CLUSTER_MAX_DB, &v) != 0)
            return CLUSTER_E_URL;
        out->db = (int)v;
    }
    return 0;
}

/* Both URL forms: with_host 1 for redis://...host..., 0 for the host-less
 * form of cluster_url_parse_auth(). */
static int url__parse(const char *url, size_t len, int with_host, struct cluster_url *out)
{
    const char *p, *end, *auth_end, *at;
    int rc;

    if (!out)
        return CLUSTER_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (!url)
        return CLUSTER_E_INVAL;
    if (len > CLUSTER_MAX_URL_LEN)
        return url__fail(out, CLUSTER_E_TOO_LONG);
    if ((rc = url__scheme(url, len)) != 0)
        return url__fail(out, rc);
    p = url + sizeof("redis://") - 1;
    end = url + len;
    for (const char *q = p; q < end; q++)
        if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e)
            return url__fail(out, CLUSTER_E_URL);
    /* the authority ends at the first '/', '?' or '#' */
    auth_end = p;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#')
        auth_end++;
    at = memchr(p, '@', (size_t)(auth_end - p));
    if (at) {
        if ((rc = url__userinfo(p, at, auth_end, out)) != 0)
            return url__fail(out, rc);
        p = at + 1;
    }
    if (with_host)
        rc = url__hostport(p, (size_t)(auth_end - p), out);
    else
        rc = p == auth_end ? 0 : CLUSTER_E_URL_HOST;
    if (rc != 0 || (rc = url__db(auth_end, (size_t)(end - auth_end), out)) != 0)
        return url__fail(out, rc);
    return 0;
}

int cluster_url_parse(const char *url, size_t len, struct cluster_url *out)
{
    return url__parse(url, len, 1, out);
}

int cluster_url_parse_auth(const char *url, size_t len, struct cluster_url *out)
{
    return url__parse(url, len, 0, out);
}
