/* rewrite: request and response heads for the other side (see rewrite.h). */
#include <string.h>
#include <strings.h>

#include "node/rewrite.h"

/* A head is put together in a buffer on the stack and added to the evbuffer
 * in one piece (or a few, for a head over HEAD_CHUNK): an evbuffer_add() to
 * a bufferevent's output runs its callbacks each time, and printf costs
 * more than the copies it makes. */
#define HEAD_CHUNK 4096

struct head {
    struct evbuffer *out;
    size_t len;
    char buf[HEAD_CHUNK];
};

static void put(struct head *o, const char *s, size_t n)
{
    if (o->len + n > sizeof o->buf) {
        if (o->len > 0)
            evbuffer_add(o->out, o->buf, o->len);
        o->len = 0;
        if (n > sizeof o->buf) {
            evbuffer_add(o->out, s, n);
            return;
        }
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_str(struct head *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u64(struct head *o, unsigned long long v)
{
    char d[20];
    size_t i = sizeof d;
    do
        d[--i] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    put(o, d + i, sizeof d - i);
}

static void head_end(struct head *o)
{
    put(o, "\r\n", 2);
    evbuffer_add(o->out, o->buf, o->len);
    o->len = 0;
}

/* "name: value" */
static void put_header(struct head *o, const char *name, size_t name_len, const char *value, size_t len)
{
    put(o, name, name_len);
    put(o, ": ", 2);
    put(o, value, len);
    put(o, "\r\n", 2);
}

static void add_header(struct head *o, const char *name, const char *value, size_t len)
{
    put_header(o, name, strlen(name), value, len);
}

static void put_content_length(struct head *o, uint64_t n)
{
    PUT_LIT(o, "Content-Length: ");
    put_u64(o, (unsigned long long)n);
    put(o, "\r\n", 2);
}

/* Whether h is named lit (a lowercase string literal), case-insensitively. */
#define HEADER_IS(h, lit)                                                                                    \
    ((h)->name_len == sizeof(lit) - 1 && strncasecmp((h)->name, lit, sizeof(lit) - 1) == 0)

/* Writes h as received: "Name: value". */
static void copy_header(struct head *b, const struct http1_header *h)
{
    put_header(b, h->name, h->name_len, h->value, h->value_len);
}

/* The viewer's header lines the worker gets as they are. The Host of an
 * absolute-form request is the target's authority (RFC 9112 3.2.2), written
 * by the caller. Returns how many X-Forwarded-For lines it passed over. */
static size_t copy_request_headers(struct head *b, const struct http1_request *r)
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
static void forwarded_for(struct head *b, const struct http1_request *r, size_t xff, const char *peer_ip)
{
    PUT_LIT(b, "X-Forwarded-For: ");
    for (size_t i = 0; xff > 0 && i < r->headers.count; i++) {
        const struct http1_header *h = &r->headers.h[i];
        if (HEADER_IS(h, "x-forwarded-for") && !http1_is_hop_by_hop(&r->headers, h->name, h->name_len)) {
            xff--;
            if (h->value_len > 0) {
                put(b, h->value, h->value_len);
                put(b, ", ", 2);
            }
        }
    }
    put_str(b, peer_ip);
    put(b, "\r\n", 2);
}

void rewrite_request_head(struct evbuffer *out, const struct http1_request *r,
                          const struct rewrite_request *x)
{
    struct head hb, *b = &hb;
    hb.out = out;
    hb.len = 0;
    put(b, r->method, r->method_len);
    put(b, " ", 1);
    put(b, x->target, x->target_len);
    PUT_LIT(b, " HTTP/1.1\r\n");
    size_t xff = copy_request_headers(b, r);
    if (!r->host) /* HTTP/1.0 without Host */
        add_header(b, "Host", x->worker_id, strlen(x->worker_id));
    else if (r->target_form == HTTP1_TARGET_ABSOLUTE)
        add_header(b, "Host", r->host, r->host_len);
    forwarded_for(b, r, x->keep_xff ? xff : 0, x->peer_ip);
    if (x->request_id && x->request_id[0])
        add_header(b, "X-Request-Id", x->request_id, strnlen(x->request_id, 80));
    if (x->tls)
        PUT_LIT(b, "X-Forwarded-Proto: https\r\n");
    else
        PUT_LIT(b, "X-Forwarded-Proto: http\r\n");
    if (r->host)
        add_header(b, "X-Forwarded-Host", r->host, r->host_len);
    if (x->path_mode) {
        add_header(b, "X-Webhooktunnel-Original-Path", r->path, r->path_len);
        add_header(b, "X-Websocktunnel-Original-Path", r->path, r->path_len);
    }
    if (r->body == HTTP1_BODY_LENGTH) {
        put_content_length(b, r->content_length);
    } else if (r->body == HTTP1_BODY_CHUNKED) {
        PUT_LIT(b, "Transfer-Encoding: chunked\r\n");
    }
    if (r->upgrade) {
        const struct http1_header *u = http1_find_header(&r->headers, "upgrade");
        PUT_LIT(b, "Connection: Upgrade\r\n");
        add_header(b, "Upgrade", u->value, u->value_len);
    } else if (!x->keep_alive) {
        PUT_LIT(b, "Connection: close\r\n");
    }
    head_end(b);
}

void rewrite_response_head(struct evbuffer *out, const struct http1_response *r, enum http1_method method,
                           int dechunk, int *keep_alive)
{
    struct head hb, *b = &hb;
    hb.out = out;
    hb.len = 0;
    PUT_LIT(b, "HTTP/1.1 ");
    put_u64(b, (unsigned long long)r->status);
    put(b, " ", 1);
    put(b, r->reason, r->reason_len);
    put(b, "\r\n", 2);
    for (size_t i = 0; i < r->headers.count; i++) {
        const struct http1_header *h = &r->headers.h[i];
        if (http1_is_hop_by_hop(&r->headers, h->name, h->name_len))
            continue;
        /* Content-Length is ours to write, except where it only describes a
         * body not sent (HEAD, 304): then the worker's value goes through */
        if (HEADER_IS(h, "content-length") &&
            !(r->body == HTTP1_BODY_NONE && (method == HTTP1_METHOD_HEAD || r->status == 304)))
            continue;
        copy_header(b, h);
    }
    if (r->upgrade) {
        const struct http1_header *u = http1_find_header(&r->headers, "upgrade");
        PUT_LIT(b, "Connection: Upgrade\r\n");
        if (u)
            add_header(b, "Upgrade", u->value, u->value_len);
    } else {
        if (r->body == HTTP1_BODY_LENGTH) {
            put_content_length(b, r->content_length);
        } else if (r->body == HTTP1_BODY_CHUNKED && !dechunk) {
            PUT_LIT(b, "Transfer-Encoding: chunked\r\n");
        }
        if (r->body == HTTP1_BODY_CLOSE || dechunk)
            *keep_alive = 0; /* the body ends when the connection does */
        if (!*keep_alive)
            PUT_LIT(b, "Connection: close\r\n");
    }
    head_end(b);
}
