/* rewrite: request and response heads for the other side (see rewrite.h). */
#include <string.h>
#include <strings.h>

#include "node/rewrite.h"

static void add_header(struct evbuffer *b, const char *name, const char *value, size_t len)
{
    evbuffer_add_printf(b, "%s: %.*s\r\n", name, (int)len, value);
}

/* Whether h is named lit (a lowercase string literal), case-insensitively. */
#define HEADER_IS(h, lit)                                                                                    \
    ((h)->name_len == sizeof(lit) - 1 && strncasecmp((h)->name, lit, sizeof(lit) - 1) == 0)

/* Writes h as received: "Name: value". */
static void copy_header(struct evbuffer *b, const struct http1_header *h)
{
    evbuffer_add(b, h->name, h->name_len);
    evbuffer_add(b, ": ", 2);
    evbuffer_add(b, h->value, h->value_len);
    evbuffer_add(b, "\r\n", 2);
}

/* The viewer's header lines the worker gets as they are. The Host of an
 * absolute-form request is the target's authority (RFC 9112 3.2.2), written
 * by the caller. Returns how many X-Forwarded-For lines it passed over. */
static size_t copy_request_headers(struct evbuffer *b, const struct http1_request *r)
{
    int own_host = r->target_form == HTTP1_TARGET_ABSOLUTE;
    size_t xff = 0;
    for (size_t i = 0; i < r->headers.count; i++) {
        const struct http1_header *h = &r->headers.h[i];
        if (http1_is_hop_by_hop(&r->headers, h->name, h->name_len))
            continue;
        if (HEADER_IS(h, "x-forwarded-for")) {
            xff++;
            continue;
        }
        if (HEADER_IS(h, "content-length") || HEADER_IS(h, "x-forwarded-proto") ||
            HEADER_IS(h, "x-forwarded-host") || HEADER_IS(h, "x-webhooktunnel-original-path") ||
            HEADER_IS(h, "x-websocktunnel-original-path") || HEADER_IS(h, "x-request-id") ||
            (own_host && HEADER_IS(h, "host")))
            continue;
        copy_header(b, h);
    }
    return xff;
}

/* X-Forwarded-For: the xff such lines the viewer sent, as one list (RFC
 * 9110 5.3), then the viewer's address. (xff 0: the address alone.) */
static void forwarded_for(struct evbuffer *b, const struct http1_request *r, size_t xff, const char *peer_ip)
{
    evbuffer_add(b, "X-Forwarded-For: ", 17);
    for (size_t i = 0; xff > 0 && i < r->headers.count; i++) {
        const struct http1_header *h = &r->headers.h[i];
        if (HEADER_IS(h, "x-forwarded-for") && !http1_is_hop_by_hop(&r->headers, h->name, h->name_len)) {
            xff--;
            if (h->value_len > 0) {
                evbuffer_add(b, h->value, h->value_len);
                evbuffer_add(b, ", ", 2);
            }
        }
    }
    evbuffer_add_printf(b, "%s\r\n", peer_ip);
}

void rewrite_request_head(struct evbuffer *b, const struct http1_request *r, const struct rewrite_request *x)
{
    evbuffer_add_printf(b, "%.*s %.*s HTTP/1.1\r\n", (int)r->method_len, r->method, (int)x->target_len,
                        x->target);
    size_t xff = copy_request_headers(b, r);
    if (!r->host) /* HTTP/1.0 without Host */
        evbuffer_add_printf(b, "Host: %s\r\n", x->worker_id);
    else if (r->target_form == HTTP1_TARGET_ABSOLUTE)
        add_header(b, "Host", r->host, r->host_len);
    forwarded_for(b, r, x->keep_xff ? xff : 0, x->peer_ip);
    if (x->request_id && x->request_id[0]) { /* one add: a line per request must cost little */
        char line[96];
        size_t n = strlen(x->request_id);
        if (n > sizeof line - 16)
            n = sizeof line - 16;
        memcpy(line, "X-Request-Id: ", 14);
        memcpy(line + 14, x->request_id, n);
        memcpy(line + 14 + n, "\r\n", 2);
        evbuffer_add(b, line, n + 16);
    }
    static const char proto_https[] = "X-Forwarded-Proto: https\r\n",
                      proto_http[] = "X-Forwarded-Proto: http\r\n";
    if (x->tls)
        evbuffer_add(b, proto_https, sizeof proto_https - 1);
    else
        evbuffer_add(b, proto_http, sizeof proto_http - 1);
    if (r->host)
        add_header(b, "X-Forwarded-Host", r->host, r->host_len);
    if (x->path_mode) {
        add_header(b, "X-Webhooktunnel-Original-Path", r->path, r->path_len);
        add_header(b, "X-Websocktunnel-Original-Path", r->path, r->path_len);
    }
    if (r->body == HTTP1_BODY_LENGTH)
        evbuffer_add_printf(b, "Content-Length: %llu\r\n", (unsigned long long)r->content_length);
    else if (r->body == HTTP1_BODY_CHUNKED)
        evbuffer_add(b, "Transfer-Encoding: chunked\r\n", 28);
    if (r->upgrade) {
        const struct http1_header *u = http1_find_header(&r->headers, "upgrade");
        evbuffer_add(b, "Connection: Upgrade\r\n", 21);
        add_header(b, "Upgrade", u->value, u->value_len);
    } else if (!x->keep_alive) {
        evbuffer_add(b, "Connection: close\r\n", 19);
    }
    evbuffer_add(b, "\r\n", 2);
}

void rewrite_response_head(struct evbuffer *out, const struct http1_response *r, enum http1_method method,
                           int dechunk, int *keep_alive)
{
    evbuffer_add_printf(out, "HTTP/1.1 %d %.*s\r\n", r->status, (int)r->reason_len, r->reason);
    for (size_t i = 0; i < r->headers.count; i++) {
        const struct http1_header *h = &r->headers.h[i];
        if (http1_is_hop_by_hop(&r->headers, h->name, h->name_len))
            continue;
        /* Content-Length is ours to write, except where it only describes a
         * body not sent (HEAD, 304): then the worker's value goes through */
        if (HEADER_IS(h, "content-length") &&
            !(r->body == HTTP1_BODY_NONE && (method == HTTP1_METHOD_HEAD || r->status == 304)))
            continue;
        copy_header(out, h);
    }
    if (r->upgrade) {
        const struct http1_header *u = http1_find_header(&r->headers, "upgrade");
        evbuffer_add(out, "Connection: Upgrade\r\n", 21);
        if (u)
            add_header(out, "Upgrade", u->value, u->value_len);
    } else {
        if (r->body == HTTP1_BODY_LENGTH)
            evbuffer_add_printf(out, "Content-Length: %llu\r\n", (unsigned long long)r->content_length);
        else if (r->body == HTTP1_BODY_CHUNKED && !dechunk)
            evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
        if (r->body == HTTP1_BODY_CLOSE || dechunk)
            *keep_alive = 0; /* the body ends when the connection does */
        if (!*keep_alive)
            evbuffer_add(out, "Connection: close\r\n", 19);
    }
    evbuffer_add(out, "\r\n", 2);
}
