/* What the registry stores in Redis and publishes, the replies it reads, and
 * its Lua scripts. Sans-I/O: every parser takes (pointer, length) or a
 * hiredis reply tree, checks everything, and points into its input. */
#include <string.h>
#include <strings.h>

#include "cluster/cluster.h"

/* ---- Lua ---------------------------------------------------------------------------------
 * Lua numbers are doubles: generations stay below 2^53 and are turned into
 * text with string.format('%d', n), never tostring() (which prints 1.8e+15).
 * Every key a script touches is declared in KEYS. */

/* Asserts (id -> gen node). ARGV[3] "0" takes a new generation: INCR of the
 * counter, raised to at least the time floor ARGV[4] and above the current
 * record's generation. Otherwise ARGV[3] is the generation to assert, and
 * the counter is raised to it. The record is replaced only by a strictly
 * newer generation, or by any generation of the same node; equal or newer
 * elsewhere means we lost. */
static const char cluster__script_assert[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "local cg, cn\n"
    "if cur then\n"
    "  cg, cn = string.match(cur, '^([1-9]%d*) ([%w_.%-]+)$')\n"
    "  if cg and #cg > 16 then cg = nil end\n"
    "end\n"
    "local g\n"
    "if ARGV[3] == '0' then\n"
    "  local n = redis.call('INCR', KEYS[2])\n"
    "  local f = tonumber(ARGV[4])\n"
    "  if cg and tonumber(cg) >= f then f = tonumber(cg) + 1 end\n"
    "  if n < f then\n"
    "    redis.call('SET', KEYS[2], string.format('%d', f))\n"
    "    n = f\n"
    "  end\n"
    "  g = string.format('%d', n)\n"
    "else\n"
    "  g = ARGV[3]\n"
    "  local n = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "  if n == nil or n < tonumber(g) then redis.call('SET', KEYS[2], g) end\n"
    "end\n"
    "if cg then\n"
    "  local c = tonumber(cg)\n"
    "  if cn == ARGV[2] then\n"
    "    if c >= tonumber(g) then\n"
    "      redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "      return {1, cur}\n"
    "    end\n"
    "  elseif c >= tonumber(g) then\n"
    "    return {0, cur}\n"
    "  end\n"
    "end\n"
    "local v = g .. ' ' .. ARGV[2]\n"
    "redis.call('SET', KEYS[1], v, 'PX', ARGV[5])\n"
    "redis.call('PUBLISH', ARGV[6], 'set ' .. ARGV[1] .. ' ' .. v)\n"
    "return {2, v}\n";

/* Deletes the record only if it is still exactly ARGV[2] ("gen node"). */
static const char cluster__script_release[] =
    "if redis.call('GET', KEYS[1]) == ARGV[2] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('PUBLISH', ARGV[3], 'del ' .. ARGV[1] .. ' ' .. ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* Heartbeat: the member key with its TTL (and the node info key with the
 * same TTL, when the node gave its info), the members sorted set scored by
 * expiry on Redis's clock, "join" when the key was absent or different, a
 * "ping" on this node's own channel (proves its subscriber connection), and
 * the live members. */
static const char cluster__script_beat[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local old = redis.call('GET', KEYS[1])\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[2]) end\n"
    "if old and old ~= ARGV[1] then redis.call('ZREM', KEYS[2], old) end\n"
    "redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
    "if old ~= ARGV[1] then\n"
    "  redis.call('PUBLISH', ARGV[3], 'join ' .. ARGV[1] .. ' ' .. string.format('%d', now))\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[4], 'ping')\n"
    "local m = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. string.format('%d', now), '+inf', 'LIMIT', 0, "
    "tonumber(ARGV[5]))\n"
    "return {now, m, old or ''}\n";

/* Clean departure: the member key (if still ours), the info key (if this
 * incarnation wrote it: its value ends with our boot id, as ARGV[2] does),
 * the sorted set entry, "leave". */
static const char cluster__script_leave[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "local i = redis.call('GET', KEYS[3])\n"
    "if i and string.sub(i, -17) == ' ' .. string.sub(ARGV[2], -16) then redis.call('DEL', KEYS[3]) end\n"
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[3], 'leave ' .. ARGV[2] .. ' ' .. string.format('%d', now))\n"
    "return 1\n";

const char *cluster_script_text(enum cluster_script s)
{
    switch (s) {
    case CLUSTER_SCRIPT_ASSERT:
        return cluster__script_assert;
    case CLUSTER_SCRIPT_RELEASE:
        return cluster__script_release;
    case CLUSTER_SCRIPT_BEAT:
        return cluster__script_beat;
    case CLUSTER_SCRIPT_LEAVE:
        return cluster__script_leave;
    case CLUSTER_SCRIPT_COUNT:
        break;
    }
    return NULL;
}

/* ---- text helpers ----------------------------------------------------------------------- */

/* Splits buf at single spaces into exactly n non-empty fields. Returns 0 or -1. */
static int rec__split(const char *buf, size_t len, size_t n, const char **f, size_t *fl)
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || buf[i] == ' ') {
            if (i == start || k == n)
                return -1;
            f[k] = buf + start;
            fl[k] = i - start;
            k++;
            start = i + 1;
        }
    }
    return k == n ? 0 : -1;
}

static int rec__boot_parse(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len != CLUSTER_BOOT_HEX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static void rec__boot_format(char out[CLUSTER_BOOT_HEX], uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = CLUSTER_BOOT_HEX - 1; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
}

static int rec__gen_parse(const char *s, size_t len, uint64_t *out)
{
    if (cluster_parse_u64(s, len, CLUSTER_GEN_MAX, out) != 0 || *out == 0)
        return -1;
    return 0;
}

/* A tiny appender: writes pieces into out, remembering overflow. */
struct rec__out {
    char *p;
    size_t cap, n;
    int overflow;
};

static void rec__put(struct rec__out *o, const char *s, size_t len)
{
    if (o->overflow || len >= o->cap - o->n) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->n, s, len);
    o->n += len;
}

static void rec__put_u64(struct rec__out *o, uint64_t v)
{
    char tmp[21];
    rec__put(o, tmp, cluster_format_u64(tmp, v));
}

static int rec__finish(struct rec__out *o)
{
    if (o->overflow || o->cap == 0 || o->n > (size_t)INT32_MAX)
        return CLUSTER_E_TOO_LONG;
    o->p[o->n] = '\0';
    return (int)o->n;
}

/* ---- route and member values ------------------------------------------------------------ */

int cluster_route_value_format(char *out, size_t cap, uint64_t gen, const char *node, size_t node_len)
{
    struct rec__out o = {out, cap, 0, 0};
    if (!out || gen == 0 || gen > CLUSTER_GEN_MAX || !cluster_valid_node(node, node_len))
        return CLUSTER_E_INVAL;
    rec__put_u64(&o, gen);
    rec__put(&o, " ", 1);
    rec__put(&o, node, node_len);
    return rec__finish(&o);
}

int cluster_route_value_parse(const char *buf, size_t len, struct cluster_route_value *out)
{
    const char *f[2];
    size_t fl[2];
    if (!buf || !out || len > CLUSTER_MAX_ROUTE_VALUE || rec__split(buf, len, 2, f, fl) != 0)
        return CLUSTER_E_SYNTAX;
    if (rec__gen_parse(f[0], fl[0], &out->gen) != 0 || !cluster_valid_node(f[1], fl[1]))
        return CLUSTER_E_SYNTAX;
    out->node = f[1];
    out->node_len = fl[1];
    return 0;
}

int cluster_member_value_format(char *out, size_t cap, const char *node, size_t node_len, const char *addr,
                                size_t addr_len, uint64_t boot)
{
    struct rec__out o = {out, cap, 0, 0};
    char b[CLUSTER_BOOT_HEX];
    if (!out || !cluster_valid_node(node, node_len) || !cluster_valid_addr(addr, addr_len))
        return CLUSTER_E_INVAL;
    rec__boot_format(b, boot);
    rec__put(&o, node, node_len);
    rec__put(&o, " ", 1);
    rec__put(&o, addr, addr_len);
    rec__put(&o, " ", 1);
    rec__put(&o, b, sizeof(b));
    return rec__finish(&o);
}

int cluster_member_value_parse(const char *buf, size_t len, struct cluster_member_value *out)
{
    const char *f[3];
    size_t fl[3];
    if (!buf || !out || len > CLUSTER_MAX_MEMBER_VALUE || rec__split(buf, len, 3, f, fl) != 0)
        return CLUSTER_E_SYNTAX;
    if (!cluster_valid_node(f[0], fl[0]) || !cluster_valid_addr(f[1], fl[1]) ||
        rec__boot_parse(f[2], fl[2], &out->boot) != 0)
        return CLUSTER_E_SYNTAX;
    out->node = f[0];
    out->node_len = fl[0];
    out->addr = f[1];
    out->addr_len = fl[1];
    return 0;
}

/* ---- node info values ------------------------------------------------------------------- */

int cluster_info_value_format(char *out, size_t cap, uint32_t workers, int draining, uint64_t boot)
{
    struct rec__out o = {out, cap, 0, 0};
    char b[CLUSTER_BOOT_HEX];
    if (!out || (draining != 0 && draining != 1))
        return CLUSTER_E_INVAL;
    rec__boot_format(b, boot);
    rec__put_u64(&o, CLUSTER_INFO_VERSION);
    rec__put(&o, " ", 1);
    rec__put_u64(&o, workers);
    rec__put(&o, draining ? " 1 " : " 0 ", 3);
    rec__put(&o, b, sizeof(b));
    return rec__finish(&o);
}

int cluster_info_value_parse(const char *buf, size_t len, struct cluster_info_value *out)
{
    const char *f[4];
    size_t fl[4];
    uint64_t w;
    if (!buf || !out || len > CLUSTER_MAX_INFO_VALUE || rec__split(buf, len, 4, f, fl) != 0)
        return CLUSTER_E_SYNTAX;
    if (fl[0] != 1 || f[0][0] != '0' + CLUSTER_INFO_VERSION)
        return CLUSTER_E_SYNTAX;
    if (cluster_parse_u64(f[1], fl[1], UINT32_MAX, &w) != 0 || fl[2] != 1 ||
        (f[2][0] != '0' && f[2][0] != '1') || rec__boot_parse(f[3], fl[3], &out->boot) != 0)
        return CLUSTER_E_SYNTAX;
    out->workers = (uint32_t)w;
    out->draining = f[2][0] == '1';
    return 0;
}

/* ---- messages --------------------------------------------------------------------------- */

int cluster_msg_format(char *out, size_t cap, const struct cluster_msg *m)
{
    struct rec__out o = {out, cap, 0, 0};
    char b[CLUSTER_BOOT_HEX];
    if (!out || !m || !cluster_valid_node(m->node, m->node_len))
        return CLUSTER_E_INVAL;
    switch (m->type) {
    case CLUSTER_MSG_SET:
    case CLUSTER_MSG_DEL:
        if (!util_valid_worker_id(m->id, m->id_len) || m->gen == 0 || m->gen > CLUSTER_GEN_MAX)
            return CLUSTER_E_INVAL;
        rec__put(&o, m->type == CLUSTER_MSG_SET ? "set " : "del ", 4);
        rec__put(&o, m->id, m->id_len);
        rec__put(&o, " ", 1);
        rec__put_u64(&o, m->gen);
        rec__put(&o, " ", 1);
        rec__put(&o, m->node, m->node_len);
        break;
    case CLUSTER_MSG_JOIN:
    case CLUSTER_MSG_LEAVE:
        if (m->ms < 0 || (uint64_t)m->ms > CLUSTER_GEN_MAX)
            return CLUSTER_E_INVAL;
        if (m->type == CLUSTER_MSG_JOIN && !cluster_valid_addr(m->addr, m->addr_len))
            return CLUSTER_E_INVAL;
        rec__boot_format(b, m->boot);
        rec__put(&o, m->type == CLUSTER_MSG_JOIN ? "join " : "leave ", m->type == CLUSTER_MSG_JOIN ? 5 : 6);
        rec__put(&o, m->node, m->node_len);
        rec__put(&o, " ", 1);
        if (m->type == CLUSTER_MSG_JOIN) {
            rec__put(&o, m->addr, m->addr_len);
            rec__put(&o, " ", 1);
        }
        rec__put(&o, b, sizeof(b));
        rec__put(&o, " ", 1);
        rec__put_u64(&o, (uint64_t)m->ms);
        break;
    default:
        return CLUSTER_E_INVAL;
    }
    return rec__finish(&o);
}

int cluster_msg_parse(const char *buf, size_t len, struct cluster_msg *out)
{
    const char *f[5];
    size_t fl[5];
    uint64_t v;
    if (!buf || !out || len > CLUSTER_MAX_MSG_LEN)
        return CLUSTER_E_SYNTAX;
    memset(out, 0, sizeof(*out));
    if (len > 4 && (memcmp(buf, "set ", 4) == 0 || memcmp(buf, "del ", 4) == 0)) {
        if (rec__split(buf, len, 4, f, fl) != 0 || !util_valid_worker_id(f[1], fl[1]) ||
            rec__gen_parse(f[2], fl[2], &out->gen) != 0 || !cluster_valid_node(f[3], fl[3]))
            return CLUSTER_E_SYNTAX;
        out->type = buf[0] == 's' ? CLUSTER_MSG_SET : CLUSTER_MSG_DEL;
        out->id = f[1], out->id_len = fl[1];
        out->node = f[3], out->node_len = fl[3];
        return 0;
    }
    if (len > 5 && memcmp(buf, "join ", 5) == 0) {
        if (rec__split(buf, len, 5, f, fl) != 0 || !cluster_valid_node(f[1], fl[1]) ||
            !cluster_valid_addr(f[2], fl[2]) || rec__boot_parse(f[3], fl[3], &out->boot) != 0 ||
            cluster_parse_u64(f[4], fl[4], CLUSTER_GEN_MAX, &v) != 0)
            return CLUSTER_E_SYNTAX;
        out->type = CLUSTER_MSG_JOIN;
        out->node = f[1], out->node_len = fl[1];
        out->addr = f[2], out->addr_len = fl[2];
        out->ms = (int64_t)v;
        return 0;
    }
    if (len > 6 && memcmp(buf, "leave ", 6) == 0) {
        if (rec__split(buf, len, 4, f, fl) != 0 || !cluster_valid_node(f[1], fl[1]) ||
            rec__boot_parse(f[2], fl[2], &out->boot) != 0 ||
            cluster_parse_u64(f[3], fl[3], CLUSTER_GEN_MAX, &v) != 0)
            return CLUSTER_E_SYNTAX;
        out->type = CLUSTER_MSG_LEAVE;
        out->node = f[1], out->node_len = fl[1];
        out->ms = (int64_t)v;
        return 0;
    }
    return CLUSTER_E_SYNTAX;
}

/* ---- replies ---------------------------------------------------------------------------- */

static int rec__ci_contains(const char *s, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; i++)
        if (strncasecmp(s + i, needle, nl) == 0)
            return 1;
    return 0;
}

int cluster_reply_error(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ERROR)
        return 0;
    if (!r->str)
        return CLUSTER_E_REDIS;
    if (r->len >= 6 && (strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0))
        return CLUSTER_E_AUTH;
    if (rec__ci_contains(r->str, r->len, "password") || rec__ci_contains(r->str, r->len, "auth"))
        return CLUSTER_E_AUTH;
    return CLUSTER_E_REDIS;
}

static int rec__is_string(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING && (r->str || r->len == 0);
}

int cluster_reply_assert(const redisReply *r, const char *self, size_t self_len, int *status,
                         struct cluster_route_value *value)
{
    int mine;
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return CLUSTER_E_REDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element)
        return CLUSTER_E_SYNTAX;
    const redisReply *st = r->element[0], *v = r->element[1];
    if (!st || st->type != REDIS_REPLY_INTEGER || st->integer < 0 || st->integer > 2 || !rec__is_string(v))
        return CLUSTER_E_SYNTAX;
    if (cluster_route_value_parse(v->str, v->len, value) != 0)
        return CLUSTER_E_SYNTAX;
    mine = value->node_len == self_len && memcmp(value->node, self, self_len) == 0;
    if ((st->integer == CLUSTER_ASSERT_LOST) == mine)
        return CLUSTER_E_SYNTAX;
    *status = (int)st->integer;
    return 0;
}

int cluster_reply_release(const redisReply *r, int *deleted)
{
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return CLUSTER_E_REDIS;
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
        return CLUSTER_E_SYNTAX;
    *deleted = (int)r->integer;
    return 0;
}

int cluster_reply_get(const redisReply *r, int *found, struct cluster_route_value *value)
{
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return CLUSTER_E_REDIS;
    if (r->type == REDIS_REPLY_NIL) {
        *found = 0;
        return 0;
    }
    if (!rec__is_string(r) || cluster_route_value_parse(r->str, r->len, value) != 0)
        return CLUSTER_E_SYNTAX;
    *found = 1;
    return 0;
}

int cluster_reply_heartbeat(const redisReply *r, int64_t *now_ms, const redisReply **members,
                            const char **previous, size_t *previous_len)
{
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return CLUSTER_E_REDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !r->element)
        return CLUSTER_E_SYNTAX;
    const redisReply *t = r->element[0], *m = r->element[1], *p = r->element[2];
    if (!t || t->type != REDIS_REPLY_INTEGER || t->integer < 0 || (uint64_t)t->integer > CLUSTER_GEN_MAX)
        return CLUSTER_E_SYNTAX;
    if (!m || m->type != REDIS_REPLY_ARRAY || m->elements > CLUSTER_MAX_NODES || (m->elements && !m->element))
        return CLUSTER_E_SYNTAX;
    if (!rec__is_string(p) || p->len > CLUSTER_MAX_MEMBER_VALUE)
        return CLUSTER_E_SYNTAX;
    *now_ms = t->integer;
    *members = m;
    *previous = p->len ? p->str : NULL;
    *previous_len = p->len;
    return 0;
}

int cluster_reply_member(const redisReply *members, size_t i, struct cluster_member_value *out)
{
    if (!members || members->type != REDIS_REPLY_ARRAY || i >= members->elements || !members->element)
        return CLUSTER_E_SYNTAX;
    const redisReply *e = members->element[i];
    if (!rec__is_string(e))
        return CLUSTER_E_SYNTAX;
    return cluster_member_value_parse(e->str, e->len, out);
}

int cluster_reply_mget(const redisReply *r, size_t n)
{
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return CLUSTER_E_REDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n || (n && !r->element))
        return CLUSTER_E_SYNTAX;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (!e || (e->type != REDIS_REPLY_NIL && !rec__is_string(e)))
            return CLUSTER_E_SYNTAX;
    }
    return 0;
}

int cluster_reply_info(const redisReply *r, size_t i, int *found, struct cluster_info_value *out)
{
    *found = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements || !r->element || !r->element[i])
        return CLUSTER_E_SYNTAX;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_NIL)
        return 0;
    if (!rec__is_string(e) || cluster_info_value_parse(e->str, e->len, out) != 0)
        return CLUSTER_E_SYNTAX;
    *found = 1;
    return 0;
}

int cluster_reply_sha(const redisReply *r, char sha[41])
{
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return cluster_reply_error(r);
    if (!rec__is_string(r) || r->len != 40)
        return CLUSTER_E_SYNTAX;
    for (size_t i = 0; i < 40; i++) {
        char c = r->str[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return CLUSTER_E_SYNTAX;
    }
    memcpy(sha, r->str, 40);
    sha[40] = '\0';
    return 0;
}

int cluster_reply_ok(const redisReply *r)
{
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return cluster_reply_error(r);
    if (r->type != REDIS_REPLY_STATUS || r->len != 2 || !r->str || memcmp(r->str, "OK", 2) != 0)
        return CLUSTER_E_SYNTAX;
    return 0;
}

int cluster_reply_push(const redisReply *r, int *kind, const char **channel, size_t *channel_len,
                       const char **payload, size_t *payload_len)
{
    if (!r)
        return CLUSTER_E_SYNTAX;
    if (r->type == REDIS_REPLY_ERROR)
        return cluster_reply_error(r);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !r->element)
        return CLUSTER_E_SYNTAX;
    const redisReply *k = r->element[0], *c = r->element[1], *p = r->element[2];
    if (!rec__is_string(k) || !rec__is_string(c))
        return CLUSTER_E_SYNTAX;
    *channel = c->str;
    *channel_len = c->len;
    if (k->len == 7 && memcmp(k->str, "message", 7) == 0) {
        if (!rec__is_string(p))
            return CLUSTER_E_SYNTAX;
        *kind = CLUSTER_PUSH_MESSAGE;
        *payload = p->str;
        *payload_len = p->len;
        return 0;
    }
    if (k->len == 9 && memcmp(k->str, "subscribe", 9) == 0) {
        if (!p || p->type != REDIS_REPLY_INTEGER)
            return CLUSTER_E_SYNTAX;
        *kind = CLUSTER_PUSH_SUBSCRIBE;
        *payload = NULL;
        *payload_len = 0;
        return 0;
    }
    return CLUSTER_E_SYNTAX;
}
