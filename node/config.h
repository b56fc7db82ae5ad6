/* config: the node's settings, as one declarative table (config.c) that
 * gives each setting its name, environment variable, command-line flag,
 * type, bounds, default and help text. The same table drives the defaults,
 * the environment and argv parsers, --help and the dump.
 *
 * Order of sources: defaults, then the environment, then argv (a flag wins
 * over its variable). An environment variable set to "" counts as unset
 * (as in the original service). Flags are "--flag value" or "--flag=value";
 * a separate value may not start with "--" (write "--flag=--x" for that).
 * --help or -h makes config_load() return CONFIG_HELP.
 *
 * Value syntax:
 *   int       decimal, within the setting's bounds
 *   size      bytes, or with a 1024-based suffix k, m or g (either case): "256k"
 *   duration  one or more <integer><unit>, unit ms, s, m, h or d: "30s", "1h30m";
 *             "0" alone is zero. Stored in milliseconds.
 *   bool      true/false, 1/0, yes/no, on/off; a bool flag alone means true
 *   choice    one of a fixed list of words (stored as that word)
 *   string    printable text without control characters, at most
 *             CONFIG_MAX_STRING bytes
 *   secret    any text of at most CONFIG_MAX_STRING bytes; never printed: the
 *             help says "(secret)", the dump "***", errors never echo it
 *
 * Files: every secret, and REDIS_URL (it may hold the Redis password), can
 * instead be read from a file, as official container images do and as
 * Kubernetes mounts Secrets: <VARIABLE>_FILE or --<flag>-file names a
 * regular file whose content, less one trailing "\n" or "\r\n", is the
 * value. The file is read after the environment and argv. NAME and NAME_FILE
 * both set in the environment, or --flag and --flag-file both on the command
 * line, is an error; otherwise a flag wins over a variable as usual (so
 * --secret-a-file wins over TASKCLUSTER_PROXY_SECRET_A). An unreadable,
 * empty or too long file, or one with a NUL byte, is an error naming the
 * setting and the path. config_reload_files() reads the files again (SIGHUP):
 * the secrets are reloaded, REDIS_URL is read at start only.
 *
 * config_load() parses; config_validate() checks the settings as a whole
 * (call it after config_set_generated_secret(), if any). Afterwards the
 * struct is read-only, and its string fields stay valid until config_free().
 */
#ifndef WHT_NODE_CONFIG_H
#define WHT_NODE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_STRING 4096       /* bytes of any string or secret value */
#define CONFIG_MIN_CLUSTER_SECRET 16 /* bytes of WHT_CLUSTER_SECRET, when set */
#define CONFIG_MAX_STREAMS_GO 190    /* WHT_MAX_STREAMS_PER_WORKER bound: Go clients abort over 200 */

/* Results: 0 is success, CONFIG_HELP asks for help, errors are negative. */
enum config_err {
    CONFIG_OK = 0,
    CONFIG_HELP = 1,             /* --help or -h: print config_print_help(), exit 0 */
    CONFIG_E_UNKNOWN = -1,       /* unknown option */
    CONFIG_E_MISSING_VALUE = -2, /* option without its value (last in argv, or next starts with --) */
    CONFIG_E_VALUE = -3,         /* a value that does not parse or is out of bounds */
    CONFIG_E_ARGUMENT = -4,      /* an argument that is not an option */
    CONFIG_E_INVALID = -5,       /* settings inconsistent as a whole (config_validate) */
    CONFIG_E_NOMEM = -6,
    CONFIG_E_FILE = -7, /* a <VARIABLE>_FILE that cannot be read or holds no valid value */
};

/* The settings. String fields are never NULL after config_defaults(); ""
 * means unset. Durations are milliseconds, sizes bytes. The environment
 * variable and flag of each field are in the comment. */
struct config {
    /* listener */
    int port;              /* PORT, --port: 0..65535, 0 lets the kernel pick; default 8080 */
    char *listen_addr;     /* WHT_LISTEN_ADDR, --listen: address to bind; default 0.0.0.0 */
    char *proxy_protocol;  /* WHT_PROXY_PROTOCOL, --proxy-protocol: CIDR list of load balancers whose
                              connections start with a PROXY protocol header; "" none */
    char *trusted_proxies; /* WHT_TRUSTED_PROXIES, --trusted-proxies: CIDR list of HTTP proxies whose
                              X-Forwarded-For is kept (and appended to); "" none */
    /* routing */
    char *url_prefix; /* URL_PREFIX, --url-prefix: public base URL (http[s]://host[:port][/path]);
                         "" derives it from the registration's Host */
    char *domain;     /* WHT_DOMAIN, --domain: enables domain mode, <id>.<domain> */
    /* tokens */
    char *env;             /* ENV, --env: "production" forbids running without configured secrets */
    char *secret_a;        /* TASKCLUSTER_PROXY_SECRET_A, --secret-a (secret) */
    char *secret_b;        /* TASKCLUSTER_PROXY_SECRET_B, --secret-b (secret) */
    char *audience;        /* AUDIENCE, --audience: "" does not check aud */
    bool secret_generated; /* secret_a came from config_set_generated_secret() */
    /* TLS */
    char *tls_key;         /* TLS_KEY, --tls-key: PEM private key file */
    char *tls_certificate; /* TLS_CERTIFICATE, --tls-certificate: PEM certificate chain file */
    /* limits */
    uint64_t max_header_bytes;  /* WHT_MAX_HEADER_BYTES, --max-header-bytes: 1k..1m, default 16k */
    int64_t header_timeout_ms;  /* WHT_HEADER_TIMEOUT, --header-timeout: 100ms..10m, default 10s */
    int64_t idle_timeout_ms;    /* WHT_IDLE_TIMEOUT, --idle-timeout: 1s..1d, default 120s */
    int max_streams_per_worker; /* WHT_MAX_STREAMS_PER_WORKER, --max-streams-per-worker: 1..190, 128 */
    int64_t queue_timeout_ms;   /* WHT_QUEUE_TIMEOUT, --queue-timeout: 0..10m, default 5s */
    uint64_t stream_window;     /* WHT_STREAM_WINDOW, --stream-window: 4k..16m, default 256k */
    uint64_t session_buffer;    /* WHT_SESSION_BUFFER, --session-buffer: 64k..1g, default 8m */
    uint64_t max_buffered;      /* WHT_MAX_BUFFERED, --max-buffered: all sessions together, 1m..1t, 1g */
    int64_t ping_interval_ms;   /* WHT_PING_INTERVAL, --ping-interval: 1s..10m, default 20s */
    int max_connections;        /* WHT_MAX_CONNECTIONS, --max-connections: viewer connections, 1..1000000, 10000 */
    int max_workers;            /* WHT_MAX_WORKERS, --max-workers: worker sessions, 1..1000000, 10000 */
    /* limits on a worker's streams (docs/node.md, "Time limits"); 0 is off, except for the first */
    int64_t accept_timeout_ms;               /* WHT_ACCEPT_TIMEOUT, --accept-timeout: 100ms..10m, 30s */
    int64_t response_timeout_ms;             /* WHT_RESPONSE_TIMEOUT, --response-timeout: 0..1d, 60s */
    int64_t stream_idle_timeout_ms;          /* WHT_STREAM_IDLE_TIMEOUT, --stream-idle-timeout: 0..1d, 10m */
    int64_t stream_idle_timeout_upgraded_ms; /* WHT_STREAM_IDLE_TIMEOUT_UPGRADED,
                                                --stream-idle-timeout-upgraded: 0..1d, 1h */
    /* cluster */
    char *redis_url;      /* REDIS_URL, --redis-url: redis://[:password@]host[:port][/db]; "" standalone;
                             with sentinels redis://[:password@]/[db] or "" */
    char *redis_sentinels; /* WHT_REDIS_SENTINELS, --redis-sentinels: host:port,...; "" none */
    char *redis_master;    /* WHT_REDIS_MASTER, --redis-master: the sentinels' master name; "" none */
    char *node_id;        /* WHT_NODE_ID, --node-id: [A-Za-z0-9_.-], at most 64; "" computed by the node */
    char *peer_addr;      /* WHT_PEER_ADDR, --peer-addr: host:port for peer links; "" computed */
    char *peer_advertise; /* WHT_PEER_ADVERTISE, --peer-advertise: host:port peers dial; "" computed */
    char *cluster_secret; /* WHT_CLUSTER_SECRET, --cluster-secret (secret): needed with REDIS_URL */
    char *redis_prefix;   /* WHT_REDIS_PREFIX, --redis-prefix: key prefix, default "wht:" */
    int64_t drain_timeout_ms; /* WHT_DRAIN_TIMEOUT, --drain-timeout: 0..10m, default 30s */
    /* logging */
    char *log_level;  /* WHT_LOG_LEVEL, --log-level: error, warn, info or debug; default info */
    char *log_format; /* WHT_LOG_FORMAT, --log-format: auto, text or json; default auto */
    bool access_log;  /* WHT_ACCESS_LOG, --access-log: a line per viewer request; default true */
    /* admin */
    char *admin_addr;  /* WHT_ADMIN_ADDR, --admin-addr: host:port, "off"; "" 127.0.0.1:PORT+2 */
    char *admin_token; /* WHT_ADMIN_TOKEN, --admin-token (secret): bearer for the admin pages */
    /* files the values above come from (<VARIABLE>_FILE, --<flag>-file); "" none */
    char *secret_a_file;       /* TASKCLUSTER_PROXY_SECRET_A_FILE, --secret-a-file */
    char *secret_b_file;       /* TASKCLUSTER_PROXY_SECRET_B_FILE, --secret-b-file */
    char *redis_url_file;      /* REDIS_URL_FILE, --redis-url-file (read at start only) */
    char *cluster_secret_file; /* WHT_CLUSTER_SECRET_FILE, --cluster-secret-file */
    char *admin_token_file;    /* WHT_ADMIN_TOKEN_FILE, --admin-token-file */
};

/* Sets every field to its default (the table's default text, parsed like any
 * value). Any previous contents are overwritten, not freed: call it once on
 * a fresh struct. Aborts the process if memory runs out (start-up only). */
void config_defaults(struct config *cfg);

/* Reads environ_like (a NULL-terminated array of "NAME=value" strings, as
 * `environ`; NULL means none), then argv[1..argc-1] (argv[0] is the program
 * name), into cfg, which config_defaults() initialised, then reads the
 * files named by <VARIABLE>_FILE / --<flag>-file (see "Files" above; an
 * unreadable or invalid one is CONFIG_E_FILE). Stops at the first
 * problem. Returns 0; CONFIG_HELP when --help or -h was met first; or a
 * negative enum config_err with a one-line message in err (errlen bytes,
 * NUL-terminated; err may be NULL) that names the setting, its variable and
 * flag, and what was expected, without echoing secrets. Does not validate
 * the whole: see config_validate(). cfg stays freeable whatever the result. */
int config_load(struct config *cfg, char **environ_like, int argc, char **argv, char *err, size_t errlen);

/* Checks the settings as a whole: TLS_KEY and TLS_CERTIFICATE both or
 * neither; in production (ENV=production) a configured secret A or B and no
 * generated one; WHT_STREAM_WINDOW <= WHT_SESSION_BUFFER; URL_PREFIX an
 * http(s) URL; WHT_DOMAIN a host name; REDIS_URL a redis:// URL;
 * WHT_REDIS_SENTINELS and WHT_REDIS_MASTER both or neither, valid, and then
 * REDIS_URL without a host; in cluster mode WHT_CLUSTER_SECRET of at least
 * CONFIG_MIN_CLUSTER_SECRET bytes; peer addresses host:port; WHT_NODE_ID and
 * WHT_REDIS_PREFIX characters;
 * WHT_PROXY_PROTOCOL and WHT_TRUSTED_PROXIES lists of networks (util/cidr.h).
 * Returns 0 or CONFIG_E_INVALID with a message in err (as config_load). */
int config_validate(const struct config *cfg, char *err, size_t errlen);

/* The content of a <VARIABLE>_FILE, without I/O: buf[0..len) less one
 * trailing "\n" or "\r\n" is the value; *value_len gets its length. Returns
 * NULL when it is fit, else a static reason ("is empty", "holds a NUL
 * byte", "is longer than 4096 bytes"). */
const char *config_file_value(const char *buf, size_t len, size_t *value_len);

/* For SIGHUP: makes fresh a deep copy of cfg, reads the file of every
 * reloadable file-backed setting (all but REDIS_URL_FILE) again into it, then validates fresh as
 * config_validate() does. Returns 0, or a negative enum config_err with a one-line message in err (naming
 * settings and paths, never a value). fresh is initialised and must be given to config_free() whatever the
 * result. */
int config_reload_files(const struct config *cfg, struct config *fresh, char *err, size_t errlen);

/* Writes the variables of the reloadable file-backed settings whose values
 * differ between cfg and fresh into out (", "-separated, "" for none) and
 * returns how many differ. */
int config_changed_files(const struct config *cfg, const struct config *fresh, char *out, size_t cap);

/* Swaps the values of the reloadable file-backed settings between cfg and
 * fresh: cfg gets the new ones, fresh the old ones (freed with it). */
void config_adopt_files(struct config *cfg, struct config *fresh);

/* True when the node joins a cluster: REDIS_URL or WHT_REDIS_SENTINELS is set. */
bool config_cluster_mode(const struct config *cfg);

/* True when ENV is "production" (exactly, as the original service). */
bool config_is_production(const struct config *cfg);

/* True when neither secret A nor B is set and not in production: the node
 * should make up a random secret and pass it to config_set_generated_secret(). */
bool config_needs_generated_secret(const struct config *cfg);

/* Stores a copy of `secret` (NUL-terminated, 1..CONFIG_MAX_STRING bytes) as
 * secret A and marks it generated (config_validate() refuses that in
 * production). Call before config_validate(). Returns 0, CONFIG_E_VALUE or
 * CONFIG_E_NOMEM. */
int config_set_generated_secret(struct config *cfg, const char *secret);

/* Frees the strings cfg owns and zeroes it (secrets are cleansed first). */
void config_free(struct config *cfg);

/* Writes the usage text generated from the table to f: every setting under
 * its group (listener, tokens, TLS, routing, limits, cluster, logging) with
 * its flag, variable, bounds, default and help. Secrets show "(secret)". */
void config_print_help(FILE *f, const char *progname);

/* Writes every setting's current value to f, one "VARIABLE = value" line
 * each, secrets as "***" (or "(unset)"). */
void config_dump(const struct config *cfg, FILE *f);

/* Parses a duration (syntax above) into milliseconds. Returns 0, or
 * CONFIG_E_VALUE for bad syntax or over INT64_MAX ms. */
int config_parse_duration_ms(const char *s, int64_t *out_ms);

/* Parses a size (syntax above) into bytes. Returns 0, or CONFIG_E_VALUE for
 * bad syntax or over UINT64_MAX. */
int config_parse_size(const char *s, uint64_t *out);

/* Parses a bool (syntax above). Returns 0, or CONFIG_E_VALUE. */
int config_parse_bool(const char *s, bool *out);

/* A short static description of a config result; never NULL. */
const char *config_strerror(int err);

#endif
