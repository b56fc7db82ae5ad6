/* drain: workers move, the requests for them follow (see drain.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/registry.h"
#include "node/drain.h"
#include "node/log.h"
#include "node/node.h"
#include "node/workers.h"
#include "util/util.h"

/* How long a drained worker's new home is remembered, for the requests that
 * peers still send here before they learn of the move. */
#define MOVED_FORWARD_MS 5000
#define DRAIN_CHECK_MS 100

/* A worker whose session ended on this node while it drains. */
struct moving {
    struct wsmux_waiter_list parked;
    int moved; /* registered elsewhere: a forwarding address until `until` */
    int64_t until;
    LIST_ENTRY(moving) entry;
    char id[UTIL_MAX_ID_LEN + 1];
};

struct drain {
    int64_t deadline_ms;
    struct event *ev; /* progress checks */
    LIST_HEAD(, moving) moving;
};

static struct moving *moving_find(struct drain *d, const char *id, size_t len)
{
    struct moving *m;
    if (!d)
        return NULL;
    LIST_FOREACH(m, &d->moving, entry)
    {
        if (strlen(m->id) == len && memcmp(m->id, id, len) == 0)
            return m;
    }
    return NULL;
}

/* Ends the wait of every parked request with result. */
static void release(struct moving *m, enum wsmux_wait result)
{
    struct wsmux_waiter *wt;
    while ((wt = TAILQ_FIRST(&m->parked))) {
        drain_unpark(wt);
        wt->ready_cb(wt, NULL, result);
    }
}

static void moving_free(struct moving *m)
{
    LIST_REMOVE(m, entry);
    release(m, WSMUX_WAIT_LOST);
    free(m);
}

int drain_moving(struct node *n, const char *id, size_t len)
{
    struct moving *m = moving_find(n->drain, id, len);
    return m ? m->moved : -1;
}

int drain_park(struct node *n, const char *id, size_t len, struct wsmux_waiter *wt)
{
    struct moving *m = moving_find(n->drain, id, len);
    if (!m || m->moved)
        return -1;
    wt->on = NULL;
    wt->deadline_ms = n->drain->deadline_ms;
    TAILQ_INSERT_TAIL(&m->parked, wt, link);
    wt->parked = m;
    return 0;
}

void drain_unpark(struct wsmux_waiter *wt)
{
    struct moving *m = wt->parked;
    if (m) {
        TAILQ_REMOVE(&m->parked, wt, link);
        wt->parked = NULL;
    }
}

void drain_worker_left(struct node *n, const char *id, struct wsmux_waiter_list *waiting)
{
    struct drain *d = n->drain;
    struct moving *m = moving_find(d, id, strlen(id));
    if (!d)
        return;
    if (!m) {
        m = calloc(1, sizeof *m);
        if (!m)
            return; /* its waiting requests get their 502 from the session's close */
        snprintf(m->id, sizeof m->id, "%s", id);
        TAILQ_INIT(&m->parked);
        LIST_INSERT_HEAD(&d->moving, m, entry);
    }
    m->moved = 0; /* this session is the newest news of it */
    struct wsmux_waiter *wt;
    while ((wt = TAILQ_FIRST(waiting))) {
        TAILQ_REMOVE(waiting, wt, link);
        TAILQ_INSERT_TAIL(&m->parked, wt, link);
        wt->parked = m;
    }
    LOG_I("worker=%s left while the node drains: requests for it wait for its next node", id);
}

void drain_worker_moved(struct node *n, const char *id, size_t len)
{
    struct moving *m = moving_find(n->drain, id, len);
    if (m && !m->moved) {
        LOG_I("worker=%s registered on another node: the requests waiting for it go there", m->id);
        m->moved = 1;
        m->until = util_now_ms() + MOVED_FORWARD_MS;
        release(m, WSMUX_WAIT_MOVED);
    }
}

/* ---- start, progress, end ------------------------------------------------- */

static void left_cb(struct cluster_registry *reg, int result, void *ud)
{
    struct node *n = ud;
    if (result == 0)
        LOG_I("cluster: left (the other nodes dropped this node's routes)");
    else
        LOG_W("cluster: could not leave cleanly (%s): the member key expires by itself",
              cluster_strerror(result));
    event_base_loopexit(n->base, NULL);
}

void drain_end(struct node *n)
{
    if (n->drain && n->drain->ev)
        event_del(n->drain->ev);
    if (n->leaving)
        return;
    n->leaving = 1;
    if (cluster_registry_leave(n->cluster, left_cb, n) != 0)
        event_base_loopexit(n->base, NULL);
}

static void drain_cb(evutil_socket_t fd, short what, void *ud)
{
    struct node *n = ud;
    struct drain *d = n->drain;
    int64_t now = util_now_ms();
    if (now >= d->deadline_ms) {
        LOG_W("drain: not idle after %lld ms (%u worker sessions, %u connections): stopping",
              (long long)n->cfg->drain_timeout_ms, (unsigned)n->stats.workers, n->nconns);
        while (!LIST_EMPTY(&d->moving))
            moving_free(LIST_FIRST(&d->moving));
        drain_end(n);
        return;
    }
    struct moving *m, *mnext;
    int waiting_moves = 0;
    for (m = LIST_FIRST(&d->moving); m; m = mnext) {
        mnext = LIST_NEXT(m, entry);
        if (m->moved && now >= m->until)
            moving_free(m);
        else if (!m->moved)
            waiting_moves++;
    }
    if (n->stats.workers == 0 && waiting_moves == 0 && n->nconns == 0 && n->relays_open == 0) {
        LOG_I("drain: done, every worker moved and every request finished");
        drain_end(n);
    }
}

int drain_start(struct node *n)
{
    if (!n->cluster || n->draining)
        return -1;
    struct drain *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    LIST_INIT(&d->moving);
    n->drain = d;
    n->draining = 1;
    d->deadline_ms = util_now_ms() + n->cfg->drain_timeout_ms;
    LOG_I("drain: asking %u workers to reconnect elsewhere; exiting once idle, at most in %lld ms",
          workers_count(n), (long long)n->cfg->drain_timeout_ms);
    cluster_registry_set_info(n->cluster, workers_count(n), 1);
    workers_drain(n, d->deadline_ms);
    d->ev = event_new(n->base, -1, EV_PERSIST, drain_cb, n);
    struct timeval tv = {0, DRAIN_CHECK_MS * 1000};
    if (!d->ev || event_add(d->ev, &tv) != 0) {
        drain_end(n);
        return 0;
    }
    drain_cb(-1, 0, n);
    return 0;
}

void drain_stop(struct node *n)
{
    struct drain *d = n->drain;
    if (!d)
        return;
    while (!LIST_EMPTY(&d->moving))
        moving_free(LIST_FIRST(&d->moving));
    if (d->ev)
        event_free(d->ev);
    free(d);
    n->drain = NULL;
}
