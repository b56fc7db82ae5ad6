/* metrics: recording into the node's counters (struct node_stats), and the
 * Prometheus text exposition of them with the process figures
 * (docs/operations.md, "Metrics"). Recording is a few additions, no I/O. */
#ifndef WHT_NODE_METRICS_H
#define WHT_NODE_METRICS_H

#include <event2/buffer.h>

#include "node/node.h"

/* A request ended with status (the `code` label is its class). */
static inline void metrics_request(struct node_stats *st, enum node_via via, int status)
{
    int c = status / 100 - 1;
    st->served[via][c < 0 ? 0 : c > 4 ? 4 : c]++;
}

/* Seconds from a request's head to its response head. */
void metrics_head_time(struct node_stats *st, double seconds);

/* Appends the exposition of every metric of node n to out. */
void metrics_write(struct node *n, struct evbuffer *out);

#endif
