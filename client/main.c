/* whclient: command line, configuration table, signals and the event loop.
 *
 *   whclient <server-url> <id> <target-port> [--token T] [--out-file F]
 *            [--ca FILE] [--log-level error|warn|info|debug]
 *
 * Compatible with the original wst-client's command line (its --verbose and
 * --json are accepted too). Exit status: 0 after SIGINT/SIGTERM or --help,
 * 1 when it cannot go on (no usable token can come), 2 for bad arguments.
 */
#include "client/client.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define PARSE_CONTINUE (-1)

const struct client_config *client_cfg;

/* ---- the option table ---------------------------------------------------------- */

struct option_def {
    const char *name;    /* long option, without the dashes */
    const char *metavar; /* NULL: a flag without value */
    const char *deflt;   /* default shown in --help, or NULL */
    const char *help;
    /* Applies the option. Returns 0, or -1 with a static message in *why. */
    int (*set)(struct client_config *cfg, const char *value, const char **why);
};

static int set_token(struct client_config *cfg, const char *v, const char **why)
{
    if (!client_token_valid(v, strlen(v))) {
        *why = "not a JWT: expected 1-8192 characters of A-Z a-z 0-9 _ . -";
        return -1;
    }
    cfg->token = v;
    return 0;
}

static int set_out_file(struct client_config *cfg, const char *v, const char **why)
{
    char dir[4096];
    if (!*v) {
        *why = "empty file name";
        return -1;
    }
    snprintf(dir, sizeof dir, "%s", v);
    if (access(dirname(dir), W_OK) != 0) {
        *why = "its directory does not exist or is not writable";
        return -1;
    }
    cfg->out_file = v;
    return 0;
}

static int set_ca(struct client_config *cfg, const char *v, const char **why)
{
    FILE *f = fopen(v, "r");
    if (!f) {
        *why = "cannot read the file";
        return -1;
    }
    fclose(f);
    cfg->ca_file = v;
    return 0;
}

static int set_log_level(struct client_config *cfg, const char *v, const char **why)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (!strcmp(v, names[i])) {
            cfg->log_level = (enum client_log_level)i;
            return 0;
        }
    }
    *why = "expected error, warn, info or debug";
    return -1;
}

static int set_verbose(struct client_config *cfg, const char *v, const char **why)
{
    (void)v;
    (void)why;
    cfg->log_level = CLIENT_LOG_DEBUG;
    return 0;
}

static int set_json(struct client_config *cfg, const char *v, const char **why)
{
    (void)cfg;
    (void)v;
    (void)why;
    return 0; /* accepted for compatibility; logs stay plain text (a warning is printed) */
}

static int set_help(struct client_config *cfg, const char *v, const char **why)
{
    (void)cfg;
    (void)v;
    (void)why;
    return 0; /* handled by the parser */
}

static const struct option_def options[] = {
    {"token", "T", NULL,
     "JWT for the id. Without it, tokens are read from stdin, one per line; each new line "
     "replaces the token for the next (re)connection. whclient blanks it out of its command line at "
     "start-up, but stdin is the safer way.",
     set_token},
    {"out-file", "F", NULL, "also write the client URL to this file (no newline, as wst-client)",
     set_out_file},
    {"ca", "FILE", "system CAs", "PEM bundle of extra CAs trusted for wss:// (the system CAs stay trusted)",
     set_ca},
    {"log-level", "LEVEL", "info", "error, warn, info or debug (logs go to stderr)", set_log_level},
    {"verbose", NULL, NULL, "same as --log-level debug (wst-client compatibility)", set_verbose},
    {"json", NULL, NULL, "accepted for wst-client compatibility; logs stay plain text", set_json},
    {"help", NULL, NULL, "show this help and exit", set_help},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static void usage_line(FILE *f)
{
    fprintf(f, "usage: whclient <server-url> <id> <target-port> [--token T] [--out-file F] [--ca FILE]\n"
               "                [--log-level error|warn|info|debug]\n");
}

/* Prints text from column indent (the cursor is there), wrapped before width. */
static void print_wrapped(const char *text, int indent, int width)
{
    int col = indent;
    const char *p = text;
    while (*p) {
        size_t w = strcspn(p, " ");
        if (col > indent && col + 1 + (int)w > width) {
            printf("\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            putchar(' ');
            col++;
        }
        printf("%.*s", (int)w, p);
        col += (int)w;
        p += w;
        while (*p == ' ')
            p++;
    }
    putchar('\n');
}

static void print_help(void)
{
    usage_line(stdout);
    printf("\nRegisters <id> with a webhooktunnel/websocktunnel node and forwards every request\n"
           "the node receives for it to 127.0.0.1:<target-port>. Prints the public URL of the\n"
           "tunnel on stdout once registered. Reconnects with backoff when the connection drops.\n"
           "\n"
           "arguments:\n"
           "  <server-url>    ws://, wss://, http:// or https:// address of the node (a path, if any,\n"
           "                  is used for the registration request; default \"/\")\n"
           "  <id>            worker id: 1-255 characters of A-Z a-z 0-9 _ ~ . %% -\n"
           "  <target-port>   local TCP port to forward to (1-65535)\n"
           "\noptions:\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char left[64], text[512];
        const struct option_def *o = &options[i];
        if (o->metavar)
            snprintf(left, sizeof left, "--%s %s", o->name, o->metavar);
        else
            snprintf(left, sizeof left, "--%s", o->name);
        snprintf(text, sizeof text, "%s%s%s%s", o->help, o->deflt ? " [default: " : "",
                 o->deflt ? o->deflt : "", o->deflt ? "]" : "");
        printf("  %-19s ", left);
        print_wrapped(text, 22, 100);
    }
    printf("\nexit status: 0 on SIGINT/SIGTERM, 1 when no usable token can come, 2 for bad arguments\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "whclient: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    usage_line(stderr);
    fprintf(stderr, "Try 'whclient --help' for more information.\n");
    return EXIT_USAGE;
}

static const struct option_def *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].name) == len && !strncmp(options[i].name, name, len))
            return &options[i];
    return NULL;
}

/* Parses argv into cfg. Returns PARSE_CONTINUE, or the exit status (0 after
 * --help, 2 after an error, which has been printed). */
static int parse_args(int argc, char **argv, struct client_config *cfg)
{
    const char *pos[3];
    int npos = 0, json = 0, only_pos = 0;
    const char *why = NULL;

    memset(cfg, 0, sizeof *cfg);
    cfg->log_level = CLIENT_LOG_INFO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *value = NULL, *eq;
        const struct option_def *o;
        size_t len;
        if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
            if (npos == 3)
                return usage_error("unexpected argument '%s'", a);
            pos[npos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "-h")) {
            print_help();
            return 0;
        }
        if (a[1] != '-')
            return usage_error("unknown option '%s'", a);
        eq = strchr(a + 2, '=');
        len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        o = find_option(a + 2, len);
        if (!o)
            return usage_error("unknown option '%s'", a);
        if (o->set == set_help) {
            print_help();
            return 0;
        }
        if (o->metavar) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return usage_error("option --%s needs a value", o->name);
        } else if (eq) {
            return usage_error("option --%s takes no value", o->name);
        }
        if (o->set == set_json)
            json = 1;
        if (o->set(cfg, value, &why) != 0)
            return usage_error("--%s: %s", o->name, why);
    }
    if (npos < 3)
        return usage_error("missing %s", npos == 0   ? "<server-url>, <id> and <target-port>"
                                         : npos == 1 ? "<id> and <target-port>"
                                                     : "<target-port>");
    if (client_url_parse(pos[0], &cfg->server, &why) != 0)
        return usage_error("<server-url> '%s': %s", pos[0], why);
    snprintf(cfg->server_text, sizeof cfg->server_text, "%s", pos[0]);
    if (!util_valid_worker_id(pos[1], strlen(pos[1])))
        return usage_error("<id> '%s': expected 1-255 characters of A-Z a-z 0-9 _ ~ . %% -", pos[1]);
    cfg->id = pos[1];
    cfg->target_port = client_port_parse(pos[2]);
    if (cfg->target_port < 0)
        return usage_error("<target-port> '%s': expected a port number 1-65535", pos[2]);
    if (json)
        fprintf(stderr, "whclient: --json is accepted for compatibility; logs stay plain text\n");
    if (cfg->ca_file && !cfg->server.tls)
        fprintf(stderr, "whclient: --ca has no effect with a ws:// or http:// server URL\n");
    return PARSE_CONTINUE;
}

/* Copies the --token value out of argv and blanks it there, so that ps and
 * /proc/<pid>/cmdline no longer show it (they did for a moment at start-up:
 * stdin is the safe way to pass tokens). */
static void hide_token(int argc, char **argv, struct client_config *cfg)
{
    static char token[CLIENT_MAX_TOKEN + 1];
    if (!cfg->token)
        return;
    snprintf(token, sizeof token, "%s", cfg->token);
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (argv[i] == cfg->token || (eq && eq + 1 == cfg->token))
            memset((char *)cfg->token, 'x', strlen(cfg->token));
    }
    cfg->token = token;
}

/* ---- signals, through a signalfd on the lws loop --------------------------------- */

static int signal_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    struct client *c = ctx ? lws_context_user(ctx) : NULL;
    struct signalfd_siginfo si;
    (void)user;
    (void)in;
    (void)len;
    if (reason != LWS_CALLBACK_RAW_RX_FILE || !c)
        return 0;
    if (read(lws_get_socket_fd(wsi), &si, sizeof si) != (ssize_t)sizeof si)
        return 0;
    CLIENT_INFO("%s received: exiting", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    client_stop(c, 0);
    return 0;
}

static int watch_signals(struct lws_context *ctx, int *sfd)
{
    sigset_t mask;
    lws_sock_file_fd_type fd;
    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");

    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    *sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (*sfd < 0 || !vh)
        return -1;
    fd.filefd = *sfd;
    if (!lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "whclient-signal", NULL))
        return -1;
    return 0;
}

/* Nothing listening on the target port is the usual reason for 502s that
 * a user would blame on the tunnel: say so at start-up (it may come later). */
static void warn_if_nothing_listens(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno == ECONNREFUSED)
        CLIENT_WARN(
            "nothing listens on 127.0.0.1:%d (yet): requests for this worker will get 502 Bad Gateway "
            "until something does",
            port);
    close(fd);
}

int main(int argc, char **argv)
{
    static struct client_config cfg;
    struct lws_protocols protocols[] = {
        {.name = CLIENT_WS_PROTOCOL, .callback = client_ws_callback, .rx_buffer_size = (size_t)64 * 1024},
        {.name = CLIENT_RAW_PROTOCOL, .callback = client_backend_callback},
        {.name = "whclient-signal", .callback = signal_callback},
        {0}, /* terminator */
    };
    struct lws_context_creation_info info;
    struct lws_context *ctx;
    struct client *c;
    sigset_t mask;
    int rc, sfd = -1;

    util_keep_heap();
    /* fds 0-2 must be open: a closed stdin would be reused by the first socket,
     * and the token reader would then read that socket */
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            return 1;
    rc = parse_args(argc, argv, &cfg);
    if (rc != PARSE_CONTINUE)
        return rc;
    hide_token(argc, argv, &cfg);
    client_cfg = &cfg;
    client_log_setup_lws(cfg.log_level);

    /* SIGINT/SIGTERM arrive through a signalfd; block them before any thread exists */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    c = client_new(NULL);
    if (!c) {
        CLIENT_ERROR("out of memory");
        return 1;
    }
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.client_ssl_ca_filepath = cfg.ca_file;
    info.pt_serv_buf_size = 256 * 1024; /* bytes per read from a socket */
    info.timeout_secs = 20;             /* TLS and WebSocket handshakes */
    info.connect_timeout_secs = 20;     /* TCP connect */
    info.gid = -1;
    info.uid = -1;
    info.user = c;
    ctx = lws_create_context(&info);
    if (!ctx) {
        CLIENT_ERROR("cannot create the libwebsockets context%s", cfg.ca_file ? " (check --ca)" : "");
        client_free(c);
        return 1;
    }
    c->ctx = ctx;
    if (watch_signals(ctx, &sfd) != 0) {
        CLIENT_ERROR("cannot watch SIGINT/SIGTERM: %s", strerror(errno));
        lws_context_destroy(ctx);
        client_free(c);
        return 1;
    }

    warn_if_nothing_listens(cfg.target_port);
    client_start(c);
    while (c->state != CLIENT_STOPPING) {
        if (lws_service(ctx, 0) < 0) {
            CLIENT_ERROR("the event loop failed");
            client_stop(c, 1); /* cancels every timer before the context goes */
        }
    }
    rc = c->exit_code;
    lws_context_destroy(ctx);
    client_free(c);
    return rc;
}
