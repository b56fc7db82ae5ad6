/* Fuzz target: a wsmux session (either role, compat or ext) driven by
 * arbitrary received messages interleaved with application calls. The input
 * is a script: each op byte selects an action, followed by its arguments.
 * Checks the session's own invariants: it never sends more DAT than its
 * credit, never emits a malformed frame (nor, through mux_session_next_ws(),
 * a malformed WebSocket frame around one), never has output pending that
 * output_cb did not announce since the adapter last drained it all (the
 * adapter would sleep on it: a stalled transfer), and frees everything. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mux/mux.h"
#include "mux/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXS 64

struct harness {
    struct mux_session *s;
    struct mux_stream *streams[MAXS];
    uint64_t owed[MAXS];
    int n;
    int ext;
    int signalled; /* output_cb came since the last drain left nothing */
};

static int slot_of(struct harness *h, struct mux_stream *st)
{
    for (int i = 0; i < h->n; i++)
        if (h->streams[i] == st)
            return i;
    return -1;
}

static void add_stream(struct harness *h, struct mux_stream *st)
{
    if (h->n < MAXS) {
        h->owed[h->n] = 0;
        h->streams[h->n++] = st;
        mux_stream_set_userdata(st, h);
    } else {
        mux_stream_reset(st, 0);
    }
}

static void forget(struct harness *h, struct mux_stream *st)
{
    int i = slot_of(h, st);
    if (i < 0)
        return;
    h->streams[i] = h->streams[h->n - 1];
    h->owed[i] = h->owed[h->n - 1];
    h->n--;
}

static void incoming_cb(struct mux_session *s, struct mux_stream *st, void *ud)
{
    struct harness *h = ud;
    if (h->n < MAXS && mux_stream_accept(st, h) == 0)
        add_stream(h, st);
    else
        mux_stream_reset(st, MUX_REASON_REFUSED);
}

static void data_cb(struct mux_stream *st, const uint8_t *d, size_t n, void *ud)
{
    struct harness *h = ud;
    int i = slot_of(h, st);
    if (i >= 0)
        h->owed[i] += n;
}

static void closed_cb(struct mux_stream *st, int err, void *ud)
{
    forget(ud, st);
}

static void output_cb(struct mux_session *s, void *ud)
{
    (void)s;
    ((struct harness *)ud)->signalled = 1;
}

static const struct mux_callbacks cbs = {
    .stream_incoming_cb = incoming_cb,
    .stream_data_cb = data_cb,
    .stream_closed_cb = closed_cb,
    .output_cb = output_cb,
};

/* After a drain: with nothing left, the adapter waits for output_cb. */
static void drained(struct harness *h)
{
    if (!mux_session_has_output(h->s))
        h->signalled = 0;
}

static void drain(struct harness *h)
{
    static uint8_t out[9 + 4096];
    size_t n;
    int guard = 0;
    while ((n = mux_session_next(h->s, out, sizeof out)) > 0 && guard++ < 100000) {
        struct mux_frame f;
        if (mux_frame_decode(out, n, h->ext, &f) != 0)
            abort(); /* we never emit a malformed frame */
    }
    drained(h);
}

static int fixed_key(void *ud, uint8_t key[4])
{
    memcpy(key, "\x5a\xa5\x0f\xf0", 4);
    return 0;
}

/* The same through mux_session_next_ws() into cap bytes, masked or not: every
 * WebSocket frame parses, carries one whole wsmux frame, and fills the output
 * exactly. */
static void drain_ws(struct harness *h, size_t cap, int masked)
{
    static uint8_t out[WS_MAX_HEADER + 9 + 65536];
    size_t n;
    int guard = 0;
    if (cap > sizeof out)
        cap = sizeof out;
    while ((n = mux_session_next_ws(h->s, out, cap, masked ? fixed_key : NULL, NULL)) > 0 &&
           guard++ < 100000) {
        if (n > cap)
            abort();
        struct ws_parser p;
        ws_parser_init(&p, masked ? WS_ROLE_SERVER : WS_ROLE_CLIENT, 1 << 20);
        size_t off = 0;
        while (off < n) {
            struct ws_event ev;
            struct mux_frame f;
            ssize_t k = ws_parse(&p, out + off, n - off, &ev);
            if (k <= 0 || ev.type != WS_EV_MESSAGE || mux_frame_decode(ev.data, ev.len, h->ext, &f) != 0)
                abort();
            off += (size_t)k;
        }
        ws_parser_free(&p);
    }
    drained(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct harness h;
    memset(&h, 0, sizeof h);
    struct mux_config cfg;
    mux_config_defaults(&cfg, data[0] & 1);
    h.ext = cfg.ext = (data[0] >> 1) & 1;
    cfg.window = 1024u << ((data[0] >> 2) & 7);
    cfg.max_pending_syn = 8;
    cfg.max_incoming = 8;
    cfg.max_streams = 32;
    h.s = mux_session_new(&cfg, &cbs, &h);
    if (!h.s)
        return 0;
    int64_t now = 0;
    size_t i = 1;
    static const uint8_t payload[4096];
    while (i < size) {
        uint8_t op = data[i++];
        uint8_t arg = i < size ? data[i] : 0;
        int idx = h.n ? arg % h.n : -1;
        switch (op % 11) {
        case 0: { /* a received message: length byte, then bytes */
            size_t len = arg;
            i++;
            if (len > size - i)
                len = size - i;
            int rc = mux_session_feed(h.s, data + i, len, now);
            i += len;
            if (rc != 0)
                mux_session_abort(h.s, rc);
            break;
        }
        case 1: {
            int err;
            struct mux_stream *st = mux_stream_open(h.s, &h, now, &err);
            if (st)
                add_stream(&h, st);
            break;
        }
        case 2:
            if (idx >= 0)
                mux_stream_write(h.streams[idx], payload, (size_t)arg * 16);
            i++;
            break;
        case 3:
            if (idx >= 0) {
                mux_stream_consume(h.streams[idx], (size_t)h.owed[idx]);
                /* consuming may close the stream */
                if (idx < h.n && h.streams[idx])
                    h.owed[idx] = 0;
            }
            i++;
            break;
        case 4:
            if (idx >= 0)
                mux_stream_close(h.streams[idx]);
            i++;
            break;
        case 5:
            if (idx >= 0) {
                struct mux_stream *st = h.streams[idx];
                forget(&h, st);
                mux_stream_reset(st, arg);
            }
            i++;
            break;
        case 6:
            now += (int64_t)arg * 1000;
            mux_session_tick(h.s, now);
            i++;
            break;
        case 7:
            mux_session_goaway(h.s, arg);
            i++;
            break;
        case 8: { /* a well-formed frame for a live stream id */
            uint8_t f[9 + 64];
            uint32_t id = idx >= 0 ? mux_stream_id(h.streams[idx]) : arg;
            size_t n = mux_frame_encode(f, (enum mux_frame_type)(arg % 4), id, (uint32_t)arg * 97);
            if (arg % 4 == 0) {
                memset(f + 5, 'x', 64);
                n = 5 + arg % 64;
            }
            i++;
            int rc = mux_session_feed(h.s, f, n, now);
            if (rc != 0)
                mux_session_abort(h.s, rc);
            break;
        }
        case 9: drain(&h); break;
        default: /* as WebSocket frames, into arg * 64 bytes more than the least */
            drain_ws(&h, WS_MAX_HEADER + MUX_MAX_CONTROL_LEN + (size_t)arg * 64, op & 1);
            i++;
        }
        if (mux_session_has_output(h.s) && !h.signalled)
            abort(); /* output the adapter was never told of */
    }
    drain(&h);
    mux_session_abort(h.s, MUX_E_ABORTED);
    if (h.n != 0)
        abort(); /* abort told every stream */
    mux_session_free(h.s);
    return 0;
}
