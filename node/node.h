/* node: the proxy node's shared context, and its start and stop.
 *
 * struct node is what every module of node/ reads: the loop, the
 * configuration, the keys, the counters. Each module keeps its own state
 * behind an opaque pointer here, set up and freed by that module. The node
 * wires the modules together at start (node.c): the files of node/ call
 * each other top down only (docs/architecture.md draws it), and a lower one
 * talks back through callbacks given to it there. */
#ifndef WHT_NODE_NODE_H
#define WHT_NODE_NODE_H

#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "node/config.h"
#include "node/token.h"

#define NODE_VERSION "0.1.0"
#define NODE_MAX_SINGLE_IO (256 * 1024)    /* bytes one read or write system call may move */
#define NODE_PEER_AUDIENCE "whtunnel-peer" /* aud of the tokens between nodes */

struct cluster_registry;
struct evdns_base;
struct evconnlistener;
struct workers;
struct viewers;
struct links;
struct relays;
struct drain;

/* Counters, for /__cluster__ and the logs. */
struct node_stats {
    uint64_t connections, requests, registrations, workers;
    uint64_t responses_5xx, responses_4xx;
    uint64_t relayed_out, relayed_in, relay_misses, relay_retries, peer_links;
};

struct node {
    struct event_base *base;
    const struct config *cfg;
    struct token_keys keys; /* worker tokens */
    SSL_CTX *ssl;           /* TLS on the viewer port, or NULL */
    struct evconnlistener *listener;
    struct event *sigint_ev, *sigterm_ev;
    uint64_t next_serial; /* connections and sessions, for logs */
    uint32_t nconns;      /* viewer connections open */
    uint32_t relays_open; /* relayed streams served */
    struct node_stats stats;
    int stopping; /* node_stop(): free at once, send nothing more */
    int draining; /* SIGTERM in a cluster: workers move elsewhere, then exit */
    int leaving;  /* leaving the cluster before exit */
    /* modules (each owns its struct) */
    struct workers *workers;
    struct viewers *viewers;
    struct relays *relays;
    struct links *links;
    struct drain *drain;
    /* cluster (REDIS_URL set) */
    struct cluster_registry *cluster;
    struct evdns_base *dns;
    struct event *stats_ev; /* periodic cluster figures in the log */
    char node_id[65];
    char advertise[300];
    struct token_keys peer_keys; /* WHT_CLUSTER_SECRET */
};

/* Starts the node on base with cfg (read-only from now on, must outlive
 * the node): listeners, TLS, the cluster when configured. Returns 0, or -1
 * after printing why to stderr. */
int node_start(struct node *n, struct event_base *base, const struct config *cfg);
/* Closes everything at once (after the loop exited). */
void node_stop(struct node *n);

#endif
