/* Internals of cluster_registry: the registry's state (struct
 * cluster_registry, its two Redis connections, held workers, pending lookups,
 * queued releases, requests in flight) and the functions its six files call
 * in one another: registry.c (the API, options, the tick, shared helpers),
 * held.c (held workers: asserts, refreshes, releases, takeovers), lookup.c
 * (route lookups), members.c (membership, messages, connection events),
 * info.c (node info for the admin pages) and conn.c (the Redis
 * connections). The sans-I/O parts they use are cluster.h (records.c,
 * url.c) and cache.h. Not for use outside cluster/. */
#ifndef WHT_CLUSTER_REGISTRY_INT_H
#define WHT_CLUSTER_REGISTRY_INT_H

#include <stdarg.h>
#include <stdint.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <hiredis/async.h>

#include "cluster/cache.h"
#include "cluster/cluster.h"
#include "cluster/registry.h"
#include "util/htab.h"
#include "util/util.h"

#define REG_TICK_MS 100   /* housekeeping period: timeouts, heartbeat, refreshes */
#define REG_RETRY_MS 1000 /* an assert that failed (not for a lost connection) is retried after this */
#define REG_INFO_MIN_MS 1000 /* a changed node info is written early, at most this often */

/* Connection states. IDLE waits for its retry timer; RESOLVING waits for
 * evdns; CONNECTING has a hiredis context whose handshake (AUTH, SELECT,
 * SCRIPT LOAD / SUBSCRIBE) is not fully answered; READY is usable. */
enum reg__conn_state { REG_C_IDLE = 0, REG_C_RESOLVING, REG_C_CONNECTING, REG_C_READY };

/* A host name resolution's context. An evdns request is never cancelled
 * (libevent runs a cancellation later, from the loop, and that touches the
 * evdns_base, which the registry may have freed by then): an abandoned one
 * is orphaned (c = NULL) and frees this when it ends, answered or failed by
 * evdns_base_free(base, 1). */
struct reg__dns_ctx {
    struct cluster__conn *c;
};
/* CMD and SUB talk to the Redis master (REDIS_URL's host, or the one the
 * sentinels name); ASK asks one sentinel after another for the master's
 * address (discover.c), WATCH is subscribed to one sentinel's +switch-master. */
enum reg__conn_kind { REG_CONN_CMD = 0, REG_CONN_SUB = 1, REG_CONN_ASK = 2, REG_CONN_WATCH = 3 };

struct cluster__conn {
    struct cluster_registry *reg;
    enum reg__conn_kind kind;
    enum reg__conn_state state;
    redisAsyncContext *ac; /* NULL unless CONNECTING or READY */
    struct event *retry_ev;
    struct reg__dns_ctx *dns; /* the resolution in progress, if any */
    int64_t since_ms;         /* start of the current attempt (monotonic) */
    int64_t backoff_ms;       /* next delay after a failure */
    int handshake_left;       /* replies still expected before READY */
    unsigned rotor;           /* which resolved address to try */
    int last_err;
    int64_t timeout_ms;         /* an attempt (resolution, connection, handshake) longer than this fails */
    struct cluster_addr target; /* where the current attempt goes (reg__conn_target) */
    int64_t heard_ms;           /* last reply or message received on it (monotonic): busy, not dead */
};

/* What a command sent to Redis was, for its reply callback. */
enum reg__req_kind {
    REQ_AUTH,
    REQ_SELECT,
    REQ_SCRIPT_LOAD,
    REQ_ASSERT,
    REQ_RELEASE,
    REQ_GET,
    REQ_BEAT,
    REQ_LEAVE,
    REQ_INFO,
    REQ_ROLE, /* handshake of CMD and SUB with sentinels: the instance must be a master */
    REQ_ASK   /* SENTINEL get-master-addr-by-name, on the ASK connection */
};

struct cluster__held;
struct reg__group;
struct reg__release;
struct cluster_info_req;

struct cluster__req {
    struct cluster_registry *reg;
    redisAsyncContext *ac; /* the context it was sent on */
    enum reg__req_kind kind;
    int index;                  /* REQ_SCRIPT_LOAD: enum cluster_script */
    struct cluster__held *held; /* REQ_ASSERT */
    uint32_t seq;               /* REQ_ASSERT: the registration it asserts */
    struct reg__group *group;   /* REQ_GET */
    struct reg__release *rel;   /* REQ_RELEASE */
    struct cluster_info_req *info; /* REQ_INFO */
};

/* A worker this node holds. In exactly one of: the dirty list (to assert
 * soon), the retry list (assert failed, wait REG_RETRY_MS), the refresh list
 * (asserted, ordered by asserted_ms), or none while an assert is in flight. */
enum reg__list_id { REG_L_NONE = 0, REG_L_DIRTY, REG_L_RETRY, REG_L_REFRESH };

struct cluster__held {
    struct cluster__held *prev, *next;
    enum reg__list_id list;
    uint64_t gen;           /* our generation; 0 = take a new one from Redis (first assert in flight) */
    uint64_t floor;         /* registration time << CLUSTER_GEN_TIME_SHIFT */
    uint64_t other_gen;     /* highest generation seen elsewhere while gen was 0 */
    int64_t when_ms;        /* REFRESH: last assert confirmed; RETRY: retry time (monotonic) */
    uint32_t seq;           /* bumped by each register() of the id */
    unsigned inflight : 1;  /* an assert is in flight (its reply frees a detached entry) */
    unsigned detached : 1;  /* no longer in the table (unregistered or taken over) */
    unsigned release : 1;   /* detached by unregister: release the record once its gen is known */
    unsigned confirmed : 1; /* Redis confirmed gen since the last (re)connection */
    unsigned again : 1;     /* assert once more after the one in flight (messages may have been missed) */
    struct util_hnode h;
    char id[];
};

struct reg__list {
    struct cluster__held *head, *tail;
    size_t n;
};

/* A record to remove when Redis is reachable. */
struct reg__release {
    struct reg__release *next;
    uint64_t gen;
    size_t id_len;
    char id[];
};

/* One GET in flight for an id, and the lookups waiting for it. */
struct reg__group {
    struct reg__group *prev, *next; /* deadline order, while in the table */
    struct cluster_lookup *head, *tail;
    int64_t deadline_ms;
    unsigned in_table : 1;
    struct util_hnode h;
    char id[];
};

struct cluster_lookup {
    struct cluster_registry *reg;
    struct cluster_lookup *prev, *next;
    struct reg__group *group;
    cluster_lookup_cb *cb;
    void *ud;
};

/* A member as a cluster_info request saw it when it was made. */
struct reg__info_peer {
    char node[CLUSTER_MAX_NODE_LEN + 1];
    char addr[CLUSTER_MAX_ADDR_LEN + 1];
    uint64_t boot;
};

/* A cluster_registry_cluster_info() request (the caller's handle). Made with
 * its MGET in flight and freed only by the MGET's reply (or the NULL reply
 * the connection's end gives). pending: in the registry's list (by
 * deadline), cb still to be called; a timeout or a cancellation takes it
 * out of the list, and the reply then only frees it. */
struct cluster_info_req {
    struct cluster_registry *reg;
    struct cluster_info_req *prev, *next;
    cluster_info_cb *cb; /* NULL once cancelled */
    void *ud;
    int64_t deadline_ms;
    unsigned pending : 1;
    size_t n;                       /* members asked about (the MGET has n + 1 keys: this node's first) */
    struct reg__info_peer *peers;   /* n, sorted by node id, in the same allocation */
    struct cluster_node_info out[]; /* n + 1: what the callback gets */
};

enum reg__redis_state { REG_R_UNKNOWN = 0, REG_R_UP, REG_R_DOWN };

struct cluster_registry {
    struct event_base *base;
    struct evdns_base *dns;
    int own_dns;
    struct cluster_callbacks cbs;
    void *ud;

    struct cluster_url url;
    char node_id[CLUSTER_MAX_NODE_LEN + 1];
    size_t node_len;
    char addr[CLUSTER_MAX_ADDR_LEN + 1];
    uint64_t boot;
    char prefix[CLUSTER_MAX_PREFIX_LEN + 1];
    size_t prefix_len;
    char member_value[CLUSTER_MAX_MEMBER_VALUE + 1];                 /* "node addr boot" */
    char node_boot[CLUSTER_MAX_NODE_LEN + 1 + CLUSTER_BOOT_HEX + 1]; /* "node boot" */
    char key_gen[CLUSTER_MAX_PREFIX_LEN + 8];
    char key_members[CLUSTER_MAX_PREFIX_LEN + 8];
    char key_node[CLUSTER_MAX_PREFIX_LEN + 8 + CLUSTER_MAX_NODE_LEN];
    char key_info[CLUSTER_MAX_PREFIX_LEN + 8 + CLUSTER_MAX_NODE_LEN];
    char chan_events[CLUSTER_MAX_PREFIX_LEN + 20];
    char chan_ping[CLUSTER_MAX_PREFIX_LEN + 8 + CLUSTER_MAX_NODE_LEN + CLUSTER_BOOT_HEX];
    char sha[CLUSTER_SCRIPT_COUNT][41];

    /* options, defaults applied */
    int64_t member_ttl_ms, refresh_ms, route_ttl_ms, lookup_timeout_ms, command_timeout_ms;
    int64_t reconnect_min_ms, reconnect_max_ms;
    size_t max_held, max_pending_lookups, max_lookup_waiters, max_inflight, max_release_queue;

    struct cluster__conn cmd, sub;
    struct event *tick_ev;

    /* Redis Sentinel (discover.c); sentinel 0: REDIS_URL names the Redis */
    int sentinel;
    struct cluster_sentinels sentinels;
    char master_name[CLUSTER_MAX_MASTER_NAME_LEN + 1];
    int64_t sentinel_timeout_ms;
    struct cluster__conn ask, watch;
    struct cluster_addr master; /* where CMD and SUB connect, when master_known */
    int master_known;
    struct cluster_addr confirmed; /* the last master a CMD connection confirmed (ROLE), if confirmed_known */
    int confirmed_known;
    unsigned ask_next;  /* the sentinel the ASK connection asks next */
    unsigned ask_tried; /* sentinels asked in this round */
    unsigned ask_from;  /* the sentinel that gave the current master */
    unsigned watch_next; /* the sentinel the WATCH connection subscribes to next */
    enum reg__redis_state redis_state;

    struct cluster_cache *cache;

    struct util_htab held;
    struct reg__list dirty, retry, refresh;
    size_t held_n, inflight;
    uint64_t last_gen; /* highest generation seen anywhere */

    struct reg__release *rel_head, *rel_tail;
    size_t rel_n;

    struct util_htab groups;
    struct reg__group *grp_head, *grp_tail; /* by deadline */
    size_t groups_n, waiters_n;

    int beat_inflight;
    int beat_failed; /* the last heartbeat got an error reply (an OOM Redis): grace after the next good one */
    int64_t beat_sent_ms, next_beat_ms, beat_ok_ms, ping_wait_ms, grace_until_ms;
    uint64_t beats_ok;

    /* node info (info.c) */
    int info_set;   /* set_info was called: every heartbeat writes the info key */
    int info_dirty; /* changed since the last heartbeat sent */
    uint32_t info_workers;
    int info_draining;
    int64_t info_sent_ms;                           /* the last heartbeat that carried it */
    struct cluster_info_req *info_head, *info_tail; /* pending requests, by deadline */
    size_t info_n;                                  /* requests allocated (their MGET in flight) */

    int leaving;
    cluster_done_cb *leave_cb;
    void *leave_ud;
    int64_t leave_deadline_ms;
    struct event *leave_ev;

    int closing;      /* being freed: no more callbacks, nothing more sent */
    int cb_depth;     /* inside a user callback */
    int free_pending; /* cluster_registry_free() was called inside a callback */
    uint64_t rng;

    struct cluster_registry_stats st;
};

/* "<prefix>w:<id>" and its NUL fit in this. */
#define REG_ROUTE_KEY_MAX (CLUSTER_MAX_PREFIX_LEN + 2 + CLUSTER_MAX_ID_LEN + 1)

/* ---- registry.c: helpers and callbacks ---- */
/* Formats and passes a line to log_cb if its level is enabled (and not closing). */
void reg__log(struct cluster_registry *reg, enum cluster_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* User callbacks, each counted in cb_depth and suppressed once closing. */
void reg__call_takeover(struct cluster_registry *reg, const char *id, size_t len);
void reg__call_elsewhere(struct cluster_registry *reg, const char *id, size_t len);
void reg__call_peer(struct cluster_registry *reg, int up, const char *node, const char *addr);
void reg__set_redis_state(struct cluster_registry *reg, enum reg__redis_state s, int err);
int reg__is_self(const struct cluster_registry *reg, const char *node, size_t len);
/* Remembers the highest generation seen anywhere. */
void reg__saw_gen(struct cluster_registry *reg, uint64_t gen);
/* A generation made by this node while Redis is away: after every one seen, at least floor. */
uint64_t reg__local_gen(struct cluster_registry *reg, uint64_t floor);
/* Writes "<prefix>w:<id>" into out (REG_ROUTE_KEY_MAX bytes); returns its length. */
size_t reg__route_key(const struct cluster_registry *reg, char *out, const char *id, size_t len);

/* ---- held.c: held workers ---- */
/* Moves e to the tail of list id (out of the one it was in). */
void reg__list_push(struct cluster_registry *reg, struct cluster__held *e, enum reg__list_id id);
struct cluster__held *reg__held_find(const struct cluster_registry *reg, const char *id, size_t len);
/* Takes e out of the table and its list; freed now by the caller, or by its assert's reply if in flight. */
void reg__held_detach(struct cluster_registry *reg, struct cluster__held *e, int release);
/* Queues the release of (id, gen, this node) for when Redis is reachable (bounded). */
void reg__release_queue(struct cluster_registry *reg, const char *id, size_t len, uint64_t gen);
/* Sends due asserts, then releases, while the command connection is ready, under max_inflight. */
void reg__pump(struct cluster_registry *reg);
/* Every held worker to be asserted again (those in flight: once more after their reply). */
void reg__reassert_all(struct cluster_registry *reg);
void reg__assert_reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r);
/* "set" and "del" messages from other nodes: takeover checks, then the cache. */
void reg__msg_set(struct cluster_registry *reg, const struct cluster_msg *m);
void reg__msg_del(struct cluster_registry *reg, const struct cluster_msg *m);

/* ---- lookup.c ---- */
void reg__group_unlink(struct cluster_registry *reg, struct reg__group *g);
void reg__get_reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r);
/* Answers CLUSTER_E_TIMEOUT to the lookups whose deadline passed. */
void reg__lookup_timeouts(struct cluster_registry *reg, int64_t now);

/* ---- members.c: membership, messages, connection events ---- */
int reg__send_beat(struct cluster_registry *reg);
void reg__cmd_ready(struct cluster_registry *reg);
void reg__cmd_down(struct cluster_registry *reg, int err);
void reg__sub_ready(struct cluster_registry *reg);
void reg__sub_message(struct cluster_registry *reg, const char *channel, size_t channel_len,
                      const char *payload, size_t len);
/* Every reply to a command sent with reg__send() (NULL: the connection went away). */
void reg__reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r);

/* ---- info.c ---- */
/* Writes the info value the next heartbeat carries into out (CLUSTER_MAX_INFO_VALUE + 1 bytes): "" until
 * set_info was called. Returns its length. */
size_t reg__info_value(const struct cluster_registry *reg, char *out);
/* The heartbeat carrying the current info was sent at now. */
void reg__info_sent(struct cluster_registry *reg, int64_t now);
/* 1 if the info changed and may be written now (REG_INFO_MIN_MS after the last write). */
int reg__info_due(const struct cluster_registry *reg, int64_t now);
void reg__info_reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r);
/* Answers CLUSTER_E_TIMEOUT to the requests whose deadline passed. */
void reg__info_timeouts(struct cluster_registry *reg, int64_t now);

/* ---- discover.c: Redis Sentinel ---- */
/* Reads the sentinel options into reg (no I/O). Returns 0, or CLUSTER_E_SENTINELS,
 * CLUSTER_E_MASTER_NAME, CLUSTER_E_URL_HOST, CLUSTER_E_INVAL, CLUSTER_E_NOMEM. */
int reg__sentinel_init(struct cluster_registry *reg, const struct cluster_options *o);
/* Where c connects now, into c->target. 0 when CMD or SUB must wait for the
 * sentinels (discovery is started). */
int reg__conn_target(struct cluster__conn *c);
/* c failed with err (its context dropped, state IDLE). Returns 1 to schedule
 * its retry with backoff, 0 when discover.c took care of it. */
int reg__sentinel_conn_failed(struct cluster__conn *c, int err);
/* A CMD or SUB connection confirmed its master (ROLE); CMD counts a change. */
void reg__sentinel_confirmed(struct cluster__conn *c);
void reg__ask_reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r);
void reg__watch_ready(struct cluster_registry *reg);
void reg__watch_message(struct cluster_registry *reg, const char *channel, size_t channel_len,
                        const char *payload, size_t len);

/* ---- conn.c ---- */
/* Initialises a connection (no I/O yet). Returns 0 or CLUSTER_E_NOMEM. */
int reg__conn_init(struct cluster_registry *reg, struct cluster__conn *c, enum reg__conn_kind kind);
/* Drops c's context without reporting a failure or scheduling anything (ASK done). */
void reg__conn_done(struct cluster__conn *c);
/* Starts c now if it is idle (its retry timer cancelled). */
void reg__conn_start_now(struct cluster__conn *c);
/* 1 if a and b are the same host and port. */
int reg__addr_eq(const struct cluster_addr *a, const struct cluster_addr *b);
/* Starts an attempt now. */
void reg__conn_start(struct cluster__conn *c);
/* Drops the connection (if any), reports why, and schedules the next attempt. */
void reg__conn_fail(struct cluster__conn *c, int err);
/* Closes everything without scheduling anything (registry teardown). */
void reg__conn_close(struct cluster__conn *c);
/* Sends a command (argv with lengths) on c with rq as its context. Returns 0,
 * or an error after freeing rq. */
int reg__send(struct cluster__conn *c, struct cluster__req *rq, int argc, const char **argv,
              const size_t *lens);
/* Allocates a request of kind for c. NULL when out of memory. */
struct cluster__req *reg__req_new(struct cluster__conn *c, enum reg__req_kind kind);
/* A reply to a handshake command (AUTH, SELECT, SCRIPT LOAD) on c. */
void reg__conn_handshake_reply(struct cluster__conn *c, struct cluster__req *rq, redisReply *r);

#endif
