/* cluster: the sans-I/O parts of the Redis registry. No sockets, no event
 * loop, no logging, no clock: bytes (or hiredis reply trees, which are plain
 * data) in, values out.
 *
 *   - REDIS_URL parsing (cluster_url_parse)
 *   - what is stored in Redis and published on its channel: route values,
 *     member values, node info values and the four pub/sub messages, each
 *     with a formatter and a strict parser (everything read back from Redis
 *     is untrusted input)
 *   - the interpretation of every Redis reply the registry acts on
 *   - the Lua scripts the registry runs, as text
 *
 * The formats, keys and the generation rule are specified in docs/cluster.md.
 * All parsers take (pointer, length), never read past it, never allocate,
 * and point their outputs into the input (or into the reply tree).
 */
#ifndef WHT_CLUSTER_CLUSTER_H
#define WHT_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "util/util.h"

/* Limits. Every length in this module is checked against one of these. */
#define CLUSTER_MAX_ID_LEN UTIL_MAX_ID_LEN /* worker id: util_valid_worker_id() */
#define CLUSTER_MAX_NODE_LEN 64       /* node id: ^[A-Za-z0-9_.-]{1,64}$ (as WHT_NODE_ID) */
#define CLUSTER_MAX_ADDR_LEN (UTIL_MAX_HOST_LEN + 6) /* peer address host:port */
#define CLUSTER_MAX_PREFIX_LEN 64     /* key prefix (WHT_REDIS_PREFIX) */
#define CLUSTER_MAX_URL_LEN 4096      /* REDIS_URL */
#define CLUSTER_MAX_HOST_LEN UTIL_MAX_HOST_LEN /* host in REDIS_URL, without brackets */
#define CLUSTER_MAX_USER_LEN 256      /* ACL user name, after percent-decoding */
#define CLUSTER_MAX_PASSWORD_LEN 1024 /* password, after percent-decoding */
#define CLUSTER_MAX_DB 2147483647     /* SELECT index */
#define CLUSTER_GEN_MAX ((UINT64_C(1) << 53) - 1) /* generations stay exact in Lua's doubles */
#define CLUSTER_GEN_TIME_SHIFT 10                 /* generation floor = wall clock ms << 10 */
#define CLUSTER_MAX_NODES 1024                    /* members the registry tracks */
#define CLUSTER_BOOT_HEX 16                       /* hex digits of a node's boot id */
#define CLUSTER_MAX_ROUTE_VALUE (16 + 1 + CLUSTER_MAX_NODE_LEN)
#define CLUSTER_MAX_MEMBER_VALUE (CLUSTER_MAX_NODE_LEN + 1 + CLUSTER_MAX_ADDR_LEN + 1 + CLUSTER_BOOT_HEX)
/* "1 <workers> <0|1> <boot>": the node info value */
#define CLUSTER_INFO_VERSION 1
#define CLUSTER_MAX_INFO_VALUE (1 + 1 + 10 + 1 + 1 + 1 + CLUSTER_BOOT_HEX)
/* "join " member " " ms: the longest message */
#define CLUSTER_MAX_MSG_LEN (5 + CLUSTER_MAX_MEMBER_VALUE + 1 + 16 + CLUSTER_MAX_ID_LEN)

/* Results: 0 is success, errors are negative. */
enum cluster_err {
    CLUSTER_OK = 0,
    CLUSTER_E_INVAL = -1, /* bad argument (id, node id, address, prefix, option) */
    CLUSTER_E_NOMEM = -2,
    CLUSTER_E_URL = -3,        /* REDIS_URL malformed */
    CLUSTER_E_URL_SCHEME = -4, /* REDIS_URL not redis:// (rediss:// needs TLS, absent in hiredis 0.14) */
    CLUSTER_E_TOO_LONG = -5,   /* a field over its limit */
    CLUSTER_E_SYNTAX = -6,     /* a value, message or reply from Redis that does not parse */
    CLUSTER_E_LIMIT = -7,      /* a table or queue is full */
    CLUSTER_E_DOWN = -8,       /* Redis is not reachable now */
    CLUSTER_E_TIMEOUT = -9,    /* Redis did not answer in time */
    CLUSTER_E_AUTH = -10,      /* Redis refused the credentials (or wants some) */
    CLUSTER_E_REDIS = -11,     /* Redis answered with an error */
    CLUSTER_E_DNS = -12,       /* the Redis host name does not resolve */
    CLUSTER_E_CLOSED = -13,    /* the registry is shutting down */
    CLUSTER_E_CONNECT = -14,   /* TCP connection to Redis failed or dropped */
    CLUSTER_E_NOT_MASTER = -15, /* the Redis a sentinel named is not a master (stale sentinel, demoted master) */
    CLUSTER_E_NO_MASTER = -16,  /* no sentinel answered with the master's address */
    CLUSTER_E_SENTINELS = -17,  /* WHT_REDIS_SENTINELS malformed */
    CLUSTER_E_URL_HOST = -18,   /* REDIS_URL names a host while sentinels choose the master */
    CLUSTER_E_MASTER_NAME = -19, /* WHT_REDIS_MASTER malformed */
};

/* A short static description of a cluster result; never NULL. */
const char *cluster_strerror(int err);

/* ---- identifiers ------------------------------------------------------------------------ */

/* Worker ids: util_valid_worker_id() (util/util.h). */

/* 1 if s is a node id: 1..CLUSTER_MAX_NODE_LEN of [A-Za-z0-9_.-]; else 0. */
int cluster_valid_node(const char *s, size_t len);

/* 1 if s is a peer address "host:port" or "[IPv6]:port" as util_hostport_parse()
 * reads it with the port required (1..65535, without leading zeros); else 0. */
int cluster_valid_addr(const char *s, size_t len);

/* 1 if s is a key prefix: 0..CLUSTER_MAX_PREFIX_LEN of [A-Za-z0-9_.:/{}-]; else 0. */
int cluster_valid_prefix(const char *s, size_t len);

/* ---- REDIS_URL -------------------------------------------------------------------------- */

/* A parsed REDIS_URL. Strings are NUL-terminated copies, percent-decoded. */
struct cluster_url {
    char host[CLUSTER_MAX_HOST_LEN + 1];         /* name or address; an IPv6 address without brackets */
    char user[CLUSTER_MAX_USER_LEN + 1];         /* "" unless redis://user:password@ (ACL, Redis 6+) */
    char password[CLUSTER_MAX_PASSWORD_LEN + 1]; /* "" when has_password is 0 */
    size_t password_len;                         /* may hold NUL bytes after decoding: use this */
    size_t user_len;
    int has_password; /* AUTH is needed */
    int has_user;     /* AUTH user password */
    int ipv6;         /* host was a bracketed IPv6 literal */
    uint16_t port;    /* default 6379 */
    int db;           /* SELECT index, default 0 */
};

/* Parses url (len bytes, at most CLUSTER_MAX_URL_LEN):
 *   redis://[[user]:password@]host[:port][/[db]]
 * The scheme is case-insensitive; rediss:// gets CLUSTER_E_URL_SCHEME (no
 * TLS in hiredis 0.14). host[:port] is read by util_hostport_parse(): a name
 * of [A-Za-z0-9_.-] (at most CLUSTER_MAX_HOST_LEN bytes), an IPv4 address or
 * a bracketed IPv6 literal. The user information may hold any printable
 * ASCII but '@', with %XX escapes (write '@', '/', '?' and '#' in a password
 * as %40, %2F, %3F, %23); a user name needs a password. port is 1..65535, db
 * 0..CLUSTER_MAX_DB, both plain decimal. No query, no fragment.
 * Returns 0 and fills *out, or CLUSTER_E_URL / CLUSTER_E_URL_SCHEME /
 * CLUSTER_E_TOO_LONG (then *out is zeroed). Never echoes the password. */
int cluster_url_parse(const char *url, size_t len, struct cluster_url *out);

/* Parses REDIS_URL when Redis Sentinel chooses the master: the same syntax
 * without a host (it would be ignored, so it is refused):
 *   redis://[[user]:password@][/[db]]      e.g. redis://:secret@/2, redis://
 * The user information and db are as in cluster_url_parse(); out->host is
 * "" and out->port 0. Returns 0, CLUSTER_E_URL_HOST (a host or port is
 * given), CLUSTER_E_URL / CLUSTER_E_URL_SCHEME / CLUSTER_E_TOO_LONG. */
int cluster_url_parse_auth(const char *url, size_t len, struct cluster_url *out);

/* ---- Redis Sentinel (sentinel.c) -------------------------------------------------------- */

#define CLUSTER_MAX_SENTINELS 16            /* entries of WHT_REDIS_SENTINELS */
#define CLUSTER_MAX_SENTINELS_LEN 4096      /* bytes of WHT_REDIS_SENTINELS */
#define CLUSTER_SENTINEL_PORT 26379         /* a sentinel's port when an entry has none */
#define CLUSTER_MAX_MASTER_NAME_LEN 128     /* WHT_REDIS_MASTER */
/* "<name> <old ip> <old port> <new ip> <new port>": the longest +switch-master payload */
#define CLUSTER_MAX_SWITCH_LEN (CLUSTER_MAX_MASTER_NAME_LEN + 2 * (1 + CLUSTER_MAX_HOST_LEN + 1 + 5))

/* A host and a port: a sentinel, or a master as a sentinel names it. */
struct cluster_addr {
    char host[CLUSTER_MAX_HOST_LEN + 1]; /* name, IPv4, or IPv6 without brackets */
    uint16_t port;                       /* 1..65535 */
};

/* WHT_REDIS_SENTINELS, parsed. */
struct cluster_sentinels {
    size_t n; /* 1..CLUSTER_MAX_SENTINELS */
    struct cluster_addr s[CLUSTER_MAX_SENTINELS];
};

/* Parses "host[:port],host[:port],..." (len bytes, at most
 * CLUSTER_MAX_SENTINELS_LEN): 1..CLUSTER_MAX_SENTINELS entries separated by
 * ',', spaces and tabs around an entry ignored, each read by
 * util_hostport_parse() (a name, an IPv4 address or a bracketed IPv6
 * literal; port CLUSTER_SENTINEL_PORT when absent); the same host and port
 * twice is refused. Returns 0 and fills *out, or CLUSTER_E_SENTINELS /
 * CLUSTER_E_TOO_LONG (then out->n is 0). */
int cluster_sentinels_parse(const char *s, size_t len, struct cluster_sentinels *out);

/* 1 if s is a master name as WHT_REDIS_MASTER takes it: 1..CLUSTER_MAX_MASTER_NAME_LEN
 * of [A-Za-z0-9_.:-] (Sentinel's own rule is looser, but a name is also a
 * field of the space-separated +switch-master message); else 0. */
int cluster_valid_master_name(const char *s, size_t len);

/* 1 if s is a host as a sentinel reports one: a name or IPv4 address (as
 * util_hostport_parse() takes them), or an IPv6 address without brackets. */
int cluster_valid_host(const char *s, size_t len);

/* Interprets the reply to SENTINEL get-master-addr-by-name: a two-element
 * array [host, port] gives 0, *found = 1 and *out; nil (the sentinel does
 * not monitor that name) gives 0 and *found = 0. Else CLUSTER_E_REDIS (an
 * error reply) or CLUSTER_E_SYNTAX. */
int cluster_reply_master_addr(const redisReply *r, int *found, struct cluster_addr *out);

/* What ROLE says an instance is. */
enum cluster_role {
    CLUSTER_ROLE_MASTER = 1,   /* ["master", offset, [[ip, port, offset]...]] */
    CLUSTER_ROLE_REPLICA = 2,  /* ["slave", master ip, master port, state, offset] */
    CLUSTER_ROLE_SENTINEL = 3, /* ["sentinel", [master name...]] */
};

/* Interprets a ROLE reply (only the shape of the first elements is checked:
 * the role word and the types of the fields Redis 5 to 7 send). Returns 0
 * with *role, CLUSTER_E_AUTH / CLUSTER_E_REDIS for an error reply, or
 * CLUSTER_E_SYNTAX (an unknown role word too). */
int cluster_reply_role(const redisReply *r, int *role);

/* A +switch-master message from a sentinel:
 * "<master name> <old ip> <old port> <new ip> <new port>". */
struct cluster_switch {
    const char *name; /* into the parsed buffer */
    size_t name_len;
    const char *old_host, *new_host; /* into the parsed buffer */
    size_t old_host_len, new_host_len;
    uint16_t old_port, new_port;
};

/* Parses a +switch-master payload strictly: five fields, single spaces, a
 * valid master name, hosts as cluster_valid_host(), ports as
 * util_port_parse(); nothing after. Returns 0 or CLUSTER_E_SYNTAX. */
int cluster_switch_parse(const char *buf, size_t len, struct cluster_switch *out);

/* Writes m as a +switch-master payload plus a NUL. Returns its length, or
 * CLUSTER_E_INVAL / CLUSTER_E_TOO_LONG. */
int cluster_switch_format(char *out, size_t cap, const struct cluster_switch *m);

/* ---- values stored in Redis ------------------------------------------------------------- */

/* Route value, at <prefix>w:<id>: "<gen> <node>". gen is 1..CLUSTER_GEN_MAX
 * in decimal without leading zeros. */
struct cluster_route_value {
    uint64_t gen;
    const char *node; /* into the parsed buffer, not NUL-terminated */
    size_t node_len;
};

/* Writes "<gen> <node>" and a NUL to out (cap bytes). Returns its length, or
 * CLUSTER_E_INVAL (bad gen or node) / CLUSTER_E_TOO_LONG (cap too small). */
int cluster_route_value_format(char *out, size_t cap, uint64_t gen, const char *node, size_t node_len);

/* Parses a route value strictly. Returns 0 or CLUSTER_E_SYNTAX. */
int cluster_route_value_parse(const char *buf, size_t len, struct cluster_route_value *out);

/* Member value, at <prefix>node:<node> and in the <prefix>members sorted set:
 * "<node> <addr> <boot>", boot being CLUSTER_BOOT_HEX lowercase hex digits. */
struct cluster_member_value {
    const char *node, *addr; /* into the parsed buffer */
    size_t node_len, addr_len;
    uint64_t boot;
};

/* Writes "<node> <addr> <boot>" and a NUL to out. Returns its length, or
 * CLUSTER_E_INVAL / CLUSTER_E_TOO_LONG. */
int cluster_member_value_format(char *out, size_t cap, const char *node, size_t node_len, const char *addr,
                                size_t addr_len, uint64_t boot);

/* Parses a member value strictly. Returns 0 or CLUSTER_E_SYNTAX. */
int cluster_member_value_parse(const char *buf, size_t len, struct cluster_member_value *out);

/* Node info value, at <prefix>info:<node> (written by the heartbeat, with the
 * member key's TTL): "1 <workers> <draining> <boot>". 1 is the format's
 * version; workers is 0..UINT32_MAX in decimal without sign or leading
 * zeros; draining is 0 or 1; boot is the writer's boot id (CLUSTER_BOOT_HEX
 * lowercase hex digits), so that a reader can tell which incarnation wrote it. */
struct cluster_info_value {
    uint32_t workers;
    int draining; /* 0 or 1 */
    uint64_t boot;
};

/* Writes "1 <workers> <draining> <boot>" and a NUL to out (cap bytes;
 * CLUSTER_MAX_INFO_VALUE + 1 always suffice). Returns its length, or
 * CLUSTER_E_INVAL (draining not 0 or 1) / CLUSTER_E_TOO_LONG. */
int cluster_info_value_format(char *out, size_t cap, uint32_t workers, int draining, uint64_t boot);

/* Parses an info value strictly: exactly four fields, single spaces, nothing
 * after. Returns 0 or CLUSTER_E_SYNTAX (another version too: a newer node
 * may write one; the reader treats its info as unknown). */
int cluster_info_value_parse(const char *buf, size_t len, struct cluster_info_value *out);

/* ---- pub/sub messages on <prefix>events ------------------------------------------------- */

enum cluster_msg_type {
    CLUSTER_MSG_SET = 1,   /* "set <id> <gen> <node>": the route of id is now (gen, node) */
    CLUSTER_MSG_DEL = 2,   /* "del <id> <gen> <node>": the route (gen, node) of id was removed */
    CLUSTER_MSG_JOIN = 3,  /* "join <node> <addr> <boot> <ms>": a node (re)appeared at Redis time ms */
    CLUSTER_MSG_LEAVE = 4, /* "leave <node> <boot> <ms>": a node left cleanly at Redis time ms */
};

struct cluster_msg {
    enum cluster_msg_type type;
    const char *id; /* SET, DEL */
    size_t id_len;
    uint64_t gen;     /* SET, DEL */
    const char *node; /* all */
    size_t node_len;
    const char *addr; /* JOIN */
    size_t addr_len;
    uint64_t boot; /* JOIN, LEAVE */
    int64_t ms;    /* JOIN, LEAVE: 0..CLUSTER_GEN_MAX */
};

/* Writes m as its message text plus a NUL. Returns the length, or
 * CLUSTER_E_INVAL / CLUSTER_E_TOO_LONG. */
int cluster_msg_format(char *out, size_t cap, const struct cluster_msg *m);

/* Parses one message strictly: one of the four forms, single spaces, every
 * field valid, nothing after. Returns 0 or CLUSTER_E_SYNTAX (unknown verbs
 * too: a newer node may add some; the caller ignores and counts them). */
int cluster_msg_parse(const char *buf, size_t len, struct cluster_msg *out);

/* ---- Redis replies ---------------------------------------------------------------------- */

/* What the assert script answered. */
enum cluster_assert_status {
    CLUSTER_ASSERT_LOST = 0,    /* another node holds a generation >= ours: value names it */
    CLUSTER_ASSERT_OURS = 1,    /* the record was already ours: refreshed; value is it (maybe newer) */
    CLUSTER_ASSERT_WRITTEN = 2, /* our record was written and published; value is it */
};

/* Interprets the assert script's reply {status, value}. self/self_len is this
 * node's id: OURS and WRITTEN must name it, LOST must not. Returns 0 with
 * *status and *value (pointing into r), CLUSTER_E_REDIS for an error reply
 * (*status untouched), or CLUSTER_E_SYNTAX. */
int cluster_reply_assert(const redisReply *r, const char *self, size_t self_len, int *status,
                         struct cluster_route_value *value);

/* Interprets an integer 0/1 reply (the release script). Returns 0 with
 * *deleted, CLUSTER_E_REDIS or CLUSTER_E_SYNTAX. */
int cluster_reply_release(const redisReply *r, int *deleted);

/* Interprets a GET of a route key: nil gives 0 with *found = 0; a valid
 * route value gives 0, *found = 1 and *value. Else CLUSTER_E_REDIS or
 * CLUSTER_E_SYNTAX. */
int cluster_reply_get(const redisReply *r, int *found, struct cluster_route_value *value);

/* Interprets the heartbeat script's reply {now_ms, {member...}, previous}.
 * Returns 0 with *now_ms, *members (the array element, at most
 * CLUSTER_MAX_NODES entries, each still to be checked with
 * cluster_reply_member()) and *previous (the member value the node key held
 * before, or NULL/0 if none), else CLUSTER_E_REDIS / CLUSTER_E_SYNTAX. */
int cluster_reply_heartbeat(const redisReply *r, int64_t *now_ms, const redisReply **members,
                            const char **previous, size_t *previous_len);

/* Parses element i of the members array from cluster_reply_heartbeat().
 * Returns 0 or CLUSTER_E_SYNTAX. */
int cluster_reply_member(const redisReply *members, size_t i, struct cluster_member_value *out);

/* Checks an MGET reply for n keys: an array of exactly n elements, each nil
 * or a string. Returns 0, CLUSTER_E_REDIS for an error reply, or
 * CLUSTER_E_SYNTAX. */
int cluster_reply_mget(const redisReply *r, size_t n);

/* Reads element i of an MGET reply of info keys checked by
 * cluster_reply_mget(): nil gives 0 with *found = 0; a valid info value
 * gives 0, *found = 1 and *out. Else CLUSTER_E_SYNTAX (*found = 0). */
int cluster_reply_info(const redisReply *r, size_t i, int *found, struct cluster_info_value *out);

/* Interprets SCRIPT LOAD's reply: 40 lowercase hex digits, copied to sha
 * with a NUL. Returns 0, CLUSTER_E_REDIS or CLUSTER_E_SYNTAX. */
int cluster_reply_sha(const redisReply *r, char sha[41]);

/* Interprets a status reply that must be "OK" (AUTH, SELECT). Returns 0,
 * CLUSTER_E_AUTH for an error reply mentioning auth/password (WRONGPASS,
 * NOAUTH, ...), CLUSTER_E_REDIS for any other error, CLUSTER_E_SYNTAX. */
int cluster_reply_ok(const redisReply *r);

/* Classifies an error reply of any command: CLUSTER_E_AUTH (NOAUTH,
 * WRONGPASS, "invalid password"...), else CLUSTER_E_REDIS. 0 if r is not an
 * error reply. */
int cluster_reply_error(const redisReply *r);

/* What a reply on the subscriber connection is. */
enum cluster_push_kind {
    CLUSTER_PUSH_MESSAGE = 1,   /* ["message", channel, payload] */
    CLUSTER_PUSH_SUBSCRIBE = 2, /* ["subscribe", channel, count] */
};

/* Interprets a subscriber reply. Returns 0 with *kind, *channel and (for a
 * message) *payload pointing into r; else CLUSTER_E_REDIS / CLUSTER_E_SYNTAX. */
int cluster_reply_push(const redisReply *r, int *kind, const char **channel, size_t *channel_len,
                       const char **payload, size_t *payload_len);

/* ---- Lua scripts ------------------------------------------------------------------------ */

enum cluster_script {
    CLUSTER_SCRIPT_ASSERT = 0,  /* KEYS route, gen; ARGV id, node, gen|"0", floor, ttl_ms, channel */
    CLUSTER_SCRIPT_RELEASE = 1, /* KEYS route; ARGV id, "gen node", channel */
    CLUSTER_SCRIPT_BEAT = 2,    /* KEYS node key, members, info key; ARGV member value, ttl_ms, channel,
                                   ping channel, max members, info value or "" */
    CLUSTER_SCRIPT_LEAVE = 3,   /* KEYS node key, members, info key; ARGV member value, "node boot",
                                   channel */
    CLUSTER_SCRIPT_COUNT = 4,
};

/* The text of a script (static, NUL-terminated), NULL for an unknown one. */
const char *cluster_script_text(enum cluster_script s);

/* ---- numbers ---------------------------------------------------------------------------- */

/* Parses a decimal 0..max without sign, spaces or leading zeros (but "0").
 * Returns 0 or CLUSTER_E_SYNTAX. */
int cluster_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);

/* Writes v in decimal plus a NUL into out (at least 21 bytes). Returns the length. */
size_t cluster_format_u64(char out[21], uint64_t v);

#endif
