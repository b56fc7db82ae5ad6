/* pump: moving bytes between an evbuffer and a mux stream with
 * backpressure, the same way for a viewer (viewer.c) and for a relayed
 * stream's pair (relay.c).
 *
 * Up (evbuffer -> stream): take only what the stream has room for; when it
 * has none, arm its writable callback and stop reading.
 * Down (stream -> evbuffer): the bytes a stream delivered are "owed" and
 * consumed (credit returned to the sender) only once the evbuffer they went
 * to has drained to a low mark, so a stream never holds more than its window
 * plus that mark, whatever the sizes and speeds. */
#ifndef WHT_NODE_PUMP_H
#define WHT_NODE_PUMP_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "mux/mux.h"

/* The next contiguous bytes of in that st has room for: *p, and *n (> 0,
 * at most the room). Returns 1; 0 when in is empty; -1 when st has no room,
 * in which case st's writable callback is armed (it runs once room frees). */
int pump_peek(struct evbuffer *in, struct mux_stream *st, uint8_t **p, size_t *n);

/* Writes n bytes from pump_peek()'s *p into st (they fit) and drains them from in. */
void pump_commit(struct evbuffer *in, struct mux_stream *st, const uint8_t *p, size_t n);

/* Consumes the *owed bytes of st (zeroing *owed) once out_len <= low.
 * Returns 1 when credit went back (the session has output to flush), else 0.
 * mux_stream_consume may close the stream: its closed callback runs first. */
int pump_credit(struct mux_stream *st, uint64_t *owed, size_t out_len, size_t low);

#endif
