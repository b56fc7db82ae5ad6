/* endpoints: the node's own answers on the viewer port (see endpoints.h). */
#include <stdio.h>

#include "cluster/registry.h"
#include "node/endpoints.h"
#include "node/links.h"
#include "node/node.h"
#include "node/respond.h"
#include "node/workers.h"

static void cluster_status(struct node *n, char *buf, size_t cap)
{
    if (!n->cluster) {
        snprintf(buf, cap, "{\"cluster\":false}\n");
        return;
    }
    struct cluster_registry_stats st;
    cluster_registry_stats(n->cluster, &st);
    snprintf(buf, cap,
             "{\"cluster\":true,\"node\":\"%s\",\"redis_up\":%s,\"workers\":%u,\"held\":%zu,"
             "\"peers_up\":%zu,\"links\":%u,\"cache_routes\":%zu,\"cache_bytes\":%zu,"
             "\"cache_max_routes\":%zu,\"cache_max_bytes\":%zu,\"cache_hits\":%llu,"
             "\"cache_misses\":%llu,\"lookups_redis\":%llu,\"takeovers\":%llu,\"relayed_out\":%llu,"
             "\"relayed_in\":%llu,\"relay_misses\":%llu,\"relay_retries\":%llu,\"redis_master\":\"%s\","
             "\"redis_master_changes\":%llu,\"sentinel_watching\":%s}\n",
             n->node_id, st.redis_up ? "true" : "false", workers_count(n), st.held, st.peers_up,
             links_count(n), st.cache_routes, st.cache_bytes, st.cache_max_routes, st.cache_max_bytes,
             (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses,
             (unsigned long long)st.lookups_redis, (unsigned long long)st.takeovers,
             (unsigned long long)n->stats.relayed_out, (unsigned long long)n->stats.relayed_in,
             (unsigned long long)n->stats.relay_misses, (unsigned long long)n->stats.relay_retries, st.master,
             (unsigned long long)st.master_changes, st.sentinel_watching ? "true" : "false");
}

void endpoints_answer(struct node *n, enum route_endpoint ep, struct bufferevent *bev, int keep_alive)
{
    char buf[1536];
    const char *json = "application/json";
    switch (ep) {
    case ROUTE_EP_DRAINING:
        respond(bev, 503, "Service Unavailable", json, NULL, "{\"status\":\"draining\"}\n", 1);
        break;
    case ROUTE_EP_HEARTBEAT: respond(bev, 200, "OK", json, NULL, "{\"status\":\"ok\"}\n", !keep_alive); break;
    case ROUTE_EP_VERSION:
        respond(bev, 200, "OK", json, NULL,
                "{\"source\":\"webhooktunnel-c\",\"version\":\"" NODE_VERSION "\",\"commit\":\"\","
                "\"build\":\"\"}\n",
                !keep_alive);
        break;
    case ROUTE_EP_CLUSTER:
        cluster_status(n, buf, sizeof buf);
        respond(bev, 200, "OK", json, NULL, buf, !keep_alive);
        break;
    }
}
