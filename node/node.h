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
#include "util/cidr.h"

#define NODE_VERSION "0.1.0"
#define NODE_MAX_SINGLE_IO (256 * 1024)    /* bytes one read or write system call may move */
#define NODE_PEER_AUDIENCE "whtunnel-peer" /* aud of the tokens between nodes */

struct cluster_registry;
struct evdns_base;
struct evconnlistener;
struct workers;
struct viewers;
struct wsmux_shared;
struct links;
struct relays;
struct drain;
struct returning;
struct admin;

/* How a viewer request was served (the `path` label of the request metrics). */
enum node_via {
    NODE_VIA_LOCAL,
    NODE_VIA_RELAYED_IN,
    NODE_VIA_RELAYED_OUT,
    NODE_VIA_ENDPOINT,
    NODE_VIA_COUNT
};

/* Registration outcomes (the `outcome` label). */
enum node_reg {
    NODE_REG_OK,
    NODE_REG_BAD_ID,
    NODE_REG_BAD_AUTHORIZATION,
    NODE_REG_NOT_WEBSOCKET,
    NODE_REG_BAD_HANDSHAKE,
    NODE_REG_BAD_TOKEN,
    NODE_REG_DRAINING,
    NODE_REG_RELAYED,
    NODE_REG_FULL, /* the node holds WHT_MAX_WORKERS workers */
    NODE_REG_COUNT
};

/* What became of a PROXY protocol header (the `outcome` label). */
enum node_pp {
    NODE_PP_PROXY,      /* read: the viewer's address is the header's source */
    NODE_PP_LOCAL,      /* read: LOCAL or UNKNOWN (the balancer's own check): the connection's address */
    NODE_PP_MISSING,    /* a WHT_PROXY_PROTOCOL address sent something else first: closed */
    NODE_PP_INVALID,    /* ... a malformed header, or closed in the middle of one: closed */
    NODE_PP_TIMEOUT,    /* ... no complete header within WHT_HEADER_TIMEOUT: closed */
    NODE_PP_UNEXPECTED, /* a header from an address not in WHT_PROXY_PROTOCOL: 400 */
    NODE_PP_COUNT
};

/* Exchanges with a worker ended by a limit (the `kind` label of whtunnel_stream_timeouts_total). */
enum node_timeout {
    NODE_TIMEOUT_ACCEPT,   /* the stream was not accepted within WHT_ACCEPT_TIMEOUT */
    NODE_TIMEOUT_RESPONSE, /* no response head within WHT_RESPONSE_TIMEOUT */
    NODE_TIMEOUT_IDLE,     /* no byte moved within WHT_STREAM_IDLE_TIMEOUT(_UPGRADED) */
    NODE_TIMEOUT_COUNT
};

/* What became of the requests held for a worker that left (returning.h; the
 * `outcome` label of whtunnel_requests_held_total). */
enum node_held {
    NODE_HELD_RETURNED, /* it registered here again: served by its new session */
    NODE_HELD_MOVED,    /* it registered on another node: relayed there */
    NODE_HELD_LOST,     /* it did not come back in time: 502 */
    NODE_HELD_COUNT
};

#define NODE_HEAD_BUCKETS 13 /* bounds in metrics.c; one more slot counts what is above the last */
#define NODE_END_KINDS 16    /* >= WSMUX_END_COUNT */

/* Counters and gauges: /__cluster__, the logs, /metrics (metrics.c). Each is
 * changed by the module that sees the event; nothing else keeps them. */
struct node_stats {
    uint64_t workers; /* worker sessions open */
    uint64_t conn_refused;  /* viewer connections closed at accept: WHT_MAX_CONNECTIONS */
    uint64_t accept_pauses; /* accept failed for want of descriptors or memory: paused */
    uint64_t buffer_refusals; /* new streams refused: WHT_MAX_BUFFERED */
    uint64_t relayed_out, relayed_in, relay_misses, relay_retries;
    uint64_t served[NODE_VIA_COUNT][5];        /* requests ended, by path and status class 1xx..5xx */
    uint64_t head_time[NODE_HEAD_BUCKETS + 1]; /* time to the response head, per bucket */
    double head_time_sum;                      /* seconds */
    uint64_t bytes_in, bytes_out;              /* viewer bytes received and sent */
    uint64_t reg[NODE_REG_COUNT];              /* registrations by outcome */
    uint64_t sessions_opened;                  /* worker sessions */
    uint64_t sessions_closed[NODE_END_KINDS];  /* ... by enum wsmux_end */
    int64_t streams_worker, streams_peer;      /* streams open (gauges) */
    int64_t websockets_open;                   /* viewer connections after a 101 (gauge) */
    uint64_t tls_handshakes, tls_failures;
    uint64_t reloads_ok, reloads_failed;          /* SIGHUP reloads (reload.c) */
    int64_t last_reload_wall_ms;                  /* the last successful one, or the start */
    uint64_t proxy_headers[NODE_PP_COUNT];        /* PROXY protocol headers, by outcome */
    uint64_t stream_timeouts[NODE_TIMEOUT_COUNT]; /* by enum node_timeout */
    uint64_t held[NODE_HELD_COUNT];               /* held requests released, by enum node_held */
};

struct node {
    struct event_base *base;
    const struct config *cfg;
    struct config *cfg_files;         /* the same struct: reload.c alone swaps its file-backed settings */
    struct token_keys keys;           /* worker tokens: point into cfg (reload.c repoints them) */
    SSL_CTX *ssl;                     /* TLS for new viewer connections, or NULL; replaced by reload.c */
    struct util_cidr_list proxy_from; /* WHT_PROXY_PROTOCOL: who must send a PROXY header */
    struct util_cidr_list trusted;    /* WHT_TRUSTED_PROXIES: whose X-Forwarded-For is kept */
    struct evconnlistener *listener;
    struct event *sigint_ev, *sigterm_ev, *sighup_ev;
    uint64_t next_serial; /* connections and sessions, for logs */
    uint32_t nconns;      /* viewer connections open */
    uint32_t relays_open; /* relayed streams served */
    uint64_t buffered;    /* bytes received from workers and peers, not yet consumed (WHT_MAX_BUFFERED) */
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
    struct returning *returning; /* requests held for workers that left (returning.c) */
    struct wsmux_shared *wsmux;  /* the events every session shares (wsmux.c) */
    /* cluster (REDIS_URL set) */
    struct cluster_registry *cluster;
    struct evdns_base *dns;
    struct event *stats_ev; /* periodic cluster figures in the log */
    char node_id[65];
    char advertise[300];
    struct token_keys peer_keys; /* WHT_CLUSTER_SECRET */
    /* admin (WHT_ADMIN_ADDR) */
    struct admin *admin;
    struct event *log_ev; /* flushes the log buffer */
    struct event *accept_resume_ev; /* accepting again after running out of descriptors */
    int64_t accept_pause_logged_ms; /* when that was last said */
    int registry_answered;          /* the first Redis connection attempt has ended (up or failed) */
    int64_t start_wall_ms;
    uint32_t request_id_prefix; /* random: request ids this node makes */
    uint64_t request_ids;
};

/* Starts the node on base with cfg (must outlive the node; read-only but
 * for the file-backed secrets, which SIGHUP reloads in it: reload.h):
 * listeners, TLS, the cluster when configured. Returns 0, or -1 after
 * printing why to stderr. */
int node_start(struct node *n, struct event_base *base, struct config *cfg);
/* Closes everything at once (after the loop exited). */
void node_stop(struct node *n);

#endif
