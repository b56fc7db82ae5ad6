/* Redis Sentinel, the sans-I/O part: WHT_REDIS_SENTINELS and WHT_REDIS_MASTER,
 * and what the sentinels and the master answer that the registry acts on
 * (SENTINEL get-master-addr-by-name, ROLE, +switch-master messages). No
 * sockets, no logging: strings and hiredis reply trees in, values out. The
 * I/O that uses them is discover.c. */
#include <string.h>

#include "cluster/cluster.h"

/* ---- settings --------------------------------------------------------------------------- */

int cluster_valid_master_name(const char *s, size_t len)
{
    return s && len >= 1 && len <= CLUSTER_MAX_MASTER_NAME_LEN && util_chars_only(s, len, "_.:-");
}

int cluster_valid_host(const char *s, size_t len)
{
    char buf[CLUSTER_MAX_HOST_LEN + 5];
    struct util_hostport hp = {0};
    size_t n = 0;
    if (!s || len == 0 || len > CLUSTER_MAX_HOST_LEN)
        return 0;
    if (memchr(s, ':', len)) { /* an IPv6 address: util_hostport_parse() checks it in brackets */
        buf[n++] = '[';
        memcpy(buf + n, s, len);
        n += len;
        buf[n++] = ']';
    } else {
        memcpy(buf, s, len);
        n = len;
    }
    memcpy(buf + n, ":1", 2);
    return util_hostport_parse(buf, n + 2, 0, &hp) == 0 && hp.host_len == len;
}

static int sen__is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One entry, p..e (blanks around already removed), into a. Returns 0 or an error. */
static int sen__entry(const char *p, const char *e, struct cluster_addr *a)
{
    struct util_hostport hp = {.port = CLUSTER_SENTINEL_PORT};
    int rc = util_hostport_parse(p, (size_t)(e - p), UTIL_HP_PORT_OPTIONAL, &hp);
    if (rc != 0)
        return rc == UTIL_E_TOO_LONG ? CLUSTER_E_TOO_LONG : CLUSTER_E_SENTINELS;
    memcpy(a->host, hp.host, hp.host_len);
    a->host[hp.host_len] = '\0';
    a->port = (uint16_t)hp.port;
    return 0;
}

int cluster_sentinels_parse(const char *s, size_t len, struct cluster_sentinels *out)
{
    const char *p, *end;
    int rc = 0;
    if (!out)
        return CLUSTER_E_INVAL;
    memset(out, 0, sizeof(*out));
    if (!s)
        return CLUSTER_E_INVAL;
    if (len > CLUSTER_MAX_SENTINELS_LEN)
        return CLUSTER_E_TOO_LONG;
    p = s;
    end = s + len;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        while (p < e && sen__is_blank(*p))
            p++;
        while (e > p && sen__is_blank(e[-1]))
            e--;
        if (p == e || out->n == CLUSTER_MAX_SENTINELS) {
            rc = CLUSTER_E_SENTINELS; /* an empty entry, or one too many */
            break;
        }
        struct cluster_addr *a = &out->s[out->n];
        if ((rc = sen__entry(p, e, a)) != 0)
            break;
        for (size_t i = 0; i < out->n && rc == 0; i++)
            if (out->s[i].port == a->port && strcmp(out->s[i].host, a->host) == 0)
                rc = CLUSTER_E_SENTINELS;
        if (rc != 0)
            break;
        out->n++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
    memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- replies ---------------------------------------------------------------------------- */

static int sen__is_string(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str;
}

int cluster_reply_master_addr(const redisReply *r, int *found, struct cluster_addr *out)
{
    int port;
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return cluster_reply_error(r);
    if (r->type == REDIS_REPLY_NIL) {
        *found = 0;
        return 0;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element)
        return CLUSTER_E_SYNTAX;
    const redisReply *h = r->element[0], *p = r->element[1];
    if (!sen__is_string(h) || !sen__is_string(p) || !cluster_valid_host(h->str, h->len))
        return CLUSTER_E_SYNTAX;
    if ((port = util_port_parse(p->str, p->len, 0)) < 0)
        return CLUSTER_E_SYNTAX;
    memcpy(out->host, h->str, h->len);
    out->host[h->len] = '\0';
    out->port = (uint16_t)port;
    *found = 1;
    return 0;
}

static int sen__word(const redisReply *r, const char *w)
{
    size_t n = strlen(w);
    return sen__is_string(r) && r->len == n && memcmp(r->str, w, n) == 0;
}

static int sen__type(const redisReply *r, int type)
{
    return r && r->type == type;
}

int cluster_reply_role(const redisReply *r, int *role)
{
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return cluster_reply_error(r);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !r->element)
        return CLUSTER_E_SYNTAX;
    const redisReply *const *e = (const redisReply *const *)r->element;
    if (sen__word(e[0], "master") && r->elements == 3 && sen__type(e[1], REDIS_REPLY_INTEGER) &&
        sen__type(e[2], REDIS_REPLY_ARRAY)) {
        *role = CLUSTER_ROLE_MASTER;
        return 0;
    }
    if (sen__word(e[0], "slave") && r->elements == 5 && sen__is_string(e[1]) &&
        sen__type(e[2], REDIS_REPLY_INTEGER) && sen__is_string(e[3]) &&
        sen__type(e[4], REDIS_REPLY_INTEGER)) {
        *role = CLUSTER_ROLE_REPLICA;
        return 0;
    }
    if (sen__word(e[0], "sentinel") && r->elements == 2 && sen__type(e[1], REDIS_REPLY_ARRAY)) {
        *role = CLUSTER_ROLE_SENTINEL;
        return 0;
    }
    return CLUSTER_E_SYNTAX;
}

/* ---- +switch-master --------------------------------------------------------------------- */

int cluster_switch_parse(const char *buf, size_t len, struct cluster_switch *out)
{
    const char *f[5];
    size_t fl[5], n = 0;
    const char *p = buf, *end = buf + len;
    int op, np;
    if (!buf || !out || len > CLUSTER_MAX_SWITCH_LEN)
        return CLUSTER_E_SYNTAX;
    while (n < 5) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        f[n] = p;
        fl[n] = (size_t)((sp ? sp : end) - p);
        n++;
        if (!sp)
            break;
        p = sp + 1;
    }
    if (n != 5 || f[4] + fl[4] != end) /* fewer fields, or a space in the last one */
        return CLUSTER_E_SYNTAX;
    if (!cluster_valid_master_name(f[0], fl[0]) || !cluster_valid_host(f[1], fl[1]) ||
        !cluster_valid_host(f[3], fl[3]) || (op = util_port_parse(f[2], fl[2], 0)) < 0 ||
        (np = util_port_parse(f[4], fl[4], 0)) < 0)
        return CLUSTER_E_SYNTAX;
    out->name = f[0];
    out->name_len = fl[0];
    out->old_host = f[1];
    out->old_host_len = fl[1];
    out->old_port = (uint16_t)op;
    out->new_host = f[3];
    out->new_host_len = fl[3];
    out->new_port = (uint16_t)np;
    return 0;
}

int cluster_switch_format(char *out, size_t cap, const struct cluster_switch *m)
{
    char ports[2][21];
    size_t pl[2], n;
    if (!out || !m || !cluster_valid_master_name(m->name, m->name_len) ||
        !cluster_valid_host(m->old_host, m->old_host_len) ||
        !cluster_valid_host(m->new_host, m->new_host_len) || m->old_port == 0 || m->new_port == 0)
        return CLUSTER_E_INVAL;
    pl[0] = cluster_format_u64(ports[0], m->old_port);
    pl[1] = cluster_format_u64(ports[1], m->new_port);
    n = m->name_len + 1 + m->old_host_len + 1 + pl[0] + 1 + m->new_host_len + 1 + pl[1];
    if (n + 1 > cap)
        return CLUSTER_E_TOO_LONG;
    char *o = out;
    memcpy(o, m->name, m->name_len), o += m->name_len, *o++ = ' ';
    memcpy(o, m->old_host, m->old_host_len), o += m->old_host_len, *o++ = ' ';
    memcpy(o, ports[0], pl[0]), o += pl[0], *o++ = ' ';
    memcpy(o, m->new_host, m->new_host_len), o += m->new_host_len, *o++ = ' ';
    memcpy(o, ports[1], pl[1]), o += pl[1];
    *o = '\0';
    return (int)n;
}
