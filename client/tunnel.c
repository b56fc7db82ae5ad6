/* whclient: the WebSocket to the node, the mux session on it, reconnects with
 * backoff, and tokens read from stdin. The state table is in docs/client.md.
 *
 * lws facts this file relies on (libwebsockets 4.1, checked in its source):
 * - request headers are added in CLIENT_APPEND_HANDSHAKE_HEADER;
 * - the handshake's HTTP status is readable in ESTABLISHED_CLIENT_HTTP (called
 *   for ws clients before the 101 check) and still in CONNECTION_ERROR;
 * - custom response headers are readable only in CLIENT_FILTER_PRE_ESTABLISH;
 * - every wsi ends with WSI_DESTROY on protocols[0] (this callback), even when
 *   neither CONNECTION_ERROR nor CLIENT_CLOSED was delivered.
 */
#include "client/client.h"
#include "mux/ws.h"

#include <errno.h>
#include <openssl/rand.h>
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

/* Keep-alive: ping after 20 s without a pong, hang up after 60 s. */
static const lws_retry_bo_t keepalive = {
    .secs_since_valid_ping = 20,
    .secs_since_valid_hangup = 60,
};

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
    c->rx_in_msg = 0;
    c->rx_len = 0;
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
    c->rx_in_msg = 0;
    c->rx_len = 0;
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

/* Keeps the reason of a 401 from its WWW-Authenticate header (RFC 6750:
 * Bearer error="invalid_token", error_description="..."), which the node
 * fills with what was wrong with the token and a hint. */
static void read_refusal(struct client *c, struct lws *wsi)
{
    char h[512];
    c->refusal[0] = '\0';
    if (lws_hdr_copy(wsi, h, sizeof h, WSI_TOKEN_HTTP_WWW_AUTHENTICATE) <= 0)
        return;
    const char *d = strstr(h, "error_description=\"");
    if (!d)
        return;
    d += strlen("error_description=\"");
    const char *end = strchr(d, '"');
    if (!end)
        return;
    size_t n = (size_t)(end - d) < sizeof c->refusal - 1 ? (size_t)(end - d) : sizeof c->refusal - 1;
    for (size_t i = 0; i < n; i++) /* printable ASCII only: it goes to the log */
        c->refusal[i] = d[i] >= 0x20 && d[i] < 0x7f ? d[i] : '?';
    c->refusal[n] = '\0';
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
    else if (status < 300 || status == 404 || status == 405)
        /* a node answers a registration 101, 401, 400 or 5xx: this is something else */
        CLIENT_ERROR("%s answered the registration with HTTP %d instead of switching to a WebSocket: it does "
                     "not look like a webhooktunnel node (check the URL, its scheme and its path)",
                     client_cfg->server_text, status);
    else if (status)
        CLIENT_ERROR("handshake with %s failed: HTTP %d (%s)", client_cfg->server_text, status, why);
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
    i.local_protocol_name = CLIENT_WS_PROTOCOL;
    i.retry_and_idle_policy = &keepalive;
    i.pwsi = &c->ws;

    c->http_status = 0;
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

static int append_headers(struct client *c, struct lws *wsi, unsigned char **p, unsigned char *end)
{
    char auth[sizeof "Bearer " + CLIENT_MAX_TOKEN];
    const unsigned char *id = (const unsigned char *)client_cfg->id;
    int idlen = (int)strlen(client_cfg->id), rc;
    int n = snprintf(auth, sizeof auth, "Bearer %s", c->token);
    rc = lws_add_http_header_by_name(wsi, (const unsigned char *)"Authorization:", (unsigned char *)auth, n,
                                     p, end) ||
         lws_add_http_header_by_name(wsi, (const unsigned char *)"X-Websocktunnel-Id:", id, idlen, p, end) ||
         lws_add_http_header_by_name(wsi, (const unsigned char *)"X-Webhooktunnel-Id:", id, idlen, p, end) ||
         lws_add_http_header_by_name(
             wsi, (const unsigned char *)"X-Whtunnel-Ext:", (const unsigned char *)"1", 1, p, end);
    explicit_bzero(auth, sizeof auth);
    if (rc)
        CLIENT_ERROR("the handshake headers do not fit in lws's buffer");
    return rc ? -1 : 0;
}

/* Copies a custom response header into buf as printable ASCII ("" if absent). */
static void read_header(struct lws *wsi, const char *name, char *buf, size_t cap)
{
    int n = lws_hdr_custom_copy(wsi, buf, (int)cap, name, (int)strlen(name));
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    for (int i = 0; i < n && buf[i]; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
            buf[i] = '?';
}

static void filter_pre_establish(struct client *c, struct lws *wsi)
{
    char ext[8];
    read_header(wsi, "x-whtunnel-ext:", ext, sizeof ext);
    c->ext = !strcmp(ext, "1");
    read_header(wsi, "x-websocktunnel-client-url:", c->pending_url, sizeof c->pending_url);
    if (!c->pending_url[0])
        read_header(wsi, "x-webhooktunnel-client-url:", c->pending_url, sizeof c->pending_url);
}

static int on_receive(struct client *c, struct lws *wsi, const uint8_t *in, size_t len)
{
    const uint8_t *msg = in;
    size_t mlen = len;
    int final, rc;

    if (!c->mux || wsi != c->ws)
        return 0;
    if (!c->rx_in_msg) {
        c->rx_in_msg = 1;
        c->rx_binary = lws_frame_is_binary(wsi);
        c->rx_len = 0;
    }
    final = lws_is_final_fragment(wsi);
    if (c->rx_binary && !(final && c->rx_len == 0)) { /* a fragment: reassemble */
        if (len > CLIENT_MAX_MESSAGE - c->rx_len) {
            CLIENT_ERROR("the node sent a message larger than %d bytes: closing", CLIENT_MAX_MESSAGE);
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
            return -1;
        }
        if (!c->rx && !(c->rx = malloc(CLIENT_MAX_MESSAGE))) {
            CLIENT_ERROR("out of memory reassembling a message: closing");
            return -1;
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
        msg = c->rx;
        mlen = c->rx_len;
    }
    if (!final)
        return 0;
    c->rx_in_msg = 0;
    c->rx_len = 0;
    if (!c->rx_binary) {
        CLIENT_DEBUG("ignoring a text message from the node");
        return 0;
    }
    rc = mux_session_feed(c->mux, msg, mlen, util_now_ms());
    if (rc < 0) {
        CLIENT_ERROR("protocol error from the node (%s): closing the connection", mux_strerror(rc));
        lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, NULL, 0);
        return -1;
    }
    client_timer_update(c);
    if (!c->rx_paused && mux_session_buffered(c->mux) > CLIENT_RX_PAUSE) {
        c->rx_paused = 1;
        CLIENT_DEBUG("pausing WebSocket reads: %llu bytes not yet taken by the local port",
                     (unsigned long long)mux_session_buffered(c->mux));
        lws_rx_flow_control(wsi, 0);
    }
    return 0;
}

/* Sends one binary message: the frame is made and masked here (mux/ws.c
 * masks 16 bytes per step; libwebsockets masks one byte at a time, which
 * made it whclient's bottleneck) and handed to libwebsockets as raw bytes.
 * The mask key is random per frame, as RFC 6455 wants, from OpenSSL's
 * user-space generator. payload has LWS_PRE bytes of room before it. */
static int write_frame(struct lws *wsi, uint8_t *payload, size_t n)
{
    uint8_t key[4], hdr[WS_MAX_HEADER];
    if (RAND_bytes(key, sizeof key) != 1)
        return -1;
    size_t h = ws_encode_header(hdr, 1, WS_OP_BINARY, n, key);
    ws_mask(payload, n, key, 0);
    memcpy(payload - h, hdr, h);
    return lws_write(wsi, payload - h, n + h, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

static int on_writeable(struct client *c, struct lws *wsi)
{
    uint8_t *frame = c->tx + LWS_PRE;
    size_t n;

    if (wsi != c->ws)
        return 0;
    if (c->ws_closing) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY, NULL, 0);
        return -1;
    }
    if (!c->mux)
        return 0;
    n = mux_session_next(c->mux, frame, TX_CAP);
    if (n > 0 && write_frame(wsi, frame, n) < 0) {
        CLIENT_ERROR("writing to the node failed");
        return -1;
    }
    if (c->mux && mux_session_has_output(c->mux))
        lws_callback_on_writable(wsi);
    else if (n > 0 && c->mux)
        /* The session re-arms output_cb only once next() has returned 0: do
         * that now, or output queued later would never ask for a write. */
        (void)mux_session_next(c->mux, frame, TX_CAP);
    client_timer_update(c);
    return 0;
}

int client_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    struct client *c = ctx ? lws_context_user(ctx) : NULL;
    if (!c)
        return 0;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return append_headers(c, wsi, (unsigned char **)in, (unsigned char *)*(unsigned char **)in + len);
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        c->http_status = (int)lws_http_client_http_response(wsi);
        if (c->http_status == 401)
            read_refusal(c, wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH: filter_pre_establish(c, wsi); return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c->state != CLIENT_CONNECTING)
            return -1;
        return session_up(c, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (wsi == c->ws || c->state == CLIENT_CONNECTING)
            handshake_failed(c, wsi, in && len ? (const char *)in : "connection failed");
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: return on_receive(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE: return on_writeable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (wsi == c->ws && len >= 2)
            c->close_code = ((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1];
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
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
    c->tx = malloc(LWS_PRE + TX_CAP);
    c->tcp_tx = malloc(LWS_PRE + CLIENT_TCP_CHUNK);
    if (!c->tx || !c->tcp_tx) {
        free(c->tx);
        free(c->tcp_tx);
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
    free(c->rx);
    free(c->tx);
    free(c->tcp_tx);
    free(c);
}
