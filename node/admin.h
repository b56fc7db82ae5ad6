/* admin: the admin listener (WHT_ADMIN_ADDR): /metrics, /healthz, /readyz,
 * /status, /cluster, /workers/<id>/requests and /dashboard, on a socket of
 * its own, apart from viewers and workers (docs/operations.md). */
#ifndef WHT_NODE_ADMIN_H
#define WHT_NODE_ADMIN_H

struct node;

/* Starts the listener unless WHT_ADMIN_ADDR is "off" (default: 127.0.0.1
 * and the viewer port + 2). Returns 0, or -1 after printing why to stderr. */
int admin_start(struct node *n);
/* Closes the listener and its connections (node stop). */
void admin_stop(struct node *n);
/* The port the admin listener is bound to, 0 if none. */
int admin_port(const struct node *n);

#endif
