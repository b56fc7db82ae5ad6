/* node: start and stop, the viewer listener, TLS, signals; the wiring of
 * the modules (see node.h). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/listener.h>
#include <openssl/rand.h>

#include "node/admin.h"
#include "node/drain.h"
#include "node/glue.h"
#include "node/log.h"
#include "node/net.h"
#include "node/node.h"
#include "node/relay.h"
#include "node/reload.h"
#include "node/returning.h"
#include "node/tls.h"
#include "node/viewer.h"
#include "node/workers.h"
#include "util/cidr.h"
#include "util/util.h"

/* ---- listener --------------------------------------------------------- */

#define ACCEPT_PAUSE_MS 250   /* no accept for this long after running out of descriptors */
#define REGISTRY_WAIT_MS 2000 /* a cluster node's listener waits this long at most for Redis */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *ud)
{
    struct node *n = ud;
    char ip[64];
    net_format_ip(sa, ip, sizeof ip);
    /* viewers and workers have a limit each: this one counts viewer
     * connections (a registration is one until its 101) */
    if (n->nconns >= (uint32_t)n->cfg->max_connections) {
        n->stats.conn_refused++;
        LOG_W("connection from %s refused: %u viewer connections (WHT_MAX_CONNECTIONS)", ip, n->nconns);
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    viewer_accept(n, fd, sa, ip);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *ud)
{
    struct node *n = ud;
    if (n->listener)
        evconnlistener_enable(n->listener);
}

/* Out of descriptors (or kernel memory): the pending connection stays in the
 * backlog, so retrying at once would spin. Stop accepting for a moment, and
 * say so once per episode, not once per attempt. */
static void accept_error_cb(struct evconnlistener *l, void *ud)
{
    struct node *n = ud;
    int err = EVUTIL_SOCKET_ERROR();
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        LOG_W("accept failed: %s", evutil_socket_error_to_string(err));
        return;
    }
    n->stats.accept_pauses++;
    int64_t now = util_now_ms();
    if (now - n->accept_pause_logged_ms >= 60000) {
        n->accept_pause_logged_ms = now;
        LOG_E(
            "accept failed: %s (%u viewer connections, %u workers): not accepting for %d ms at a time until "
            "descriptors are free (said once a minute)",
            evutil_socket_error_to_string(err), n->nconns, workers_count(n), ACCEPT_PAUSE_MS);
    }
    evconnlistener_disable(l);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    if (n->accept_resume_ev)
        event_add(n->accept_resume_ev, &tv);
}

static void sighup_cb(evutil_socket_t sig, short what, void *ud)
{
    reload_run(ud);
}

static void signal_cb(evutil_socket_t sig, short what, void *ud)
{
    struct node *n = ud;
    /* in a cluster the first signal drains (docs/cluster.md), a second
     * leaves the cluster and stops; any other, or any in a standalone node,
     * stops at once */
    if (!n->draining && drain_start(n) == 0) {
        LOG_I("signal %d: draining (a second signal ends the drain, a third stops at once)", (int)sig);
        viewer_drain_all(n);
        return;
    }
    if (n->draining && !n->leaving) {
        LOG_I("signal %d: ending the drain: leaving the cluster, then stopping", (int)sig);
        drain_end(n);
        return;
    }
    LOG_I("signal %d: stopping", (int)sig);
    event_base_loopexit(n->base, NULL);
}

/* ---- wiring ------------------------------------------------------------------ */

static void log_flush_cb(evutil_socket_t fd, short what, void *ud)
{
    log_summarize();
    log_flush();
}

static void *serve_relayed(struct node *n, struct bufferevent *bev, int tls, const char *ip, struct relay *r)
{
    return viewer_start(n, bev, tls, ip, r);
}

static void abort_relayed(void *viewer)
{
    viewer_abort(viewer);
}

static const struct relay_hooks relay_hooks = {.serve = serve_relayed, .abort = abort_relayed};

static const struct workers_events workers_events = {
    .registered_cb = glue_worker_registered,
    .closed_cb = glue_worker_closed,
};

static int listen_viewers(struct node *n)
{
    const struct config *cfg = n->cfg;
    struct sockaddr_storage ss;
    int sslen;
    char addr[300];
    const char *la = cfg->listen_addr && cfg->listen_addr[0] ? cfg->listen_addr : "0.0.0.0";
    util_hostport_format(addr, sizeof addr, la, (int)cfg->port);
    if (net_parse_sockaddr(addr, UTIL_HP_PORT_ZERO, &ss, &sslen) != 0) {
        fprintf(stderr, "whtunnel: bad listen address '%s' (WHT_LISTEN_ADDR / --listen)\n", la);
        return -1;
    }
    /* a cluster node takes connections (the kernel queues them meanwhile) once its first
     * Redis connection attempt has ended, so that no request is told the registry is
     * unreachable in the milliseconds before it was even tried; at most REGISTRY_WAIT_MS */
    int wait_registry = config_cluster_mode(cfg);
    n->listener = evconnlistener_new_bind(n->base, accept_cb, n,
                                          LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
                                              (wait_registry ? LEV_OPT_DISABLED : 0),
                                          1024, (struct sockaddr *)&ss, sslen);
    if (!n->listener) {
        fprintf(stderr, "whtunnel: cannot listen on %s: %s\n", addr, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(n->listener, accept_error_cb);
    n->accept_resume_ev = evtimer_new(n->base, accept_resume_cb, n);
    if (!n->accept_resume_ev)
        return -1;
    if (wait_registry) { /* glue.c makes it fire at once when Redis answers or fails */
        struct timeval tv = {REGISTRY_WAIT_MS / 1000, (REGISTRY_WAIT_MS % 1000) * 1000};
        event_add(n->accept_resume_ev, &tv);
    }
    if (n->proxy_from.count)
        LOG_I("PROXY protocol header required from %s (WHT_PROXY_PROTOCOL)", cfg->proxy_protocol);
    if (n->trusted.count)
        LOG_I("X-Forwarded-For kept from %s (WHT_TRUSTED_PROXIES)", cfg->trusted_proxies);
    LOG_I("listening on %s (%s, %s mode%s%s)", addr, n->ssl ? "https" : "http",
          cfg->domain && cfg->domain[0] ? "domain and path" : "path",
          cfg->domain && cfg->domain[0] ? ": *." : "", cfg->domain && cfg->domain[0] ? cfg->domain : "");
    return 0;
}

int node_start(struct node *n, struct event_base *base, struct config *cfg)
{
    memset(n, 0, sizeof *n);
    n->base = base;
    n->start_wall_ms = util_wall_ms();
    RAND_bytes((unsigned char *)&n->request_id_prefix, sizeof n->request_id_prefix);
    n->cfg = cfg;
    n->cfg_files = cfg;
    n->stats.last_reload_wall_ms = n->start_wall_ms;
    n->keys.secret_a = cfg->secret_a;
    n->keys.secret_a_len = cfg->secret_a ? strlen(cfg->secret_a) : 0;
    n->keys.secret_b = cfg->secret_b;
    n->keys.secret_b_len = cfg->secret_b ? strlen(cfg->secret_b) : 0;
    n->keys.audience = cfg->audience && cfg->audience[0] ? cfg->audience : NULL;
    /* checked by config_validate() */
    if (util_cidr_parse_list(cfg->proxy_protocol, strlen(cfg->proxy_protocol), &n->proxy_from, NULL, NULL) !=
            0 ||
        util_cidr_parse_list(cfg->trusted_proxies, strlen(cfg->trusted_proxies), &n->trusted, NULL, NULL) !=
            0) {
        fprintf(stderr, "whtunnel: bad WHT_PROXY_PROTOCOL or WHT_TRUSTED_PROXIES\n");
        return -1;
    }
    if (cfg->tls_key && cfg->tls_key[0]) {
        char err[512];
        n->ssl = tls_context_new(cfg, err, sizeof err);
        if (!n->ssl) {
            fprintf(stderr, "whtunnel: %s\n", err);
            return -1;
        }
    }
    if (viewer_init(n) != 0 || workers_init(n, &workers_events) != 0 || relay_init(n, &relay_hooks) != 0) {
        fprintf(stderr, "whtunnel: out of memory\n");
        return -1;
    }
    if (listen_viewers(n) != 0 || glue_start(n, relay_incoming) != 0 || admin_start(n) != 0)
        return -1;
    n->log_ev = event_new(base, -1, EV_PERSIST, log_flush_cb, n);
    struct timeval tv = {0, LOG_FLUSH_MS * 1000};
    if (n->log_ev)
        event_add(n->log_ev, &tv);
    n->sigint_ev = evsignal_new(base, SIGINT, signal_cb, n);
    n->sigterm_ev = evsignal_new(base, SIGTERM, signal_cb, n);
    n->sighup_ev = evsignal_new(base, SIGHUP, sighup_cb, n);
    event_add(n->sigint_ev, NULL);
    event_add(n->sigterm_ev, NULL);
    event_add(n->sighup_ev, NULL);
    return 0;
}

void node_stop(struct node *n)
{
    n->stopping = 1;
    admin_stop(n);
    viewer_free_all(n);
    workers_free(n);
    relay_free(n);
    drain_stop(n);
    returning_free(n);
    glue_stop(n);
    if (n->listener)
        evconnlistener_free(n->listener);
    n->listener = NULL;
    if (n->accept_resume_ev)
        event_free(n->accept_resume_ev);
    if (n->sigint_ev)
        event_free(n->sigint_ev);
    if (n->sigterm_ev)
        event_free(n->sigterm_ev);
    if (n->sighup_ev)
        event_free(n->sighup_ev);
    if (n->log_ev)
        event_free(n->log_ev);
    /* let deferred frees run */
    event_base_loop(n->base, EVLOOP_NONBLOCK);
    wsmux_stop(n);
    if (n->ssl)
        SSL_CTX_free(n->ssl);
}
