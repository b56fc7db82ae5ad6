/* mux_buf: a byte queue as a chain of heap chunks, allocated as data arrives
 * and freed as it drains. Internal to mux/. */
#ifndef WHT_MUX_BUF_H
#define WHT_MUX_BUF_H

#include <stddef.h>
#include <stdint.h>

struct mux__chunk;

struct mux_buf {
    struct mux__chunk *head, *tail;
    size_t len;
};

/* Appends a copy of len bytes. Returns 0, or -1 when out of memory. */
int mux__buf_add(struct mux_buf *b, const void *data, size_t len);

/* Copies up to n bytes from the front into out and drains them. Returns the
 * count. key: NULL, or the copy is masked as WebSocket payload (ws_mask_copy)
 * whose first byte out[0] is at key_offset within the frame's payload. */
size_t mux__buf_remove(struct mux_buf *b, void *out, size_t n, const uint8_t *key, size_t key_offset);

/* Frees every chunk. */
void mux__buf_clear(struct mux_buf *b);

#endif
