/* libFuzzer target for cluster/sentinel.c and the host-less REDIS_URL of
 * cluster/url.c: what the registry reads from WHT_REDIS_SENTINELS,
 * WHT_REDIS_MASTER and REDIS_URL with sentinels, and from the sentinels and
 * the master.
 *
 * The first byte picks a mode (byte % 5; the seeds use '0'..'4'), the rest
 * is the input:
 *   0  WHT_REDIS_SENTINELS: a list that parses is written back as
 *      "host:port,..." (IPv6 in brackets) and must parse to the same entries
 *   1  a +switch-master payload: whatever parses formats back to exactly the
 *      input
 *   2  RESP bytes, read by hiredis's reader (fed whole and in two pieces at a
 *      split chosen by the second byte): the get-master-addr-by-name and ROLE
 *      interpreters run on every reply, and the split feed must agree
 *   3  REDIS_URL without a host: a URL that parses is rebuilt (user and
 *      password percent-encoded) and must parse to the same fields
 *   4  master names and hosts: the validators agree with the parsers
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster/cluster.h"
#include "fuzz_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_sentinels(const char *s, size_t len)
{
    static struct cluster_sentinels a, b;
    static char out[CLUSTER_MAX_SENTINELS * (CLUSTER_MAX_HOST_LEN + 9)];
    size_t n = 0;
    if (cluster_sentinels_parse(s, len, &a) != 0)
        return;
    if (a.n < 1 || a.n > CLUSTER_MAX_SENTINELS)
        abort();
    for (size_t i = 0; i < a.n; i++) {
        if (a.s[i].port == 0 || !cluster_valid_host(a.s[i].host, strlen(a.s[i].host)))
            abort();
        for (size_t j = 0; j < i; j++)
            if (a.s[j].port == a.s[i].port && strcmp(a.s[j].host, a.s[i].host) == 0)
                abort();
        if (i)
            out[n++] = ',';
        int w = util_hostport_format(out + n, sizeof(out) - n, a.s[i].host, a.s[i].port);
        if (w < 0)
            abort();
        n += (size_t)w;
    }
    if (n > CLUSTER_MAX_SENTINELS_LEN)
        return; /* brackets and ports made it longer than the setting may be */
    if (cluster_sentinels_parse(out, n, &b) != 0 || b.n != a.n)
        abort();
    for (size_t i = 0; i < a.n; i++)
        if (a.s[i].port != b.s[i].port || strcmp(a.s[i].host, b.s[i].host) != 0)
            abort();
}

static void fuzz_switch(const char *s, size_t len)
{
    char out[CLUSTER_MAX_SWITCH_LEN + 1];
    struct cluster_switch m;
    if (cluster_switch_parse(s, len, &m) != 0)
        return;
    if (m.name < s || m.name + m.name_len > s + len || m.new_host + m.new_host_len > s + len ||
        m.old_port == 0 || m.new_port == 0)
        abort();
    int n = cluster_switch_format(out, sizeof(out), &m);
    if (n < 0 || (size_t)n != len || memcmp(out, s, len) != 0)
        abort();
}

/* A summary of what the interpreters make of r, to compare two readings. */
static uint64_t interpret(const redisReply *r)
{
    uint64_t h = 1469598103934665603ULL;
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 1099511628211ULL)
    struct cluster_addr a;
    int found = -1, role = -1;
    int rc = cluster_reply_master_addr(r, &found, &a);
    MIX(rc);
    if (rc == 0) {
        MIX(found);
        if (found) {
            size_t hl = strlen(a.host);
            if (a.port == 0 || !cluster_valid_host(a.host, hl))
                abort();
            MIX(a.port), MIX(hl);
            for (size_t i = 0; i < hl; i++)
                MIX(a.host[i]);
        }
    }
    rc = cluster_reply_role(r, &role);
    MIX(rc);
    if (rc == 0) {
        if (role < CLUSTER_ROLE_MASTER || role > CLUSTER_ROLE_SENTINEL)
            abort();
        MIX(role);
    }
    return h;
#undef MIX
}

static void fuzz_url_auth(const char *s, size_t len)
{
    struct cluster_url u, v;
    static char rebuilt[16 + 3 * (CLUSTER_MAX_USER_LEN + CLUSTER_MAX_PASSWORD_LEN) + 32];
    int rc = cluster_url_parse_auth(s, len, &u);
    struct cluster_url w;
    if (rc != 0) {
        /* a URL with a host is refused here only for its host (or is malformed for both) */
        if (rc == CLUSTER_E_URL_HOST && cluster_url_parse(s, len, &w) == CLUSTER_E_URL_SCHEME)
            abort();
        return;
    }
    if (u.host[0] || u.port != 0 || u.db < 0 || (u.has_user && !u.has_password) ||
        u.has_password != (u.password_len > 0))
        abort();
    size_t n = (size_t)snprintf(rebuilt, sizeof(rebuilt), "redis://");
    if (u.has_password) {
        for (size_t i = 0; i < u.user_len; i++)
            n += (size_t)snprintf(rebuilt + n, sizeof(rebuilt) - n, "%%%02X", (unsigned char)u.user[i]);
        rebuilt[n++] = ':';
        for (size_t i = 0; i < u.password_len; i++)
            n += (size_t)snprintf(rebuilt + n, sizeof(rebuilt) - n, "%%%02X", (unsigned char)u.password[i]);
        rebuilt[n++] = '@';
    }
    n += (size_t)snprintf(rebuilt + n, sizeof(rebuilt) - n, "/%d", u.db);
    if (n > CLUSTER_MAX_URL_LEN)
        return;
    if (cluster_url_parse_auth(rebuilt, n, &v) != 0 || cluster_url_parse(rebuilt, n, &w) != CLUSTER_E_URL)
        abort();
    if (u.db != v.db || u.has_password != v.has_password || u.has_user != v.has_user ||
        u.password_len != v.password_len || memcmp(u.password, v.password, u.password_len) != 0 ||
        u.user_len != v.user_len || memcmp(u.user, v.user, u.user_len) != 0)
        abort();
}

static void fuzz_names(const char *s, size_t len)
{
    char buf[CLUSTER_MAX_SWITCH_LEN + 64];
    struct cluster_switch m;
    struct cluster_sentinels sl;
    int name = cluster_valid_master_name(s, len), host = cluster_valid_host(s, len);
    /* a valid name makes a valid +switch-master message, and only a valid one does */
    if (len <= CLUSTER_MAX_MASTER_NAME_LEN + 1) {
        memcpy(buf, s, len);
        memcpy(buf + len, " 1.2.3.4 1 ::1 2", 16);
        if ((cluster_switch_parse(buf, len + 16, &m) == 0) != name)
            abort();
    }
    /* a valid host makes a valid sentinel entry (in brackets if IPv6) */
    if (host) {
        char h[CLUSTER_MAX_HOST_LEN + 1];
        memcpy(h, s, len); /* valid: at most CLUSTER_MAX_HOST_LEN bytes, no NUL */
        h[len] = '\0';
        int w = util_hostport_format(buf, sizeof(buf), h, 26379);
        if (w < 0 || cluster_sentinels_parse(buf, (size_t)w, &sl) != 0 || sl.n != 1 ||
            strlen(sl.s[0].host) != len || memcmp(sl.s[0].host, s, len) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 5) {
    case 0: fuzz_sentinels(s, len); break;
    case 1: fuzz_switch(s, len); break;
    case 2: fuzz_resp(s, len, interpret); break;
    case 3: fuzz_url_auth(s, len); break;
    default: fuzz_names(s, len); break;
    }
    return 0;
}
