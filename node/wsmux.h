/* wsmux: one wsmux session carried by one WebSocket on a bufferevent (the
 * project's mux/ codec on libevent). It carries a worker's tunnel (server
 * role) and a link to a peer node (ext mode, either role) alike; the owner
 * (workers.c, links.c) decides what the session means.
 *
 * Streams: each stream's user data starts with a `const struct
 * wsmux_stream_ops *`, through which the session reports the stream's events
 * (viewer.c and relay.c own such streams). Who wants a stream queues a
 * struct wsmux_waiter: it gets one as soon as the session has a free slot,
 * or an error (busy past its deadline, session gone).
 *
 * Lifetime: wsmux_close() ends the session at once for everybody (waiters
 * and streams hear of it, the owner's closed_cb runs once); the struct is
 * freed later from the loop, and the owner's freed_cb runs then. Never from
 * inside a callback. */
#ifndef WHT_NODE_WSMUX_H
#define WHT_NODE_WSMUX_H

#include <stdint.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>

#include "mux/mux.h"

struct node;
struct wsmux;
struct wsmux_waiter;

/* How the wait for a stream ended (wsmux_waiter.ready_cb). Other modules
 * that hold waiters (returning.c, relay.c) report through the same codes. */
enum wsmux_wait {
    WSMUX_WAIT_STREAM = 0,      /* st is the new stream */
    WSMUX_WAIT_BUSY,            /* no slot before the deadline (503) */
    WSMUX_WAIT_GONE,            /* the session closed or could not open a stream (502) */
    WSMUX_WAIT_MOVED,           /* the worker registered on another node: route again */
    WSMUX_WAIT_RETURNED,        /* the worker registered on this node again: attach to its new session */
    WSMUX_WAIT_LOST,            /* the worker left this node and did not come back in time (502) */
    WSMUX_WAIT_NOT_FOUND,       /* no node holds the worker (404) */
    WSMUX_WAIT_UNREACHABLE,     /* the node holding the worker cannot be reached (502) */
    WSMUX_WAIT_LINK_GONE,       /* the link to that node is closing (502) */
    WSMUX_WAIT_NO_REGISTRY,     /* not cached, and the cluster registry is unreachable (502) */
    WSMUX_WAIT_REGISTRY_SILENT, /* the cluster registry did not answer in time (502) */
    WSMUX_WAIT_REGISTRY_FULL,   /* the cluster registry cannot take the request (502) */
    WSMUX_WAIT_NO_MEMORY,       /* the node holds WHT_MAX_BUFFERED unconsumed bytes (503) */
};

/* A party waiting for a stream (embedded in its owner: a viewer). */
struct wsmux_waiter {
    void (*ready_cb)(struct wsmux_waiter *wt, struct mux_stream *st, enum wsmux_wait result);
    void *stream_ud;       /* the new stream's user data (starts with its ops) */
    int64_t deadline_ms;   /* set by wsmux_attach() (or returning.c) */
    int64_t since_ms;      /* set by the owner: when its request started waiting (returning.h's limit) */
    struct wsmux *on;      /* the session it waits on, if any */
    struct wsmux *session; /* set with WSMUX_WAIT_STREAM: the session the stream is on */
    void *parked;          /* returning.c: the worker it is held for, if any */
    TAILQ_ENTRY(wsmux_waiter) link;
};
TAILQ_HEAD(wsmux_waiter_list, wsmux_waiter);

/* A stream's events, for the party whose user data the stream carries.
 * accepted (may be NULL): a stream we opened was accepted; one that is not
 * within WHT_ACCEPT_TIMEOUT is reset and closed with MUX_E_TIMEOUT. */
struct wsmux_stream_ops {
    void (*data)(struct mux_stream *st, const uint8_t *data, size_t len, void *ud);
    void (*eof)(struct mux_stream *st, void *ud);
    void (*writable)(struct mux_stream *st, void *ud);
    void (*closed)(struct mux_stream *st, int err, void *ud);
    void (*accepted)(struct mux_stream *st, void *ud);
};

enum wsmux_role { WSMUX_WORKER, WSMUX_PEER };

/* Why a session ended (metrics and logs; the text passed along says more). */
enum wsmux_end {
    WSMUX_END_CLOSED = 0,   /* the other side closed (WebSocket close) */
    WSMUX_END_LOST,         /* the connection closed or failed */
    WSMUX_END_REPLACED,     /* a newer registration of the worker (here or on another node) */
    WSMUX_END_PING_TIMEOUT, /* no pong within the ping interval */
    WSMUX_END_PROTOCOL,     /* a WebSocket or wsmux protocol error */
    WSMUX_END_DRAINED,      /* the node drains: reconnect elsewhere */
    WSMUX_END_MOVED,        /* the worker registered on another node while this one drains */
    WSMUX_END_STOPPING,     /* the node stops */
    WSMUX_END_COUNT
};

/* What the owner hears. */
struct wsmux_events {
    /* The session closed (once; why for the log). Waiters still queued after
     * this returns get WSMUX_WAIT_GONE; the owner may take them first
     * (wsmux_take_waiters). */
    void (*closed_cb)(struct wsmux *w, enum wsmux_end end, void *ud);
    /* The peer opened a stream (peer links only; a worker's are refused):
     * accept it (mux_stream_accept with user data starting with its ops) or
     * reset it. */
    void (*incoming_cb)(struct wsmux *w, struct mux_stream *st, void *ud);
    /* The struct is about to be freed: the owner frees what it keeps for w. */
    void (*freed_cb)(struct wsmux *w, void *ud);
};

struct wsmux_options {
    enum wsmux_role role;
    int is_client;    /* we dialed: client role, masked frames; wsmux_begin() once the 101 came */
    int ext;          /* the whtunnel extensions were agreed */
    const char *name; /* for logs ("worker=<name>", "peer=<name>"); must outlive the session */
    uint64_t serial;  /* for logs */
};

/* A session on bev (which it owns from now on, even on failure). Not running
 * until wsmux_begin(). Returns NULL when out of memory. */
struct wsmux *wsmux_new(struct node *n, struct bufferevent *bev, const struct wsmux_options *o,
                        const struct wsmux_events *ev, void *ud);
/* Runs the session on its bufferevent (reads what is already buffered). */
void wsmux_begin(struct wsmux *w);
/* The bufferevent, for a dialer that runs it until wsmux_begin(). */
struct bufferevent *wsmux_bev(struct wsmux *w);
/* Closes the session (no-op when closing already); why: for the log. */
void wsmux_close(struct wsmux *w, enum wsmux_end end, const char *why);
int wsmux_closing(const struct wsmux *w);
/* The session runs (a dialed link: its handshake is done). */
int wsmux_started(const struct wsmux *w);
enum wsmux_role wsmux_role(const struct wsmux *w);
/* Streams open on the session (opened by us). */
uint32_t wsmux_streams(const struct wsmux *w);

/* Queues wt for a stream: ready_cb runs from here (a slot is free) or later.
 * Returns 0, -1 when the session takes no new streams (closing, GOAWAY
 * received), or WSMUX_E_MEMORY when the node holds more than WHT_MAX_BUFFERED
 * unconsumed bytes or the session is not being read for holding too many
 * (a new stream would only wait): ready_cb is not called. */
#define WSMUX_E_MEMORY (-2) /* wsmux_attach(): the node holds WHT_MAX_BUFFERED unconsumed bytes */
int wsmux_attach(struct wsmux *w, struct wsmux_waiter *wt);
/* 1 when requests wait in w's queue for a stream slot (a keep-alive viewer
 * then gives its stream up after a response instead of keeping it for its
 * next request), else 0. */
int wsmux_has_waiters(const struct wsmux *w);
/* wt stops waiting (no callback). */
void wsmux_detach(struct wsmux_waiter *wt);
/* Moves every queued waiter to list (their `on` cleared). */
void wsmux_take_waiters(struct wsmux *w, struct wsmux_waiter_list *list);
/* Ends the wait of every queued waiter with result. */
void wsmux_release_waiters(struct wsmux *w, enum wsmux_wait result);
/* One of the streams opened through wsmux_attach() is done (closed or reset):
 * its slot goes to the next waiter. */
void wsmux_stream_done(struct wsmux *w);
/* Schedules a flush of the session's output (coalesced): output queued or credit returned. */
void wsmux_kick(struct wsmux *w);
/* Frees what the node's sessions share (node stop, once the sessions are
 * freed: runs the frees still due). */
void wsmux_stop(struct node *n);

/* The worker is draining: no new streams; new waiters wait until
 * deadline_ms (for the worker's next home). An ext worker gets GOAWAY.
 * close_when_idle: the session closes once its last stream is done, with why. */
void wsmux_drain(struct wsmux *w, int64_t deadline_ms);
void wsmux_close_when_idle(struct wsmux *w, enum wsmux_end end, const char *why);
int wsmux_ext(const struct wsmux *w);

#endif
