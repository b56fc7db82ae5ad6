/* returning: requests held for a worker that left this node, until it
 * registers again (docs/node.md, "When a worker restarts or moves").
 *
 * When a worker's session here ends, the requests that had not reached its
 * backend (they waited for a stream slot, or their stream was never
 * accepted and nothing of their body was taken from the viewer) are parked
 * under its id as wsmux waiters, each until its own deadline
 * (WSMUX_WAIT_LOST then). A registration of the id on this node releases
 * them with WSMUX_WAIT_RETURNED (from the loop, once the new session runs:
 * attach to it); one on another node (the registry's `set`, or a takeover)
 * with WSMUX_WAIT_MOVED (relay there). An id is in the table only while
 * requests are parked under it...
 *
 * ... unless it is kept: the drain (drain.c) keeps the ids of the workers
 * that left the draining node ("moving"), so that new requests for them park
 * too and, once they registered elsewhere, follow them there for a while. */
#ifndef WHT_NODE_RETURNING_H
#define WHT_NODE_RETURNING_H

#include <stddef.h>
#include <stdint.h>

#include "node/wsmux.h"

struct node;

/* How long a kept id that registered elsewhere sends new requests after it
 * (for the requests peers send here before they learn of the move). */
#define RETURNING_FORWARD_MS 5000

/* Parks wt (waiting nowhere else) for worker id (len bytes) until
 * deadline_ms. Returns 0 (wt->ready_cb runs later, never from here), or -1:
 * the node stops, out of memory, or id is kept and registered elsewhere
 * already (route again). */
int returning_park(struct node *n, const char *id, size_t len, struct wsmux_waiter *wt, int64_t deadline_ms);
/* wt leaves the id it is parked under, if any (no callback). */
void returning_unpark(struct wsmux_waiter *wt);

/* Worker id's session here ended: every waiter in waiting is parked (the
 * list is left empty), each until deadline_ms, or when that is 0 until its
 * since_ms + WHT_ACCEPT_TIMEOUT. keep: the id stays in the table (the
 * drain's "moving") until it registered elsewhere and RETURNING_FORWARD_MS
 * passed (returning_sweep), or returning_free(). */
void returning_left(struct node *n, const char *id, struct wsmux_waiter_list *waiting, int64_t deadline_ms,
                    int keep);

/* Worker id registered on this node again: its parked requests go to the
 * new session (WSMUX_WAIT_RETURNED, from the loop). */
void returning_back(struct node *n, const char *id, size_t len);
/* Worker id registered on another node: its parked requests go there
 * (WSMUX_WAIT_MOVED, from here). */
void returning_moved(struct node *n, const char *id, size_t len);

/* A kept id: -1 not kept, 0 kept and no new home yet, 1 registered elsewhere. */
int returning_kept(struct node *n, const char *id, size_t len);
/* Forgets the kept ids whose forwarding ran out at now; returns how many
 * kept ids have no new home yet. */
size_t returning_sweep(struct node *n, int64_t now);

/* Requests parked now (for the figures). */
size_t returning_parked(const struct node *n);

/* Forgets everything: parked waiters get WSMUX_WAIT_LOST (drain end, node stop). */
void returning_free(struct node *n);

#endif
