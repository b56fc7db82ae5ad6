/* mux_buf: chained byte queue, see buf.h. */
#include "mux/buf.h"

#include "mux/ws.h"

#include <stdlib.h>
#include <string.h>

#define MUX_CHUNK_MIN 4096
#define MUX_CHUNK_MAX 65536

struct mux__chunk {
    struct mux__chunk *next;
    size_t cap, off, len; /* data lives at bytes[off, off + len) */
    uint8_t bytes[];
};

int mux__buf_add(struct mux_buf *b, const void *data, size_t len)
{
    const uint8_t *p = data;
    struct mux__chunk *t = b->tail;
    if (t) {
        size_t room = t->cap - t->off - t->len;
        size_t n = len < room ? len : room;
        memcpy(t->bytes + t->off + t->len, p, n);
        t->len += n;
        b->len += n;
        p += n;
        len -= n;
    }
    while (len > 0) {
        size_t cap = len < MUX_CHUNK_MIN ? MUX_CHUNK_MIN : len > MUX_CHUNK_MAX ? MUX_CHUNK_MAX : len;
        struct mux__chunk *c = malloc(sizeof *c + cap);
        if (!c)
            return -1;
        size_t n = len < cap ? len : cap;
        c->next = NULL;
        c->cap = cap;
        c->off = 0;
        c->len = n;
        memcpy(c->bytes, p, n);
        if (b->tail)
            b->tail->next = c;
        else
            b->head = c;
        b->tail = c;
        b->len += n;
        p += n;
        len -= n;
    }
    return 0;
}

size_t mux__buf_remove(struct mux_buf *b, void *out, size_t n, const uint8_t *key, size_t key_offset)
{
    uint8_t *o = out;
    size_t done = 0;
    while (done < n && b->head) {
        struct mux__chunk *c = b->head;
        size_t k = c->len < n - done ? c->len : n - done;
        if (key)
            ws_mask_copy(o + done, c->bytes + c->off, k, key, key_offset + done);
        else
            memcpy(o + done, c->bytes + c->off, k);
        c->off += k;
        c->len -= k;
        done += k;
        if (c->len == 0) {
            b->head = c->next;
            if (!b->head)
                b->tail = NULL;
            free(c);
        }
    }
    b->len -= done;
    return done;
}

void mux__buf_clear(struct mux_buf *b)
{
    struct mux__chunk *c = b->head;
    while (c) {
        struct mux__chunk *next = c->next;
        free(c);
        c = next;
    }
    b->head = b->tail = NULL;
    b->len = 0;
}
