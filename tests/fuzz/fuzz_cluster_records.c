/* libFuzzer target for cluster/url.c and cluster/records.c: everything the
 * registry reads from its configuration and from Redis.
 *
 * The first byte picks a mode (byte % 8; the seeds use '0'..'7'), the rest
 * is the input:
 *   0  REDIS_URL: a URL that parses is rebuilt from its fields (user and
 *      password percent-encoded throughout) and must parse to the same fields
 *   1  a route value, 2 a member value, 3 a pub/sub message, 6 a node info
 *      value: whatever parses formats back to exactly the input (one
 *      spelling per value)
 *   4  RESP bytes, read by hiredis's reader (fed whole and in two pieces at a
 *      split chosen by the second byte): every reply interpreter is run on
 *      every reply (an array also as an MGET of info keys), and the split
 *      feed must interpret the same way
 *   5, 7  identifiers and numbers: the validators agree with the formatters
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster/cluster.h"
#include "fuzz_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_url(const char *s, size_t len)
{
    struct cluster_url u, v;
    static char
        rebuilt[16 + 3 * (CLUSTER_MAX_USER_LEN + CLUSTER_MAX_PASSWORD_LEN) + CLUSTER_MAX_HOST_LEN + 32];
    if (cluster_url_parse(s, len, &u) != 0)
        return;
    if (!u.host[0] || u.port == 0 || u.db < 0 || u.password_len > CLUSTER_MAX_PASSWORD_LEN ||
        u.user_len > CLUSTER_MAX_USER_LEN || (u.has_user && !u.has_password) ||
        (u.has_password != (u.password_len > 0)))
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
    n += (size_t)snprintf(rebuilt + n, sizeof(rebuilt) - n, u.ipv6 ? "[%s]:%u/%d" : "%s:%u/%d", u.host,
                          (unsigned)u.port, u.db);
    if (n > CLUSTER_MAX_URL_LEN)
        return; /* escaping made it longer than a URL may be */
    if (cluster_url_parse(rebuilt, n, &v) != 0)
        abort();
    if (strcmp(u.host, v.host) != 0 || u.port != v.port || u.db != v.db || u.ipv6 != v.ipv6 ||
        u.has_password != v.has_password || u.has_user != v.has_user || u.password_len != v.password_len ||
        memcmp(u.password, v.password, u.password_len) != 0 || u.user_len != v.user_len ||
        memcmp(u.user, v.user, u.user_len) != 0)
        abort();
}

static void fuzz_values(int mode, const char *s, size_t len)
{
    char out[CLUSTER_MAX_MSG_LEN + 64];
    int n = -1;
    if (mode == 1) {
        struct cluster_route_value v;
        if (cluster_route_value_parse(s, len, &v) != 0)
            return;
        if (v.node < s || v.node + v.node_len > s + len)
            abort();
        n = cluster_route_value_format(out, sizeof(out), v.gen, v.node, v.node_len);
    } else if (mode == 2) {
        struct cluster_member_value m;
        if (cluster_member_value_parse(s, len, &m) != 0)
            return;
        n = cluster_member_value_format(out, sizeof(out), m.node, m.node_len, m.addr, m.addr_len, m.boot);
    } else if (mode == 6) {
        struct cluster_info_value v;
        if (cluster_info_value_parse(s, len, &v) != 0)
            return;
        if ((v.draining != 0 && v.draining != 1) || len > CLUSTER_MAX_INFO_VALUE)
            abort();
        n = cluster_info_value_format(out, sizeof(out), v.workers, v.draining, v.boot);
    } else {
        struct cluster_msg m;
        if (cluster_msg_parse(s, len, &m) != 0)
            return;
        n = cluster_msg_format(out, sizeof(out), &m);
    }
    if (n < 0 || (size_t)n != len || memcmp(out, s, len) != 0)
        abort();
}

/* What the MGET interpreters make of r (an array is taken as an MGET of as many info keys). */
static uint64_t interpret_mget(const redisReply *r, uint64_t h)
{
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 1099511628211ULL)
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    struct cluster_info_value v;
    int found;
    int rc = cluster_reply_mget(r, n);
    MIX(rc);
    if (cluster_reply_mget(r, n + 1) != (r->type == REDIS_REPLY_ERROR ? CLUSTER_E_REDIS : CLUSTER_E_SYNTAX))
        abort();
    if (rc != 0)
        return h;
    for (size_t i = 0; i < n; i++) {
        found = -1;
        int irc = cluster_reply_info(r, i, &found, &v);
        MIX(irc), MIX(found);
        if (irc != 0 && found != 0)
            abort();
        if (irc == 0 && found == 1) {
            if (v.draining != 0 && v.draining != 1)
                abort();
            MIX(v.workers), MIX(v.draining), MIX(v.boot);
        }
    }
    if (cluster_reply_info(r, n, &found, &v) != CLUSTER_E_SYNTAX || found != 0)
        abort();
    return h;
#undef MIX
}

/* A summary of what every interpreter makes of r, to compare two readings. */
static uint64_t interpret(const redisReply *r)
{
    uint64_t h = 1469598103934665603ULL;
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 1099511628211ULL)
    int st = -1, d = -1, found = -1, kind = -1;
    struct cluster_route_value v;
    char sha[41];
    int64_t now;
    const redisReply *members;
    const char *prev, *ch, *payload;
    size_t prev_len, chl, pl;
    int rc = cluster_reply_assert(r, "self", 4, &st, &v);
    MIX(rc);
    if (rc == 0) {
        MIX(st), MIX(v.gen), MIX(v.node_len);
        if (v.node_len > CLUSTER_MAX_NODE_LEN || v.gen == 0 || v.gen > CLUSTER_GEN_MAX)
            abort();
    }
    rc = cluster_reply_release(r, &d);
    MIX(rc), MIX(rc == 0 ? d : 7);
    rc = cluster_reply_get(r, &found, &v);
    MIX(rc);
    if (rc == 0) {
        MIX(found);
        if (found)
            MIX(v.gen);
    }
    rc = cluster_reply_heartbeat(r, &now, &members, &prev, &prev_len);
    MIX(rc);
    if (rc == 0) {
        MIX(now), MIX(members->elements), MIX(prev_len);
        if (members->elements > CLUSTER_MAX_NODES || now < 0)
            abort();
        for (size_t i = 0; i < members->elements; i++) {
            struct cluster_member_value m;
            int mrc = cluster_reply_member(members, i, &m);
            MIX(mrc);
            if (mrc == 0)
                MIX(m.boot), MIX(m.addr_len);
        }
        MIX(cluster_reply_member(members, members->elements, NULL) == CLUSTER_E_SYNTAX);
    }
    rc = cluster_reply_sha(r, sha);
    MIX(rc);
    if (rc == 0 && strlen(sha) != 40)
        abort();
    MIX(cluster_reply_ok(r));
    MIX(cluster_reply_error(r));
    rc = cluster_reply_push(r, &kind, &ch, &chl, &payload, &pl);
    MIX(rc);
    if (rc == 0) {
        MIX(kind), MIX(chl);
        if (kind == CLUSTER_PUSH_MESSAGE) {
            struct cluster_msg m;
            MIX(pl), MIX(cluster_msg_parse(payload, pl, &m));
        }
    }
    return interpret_mget(r, h);
#undef MIX
}

static void fuzz_ids(const char *s, size_t len)
{
    uint64_t v;
    char out[21];
    int id = util_valid_worker_id(s, len), node = cluster_valid_node(s, len);
    if (node && !id)
        abort(); /* every node id would also be a valid worker id */
    if (id && (len == 0 || len > CLUSTER_MAX_ID_LEN || memchr(s, ' ', len)))
        abort();
    if (cluster_valid_addr(s, len) && (!memchr(s, ':', len) || memchr(s, ' ', len)))
        abort();
    if (cluster_parse_u64(s, len, UINT64_MAX, &v) == 0) {
        size_t n = cluster_format_u64(out, v);
        if (n != len || memcmp(out, s, len) != 0)
            abort();
    }
    if (cluster_parse_u64(s, len, CLUSTER_GEN_MAX, &v) == 0 && v > CLUSTER_GEN_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384)
        return 0;
    int mode = data[0] % 8;
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    switch (mode) {
    case 0: fuzz_url(s, len); break;
    case 1:
    case 2:
    case 3:
    case 6: fuzz_values(mode, s, len); break;
    case 4: fuzz_resp(s, len, interpret); break;
    default: fuzz_ids(s, len); break;
    }
    return 0;
}
