/* relay: a viewer's request for a worker held by another node goes over the
 * link to that node (links.c) as a wsmux stream. Both sides live here.
 *
 * The sending side finds the owner (route cache, else Redis), opens a stream
 * on the link, and starts it with one line, "WHT-RELAY 1 <viewer ip>
 * <tls>\r\n" (tls 0 or 1: how the viewer reached the sending node), followed
 * by the viewer's bytes exactly as received: request heads and bodies,
 * keep-alive requests one after the other, or after a 101 the raw bytes of
 * the upgraded connection. The answer is what a viewer would get from the
 * owner. If the owner does not hold the worker (any more), it answers 404
 * with "X-Whtunnel-Relay: miss": the sender forgets the route and sends a
 * bodyless request once more.
 *
 * The receiving side joins each incoming stream to one end of a bufferevent
 * pair; the other end is served as an ordinary viewer connection marked
 * relayed (never relayed again). Backpressure both ways through pump.h. */
#ifndef WHT_NODE_RELAY_H
#define WHT_NODE_RELAY_H

#include <stddef.h>

#include <event2/bufferevent.h>

#include "node/http1.h"
#include "node/wsmux.h"

struct node;
struct relay;
struct cluster_lookup;

/* A relay_find() under way while Redis is asked (embedded in the asker). */
struct relay_lookup {
    struct cluster_lookup *h; /* NULL: none under way */
    struct node *node;
    struct wsmux_waiter *wt;
};

/* How the receiving side serves a relayed stream: start a viewer on bev
 * (relayed; the relay r is its peer: it calls relay_viewer_gone(r) when it
 * goes), and close that viewer at once when the relay ends. */
struct relay_hooks {
    void *(*serve)(struct node *n, struct bufferevent *bev, int tls, const char *ip, struct relay *r);
    void (*abort)(void *viewer);
};

/* Sets up the receiving side. Returns 0 or -1 (out of memory). */
int relay_init(struct node *n, const struct relay_hooks *hooks);
/* Ends every relayed stream and frees the relay state (node stop). */
void relay_free(struct node *n);

/* ---- sending ---------------------------------------------------------------- */

/* Finds the node that holds worker id (len bytes) and queues wt for a stream
 * on the link to it. wt->ready_cb reports the stream, or why there is none
 * (WSMUX_WAIT_NOT_FOUND, _UNREACHABLE, _LINK_GONE, _REGISTRY_*), possibly from
 * here. While Redis is asked, lk->h is set (relay_cancel() drops it). */
void relay_find(struct node *n, const char *id, size_t len, struct wsmux_waiter *wt, struct relay_lookup *lk);
/* Cancels a pending relay_find() (its wt hears nothing). */
void relay_cancel(struct relay_lookup *lk);

/* Writes a request to a stream from relay_find(): on a fresh stream the
 * preamble first (ip, tls: the viewer's), then the viewer's head bytes as
 * received (the owner rewrites it as for its own viewers), with
 * "X-Request-Id: <request_id>" as its first header line when request_id is
 * not NULL (the sender made the id: the owner keeps the first one). */
void relay_write_request(struct mux_stream *st, int fresh, const char *ip, int tls, const char *head,
                         size_t len, const char *request_id);

enum relay_miss {
    RELAY_NOT_MISS = 0, /* an answer: pass it on */
    RELAY_MISS_RETRY,   /* the owner no longer holds the worker: relay_find() once more */
    RELAY_MISS_FAIL,    /* the same, but the request cannot go again (a body went, or it did already): 502 */
};
/* The owner answered r to a relayed request for worker id; has_body: the
 * request had a body; *retried: whether it went once more already (set when
 * RELAY_MISS_RETRY is returned). */
enum relay_miss relay_check_miss(struct node *n, const char *id, const struct http1_response *r, int has_body,
                                 unsigned *retried);

/* ---- receiving ---------------------------------------------------------------- */

/* A stream a peer opened on a link (links.h's incoming callback). */
void relay_incoming(struct node *n, struct wsmux *link, const char *peer_id, struct mux_stream *st);
/* The answer to a relayed request for a worker not held here. */
void relay_answer_miss(struct bufferevent *bev);
/* The viewer served for relay r is gone: what it left unsent goes, then FIN. */
void relay_viewer_gone(struct relay *r);

/* ---- the preamble (pure) ---------------------------------------------------------- */

#define RELAY_PREAMBLE_MAX 128
#define RELAY_MAX_IP 64
#define RELAY_IP_CHARS "0123456789abcdefABCDEF.:"
/* Writes the line into out[cap] (NUL-terminated). The ip is 1..RELAY_MAX_IP-1
 * of RELAY_IP_CHARS (IPv4 or IPv6). Returns its length, or -1 for a bad ip
 * or a cap too small. */
int relay_format_preamble(char *out, size_t cap, const char *ip, int tls);
/* Parses a line (len bytes, ending in "\r\n", "\n" or nothing). Returns 0
 * with ip (NUL-terminated) and *tls set, or -1. */
int relay_parse_preamble(const char *line, size_t len, char ip[RELAY_MAX_IP], int *tls);

#endif
