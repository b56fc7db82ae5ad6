/* whtunnel: the proxy node, and `whtunnel token` to mint worker tokens. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "node/config.h"
#include "node/admin.h"
#include "node/log.h"
#include "node/node.h"
#include "node/token.h"
#include "util/util.h"

extern char **environ;

/* Descriptors the node needs besides viewers and workers: listeners, peer
 * links, Redis, admin connections, the log, libevent's own. */
#define RESERVED_FDS 256

/* Raises the soft open-files limit to the hard one, says what it is, and
 * lowers WHT_MAX_CONNECTIONS and WHT_MAX_WORKERS in proportion (with a
 * warning) when the limit cannot hold them both: running out of descriptors
 * would refuse the admin probes and the peers too. */
static void fit_descriptors(struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    uint64_t want = (uint64_t)cfg->max_connections + (uint64_t)cfg->max_workers + RESERVED_FDS;
    LOG_I("open files limit %llu%s (viewers %d + workers %d + %d for the node)", (unsigned long long)limit,
          was != rl.rlim_cur ? " (raised to the hard limit)" : "", cfg->max_connections, cfg->max_workers,
          RESERVED_FDS);
    if (want <= limit)
        return;
    uint64_t room = limit > RESERVED_FDS + 2 ? limit - RESERVED_FDS : 2;
    int mc = (int)(room * (uint64_t)cfg->max_connections / (want - RESERVED_FDS));
    mc = mc < 1 ? 1 : mc;
    int mw = (int)room - mc < 1 ? 1 : (int)room - mc;
    LOG_W("the open files limit (%llu) cannot hold WHT_MAX_CONNECTIONS=%d and WHT_MAX_WORKERS=%d: lowered to "
          "%d "
          "and %d (raise the limit: ulimit -n, systemd's LimitNOFILE=, the container's nofile)",
          (unsigned long long)limit, cfg->max_connections, cfg->max_workers, mc, mw);
    cfg->max_connections = mc;
    cfg->max_workers = mw;
}

static void token_usage(FILE *f)
{
    fprintf(f, "usage: whtunnel token --id ID [--ttl DURATION] [--aud AUDIENCE]\n"
               "\n"
               "Prints an HS256 worker token for ID signed with TASKCLUSTER_PROXY_SECRET_A\n"
               "(or --secret-a; or read from TASKCLUSTER_PROXY_SECRET_A_FILE, --secret-a-file).\n"
               "DURATION: e.g. 30m, 24h, 7d (default 24h; at most 31d minus 5m, as nbf is\n"
               "backdated 5 minutes for clock skew).\n");
}

/* whtunnel token --id ID [--ttl D] [--aud A]; other flags are node settings
 * (e.g. --secret-a), read like the node reads them. */
static int cmd_token(int argc, char **argv)
{
    const char *id = NULL, *aud = NULL, *ttl_s = "24h";
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--id") == 0    ? &id
                            : strcmp(a, "--ttl") == 0 ? &ttl_s
                            : strcmp(a, "--aud") == 0 ? &aud
                                                      : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            token_usage(stdout);
            free(rest);
            return 0;
        }
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "whtunnel token: %s needs a value\n", a);
                free(rest);
                return 2;
            }
            *slot = argv[++i];
        } else {
            rest[nrest++] = argv[i];
        }
    }
    struct config cfg;
    char err[512];
    config_defaults(&cfg);
    int rc = config_load(&cfg, environ, nrest, rest, err, sizeof err);
    free(rest);
    if (rc != 0) {
        fprintf(stderr, "whtunnel token: %s\n", err);
        token_usage(stderr);
        config_free(&cfg);
        return 2;
    }
    int64_t ttl_ms;
    if (!id || !util_valid_worker_id(id, strlen(id))) {
        fprintf(stderr, "whtunnel token: --id must match [a-zA-Z0-9_~.%%-]+\n");
        config_free(&cfg);
        return 2;
    }
    if (config_parse_duration_ms(ttl_s, &ttl_ms) != 0 || ttl_ms < 1000) {
        fprintf(stderr, "whtunnel token: bad --ttl '%s' (e.g. 30m, 24h, 7d)\n", ttl_s);
        config_free(&cfg);
        return 2;
    }
    if (!cfg.secret_a || !cfg.secret_a[0]) {
        fprintf(stderr,
                "whtunnel token: no secret: set TASKCLUSTER_PROXY_SECRET_A(_FILE) or --secret-a(-file)\n");
        config_free(&cfg);
        return 2;
    }
    char *tok = NULL;
    rc = token_mint(cfg.secret_a, strlen(cfg.secret_a), id, (int64_t)time(NULL), ttl_ms / 1000, aud, &tok);
    if (rc != 0) {
        fprintf(stderr, "whtunnel token: %s\n", token_strerror(rc));
        config_free(&cfg);
        return 2;
    }
    printf("%s\n", tok);
    free(tok);
    config_free(&cfg);
    return 0;
}

/* Development mode without secrets: the node uses a development secret kept
 * in a file, so that a restart keeps the workers' tokens valid. The file:
 * WHT_DEV_SECRET_FILE, else $XDG_STATE_HOME/whtunnel/dev-secret, else
 * $HOME/.local/state/whtunnel/dev-secret. */
static void dev_secret_path(char *out, size_t cap)
{
    const char *f = getenv("WHT_DEV_SECRET_FILE"), *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
    if (f && f[0])
        snprintf(out, cap, "%s", f);
    else if (x && x[0])
        snprintf(out, cap, "%s/whtunnel/dev-secret", x);
    else if (h && h[0])
        snprintf(out, cap, "%s/.local/state/whtunnel/dev-secret", h);
    else
        out[0] = 0;
}

/* mkdir -p of the directories above path's last component (mode 0700). */
static void make_parents(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0700);
            *p = '/';
        }
    }
}

/* A secret of 48 hex digits: the one kept at path, or a new one kept there.
 * *kept says whether it is in the file (0: made for this run only). */
static char *dev_secret(const char *path, int *kept)
{
    static char hex[49];
    *kept = 0;
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    if (f) {
        size_t n = fread(hex, 1, 48, f);
        fclose(f);
        hex[48] = 0;
        if (n == 48 && strspn(hex, "0123456789abcdef") == 48) {
            *kept = 1;
            return hex;
        }
    }
    unsigned char raw[24];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return NULL;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    if (path[0]) {
        make_parents(path);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            *kept = write(fd, hex, 48) == 48 && write(fd, "\n", 1) == 1;
            close(fd);
        }
    }
    return hex;
}

/* The path of a sibling program of the build (../client/whclient next to
 * node/whtunnel), or its bare name when it is not there. */
static void program_path(const char *rel, const char *name, char *out, size_t cap)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    snprintf(out, cap, "%s", name);
    if (n <= 0)
        return;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = 0;
    char cand[4200];
    snprintf(cand, sizeof cand, "%s/%s", exe, rel);
    char *real = realpath(cand, NULL);
    if (real && access(real, X_OK) == 0)
        snprintf(out, cap, "%s", real);
    free(real);
}

static void print_first_run(const struct config *cfg, const char *secret, int admin, const char *kept_at)
{
    char client[4096], self[4096];
    program_path("../client/whclient", "whclient", client, sizeof client);
    program_path("whtunnel", "whtunnel", self, sizeof self);
    char *tok = NULL;
    if (token_mint(secret, strlen(secret), "demo", (int64_t)time(NULL), 24 * 3600, NULL, &tok) != 0)
        return;
    const char *host = cfg->listen_addr && cfg->listen_addr[0] && strcmp(cfg->listen_addr, "0.0.0.0") != 0
                           ? cfg->listen_addr
                           : "127.0.0.1";
    const char *scheme = cfg->tls_key && cfg->tls_key[0] ? "wss" : "ws";
    fprintf(stderr,
            "\n"
            "  whtunnel is running in development mode with a development secret, kept in\n"
            "    %s\n"
            "  %s\n"
            "  To mint more tokens in another shell:\n"
            "    export TASKCLUSTER_PROXY_SECRET_A=%s\n"
            "    %s token --id <id>\n"
            "  Expose a local service on port 8000 as worker \"demo\" (token valid 24 h):\n"
            "    %s %s://%s:%lld demo 8000 --token %s\n"
            "  then browse %s://%s:%lld/demo/\n"
            "  (ENV=production refuses to start without TASKCLUSTER_PROXY_SECRET_A/B.)\n",
            kept_at[0] ? kept_at : "(nowhere: set HOME or WHT_DEV_SECRET_FILE to keep it)",
            kept_at[0] ? "(the next start uses it again, so tokens stay valid; delete the file for a new one)"
                       : "(a restart makes a new one: every worker's token stops working)",
            secret, self, client, scheme, host, (long long)cfg->port, tok, scheme[2] ? "https" : "http", host,
            (long long)cfg->port);
    free(tok);
    if (admin)
        fprintf(stderr, "  Dashboard and metrics: http://127.0.0.1:%d/dashboard and /metrics\n", admin);
    fprintf(stderr, "\n");
}

/* The event loop. With epoll's change list, a write event added and dropped
 * in one turn of the loop (net_write_now() wrote the output at once) costs
 * no epoll_ctl() call; the node never dup()s a descriptor, which that mode
 * cannot tell apart. */
static struct event_base *new_base(void)
{
    struct event_config *ec = event_config_new();
    if (!ec)
        return NULL;
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return cmd_token(argc - 1, argv + 1);
    signal(SIGPIPE, SIG_IGN);
    util_keep_heap();
    struct config cfg;
    char err[512];
    config_defaults(&cfg);
    int rc = config_load(&cfg, environ, argc, argv, err, sizeof err);
    if (rc == CONFIG_HELP) {
        config_print_help(stdout, "whtunnel");
        printf("\nSubcommand:\n  whtunnel token --id ID [--ttl DURATION] [--aud AUDIENCE]   print a worker "
               "token\n");
        config_free(&cfg);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "whtunnel: %s\n(see whtunnel --help)\n", err);
        config_free(&cfg);
        return 2;
    }
    const char *generated = NULL;
    char kept_at[4096] = "";
    int kept = 0;
    int production = cfg.env && strcmp(cfg.env, "production") == 0;
    if ((!cfg.secret_a || !cfg.secret_a[0]) && (!cfg.secret_b || !cfg.secret_b[0]) && !production) {
        dev_secret_path(kept_at, sizeof kept_at);
        generated = dev_secret(kept_at, &kept);
        if (!kept)
            kept_at[0] = 0;
        if (generated)
            config_set_generated_secret(&cfg, generated);
    }
    if (config_validate(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "whtunnel: %s\n(see whtunnel --help)\n", err);
        config_free(&cfg);
        return 2;
    }
    enum log_level lvl;
    if (cfg.log_level && log_parse_level(cfg.log_level, &lvl) == 0)
        log_current_level = lvl;
    if (strcmp(cfg.log_format, "json") == 0 || (strcmp(cfg.log_format, "auto") == 0 && production))
        log_set_format(LOG_FORMAT_JSON);
    struct event_base *base = new_base();
    if (!base) {
        fprintf(stderr, "whtunnel: cannot create the event loop\n");
        return 1;
    }
    fit_descriptors(&cfg);
    struct node n;
    if (node_start(&n, base, &cfg) != 0) {
        node_stop(&n); /* what started before the failure */
        event_base_free(base);
        config_free(&cfg);
        return 1;
    }
    if (generated)
        print_first_run(&cfg, generated, admin_port(&n), kept_at);
    event_base_dispatch(base);
    node_stop(&n);
    event_base_free(base);
    config_free(&cfg);
    return 0;
}
