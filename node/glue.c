/* glue: the node and the cluster registry (see glue.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <openssl/rand.h>

#include "cluster/registry.h"
#include "node/drain.h"
#include "node/glue.h"
#include "node/links.h"
#include "node/log.h"
#include "node/node.h"
#include "node/returning.h"
#include "node/workers.h"
#include "util/util.h"

#define STATS_LOG_MS 60000

/* ---- what the registry says -------------------------------------------------- */

static void on_takeover(struct cluster_registry *reg, const char *id, size_t id_len, void *ud)
{
    struct node *n = ud;
    workers_moved(n, id, id_len);
    returning_moved(n, id, id_len); /* what waited for it here goes there */
}

static void on_elsewhere(struct cluster_registry *reg, const char *id, size_t id_len, void *ud)
{
    returning_moved(ud, id, id_len);
}

static void on_peer_up(struct cluster_registry *reg, const char *node_id, const char *addr, void *ud)
{
    LOG_I("cluster: node %s is up at %s", node_id, addr);
}

static void on_peer_down(struct cluster_registry *reg, const char *node_id, const char *addr, void *ud)
{
    LOG_I("cluster: node %s (%s) left", node_id, addr);
    links_close_to(ud, node_id, "the peer left the cluster");
}

static void on_redis_state(struct cluster_registry *reg, int up, int err, void *ud)
{
    struct node *n = ud;
    if (!n->registry_answered) { /* the first attempt ended: the viewer listener may take connections */
        n->registry_answered = 1;
        if (n->accept_resume_ev)
            event_active(n->accept_resume_ev, EV_TIMEOUT, 0);
    }
    if (up)
        LOG_I("cluster: Redis is up");
    else
        LOG_W("cluster: Redis is unreachable (%s): serving local workers and cached routes",
              cluster_strerror(err));
}

static void on_log(struct cluster_registry *reg, enum cluster_log_level level, const char *msg, void *ud)
{
    switch (level) {
    case CLUSTER_LOG_ERROR: LOG_E("cluster: %s", msg); break;
    case CLUSTER_LOG_WARN: LOG_W("cluster: %s", msg); break;
    case CLUSTER_LOG_INFO: LOG_I("cluster: %s", msg); break;
    default: LOG_D("cluster: %s", msg); break;
    }
}

/* ---- what the node tells it ---------------------------------------------------- */

void glue_worker_registered(struct node *n, const char *id)
{
    returning_back(n, id, strlen(id)); /* what waited for it here goes to the new session */
    if (!n->cluster)
        return;
    cluster_registry_set_info(n->cluster, workers_count(n), n->draining);
    int rc = cluster_registry_register(n->cluster, id, strlen(id));
    if (rc < 0)
        LOG_W("worker=%s not recorded in the cluster registry: %s (served by this node only)", id,
              cluster_strerror(rc));
}

void glue_worker_closed(struct node *n, const char *id, int replaced, struct wsmux_waiter_list *waiting)
{
    if (n->stopping)
        return;
    if (n->cluster && n->draining && !replaced) {
        /* still ours in the registry until it re-registers elsewhere */
        cluster_registry_set_info(n->cluster, workers_count(n), n->draining);
        drain_worker_left(n, id, waiting);
        return;
    }
    /* the requests that did not reach it wait for its next session, here or elsewhere */
    returning_left(n, id, waiting, 0, 0);
    if (!n->cluster)
        return;
    cluster_registry_set_info(n->cluster, workers_count(n), n->draining);
    if (!replaced)
        cluster_registry_unregister(n->cluster, id, strlen(id));
}

/* ---- start and stop -------------------------------------------------------------- */

static void stats_cb(evutil_socket_t fd, short what, void *ud)
{
    struct node *n = ud;
    struct cluster_registry_stats st;
    cluster_registry_stats(n->cluster, &st);
    LOG_I("cluster: redis %s, %zu workers held, %zu peers up, route cache %zu routes %zu bytes "
          "(limits %zu, %zu), hits %llu misses %llu, relayed out %llu in %llu",
          st.redis_up ? "up" : "DOWN", st.held, st.peers_up, st.cache_routes, st.cache_bytes,
          st.cache_max_routes, st.cache_max_bytes, (unsigned long long)st.cache_hits,
          (unsigned long long)st.cache_misses, (unsigned long long)n->stats.relayed_out,
          (unsigned long long)n->stats.relayed_in);
}

/* The node id: WHT_NODE_ID, else the host name ("localhost" if unknown)
 * made valid, and a random suffix. */
static void node_id(struct node *n, const char *hostname)
{
    const struct config *cfg = n->cfg;
    if (cfg->node_id[0]) {
        snprintf(n->node_id, sizeof n->node_id, "%s", cfg->node_id);
        return;
    }
    const char *host = hostname[0] ? hostname : "localhost";
    uint8_t r[3];
    char clean[48];
    size_t k = 0;
    for (const char *p = host; *p && k < sizeof clean - 1; p++)
        clean[k++] = cluster_valid_node(p, 1) ? *p : '-';
    clean[k] = 0;
    RAND_bytes(r, sizeof r);
    snprintf(n->node_id, sizeof n->node_id, "%s-%02x%02x%02x", clean, r[0], r[1], r[2]);
}

/* The peer address to listen on: WHT_PEER_ADDR, else PORT + 1 on the listen address. */
static void peer_listen_addr(const struct config *cfg, char *out, size_t cap)
{
    if (cfg->peer_addr[0]) {
        snprintf(out, cap, "%s", cfg->peer_addr);
        return;
    }
    const char *la = cfg->listen_addr[0] ? cfg->listen_addr : "0.0.0.0";
    util_hostport_format(out, cap, la, cfg->port ? (int)cfg->port + 1 : 0);
}

/* The address peers dial: WHT_PEER_ADVERTISE, else the peer address with the
 * host name for a wildcard host, and the port actually bound. */
static void advertise(struct node *n, const char *listen, const char *hostname, int bport)
{
    if (n->cfg->peer_advertise[0]) {
        snprintf(n->advertise, sizeof n->advertise, "%s", n->cfg->peer_advertise);
        return;
    }
    struct util_hostport hp = {0};
    char host[256] = "";
    if (util_hostport_parse(listen, strlen(listen), UTIL_HP_PORT_ZERO, &hp) == 0 &&
        hp.host_len < sizeof host) {
        memcpy(host, hp.host, hp.host_len);
        host[hp.host_len] = 0;
    }
    const char *h = host;
    if (!h[0] || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
        h = hostname[0] ? hostname : "127.0.0.1";
    util_hostport_format(n->advertise, sizeof n->advertise, h, bport);
}

static int registry_start(struct node *n)
{
    const struct config *cfg = n->cfg;
    n->dns = evdns_base_new(n->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!n->dns)
        n->dns = evdns_base_new(n->base, 0); /* no resolv.conf: addresses still work */
    /* as the system's resolver: no 0x20 case randomisation, which resolvers
     * that answer in lower case (podman's aardvark-dns) defeat, so that every
     * answer was dropped (peers and Redis are on private networks) */
    if (n->dns)
        evdns_base_set_option(n->dns, "randomize-case:", "0");
    struct cluster_options opts = {
        .redis_url = cfg->redis_url,
        .sentinels = cfg->redis_sentinels,
        .master_name = cfg->redis_master,
        .prefix = cfg->redis_prefix,
        .node_id = n->node_id,
        .advertise = n->advertise,
        .dns = n->dns,
    };
    static const struct cluster_callbacks cbs = {
        .takeover_cb = on_takeover,
        .elsewhere_cb = on_elsewhere,
        .peer_up_cb = on_peer_up,
        .peer_down_cb = on_peer_down,
        .redis_state_cb = on_redis_state,
        .log_cb = on_log,
    };
    struct cluster_callbacks c = cbs;
    c.log_level = log_current_level >= LOG_DEBUG ? CLUSTER_LOG_DEBUG : CLUSTER_LOG_INFO;
    int rc = cluster_registry_new(n->base, &opts, &c, n, &n->cluster);
    if (rc != 0) {
        fprintf(stderr,
                "whtunnel: cannot start the cluster registry: %s (REDIS_URL, WHT_REDIS_SENTINELS, "
                "WHT_REDIS_MASTER, WHT_NODE_ID, WHT_PEER_ADVERTISE, WHT_REDIS_PREFIX)\n",
                cluster_strerror(rc));
        return -1;
    }
    return 0;
}

int glue_start(struct node *n, links_incoming_cb incoming)
{
    const struct config *cfg = n->cfg;
    if (!config_cluster_mode(cfg))
        return 0;
    char listen[320], hostname[256] = "";
    if (gethostname(hostname, sizeof hostname - 1) != 0)
        hostname[0] = 0;
    hostname[sizeof hostname - 1] = 0;
    node_id(n, hostname);
    peer_listen_addr(cfg, listen, sizeof listen);
    n->peer_keys.secret_a = cfg->cluster_secret;
    n->peer_keys.secret_a_len = strlen(cfg->cluster_secret);
    n->peer_keys.audience = NODE_PEER_AUDIENCE;
    n->peer_keys.leeway_s = 60;
    int bport;
    if (links_start(n, listen, incoming, &bport) != 0)
        return -1;
    advertise(n, listen, hostname, bport);
    if (registry_start(n) != 0)
        return -1;
    cluster_registry_set_info(n->cluster, 0, 0);
    n->stats_ev = event_new(n->base, -1, EV_PERSIST, stats_cb, n);
    struct timeval tv = {STATS_LOG_MS / 1000, 0};
    if (n->stats_ev)
        event_add(n->stats_ev, &tv);
    LOG_I("cluster: node %s, peers dial %s (listening on %s), registry prefix '%s'", n->node_id, n->advertise,
          listen, cfg->redis_prefix);
    if (cfg->redis_sentinels[0])
        LOG_I("cluster: Redis master '%s', as the sentinels %s name it", cfg->redis_master,
              cfg->redis_sentinels);
    return 0;
}

void glue_stop(struct node *n)
{
    links_stop(n);
    if (n->stats_ev)
        event_free(n->stats_ev);
    n->stats_ev = NULL;
    cluster_registry_free(n->cluster);
    n->cluster = NULL;
    if (n->dns)
        evdns_base_free(n->dns, 1);
    n->dns = NULL;
}
