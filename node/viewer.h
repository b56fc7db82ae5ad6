/* viewer: one viewer connection, from its first byte to its close: read a
 * request head, have route.c decide where it goes, carry the decision out
 * (an endpoint answers, a worker registers, a stream to a local worker or to
 * the node that holds it), stream bodies both ways with backpressure, keep
 * the connection alive between requests, tunnel after a 101.
 *
 * The connection is a state machine (docs/architecture.md has its table);
 * every state change goes through one function that checks it. A viewer is
 * closed from anywhere with viewer_close() and freed later, from the loop,
 * in one place. */
#ifndef WHT_NODE_VIEWER_H
#define WHT_NODE_VIEWER_H

#include <sys/socket.h>

#include <event2/bufferevent.h>

struct node;
struct relay;
struct viewer;

/* Sets up the viewer side. Returns 0 or -1 (out of memory). */
int viewer_init(struct node *n);
/* Closes every viewer connection and frees the viewer side (node stop). */
void viewer_free_all(struct node *n);

/* Serves a new connection on bev (owned from now on): tls, the peer's
 * address. relay: the relayed stream it comes from (relay.h), or NULL for a
 * viewer connected to this node. Returns the viewer, or NULL (bev freed). */
struct viewer *viewer_start(struct node *n, struct bufferevent *bev, int tls, const char *peer_ip,
                            struct relay *relay);
/* Serves a connection accepted on the viewer port: fd (owned from now on),
 * from sa, whose address as text is ip. A connection from WHT_PROXY_PROTOCOL
 * is read for its PROXY header first; any other starts with its first
 * request head (after the TLS handshake when TLS is on). */
void viewer_accept(struct node *n, evutil_socket_t fd, const struct sockaddr *sa, const char *ip);
/* Closes v at once (its relay ended). */
void viewer_abort(struct viewer *v);

/* The node starts draining: no more keep-alive; connections idle between
 * two requests close now. */
void viewer_drain_all(struct node *n);

#endif
