/* whclient: the worker side of webhooktunnel, on libwebsockets.
 *
 * Dials a node over one WebSocket, registers an id with a JWT, and forwards
 * every wsmux stream the node opens to 127.0.0.1:<target port>. The wsmux
 * protocol itself is the sans-I/O core in mux/; this folder is the thin lws
 * adapter around it, plus the command line, the reconnect policy and the
 * token feed on stdin. docs/client.md describes the behaviour.
 *
 * Files: main.c (command line, config table, event loop, signals), log.c (the
 * log sink), util.c (pure helpers: URL, token and port checks, backoff; the
 * clock and the worker-id rule are util/util.h's), tunnel.c (the WebSocket to
 * the node, the mux session, reconnects, stdin), backend.c (one raw TCP
 * connection to the local port per stream).
 *
 * Everything runs on lws's own event loop, in one thread. The config and the
 * log sink are the only globals.
 */
#ifndef WHT_CLIENT_CLIENT_H
#define WHT_CLIENT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "mux/mux.h"
#include "mux/ws.h"
#include "util/util.h"

#include <libwebsockets.h>
#include <sys/queue.h>

/* Limits. Every buffer and queue has one. */
#define CLIENT_MAX_URL 2048      /* server URL, and the client URL the node returns */
#define CLIENT_MAX_TOKEN 8192    /* JWT */
#define CLIENT_MAX_BACKENDS 1024 /* concurrent streams forwarded to the local port */
#define CLIENT_MAX_MESSAGE (1024 * 1024 + MUX_MAX_CONTROL_LEN) /* reassembled WebSocket message */
#define CLIENT_MAX_REFUSAL 256                                 /* a 401's reason, as logged */
#define CLIENT_RX_PAUSE                                                                                      \
    ((uint64_t)8 * 1024 * 1024) /* stop reading the WebSocket above this many unconsumed bytes */
#define CLIENT_RX_RESUME (CLIENT_RX_PAUSE / 2)
#define CLIENT_TX_BATCH ((size_t)64 * 1024) /* bytes of frames per write to the node */
#define CLIENT_HALF_CLOSE_IDLE_S 60         /* backend idle after our SHUT_WR before we close it */
#define CLIENT_FIN_WAIT_S 30                /* backend gone, all sent: wait this long for the node's FIN */

/* ---- configuration (main.c fills it, read-only afterwards) -------------- */

enum client_log_level {
    CLIENT_LOG_ERROR = 0,
    CLIENT_LOG_WARN = 1,
    CLIENT_LOG_INFO = 2,
    CLIENT_LOG_DEBUG = 3,
};

/* A parsed ws://, wss://, http:// or https:// URL. */
struct client_url {
    int tls;                        /* wss:// or https:// */
    char host[256];                 /* host name or address, without [] for IPv6 */
    int port;                       /* explicit or 80/443 */
    char authority[CLIENT_MAX_URL]; /* Host header value: host[:port] as written */
    char path[CLIENT_MAX_URL];      /* "/" when the URL has none; query kept */
};

struct client_config {
    struct client_url server;         /* <server-url> */
    char server_text[CLIENT_MAX_URL]; /* <server-url> as given, for messages */
    const char *id;                   /* <id>, validated */
    int target_port;                  /* <target-port>, 1..65535 */
    const char *token;                /* --token, or NULL: tokens come on stdin */
    const char *out_file;             /* --out-file, or NULL */
    const char *ca_file;              /* --ca, or NULL */
    enum client_log_level log_level;
};

/* The configuration, set once by main() before the loop starts. */
extern const struct client_config *client_cfg;

/* ---- log sink (log.c) ---------------------------------------------------- */

/* Whether a message at level would be written; check before formatting costly
 * arguments. */
int client_log_enabled(enum client_log_level level);

/* Writes one line "<time> <level> <message>" to stderr, when level is enabled.
 * Never pass a token in the arguments. */
void client_log(enum client_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Routes libwebsockets' own log lines into the sink (errors and warnings at
 * debug level only: lws reports ordinary events such as a refused connection
 * as errors, and whclient reports those itself). */
void client_log_setup_lws(enum client_log_level level);

#define CLIENT_ERROR(...) client_log(CLIENT_LOG_ERROR, __VA_ARGS__)
#define CLIENT_WARN(...) client_log(CLIENT_LOG_WARN, __VA_ARGS__)
#define CLIENT_INFO(...) client_log(CLIENT_LOG_INFO, __VA_ARGS__)
#define CLIENT_DEBUG(...)                                                                                    \
    do {                                                                                                     \
        if (client_log_enabled(CLIENT_LOG_DEBUG))                                                            \
            client_log(CLIENT_LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

/* ---- pure helpers (util.c) ----------------------------------------------- */

/* Parses a server URL (ws, wss, http, https; no user info, no fragment) into
 * *out; its host[:port] is read by util_hostport_parse(). Returns 0, or -1
 * with a static message in *why. */
int client_url_parse(const char *text, struct client_url *out, const char **why);

/* Whether tok can be sent as "Authorization: Bearer <tok>": 1..CLIENT_MAX_TOKEN
 * characters of [A-Za-z0-9_.-] (the servers' own pattern). */
int client_token_valid(const char *tok, size_t len);

/* Parses a TCP port (NUL-terminated) as util_port_parse() does: 1..65535 in
 * decimal, no sign, no leading zero. Returns it or -1. */
int client_port_parse(const char *s);

/* The reconnect delay before attempt n (0-based): full jitter,
 * random(0, min(cap, base * 1.5^n)) with base 500 ms and cap 60 s. r is a
 * uniform random number in [0, 1]. Returns milliseconds. */
int64_t client_backoff_ms(unsigned n, double r);

/* A uniform random number in [0, 1] (OpenSSL's generator). */
double client_random01(void);

/* ---- the node's answer to the registration (handshake.c, pure) ---------- */

/* What the handshake response says. Strings are printable ASCII,
 * NUL-terminated, "" when absent. */
struct client_hs_result {
    int status;                       /* the HTTP status */
    int err;                          /* 0: a valid WebSocket upgrade; else a negative enum ws_err
                                       * (WS_E_BAD_STATUS when status is not 101) */
    const char *why;                  /* err != 0: why, a static string for the log; else NULL */
    int ext;                          /* 101 with X-Whtunnel-Ext: 1 (this project's extensions) */
    char url[CLIENT_MAX_URL];         /* 101: X-Websocktunnel-Client-Url, else X-Webhooktunnel-Client-Url */
    char refusal[CLIENT_MAX_REFUSAL]; /* 401: error_description="..." of WWW-Authenticate (RFC 6750) */
};

/* Checks a response to the upgrade request: status, its n header fields
 * (names case-insensitive, values may carry blanks; hdrs may be NULL when n is
 * 0) and key, the NUL-terminated Sec-WebSocket-Key we sent. A 101 must pass
 * ws_check_response() and carry no Content-Length or Transfer-Encoding
 * (WS_E_NOT_UPGRADE); only then are the URL and the extension flag read.
 * Fills *out; never fails. */
void client_hs_check(int status, const struct ws_header *hdrs, size_t n, const char *key,
                     struct client_hs_result *out);

/* The error_description="..." parameter of a WWW-Authenticate value (len
 * bytes, not NUL-terminated), up to its closing quote, as printable ASCII
 * truncated to cap - 1 bytes, into out[cap] (cap >= 1); "" if there is none
 * or it is not closed. */
void client_refusal_parse(const char *value, size_t len, char *out, size_t cap);

/* ---- the client state (tunnel.c owns it; backend.c reads a few fields) --- */

/* Tunnel states; transitions only through tunnel.c's set_state(), which checks
 * them against the table documented in docs/client.md. */
enum client_state {
    CLIENT_INIT,       /* before client_start() */
    CLIENT_WAIT_TOKEN, /* no usable token: waiting for a line on stdin */
    CLIENT_CONNECTING, /* dialing / WebSocket handshake in progress */
    CLIENT_UP,         /* registered: the mux session runs */
    CLIENT_BACKOFF,    /* waiting before the next attempt */
    CLIENT_STOPPING,   /* SIGINT/SIGTERM or a fatal error: no more attempts */
};

struct client_backend;
TAILQ_HEAD(client_backend_list, client_backend);

struct client {
    struct lws_context *ctx;
    enum client_state state;
    int exit_code; /* requested exit status once stopping */

    /* the WebSocket and its session */
    struct lws *ws;                   /* current WebSocket wsi, or NULL */
    struct mux_session *mux;          /* the session while UP, else NULL */
    int ext;                          /* the node confirmed X-Whtunnel-Ext: 1 */
    int http_status;                  /* status of the last handshake response, 0 if none */
    char tls_error[160];              /* why the node's certificate was refused, "" if it was not */
    char refusal[CLIENT_MAX_REFUSAL]; /* a 401's reason (WWW-Authenticate error_description), "" if none */
    const char *hs_why;               /* why a response was refused (a static string), or NULL */
    int ws_closing;                   /* we asked the WebSocket to close (drain after GOAWAY) */
    int draining;                     /* the node sent GOAWAY: finish the streams, then reconnect */
    int64_t drain_deadline_ms;
    int close_code;                       /* close code the node sent, 0 if none */
    char pending_url[CLIENT_MAX_URL];     /* client URL from the 101, printed once UP */
    int rx_paused;                        /* WebSocket reads stopped: too many unconsumed bytes */
    struct ws_parser wsp;                 /* frames from the node (mux/ws.h), reassembles messages */
    char ws_key[25];                      /* the Sec-WebSocket-Key of the current attempt */
    int peer_closed;                      /* the node sent a close frame: echo it, then hang up */
    int close_sent;                       /* our close frame went out: wait for the node's */
    uint8_t pong[WS_MAX_CONTROL_PAYLOAD]; /* a ping's payload to answer, when pong_pending */
    size_t pong_len;
    int pong_pending;
    int ping_due;             /* keep-alive: a ping is to be sent */
    int64_t last_pong_ms;     /* keep-alive: when the connection was last confirmed */
    uint8_t *tx;              /* LWS_PRE + CLIENT_TX_BATCH: frames to the node, written together */
    uint8_t keys[1024];       /* masking keys, 4 bytes each, drawn from OpenSSL 1 KiB at a time */
    size_t keys_left;         /* unused bytes at the end of keys[] (0: draw again) */
    int64_t up_since_ms;      /* when the current session came up */
    char url[CLIENT_MAX_URL]; /* the client URL last printed */

    /* reconnects */
    unsigned attempt;  /* consecutive failed attempts */
    unsigned replaced; /* sessions in a row that another registration of the id replaced */
    lws_sorted_usec_list_t sul_retry, sul_mux, sul_stdin, sul_drain, sul_ping;

    /* tokens */
    char token[CLIENT_MAX_TOKEN + 1];
    int have_token;                  /* token[] holds a usable token */
    int token_rejected;              /* the node answered 401 to token[] */
    unsigned token_gen;              /* bumped by every new token */
    unsigned dial_gen;               /* token_gen of the token the current attempt sent */
    int stdin_open;                  /* tokens may still come on stdin */
    char line[CLIENT_MAX_TOKEN + 2]; /* partial stdin line */
    size_t line_len;
    int line_overflow; /* discarding the rest of an over-long line */

    /* backends */
    struct client_backend_list backends;
    unsigned nbackends;
    struct client_backend *gather; /* backends with data gathered from the read being handled */
    const uint8_t *rx_lo, *rx_hi;  /* that read's buffer, while it is handled */
};

/* Creates the client state for the lws context ctx (not yet connected).
 * Returns NULL on allocation failure. */
struct client *client_new(struct lws_context *ctx);

/* Starts: takes the first token (from --token or stdin) and dials. */
void client_start(struct client *c);

/* Stops for good (exit status code): no reconnects, no new timers; the main
 * loop ends. lws_context_destroy() then closes every connection. */
void client_stop(struct client *c, int code);

/* Frees what is left; call after lws_context_destroy(). */
void client_free(struct client *c);

/* The lws protocol callback for the WebSocket to the node; as protocols[0] it
 * also receives every wsi's final WSI_DESTROY. */
int client_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

/* ---- the WebSocket to the node (wsconn.c) --------------------------------- */

/* CLIENT_APPEND_HANDSHAKE_HEADER: adds the upgrade fields (with a fresh
 * Sec-WebSocket-Key, kept in c->ws_key), the token and the id. 0 or -1. */
int client_wsconn_headers(struct client *c, struct lws *wsi, unsigned char **p, unsigned char *end);

/* ESTABLISHED_CLIENT_HTTP: reads the response (client_hs_check) into
 * c->http_status, c->refusal, c->hs_why and, for a valid 101, c->ext and
 * c->pending_url. Returns 0 for a valid upgrade, else -1. */
int client_wsconn_response(struct client *c, struct lws *wsi);

/* The session came up: starts the frame parser and the keep-alive (ping after
 * 20 s without a pong, hang up after 60 s). */
void client_wsconn_start(struct client *c);

/* The connection is gone: stops the keep-alive, frees the parser. */
void client_wsconn_stop(struct client *c);

/* RECEIVE_CLIENT_HTTP: pulls what lws has read (client_wsconn_rx gets it). */
int client_wsconn_readable(struct client *c, struct lws *wsi);

/* RECEIVE_CLIENT_HTTP_READ: parses len bytes of frames, feeds messages to the
 * session, answers pings, handles the close. Returns -1 to hang up. (The
 * caller then sends what the frames carried for local ports and pauses
 * reading above CLIENT_RX_PAUSE.) */
int client_wsconn_rx(struct client *c, struct lws *wsi, uint8_t *in, size_t len);

/* CLIENT_HTTP_WRITEABLE: writes one frame: a due control frame (close, pong,
 * ping) or the session's next frame. Returns -1 to hang up. (The caller
 * re-arms the session's timer after this and client_wsconn_rx.) */
int client_wsconn_writeable(struct client *c, struct lws *wsi);

/* Called by backend.c after it consumed stream data: resumes reading the
 * WebSocket once the session's unconsumed bytes fell below CLIENT_RX_RESUME. */
void client_rx_check(struct client *c);

/* Called by backend.c after a mux call that may change the session's
 * deadlines (reset, close): re-arms the mux timer. */
void client_timer_update(struct client *c);

/* ---- backends: one raw TCP connection per stream (backend.c) ------------- */

/* Accepts stream st of client c and starts connecting it to
 * 127.0.0.1:<target port>. Refuses it (reset) when CLIENT_MAX_BACKENDS are
 * open. Called from the mux stream_incoming_cb. */
void client_backend_open(struct client *c, struct mux_stream *st);

/* The mux stream callbacks for accepted streams (ud is the backend). */
void client_backend_data_cb(struct mux_stream *st, const uint8_t *data, size_t len, void *ud);
void client_backend_eof_cb(struct mux_stream *st, void *ud);
/* Sends the data for local ports gathered while a read from the node (at
 * c->rx_lo .. c->rx_hi) was handled: call it before that buffer goes. */
void client_backend_flush(struct client *c);
void client_backend_writable_cb(struct mux_stream *st, void *ud);
void client_backend_closed_cb(struct mux_stream *st, int err, void *ud);

/* The lws protocol callback for backend connections. */
int client_backend_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                            size_t len);

/* WSI_DESTROY for a backend wsi (forwarded by client_ws_callback). */
void client_backend_wsi_destroyed(struct client *c, struct lws *wsi);

/* The client is stopping: detaches every backend from lws (the context's
 * destruction closes the sockets) and frees those whose wsi is gone. */
void client_backend_stop_all(struct client *c);

#define CLIENT_WS_PROTOCOL "whclient-ws"
#define CLIENT_RAW_PROTOCOL "whclient-backend"

#endif
