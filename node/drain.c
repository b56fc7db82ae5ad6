/* drain: workers move, the requests for them follow (see drain.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/registry.h"
#include "node/drain.h"
#include "node/log.h"
#include "node/node.h"
#include "node/returning.h"
#include "node/workers.h"
#include "util/util.h"

#define DRAIN_CHECK_MS 100

struct drain {
    int64_t deadline_ms;
    struct event *ev; /* progress checks */
};

int drain_moving(struct node *n, const char *id, size_t len)
{
    return n->drain ? returning_kept(n, id, len) : -1;
}

int drain_park(struct node *n, const char *id, size_t len, struct wsmux_waiter *wt)
{
    if (drain_moving(n, id, len) != 0)
        return -1;
    return returning_park(n, id, len, wt, n->drain->deadline_ms);
}

void drain_worker_left(struct node *n, const char *id, struct wsmux_waiter_list *waiting)
{
    if (!n->drain)
        return;
    returning_left(n, id, waiting, n->drain->deadline_ms, 1);
    LOG_I("worker=%s left while the node drains: requests for it wait for its next node", id);
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
        returning_free(n); /* what still waits for a worker: 502 */
        drain_end(n);
        return;
    }
    size_t waiting_moves = returning_sweep(n, now);
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
    if (d->ev)
        event_free(d->ev);
    free(d);
    n->drain = NULL;
}
