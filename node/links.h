/* links: the node-to-node links of a cluster. One authenticated WebSocket
 * carrying a wsmux session (ext mode) per pair of nodes, dialed on first
 * need and accepted on the peer port; either side opens streams on it (the
 * relay, relay.c). docs/cluster.md describes the handshake:
 *     GET /__peer__ HTTP/1.1
 *     X-Whtunnel-Node: <the dialer's node id>
 *     Authorization: Bearer <HS256 token, tid = node id, aud = whtunnel-peer,
 *                            signed with WHT_CLUSTER_SECRET, valid 5 minutes>
 *     X-Whtunnel-Ext: 1   (and the usual WebSocket upgrade headers)
 * and the acceptor answers 101 or refuses (401 without the secret). A pair
 * of nodes keeps one link (two only while both dial at the same moment). */
#ifndef WHT_NODE_LINKS_H
#define WHT_NODE_LINKS_H

#include "node/wsmux.h"

struct node;

/* A stream the peer opened on a link: accept or reset it (relay.c). */
typedef void (*links_incoming_cb)(struct node *n, struct wsmux *link, const char *peer_id,
                                  struct mux_stream *st);

/* Binds the peer port (listen: "host:port", port 0 lets the kernel pick)
 * and sets up the links. *bound_port: the port bound. Returns 0, or -1
 * after printing why to stderr. */
int links_start(struct node *n, const char *listen, links_incoming_cb incoming, int *bound_port);
/* Closes every link and handshake and the listener (node stop). */
void links_stop(struct node *n);

/* The link to peer node_id at addr ("host:port"), dialed if there is none
 * (streams opened on it wait for the handshake). NULL if it cannot be made. */
struct wsmux *links_get(struct node *n, const char *node_id, const char *addr);
/* Closes the links to node_id (it left the cluster). */
void links_close_to(struct node *n, const char *node_id, const char *why);
/* Links up or being dialed. */
unsigned links_count(const struct node *n);
/* Links up (handshake done). */
unsigned links_up(const struct node *n);
/* The state of the link to node_id: "up", "connecting" or "none". */
const char *links_state(const struct node *n, const char *node_id);

#endif
