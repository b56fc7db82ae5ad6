/* config: the node's settings table and what is generated from it. See config.h. */
#include "node/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cluster/cluster.h"
#include "util/cidr.h"
#include "util/util.h"

enum config__type {
    CFG_STRING,   /* char *, printable */
    CFG_SECRET,   /* char *, never printed */
    CFG_INT,      /* int, min..max */
    CFG_SIZE,     /* uint64_t bytes, min..max */
    CFG_DURATION, /* int64_t ms, min..max */
    CFG_BOOL,     /* bool */
    CFG_CHOICE,   /* char *, one of choices */
};

enum config__group {
    CFG_G_LISTENER,
    CFG_G_TOKENS,
    CFG_G_TLS,
    CFG_G_ROUTING,
    CFG_G_LIMITS,
    CFG_G_CLUSTER,
    CFG_G_LOGGING,
    CFG_G_ADMIN,
    CFG_G_COUNT,
};

static const char *const config__group_names[CFG_G_COUNT] = {
    "Listener", "Tokens",
    "TLS",      "Routing",
    "Limits",   "Cluster (standalone unless REDIS_URL or WHT_REDIS_SENTINELS is set)",
    "Logging",  "Admin (metrics, probes, status, dashboard)",
};

struct config__entry {
    const char *name; /* short name used in messages */
    const char *env;  /* environment variable */
    const char *flag; /* long flag, with its dashes */
    const char *meta; /* placeholder for the value in --help */
    enum config__type type;
    enum config__group group;
    size_t off;                 /* of the field in struct config */
    const char *def;            /* default, as text parsed like any value */
    int64_t min, max;           /* CFG_INT, CFG_SIZE, CFG_DURATION */
    const char *const *choices; /* CFG_CHOICE: NULL-terminated */
    const char *help;
    size_t file_off;      /* of the char * naming the value's file (<env>_FILE, <flag>-file); 0: none */
    bool file_start_only; /* that file is read at start only, not again by config_reload_files() */
};

/* offsetof(struct config, f), refusing to compile unless the field has type T. */
#define CFG_OFF(f, T)                                                                                        \
    (offsetof(struct config, f) + 0 * sizeof(char[_Generic(((struct config *)0)->f, T : 1, default : -1)]))
#define CFG_STR(f) .off = CFG_OFF(f, char *)
#define CFG_STRINGIFY2(x) #x
#define CFG_STRINGIFY(x) CFG_STRINGIFY2(x)
#define CFG_FILE(f) .file_off = CFG_OFF(f, char *)
#define K (INT64_C(1) << 10)
#define M (INT64_C(1) << 20)
#define G (INT64_C(1) << 30)
#define SEC INT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static const char *const config__log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const config__log_formats[] = {"auto", "text", "json", NULL};

static const struct config__entry config__table[] = {
    /* listener */
    {.name = "port",
     .env = "PORT",
     .flag = "--port",
     .meta = "<port>",
     .type = CFG_INT,
     .group = CFG_G_LISTENER,
     .off = CFG_OFF(port, int),
     .def = "8080",
     .min = 0,
     .max = 65535,
     .help = "TCP port to listen on for viewers and workers (0: any free port)."},
    {.name = "listen",
     .env = "WHT_LISTEN_ADDR",
     .flag = "--listen",
     .meta = "<address>",
     .type = CFG_STRING,
     .group = CFG_G_LISTENER,
     CFG_STR(listen_addr),
     .def = "0.0.0.0",
     .help = "IP address to bind (IPv4 or IPv6, e.g. 127.0.0.1 or ::)."},
    {.name = "proxy-protocol",
     .env = "WHT_PROXY_PROTOCOL",
     .flag = "--proxy-protocol",
     .meta = "<cidr,...>",
     .type = CFG_STRING,
     .group = CFG_G_LISTENER,
     CFG_STR(proxy_protocol),
     .def = "",
     .help = "Load balancers that send the PROXY protocol (v1 or v2), as comma-separated networks, e.g. "
             "10.0.0.0/8,::1/128. A connection from one of them must start with a PROXY header (before TLS), "
             "whose source address is then the viewer's; a connection from one of them without a header is "
             "closed, and a header from any other address is refused (400). Empty: none."},
    {.name = "trusted-proxies",
     .env = "WHT_TRUSTED_PROXIES",
     .flag = "--trusted-proxies",
     .meta = "<cidr,...>",
     .type = CFG_STRING,
     .group = CFG_G_LISTENER,
     CFG_STR(trusted_proxies),
     .def = "",
     .help = "HTTP proxies in front of the node, as comma-separated networks. A request from one of them "
             "keeps its X-Forwarded-For, with the proxy's address appended; any other request's "
             "X-Forwarded-For is replaced by the viewer's address. Empty: none."},
    /* tokens */
    {.name = "env",
     .env = "ENV",
     .flag = "--env",
     .meta = "<name>",
     .type = CFG_STRING,
     .group = CFG_G_TOKENS,
     CFG_STR(env),
     .def = "development",
     .help = "Runtime environment. \"production\" refuses to start without TASKCLUSTER_PROXY_SECRET_A or _B; "
             "any other value lets the node generate a secret when none is set."},
    {.name = "secret-a",
     .env = "TASKCLUSTER_PROXY_SECRET_A",
     .flag = "--secret-a",
     .meta = "<secret>",
     .type = CFG_SECRET,
     .group = CFG_G_TOKENS,
     CFG_STR(secret_a),
     CFG_FILE(secret_a_file),
     .def = "",
     .help = "Secret that signs worker tokens (HS256). Tried first."},
    {.name = "secret-b",
     .env = "TASKCLUSTER_PROXY_SECRET_B",
     .flag = "--secret-b",
     .meta = "<secret>",
     .type = CFG_SECRET,
     .group = CFG_G_TOKENS,
     CFG_STR(secret_b),
     CFG_FILE(secret_b_file),
     .def = "",
     .help = "Second accepted secret, so that secrets rotate without downtime. Tried after A."},
    {.name = "audience",
     .env = "AUDIENCE",
     .flag = "--audience",
     .meta = "<aud>",
     .type = CFG_STRING,
     .group = CFG_G_TOKENS,
     CFG_STR(audience),
     .def = "",
     .help = "When set, tokens must carry this \"aud\" claim; when empty, \"aud\" is not checked."},
    /* TLS */
    {.name = "tls-key",
     .env = "TLS_KEY",
     .flag = "--tls-key",
     .meta = "<file>",
     .type = CFG_STRING,
     .group = CFG_G_TLS,
     CFG_STR(tls_key),
     .def = "",
     .help = "PEM private key file, or the base64 of the PEM (as the original service took it). With "
             "TLS_CERTIFICATE, serves HTTPS/WSS; both or neither. SIGHUP reads both files again, for new "
             "connections."},
    {.name = "tls-certificate",
     .env = "TLS_CERTIFICATE",
     .flag = "--tls-certificate",
     .meta = "<file>",
     .type = CFG_STRING,
     .group = CFG_G_TLS,
     CFG_STR(tls_certificate),
     .def = "",
     .help = "PEM certificate chain file (leaf first), or the base64 of the PEM."},
    /* routing */
    {.name = "url-prefix",
     .env = "URL_PREFIX",
     .flag = "--url-prefix",
     .meta = "<url>",
     .type = CFG_STRING,
     .group = CFG_G_ROUTING,
     CFG_STR(url_prefix),
     .def = "",
     .help = "Public base URL, e.g. https://tunnel.example.com; a worker's URL in path mode is <url>/<id>. "
             "Empty: derived from the Host of the registration request."},
    {.name = "domain",
     .env = "WHT_DOMAIN",
     .flag = "--domain",
     .meta = "<domain>",
     .type = CFG_STRING,
     .group = CFG_G_ROUTING,
     CFG_STR(domain),
     .def = "",
     .help = "Enables domain mode: requests for <id>.<domain> go to worker <id>. Path mode stays on."},
    /* limits */
    {.name = "max-header-bytes",
     .env = "WHT_MAX_HEADER_BYTES",
     .flag = "--max-header-bytes",
     .meta = "<size>",
     .type = CFG_SIZE,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(max_header_bytes, uint64_t),
     .def = "16k",
     .min = 1 * K,
     .max = 1 * M,
     .help = "Largest request or response head (request line and headers)."},
    {.name = "header-timeout",
     .env = "WHT_HEADER_TIMEOUT",
     .flag = "--header-timeout",
     .meta = "<duration>",
     .type = CFG_DURATION,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(header_timeout_ms, int64_t),
     .def = "10s",
     .min = 100,
     .max = 10 * MIN,
     .help = "Time a viewer has to send a complete request head."},
    {.name = "idle-timeout",
     .env = "WHT_IDLE_TIMEOUT",
     .flag = "--idle-timeout",
     .meta = "<duration>",
     .type = CFG_DURATION,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(idle_timeout_ms, int64_t),
     .def = "120s",
     .min = 1 * SEC,
     .max = 1 * DAY,
     .help = "How long an idle viewer keep-alive connection stays open."},
    {.name = "max-streams-per-worker",
     .env = "WHT_MAX_STREAMS_PER_WORKER",
     .flag = "--max-streams-per-worker",
     .meta = "<n>",
     .type = CFG_INT,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(max_streams_per_worker, int),
     .def = "128",
     .min = 1,
     .max = CONFIG_MAX_STREAMS_GO,
     .help = "Requests in flight towards one worker; more wait in a queue. At most 190: Go clients abort "
             "a session with over 200 unaccepted streams."},
    {.name = "queue-timeout",
     .env = "WHT_QUEUE_TIMEOUT",
     .flag = "--queue-timeout",
     .meta = "<duration>",
     .type = CFG_DURATION,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(queue_timeout_ms, int64_t),
     .def = "5s",
     .min = 0,
     .max = 10 * MIN,
     .help = "How long a request may wait for a free stream before a 503."},
    {.name = "accept-timeout",
     .env = "WHT_ACCEPT_TIMEOUT",
     .flag = "--accept-timeout",
     .meta = "<duration>",
     .type = CFG_DURATION,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(accept_timeout_ms, int64_t),
     .def = "30s",
     .min = 100,
     .max = 10 * MIN,
     .help = "How long a worker (or the node holding it) has to accept a new stream; then 504 and the "
             "stream is reset."},
    {.name = "response-timeout",
     .env = "WHT_RESPONSE_TIMEOUT",
     .flag = "--response-timeout",
     .meta = "<duration>",
     .type = CFG_DURATION,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(response_timeout_ms, int64_t),
     .def = "60s",
     .min = 0,
     .max = 1 * DAY,
     .help = "How long the node waits for a response head after the last byte of the request went to the "
             "worker; then 504 and the stream is reset. 0: no limit (WHT_STREAM_IDLE_TIMEOUT applies)."},
    {.name = "stream-idle-timeout",
     .env = "WHT_STREAM_IDLE_TIMEOUT",
     .flag = "--stream-idle-timeout",
     .meta = "<duration>",
     .type = CFG_DURATION,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(stream_idle_timeout_ms, int64_t),
     .def = "10m",
     .min = 0,
     .max = 1 * DAY,
     .help = "An exchange with a worker in which no byte moved either way for this long is ended: the "
             "stream is reset and the viewer's connection closed. 0: no limit."},
    {.name = "stream-idle-timeout-upgraded",
     .env = "WHT_STREAM_IDLE_TIMEOUT_UPGRADED",
     .flag = "--stream-idle-timeout-upgraded",
     .meta = "<duration>",
     .type = CFG_DURATION,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(stream_idle_timeout_upgraded_ms, int64_t),
     .def = "1h",
     .min = 0,
     .max = 1 * DAY,
     .help = "The same for an upgraded connection (a WebSocket after its 101). 0: no limit."},
    {.name = "stream-window",
     .env = "WHT_STREAM_WINDOW",
     .flag = "--stream-window",
     .meta = "<size>",
     .type = CFG_SIZE,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(stream_window, uint64_t),
     .def = "256k",
     .min = 4 * K,
     .max = 16 * M,
     .help = "Receive window granted to a worker per stream."},
    {.name = "session-buffer",
     .env = "WHT_SESSION_BUFFER",
     .flag = "--session-buffer",
     .meta = "<size>",
     .type = CFG_SIZE,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(session_buffer, uint64_t),
     .def = "8m",
     .min = 64 * K,
     .max = 1 * G,
     .help = "Bytes received from one worker and not yet delivered, past which the node stops reading "
             "that worker's connection. At least WHT_STREAM_WINDOW."},
    {.name = "max-buffered",
     .env = "WHT_MAX_BUFFERED",
     .flag = "--max-buffered",
     .meta = "<size>",
     .type = CFG_SIZE,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(max_buffered, uint64_t),
     .def = "1g",
     .min = 1 * M,
     .max = 1024 * G,
     .help = "Bytes received from all workers and peers together and not yet delivered. Over it, new "
             "requests get 503 and sessions holding more than one stream window stop being read until the "
             "total is back under 7/8 of it."},
    {.name = "ping-interval",
     .env = "WHT_PING_INTERVAL",
     .flag = "--ping-interval",
     .meta = "<duration>",
     .type = CFG_DURATION,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(ping_interval_ms, int64_t),
     .def = "20s",
     .min = 1 * SEC,
     .max = 10 * MIN,
     .help = "WebSocket ping interval towards workers; a worker that has not answered by the next ping is "
             "dropped."},
    {.name = "max-connections",
     .env = "WHT_MAX_CONNECTIONS",
     .flag = "--max-connections",
     .meta = "<n>",
     .type = CFG_INT,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(max_connections, int),
     .def = "10000",
     .min = 1,
     .max = 1000000,
     .help =
         "Viewer connections open at once (requests, WebSockets, and connections not yet registered as "
         "workers); a connection over it is closed at once. Worker sessions have their own limit. Lowered "
         "at start-up, with a warning, when the open-files limit cannot hold both."},
    {.name = "max-workers",
     .env = "WHT_MAX_WORKERS",
     .flag = "--max-workers",
     .meta = "<n>",
     .type = CFG_INT,
     .group = CFG_G_LIMITS,
     .off = CFG_OFF(max_workers, int),
     .def = "10000",
     .min = 1,
     .max = 1000000,
     .help = "Worker sessions held at once; a registration over it gets 503 (register with another node)."},
    /* cluster */
    {.name = "redis-url",
     .env = "REDIS_URL",
     .flag = "--redis-url",
     .meta = "<url>",
     .type = CFG_STRING,
     .group = CFG_G_CLUSTER,
     CFG_STR(redis_url),
     CFG_FILE(redis_url_file),
     .file_start_only = true,
     .def = "",
     .help = "redis://[:password@]host[:port][/db] of the cluster registry. Empty: a standalone node. With "
             "WHT_REDIS_SENTINELS: redis://[:password@]/[db], only the password and database (or empty)."},
    {.name = "redis-sentinels",
     .env = "WHT_REDIS_SENTINELS",
     .flag = "--redis-sentinels",
     .meta = "<host:port,...>",
     .type = CFG_STRING,
     .group = CFG_G_CLUSTER,
     CFG_STR(redis_sentinels),
     .def = "",
     .help = "Redis Sentinels that name the registry's master (port 26379 when absent; at most 16), asked in "
             "turn; the node follows failovers. Turns cluster mode on. Needs WHT_REDIS_MASTER."},
    {.name = "redis-master",
     .env = "WHT_REDIS_MASTER",
     .flag = "--redis-master",
     .meta = "<name>",
     .type = CFG_STRING,
     .group = CFG_G_CLUSTER,
     CFG_STR(redis_master),
     .def = "",
     .help = "Name of the master the sentinels monitor ([A-Za-z0-9_.:-], at most 128). Needs "
             "WHT_REDIS_SENTINELS."},
    {.name = "node-id",
     .env = "WHT_NODE_ID",
     .flag = "--node-id",
     .meta = "<id>",
     .type = CFG_STRING,
     .group = CFG_G_CLUSTER,
     CFG_STR(node_id),
     .def = "",
     .help = "This node's name in the cluster ([A-Za-z0-9_.-], at most 64). Empty: the host name and a "
             "random suffix."},
    {.name = "peer-addr",
     .env = "WHT_PEER_ADDR",
     .flag = "--peer-addr",
     .meta = "<host:port>",
     .type = CFG_STRING,
     .group = CFG_G_CLUSTER,
     CFG_STR(peer_addr),
     .def = "",
     .help = "Address to listen on for links from other nodes (port 0: any free port). Empty: the listen "
             "address with PORT + 1."},
    {.name = "peer-advertise",
     .env = "WHT_PEER_ADVERTISE",
     .flag = "--peer-advertise",
     .meta = "<host:port>",
     .type = CFG_STRING,
     .group = CFG_G_CLUSTER,
     CFG_STR(peer_advertise),
     .def = "",
     .help = "Address other nodes dial to reach this one. Empty: WHT_PEER_ADDR with the port bound, and "
             "this host's name for a wildcard address."},
    {.name = "cluster-secret",
     .env = "WHT_CLUSTER_SECRET",
     .flag = "--cluster-secret",
     .meta = "<secret>",
     .type = CFG_SECRET,
     .group = CFG_G_CLUSTER,
     CFG_STR(cluster_secret),
     CFG_FILE(cluster_secret_file),
     .def = "",
     .help = "Shared secret authenticating node-to-node links; required with REDIS_URL (16 bytes or more)."},
    {.name = "drain-timeout",
     .env = "WHT_DRAIN_TIMEOUT",
     .flag = "--drain-timeout",
     .meta = "<duration>",
     .type = CFG_DURATION,
     .group = CFG_G_CLUSTER,
     .off = CFG_OFF(drain_timeout_ms, int64_t),
     .def = "30s",
     .min = 0,
     .max = 10 * MIN,
     .help = "In a cluster, SIGTERM drains the node: workers are asked to reconnect elsewhere and requests "
             "for them wait for their new home; the node exits once idle, or after this long. A second "
             "signal exits at once."},
    {.name = "redis-prefix",
     .env = "WHT_REDIS_PREFIX",
     .flag = "--redis-prefix",
     .meta = "<prefix>",
     .type = CFG_STRING,
     .group = CFG_G_CLUSTER,
     CFG_STR(redis_prefix),
     .def = "wht:",
     .help = "Prefix of every Redis key and channel, so that clusters can share a Redis."},
    /* logging */
    {.name = "log-level",
     .env = "WHT_LOG_LEVEL",
     .flag = "--log-level",
     .meta = "<level>",
     .type = CFG_CHOICE,
     .group = CFG_G_LOGGING,
     CFG_STR(log_level),
     .def = "info",
     .choices = config__log_levels,
     .help = "Least severe messages logged: error, warn, info or debug."},
    {.name = "log-format",
     .env = "WHT_LOG_FORMAT",
     .flag = "--log-format",
     .meta = "<format>",
     .type = CFG_CHOICE,
     .group = CFG_G_LOGGING,
     CFG_STR(log_format),
     .def = "auto",
     .choices = config__log_formats,
     .help = "Log lines as text or as JSON lines; auto is JSON with ENV=production, text otherwise."},
    {.name = "access-log",
     .env = "WHT_ACCESS_LOG",
     .flag = "--access-log",
     .meta = "<bool>",
     .type = CFG_BOOL,
     .group = CFG_G_LOGGING,
     .off = CFG_OFF(access_log, bool),
     .def = "true",
     .help =
         "One log line per viewer request (worker, method, path without query, status, bytes, duration)."},
    /* admin */
    {.name = "admin-addr",
     .env = "WHT_ADMIN_ADDR",
     .flag = "--admin-addr",
     .meta = "<host:port|off>",
     .type = CFG_STRING,
     .group = CFG_G_ADMIN,
     CFG_STR(admin_addr),
     .def = "",
     .help = "Admin listener (/metrics, /healthz, /readyz, /status, /cluster, /workers/<id>/requests, "
             "/dashboard); empty: 127.0.0.1 and PORT + 2; off: none."},
    {.name = "admin-token",
     .env = "WHT_ADMIN_TOKEN",
     .flag = "--admin-token",
     .meta = "<token>",
     .type = CFG_SECRET,
     .group = CFG_G_ADMIN,
     CFG_STR(admin_token),
     CFG_FILE(admin_token_file),
     .def = "",
     .help = "Bearer token required for /status, /cluster, /workers/... and /dashboard on the admin "
             "listener (not for /metrics and the probes); empty: none."},
};

#define CFG_N (sizeof(config__table) / sizeof(config__table[0]))

/* ---- messages -------------------------------------------------------------------------- */

static void cfg_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies at most 64 bytes of s into out (room for 72), '?' for control characters,
 * "..." when cut: safe to put in a message. */
static const char *cfg_quote(const char *s, char *out)
{
    size_t i;
    for (i = 0; s[i] && i < 64; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i])
        out[i++] = '.', out[i++] = '.', out[i++] = '.';
    out[i] = '\0';
    return out;
}

/* As cfg_quote(), for a path: at most 256 bytes (out has room for 264). */
static const char *cfg_quote_path(const char *s, char *out)
{
    size_t i;
    for (i = 0; s[i] && i < 256; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i])
        out[i++] = '.', out[i++] = '.', out[i++] = '.';
    out[i] = '\0';
    return out;
}

static void cfg_format_size(uint64_t v, char *out, size_t len)
{
    if (v != 0 && v % (uint64_t)G == 0)
        snprintf(out, len, "%" PRIu64 "g", v / (uint64_t)G);
    else if (v != 0 && v % (uint64_t)M == 0)
        snprintf(out, len, "%" PRIu64 "m", v / (uint64_t)M);
    else if (v != 0 && v % (uint64_t)K == 0)
        snprintf(out, len, "%" PRIu64 "k", v / (uint64_t)K);
    else
        snprintf(out, len, "%" PRIu64, v);
}

static void cfg_format_duration(int64_t ms, char *out, size_t len)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{DAY, "d"}, {HOUR, "h"}, {MIN, "m"}, {SEC, "s"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(out, len, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
            return;
        }
    }
    snprintf(out, len, ms == 0 ? "0s" : "%" PRId64 "ms", ms);
}

/* What a value of entry e must look like, for errors and help. */
static void cfg_expected(const struct config__entry *e, char *out, size_t len)
{
    char lo[32], hi[32];
    switch (e->type) {
    case CFG_INT: snprintf(out, len, "an integer from %" PRId64 " to %" PRId64, e->min, e->max); break;
    case CFG_SIZE:
        cfg_format_size((uint64_t)e->min, lo, sizeof(lo));
        cfg_format_size((uint64_t)e->max, hi, sizeof(hi));
        snprintf(out, len, "a size from %s to %s (bytes, or with k, m or g as in 256k)", lo, hi);
        break;
    case CFG_DURATION:
        cfg_format_duration(e->min, lo, sizeof(lo));
        cfg_format_duration(e->max, hi, sizeof(hi));
        snprintf(out, len, "a duration from %s to %s (with ms, s, m, h or d, as in 30s or 1h30m)", lo, hi);
        break;
    case CFG_BOOL: snprintf(out, len, "true or false (or 1/0, yes/no, on/off)"); break;
    case CFG_CHOICE: {
        size_t n = (size_t)snprintf(out, len, "one of");
        for (size_t i = 0; e->choices[i] && n < len; i++)
            n += (size_t)snprintf(out + n, len - n, "%s %s", i ? "," : "", e->choices[i]);
        break;
    }
    case CFG_SECRET: snprintf(out, len, "at most %d bytes", CONFIG_MAX_STRING); break;
    case CFG_STRING:
        snprintf(out, len, "text without control characters, at most %d bytes", CONFIG_MAX_STRING);
        break;
    }
}

/* ---- value parsers --------------------------------------------------------------------- */

/* Reads decimal digits at *s into *v (no sign). Returns the digit count, -1 on overflow. */
static int cfg_digits(const char **s, uint64_t *v)
{
    int n = 0;
    *v = 0;
    while (**s >= '0' && **s <= '9') {
        unsigned d = (unsigned)(**s - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return -1;
        *v = *v * 10 + d;
        (*s)++;
        n++;
    }
    return n;
}

int config_parse_duration_ms(const char *s, int64_t *out_ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", SEC}, {"m", MIN}, {"h", HOUR}, {"d", DAY}};
    uint64_t total = 0, v;

    if (!s || !out_ms || !*s)
        return CONFIG_E_VALUE;
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    while (*s) {
        size_t i, ulen = 0;
        if (cfg_digits(&s, &v) <= 0)
            return CONFIG_E_VALUE;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            ulen = strlen(units[i].unit);
            /* "m" must not take the "m" of "ms" */
            if (strncmp(s, units[i].unit, ulen) == 0 && !(ulen == 1 && s[0] == 'm' && s[1] == 's'))
                break;
        }
        if (i == sizeof(units) / sizeof(units[0]))
            return CONFIG_E_VALUE;
        s += ulen;
        if (v > (uint64_t)INT64_MAX / (uint64_t)units[i].ms)
            return CONFIG_E_VALUE;
        v *= (uint64_t)units[i].ms;
        if (v > (uint64_t)INT64_MAX - total)
            return CONFIG_E_VALUE;
        total += v;
    }
    *out_ms = (int64_t)total;
    return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
    uint64_t v, mult = 1;

    if (!s || !out || cfg_digits(&s, &v) <= 0)
        return CONFIG_E_VALUE;
    switch (*s) {
    case '\0': break;
    case 'k':
    case 'K':
        mult = (uint64_t)K;
        s++;
        break;
    case 'm':
    case 'M':
        mult = (uint64_t)M;
        s++;
        break;
    case 'g':
    case 'G':
        mult = (uint64_t)G;
        s++;
        break;
    default: return CONFIG_E_VALUE;
    }
    if (*s != '\0' || v > UINT64_MAX / mult)
        return CONFIG_E_VALUE;
    *out = v * mult;
    return 0;
}

int config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    if (!s || !out)
        return CONFIG_E_VALUE;
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return CONFIG_E_VALUE;
}

static int cfg_parse_int(const char *s, int64_t *out)
{
    int neg = *s == '-';
    uint64_t v;
    if (neg)
        s++;
    if (cfg_digits(&s, &v) <= 0 || *s != '\0' || v > (uint64_t)INT64_MAX)
        return CONFIG_E_VALUE;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static int cfg_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* ---- the setter every source goes through ----------------------------------------------- */

static void *cfg_field(struct config *c, const struct config__entry *e)
{
    return (char *)c + e->off;
}

static const void *cfg_cfield(const struct config *c, const struct config__entry *e)
{
    return (const char *)c + e->off;
}

static int cfg_replace_string(struct config *c, const struct config__entry *e, const char *value)
{
    char **slot = cfg_field(c, e);
    char *copy = strdup(value);
    if (!copy)
        return CONFIG_E_NOMEM;
    if (*slot) {
        if (e->type == CFG_SECRET)
            OPENSSL_cleanse(*slot, strlen(*slot));
        free(*slot);
    }
    *slot = copy;
    return 0;
}

/* Parses value for e and stores it. origin says where it came from, for the
 * message ("--port", "environment variable PORT"). */
static int cfg_set(struct config *c, const struct config__entry *e, const char *value, const char *origin,
                   char *err, size_t errlen)
{
    int64_t i64;
    uint64_t u64;
    bool b;
    int rc = CONFIG_E_VALUE;

    switch (e->type) {
    case CFG_INT:
        if (cfg_parse_int(value, &i64) == 0 && i64 >= e->min && i64 <= e->max) {
            *(int *)cfg_field(c, e) = (int)i64;
            rc = 0;
        }
        break;
    case CFG_SIZE:
        if (config_parse_size(value, &u64) == 0 && u64 >= (uint64_t)e->min && u64 <= (uint64_t)e->max) {
            *(uint64_t *)cfg_field(c, e) = u64;
            rc = 0;
        }
        break;
    case CFG_DURATION:
        if (config_parse_duration_ms(value, &i64) == 0 && i64 >= e->min && i64 <= e->max) {
            *(int64_t *)cfg_field(c, e) = i64;
            rc = 0;
        }
        break;
    case CFG_BOOL:
        if (config_parse_bool(value, &b) == 0) {
            *(bool *)cfg_field(c, e) = b;
            rc = 0;
        }
        break;
    case CFG_CHOICE:
        for (size_t k = 0; e->choices[k]; k++)
            if (strcmp(value, e->choices[k]) == 0)
                rc = cfg_replace_string(c, e, value);
        break;
    case CFG_STRING:
        if (strlen(value) <= CONFIG_MAX_STRING && cfg_printable(value))
            rc = cfg_replace_string(c, e, value);
        break;
    case CFG_SECRET:
        if (strlen(value) <= CONFIG_MAX_STRING)
            rc = cfg_replace_string(c, e, value);
        break;
    }
    if (rc == CONFIG_E_VALUE) {
        char expected[192], q[72];
        cfg_expected(e, expected, sizeof(expected));
        if (e->type == CFG_SECRET || e->file_off) /* REDIS_URL may hold a password */
            cfg_err(err, errlen, "invalid value for %s (%s, %s) given by %s: expected %s", e->name, e->env,
                    e->flag, origin, expected);
        else
            cfg_err(err, errlen, "invalid value \"%s\" for %s (%s, %s) given by %s: expected %s",
                    cfg_quote(value, q), e->name, e->env, e->flag, origin, expected);
    } else if (rc == CONFIG_E_NOMEM) {
        cfg_err(err, errlen, "out of memory");
    }
    return rc;
}

/* ---- files (<VARIABLE>_FILE, --<flag>-file) --------------------------------------------- */

static char **cfg_file_slot(struct config *c, const struct config__entry *e)
{
    return (char **)((char *)c + e->file_off);
}

static const char *cfg_cfile(const struct config *c, const struct config__entry *e)
{
    return *(char *const *)((const char *)c + e->file_off);
}

/* Stores path (not read yet) as the file of e. */
static int cfg_set_file(struct config *c, const struct config__entry *e, const char *path)
{
    char **slot = cfg_file_slot(c, e);
    char *copy = strdup(path);
    if (!copy)
        return CONFIG_E_NOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

const char *config_file_value(const char *buf, size_t len, size_t *value_len)
{
    if (len > 0 && buf[len - 1] == '\n')
        len -= len > 1 && buf[len - 2] == '\r' ? 2 : 1;
    *value_len = len;
    if (len == 0)
        return "is empty";
    if (memchr(buf, '\0', len))
        return "holds a NUL byte";
    if (len > CONFIG_MAX_STRING)
        return "is longer than " CFG_STRINGIFY(CONFIG_MAX_STRING) " bytes";
    return NULL;
}

/* Reads at most cap bytes of the regular file path into buf. Returns the
 * count, or -1 with errno set (EINVAL: not a regular file). */
static ssize_t cfg_read_path(const char *path, char *buf, size_t cap)
{
    struct stat st;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    int fs = fstat(fd, &st);
    if (fs != 0 || !S_ISREG(st.st_mode)) {
        int e = fs != 0 ? errno : EINVAL;
        close(fd);
        errno = e;
        return -1;
    }
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    return (ssize_t)n;
}

/* Reads the file of e and stores its value. */
static int cfg_read_file(struct config *c, const struct config__entry *e, char *err, size_t errlen)
{
    const char *path = cfg_cfile(c, e);
    char q[264], origin[400];
    size_t cap = CONFIG_MAX_STRING + 3, len = 0; /* room to see "too long" past a \r\n */
    char *buf = malloc(cap + 1);
    if (!buf) {
        cfg_err(err, errlen, "out of memory");
        return CONFIG_E_NOMEM;
    }
    ssize_t n = cfg_read_path(path, buf, cap);
    const char *why = n < 0 ? NULL : config_file_value(buf, (size_t)n, &len);
    int rc = CONFIG_E_FILE;
    if (n < 0) {
        cfg_err(err, errlen, "cannot read %s_FILE (%s-file) \"%s\": %s", e->env, e->flag,
                cfg_quote_path(path, q), errno == EINVAL ? "not a regular file" : strerror(errno));
    } else if (why) {
        cfg_err(err, errlen, "%s_FILE (%s-file) \"%s\" %s", e->env, e->flag, cfg_quote_path(path, q), why);
    } else {
        buf[len] = '\0';
        snprintf(origin, sizeof origin, "file \"%s\" (%s_FILE)", cfg_quote_path(path, q), e->env);
        rc = cfg_set(c, e, buf, origin, err, errlen);
    }
    OPENSSL_cleanse(buf, cap + 1);
    free(buf);
    return rc;
}

/* Reads every file set (with start_only, those read at start only too). */
static int cfg_read_files(struct config *c, bool start_only, char *err, size_t errlen)
{
    for (size_t i = 0; i < CFG_N; i++) {
        const struct config__entry *e = &config__table[i];
        if (!e->file_off || !cfg_cfile(c, e)[0] || (e->file_start_only && !start_only))
            continue;
        int rc = cfg_read_file(c, e, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- public ---------------------------------------------------------------------------- */

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CFG_N; i++) {
        char err[256];
        if (cfg_set(cfg, &config__table[i], config__table[i].def, "the default", err, sizeof(err)) != 0 ||
            (config__table[i].file_off && cfg_set_file(cfg, &config__table[i], "") != 0)) {
            fprintf(stderr, "config: %s\n", err); /* a bad table or no memory at start-up */
            abort();
        }
    }
}

static const struct config__entry *cfg_find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < CFG_N; i++)
        if (strlen(config__table[i].flag) == len && memcmp(config__table[i].flag, name, len) == 0)
            return &config__table[i];
    return NULL;
}

/* The entry of --flag or, for a file-backed setting, --flag-file (*is_file set). */
static const struct config__entry *cfg_find_option(const char *name, size_t len, bool *is_file)
{
    *is_file = false;
    const struct config__entry *e = cfg_find_flag(name, len);
    if (e || len < 6 || memcmp(name + len - 5, "-file", 5) != 0)
        return e;
    e = cfg_find_flag(name, len - 5);
    *is_file = e && e->file_off;
    return *is_file ? e : NULL;
}

static const char *cfg_getenv(char **environ_like, const char *name)
{
    size_t n = strlen(name);
    if (!environ_like)
        return NULL;
    for (char **e = environ_like; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* A file path as given (not read yet): printable, at most CONFIG_MAX_STRING bytes. */
static int cfg_take_path(struct config *cfg, const struct config__entry *e, const char *path,
                         const char *origin, char *err, size_t errlen)
{
    if (strlen(path) > CONFIG_MAX_STRING || !cfg_printable(path)) {
        cfg_err(err, errlen,
                "invalid file name for %s (%s_FILE, %s-file) given by %s: expected a path without "
                "control characters, at most %d bytes",
                e->name, e->env, e->flag, origin, CONFIG_MAX_STRING);
        return CONFIG_E_VALUE;
    }
    int rc = cfg_set_file(cfg, e, path);
    if (rc == CONFIG_E_NOMEM)
        cfg_err(err, errlen, "out of memory");
    return rc;
}

static int cfg_load_env(struct config *cfg, char **environ_like, char *err, size_t errlen)
{
    for (size_t i = 0; i < CFG_N; i++) {
        const struct config__entry *e = &config__table[i];
        const char *v = cfg_getenv(environ_like, e->env), *vf = NULL;
        char origin[120], fname[80];
        int rc = 0;
        snprintf(fname, sizeof(fname), "%s_FILE", e->env);
        if (e->file_off)
            vf = cfg_getenv(environ_like, fname);
        if (v && *v && vf && *vf) {
            cfg_err(err, errlen, "%s and %s are both set: set one of them", e->env, fname);
            return CONFIG_E_VALUE;
        }
        if (vf && *vf) {
            snprintf(origin, sizeof(origin), "environment variable %s", fname);
            rc = cfg_take_path(cfg, e, vf, origin, err, errlen);
        } else if (v && *v) { /* "" is unset, as in the original service */
            snprintf(origin, sizeof(origin), "environment variable %s", e->env);
            rc = cfg_set(cfg, e, v, origin, err, errlen);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Stores the value (or file, is_file) of option e, given by argv[i]. seen[]
 * remembers which forms argv gave, to refuse --flag with --flag-file. */
static int cfg_take_option(struct config *cfg, const struct config__entry *e, bool is_file, const char *value,
                           unsigned char *seen, char *err, size_t errlen)
{
    unsigned char *s = &seen[e - config__table];
    char origin[80];
    *s |= is_file ? 2 : 1;
    if (*s == 3) {
        cfg_err(err, errlen, "%s and %s-file are both given: give one of them", e->flag, e->flag);
        return CONFIG_E_VALUE;
    }
    if (!is_file) {
        /* the flag wins over a <VARIABLE>_FILE */
        int rc = e->file_off ? cfg_set_file(cfg, e, "") : 0;
        return rc != 0 ? rc : cfg_set(cfg, e, value, e->flag, err, errlen);
    }
    snprintf(origin, sizeof(origin), "%s-file", e->flag);
    return cfg_take_path(cfg, e, value, origin, err, errlen);
}

static int cfg_load_argv(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    unsigned char seen[CFG_N] = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return CONFIG_HELP;
        if (a[0] != '-' || a[1] == '\0' || strcmp(a, "--") == 0) {
            /* not echoed: a misplaced secret would end up in a log */
            cfg_err(err, errlen, "unexpected argument %d: this program takes only --options (see --help)", i);
            return CONFIG_E_ARGUMENT;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        bool is_file;
        const struct config__entry *e = cfg_find_option(a, nlen, &is_file);
        if (!e) {
            char q[72], name[80];
            snprintf(name, sizeof(name), "%.*s", (int)(nlen < 70 ? nlen : 70), a);
            cfg_err(err, errlen, "unknown option \"%s\" (see --help)", cfg_quote(name, q));
            return CONFIG_E_UNKNOWN;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (e->type == CFG_BOOL) {
            value = "true";
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else {
            char expected[192];
            cfg_expected(e, expected, sizeof(expected));
            cfg_err(err, errlen, "option %s%s needs a value (%s%s%s): expected %s", e->flag,
                    is_file ? "-file" : "", i + 1 < argc ? "use --name=value for one starting with --; " : "",
                    e->env, is_file ? "_FILE" : "", is_file ? "a file name" : expected);
            return CONFIG_E_MISSING_VALUE;
        }
        int rc = cfg_take_option(cfg, e, is_file, value, seen, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int config_load(struct config *cfg, char **environ_like, int argc, char **argv, char *err, size_t errlen)
{
    int rc;
    cfg_err(err, errlen, "%s", "");
    if ((rc = cfg_load_env(cfg, environ_like, err, errlen)) != 0)
        return rc;
    if ((rc = cfg_load_argv(cfg, argc, argv, err, errlen)) != 0)
        return rc;
    return cfg_read_files(cfg, true, err, errlen);
}

/* Copies every string of src into dst (memcpy'd from src): each slot ends up
 * a copy or NULL, so that dst is always freeable. */
static int cfg_copy_strings(struct config *dst, const struct config *src)
{
    int rc = 0;
    for (size_t i = 0; i < CFG_N; i++) {
        const struct config__entry *e = &config__table[i];
        char **slots[2] = {NULL, NULL};
        if (e->type == CFG_STRING || e->type == CFG_SECRET || e->type == CFG_CHOICE)
            slots[0] = cfg_field(dst, e);
        if (e->file_off)
            slots[1] = cfg_file_slot(dst, e);
        for (int k = 0; k < 2; k++) {
            if (!slots[k] || !*slots[k])
                continue;
            *slots[k] = strdup(*slots[k]);
            if (!*slots[k])
                rc = CONFIG_E_NOMEM;
        }
    }
    return rc;
}

int config_reload_files(const struct config *cfg, struct config *fresh, char *err, size_t errlen)
{
    int rc;
    cfg_err(err, errlen, "%s", "");
    memcpy(fresh, cfg, sizeof(*fresh));
    if ((rc = cfg_copy_strings(fresh, cfg)) != 0) {
        cfg_err(err, errlen, "out of memory");
        return rc;
    }
    if ((rc = cfg_read_files(fresh, false, err, errlen)) != 0)
        return rc;
    return config_validate(fresh, err, errlen);
}

/* The settings config_reload_files() reads again. */
static bool cfg_reloadable(const struct config__entry *e)
{
    return e->file_off && !e->file_start_only;
}

int config_changed_files(const struct config *cfg, const struct config *fresh, char *out, size_t cap)
{
    int n = 0;
    size_t len = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < CFG_N; i++) {
        const struct config__entry *e = &config__table[i];
        if (!cfg_reloadable(e)) /* only then is the field a char * */
            continue;
        const char *a = *(char *const *)cfg_cfield(cfg, e), *b = *(char *const *)cfg_cfield(fresh, e);
        if (strcmp(a ? a : "", b ? b : "") == 0)
            continue;
        if (len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", n ? ", " : "", e->env);
        n++;
    }
    return n;
}

void config_adopt_files(struct config *cfg, struct config *fresh)
{
    for (size_t i = 0; i < CFG_N; i++) {
        const struct config__entry *e = &config__table[i];
        if (!cfg_reloadable(e))
            continue;
        char **a = cfg_field(cfg, e), **b = cfg_field(fresh, e), *t = *a;
        *a = *b;
        *b = t;
    }
}

/* ---- validation ------------------------------------------------------------------------ */

/* A DNS name: labels of [A-Za-z0-9-] separated by single dots, at most
 * UTIL_MAX_HOST_LEN bytes. Stricter than util_hostport_parse()'s host (no
 * '_', no trailing dot): WHT_DOMAIN is the suffix of <id>.<domain> in Host
 * headers, not an address to resolve. */
static int cfg_valid_hostname(const char *s, size_t len)
{
    return len > 0 && len <= UTIL_MAX_HOST_LEN && s[0] != '.' && s[len - 1] != '.' &&
           util_chars_only(s, len, "-.") && !memmem(s, len, "..", 2);
}

/* host:port or [v6]:port (util_hostport_parse); port 0 (the kernel picks)
 * only when allow_zero. */
static int cfg_valid_hostport(const char *s, int allow_zero)
{
    struct util_hostport hp = {0};
    return util_hostport_parse(s, strlen(s), allow_zero ? UTIL_HP_PORT_ZERO : 0, &hp) == 0;
}

/* http(s)://authority[/path], no query, fragment, space or user info. */
static int cfg_valid_url_prefix(const char *s)
{
    const char *h;
    if (strncmp(s, "https://", 8) == 0)
        h = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        h = s + 7;
    else
        return 0;
    size_t alen = strcspn(h, "/");
    if (alen == 0)
        return 0;
    for (const char *p = h; *p; p++)
        if (*p == ' ' || *p == '?' || *p == '#' || *p == '@' || *p == '\\' || *p == '"' || *p == '<' ||
            *p == '>')
            return 0;
    struct util_hostport hp = {0};
    return util_hostport_parse(h, alen, UTIL_HP_PORT_OPTIONAL, &hp) == 0;
}

bool config_cluster_mode(const struct config *cfg)
{
    return cfg->redis_url[0] || cfg->redis_sentinels[0];
}

bool config_is_production(const struct config *cfg)
{
    return cfg->env && strcmp(cfg->env, "production") == 0;
}

static bool cfg_has_configured_secret(const struct config *cfg)
{
    return (cfg->secret_a && cfg->secret_a[0] && !cfg->secret_generated) ||
           (cfg->secret_b && cfg->secret_b[0]);
}

bool config_needs_generated_secret(const struct config *cfg)
{
    return !config_is_production(cfg) && !(cfg->secret_a && cfg->secret_a[0]) &&
           !(cfg->secret_b && cfg->secret_b[0]);
}

int config_set_generated_secret(struct config *cfg, const char *secret)
{
    const struct config__entry *e = cfg_find_flag("--secret-a", strlen("--secret-a"));
    if (!secret || !secret[0] || strlen(secret) > CONFIG_MAX_STRING)
        return CONFIG_E_VALUE;
    int rc = cfg_replace_string(cfg, e, secret);
    if (rc == 0)
        cfg->secret_generated = true;
    return rc;
}

/* A list of networks (util/cidr.h) in the setting of entry named env/flag. */
static int cfg_validate_cidrs(const char *value, const char *env, const char *flag, char *err, size_t errlen)
{
    struct util_cidr_list *l = malloc(sizeof *l);
    size_t off = 0, len = 0;
    char q[72], entry[UTIL_CIDR_MAX_ENTRY + 8];
    if (!l) {
        cfg_err(err, errlen, "out of memory");
        return CONFIG_E_NOMEM;
    }
    int rc = util_cidr_parse_list(value, strlen(value), l, &off, &len);
    free(l);
    if (rc == 0)
        return 0;
    snprintf(entry, sizeof entry, "%.*s", (int)(len > UTIL_CIDR_MAX_ENTRY ? UTIL_CIDR_MAX_ENTRY : len),
             value + off);
    cfg_err(err, errlen,
            "invalid %s (%s): entry \"%s\": %s; expected comma-separated networks such as "
            "10.0.0.0/8,127.0.0.1/32,::1/128",
            env, flag, cfg_quote(entry, q), util_cidr_strerror(rc));
    return CONFIG_E_INVALID;
}

/* WHT_REDIS_SENTINELS, WHT_REDIS_MASTER and the host-less REDIS_URL that goes with them. */
static int cfg_validate_sentinels(const struct config *cfg, char *err, size_t errlen)
{
    char q[72];
    struct cluster_sentinels sl;
    struct cluster_url u;
    int rc;
    if (!cfg->redis_sentinels[0] != !cfg->redis_master[0]) {
        cfg_err(err, errlen,
                "WHT_REDIS_SENTINELS (--redis-sentinels) and WHT_REDIS_MASTER (--redis-master) go together: "
                "set both or neither");
        return CONFIG_E_INVALID;
    }
    if (!cfg->redis_sentinels[0])
        return 0;
    if ((rc = cluster_sentinels_parse(cfg->redis_sentinels, strlen(cfg->redis_sentinels), &sl)) != 0) {
        cfg_err(err, errlen,
                "invalid WHT_REDIS_SENTINELS (--redis-sentinels) \"%s\": expected host:port[,host:port...], "
                "at most %d different sentinels (port %d when absent)",
                cfg_quote(cfg->redis_sentinels, q), CLUSTER_MAX_SENTINELS, CLUSTER_SENTINEL_PORT);
        return CONFIG_E_INVALID;
    }
    if (!cluster_valid_master_name(cfg->redis_master, strlen(cfg->redis_master))) {
        cfg_err(err, errlen,
                "invalid WHT_REDIS_MASTER (--redis-master) \"%s\": expected 1 to %d of [A-Za-z0-9_.:-], the "
                "name in the sentinels' 'sentinel monitor <name> ...'",
                cfg_quote(cfg->redis_master, q), CLUSTER_MAX_MASTER_NAME_LEN);
        return CONFIG_E_INVALID;
    }
    rc = cluster_url_parse_auth(cfg->redis_url[0] ? cfg->redis_url : "redis://",
                                cfg->redis_url[0] ? strlen(cfg->redis_url) : 8, &u);
    explicit_bzero(&u, sizeof u);
    if (rc != 0) { /* not echoed: the URL may hold the Redis password */
        cfg_err(err, errlen, "invalid REDIS_URL (--redis-url) with WHT_REDIS_SENTINELS: %s",
                rc == CLUSTER_E_URL_HOST || rc == CLUSTER_E_URL_SCHEME
                    ? cluster_strerror(rc)
                    : "expected redis://[[user]:password@]/[db] (the password and database of the master)");
        return CONFIG_E_INVALID;
    }
    return 0;
}

/* The cluster's settings (REDIS_URL or the sentinels, and what goes with them). */
static int cfg_validate_cluster(const struct config *cfg, char *err, size_t errlen)
{
    char q[72];
    if (cfg_validate_sentinels(cfg, err, errlen) != 0)
        return CONFIG_E_INVALID;
    if (cfg->redis_url[0] && !cfg->redis_sentinels[0] &&
        (strncmp(cfg->redis_url, "redis://", 8) != 0 || !cfg->redis_url[8])) {
        /* not echoed: the URL may hold the Redis password */
        cfg_err(err, errlen,
                "invalid REDIS_URL (--redis-url): expected redis://[:password@]host[:port][/db] "
                "(rediss:// is not supported: hiredis 0.14 has no TLS; put a TLS tunnel such as stunnel "
                "next to the node if Redis must be reached over TLS)");
        return CONFIG_E_INVALID;
    }
    if (config_cluster_mode(cfg) && strlen(cfg->cluster_secret) < CONFIG_MIN_CLUSTER_SECRET) {
        cfg_err(err, errlen,
                "%s needs WHT_CLUSTER_SECRET (--cluster-secret) of at least %d bytes, the same on every node",
                cfg->redis_sentinels[0] ? "WHT_REDIS_SENTINELS (--redis-sentinels)"
                                        : "REDIS_URL (--redis-url)",
                CONFIG_MIN_CLUSTER_SECRET);
        return CONFIG_E_INVALID;
    }
    if (cfg->peer_addr[0] && !cfg_valid_hostport(cfg->peer_addr, 1)) {
        cfg_err(err, errlen, "invalid WHT_PEER_ADDR (--peer-addr) \"%s\": expected host:port",
                cfg_quote(cfg->peer_addr, q));
        return CONFIG_E_INVALID;
    }
    if (cfg->peer_advertise[0] && !cfg_valid_hostport(cfg->peer_advertise, 0)) {
        cfg_err(err, errlen, "invalid WHT_PEER_ADVERTISE (--peer-advertise) \"%s\": expected host:port",
                cfg_quote(cfg->peer_advertise, q));
        return CONFIG_E_INVALID;
    }
    if (strlen(cfg->node_id) > 64 || !util_chars_only(cfg->node_id, strlen(cfg->node_id), "_.-")) {
        cfg_err(err, errlen, "invalid WHT_NODE_ID (--node-id) \"%s\": expected at most 64 of [A-Za-z0-9_.-]",
                cfg_quote(cfg->node_id, q));
        return CONFIG_E_INVALID;
    }
    if (strlen(cfg->redis_prefix) > 64 ||
        !util_chars_only(cfg->redis_prefix, strlen(cfg->redis_prefix), "_.:-/{}")) {
        cfg_err(err, errlen,
                "invalid WHT_REDIS_PREFIX (--redis-prefix) \"%s\": expected at most 64 of "
                "[A-Za-z0-9_.:-/{}]",
                cfg_quote(cfg->redis_prefix, q));
        return CONFIG_E_INVALID;
    }
    return 0;
}

int config_validate(const struct config *cfg, char *err, size_t errlen)
{
    char q[72];
    cfg_err(err, errlen, "%s", "");
    if (!cfg->tls_key[0] != !cfg->tls_certificate[0]) {
        cfg_err(err, errlen,
                "TLS_KEY (--tls-key) and TLS_CERTIFICATE (--tls-certificate) go together: set both or "
                "neither");
        return CONFIG_E_INVALID;
    }
    if (config_is_production(cfg) && !cfg_has_configured_secret(cfg)) {
        cfg_err(err, errlen,
                "ENV=production needs TASKCLUSTER_PROXY_SECRET_A or TASKCLUSTER_PROXY_SECRET_B "
                "(--secret-a, --secret-b): generated secrets are for development only");
        return CONFIG_E_INVALID;
    }
    if (cfg->stream_window > cfg->session_buffer) {
        cfg_err(err, errlen,
                "WHT_STREAM_WINDOW (--stream-window) must not exceed WHT_SESSION_BUFFER "
                "(--session-buffer)");
        return CONFIG_E_INVALID;
    }
    if (cfg->url_prefix[0] && !cfg_valid_url_prefix(cfg->url_prefix)) {
        cfg_err(err, errlen,
                "invalid URL_PREFIX (--url-prefix) \"%s\": expected http(s)://host[:port][/path], as "
                "in https://tunnel.example.com",
                cfg_quote(cfg->url_prefix, q));
        return CONFIG_E_INVALID;
    }
    if (cfg->domain[0] && !cfg_valid_hostname(cfg->domain, strlen(cfg->domain))) {
        cfg_err(err, errlen,
                "invalid WHT_DOMAIN (--domain) \"%s\": expected a host name such as tunnel.example.com, "
                "without scheme or port",
                cfg_quote(cfg->domain, q));
        return CONFIG_E_INVALID;
    }
    if (cfg_validate_cluster(cfg, err, errlen) != 0)
        return CONFIG_E_INVALID;
    if (cfg->admin_addr[0] && strcmp(cfg->admin_addr, "off") != 0 &&
        !cfg_valid_hostport(cfg->admin_addr, 1)) {
        cfg_err(err, errlen, "invalid WHT_ADMIN_ADDR (--admin-addr) \"%s\": expected host:port or off",
                cfg_quote(cfg->admin_addr, q));
        return CONFIG_E_INVALID;
    }
    if (cfg_validate_cidrs(cfg->proxy_protocol, "WHT_PROXY_PROTOCOL", "--proxy-protocol", err, errlen) != 0 ||
        cfg_validate_cidrs(cfg->trusted_proxies, "WHT_TRUSTED_PROXIES", "--trusted-proxies", err, errlen) !=
            0)
        return CONFIG_E_INVALID;
    if (!cfg->listen_addr[0]) {
        cfg_err(err, errlen,
                "WHT_LISTEN_ADDR (--listen) must not be empty (0.0.0.0 listens on every interface)");
        return CONFIG_E_INVALID;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < CFG_N; i++) {
        const struct config__entry *e = &config__table[i];
        if (e->type != CFG_STRING && e->type != CFG_SECRET && e->type != CFG_CHOICE)
            continue;
        char **slot = cfg_field(cfg, e);
        if (*slot && (e->type == CFG_SECRET || e->file_off))
            OPENSSL_cleanse(*slot, strlen(*slot));
        free(*slot);
        *slot = NULL;
        if (e->file_off) {
            free(*cfg_file_slot(cfg, e));
            *cfg_file_slot(cfg, e) = NULL;
        }
    }
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- help and dump --------------------------------------------------------------------- */

/* Writes text wrapped at width columns, each line indented by indent spaces. */
static void cfg_wrap(FILE *f, int indent, int width, const char *text)
{
    const char *p = text;
    while (*p) {
        int avail = width - indent;
        size_t len = strlen(p), cut = len;
        if ((int)len > avail) {
            cut = (size_t)avail;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = strcspn(p, " ");
        }
        fprintf(f, "%*s%.*s\n", indent, "", (int)cut, p);
        p += cut;
        while (*p == ' ')
            p++;
    }
}

void config_print_help(FILE *f, const char *progname)
{
    fprintf(f, "Usage: %s [options]\n\n", progname ? progname : "whtunnel");
    cfg_wrap(
        f, 0, 79,
        "Every setting comes from its environment variable, then from its option (an option wins). Options "
        "take "
        "their value as --name value or --name=value. Sizes are bytes or take k, m or g (1024-based): 256k. "
        "Durations take ms, s, m, h or d: 30s, 1h30m.");
    for (int g = 0; g < CFG_G_COUNT; g++) {
        fprintf(f, "\n%s:\n", config__group_names[g]);
        for (size_t i = 0; i < CFG_N; i++) {
            const struct config__entry *e = &config__table[i];
            char text[260], bounds[240] = "", lo[32], hi[32];
            if ((int)e->group != g)
                continue;
            fprintf(f, "  %s %s  [%s]\n", e->flag, e->meta, e->env);
            if (e->file_off)
                fprintf(f, "  %s-file <file>  [%s_FILE]\n", e->flag, e->env);
            switch (e->type) {
            case CFG_INT:
                snprintf(bounds, sizeof(bounds), "%" PRId64 "..%" PRId64 ", default %s", e->min, e->max,
                         e->def);
                break;
            case CFG_SIZE:
                cfg_format_size((uint64_t)e->min, lo, sizeof(lo));
                cfg_format_size((uint64_t)e->max, hi, sizeof(hi));
                snprintf(bounds, sizeof(bounds), "%s..%s, default %s", lo, hi, e->def);
                break;
            case CFG_DURATION:
                cfg_format_duration(e->min, lo, sizeof(lo));
                cfg_format_duration(e->max, hi, sizeof(hi));
                snprintf(bounds, sizeof(bounds), "%s..%s, default %s", lo, hi, e->def);
                break;
            case CFG_SECRET: snprintf(bounds, sizeof(bounds), "secret"); break;
            default:
                if (e->def[0])
                    snprintf(bounds, sizeof(bounds), "default %s", e->def);
                break;
            }
            cfg_wrap(f, 6, 79, e->help);
            if (e->file_off) {
                size_t bl = strlen(bounds);
                snprintf(bounds + bl, sizeof(bounds) - bl,
                         "%sthe _FILE and -file forms name a file holding it, less one trailing newline; %s",
                         bl ? "; " : "", e->file_start_only ? "read at start only" : "re-read on SIGHUP");
            }
            if (bounds[0]) {
                snprintf(text, sizeof(text), "(%s)", bounds);
                cfg_wrap(f, 6, 79, text);
            }
        }
    }
}

void config_dump(const struct config *cfg, FILE *f)
{
    for (size_t i = 0; i < CFG_N; i++) {
        const struct config__entry *e = &config__table[i];
        const void *p = cfg_cfield(cfg, e);
        char buf[40];
        switch (e->type) {
        case CFG_INT: fprintf(f, "%-28s = %d\n", e->env, *(const int *)p); break;
        case CFG_SIZE:
            cfg_format_size(*(const uint64_t *)p, buf, sizeof(buf));
            fprintf(f, "%-28s = %s\n", e->env, buf);
            break;
        case CFG_DURATION:
            cfg_format_duration(*(const int64_t *)p, buf, sizeof(buf));
            fprintf(f, "%-28s = %s\n", e->env, buf);
            break;
        case CFG_BOOL: fprintf(f, "%-28s = %s\n", e->env, *(const bool *)p ? "true" : "false"); break;
        case CFG_SECRET: {
            const char *s = *(char *const *)p;
            fprintf(f, "%-28s = %s\n", e->env,
                    s && s[0] ? (e->off == offsetof(struct config, secret_a) && cfg->secret_generated
                                     ? "*** (generated)"
                                     : "***")
                              : "(unset)");
            break;
        }
        case CFG_STRING:
        case CFG_CHOICE: {
            const char *s = *(char *const *)p;
            fprintf(f, "%-28s = \"%s\"\n", e->env, s ? s : "");
            break;
        }
        }
        const char *file = e->file_off ? cfg_cfile(cfg, e) : NULL;
        if (file && file[0]) {
            char name[80], q[264];
            snprintf(name, sizeof(name), "%s_FILE", e->env);
            fprintf(f, "%-28s = \"%s\"\n", name, cfg_quote_path(file, q));
        }
    }
}

const char *config_strerror(int err)
{
    switch (err) {
    case CONFIG_OK: return "ok";
    case CONFIG_HELP: return "help requested";
    case CONFIG_E_UNKNOWN: return "unknown option";
    case CONFIG_E_MISSING_VALUE: return "option without a value";
    case CONFIG_E_VALUE: return "invalid value";
    case CONFIG_E_ARGUMENT: return "unexpected argument";
    case CONFIG_E_INVALID: return "inconsistent settings";
    case CONFIG_E_NOMEM: return "out of memory";
    case CONFIG_E_FILE: return "unreadable or invalid file";
    default: return "unknown config error";
    }
}
