/* rewrite: the heads the node writes on behalf of others, built from a
 * parsed head (no I/O: bytes appended to an evbuffer). A viewer's request
 * as its worker must see it (hop-by-hop headers dropped, the body framing
 * and the X-Forwarded-* and original-path headers the node's own), and a
 * worker's response as the viewer must see it. */
#ifndef WHT_NODE_REWRITE_H
#define WHT_NODE_REWRITE_H

#include <event2/buffer.h>

#include "node/http1.h"

/* What the request rewrite needs besides the head. */
struct rewrite_request {
    const char *target; /* the request-target the worker sees */
    size_t target_len;
    const char *worker_id;  /* the Host of an HTTP/1.0 request without one */
    const char *peer_ip;    /* appended to X-Forwarded-For */
    int keep_xff;           /* the peer is a trusted proxy: the viewer's X-Forwarded-For is kept
                               (peer_ip appended); else it is replaced by peer_ip alone */
    int tls;                /* X-Forwarded-Proto https */
    int path_mode;          /* routed by path: X-Webhooktunnel/Websocktunnel-Original-Path */
    int keep_alive;         /* else "Connection: close" (unless an upgrade) */
    const char *request_id; /* X-Request-Id (the viewer's own X-Request-Id lines are dropped) */
};

/* Appends request r, rewritten for the worker, to out. */
void rewrite_request_head(struct evbuffer *out, const struct http1_request *r,
                          const struct rewrite_request *x);

/* Appends response r, rewritten for the viewer of a request made with
 * method, to out. dechunk: the viewer (HTTP/1.0) gets a chunked body's bare
 * payload. *keep_alive: whether the viewer's connection stays open; cleared
 * when the body ends with the connection. */
void rewrite_response_head(struct evbuffer *out, const struct http1_response *r, enum http1_method method,
                           int dechunk, int *keep_alive);

#endif
