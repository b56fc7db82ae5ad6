/* workers: the workers connected to this node. Registration (the token
 * check and the WebSocket handshake on a viewer connection that asked for
 * it), the table by id, and each worker's wsmux session; a newer
 * registration of the same id replaces the older session.
 *
 * What happens to a worker is told to the layer above through the events
 * given to workers_init() (the node wires them to the cluster registry). */
#ifndef WHT_NODE_WORKERS_H
#define WHT_NODE_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "node/http1.h"
#include "node/node.h"
#include "node/wsmux.h"

struct node;
struct workers;

struct workers_events {
    /* A session of worker id started (a new registration). */
    void (*registered_cb)(struct node *n, const char *id);
    /* The session of worker id closed; replaced: a newer registration (here
     * or elsewhere) holds the id now. waiting: the requests still waiting
     * for a stream on it; those left there afterwards get WSMUX_WAIT_GONE. */
    void (*closed_cb)(struct node *n, const char *id, int replaced, struct wsmux_waiter_list *waiting);
};

/* Sets up the table. Returns 0 or -1 (out of memory). */
int workers_init(struct node *n, const struct workers_events *ev);
/* Closes every session and frees the table (node stop). */
void workers_free(struct node *n);

/* Workers connected. */
uint32_t workers_count(const struct node *n);

/* The session of worker id (len bytes), or NULL. */
struct wsmux *workers_find(struct node *n, const char *id, size_t len);

/* Why a registration was refused: the status and text for the viewer, and
 * the outcome for the metrics. */
struct workers_refusal {
    int status;
    const char *body; /* static, or text */
    enum node_reg outcome;
    char text[256];   /* a body made for this refusal */
    char extra[320];  /* header lines for the answer (each ending in CRLF), "" if none: a refused
                         token's reason in WWW-Authenticate (RFC 6750), which whclient prints */
};

/* Registers the worker that req (a complete request head on bev, whose
 * "X-Websocktunnel-Id" or "X-Webhooktunnel-Id" header is idh) asks for:
 * checks the id, the token and the WebSocket handshake, answers 101 and
 * takes bev over as the worker's session (with callbacks of its own): the
 * caller forgets bev when this returns 0. Returns 0, or -1 with *why
 * set (bev untouched: the caller answers). tls: how the viewer connected. */
int workers_register(struct node *n, struct bufferevent *bev, const struct http1_request *req,
                     const struct http1_header *idh, int tls, uint64_t conn_serial,
                     struct workers_refusal *why);

/* Worker id's registration passed to another node (takeover). While the
 * node drains, its waiting requests follow it (WSMUX_WAIT_MOVED) and the
 * session closes once its streams are done; otherwise it closes now. */
void workers_moved(struct node *n, const char *id, size_t len);

/* The node drains: every session takes no new streams; ext workers get
 * GOAWAY (they reconnect elsewhere once their streams are done), the others
 * are closed once idle. Requests for them wait until deadline_ms. */
void workers_drain(struct node *n, int64_t deadline_ms);

/* ---- what the workers did, for /status and /workers/<id>/requests ---- */

#define WORKERS_RING 50      /* requests remembered per worker */
#define WORKERS_RING_PATH 96 /* bytes of a remembered path (longer ones are cut, with "...") */

/* One request that reached a worker through this node (no bodies, header
 * values, query strings or tokens). */
struct workers_request {
    int64_t time_ms; /* wall clock, when it ended */
    const char *method;
    size_t method_len;
    const char *path; /* without the query (cut at '?' by the recorder) */
    size_t path_len;
    int status;
    double duration_ms;
    uint64_t bytes_in, bytes_out;
    int relayed;            /* relayed here by another node */
    const char *request_id; /* NUL-terminated */
};

/* Records a request to worker id (len bytes) if it is connected here:
 * counters, and the worker's ring (allocated on its first request). */
void workers_record(struct node *n, const char *id, size_t len, const struct workers_request *r);

struct json_t;
/* JSON of the workers, sorted by id, from offset, at most limit of them:
 * an array of {id, connected_since, client, streams, requests, bytes_in,
 * bytes_out}. A new reference, or NULL (out of memory). */
struct json_t *workers_json(struct node *n, size_t offset, size_t limit);
/* JSON of the recent requests of worker id: {worker, connected, requests:
 * [...newest first]}. NULL when this node never served it. */
struct json_t *workers_requests_json(struct node *n, const char *id, size_t len);

#endif
