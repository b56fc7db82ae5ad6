/* glue: the node and the cluster registry (REDIS_URL set). Starts the
 * registry and the peer links; tells the registry of the workers this node
 * holds; carries the registry's news out (a takeover closes or moves a local
 * worker, a peer that left loses its links); logs the cluster's figures
 * every minute. */
#ifndef WHT_NODE_GLUE_H
#define WHT_NODE_GLUE_H

#include "node/links.h"
#include "node/wsmux.h"

struct node;

/* Starts the cluster side when REDIS_URL is set (n->cluster; nothing
 * otherwise): node id, peer port and address, registry. incoming: streams
 * peers open (the relay). Returns 0, or -1 after printing why to stderr. */
int glue_start(struct node *n, links_incoming_cb incoming);
/* Stops the registry and the links (node stop). */
void glue_stop(struct node *n);

/* workers.h events: a worker session started; one closed (replaced: a
 * newer registration holds its id). */
void glue_worker_registered(struct node *n, const char *id);
void glue_worker_closed(struct node *n, const char *id, int replaced, struct wsmux_waiter_list *waiting);

#endif
