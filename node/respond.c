/* respond: small responses and the WebSocket header view (see respond.h). */
#include <string.h>

#include <event2/buffer.h>

#include "node/respond.h"

void respond(struct bufferevent *bev, int status, const char *reason, const char *ctype, const char *extra,
             const char *body, int close)
{
    size_t len = body ? strlen(body) : 0;
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n%s%s\r\n",
                        status, reason, ctype, len, extra ? extra : "", close ? "Connection: close\r\n" : "");
    if (len)
        evbuffer_add(out, body, len);
}

const char *respond_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

void respond_text(struct bufferevent *bev, int status, const char *body, int close)
{
    respond(bev, status, respond_reason(status), "text/plain; charset=utf-8", NULL, body, close);
}

void respond_ws_headers(const struct http1_headers *h, struct ws_header out[HTTP1_MAX_HEADERS])
{
    for (size_t i = 0; i < h->count; i++) {
        out[i].name = h->h[i].name;
        out[i].name_len = h->h[i].name_len;
        out[i].value = h->h[i].value;
        out[i].value_len = h->h[i].value_len;
    }
}
