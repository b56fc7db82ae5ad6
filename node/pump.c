/* pump: evbuffer <-> mux stream with backpressure (see pump.h). */
#include "node/pump.h"

int pump_peek(struct evbuffer *in, struct mux_stream *st, uint8_t **p, size_t *n)
{
    struct evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 || vec.iov_len == 0)
        return 0;
    size_t space = mux_stream_write_space(st);
    if (space == 0) {
        mux_stream_write(st, vec.iov_base, 1); /* takes nothing; arms stream_writable */
        return -1;
    }
    *p = vec.iov_base;
    *n = vec.iov_len < space ? vec.iov_len : space;
    return 1;
}

void pump_commit(struct evbuffer *in, struct mux_stream *st, const uint8_t *p, size_t n)
{
    if (n > 0)
        mux_stream_write(st, p, n);
    evbuffer_drain(in, n);
}

int pump_credit(struct mux_stream *st, uint64_t *owed, size_t out_len, size_t low)
{
    if (!st || !*owed || out_len > low)
        return 0;
    uint64_t n = *owed;
    *owed = 0;
    mux_stream_consume(st, (size_t)n);
    return 1;
}
