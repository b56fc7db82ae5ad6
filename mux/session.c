/* wsmux sessions and streams: state, flow control, scheduling. See mux.h and
 * docs/protocol.md (stream state table). */
#include "mux/buf.h"
#include "mux/mux.h"
#include "mux/ws.h"
#include "util/htab.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/* Stream states; transitions only through stream_set_state(). */
enum mux_state {
    ST_SYN_SENT,    /* we sent (or queued) SYN, no ACK yet */
    ST_SYN_RCVD,    /* peer sent SYN, application has not accepted */
    ST_OPEN,        /* both directions open */
    ST_HALF_LOCAL,  /* we sent FIN; peer may still send */
    ST_HALF_REMOTE, /* peer sent FIN; we may still send */
    ST_DRAINING,    /* both FINs; application still holds unconsumed data */
    ST_LINGER,      /* abandoned by the application: waiting to send RST/FIN or get the peer's FIN */
    ST_CLOSED,      /* gone; freed when the stack unwinds */
};

/* Which transitions are allowed: bit (1 << to) set in allowed[from]. */
static const uint16_t allowed[] = {
    [ST_SYN_SENT] = 1 << ST_OPEN | 1 << ST_LINGER | 1 << ST_CLOSED,
    [ST_SYN_RCVD] = 1 << ST_OPEN | 1 << ST_LINGER | 1 << ST_CLOSED,
    [ST_OPEN] = 1 << ST_HALF_LOCAL | 1 << ST_HALF_REMOTE | 1 << ST_LINGER | 1 << ST_CLOSED,
    [ST_HALF_LOCAL] = 1 << ST_DRAINING | 1 << ST_LINGER | 1 << ST_CLOSED,
    [ST_HALF_REMOTE] = 1 << ST_DRAINING | 1 << ST_LINGER | 1 << ST_CLOSED,
    [ST_DRAINING] = 1 << ST_LINGER | 1 << ST_CLOSED,
    [ST_LINGER] = 1 << ST_CLOSED,
    [ST_CLOSED] = 0,
};

/* Stream flags. */
#define F_SYN_PENDING 0x0001    /* SYN queued, not yet produced */
#define F_ACCEPT_PENDING 0x0002 /* the accepting ACK(accept_ack) queued */
#define F_FIN_PENDING 0x0004    /* application closed: FIN after the queued data */
#define F_FIN_SENT 0x0008       /* FIN produced */
#define F_FIN_RCVD 0x0010       /* peer's FIN received */
#define F_RST_PENDING 0x0020    /* RST queued (ext) */
#define F_FIN_NOW 0x0040        /* FIN queued as a control frame (compat reset) */
#define F_WANT_WRITABLE 0x0080  /* a write was short: call stream_writable_cb when room returns */
#define F_ON_CTL 0x0100         /* on the session's ctl list */
#define F_ON_READY 0x0200       /* on the session's ready list */
#define F_ON_TIMER 0x0400       /* on the syn or linger list */
#define F_DETACHED 0x0800       /* the application let go: no more callbacks */
#define F_DEAD 0x1000           /* destroyed; memory freed when the stack unwinds */
#define F_ACCEPTED 0x2000       /* the first ACK was seen (opener) or sent (acceptor) */

#define CTL_FLAGS (F_SYN_PENDING | F_ACCEPT_PENDING | F_RST_PENDING | F_FIN_NOW)

struct mux_stream {
    struct mux_session *sess;
    struct util_hnode h; /* in the session's table, keyed by id */
    uint32_t id;         /* the key: its 4 bytes as they are in memory */
    uint8_t state;
    uint32_t flags;
    uint32_t accept_ack;   /* value of the accepting ACK */
    uint32_t reset_reason; /* RST reason, sent or received */
    uint64_t send_credit;  /* bytes we may still send */
    uint64_t recv_credit;  /* bytes the peer may still send */
    uint64_t unconsumed;   /* delivered, not yet consumed */
    uint64_t ack_pending;  /* credit granted, ACK not yet produced */
    int64_t deadline;      /* accept timeout or linger end */
    struct mux_buf sendq;
    void *ud;
    TAILQ_ENTRY(mux_stream) all_link, ctl_link, ready_link, timer_link;
};

TAILQ_HEAD(mux_stream_list, mux_stream);

struct mux_session {
    struct mux_config cfg;
    struct mux_callbacks cbs;
    void *ud;
    struct util_htab streams; /* every stream not yet destroyed, by id */
    uint32_t next_id;
    uint32_t pending_syns, incoming;
    uint64_t buffered;
    int64_t now; /* latest now_ms passed in (feed, tick, open) */
    int depth;   /* callback nesting: destroyed streams wait in graveyard */
    unsigned dead : 1, goaway_sent : 1, goaway_pending : 1, remote_goaway : 1, output_signalled : 1;
    uint32_t goaway_reason;
    struct mux_stream_list all, ctl, ready, syns, lingers, graveyard;
    struct mux_stats stats;
};

/* ---- helpers ---------------------------------------------------------- */

static void stream_set_state(struct mux_stream *st, enum mux_state to)
{
    if (st->state == to)
        return;
    if (!(allowed[st->state] & (1u << to)))
        abort(); /* a bug in this file, never input-driven */
    st->state = (uint8_t)to;
}

static struct mux_stream *stream_lookup(const struct mux_session *s, uint32_t id)
{
    const char *key = (const char *)&id;
    struct util_hnode *h =
        util_htab_find(&s->streams, key, sizeof id, util_htab_hash(&s->streams, key, sizeof id));
    return h ? (struct mux_stream *)((char *)h - offsetof(struct mux_stream, h)) : NULL;
}

static int table_insert(struct mux_session *s, struct mux_stream *st)
{
    st->h.klen = sizeof st->id;
    st->h.hash = util_htab_hash(&s->streams, (const char *)&st->id, sizeof st->id);
    return util_htab_insert(&s->streams, &st->h);
}

static void notify_output(struct mux_session *s)
{
    if (s->output_signalled || s->dead)
        return;
    s->output_signalled = 1;
    if (s->cbs.output_cb)
        s->cbs.output_cb(s, s->ud);
}

/* Whether a frame is due. When none is, the adapter goes to sleep on
 * output_cb, so the next frame queued signals again: every path that finds
 * nothing to send goes through here (a path that did not stalled a
 * download, test_output_cb_after_output_vanished). */
static int output_due(struct mux_session *s)
{
    if (mux_session_has_output(s))
        return 1;
    s->output_signalled = 0;
    return 0;
}

static void ctl_enqueue(struct mux_stream *st)
{
    if (!(st->flags & F_ON_CTL)) {
        st->flags |= F_ON_CTL;
        TAILQ_INSERT_TAIL(&st->sess->ctl, st, ctl_link);
    }
    notify_output(st->sess);
}

static int stream_ready(const struct mux_stream *st)
{
    if (st->state != ST_OPEN && st->state != ST_HALF_REMOTE)
        return 0;
    if (st->sendq.len > 0)
        return st->send_credit > 0;
    return (st->flags & (F_FIN_PENDING | F_FIN_SENT)) == F_FIN_PENDING;
}

static void update_ready(struct mux_stream *st)
{
    struct mux_session *s = st->sess;
    int ready = stream_ready(st);
    if (ready && !(st->flags & F_ON_READY)) {
        st->flags |= F_ON_READY;
        TAILQ_INSERT_TAIL(&s->ready, st, ready_link);
        notify_output(s);
    } else if (!ready && (st->flags & F_ON_READY)) {
        st->flags &= ~F_ON_READY;
        TAILQ_REMOVE(&s->ready, st, ready_link);
    }
}

static void timer_remove(struct mux_stream *st)
{
    if (!(st->flags & F_ON_TIMER))
        return;
    st->flags &= ~F_ON_TIMER;
    if (st->state == ST_LINGER)
        TAILQ_REMOVE(&st->sess->lingers, st, timer_link);
    else
        TAILQ_REMOVE(&st->sess->syns, st, timer_link);
}

static void reap(struct mux_session *s)
{
    struct mux_stream *st;
    if (s->depth > 0)
        return;
    while ((st = TAILQ_FIRST(&s->graveyard))) {
        TAILQ_REMOVE(&s->graveyard, st, all_link);
        free(st);
    }
}

/* Unlinks the stream from everything; its memory goes when the stack unwinds. */
static void stream_destroy(struct mux_stream *st)
{
    struct mux_session *s = st->sess;
    if (st->flags & F_DEAD)
        return;
    if (st->state == ST_SYN_SENT && (st->flags & F_ON_TIMER))
        s->pending_syns--;
    if (st->state == ST_SYN_RCVD)
        s->incoming--;
    timer_remove(st);
    if (st->flags & F_ON_CTL)
        TAILQ_REMOVE(&s->ctl, st, ctl_link);
    if (st->flags & F_ON_READY)
        TAILQ_REMOVE(&s->ready, st, ready_link);
    s->buffered -= st->unconsumed;
    mux__buf_clear(&st->sendq);
    util_htab_remove(&s->streams, &st->h);
    TAILQ_REMOVE(&s->all, st, all_link);
    stream_set_state(st, ST_CLOSED);
    st->flags = F_DEAD;
    s->stats.streams_closed++;
    TAILQ_INSERT_TAIL(&s->graveyard, st, all_link);
}

/* Ends the stream, telling the application unless it let go already. */
static void stream_finish(struct mux_stream *st, int err)
{
    struct mux_session *s = st->sess;
    int tell = !(st->flags & (F_DETACHED | F_DEAD)) && s->cbs.stream_closed_cb;
    void *ud = st->ud;
    st->flags |= F_DETACHED;
    if (tell) {
        s->depth++;
        s->cbs.stream_closed_cb(st, err, ud);
        s->depth--;
    }
    stream_destroy(st);
}

static void check_done(struct mux_stream *st)
{
    if (st->flags & F_DEAD)
        return;
    if ((st->flags & (F_FIN_SENT | F_FIN_RCVD)) != (F_FIN_SENT | F_FIN_RCVD))
        return;
    if (st->state == ST_LINGER) {
        if (!(st->flags & (F_RST_PENDING | F_ACCEPT_PENDING)))
            stream_destroy(st);
        return;
    }
    if (st->unconsumed == 0)
        stream_finish(st, 0);
    else
        stream_set_state(st, ST_DRAINING);
}

/* Grants the peer credit up to the configured window (force: even below the
 * batching threshold). */
static void topup(struct mux_stream *st, int force)
{
    uint64_t window = st->sess->cfg.window;
    uint64_t have = st->recv_credit + st->unconsumed;
    if (have >= window || (st->flags & F_FIN_RCVD))
        return;
    uint64_t grant = window - have;
    if (!force && grant < window / 4)
        return;
    st->ack_pending += grant;
    st->recv_credit += grant;
    ctl_enqueue(st);
}

static struct mux_stream *stream_new(struct mux_session *s, uint32_t id, enum mux_state state)
{
    struct mux_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->sess = s;
    st->id = id;
    st->state = (uint8_t)state;
    if (table_insert(s, st) != 0) {
        free(st);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&s->all, st, all_link);
    return st;
}

/* Abandon the stream (the application's reset, a timeout, a refusal). */
static void stream_abandon(struct mux_stream *st, uint32_t reason, int64_t now_ms)
{
    struct mux_session *s = st->sess;
    if (st->flags & F_DEAD)
        return;
    st->flags |= F_DETACHED;
    st->ud = NULL;
    mux__buf_clear(&st->sendq);
    s->buffered -= st->unconsumed;
    st->unconsumed = 0;
    st->ack_pending = 0;
    st->flags &= ~(F_WANT_WRITABLE | F_FIN_PENDING);
    if (st->flags & F_SYN_PENDING) { /* the peer never heard of it */
        stream_destroy(st);
        return;
    }
    if (st->state == ST_LINGER)
        return;
    timer_remove(st);
    if (st->state == ST_SYN_SENT)
        s->pending_syns--;
    if (st->state == ST_SYN_RCVD)
        s->incoming--;
    if (st->flags & F_ON_READY) {
        st->flags &= ~F_ON_READY;
        TAILQ_REMOVE(&s->ready, st, ready_link);
    }
    int was_incoming_unaccepted = st->state == ST_SYN_RCVD;
    st->reset_reason = reason;
    stream_set_state(st, ST_LINGER);
    if (s->cfg.ext) {
        st->flags &= ~F_ACCEPT_PENDING;
        st->flags |= F_RST_PENDING;
        ctl_enqueue(st);
        return;
    }
    if (was_incoming_unaccepted) { /* compat refusal: accept with no credit, then FIN */
        st->accept_ack = 0;
        st->flags |= F_ACCEPT_PENDING;
    }
    if (!(st->flags & F_FIN_SENT))
        st->flags |= F_FIN_NOW;
    st->deadline = now_ms + s->cfg.linger_ms;
    st->flags |= F_ON_TIMER;
    TAILQ_INSERT_TAIL(&s->lingers, st, timer_link);
    ctl_enqueue(st);
}

/* ---- session ---------------------------------------------------------- */

void mux_config_defaults(struct mux_config *cfg, int is_server)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->is_server = is_server;
    cfg->window = MUX_DEFAULT_WINDOW;
    cfg->accept_window = MUX_GO_WINDOW;
    cfg->send_buffer = MUX_DEFAULT_WINDOW;
    cfg->max_frame = MUX_DEFAULT_MAX_FRAME;
    cfg->max_pending_syn = 128;
    cfg->max_incoming = 256;
    cfg->max_streams = 65536;
    cfg->accept_timeout_ms = 30000;
    cfg->linger_ms = 30000;
}

struct mux_session *mux_session_new(const struct mux_config *cfg, const struct mux_callbacks *cbs,
                                    void *session_ud)
{
    if (cfg->window == 0 || cfg->window > (1u << 30) || cfg->max_frame == 0 || cfg->send_buffer == 0)
        return NULL;
    struct mux_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = *cfg;
    s->cbs = *cbs;
    s->ud = session_ud;
    s->next_id = cfg->is_server ? 0 : 1;
    /* up to about one bucket per stream; keyed: the peer picks the ids */
    util_htab_init(&s->streams, offsetof(struct mux_stream, id) - offsetof(struct mux_stream, h),
                   util_random_seed(), (size_t)cfg->max_streams * 2);
    TAILQ_INIT(&s->all);
    TAILQ_INIT(&s->ctl);
    TAILQ_INIT(&s->ready);
    TAILQ_INIT(&s->syns);
    TAILQ_INIT(&s->lingers);
    TAILQ_INIT(&s->graveyard);
    return s;
}

void mux_session_free(struct mux_session *s)
{
    struct mux_stream *st;
    if (!s)
        return;
    s->depth++;
    while ((st = TAILQ_FIRST(&s->all))) {
        st->flags |= F_DETACHED;
        stream_destroy(st);
    }
    s->depth--;
    reap(s);
    util_htab_free(&s->streams);
    free(s);
}

void mux_session_abort(struct mux_session *s, int err)
{
    struct mux_stream *st;
    if (s->dead)
        return;
    s->dead = 1;
    s->goaway_pending = 0;
    s->depth++;
    while ((st = TAILQ_FIRST(&s->all)))
        stream_finish(st, err);
    s->depth--;
    reap(s);
}

static int violation(struct mux_session *s, int err)
{
    s->stats.dropped_frames++;
    return s->cfg.ext ? err : 0;
}

static int handle_syn(struct mux_session *s, uint32_t id, int64_t now_ms)
{
    uint32_t peer_parity = s->cfg.is_server ? 1 : 0;
    if ((id & 1) != peer_parity || stream_lookup(s, id))
        return violation(s, MUX_E_PROTOCOL);
    if (s->streams.n >= s->cfg.max_streams)
        return violation(s, MUX_E_LIMIT);
    struct mux_stream *st = stream_new(s, id, ST_SYN_RCVD);
    if (!st)
        return MUX_E_NOMEM;
    s->incoming++;
    if (s->incoming > s->cfg.max_incoming || s->goaway_sent) {
        stream_abandon(st, MUX_REASON_REFUSED, now_ms);
        return 0;
    }
    if (s->cbs.stream_incoming_cb) {
        s->cbs.stream_incoming_cb(s, st, s->ud);
    } else {
        stream_abandon(st, MUX_REASON_REFUSED, now_ms);
    }
    return 0;
}

static int handle_ack(struct mux_session *s, struct mux_stream *st, uint32_t n)
{
    if (st->state == ST_LINGER)
        return 0;
    if (st->state == ST_SYN_RCVD)
        return violation(s, MUX_E_PROTOCOL);
    if (st->state == ST_SYN_SENT) {
        timer_remove(st);
        s->pending_syns--;
        stream_set_state(st, ST_OPEN);
        st->flags |= F_ACCEPTED;
        /* The acceptor's rule: it granted us n and assumes it may send us n. */
        st->send_credit = n;
        st->recv_credit = n;
        s->stats.streams_accepted++;
        topup(st, 1);
        update_ready(st);
        if (s->cbs.stream_accepted_cb && !(st->flags & F_DETACHED))
            s->cbs.stream_accepted_cb(st, st->ud);
        return 0;
    }
    st->send_credit += n;
    update_ready(st);
    return 0;
}

static int handle_dat(struct mux_session *s, struct mux_stream *st, const uint8_t *p, size_t len)
{
    if (st->state == ST_LINGER) {
        /* Abandoned: discard, but keep the peer flowing until it sends FIN. */
        if (!(st->flags & F_RST_PENDING) && len > 0) {
            st->ack_pending += len;
            ctl_enqueue(st);
        }
        return 0;
    }
    if (st->state != ST_OPEN && st->state != ST_HALF_LOCAL)
        return violation(s, MUX_E_PROTOCOL);
    if (len > st->recv_credit)
        return MUX_E_FLOW;
    if (len == 0)
        return 0;
    st->recv_credit -= len;
    st->unconsumed += len;
    s->buffered += len;
    s->stats.bytes_in += len;
    if (s->cbs.stream_data_cb)
        s->cbs.stream_data_cb(st, p, len, st->ud);
    return 0;
}

static int handle_fin(struct mux_session *s, struct mux_stream *st)
{
    if (st->state == ST_LINGER) {
        st->flags |= F_FIN_RCVD;
        check_done(st);
        return 0;
    }
    if (st->state != ST_OPEN && st->state != ST_HALF_LOCAL)
        return violation(s, MUX_E_PROTOCOL);
    st->flags |= F_FIN_RCVD;
    st->ack_pending = 0; /* the peer sends nothing more: credit is moot */
    stream_set_state(st, st->state == ST_OPEN ? ST_HALF_REMOTE : ST_DRAINING);
    update_ready(st);
    if (s->cbs.stream_eof_cb)
        s->cbs.stream_eof_cb(st, st->ud);
    check_done(st);
    return 0;
}

static int handle_rst(struct mux_session *s, struct mux_stream *st, uint32_t reason)
{
    st->reset_reason = reason;
    if (st->state == ST_LINGER) {
        stream_destroy(st);
        return 0;
    }
    stream_finish(st, MUX_E_RESET);
    return 0;
}

int mux_session_feed(struct mux_session *s, const uint8_t *msg, size_t len, int64_t now_ms)
{
    struct mux_frame f;
    int rc;
    if (s->dead)
        return MUX_E_ABORTED;
    if (now_ms > s->now)
        s->now = now_ms;
    s->stats.frames_in++;
    rc = mux_frame_decode(msg, len, s->cfg.ext, &f);
    if (rc != 0)
        return violation(s, rc);
    s->depth++;
    if (f.type == MUX_SYN) {
        rc = handle_syn(s, f.id, now_ms);
    } else if (f.type == MUX_GOAWAY) {
        if (!s->remote_goaway) {
            s->remote_goaway = 1;
            if (s->cbs.goaway_cb)
                s->cbs.goaway_cb(s, f.value, s->ud);
        }
        rc = 0;
    } else {
        struct mux_stream *st = stream_lookup(s, f.id);
        if (!st) {
            s->stats.late_frames++; /* a stream already closed here: ACKs race with FINs */
            rc = 0;
        } else if (f.type == MUX_DAT) {
            rc = handle_dat(s, st, f.payload, f.len);
        } else if (f.type == MUX_ACK) {
            rc = handle_ack(s, st, f.value);
        } else if (f.type == MUX_FIN) {
            rc = handle_fin(s, st);
        } else {
            rc = handle_rst(s, st, f.value);
        }
    }
    s->depth--;
    reap(s);
    return s->dead ? MUX_E_ABORTED : rc;
}

/* Emits the first pending control frame of st into out. Returns its length. */
static size_t emit_ctl(struct mux_stream *st, uint8_t *out)
{
    size_t n = 0;
    if (st->flags & F_SYN_PENDING) {
        st->flags &= ~F_SYN_PENDING;
        n = mux_frame_encode(out, MUX_SYN, st->id, 0);
    } else if (st->flags & F_ACCEPT_PENDING) {
        st->flags &= ~F_ACCEPT_PENDING;
        n = mux_frame_encode(out, MUX_ACK, st->id, st->accept_ack);
    } else if (st->flags & F_RST_PENDING) {
        st->flags &= ~F_RST_PENDING;
        n = mux_frame_encode(out, MUX_RST, st->id, st->reset_reason);
    } else if (st->ack_pending > 0) {
        uint32_t v = st->ack_pending > UINT32_MAX ? UINT32_MAX : (uint32_t)st->ack_pending;
        st->ack_pending -= v;
        n = mux_frame_encode(out, MUX_ACK, st->id, v);
    } else if (st->flags & F_FIN_NOW) {
        st->flags &= ~F_FIN_NOW;
        st->flags |= F_FIN_SENT;
        n = mux_frame_encode(out, MUX_FIN, st->id, 0);
    }
    return n;
}

/* Emits st's next DAT (or its FIN) into out[cap]; returns its length. key:
 * NULL, or the frame is masked with it as a WebSocket payload (the data in
 * the same pass as its copy out of the queue). */
static size_t emit_data(struct mux_session *s, struct mux_stream *st, uint8_t *out, size_t cap,
                        const uint8_t *key)
{
    size_t n;
    if (st->sendq.len == 0) { /* FIN after the last byte */
        st->flags |= F_FIN_SENT;
        stream_set_state(st, st->state == ST_OPEN ? ST_HALF_LOCAL : ST_DRAINING);
        n = mux_frame_encode(out, MUX_FIN, st->id, 0);
        if (key)
            ws_mask(out, n, key, 0);
        update_ready(st);
        check_done(st);
        return n;
    }
    n = st->sendq.len;
    if (n > st->send_credit)
        n = (size_t)st->send_credit;
    if (n > s->cfg.max_frame)
        n = s->cfg.max_frame;
    if (n > cap - MUX_HEADER_LEN)
        n = cap - MUX_HEADER_LEN;
    mux_frame_encode(out, MUX_DAT, st->id, 0);
    if (key)
        ws_mask(out, MUX_HEADER_LEN, key, 0);
    mux__buf_remove(&st->sendq, out + MUX_HEADER_LEN, n, key, MUX_HEADER_LEN);
    st->send_credit -= n;
    s->stats.bytes_out += n;
    update_ready(st); /* back of the line if still ready */
    if ((st->flags & F_WANT_WRITABLE) && st->sendq.len <= s->cfg.send_buffer / 2) {
        st->flags &= ~F_WANT_WRITABLE;
        if (s->cbs.stream_writable_cb)
            s->cbs.stream_writable_cb(st, st->ud);
    }
    return MUX_HEADER_LEN + n;
}

/* mux_session_next(), with the frame masked by key unless it is NULL. */
static size_t next_frame(struct mux_session *s, uint8_t *out, size_t cap, const uint8_t *key)
{
    struct mux_stream *st;
    size_t n = 0;
    if (s->dead || cap < MUX_MAX_CONTROL_LEN)
        return 0;
    s->depth++;
    if (s->goaway_pending) {
        s->goaway_pending = 0;
        n = mux_frame_encode(out, MUX_GOAWAY, 0, s->goaway_reason);
        goto out;
    }
    while (n == 0 && (st = TAILQ_FIRST(&s->ctl))) {
        n = emit_ctl(st, out);
        if (!(st->flags & CTL_FLAGS) && st->ack_pending == 0) {
            st->flags &= ~F_ON_CTL;
            TAILQ_REMOVE(&s->ctl, st, ctl_link);
            if (st->state == ST_LINGER && !(st->flags & F_ACCEPT_PENDING)) {
                if (s->cfg.ext || (st->flags & F_FIN_RCVD))
                    stream_destroy(st); /* RST sent, or both FINs done */
            }
        }
    }
    if (n == 0 && (st = TAILQ_FIRST(&s->ready))) {
        st->flags &= ~F_ON_READY;
        TAILQ_REMOVE(&s->ready, st, ready_link);
        n = emit_data(s, st, out, cap, key);
        key = NULL; /* masked already */
    }
out:
    if (n > 0 && key)
        ws_mask(out, n, key, 0);
    if (n > 0)
        s->stats.frames_out++;
    (void)output_due(s);
    s->depth--;
    reap(s);
    return n;
}

size_t mux_session_next(struct mux_session *s, uint8_t *out, size_t cap)
{
    return next_frame(s, out, cap, NULL);
}

size_t mux_session_next_ws(struct mux_session *s, uint8_t *out, size_t cap,
                           int (*key)(void *ud, uint8_t key[4]), void *ud)
{
    size_t len = 0;
    while (cap - len >= WS_MAX_HEADER + MUX_MAX_CONTROL_LEN) {
        /* the header for the largest frame that can come: a smaller one is
         * moved back, which only a frame under 126 bytes needs (or one under
         * 64 KiB if max_frame is larger) */
        size_t most = cap - len - WS_MAX_HEADER;
        if (most > s->cfg.max_frame + MUX_HEADER_LEN)
            most = s->cfg.max_frame + MUX_HEADER_LEN;
        if (most < MUX_MAX_CONTROL_LEN)
            most = MUX_MAX_CONTROL_LEN;
        size_t room = ws_header_len(most, key != NULL);
        uint8_t *payload = out + len + room, k[4];
        if (!output_due(s))
            break;
        /* the key first: the payload is masked as it is made */
        if (key && key(ud, k) < 0)
            return (size_t)-1;
        size_t n = next_frame(s, payload, most, key && (k[0] | k[1] | k[2] | k[3]) ? k : NULL);
        if (n == 0)
            break;
        size_t h = ws_encode_header(out + len, 1, WS_OP_BINARY, n, key ? k : NULL);
        if (h < room)
            memmove(out + len + h, payload, n);
        len += h + n;
    }
    return len;
}

int mux_session_has_output(const struct mux_session *s)
{
    return !s->dead && (s->goaway_pending || !TAILQ_EMPTY(&s->ctl) || !TAILQ_EMPTY(&s->ready));
}

int mux_session_has_data(const struct mux_session *s)
{
    return !s->dead && !TAILQ_EMPTY(&s->ready);
}

void mux_session_tick(struct mux_session *s, int64_t now_ms)
{
    struct mux_stream *st;
    if (s->dead)
        return;
    if (now_ms > s->now)
        s->now = now_ms;
    s->depth++;
    while ((st = TAILQ_FIRST(&s->syns)) && st->deadline <= now_ms) {
        int tell = !(st->flags & F_DETACHED) && s->cbs.stream_closed_cb;
        void *ud = st->ud;
        stream_abandon(st, MUX_REASON_TIMEOUT, now_ms);
        if (tell)
            s->cbs.stream_closed_cb(st, MUX_E_TIMEOUT, ud);
    }
    while ((st = TAILQ_FIRST(&s->lingers)) && st->deadline <= now_ms)
        stream_destroy(st);
    s->depth--;
    reap(s);
}

int64_t mux_session_next_deadline(const struct mux_session *s)
{
    int64_t d = -1;
    struct mux_stream *a = TAILQ_FIRST(&s->syns), *b = TAILQ_FIRST(&s->lingers);
    if (a)
        d = a->deadline;
    if (b && (d < 0 || b->deadline < d))
        d = b->deadline;
    return d;
}

int mux_session_goaway(struct mux_session *s, uint32_t reason)
{
    if (!s->cfg.ext)
        return MUX_E_INVAL;
    if (s->dead)
        return MUX_E_CLOSED;
    if (!s->goaway_sent) {
        s->goaway_sent = 1;
        s->goaway_pending = 1;
        s->goaway_reason = reason;
        notify_output(s);
    }
    return 0;
}

uint64_t mux_session_buffered(const struct mux_session *s)
{
    return s->buffered;
}
uint32_t mux_session_stream_count(const struct mux_session *s)
{
    return (uint32_t)s->streams.n;
}
uint32_t mux_session_pending_syns(const struct mux_session *s)
{
    return s->pending_syns;
}
int mux_session_is_ext(const struct mux_session *s)
{
    return s->cfg.ext;
}
int mux_session_remote_goaway(const struct mux_session *s)
{
    return s->remote_goaway;
}
void *mux_session_userdata(const struct mux_session *s)
{
    return s->ud;
}
const struct mux_stats *mux_session_stats(const struct mux_session *s)
{
    return &s->stats;
}

/* ---- streams ---------------------------------------------------------- */

struct mux_stream *mux_stream_open(struct mux_session *s, void *stream_ud, int64_t now_ms, int *err)
{
    int e = 0;
    struct mux_stream *st = NULL;
    if (s->dead)
        e = MUX_E_CLOSED;
    else if (s->goaway_sent || s->remote_goaway)
        e = MUX_E_GOAWAY;
    else if (s->pending_syns >= s->cfg.max_pending_syn || s->streams.n >= s->cfg.max_streams)
        e = MUX_E_LIMIT;
    if (e)
        goto out;
    if (now_ms > s->now)
        s->now = now_ms;
    uint32_t id = s->next_id;
    while (stream_lookup(s, id))
        id += 2;
    s->next_id = id + 2;
    st = stream_new(s, id, ST_SYN_SENT);
    if (!st) {
        e = MUX_E_NOMEM;
        goto out;
    }
    st->ud = stream_ud;
    st->flags |= F_SYN_PENDING | F_ON_TIMER;
    st->deadline = now_ms + s->cfg.accept_timeout_ms;
    TAILQ_INSERT_TAIL(&s->syns, st, timer_link);
    s->pending_syns++;
    s->stats.streams_opened++;
    ctl_enqueue(st);
out:
    if (err)
        *err = e;
    return st;
}

int mux_stream_accept(struct mux_stream *st, void *stream_ud)
{
    struct mux_session *s = st->sess;
    if (st->state != ST_SYN_RCVD || (st->flags & (F_DETACHED | F_DEAD)))
        return MUX_E_INVAL;
    uint32_t b = s->cfg.ext ? s->cfg.window : s->cfg.accept_window;
    st->ud = stream_ud;
    s->incoming--;
    stream_set_state(st, ST_OPEN);
    st->flags |= F_ACCEPT_PENDING | F_ACCEPTED;
    st->accept_ack = b;
    st->send_credit = b;
    st->recv_credit = b;
    s->stats.streams_accepted++;
    ctl_enqueue(st);
    topup(st, 1);
    update_ready(st);
    return 0;
}

ssize_t mux_stream_write(struct mux_stream *st, const void *data, size_t len)
{
    struct mux_session *s = st->sess;
    if (st->flags & (F_DETACHED | F_DEAD | F_FIN_PENDING | F_FIN_SENT) || s->dead)
        return MUX_E_CLOSED;
    if (st->state == ST_SYN_RCVD)
        return MUX_E_INVAL;
    size_t space = mux_stream_write_space(st);
    size_t n = len < space ? len : space;
    if (n < len)
        st->flags |= F_WANT_WRITABLE;
    if (n == 0)
        return 0;
    if (mux__buf_add(&st->sendq, data, n) != 0)
        return MUX_E_NOMEM;
    update_ready(st);
    return (ssize_t)n;
}

size_t mux_stream_write_space(const struct mux_stream *st)
{
    uint32_t lim = st->sess->cfg.send_buffer;
    return st->sendq.len >= lim ? 0 : lim - st->sendq.len;
}

size_t mux_stream_queued(const struct mux_stream *st)
{
    return st->sendq.len;
}

void mux_stream_consume(struct mux_stream *st, size_t n)
{
    struct mux_session *s = st->sess;
    if (st->flags & (F_DETACHED | F_DEAD))
        return;
    if (n > st->unconsumed)
        n = (size_t)st->unconsumed;
    st->unconsumed -= n;
    s->buffered -= n;
    s->depth++;
    if (st->state == ST_DRAINING)
        check_done(st);
    else
        topup(st, 0);
    s->depth--;
    reap(s);
}

int mux_stream_close(struct mux_stream *st)
{
    if (st->flags & (F_DETACHED | F_DEAD) || st->sess->dead)
        return MUX_E_CLOSED;
    if (st->state == ST_SYN_RCVD)
        return MUX_E_INVAL;
    if (st->flags & (F_FIN_PENDING | F_FIN_SENT))
        return 0;
    st->flags |= F_FIN_PENDING;
    update_ready(st);
    return 0;
}

void mux_stream_reset(struct mux_stream *st, uint32_t reason)
{
    struct mux_session *s = st->sess;
    if (st->flags & (F_DETACHED | F_DEAD))
        return;
    s->depth++;
    stream_abandon(st, reason, s->now); /* linger counts from the last time we were told */
    s->depth--;
    reap(s);
}

uint32_t mux_stream_id(const struct mux_stream *st)
{
    return st->id;
}
void mux_stream_set_userdata(struct mux_stream *st, void *ud)
{
    st->ud = ud;
}
void *mux_stream_userdata(const struct mux_stream *st)
{
    return st->ud;
}
struct mux_session *mux_stream_session(const struct mux_stream *st)
{
    return st->sess;
}
uint32_t mux_stream_reset_reason(const struct mux_stream *st)
{
    return st->reset_reason;
}
uint64_t mux_stream_send_credit(const struct mux_stream *st)
{
    return st->send_credit;
}
uint64_t mux_stream_recv_credit(const struct mux_stream *st)
{
    return st->recv_credit;
}
int mux_stream_eof_received(const struct mux_stream *st)
{
    return (st->flags & F_FIN_RCVD) != 0;
}
