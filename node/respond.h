/* respond: small complete HTTP responses the node writes itself, and the
 * header view the WebSocket handshake checks take. */
#ifndef WHT_NODE_RESPOND_H
#define WHT_NODE_RESPOND_H

#include <event2/bufferevent.h>

#include "mux/ws.h"
#include "node/http1.h"

/* Writes "HTTP/1.1 status reason" with Content-Type ctype, Content-Length,
 * Cache-Control: no-store, the extra header lines (each ending in CRLF; may
 * be NULL), "Connection: close" when close, and body (may be NULL) to bev's
 * output. */
void respond(struct bufferevent *bev, int status, const char *reason, const char *ctype, const char *extra,
             const char *body, int close);

/* The same as plain text (text/plain; charset=utf-8). */
void respond_text(struct bufferevent *bev, int status, const char *body, int close);

/* The reason phrase of the statuses the node writes ("Bad Gateway"). */
const char *respond_reason(int status);

/* The header lines of a parsed head as the WebSocket handshake checks take them. */
void respond_ws_headers(const struct http1_headers *h, struct ws_header out[HTTP1_MAX_HEADERS]);

#endif
