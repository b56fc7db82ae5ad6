/* cluster_registry: the node's side of the Redis registry, on the node's
 * libevent loop (hiredis 0.14, async). docs/cluster.md has the keys, the
 * messages, the generation rule and what happens in each failure.
 *
 * What it does for the node:
 *   - membership: keeps this node's member key alive and reports the other
 *     nodes' arrivals and departures (peer_up_cb / peer_down_cb);
 *   - registry: records the workers this node holds (register / unregister)
 *     with a generation, and tells the node when a newer registration of
 *     one of them lives elsewhere (takeover_cb): the node then closes its
 *     own session;
 *   - routes: answers "which node holds worker X" from a cache fed by
 *     Redis pub/sub, asking Redis (one GET, coalesced) only on a miss;
 *   - failures: reconnects with backoff; while Redis is away it keeps the
 *     cache, accepts registrations locally, and re-asserts everything it
 *     holds when Redis is back;
 *   - admin pages: this node's info (workers, draining) written with its
 *     heartbeat, every node's read back on demand, the members it knows,
 *     and counters (cluster_registry_stats).
 *
 * No call blocks: Redis I/O happens on the loop, and the Redis host name is
 * resolved with evdns. Two connections: one for commands, one subscribed.
 *
 * Callbacks run from the loop, never from inside the API call that caused
 * them. They may call any cluster_registry_* function;
 * cluster_registry_free() inside a callback is deferred to the next loop
 * turn.
 */
#ifndef WHT_CLUSTER_REGISTRY_H
#define WHT_CLUSTER_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

struct event_base;
struct evdns_base;
struct cluster_registry;
struct cluster_lookup;
struct cluster_info_req;

/* Settings. Strings are copied by cluster_registry_new(). 0 in a number
 * means its default. */
struct cluster_options {
    const char *redis_url;      /* REDIS_URL, see cluster_url_parse(); required unless sentinels is set, and
                                   then cluster_url_parse_auth()'s form (credentials and db, no host) or NULL */
    const char *sentinels;      /* WHT_REDIS_SENTINELS, see cluster_sentinels_parse(); NULL or "": none */
    const char *master_name;    /* WHT_REDIS_MASTER: the master the sentinels monitor; required with sentinels */
    int64_t sentinel_timeout_ms; /* a sentinel that does not answer within this is skipped; default 1000 */
    const char *prefix;         /* key and channel prefix; NULL means "wht:" */
    const char *node_id;        /* this node's id, cluster_valid_node(); required */
    const char *advertise;      /* host:port peers dial to reach this node; required */
    int64_t member_ttl_ms;      /* TTL of the member key; default 5000, 300..600000 */
    int64_t refresh_ms;         /* heartbeat period; default member_ttl_ms / 4; < member_ttl_ms / 2 */
    int64_t route_ttl_ms;       /* TTL of route records, refreshed at a third of it; default 1 h, >= 10 s */
    int64_t lookup_timeout_ms;  /* a lookup Redis leaves unanswered fails after this; default 1000 */
    int64_t command_timeout_ms; /* a connection that answers nothing (connect, heartbeat, ping) for this
                                   long is dropped and remade; default max(3000, member_ttl_ms) */
    int64_t reconnect_min_ms;   /* first backoff after a failure; default 100 */
    int64_t reconnect_max_ms;   /* backoff cap; default 2000 */
    size_t cache_max_routes;    /* route cache limits; defaults in cluster/cache.h */
    size_t cache_max_bytes;
    size_t max_held;            /* workers held; default 1,000,000 */
    size_t max_pending_lookups; /* distinct ids being asked to Redis at once; default 10,000 */
    size_t max_lookup_waiters;  /* lookups waiting on them; default 100,000 */
    size_t max_inflight;        /* asserts and releases in flight at once; default 1024 */
    size_t max_release_queue;   /* releases kept while Redis is away; default 65,536 */
    struct evdns_base *dns;     /* resolver for the Redis host; NULL makes one (from /etc/resolv.conf) when
                                   the host is a name. A resolver passed here must outlive the registry
                                   and be freed with evdns_base_free(dns, 1) */
};

/* A route: which node holds a worker, and how to reach it. */
struct cluster_route {
    char node[CLUSTER_MAX_NODE_LEN + 1];
    char addr[CLUSTER_MAX_ADDR_LEN + 1]; /* the node's advertised peer address */
    uint64_t gen;
};

/* Log levels for log_cb. */
enum cluster_log_level {
    CLUSTER_LOG_ERROR = 0,
    CLUSTER_LOG_WARN = 1,
    CLUSTER_LOG_INFO = 2,
    CLUSTER_LOG_DEBUG = 3
};

/* What the registry tells the node. Every pointer is borrowed for the call.
 * Any callback may be NULL. */
struct cluster_callbacks {
    /* A newer registration of worker id (id_len bytes, NUL-terminated) lives
     * on another node, or the registry names another node after Redis came
     * back: close this node's session for it. The registry has already
     * forgotten it (a later cluster_registry_unregister() of it is a no-op). */
    void (*takeover_cb)(struct cluster_registry *reg, const char *id, size_t id_len, void *ud);
    /* Worker id (id_len bytes) registered on another node (its "set"
     * message), one this node does not hold (for one it holds, takeover_cb
     * is called instead): e.g. requests held here for it may go there. */
    void (*elsewhere_cb)(struct cluster_registry *reg, const char *id, size_t id_len, void *ud);
    /* Node node_id is alive at peer address addr (first seen, came back, or
     * restarted: a restart is reported as peer_down_cb then peer_up_cb). */
    void (*peer_up_cb)(struct cluster_registry *reg, const char *node_id, const char *addr, void *ud);
    /* Node node_id left (cleanly, or its member key expired). Its routes
     * are already dropped from the cache. */
    void (*peer_down_cb)(struct cluster_registry *reg, const char *node_id, const char *addr, void *ud);
    /* The command connection to Redis became usable (up = 1, err = 0) or
     * stopped being so (up = 0, err = why, an enum cluster_err). Reported on
     * each change, and once at start-up when the first attempt fails. */
    void (*redis_state_cb)(struct cluster_registry *reg, int up, int err, void *ud);
    /* A line worth logging, without secrets, at level <= log_level. */
    void (*log_cb)(struct cluster_registry *reg, enum cluster_log_level level, const char *msg, void *ud);
    enum cluster_log_level log_level;
};

/* A lookup's answer: the record names a node that is not a member (dead,
 * frozen, cut off from Redis) and no newer one names a live node. */
#define CLUSTER_LOOKUP_NODE_DOWN 2

/* Answer to a lookup that went to Redis. result: 1 found (route set), 0 no
 * record (or one naming this node), CLUSTER_LOOKUP_NODE_DOWN (a record naming
 * a node that is not a member), or a negative enum cluster_err: CLUSTER_E_TIMEOUT,
 * CLUSTER_E_DOWN (the connection went away), CLUSTER_E_SYNTAX or
 * CLUSTER_E_REDIS (a bad answer). Lookups pending when the registry is freed
 * are dropped without a call. route is borrowed for the call. */
typedef void cluster_lookup_cb(struct cluster_registry *reg, int result, const struct cluster_route *route,
                               void *ud);

/* Answer to cluster_registry_leave(): 0 once Redis confirmed, or a negative
 * enum cluster_err (CLUSTER_E_DOWN, CLUSTER_E_TIMEOUT). */
typedef void cluster_done_cb(struct cluster_registry *reg, int result, void *ud);

/* Creates a registry on base and starts connecting (nothing blocks: a
 * failure to reach Redis is reported later through redis_state_cb). cbs is
 * copied; ud is passed to every callback. Returns 0 and *out, or
 * CLUSTER_E_URL / CLUSTER_E_URL_SCHEME / CLUSTER_E_TOO_LONG (bad redis_url),
 * CLUSTER_E_URL_HOST (redis_url names a host while sentinels are given),
 * CLUSTER_E_SENTINELS / CLUSTER_E_MASTER_NAME (bad sentinels or master name,
 * or one without the other), CLUSTER_E_INVAL (bad node id, address, prefix
 * or number), CLUSTER_E_NOMEM. With sentinels, the master is asked of the
 * sentinels in turn, confirmed with ROLE, and followed across failovers
 * (docs/cluster.md, "Redis Sentinel").
 * The node frees it with cluster_registry_free(). */
int cluster_registry_new(struct event_base *base, const struct cluster_options *opts,
                         const struct cluster_callbacks *cbs, void *ud, struct cluster_registry **out);

/* Stops everything at once: connections closed, timers removed, pending
 * lookups dropped without their callbacks, nothing more sent (the member
 * key expires by itself; call cluster_registry_leave() first for a clean
 * departure). Inside a callback the free is deferred to the next loop turn
 * (the registry calls no more callbacks meanwhile). NULL is fine. */
void cluster_registry_free(struct cluster_registry *reg);

/* Records that this node now holds worker id (id_len bytes, util_valid_worker_id).
 * Asynchronous: with Redis up, one script takes a generation and writes
 * id -> (generation, this node) unless a newer one exists, and publishes
 * it; if a newer one exists, takeover_cb follows. With Redis away the
 * registration is accepted locally, with a generation from this node's
 * clock, and asserted when Redis is back. Registering an id already held
 * (the worker reconnected to this node) makes a new registration.
 * Returns 0, CLUSTER_E_INVAL, CLUSTER_E_LIMIT (max_held) or CLUSTER_E_NOMEM. */
int cluster_registry_register(struct cluster_registry *reg, const char *id, size_t id_len);

/* This node's session for worker id closed: removes the record if it is
 * still this registration's (a newer one elsewhere is left alone), and
 * publishes the removal. Asynchronous; with Redis away the removal waits
 * (max_release_queue). Returns 1 if id was held, 0 if not (a no-op), or
 * CLUSTER_E_INVAL. */
int cluster_registry_unregister(struct cluster_registry *reg, const char *id, size_t id_len);

/* 1 if this node holds id, else 0. If held and gen is not NULL, *gen gets
 * its generation (0 while the first assert is in flight). */
int cluster_registry_holds(const struct cluster_registry *reg, const char *id, size_t id_len, uint64_t *gen);

/* Which node holds worker id. The node checks its own workers first.
 *   returns 1: the route is cached; *route is filled; no Redis command was
 *              sent and cb will not be called.
 *   returns 0: asked Redis (one GET per id however many lookups wait on
 *              it); cb(reg, result, route, ud) (if cb is not NULL: NULL only
 *              warms the cache) will be called exactly once,
 *              from the loop, within lookup_timeout_ms, unless the lookup is
 *              cancelled or the registry freed first. *handle (if handle
 *              is not NULL) identifies it for cluster_lookup_cancel() and is
 *              valid until cb starts.
 *   returns < 0: CLUSTER_E_INVAL (bad id), CLUSTER_E_DOWN (not cached and
 *              Redis unreachable), CLUSTER_E_LIMIT, CLUSTER_E_NOMEM; cb will
 *              not be called.
 * A route naming this node, or a node that is not a member, is "no live
 * route". */
int cluster_registry_lookup(struct cluster_registry *reg, const char *id, size_t id_len,
                            struct cluster_route *route, cluster_lookup_cb *cb, void *ud,
                            struct cluster_lookup **handle);

/* Cancels a pending lookup: its callback will not be called. handle must
 * come from cluster_registry_lookup() and its callback must not have
 * started. */
void cluster_lookup_cancel(struct cluster_lookup *handle);

/* Drops the cached route of id (e.g. the owner said it does not hold the
 * worker any more: the next lookup asks Redis). Returns 1 if one was cached. */
int cluster_registry_forget(struct cluster_registry *reg, const char *id, size_t id_len);

/* Clean departure (on drain, before free): stops the heartbeat, releases
 * every held worker's record, removes the member key and publishes "leave"
 * so peers drop this node's routes at once. cb (may be NULL) gets 0 when
 * Redis confirmed, or an error (CLUSTER_E_DOWN at once if Redis is away,
 * called from the loop; CLUSTER_E_TIMEOUT after command_timeout_ms).
 * Registrations after this are refused (CLUSTER_E_CLOSED). Returns 0 or
 * CLUSTER_E_CLOSED (already leaving). */
int cluster_registry_leave(struct cluster_registry *reg, cluster_done_cb *cb, void *ud);

/* Counters and sizes, for the admin endpoint and the metrics. */
struct cluster_registry_stats {
    int redis_up;            /* command connection usable */
    int subscribed;          /* subscriber connection subscribed */
    size_t held;             /* workers held */
    size_t held_unconfirmed; /* of which Redis has not confirmed the current generation */
    size_t peers_up;
    size_t pending_lookups; /* ids being asked to Redis */
    size_t release_queue;   /* releases waiting for Redis */
    size_t cache_routes;    /* route cache: entries, estimated bytes, limits */
    size_t cache_bytes;
    size_t cache_max_routes;
    size_t cache_max_bytes;
    uint64_t cache_hits, cache_misses, cache_evictions, cache_dropped;
    uint64_t lookups_redis;    /* GETs sent */
    uint64_t lookup_timeouts;  /* lookups answered CLUSTER_E_TIMEOUT */
    uint64_t registrations;    /* cluster_registry_register() calls accepted */
    uint64_t asserts;          /* assert scripts sent (registrations, re-asserts, refreshes) */
    uint64_t takeovers;        /* takeover_cb calls */
    uint64_t messages;         /* pub/sub messages received */
    uint64_t bad_messages;     /* of which malformed or unknown, ignored */
    uint64_t reconnects;       /* connections (re)established, both kinds */
    uint64_t releases_dropped; /* releases dropped because the queue was full */
    uint64_t commands;         /* commands sent to Redis, both connections, handshakes included */
    uint64_t errors;           /* error replies, commands unanswered in time (lookups, cluster_info,
                                  leave), connections lost or attempts failed (incl. the watchdogs and,
                                  with sentinels, the sentinel connections) */
    /* Redis Sentinel: all 0 without sentinels */
    uint64_t master_changes;   /* a command connection confirmed a master other than the previous one */
    uint64_t discoveries;      /* SENTINEL get-master-addr-by-name asked */
    int sentinel_watching;     /* subscribed to a sentinel's +switch-master */
    char master[CLUSTER_MAX_HOST_LEN + 8]; /* host:port of the confirmed master, "" if none yet */
};

/* Fills *st (counting unconfirmed workers walks the held table: O(held)). */
void cluster_registry_stats(const struct cluster_registry *reg, struct cluster_registry_stats *st);

/* ---- node info, for the admin pages ----------------------------------------------------- */

/* What this node tells the cluster about itself: workers connected and
 * whether it drains (draining: 0 or not). Cheap: only stores the values.
 * From the first call on, each heartbeat writes them (docs/cluster.md: key
 * <prefix>info:<node>, with the member key's TTL); a change is written at
 * the next tick, at most once a second. Returns 0, or CLUSTER_E_INVAL
 * (reg NULL). */
int cluster_registry_set_info(struct cluster_registry *reg, uint32_t workers, int draining);

/* One node as cluster_registry_cluster_info() answers it. */
struct cluster_node_info {
    const char *node; /* node id */
    const char *addr; /* advertised peer address */
    int self;         /* this node */
    int known;        /* info found in Redis (this node: set_info was called) */
    uint32_t workers; /* when known */
    int draining;     /* when known: 0 or 1 */
};

/* Answer to cluster_registry_cluster_info(): result 0 with n nodes (this
 * node first, then the others sorted by node id), or a negative enum
 * cluster_err (CLUSTER_E_TIMEOUT, CLUSTER_E_DOWN: the connection went away,
 * CLUSTER_E_REDIS, CLUSTER_E_SYNTAX), then nodes is NULL and n 0. The array
 * and its strings are valid only during the call. */
typedef void cluster_info_cb(struct cluster_registry *reg, int result, const struct cluster_node_info *nodes,
                             size_t n, void *ud);

/* cluster_registry_cluster_info() requests in flight at once, at most. */
#define CLUSTER_MAX_INFO_REQS 64

/* Every node of the cluster with its info: this node (from the values given
 * to cluster_registry_set_info(), known 0 before the first call) and every
 * member of the member table that is up, whose info is read with one MGET of
 * their info keys. A member whose key is missing (an older node, or none
 * written yet), malformed, of another version or written by another
 * incarnation (boot id) is reported with known 0.
 * Returns 0: cb (not NULL) will be called exactly once, from the loop,
 * within command_timeout_ms, unless cancelled or the registry freed first
 * (then never); *handle (if handle is not NULL) is for cluster_info_cancel()
 * and valid until cb starts. Or a negative error, cb never called:
 * CLUSTER_E_INVAL, CLUSTER_E_DOWN (Redis unreachable: answer from what the
 * node knows, e.g. cluster_registry_members()), CLUSTER_E_LIMIT
 * (CLUSTER_MAX_INFO_REQS in flight), CLUSTER_E_CLOSED, CLUSTER_E_NOMEM. */
int cluster_registry_cluster_info(struct cluster_registry *reg, cluster_info_cb *cb, void *ud,
                                  struct cluster_info_req **handle);

/* The asker went away: its callback will not be called. handle must come
 * from cluster_registry_cluster_info(), its callback must not have started
 * and the registry must not have been freed. NULL is fine. */
void cluster_info_cancel(struct cluster_info_req *handle);

/* Calls cb(node, addr, ud) synchronously for each member this node knows to
 * be up (not itself), in no particular order. The strings are valid during
 * the call. cb must not free the registry. */
void cluster_registry_members(const struct cluster_registry *reg,
                              void (*cb)(const char *node, const char *addr, void *ud), void *ud);

/* This node's id and boot id (random per registry, distinguishes restarts). */
const char *cluster_registry_node_id(const struct cluster_registry *reg);
uint64_t cluster_registry_boot_id(const struct cluster_registry *reg);

#endif
