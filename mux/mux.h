/* wsmux: the stream multiplexer spoken inside the registration WebSocket.
 *
 * Sans-I/O: the caller feeds each received binary WebSocket message to
 * mux_session_feed() and sends each frame produced by mux_session_next() as one
 * binary WebSocket message. Events come back through struct mux_callbacks.
 * No sockets, no event loop, no logging, no clock: time is passed in as now_ms.
 *
 * The wire format and the flow-control rules are in docs/protocol.md (and
 * docs/protocol.md, "The contract"). Without extensions (cfg.ext == 0) a
 * session speaks the original Go protocol exactly; with them (agreed at the
 * WebSocket handshake) it may also send RST and GOAWAY.
 *
 * Ownership: the session owns its streams. A stream pointer handed to the
 * application stays valid until stream_closed_cb returns for it, or until the
 * application calls mux_stream_reset() on it, whichever comes first.
 * Callbacks may call any mux_stream_* function and mux_session_abort(), but
 * never mux_session_free().
 */
#ifndef WHT_MUX_MUX_H
#define WHT_MUX_MUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Frame types (byte 0 of every frame). */
enum mux_frame_type {
    MUX_DAT = 0,    /* payload: stream data */
    MUX_SYN = 1,    /* no payload: open stream id */
    MUX_ACK = 2,    /* payload: uint32le n, n more bytes of credit */
    MUX_FIN = 3,    /* no payload: sender sends no more data on this stream */
    MUX_CLS = 4,    /* defined by the 2017 Go library, never sent; never sent by us */
    MUX_RST = 5,    /* extension: payload uint32le reason; the stream is gone */
    MUX_GOAWAY = 6, /* extension, stream id 0: payload uint32le reason; open nothing new */
};

#define MUX_HEADER_LEN 5
#define MUX_MAX_CONTROL_LEN 9           /* header + uint32 */
#define MUX_DEFAULT_WINDOW (256 * 1024) /* receive window we grant per stream */
#define MUX_GO_WINDOW 4096              /* what a Go server opener can buffer per stream */
#define MUX_DEFAULT_MAX_FRAME (32 * 1024)

/* Reason codes carried by RST and GOAWAY (extension). */
enum mux_reason {
    MUX_REASON_NONE = 0,
    MUX_REASON_REFUSED = 1,  /* stream refused (too many pending, going away) */
    MUX_REASON_CANCEL = 2,   /* the application abandoned the stream */
    MUX_REASON_TIMEOUT = 3,  /* accept timeout */
    MUX_REASON_PROTOCOL = 4, /* peer broke the protocol on this stream */
    MUX_REASON_BACKEND = 5,  /* the far side could not reach its backend */
    MUX_REASON_DRAIN = 6,    /* GOAWAY: node draining, reconnect elsewhere */
};

/* WebSocket close code (private-use range, RFC 6455 7.4.2) a node sends to a
 * worker session that a newer registration of its id replaced, with the
 * reason "replaced by another registration". Any client may read it; to the
 * Go clients it is an ordinary close. */
#define MUX_WS_CLOSE_REPLACED 4001

/* Errors: 0 is success, these are negative. */
enum mux_err {
    MUX_OK = 0,
    MUX_E_SHORT = -1,    /* frame shorter than its header */
    MUX_E_TYPE = -2,     /* unknown frame type */
    MUX_E_LENGTH = -3,   /* wrong payload length for the type */
    MUX_E_FLOW = -4,     /* peer sent more than its credit */
    MUX_E_PROTOCOL = -5, /* frame not allowed in the stream's state */
    MUX_E_NOMEM = -6,
    MUX_E_LIMIT = -7,    /* too many streams or pending SYNs */
    MUX_E_CLOSED = -8,   /* stream's write side or session is closed */
    MUX_E_TIMEOUT = -9,  /* no ACK within the accept timeout */
    MUX_E_RESET = -10,   /* peer reset the stream (RST) */
    MUX_E_GOAWAY = -11,  /* session going away: no new streams */
    MUX_E_ABORTED = -12, /* the session was aborted */
    MUX_E_INVAL = -13,
};

/* What the frame decoder saw. payload points into the decoded message. */
struct mux_frame {
    uint8_t type;
    uint32_t id;
    const uint8_t *payload;
    size_t len;
    uint32_t value; /* ACK credit, RST/GOAWAY reason */
};

/* Decodes one frame from one WebSocket message. ext allows RST/GOAWAY.
 * Returns 0, or MUX_E_SHORT / MUX_E_TYPE / MUX_E_LENGTH. Never reads past len. */
int mux_frame_decode(const uint8_t *msg, size_t len, int ext, struct mux_frame *f);

/* Writes a frame header for type/id to out; for ACK/RST/GOAWAY also the uint32
 * value. Returns the bytes written (5 or 9). */
size_t mux_frame_encode(uint8_t out[MUX_MAX_CONTROL_LEN], enum mux_frame_type type, uint32_t id,
                        uint32_t value);

const char *mux_strerror(int err);

struct mux_session;
struct mux_stream;

struct mux_config {
    int is_server;             /* server opens even ids from 0, client odd from 1 */
    int ext;                   /* project extensions agreed at the handshake */
    uint32_t window;           /* receive window granted per stream (default 256 KiB) */
    uint32_t accept_window;    /* compat mode: the ACK answering a SYN (default 4096) */
    uint32_t send_buffer;      /* per-stream outbound queue limit (default 256 KiB) */
    uint32_t max_frame;        /* largest DAT payload sent (default 32 KiB) */
    uint32_t max_pending_syn;  /* our SYNs waiting for ACK (default 128, Go aborts > 200) */
    uint32_t max_incoming;     /* peer SYNs the application has not accepted (default 256) */
    uint32_t max_streams;      /* live streams (default 65536) */
    int64_t accept_timeout_ms; /* opener gives up after this (default 30000) */
    int64_t linger_ms;         /* compat reset: wait this long for the peer's FIN (default 30000) */
};

struct mux_callbacks {
    /* The peer opened a stream. Call mux_stream_accept() now or later, or
     * mux_stream_reset() to refuse it. */
    void (*stream_incoming_cb)(struct mux_session *s, struct mux_stream *st, void *session_ud);
    /* Our SYN was accepted; data may now flow (writes before this are queued). */
    void (*stream_accepted_cb)(struct mux_stream *st, void *stream_ud);
    /* Data arrived. The bytes are borrowed for the call. The application must
     * report them with mux_stream_consume() as it gets rid of them: that is
     * what grants the peer more credit. */
    void (*stream_data_cb)(struct mux_stream *st, const uint8_t *data, size_t len, void *stream_ud);
    /* The peer sent FIN: no more data will arrive. */
    void (*stream_eof_cb)(struct mux_stream *st, void *stream_ud);
    /* The outbound queue, which was full, has room again. */
    void (*stream_writable_cb)(struct mux_stream *st, void *stream_ud);
    /* The stream is gone: err 0 after an orderly close both ways, or a
     * negative mux_err. The pointer is invalid once this returns. */
    void (*stream_closed_cb)(struct mux_stream *st, int err, void *stream_ud);
    /* The peer sent GOAWAY (extension). */
    void (*goaway_cb)(struct mux_session *s, uint32_t reason, void *session_ud);
    /* Output became pending after mux_session_next() had left none: schedule a flush. */
    void (*output_cb)(struct mux_session *s, void *session_ud);
};

struct mux_stats {
    uint64_t frames_in, frames_out;
    uint64_t dropped_frames;      /* malformed, or not allowed in the stream's state */
    uint64_t late_frames;         /* for streams already gone (an ACK crossing our FIN) */
    uint64_t bytes_in, bytes_out; /* DAT payload */
    uint64_t streams_opened, streams_accepted, streams_closed;
};

/* Fills cfg with the defaults documented above. */
void mux_config_defaults(struct mux_config *cfg, int is_server);

/* Creates a session. cfg and cbs are copied. Returns NULL on allocation
 * failure or an invalid config. */
struct mux_session *mux_session_new(const struct mux_config *cfg, const struct mux_callbacks *cbs,
                                    void *session_ud);

/* Frees the session and every stream without calling any callback. Call
 * mux_session_abort() first if the application needs stream_closed_cb. Not
 * from inside a callback. */
void mux_session_free(struct mux_session *s);

/* Ends every stream with stream_closed_cb(err) and marks the session dead:
 * after this, feed/next do nothing and opens fail. Safe inside callbacks. */
void mux_session_abort(struct mux_session *s, int err);

/* Feeds one received binary WebSocket message. Returns 0, or a negative
 * mux_err when the session must be closed (protocol violation in ext mode,
 * flow-control violation, allocation failure). In compat mode malformed frames
 * are dropped and counted, as the Go peers do. */
int mux_session_feed(struct mux_session *s, const uint8_t *msg, size_t len, int64_t now_ms);

/* Produces the next frame to send into out (control frames first, then data
 * from ready streams in turn, each DAT at most cfg.max_frame and cap - 5
 * bytes). Returns its length, or 0 when nothing is pending. cap must be at
 * least MUX_MAX_CONTROL_LEN. */
size_t mux_session_next(struct mux_session *s, uint8_t *out, size_t cap);

/* Writes the session's next frames into out[cap] as binary WebSocket
 * frames, one wsmux frame each, as many as fit: unmasked when key is NULL,
 * else masked with a key that key(ud) writes for each frame (an all-zero
 * key leaves the payload as it is). Each payload is made in its place, right
 * after its header. Returns their length: 0 when nothing is pending, or
 * (size_t)-1 when key() failed (-1 from it). */
size_t mux_session_next_ws(struct mux_session *s, uint8_t *out, size_t cap,
                           int (*key)(void *ud, uint8_t key[4]), void *ud);

/* Whether mux_session_next() would produce a frame. */
int mux_session_has_output(const struct mux_session *s);

/* Whether a stream has data (or its FIN) to send: more than control frames. */
int mux_session_has_data(const struct mux_session *s);

/* Runs timers (accept timeouts, lingering resets) due at now_ms. */
void mux_session_tick(struct mux_session *s, int64_t now_ms);

/* The earliest time mux_session_tick() has work, or -1 for none. */
int64_t mux_session_next_deadline(const struct mux_session *s);

/* Sends GOAWAY (ext only; MUX_E_INVAL otherwise) and refuses new opens. */
int mux_session_goaway(struct mux_session *s, uint32_t reason);

/* Received bytes delivered but not yet consumed, summed over all streams.
 * The adapter stops reading the socket while this is above its cap. */
uint64_t mux_session_buffered(const struct mux_session *s);
uint32_t mux_session_stream_count(const struct mux_session *s);
uint32_t mux_session_pending_syns(const struct mux_session *s);
int mux_session_is_ext(const struct mux_session *s);
int mux_session_remote_goaway(const struct mux_session *s);
void *mux_session_userdata(const struct mux_session *s);
const struct mux_stats *mux_session_stats(const struct mux_session *s);

/* Opens a stream (queues SYN). Returns the stream, or NULL with *err set to
 * MUX_E_LIMIT (too many pending SYNs or streams), MUX_E_GOAWAY, MUX_E_CLOSED
 * or MUX_E_NOMEM. */
struct mux_stream *mux_stream_open(struct mux_session *s, void *stream_ud, int64_t now_ms, int *err);

/* Accepts an incoming stream (queues its ACK). */
int mux_stream_accept(struct mux_stream *st, void *stream_ud);

/* Queues up to len bytes; returns how many were taken (0 when the queue is
 * full: stream_writable_cb follows), or MUX_E_CLOSED after mux_stream_close(). */
ssize_t mux_stream_write(struct mux_stream *st, const void *data, size_t len);

/* Room left in the outbound queue. */
size_t mux_stream_write_space(const struct mux_stream *st);

/* Bytes queued but not yet sent. */
size_t mux_stream_queued(const struct mux_stream *st);

/* Reports n delivered bytes as consumed: credit goes back to the peer. */
void mux_stream_consume(struct mux_stream *st, size_t n);

/* Half-close: FIN goes out after the queued data. */
int mux_stream_close(struct mux_stream *st);

/* Abandons the stream now. With ext an RST(reason) goes out; without, a FIN,
 * and later data from the peer is discarded (and acknowledged) until its FIN.
 * No stream_closed_cb follows; the pointer is invalid after this call. */
void mux_stream_reset(struct mux_stream *st, uint32_t reason);

uint32_t mux_stream_id(const struct mux_stream *st);
void mux_stream_set_userdata(struct mux_stream *st, void *ud);
void *mux_stream_userdata(const struct mux_stream *st);
struct mux_session *mux_stream_session(const struct mux_stream *st);
/* The reason of the RST that closed the stream (valid in stream_closed_cb). */
uint32_t mux_stream_reset_reason(const struct mux_stream *st);
/* Bytes we may still send (credit) and bytes the peer may still send us. */
uint64_t mux_stream_send_credit(const struct mux_stream *st);
uint64_t mux_stream_recv_credit(const struct mux_stream *st);
/* Whether the peer has sent FIN / we have sent FIN. */
int mux_stream_eof_received(const struct mux_stream *st);

#endif
