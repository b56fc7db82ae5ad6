/* route: where a viewer's request goes, decided from its head and the
 * node's tables alone (no I/O, no sockets: unit-tested as a pure function).
 * The viewer's owner (viewer.c) carries the decision out. */
#ifndef WHT_NODE_ROUTE_H
#define WHT_NODE_ROUTE_H

#include <stddef.h>

#include "node/http1.h"

enum route_kind {
    ROUTE_ANSWER,   /* an endpoint of the node answers (route.endpoint) */
    ROUTE_REGISTER, /* a worker registers (route.idh names it) */
    ROUTE_LOCAL,    /* a worker connected to this node (route.id) */
    ROUTE_RELAY,    /* held by another node: ask the cluster where, relay there */
    ROUTE_PARK,     /* the worker left this draining node: wait for its next home */
    ROUTE_MISS,     /* a relayed request for a worker not here: the sender asks again */
    ROUTE_FAIL,     /* answer route.status with route.body and close */
};

enum route_endpoint {
    ROUTE_EP_HEARTBEAT, /* /__lbheartbeat__, /__heartbeat__ */
    ROUTE_EP_DRAINING,  /* /__lbheartbeat__ while draining: 503, send nothing new here */
    ROUTE_EP_VERSION,   /* /__version__ */
    ROUTE_EP_CLUSTER,   /* /__cluster__ */
};

/* What the decision reads of the node. */
struct route_env {
    const char *domain; /* WHT_DOMAIN, "" or NULL for path mode only */
    int draining;       /* the node drains */
    int relayed;        /* the request arrived over a peer link */
    int cluster;        /* REDIS_URL is set */
    /* the worker id (len bytes) connected here (opaque to route.c), or NULL */
    void *(*find_worker)(void *ud, const char *id, size_t len);
    /* while draining: -1 worker id did not leave this node, 0 it left and
     * has no new home yet, 1 it registered on another node */
    int (*moving)(void *ud, const char *id, size_t len);
    void *ud;
};

struct route {
    enum route_kind kind;
    enum route_endpoint endpoint;   /* ANSWER */
    int status;                     /* FAIL */
    const char *body;               /* FAIL: a static text */
    const struct http1_header *idh; /* REGISTER: the id header */
    const char *id;                 /* LOCAL, RELAY, PARK, MISS: into the request */
    void *worker;                   /* LOCAL: what find_worker() returned */
    size_t id_len;
    int path_mode;  /* routed by path: the worker gets the original-path headers */
    size_t fwd_len; /* LOCAL, RELAY, PARK, MISS: bytes of the target the worker sees, in fwd */
};

/* The bytes route_decide() may write to fwd for request r. */
#define ROUTE_FWD_CAP(r) ((r)->path_len + 2)

/* Decides where request r goes. fwd (at least ROUTE_FWD_CAP(r) bytes)
 * receives the request-target the worker sees (not NUL-terminated). */
void route_decide(const struct route_env *env, const struct http1_request *r, char *fwd, struct route *out);

#endif
