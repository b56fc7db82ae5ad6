/* The proxy node: shared types of server.c (listener, HTTP front, routing,
 * registration), worker.c (wsmux sessions on a WebSocket over a bufferevent:
 * workers, and links to peer nodes), proxy.c (one viewer connection relayed
 * over wsmux streams), peer.c (the cluster: registry glue, peer listener and
 * dialer) and relay.c (streams a peer relays to this node). Internal to
 * node/. */
#ifndef WHT_NODE_NODE_H
#define WHT_NODE_NODE_H

#include <stdint.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "mux/mux.h"
#include "mux/ws.h"
#include "node/config.h"
#include "node/http1.h"
#include "node/token.h"

#define NODE_VERSION "0.1.0"
#define NODE_MAX_ID 255
#define NODE_MAX_SINGLE_IO (256 * 1024) /* bytes one read or write system call may move */

struct node;
struct worker;
struct viewer;
struct relay;
struct cluster_registry;
struct cluster_lookup;
struct cluster_route;
struct evdns_base;
struct peer_accept;
struct moving;

LIST_HEAD(relay_list, relay);
LIST_HEAD(peer_accept_list, peer_accept);
LIST_HEAD(moving_list, moving);

/* What a mux stream's user data points at: each such struct starts with
 * this tag, so the session callbacks know whom to call. */
enum stream_user { SU_VIEWER = 1, SU_RELAY = 2 };

/* What a session carries: a worker's tunnel, or a link to a peer node. */
enum session_kind { SESSION_WORKER = 0, SESSION_PEER = 1 };

TAILQ_HEAD(viewer_list, viewer);

/* One wsmux session on a WebSocket: a connected worker (the registration
 * WebSocket), or a link to a peer node (kind SESSION_PEER: id is the peer's
 * node id; streams are opened both ways; this node dialed it when
 * is_client). */
struct worker {
    struct node *node;
    enum session_kind kind;
    char id[NODE_MAX_ID + 1];
    uint64_t serial; /* this node's registration counter, for logs */
    struct bufferevent *bev;
    struct ws_parser parser;
    struct mux_session *mux;
    struct event *flush_ev; /* deferred flush of mux output */
    struct event *timer_ev; /* pings and mux deadlines */
    struct event *free_ev;  /* deferred free, never from inside a callback */
    int64_t last_pong_ms, last_ping_ms;
    uint32_t streams;           /* streams open towards this worker */
    uint32_t max_streams;       /* ... at most */
    uint64_t buffer_limit;      /* reading pauses while the session holds more unconsumed bytes */
    struct viewer_list waiting; /* viewers waiting for a stream slot */
    unsigned closing : 1, in_table : 1, read_paused : 1, ext : 1;
    unsigned is_client : 1;  /* we dialed: client role, masked frames */
    unsigned connecting : 1; /* peer link: the handshake is not done yet */
    unsigned replaced : 1;   /* closed for a newer local registration: the registry keeps it */
    unsigned draining : 1;   /* the node drains: no new streams; requests wait for the worker's next home */
    char client_key[25];     /* peer link being dialed: our Sec-WebSocket-Key */
    struct worker *hnext;
    TAILQ_ENTRY(worker) peer_link; /* the node's peer links */
};

TAILQ_HEAD(worker_list, worker);

/* Where a viewer connection is. */
enum viewer_state {
    V_HEAD,    /* reading a request head */
    V_WAIT,    /* routed, waiting for a stream slot on its worker, or for a route from Redis */
    V_PROXY,   /* request (body) going up, response coming down */
    V_TUNNEL,  /* after a 101: raw bytes both ways */
    V_CLOSING, /* flushing the last bytes, then close */
};

/* A viewer connection, and the stream it holds to a worker (kept across
 * keep-alive requests to the same worker). */
struct viewer {
    enum stream_user tag; /* SU_VIEWER */
    struct node *node;
    uint64_t serial;
    struct bufferevent *bev;
    enum viewer_state state;
    int tls;
    char peer_ip[64];
    struct http1_request req; /* the current request head (points into head) */
    char *head;               /* the current request head bytes, malloc'd */
    size_t head_len;
    char *fwd_path; /* the request-target the worker sees */
    size_t fwd_path_len;
    int path_mode; /* routed by path: add the original-path headers */
    /* the worker and stream serving this connection */
    struct worker *worker;
    struct mux_stream *stream;
    char worker_id[NODE_MAX_ID + 1];
    int stream_reusable; /* the last response left the backend connection open */
    /* request body going up */
    enum http1_body req_body;
    uint64_t req_left; /* LENGTH: bytes still to send */
    struct http1_chunked req_chunked;
    int req_done;
    /* response coming down */
    struct evbuffer *resp_head; /* response head bytes until complete */
    enum http1_body resp_body;
    uint64_t resp_left;
    struct http1_chunked resp_chunked;
    int resp_started, resp_done, resp_keep_alive;
    int resp_dechunk; /* an HTTP/1.0 viewer: the chunked body goes as its bare payload */
    uint64_t owed;    /* stream bytes delivered, not yet consumed */
    int64_t wait_deadline_ms;
    TAILQ_ENTRY(viewer) wait_link;
    TAILQ_ENTRY(viewer) all_link; /* the node's list of viewer connections */
    struct event *head_ev;        /* absolute deadline for the request head being read */
    int keep_alive;               /* the viewer may send another request */
    uint32_t nreq;                /* request heads read on this connection */
    unsigned in_cb : 1, dead : 1;
    /* cluster */
    unsigned relayed : 1;          /* arrived over a peer link: never relayed again */
    unsigned stream_fresh : 1;     /* relaying: the stream still needs its preamble */
    unsigned retried : 1;          /* relaying: this request was sent again after a miss */
    struct relay *relay;           /* relayed: the stream this connection is joined to */
    struct cluster_lookup *lookup; /* asking Redis where worker_id lives */
    struct moving *parked;         /* waiting for its worker to re-register on another node */
};

struct node_stats {
    uint64_t connections, requests, registrations, workers;
    uint64_t responses_5xx, responses_4xx;
    uint64_t relayed_out, relayed_in, relay_misses, relay_retries, peer_links;
};

struct node {
    struct event_base *base;
    const struct config *cfg;
    struct token_keys keys;
    SSL_CTX *ssl;
    struct evconnlistener *listener;
    struct event *sigint_ev, *sigterm_ev;
    struct worker **buckets;
    uint32_t nbuckets, nworkers;
    uint64_t next_serial;
    uint32_t nconns;
    struct viewer_list viewers; /* every viewer connection, for shutdown */
    struct node_stats stats;
    int scheme_https;
    int stopping; /* node_stop(): free at once, send nothing more */
    /* cluster (REDIS_URL set) */
    struct cluster_registry *cluster;
    struct evdns_base *dns;
    struct evconnlistener *peer_listener;
    struct worker_list peers;          /* links to peer nodes, at most one per node in the list */
    struct peer_accept_list accepting; /* peer connections still in their handshake */
    unsigned handshakes;               /* ... how many */
    struct relay_list relays;          /* streams relayed to this node */
    char node_id[65];
    char advertise[300];
    struct token_keys peer_keys; /* WHT_CLUSTER_SECRET */
    struct event *stats_ev;      /* periodic cluster figures in the log */
    int leaving;                 /* leaving the cluster before exit */
    int draining;                /* SIGTERM in a cluster: workers move elsewhere, then exit */
    int64_t drain_deadline_ms;
    struct event *drain_ev; /* drain progress checks */
    struct moving_list
        moving; /* workers that left this node while it drains, with requests waiting for them */
};

/* server.c */
int node_start(struct node *n, struct event_base *base, const struct config *cfg);
void node_stop(struct node *n);
int64_t node_now_ms(void);
struct worker *node_find_worker(struct node *n, const char *id, size_t len);
void node_table_put(struct node *n, struct worker *w);
void node_table_remove(struct node *n, struct worker *w);
/* The header lines of a parsed head as the WebSocket handshake checks take them. */
void node_ws_headers(const struct http1_headers *h, struct ws_header out[HTTP1_MAX_HEADERS]);
/* Writes a small complete response (with Content-Length) to a viewer. */
void node_respond(struct bufferevent *bev, int status, const char *reason, const char *ctype,
                  const char *body, int close);

/* worker.c */
/* Takes over bev (already holding the 101 in its output) as a worker session. */
struct worker *worker_start(struct node *n, struct bufferevent *bev, const char *id, size_t id_len, int ext);
/* A session for a link to peer node id: kind SESSION_PEER, ext, client role
 * when is_client (bev is then still connecting: call worker_connected() once
 * the 101 came; streams opened before wait). Not in the worker table. */
struct worker *worker_new_peer(struct node *n, struct bufferevent *bev, const char *id, int is_client);
/* The dialed link's handshake is done: start the session on its bufferevent. */
void worker_connected(struct worker *w);
void worker_close(struct worker *w, const char *why);
/* Opens a stream for v now or queues v until a slot is free. Returns 0, or -1 when
 * the worker can take nothing (v is answered by the caller). */
int worker_attach(struct worker *w, struct viewer *v);
void worker_detach_waiting(struct worker *w, struct viewer *v);
void worker_stream_done(struct worker *w);
/* Schedules a flush of the session's output on the loop (coalesced): output queued, or credit returned. */
void worker_kick(struct worker *w);
/* The node drains: no new streams on w; an ext worker gets GOAWAY (it reconnects elsewhere once its
 * streams are done), another is closed once idle. */
void worker_drain(struct worker *w);

/* proxy.c: stream events for the viewer that owns the stream (ud) */
void viewer_on_data(struct mux_stream *st, const uint8_t *data, size_t len, void *ud);
void viewer_on_eof(struct mux_stream *st, void *ud);
void viewer_on_writable(struct mux_stream *st, void *ud);
void viewer_on_closed(struct mux_stream *st, int err, void *ud);
/* proxy.c */
struct viewer *viewer_start(struct node *n, struct bufferevent *bev, int tls, const char *peer_ip,
                            struct relay *relay);
/* The relay joined to v is gone: close v at once (relay.c). */
void viewer_abort(struct viewer *v);
/* For route.c: answer with a small error page and close; close once the
 * output is out; let go of the stream and worker slot; send the current
 * request on v->stream; read the next request head; free now. */
void viewer_fail(struct viewer *v, int status, const char *reason, const char *body);
void viewer_finish(struct viewer *v);
void viewer_release_stream(struct viewer *v);
void viewer_send_request(struct viewer *v);
void viewer_next_head(struct viewer *v);
void viewer_free(struct viewer *v);

/* route.c */
/* A request head was read into v->req: answer it, or route it to its worker. */
void viewer_route(struct viewer *v);
/* Finds the node holding v->worker_id (route cache, else Redis) and relays v there. */
void viewer_relay_route(struct viewer *v);
/* Closes every viewer connection (shutdown). */
void viewer_close_all(struct node *n);
/* The worker has opened a stream for v (or failed: st NULL, err set). */
void viewer_stream_ready(struct viewer *v, struct mux_stream *st, int err);

/* peer.c: the cluster side of the node */
/* Starts the registry and the peer listener when REDIS_URL is set. */
int peer_start(struct node *n);
/* Leaves the cluster and closes every link (node_stop). */
void peer_stop(struct node *n);
/* The link to peer node_id at addr, dialed if there is none. NULL if it cannot be made. */
struct worker *peer_link_get(struct node *n, const char *node_id, const char *addr);
/* Session bookkeeping: a worker session started, or closed (not replaced). */
void peer_worker_registered(struct node *n, struct worker *w);
void peer_worker_closed(struct node *n, struct worker *w);
/* A peer link closed: it leaves the list. */
void peer_link_closed(struct node *n, struct worker *w);
/* SIGTERM: starts draining (cluster mode; returns -1 when standalone). */
int peer_drain_start(struct node *n);
/* Ends a drain now: leaves the cluster (bounded by the registry's command timeout), then the loop exits. */
void peer_drain_end(struct node *n);
/* While draining: a worker's session ended; its waiting viewers wait on for its next home. */
void peer_worker_moving(struct node *n, struct worker *w);
/* While draining: parks v until worker v->worker_id is registered elsewhere. Returns 0 (parked),
 * 1 (it is registered elsewhere already: relay v there), or -1 (no such worker left this node). */
int peer_park(struct node *n, struct viewer *v);
/* v leaves the waiting list it is parked on. */
void peer_unpark(struct viewer *v);

/* relay.c: a stream a peer relays to this node: preamble, then the viewer's bytes */
void relay_incoming(struct worker *link, struct mux_stream *st);
void relay_on_data(struct mux_stream *st, const uint8_t *data, size_t len, void *ud);
void relay_on_eof(struct mux_stream *st, void *ud);
void relay_on_writable(struct mux_stream *st, void *ud);
void relay_on_closed(struct mux_stream *st, int err, void *ud);
/* The relayed viewer joined to r is being freed. */
void relay_viewer_gone(struct relay *r);
/* Frees every relay (node_stop). */
void relay_close_all(struct node *n);

/* The first line of a relayed stream: "WHT-RELAY 1 <viewer ip> <0|1 tls>\r\n".
 * The ip is 1..RELAY_MAX_IP-1 of RELAY_IP_CHARS (IPv4, IPv6, or "unknown"
 * is refused: the node always knows its viewer's address). */
#define RELAY_PREAMBLE_MAX 128
#define RELAY_MAX_IP 64
#define RELAY_IP_CHARS "0123456789abcdefABCDEF.:"
/* Writes the line into out[cap] (NUL-terminated). Returns its length, or -1
 * for a bad ip or a cap too small. */
int relay_format_preamble(char *out, size_t cap, const char *ip, int tls);
/* Parses a line (len bytes, ending in "\r\n", "\n" or nothing). Returns 0
 * with ip (NUL-terminated) and *tls set, or -1. */
int relay_parse_preamble(const char *line, size_t len, char ip[RELAY_MAX_IP], int *tls);

#endif
