/* drain: SIGTERM in a cluster. The node stops taking registrations, asks
 * its workers to reconnect elsewhere, lets in-flight requests finish, then
 * leaves the cluster and exits (docs/cluster.md, "Drain").
 *
 * A worker whose session ends here while the node drains is "moving": the
 * requests for it wait (held by returning.c, which keeps its id) until it
 * registers on another node (they are then released with WSMUX_WAIT_MOVED
 * and relayed there), or until the drain ends (WSMUX_WAIT_LOST). */
#ifndef WHT_NODE_DRAIN_H
#define WHT_NODE_DRAIN_H

#include <stddef.h>

#include "node/wsmux.h"

struct node;

/* Starts draining (n->draining). Returns 0, or -1 in a standalone node. */
int drain_start(struct node *n);
/* Ends the drain now: leaves the cluster (bounded by the registry's command
 * timeout), then the loop exits. */
void drain_end(struct node *n);
/* Frees what the drain holds (node stop). */
void drain_stop(struct node *n);

/* Worker id left this node while it drains: waiting (the requests that
 * waited for a stream on its session) are held for its next home, until the
 * drain's deadline. */
void drain_worker_left(struct node *n, const char *id, struct wsmux_waiter_list *waiting);

/* -1: worker id did not leave this node while it drains (or the node does
 * not drain); 0: it left and has no new home yet; 1: it registered elsewhere. */
int drain_moving(struct node *n, const char *id, size_t len);
/* Holds wt until worker id registers elsewhere (or the drain ends). Returns
 * 0 (held: wt's ready_cb runs later), or -1 (not moving, or moved already:
 * route again). */
int drain_park(struct node *n, const char *id, size_t len, struct wsmux_waiter *wt);

#endif
