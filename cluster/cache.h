/* cluster_cache: the route cache and the member table of one node. Sans-I/O:
 * no sockets, no clock (times are Redis's, passed in), no logging.
 *
 * Routes: worker id -> (generation, node). A route is replaced only by a
 * strictly newer generation. The cache is bounded by a count and by an
 * estimate of the bytes it uses (entries with malloc overhead, the hash
 * buckets, the member table); beyond either it evicts the least recently
 * used route. Every node has a list of its routes, so the routes of a node
 * that goes away are dropped in time proportional to their number.
 *
 * Members: node id -> (peer address, boot id, state). A route may name a
 * node not seen yet (state UNKNOWN): it is kept, but answers lookups only
 * once the node is UP. Membership evidence carries Redis's clock (ms): a
 * poll result taken before an event already applied (a "join" or "leave"
 * message that overtook it on the other connection) does not undo it.
 * A new boot id or address for a node that is UP is a restart: its routes
 * are dropped.
 */
#ifndef WHT_CLUSTER_CACHE_H
#define WHT_CLUSTER_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

#define CLUSTER_CACHE_DEFAULT_ROUTES (1u << 20)         /* routes kept by default */
#define CLUSTER_CACHE_DEFAULT_BYTES ((size_t)192 << 20) /* bytes kept by default */

struct cluster_cache;

/* Limits; 0 in a field means its default. */
struct cluster_cache_limits {
    size_t max_routes; /* default CLUSTER_CACHE_DEFAULT_ROUTES */
    size_t max_bytes;  /* default CLUSTER_CACHE_DEFAULT_BYTES; at least 64 KiB */
    size_t max_nodes;  /* default and at most CLUSTER_MAX_NODES */
};

enum cluster_node_state {
    CLUSTER_NODE_UNKNOWN = 0, /* named by a route, never seen alive */
    CLUSTER_NODE_UP = 1,
    CLUSTER_NODE_DOWN = 2,
};

/* Member events. */
enum cluster_member_event {
    CLUSTER_MEMBER_NONE = 0,      /* nothing changed (or stale evidence, ignored) */
    CLUSTER_MEMBER_UP = 1,        /* the node is now UP */
    CLUSTER_MEMBER_DOWN = 2,      /* the node is now DOWN; its routes were dropped */
    CLUSTER_MEMBER_RESTARTED = 3, /* an UP node came back with a new boot id or address: its old
                                     routes were dropped; report it down (old) then up (new) */
};

/* A route found in the cache. node and addr point into the member table and
 * stay valid until the next cluster_cache_member_* / poll call or free. */
struct cluster_cache_route {
    uint64_t gen;
    const char *node; /* NUL-terminated */
    const char *addr; /* NUL-terminated; "" while the node is UNKNOWN */
};

/* A copy of a member, for events. */
struct cluster_cache_node {
    char id[CLUSTER_MAX_NODE_LEN + 1];
    char addr[CLUSTER_MAX_ADDR_LEN + 1];
    uint64_t boot;
    enum cluster_node_state state;
    size_t routes; /* routes naming it (before a drop, for DOWN/RESTARTED events) */
};

struct cluster_cache_stats {
    size_t routes;     /* routes held */
    size_t bytes;      /* estimated bytes used, entries + buckets + member table */
    size_t max_routes; /* the limits in force */
    size_t max_bytes;
    size_t nodes;    /* member table slots in use */
    size_t nodes_up; /* of which UP */
    uint64_t hits;   /* cluster_cache_get() answered */
    uint64_t misses; /* cluster_cache_get() did not (absent, or node not UP) */
    uint64_t evictions;
    uint64_t stale;   /* puts refused because an equal or newer generation was cached */
    uint64_t dropped; /* routes dropped because their node went down or restarted */
};

/* Creates a cache. lim may be NULL (defaults). seed keys the hash. Returns
 * 0 and *out, CLUSTER_E_INVAL (a limit out of range) or CLUSTER_E_NOMEM. */
int cluster_cache_new(const struct cluster_cache_limits *lim, uint64_t seed, struct cluster_cache **out);

/* Frees the cache and everything in it. NULL is fine. */
void cluster_cache_free(struct cluster_cache *c);

/* Records id -> (gen, node). A node not in the member table gets an
 * UNKNOWN slot. Returns 1 if stored (new, or replacing an older generation),
 * 0 if an equal or newer generation is cached (nothing changed),
 * CLUSTER_E_INVAL (bad id, node or gen), CLUSTER_E_LIMIT (member table full)
 * or CLUSTER_E_NOMEM. May evict other routes. */
int cluster_cache_put(struct cluster_cache *c, const char *id, size_t id_len, uint64_t gen, const char *node,
                      size_t node_len);

/* Looks id up for a request. Returns 1 and fills *out if a route is cached
 * and its node is UP (the route becomes the most recently used), else 0.
 * Counts a hit or a miss. */
int cluster_cache_get(struct cluster_cache *c, const char *id, size_t id_len,
                      struct cluster_cache_route *out);

/* As cluster_cache_get() but whatever the node's state, without touching
 * the LRU order or the counters; *state (may be NULL) gets the node's state.
 * Returns 1 if cached, else 0. */
int cluster_cache_peek(const struct cluster_cache *c, const char *id, size_t id_len,
                       struct cluster_cache_route *out, enum cluster_node_state *state);

/* Removes the route of id if its generation is <= gen; gen 0 removes it
 * whatever its generation. Returns 1 if removed, else 0. */
int cluster_cache_del(struct cluster_cache *c, const char *id, size_t id_len, uint64_t gen);

/* Evidence that node is alive at addr with boot id boot, at Redis time ms.
 * from_poll: the evidence is a poll of the member set (ignored when not
 * newer than what was applied last; marks the node seen in the current
 * poll, see cluster_cache_poll_begin); otherwise a "join" message (always
 * applied). Returns an enum cluster_member_event (NONE, UP or RESTARTED;
 * for RESTARTED *old, which may be NULL, gets the previous incarnation),
 * or CLUSTER_E_INVAL / CLUSTER_E_LIMIT. */
int cluster_cache_member_up(struct cluster_cache *c, const char *node, size_t node_len, const char *addr,
                            size_t addr_len, uint64_t boot, int64_t ms, int from_poll,
                            struct cluster_cache_node *old);

/* Evidence that node left (a "leave" message) at Redis time ms. boot, unless
 * NULL, must match the node's current boot id (an old incarnation leaving
 * after a new one joined changes nothing). Drops the node's routes. Returns
 * CLUSTER_MEMBER_DOWN (with *old, which may be NULL) if it was UP, else
 * CLUSTER_MEMBER_NONE; CLUSTER_E_INVAL for a bad node id. */
int cluster_cache_member_down(struct cluster_cache *c, const char *node, size_t node_len,
                              const uint64_t *boot, int64_t ms, struct cluster_cache_node *old);

/* Starts a poll: members reported by cluster_cache_member_up(from_poll=1)
 * until the next begin count as present. */
void cluster_cache_poll_begin(struct cluster_cache *c);

/* Ends a poll taken at Redis time ms, one node at a time: finds a node that
 * is UP, was not present in this poll, and whose last evidence is older than
 * ms; puts it DOWN (dropping its routes), copies it to *out and returns 1.
 * Returns 0 when there is none left. Call until it returns 0. */
int cluster_cache_poll_next_down(struct cluster_cache *c, int64_t ms, struct cluster_cache_node *out);

/* Forgets the Redis times of all evidence (after connecting to a Redis that
 * may be another instance, with another clock). */
void cluster_cache_members_reset_clock(struct cluster_cache *c);

/* The state of node (UNKNOWN if not in the table). */
enum cluster_node_state cluster_cache_node_state(const struct cluster_cache *c, const char *node,
                                                 size_t node_len);

/* Copies the member at table index i (0..max_nodes-1) into *out. Returns 1
 * if the slot is in use, 0 if not, CLUSTER_E_INVAL past the end. */
int cluster_cache_node_at(const struct cluster_cache *c, size_t i, struct cluster_cache_node *out);

/* Fills *st. */
void cluster_cache_stats(const struct cluster_cache *c, struct cluster_cache_stats *st);

#endif
