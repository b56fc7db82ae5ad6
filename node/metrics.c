/* metrics: the Prometheus text exposition (see metrics.h). */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cluster/registry.h"
#include "node/links.h"
#include "node/log.h"
#include "node/metrics.h"
#include "node/returning.h"
#include "node/workers.h"
#include "node/wsmux.h"

/* Upper bounds of the response-head histogram, seconds. */
static const double head_bounds[NODE_HEAD_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,    0.25,  0.5,    1,     2.5,  10};

void metrics_head_time(struct node_stats *st, double seconds)
{
    size_t i = 0;
    while (i < NODE_HEAD_BUCKETS && seconds > head_bounds[i])
        i++;
    st->head_time[i]++;
    st->head_time_sum += seconds;
}

static void help(struct evbuffer *o, const char *name, const char *type, const char *text)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* One metric without labels. */
static void one(struct evbuffer *o, const char *name, const char *type, const char *text, double v)
{
    help(o, name, type, text);
    evbuffer_add_printf(o, "%s %.17g\n", name, v);
}

static const char *const via_label[NODE_VIA_COUNT] = {"local", "relayed_in", "relayed_out", "endpoint"};
static const char *const reg_label[NODE_REG_COUNT] = {
    "ok",        "bad_id",   "bad_authorization", "not_websocket", "bad_handshake",
    "bad_token", "draining", "relayed",           "full"};
static const char *const pp_label[NODE_PP_COUNT] = {"proxy",   "local",   "missing",
                                                    "invalid", "timeout", "unexpected"};
static const char *const end_label[WSMUX_END_COUNT] = {
    "closed_by_worker", "connection_lost", "replaced", "ping_timeout",
    "protocol_error",   "drained",         "moved",    "node_stopping"};

static const char *const timeout_label[NODE_TIMEOUT_COUNT] = {"accept", "response", "idle"};
static const char *const held_label[NODE_HELD_COUNT] = {"returned", "moved", "lost"};

static void requests(struct evbuffer *o, const struct node_stats *st)
{
    help(o, "whtunnel_requests_total", "counter", "Viewer requests ended, by path and status class.");
    for (int p = 0; p < NODE_VIA_COUNT; p++)
        for (int c = 0; c < 5; c++)
            evbuffer_add_printf(o, "whtunnel_requests_total{path=\"%s\",code=\"%dxx\"} %llu\n", via_label[p],
                                c + 1, (unsigned long long)st->served[p][c]);
    help(o, "whtunnel_response_head_seconds", "histogram",
         "Time from a request's head being read to its response head being written.");
    uint64_t cum = 0;
    for (int i = 0; i < NODE_HEAD_BUCKETS; i++) {
        cum += st->head_time[i];
        evbuffer_add_printf(o, "whtunnel_response_head_seconds_bucket{le=\"%g\"} %llu\n", head_bounds[i],
                            (unsigned long long)cum);
    }
    cum += st->head_time[NODE_HEAD_BUCKETS];
    evbuffer_add_printf(o, "whtunnel_response_head_seconds_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)cum);
    evbuffer_add_printf(
        o, "whtunnel_response_head_seconds_sum %.9g\nwhtunnel_response_head_seconds_count %llu\n",
        st->head_time_sum, (unsigned long long)cum);
    one(o, "whtunnel_viewer_received_bytes_total", "counter", "Bytes received from viewers.",
        (double)st->bytes_in);
    one(o, "whtunnel_viewer_sent_bytes_total", "counter", "Bytes sent to viewers.", (double)st->bytes_out);
}

static void workers(struct evbuffer *o, struct node *n)
{
    const struct node_stats *st = &n->stats;
    one(o, "whtunnel_workers", "gauge", "Workers connected to this node.", (double)workers_count(n));
    help(o, "whtunnel_registrations_total", "counter", "Worker registrations by outcome.");
    for (int i = 0; i < NODE_REG_COUNT; i++)
        evbuffer_add_printf(o, "whtunnel_registrations_total{outcome=\"%s\"} %llu\n", reg_label[i],
                            (unsigned long long)st->reg[i]);
    one(o, "whtunnel_worker_sessions_opened_total", "counter", "Worker sessions started.",
        (double)st->sessions_opened);
    help(o, "whtunnel_worker_sessions_closed_total", "counter", "Worker sessions ended, by reason.");
    for (int i = 0; i < WSMUX_END_COUNT; i++)
        evbuffer_add_printf(o, "whtunnel_worker_sessions_closed_total{reason=\"%s\"} %llu\n", end_label[i],
                            (unsigned long long)st->sessions_closed[i]);
    help(o, "whtunnel_streams_open", "gauge", "wsmux streams this node has open, to workers and to peers.");
    evbuffer_add_printf(
        o, "whtunnel_streams_open{to=\"worker\"} %lld\nwhtunnel_streams_open{to=\"peer\"} %lld\n",
        (long long)st->streams_worker, (long long)st->streams_peer);
    help(o, "whtunnel_stream_timeouts_total", "counter",
         "Exchanges with a worker ended by a limit: accept, response (head), idle.");
    for (int i = 0; i < NODE_TIMEOUT_COUNT; i++)
        evbuffer_add_printf(o, "whtunnel_stream_timeouts_total{kind=\"%s\"} %llu\n", timeout_label[i],
                            (unsigned long long)st->stream_timeouts[i]);
    one(o, "whtunnel_requests_held", "gauge",
        "Requests that did not reach a worker that left, waiting for its next session.",
        (double)returning_parked(n));
    help(o, "whtunnel_requests_held_total", "counter",
         "Held requests released: the worker returned here, registered on another node (moved), or not in "
         "time (lost: 502).");
    for (int i = 0; i < NODE_HELD_COUNT; i++)
        evbuffer_add_printf(o, "whtunnel_requests_held_total{outcome=\"%s\"} %llu\n", held_label[i],
                            (unsigned long long)st->held[i]);
    one(o, "whtunnel_viewer_connections_open", "gauge", "Viewer connections open (relayed ones included).",
        (double)n->nconns);
    one(o, "whtunnel_viewer_connections_max", "gauge",
        "WHT_MAX_CONNECTIONS (after fitting the open files limit).", (double)n->cfg->max_connections);
    one(o, "whtunnel_viewer_connections_refused_total", "counter",
        "Viewer connections closed at once: WHT_MAX_CONNECTIONS were open.", (double)st->conn_refused);
    one(o, "whtunnel_accept_pauses_total", "counter",
        "Times the viewer listener paused for want of descriptors or memory.", (double)st->accept_pauses);
    one(o, "whtunnel_buffered_bytes", "gauge",
        "Bytes received from workers and peers and not yet delivered, all sessions together.",
        (double)n->buffered);
    one(o, "whtunnel_buffered_bytes_max", "gauge", "WHT_MAX_BUFFERED.", (double)n->cfg->max_buffered);
    one(o, "whtunnel_buffer_refusals_total", "counter",
        "New streams refused (503) while the node held WHT_MAX_BUFFERED unconsumed bytes.",
        (double)st->buffer_refusals);
    one(o, "whtunnel_workers_max", "gauge", "WHT_MAX_WORKERS (after fitting the open files limit).",
        (double)n->cfg->max_workers);
    one(o, "whtunnel_websockets_open", "gauge", "Viewer connections upgraded (after a 101).",
        (double)st->websockets_open);
    one(o, "whtunnel_tls_handshakes_total", "counter", "TLS handshakes completed on the viewer port.",
        (double)st->tls_handshakes);
    one(o, "whtunnel_tls_handshake_failures_total", "counter", "TLS handshakes that failed.",
        (double)st->tls_failures);
    help(o, "whtunnel_proxy_headers_total", "counter",
         "PROXY protocol headers on the viewer port (WHT_PROXY_PROTOCOL), by outcome.");
    for (int i = 0; i < NODE_PP_COUNT; i++)
        evbuffer_add_printf(o, "whtunnel_proxy_headers_total{outcome=\"%s\"} %llu\n", pp_label[i],
                            (unsigned long long)st->proxy_headers[i]);
}

static void cluster(struct evbuffer *o, struct node *n)
{
    struct cluster_registry_stats cs;
    memset(&cs, 0, sizeof cs);
    if (n->cluster)
        cluster_registry_stats(n->cluster, &cs);
    one(o, "whtunnel_peer_links_up", "gauge", "Node-to-node links up.", (double)links_up(n));
    one(o, "whtunnel_route_cache_routes", "gauge", "Routes in the cluster route cache.",
        (double)cs.cache_routes);
    one(o, "whtunnel_route_cache_hits_total", "counter", "Route lookups answered by the cache.",
        (double)cs.cache_hits);
    one(o, "whtunnel_route_cache_misses_total", "counter", "Route lookups that asked Redis.",
        (double)cs.cache_misses);
    one(o, "whtunnel_relay_misses_total", "counter", "Relayed requests the owner no longer held.",
        (double)n->stats.relay_misses);
    one(o, "whtunnel_redis_up", "gauge", "1 while the Redis command connection is usable.",
        (double)(n->cluster && cs.redis_up));
    one(o, "whtunnel_redis_commands_total", "counter", "Commands sent to Redis.", (double)cs.commands);
    one(o, "whtunnel_redis_errors_total", "counter", "Redis error replies, timeouts and connection losses.",
        (double)cs.errors);
    one(o, "whtunnel_redis_master_changes_total", "counter",
        "Times the node followed the Redis master to another address (Redis Sentinel).",
        (double)cs.master_changes);
    one(o, "whtunnel_draining", "gauge", "1 while the node drains.", (double)n->draining);
}

static void reloads(struct evbuffer *o, const struct node_stats *st)
{
    help(o, "whtunnel_config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.");
    evbuffer_add_printf(o, "whtunnel_config_reloads_total{result=\"ok\"} %llu\n",
                        (unsigned long long)st->reloads_ok);
    evbuffer_add_printf(o, "whtunnel_config_reloads_total{result=\"error\"} %llu\n",
                        (unsigned long long)st->reloads_failed);
    one(o, "whtunnel_config_last_reload_success_timestamp_seconds", "gauge",
        "When the configuration was last loaded successfully (start or SIGHUP), since unix epoch in seconds.",
        (double)st->last_reload_wall_ms / 1000.0);
}

/* Open descriptors: the entries of /proc/self/fd (-1 if unknown). */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long k = 0;
    if (!d)
        return -1;
    while (readdir(d))
        k++;
    closedir(d);
    return k - 3; /* ".", ".." and the directory's own descriptor */
}

static void process(struct evbuffer *o, struct node *n)
{
    long page = sysconf(_SC_PAGESIZE), hz = sysconf(_SC_CLK_TCK);
    unsigned long long size = 0, rss = 0, ut = 0, stt = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    f = fopen("/proc/self/stat", "r");
    if (f) { /* fields 14 and 15, after the command in parentheses */
        char buf[1024];
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        buf[k] = 0;
        const char *p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
            ut = stt = 0;
        fclose(f);
    }
    struct rlimit rl;
    double max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : -1;
    one(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        (double)rss * (double)page);
    one(o, "process_open_fds", "gauge", "Number of open file descriptors.", (double)open_fds());
    one(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds);
    one(o, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
        hz > 0 ? (double)(ut + stt) / (double)hz : 0);
    one(o, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
        (double)n->start_wall_ms / 1000.0);
}

void metrics_write(struct node *n, struct evbuffer *o)
{
    help(o, "whtunnel_build_info", "gauge", "Build information.");
    evbuffer_add_printf(o, "whtunnel_build_info{version=\"%s\"} 1\n", NODE_VERSION);
    workers(o, n);
    requests(o, &n->stats);
    cluster(o, n);
    reloads(o, &n->stats);
    one(o, "whtunnel_log_lines_dropped_total", "counter", "Log lines dropped by the rate limit.",
        (double)log_dropped_total());
    process(o, n);
}
