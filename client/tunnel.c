/* whclient: the WebSocket to the node, the mux session on it, reconnects with
 * backoff, and tokens read from stdin. The state table is in docs/client.md.
 *
 * The connection itself (an lws HTTP client whose 101 response becomes the
 * WebSocket, framed by mux/ws.c) is wsconn.c's.
 *
 * lws facts this file relies on (libwebsockets 4.1, checked in its source):
 * - request headers are added in CLIENT_APPEND_HANDSHAKE_HEADER;
 * - the handshake's HTTP status is readable in ESTABLISHED_CLIENT_HTTP and
 *   still in CONNECTION_ERROR;
 * - every wsi ends with WSI_DESTROY on protocols[0] (this callback), even when
 *   neither CONNECTION_ERROR nor CLOSED_CLIENT_HTTP was delivered.
 */
#include "client/client.h"

#include <errno.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TX_CAP (MUX_DEFAULT_MAX_FRAME + MUX_HEADER_LEN)
#define STDIN_POLL_US ((lws_usec_t)200 * 1000)
#define STDIN_READS_PER_TICK 16
#define UP_RESETS_BACKOFF_MS 60000
#define DRAIN_MAX_MS 30000
#define DRAIN_CHECK_US ((lws_usec_t)250 * 1000)

static const char *const state_names[] = {
    [CLIENT_INIT] = "init", [CLIENT_WAIT_TOKEN] = "wait-token", [CLIENT_CONNECTING] = "connecting",
    [CLIENT_UP] = "up",     [CLIENT_BACKOFF] = "backoff",       [CLIENT_STOPPING] = "stopping",
};

#define B(s) (1u << (s))
static const unsigned allowed[] = {
    [CLIENT_INIT] = B(CLIENT_WAIT_TOKEN) | B(CLIENT_CONNECTING) | B(CLIENT_STOPPING),
    [CLIENT_WAIT_TOKEN] = B(CLIENT_CONNECTING) | B(CLIENT_STOPPING),
    [CLIENT_CONNECTING] = B(CLIENT_UP) | B(CLIENT_BACKOFF) | B(CLIENT_WAIT_TOKEN) | B(CLIENT_STOPPING),
    [CLIENT_UP] = B(CLIENT_BACKOFF) | B(CLIENT_STOPPING),
    [CLIENT_BACKOFF] = B(CLIENT_CONNECTING) | B(CLIENT_WAIT_TOKEN) | B(CLIENT_STOPPING),
    [CLIENT_STOPPING] = 0,
};
#undef B

static void set_state(struct client *c, enum client_state to)
{
    if (c->state == to)
        return;
    if (!(allowed[c->state] & (1u << to))) {
        CLIENT_ERROR("internal error: state %s -> %s", state_names[c->state], state_names[to]);
        abort();
    }
    CLIENT_DEBUG("state %s -> %s", state_names[c->state], state_names[to]);
    c->state = to;
}

static void tunnel_connect(struct client *c);
static void stdin_cb(lws_sorted_usec_list_t *sul);

/* ---- timers ---------------------------------------------------------------- */

static void mux_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct client *c = lws_container_of(sul, struct client, sul_mux);
    if (c->mux)
        mux_session_tick(c->mux, util_now_ms());
    client_timer_update(c);
}

void client_timer_update(struct client *c)
{
    int64_t deadline, delay;
    if (!c->mux || c->state == CLIENT_STOPPING) {
        lws_sul_cancel(&c->sul_mux);
        return;
    }
    deadline = mux_session_next_deadline(c->mux);
    if (deadline < 0) {
        lws_sul_cancel(&c->sul_mux);
        return;
    }
    delay = deadline - util_now_ms();
    if (delay < 0)
        delay = 0;
    lws_sul_schedule(c->ctx, 0, &c->sul_mux, mux_timer_cb, (lws_usec_t)delay * LWS_US_PER_MS);
}

static void retry_cb(lws_sorted_usec_list_t *sul)
{
    struct client *c = lws_container_of(sul, struct client, sul_retry);
    if (c->state != CLIENT_BACKOFF)
        return;
    if (!c->have_token || c->token_rejected) {
        set_state(c, CLIENT_WAIT_TOKEN);
        return;
    }
    tunnel_connect(c);
}

static void schedule_retry(struct client *c, int now)
{
    int64_t delay = now ? 0 : client_backoff_ms(c->attempt, client_random01());
    c->attempt++;
    set_state(c, CLIENT_BACKOFF);
    CLIENT_WARN("reconnecting in %.1f s (attempt %u)", (double)delay / 1000.0, c->attempt);
    lws_sul_schedule(c->ctx, 0, &c->sul_retry, retry_cb, (lws_usec_t)delay * LWS_US_PER_MS);
}

/* Another registration of our id took the session. Two clients with one id
 * would take it from each other for ever: back off more each time, and say
 * plainly what is going on once it repeats. */
static void replaced(struct client *c, int64_t up_ms)
{
    c->replaced++;
    if (c->attempt < 2 * c->replaced)
        c->attempt = 2 * c->replaced;
    if (c->replaced < 3)
        CLIENT_WARN("replaced by another registration of %s after %.1f s (is another client using this id?)",
                    client_cfg->id, (double)up_ms / 1000.0);
    else
        CLIENT_ERROR(
            "replaced by another registration of %s %u times in a row: another client keeps registering "
            "this id and each takes it from the other; give each client its own id",
            client_cfg->id, c->replaced);
    schedule_retry(c, 0);
}

/* Closes the WebSocket from our side (a drain after GOAWAY): the close frame
 * goes out from the next WRITEABLE. */
static void close_ws(struct client *c)
{
    if (!c->ws || c->ws_closing)
        return;
    c->ws_closing = 1;
    lws_callback_on_writable(c->ws);
}

static void drain_cb(lws_sorted_usec_list_t *sul)
{
    struct client *c = lws_container_of(sul, struct client, sul_drain);
    uint32_t n;
    if (!c->mux || !c->draining)
        return;
    n = mux_session_stream_count(c->mux);
    if (n == 0 || util_now_ms() >= c->drain_deadline_ms) {
        if (n)
            CLIENT_WARN("drain: %u stream(s) still open after %d s: closing them", n, DRAIN_MAX_MS / 1000);
        close_ws(c);
        return;
    }
    lws_sul_schedule(c->ctx, 0, &c->sul_drain, drain_cb, DRAIN_CHECK_US);
}

/* ---- tokens ----------------------------------------------------------------- */

static void new_token(struct client *c, const char *tok, size_t len)
{
    memcpy(c->token, tok, len);
    c->token[len] = '\0';
    c->have_token = 1;
    c->token_rejected = 0;
    c->token_gen++;
    CLIENT_INFO("new token received on stdin (%zu bytes)", len);
    if (c->state == CLIENT_WAIT_TOKEN)
        tunnel_connect(c);
}

/* One complete line from stdin (without its newline). */
static void stdin_line(struct client *c, char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    while (len > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    if (len == 0)
        return;
    if (!client_token_valid(line, len)) {
        CLIENT_ERROR("ignoring a line of %zu bytes on stdin: not a token (expected 1-%d characters of "
                     "A-Z a-z 0-9 _ . -)",
                     len, CLIENT_MAX_TOKEN);
        return;
    }
    new_token(c, line, len);
}

static void stdin_bytes(struct client *c, const char *buf, size_t n)
{
    for (size_t i = 0; i < n && c->state != CLIENT_STOPPING; i++) {
        char ch = buf[i];
        if (ch == '\n') {
            if (c->line_overflow)
                CLIENT_ERROR("ignoring a line longer than %d bytes on stdin", CLIENT_MAX_TOKEN);
            else
                stdin_line(c, c->line, c->line_len);
            c->line_len = 0;
            c->line_overflow = 0;
        } else if (c->line_len < sizeof c->line - 1) {
            c->line[c->line_len++] = ch;
        } else {
            c->line_overflow = 1;
        }
    }
}

static void stdin_eof(struct client *c)
{
    c->stdin_open = 0;
    if (c->line_len > 0 && !c->line_overflow) /* a last line without newline still counts */
        stdin_line(c, c->line, c->line_len);
    c->line_len = 0;
    explicit_bzero(c->line, sizeof c->line);
    if (c->state == CLIENT_STOPPING)
        return;
    if (c->state == CLIENT_WAIT_TOKEN) {
        CLIENT_ERROR("stdin is closed and there is no usable token: give one with --token or on stdin");
        client_stop(c, 1);
        return;
    }
    CLIENT_INFO("stdin is closed: no more tokens will be read");
}

/* Reads what stdin has without blocking: poll() with a zero timeout, then one
 * read() per readable event, so stdin's file flags (shared with the parent
 * process) are left alone. */
static void stdin_read(struct client *c)
{
    char buf[4096];
    for (int i = 0; i < STDIN_READS_PER_TICK && c->stdin_open && c->state != CLIENT_STOPPING; i++) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&pfd, 1, 0);
        if (r < 0 && errno == EINTR)
            return;
        if (r == 0)
            return;
        if (r < 0 || (pfd.revents & POLLNVAL)) {
            stdin_eof(c);
            return;
        }
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            return;
        if (n <= 0) {
            if (n < 0)
                CLIENT_WARN("reading stdin: %s", strerror(errno));
            stdin_eof(c);
            return;
        }
        stdin_bytes(c, buf, (size_t)n);
    }
    explicit_bzero(buf, sizeof buf);
}

static void stdin_cb(lws_sorted_usec_list_t *sul)
{
    struct client *c = lws_container_of(sul, struct client, sul_stdin);
    if (c->state == CLIENT_STOPPING || !c->stdin_open)
        return;
    stdin_read(c);
    if (c->stdin_open && c->state != CLIENT_STOPPING)
        lws_sul_schedule(c->ctx, 0, &c->sul_stdin, stdin_cb, STDIN_POLL_US);
}

/* ---- the mux session -------------------------------------------------------- */

static void incoming_cb(struct mux_session *s, struct mux_stream *st, void *ud)
{
    struct client *c = ud;
    (void)s;
    client_backend_open(c, st);
}

static void output_cb(struct mux_session *s, void *ud)
{
    struct client *c = ud;
    (void)s;
    if (c->ws)
        lws_callback_on_writable(c->ws);
}

static void goaway_cb(struct mux_session *s, uint32_t reason, void *ud)
{
    struct client *c = ud;
    if (c->draining)
        return;
    c->draining = 1;
    c->drain_deadline_ms = util_now_ms() + DRAIN_MAX_MS;
    CLIENT_INFO("the node is going away (GOAWAY, reason %u): finishing %u stream(s), then reconnecting",
                reason, mux_session_stream_count(s));
    lws_sul_schedule(c->ctx, 0, &c->sul_drain, drain_cb, 0);
}

void client_rx_check(struct client *c)
{
    if (c->rx_paused && c->mux && c->ws && mux_session_buffered(c->mux) <= CLIENT_RX_RESUME) {
        c->rx_paused = 0;
        CLIENT_DEBUG("reading the WebSocket again (%llu bytes buffered)",
                     (unsigned long long)mux_session_buffered(c->mux));
        lws_rx_flow_control(c->ws, 1);
    }
}

/* A read from the node: its frames handled (wsconn.c), then what they
 * carried for local ports sent, one sendmsg() per backend (backend.c), then
 * reading paused while the local ports are more than CLIENT_RX_PAUSE behind. */
static int receive(struct client *c, struct lws *wsi, uint8_t *in, size_t len)
{
    c->rx_lo = in;
    c->rx_hi = in + len;
    int rc = client_wsconn_rx(c, wsi, in, len);
    client_backend_flush(c);
    c->rx_lo = c->rx_hi = NULL; /* lws reuses the buffer */
    if (rc == 0 && wsi == c->ws && c->mux && !c->rx_paused &&
        mux_session_buffered(c->mux) > CLIENT_RX_PAUSE) {
        c->rx_paused = 1;
        CLIENT_DEBUG("pausing WebSocket reads: %llu bytes not yet taken by the local port",
                     (unsigned long long)mux_session_buffered(c->mux));
        lws_rx_flow_control(wsi, 0);
    }
    return rc;
}

static void write_out_file(const char *url)
{
    FILE *f = fopen(client_cfg->out_file, "w");
    if (!f || fputs(url, f) == EOF || fclose(f) != 0) {
        CLIENT_ERROR("cannot write the client URL to %s: %s", client_cfg->out_file, strerror(errno));
        return;
    }
    CLIENT_INFO("wrote the client URL to %s", client_cfg->out_file);
}

static void publish_url(struct client *c)
{
    if (!c->pending_url[0]) {
        CLIENT_WARN("the node sent no client URL (x-websocktunnel-client-url)");
        return;
    }
    if (!strcmp(c->pending_url, c->url))
        return;
    snprintf(c->url, sizeof c->url, "%s", c->pending_url);
    printf("%s\n", c->url);
    fflush(stdout);
    if (client_cfg->out_file)
        write_out_file(c->url);
}

static int session_up(struct client *c, struct lws *wsi)
{
    struct mux_config cfg;
    struct mux_callbacks cbs = {
        .stream_incoming_cb = incoming_cb,
        .stream_data_cb = client_backend_data_cb,
        .stream_eof_cb = client_backend_eof_cb,
        .stream_writable_cb = client_backend_writable_cb,
        .stream_closed_cb = client_backend_closed_cb,
        .goaway_cb = goaway_cb,
        .output_cb = output_cb,
    };
    mux_config_defaults(&cfg, 0);
    cfg.ext = c->ext;
    c->mux = mux_session_new(&cfg, &cbs, c);
    if (!c->mux) {
        CLIENT_ERROR("out of memory creating the session");
        return -1;
    }
    c->ws = wsi;
    c->up_since_ms = util_now_ms();
    client_wsconn_start(c);
    c->rx_paused = 0;
    c->ws_closing = c->draining = 0;
    c->close_code = 0;
    set_state(c, CLIENT_UP);
    CLIENT_INFO("registered as %s at %s (%s protocol)", client_cfg->id, client_cfg->server_text,
                c->ext ? "extended" : "original");
    publish_url(c);
    return 0;
}

/* The WebSocket is gone (closed, failed, or destroyed). */
static void ws_lost(struct client *c, const char *why)
{
    enum client_state was = c->state;
    int drained = c->draining && c->ws_closing;
    c->ws = NULL;
    lws_sul_cancel(&c->sul_mux);
    lws_sul_cancel(&c->sul_drain);
    client_wsconn_stop(c);
    if (c->mux) {
        const struct mux_stats *ms = mux_session_stats(c->mux);
        CLIENT_DEBUG("session stats: %llu streams accepted, %llu closed, %u open; frames in %llu, out %llu "
                     "(%llu dropped, %llu late); data in %llu, out %llu bytes",
                     (unsigned long long)ms->streams_accepted, (unsigned long long)ms->streams_closed,
                     mux_session_stream_count(c->mux), (unsigned long long)ms->frames_in,
                     (unsigned long long)ms->frames_out, (unsigned long long)ms->dropped_frames,
                     (unsigned long long)ms->late_frames, (unsigned long long)ms->bytes_in,
                     (unsigned long long)ms->bytes_out);
        mux_session_abort(c->mux, MUX_E_ABORTED); /* every stream's backend is closed */
        mux_session_free(c->mux);
        c->mux = NULL;
    }
    c->rx_paused = c->ws_closing = c->draining = 0;
    if (c->state == CLIENT_STOPPING)
        return;
    if (was == CLIENT_UP) {
        int64_t up = util_now_ms() - c->up_since_ms;
        if (c->close_code == MUX_WS_CLOSE_REPLACED) {
            replaced(c, up);
            return;
        }
        c->replaced = 0;
        if (up >= UP_RESETS_BACKOFF_MS)
            c->attempt = 0;
        if (drained) {
            c->attempt = 0; /* a drain is not a failure */
            CLIENT_INFO("left the draining node after %.1f s", (double)up / 1000.0);
        } else if (c->close_code)
            CLIENT_WARN("the node closed the connection (code %d) after %.1f s", c->close_code,
                        (double)up / 1000.0);
        else
            CLIENT_WARN("connection to the node lost (%s) after %.1f s", why, (double)up / 1000.0);
        schedule_retry(c, drained);
    } else if (was == CLIENT_CONNECTING) {
        CLIENT_WARN("cannot connect to %s: %s", client_cfg->server_text, why);
        schedule_retry(c, 0);
    }
}

/* The connection or its handshake failed. */
static void handshake_failed(struct client *c, struct lws *wsi, const char *why)
{
    int status = c->http_status ? c->http_status : (int)lws_http_client_http_response(wsi);
    c->ws = NULL;
    if (c->state != CLIENT_CONNECTING)
        return;
    if (status == 401 && c->dial_gen != c->token_gen) {
        CLIENT_WARN("token rejected by the server (401); a newer one came on stdin meanwhile");
        schedule_retry(c, 1);
        return;
    }
    if (status == 401) {
        c->token_rejected = 1;
        char why_text[320];
        if (c->refusal[0])
            snprintf(why_text, sizeof why_text, "token rejected by the node (401): %s", c->refusal);
        else
            snprintf(why_text, sizeof why_text, "token rejected by the node (401)");
        if (c->stdin_open) {
            CLIENT_ERROR("%s; waiting for a new token on stdin", why_text);
            set_state(c, CLIENT_WAIT_TOKEN);
        } else {
            CLIENT_ERROR("%s; %s: exiting", why_text,
                         client_cfg->token ? "a --token token cannot be replaced"
                                           : "stdin is closed, no new token can come");
            client_stop(c, 1);
        }
        return;
    }
    if (!status && c->tls_error[0]) {
        CLIENT_ERROR("the TLS certificate of %s is not trusted: %s%s", client_cfg->server.host, c->tls_error,
                     client_cfg->ca_file ? "" : " (for a private CA, use --ca FILE)");
        schedule_retry(c, 0);
        return;
    }
    if (status == 400)
        CLIENT_ERROR("registration refused by the server (400 Bad Request): check the id and the token");
    else if ((status && status < 300 && status != 101) || status == 404 || status == 405)
        /* a node answers a registration 101, 401, 400 or 5xx: this is something else */
        CLIENT_ERROR("%s answered the registration with HTTP %d instead of switching to a WebSocket: it does "
                     "not look like a webhooktunnel node (check the URL, its scheme and its path)",
                     client_cfg->server_text, status);
    else if (status)
        CLIENT_ERROR("handshake with %s failed: HTTP %d (%s)", client_cfg->server_text, status,
                     c->hs_why ? c->hs_why : why);
    else if (client_cfg->server.tls && why && strstr(why, "SSL"))
        CLIENT_WARN("cannot connect to %s: the TLS handshake failed (%s): does that port serve TLS (a "
                    "plain one wants ws://), with a TLS version and cipher whclient has?",
                    client_cfg->server_text, why);
    else
        CLIENT_WARN("cannot connect to %s: %s", client_cfg->server_text, why);
    schedule_retry(c, 0);
}

static void tunnel_connect(struct client *c)
{
    struct lws_client_connect_info i;
    const struct client_url *u = &client_cfg->server;

    memset(&i, 0, sizeof i);
    i.context = c->ctx;
    i.address = u->host;
    i.port = u->port;
    i.ssl_connection = (u->tls ? LCCSCF_USE_SSL : 0) | LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
    i.path = u->path;
    i.host = u->authority;
    i.alpn = "http/1.1"; /* WebSocket over HTTP/2 is not what the nodes speak */
    i.method = "GET";    /* an HTTP client: wsconn.c makes it a WebSocket */
    i.local_protocol_name = CLIENT_WS_PROTOCOL;
    i.pwsi = &c->ws;

    c->http_status = 0;
    c->hs_why = NULL;
    c->dial_gen = c->token_gen;
    c->tls_error[0] = '\0';
    c->refusal[0] = '\0';
    c->ext = 0;
    c->pending_url[0] = '\0';
    set_state(c, CLIENT_CONNECTING);
    CLIENT_INFO("connecting to %s", client_cfg->server_text);
    if (!lws_client_connect_via_info(&i) && c->state == CLIENT_CONNECTING) {
        c->ws = NULL;
        CLIENT_WARN("cannot connect to %s", client_cfg->server_text);
        schedule_retry(c, 0);
    }
}

/* ---- the WebSocket callback --------------------------------------------------- */

int client_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    struct client *c = ctx ? lws_context_user(ctx) : NULL;
    int rc;
    if (!c)
        return 0;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return client_wsconn_headers(c, wsi, (unsigned char **)in,
                                     (unsigned char *)*(unsigned char **)in + len);
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        if (wsi != c->ws || c->state != CLIENT_CONNECTING || client_wsconn_response(c, wsi) < 0)
            return -1;
        return session_up(c, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (wsi == c->ws || c->state == CLIENT_CONNECTING)
            handshake_failed(c, wsi, in && len ? (const char *)in : "connection failed");
        return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: return wsi == c->ws ? client_wsconn_readable(c, wsi) : 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        rc = receive(c, wsi, in, len);
        client_timer_update(c); /* the session's deadlines may have changed */
        return rc;
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
        rc = client_wsconn_writeable(c, wsi);
        client_timer_update(c);
        return rc;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        if (wsi == c->ws)
            ws_lost(c, "closed");
        return 0;
    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        /* user: the X509_STORE_CTX, len: OpenSSL's verdict. Only note why it
         * failed; returning 0 keeps OpenSSL's verdict. */
        if (wsi == c->ws && !len && !c->tls_error[0]) {
            X509_STORE_CTX *xs = user;
            snprintf(c->tls_error, sizeof c->tls_error, "%s (certificate depth %d)",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)),
                     X509_STORE_CTX_get_error_depth(xs));
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (wsi == c->ws)
            ws_lost(c, "connection closed");
        else if (lws_get_opaque_user_data(wsi))
            client_backend_wsi_destroyed(c, wsi);
        return 0;
    default: return 0;
    }
}

/* ---- lifecycle --------------------------------------------------------------- */

struct client *client_new(struct lws_context *ctx)
{
    struct client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ctx = ctx;
    c->state = CLIENT_INIT;
    c->tx = malloc(LWS_PRE + CLIENT_TX_BATCH);
    if (!c->tx) {
        free(c);
        return NULL;
    }
    TAILQ_INIT(&c->backends);
    return c;
}

void client_start(struct client *c)
{
    if (client_cfg->token) {
        size_t n = strlen(client_cfg->token);
        memcpy(c->token, client_cfg->token, n + 1);
        c->have_token = 1;
        tunnel_connect(c);
        return;
    }
    c->stdin_open = 1;
    set_state(c, CLIENT_WAIT_TOKEN);
    CLIENT_INFO("waiting for a token on stdin");
    stdin_read(c);
    if (c->stdin_open && c->state != CLIENT_STOPPING)
        lws_sul_schedule(c->ctx, 0, &c->sul_stdin, stdin_cb, STDIN_POLL_US);
}

void client_stop(struct client *c, int code)
{
    if (c->state == CLIENT_STOPPING)
        return;
    set_state(c, CLIENT_STOPPING);
    c->exit_code = code;
    lws_sul_cancel(&c->sul_retry);
    lws_sul_cancel(&c->sul_mux);
    lws_sul_cancel(&c->sul_stdin);
    lws_sul_cancel(&c->sul_drain);
    client_backend_stop_all(c);
    lws_cancel_service(c->ctx);
}

void client_free(struct client *c)
{
    if (!c)
        return;
    if (c->mux) {
        mux_session_abort(c->mux, MUX_E_ABORTED);
        mux_session_free(c->mux);
    }
    client_backend_stop_all(c);
    explicit_bzero(c->token, sizeof c->token);
    ws_parser_free(&c->wsp);
    free(c->tx);
    free(c);
}
