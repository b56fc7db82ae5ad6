/* returning: requests held for a worker that left, until it registers again
 * (see returning.h). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "node/log.h"
#include "node/node.h"
#include "node/returning.h"
#include "util/htab.h"
#include "util/util.h"

/* A worker id with requests parked under it, or kept by the drain. */
struct entry {
    struct util_hnode h; /* key: id */
    struct returning *r;
    struct wsmux_waiter_list parked; /* earliest deadline first */
    size_t count;                    /* ... how many */
    struct event *ev;                /* the first deadline, or the release to a new session here */
    int64_t until;                   /* kept and moved: new requests follow it until then */
    unsigned kept : 1;               /* the drain keeps it (returning_left's keep) */
    unsigned moved : 1;              /* kept: it registered on another node */
    unsigned back : 1;               /* it registered here again: ev releases the parked requests */
    unsigned busy : 1;               /* releasing: the entry is freed by whoever set this, not by unpark */
    LIST_ENTRY(entry) all;
    char id[];
};

struct returning {
    struct node *node;
    struct util_htab tab;
    LIST_HEAD(, entry) all;
    size_t parked;
};

static void entry_cb(evutil_socket_t fd, short what, void *ud);

static struct returning *table(struct node *n)
{
    if (n->returning || n->stopping)
        return n->returning;
    struct returning *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->node = n;
    util_htab_init(&r->tab, offsetof(struct entry, id), util_random_seed(), (size_t)1 << 20);
    LIST_INIT(&r->all);
    n->returning = r;
    return r;
}

static struct entry *find(struct node *n, const char *id, size_t len)
{
    struct returning *r = n->returning;
    if (!r || r->tab.n == 0 || len > UTIL_MAX_ID_LEN)
        return NULL;
    return (struct entry *)util_htab_find(&r->tab, id, len, util_htab_hash(&r->tab, id, len));
}

static struct entry *entry_new(struct node *n, const char *id, size_t len)
{
    struct returning *r = table(n);
    struct entry *e = r && len <= UTIL_MAX_ID_LEN ? calloc(1, sizeof *e + len + 1) : NULL;
    if (!e)
        return NULL;
    e->r = r;
    memcpy(e->id, id, len);
    TAILQ_INIT(&e->parked);
    e->ev = evtimer_new(n->base, entry_cb, e);
    e->h.klen = (uint16_t)len;
    e->h.hash = util_htab_hash(&r->tab, id, len);
    if (!e->ev || util_htab_insert(&r->tab, &e->h) != 0) {
        if (e->ev)
            event_free(e->ev);
        free(e);
        return NULL;
    }
    LIST_INSERT_HEAD(&r->all, e, all);
    return e;
}

static void entry_free(struct entry *e)
{
    util_htab_remove(&e->r->tab, &e->h);
    LIST_REMOVE(e, all);
    event_free(e->ev);
    free(e);
}

/* The timer at the first deadline (or at once, for a release here). */
static void arm(struct entry *e)
{
    if (e->back) {
        event_active(e->ev, EV_TIMEOUT, 0);
        return;
    }
    struct wsmux_waiter *first = TAILQ_FIRST(&e->parked);
    if (!first) {
        event_del(e->ev);
        return;
    }
    int64_t now = util_now_ms(), ms = first->deadline_ms > now ? first->deadline_ms - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(e->ev, &tv);
}

/* After a change: an entry with nothing parked goes, unless kept. */
static void settle(struct entry *e)
{
    if (e->busy)
        return;
    if (TAILQ_EMPTY(&e->parked) && !e->kept && !e->back)
        entry_free(e);
    else
        arm(e);
}

/* wt goes in by its deadline (mostly at the end: they come in order). */
static void insert(struct entry *e, struct wsmux_waiter *wt)
{
    struct wsmux_waiter *at = TAILQ_LAST(&e->parked, wsmux_waiter_list);
    while (at && at->deadline_ms > wt->deadline_ms)
        at = TAILQ_PREV(at, wsmux_waiter_list, link);
    if (at)
        TAILQ_INSERT_AFTER(&e->parked, at, wt, link);
    else
        TAILQ_INSERT_HEAD(&e->parked, wt, link);
    wt->on = NULL;
    wt->parked = e;
    e->count++;
    e->r->parked++;
}

static void unpark(struct entry *e, struct wsmux_waiter *wt)
{
    TAILQ_REMOVE(&e->parked, wt, link);
    wt->parked = NULL;
    e->count--;
    e->r->parked--;
}

static enum node_held held_outcome(enum wsmux_wait result)
{
    return result == WSMUX_WAIT_RETURNED ? NODE_HELD_RETURNED
           : result == WSMUX_WAIT_MOVED  ? NODE_HELD_MOVED
                                         : NODE_HELD_LOST;
}

/* Ends the wait of the waiters parked now (at most as many: one that a
 * callback parks again waits for the next news) with result. */
static void release(struct entry *e, enum wsmux_wait result)
{
    struct node *n = e->r->node;
    size_t k = e->count;
    struct wsmux_waiter *wt;
    e->busy = 1;
    while (k-- > 0 && (wt = TAILQ_FIRST(&e->parked))) {
        unpark(e, wt);
        n->stats.held[held_outcome(result)]++;
        wt->ready_cb(wt, NULL, result);
    }
    e->busy = 0;
}

static void entry_cb(evutil_socket_t fd, short what, void *ud)
{
    struct entry *e = ud;
    struct node *n = e->r->node;
    if (e->back) {
        e->back = 0;
        LOG_I("worker=%s registered again: the requests waiting for it go to its new session", e->id);
        release(e, WSMUX_WAIT_RETURNED);
    }
    int64_t now = util_now_ms();
    struct wsmux_waiter *wt;
    e->busy = 1;
    while ((wt = TAILQ_FIRST(&e->parked)) && wt->deadline_ms <= now) {
        unpark(e, wt);
        n->stats.held[NODE_HELD_LOST]++;
        wt->ready_cb(wt, NULL, WSMUX_WAIT_LOST);
    }
    e->busy = 0;
    settle(e);
}

int returning_park(struct node *n, const char *id, size_t len, struct wsmux_waiter *wt, int64_t deadline_ms)
{
    if (n->stopping)
        return -1;
    struct entry *e = find(n, id, len);
    if (e && e->kept && e->moved)
        return -1;
    if (!e && !(e = entry_new(n, id, len)))
        return -1;
    wt->deadline_ms = deadline_ms;
    insert(e, wt);
    if (!e->busy)
        arm(e);
    return 0;
}

void returning_unpark(struct wsmux_waiter *wt)
{
    struct entry *e = wt->parked;
    if (!e)
        return;
    unpark(e, wt);
    settle(e);
}

void returning_left(struct node *n, const char *id, struct wsmux_waiter_list *waiting, int64_t deadline_ms,
                    int keep)
{
    size_t len = strlen(id);
    struct entry *e = find(n, id, len);
    if (e)
        e->back = 0; /* a session of it ended again: the requests wait for the next one */
    if (n->stopping || (!e && !keep && TAILQ_EMPTY(waiting)))
        return;
    if (!e && !(e = entry_new(n, id, len)))
        return; /* its waiting requests get their 502 from the session's close */
    if (keep) {
        e->kept = 1;
        e->moved = 0; /* this session is the newest news of it */
    }
    int64_t accept = n->cfg->accept_timeout_ms;
    size_t k = 0;
    struct wsmux_waiter *wt;
    while ((wt = TAILQ_FIRST(waiting))) {
        TAILQ_REMOVE(waiting, wt, link);
        wt->deadline_ms = deadline_ms ? deadline_ms : wt->since_ms + accept;
        insert(e, wt);
        k++;
    }
    if (k)
        LOG_I("worker=%s left: %zu requests wait for its next session", id, k);
    settle(e);
}

void returning_back(struct node *n, const char *id, size_t len)
{
    struct entry *e = find(n, id, len);
    if (!e || TAILQ_EMPTY(&e->parked))
        return;
    e->back = 1;
    arm(e);
}

void returning_moved(struct node *n, const char *id, size_t len)
{
    struct entry *e = find(n, id, len);
    if (!e || (e->kept && e->moved))
        return;
    e->back = 0;
    if (e->kept) {
        e->moved = 1;
        e->until = util_now_ms() + RETURNING_FORWARD_MS;
    }
    if (e->kept || !TAILQ_EMPTY(&e->parked))
        LOG_I("worker=%s registered on another node: the requests waiting for it go there", e->id);
    release(e, WSMUX_WAIT_MOVED);
    settle(e);
}

int returning_kept(struct node *n, const char *id, size_t len)
{
    struct entry *e = find(n, id, len);
    return e && e->kept ? (int)e->moved : -1;
}

size_t returning_sweep(struct node *n, int64_t now)
{
    struct returning *r = n->returning;
    size_t waiting = 0;
    struct entry *e, *next;
    for (e = r ? LIST_FIRST(&r->all) : NULL; e; e = next) {
        next = LIST_NEXT(e, all);
        if (e->kept && e->moved && now >= e->until) {
            e->kept = 0;
            settle(e);
        } else if (e->kept && !e->moved) {
            waiting++;
        }
    }
    return waiting;
}

size_t returning_parked(const struct node *n)
{
    return n->returning ? n->returning->parked : 0;
}

void returning_free(struct node *n)
{
    struct returning *r = n->returning;
    if (!r)
        return;
    struct entry *e;
    while ((e = LIST_FIRST(&r->all))) {
        while (!TAILQ_EMPTY(&e->parked))
            release(e, WSMUX_WAIT_LOST);
        entry_free(e);
    }
    util_htab_free(&r->tab);
    free(r);
    n->returning = NULL;
}
