/* endpoints: what the node answers itself on the viewer port: the
 * Dockerflow endpoints (/__lbheartbeat__, /__heartbeat__, /__version__) and
 * /__cluster__ (the cluster's figures as JSON). */
#ifndef WHT_NODE_ENDPOINTS_H
#define WHT_NODE_ENDPOINTS_H

#include <event2/bufferevent.h>

#include "node/route.h"

struct node;

/* Writes the answer of endpoint ep to bev's output (with "Connection:
 * close" unless keep_alive; always for ROUTE_EP_DRAINING). */
void endpoints_answer(struct node *n, enum route_endpoint ep, struct bufferevent *bev, int keep_alive);

#endif
