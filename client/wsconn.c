/* whclient: the WebSocket to the node, framed by the project's own code.
 *
 * libwebsockets 4.1 parses a client's incoming WebSocket frames one byte at a
 * time (lws_ws_client_rx_sm), which capped uploads through the tunnel; and its
 * RAW client role cannot start TLS (4.1.6 sets up TLS before the socket
 * exists: "tls start fail"). So the connection to the node is an lws HTTP/1.1
 * client (method GET), which keeps lws's connect, TLS (system CAs, --ca,
 * SNI, ALPN) and timeouts, and reads the response head; whclient
 * adds the upgrade header fields itself, checks the 101 (client_hs_check: the
 * Sec-WebSocket-Accept, the tokens, no extension), and then reads the
 * "body" of that response, which after a 101 is the WebSocket, in bulk
 * (lws_http_client_read, up to 256 KiB per call) into mux/ws.c's ws_parse.
 * Frames out are made here too: binary messages from the mux session, pongs,
 * keep-alive pings and the close frame, each masked with a random key, one
 * frame per writeable callback, written with LWS_WRITE_RAW.
 *
 * lws facts relied on (4.1.6, lib/roles/http/client/client-http.c, ops-h1.c):
 * - a GET client gets ESTABLISHED_CLIENT_HTTP with the status and the header
 *   table (lws_hdr_copy, lws_hdr_custom_copy) for every response; returning
 *   nonzero there ends the attempt with CLIENT_CONNECTION_ERROR;
 * - a response with no Content-Length and no chunking is a body until the
 *   peer hangs up; lws signals RECEIVE_CLIENT_HTTP and lws_http_client_read()
 *   hands the bytes, those that came with the head first, to
 *   RECEIVE_CLIENT_HTTP_READ unchanged;
 * - lws writes "connection: close" in a non-pipelined GET; our
 *   "Connection: Upgrade" is a second field, and both the node and the Go
 *   servers look for the upgrade token across fields;
 * - no lws keep-alive or idle timeout applies once the response is in (the
 *   validity timer is armed only by the ws and h2 roles).
 */
#include "client/client.h"

#include <openssl/rand.h>
#include <string.h>

#define TX_CAP (MUX_DEFAULT_MAX_FRAME + MUX_HEADER_LEN)
#define PING_AFTER_MS 20000   /* ping when nothing confirmed the connection for this long */
#define HANGUP_AFTER_MS 60000 /* and hang up when nothing did for this long */
#define CLOSE_WAIT_S 5        /* after our close frame, wait this long for the node's */
#define MAX_RESPONSE_FIELDS 10

/* ---- the registration request and its answer --------------------------------------- */

static int add_header(struct lws *wsi, const char *name, const char *value, size_t len, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value,
                                       (int)len, p, end);
}

int client_wsconn_headers(struct client *c, struct lws *wsi, unsigned char **p, unsigned char *end)
{
    char auth[sizeof "Bearer " + CLIENT_MAX_TOKEN];
    uint8_t nonce[16];
    const char *id = client_cfg->id;
    int n = snprintf(auth, sizeof auth, "Bearer %s", c->token), rc;

    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        CLIENT_ERROR("no random bytes for the WebSocket key");
        return -1;
    }
    ws_client_key(nonce, c->ws_key);
    rc = add_header(wsi, "Upgrade:", "websocket", 9, p, end) ||
         add_header(wsi, "Connection:", "Upgrade", 7, p, end) ||
         add_header(wsi, "Sec-WebSocket-Key:", c->ws_key, strlen(c->ws_key), p, end) ||
         add_header(wsi, "Sec-WebSocket-Version:", "13", 2, p, end) ||
         add_header(wsi, "Authorization:", auth, (size_t)n, p, end) ||
         add_header(wsi, "X-Websocktunnel-Id:", id, strlen(id), p, end) ||
         add_header(wsi, "X-Webhooktunnel-Id:", id, strlen(id), p, end) ||
         add_header(wsi, "X-Whtunnel-Ext:", "1", 1, p, end);
    explicit_bzero(auth, sizeof auth);
    if (rc)
        CLIENT_ERROR("the handshake headers do not fit in lws's buffer");
    return rc ? -1 : 0;
}

/* Copies one response field out of lws's header table into buf and adds it
 * to h[*n] (absent fields are left out). token < 0: a custom field by name. */
static void take_field(struct lws *wsi, int token, const char *name, char *buf, size_t cap,
                       struct ws_header *h, size_t *n)
{
    int len = token >= 0 ? lws_hdr_copy(wsi, buf, (int)cap, (enum lws_token_indexes)token)
                         : lws_hdr_custom_copy(wsi, buf, (int)cap, name, (int)strlen(name));
    if (len < 0 || *n >= MAX_RESPONSE_FIELDS)
        return;
    h[*n] = (struct ws_header){
        .name = name, .name_len = strlen(name) - 1, .value = buf, .value_len = (size_t)len};
    ++*n;
}

int client_wsconn_response(struct client *c, struct lws *wsi)
{
    char upgrade[64], conn[128], accept[64], exts[256], auth[512], ext[8], url1[CLIENT_MAX_URL],
        url2[CLIENT_MAX_URL];
    struct client_hs_result r;
    struct ws_header h[MAX_RESPONSE_FIELDS];
    size_t n = 0;

    take_field(wsi, WSI_TOKEN_UPGRADE, "upgrade:", upgrade, sizeof upgrade, h, &n);
    take_field(wsi, WSI_TOKEN_CONNECTION, "connection:", conn, sizeof conn, h, &n);
    take_field(wsi, WSI_TOKEN_ACCEPT, "sec-websocket-accept:", accept, sizeof accept, h, &n);
    take_field(wsi, WSI_TOKEN_EXTENSIONS, "sec-websocket-extensions:", exts, sizeof exts, h, &n);
    take_field(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE, "www-authenticate:", auth, sizeof auth, h, &n);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
        h[n++] = (struct ws_header){.name = "content-length", .name_len = 14, .value = "", .value_len = 0};
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
        h[n++] = (struct ws_header){.name = "transfer-encoding", .name_len = 17, .value = "", .value_len = 0};
    take_field(wsi, -1, "x-whtunnel-ext:", ext, sizeof ext, h, &n);
    take_field(wsi, -1, "x-websocktunnel-client-url:", url1, sizeof url1, h, &n);
    take_field(wsi, -1, "x-webhooktunnel-client-url:", url2, sizeof url2, h, &n);
    client_hs_check((int)lws_http_client_http_response(wsi), h, n, c->ws_key, &r);
    c->http_status = r.status;
    snprintf(c->refusal, sizeof c->refusal, "%s", r.refusal);
    c->hs_why = r.why;
    if (r.err)
        return -1;
    c->ext = r.ext;
    snprintf(c->pending_url, sizeof c->pending_url, "%s", r.url);
    return 0;
}

/* ---- keep-alive --------------------------------------------------------------------- */

static void ping_cb(lws_sorted_usec_list_t *sul)
{
    struct client *c = lws_container_of(sul, struct client, sul_ping);
    int64_t idle;
    if (!c->ws || !c->mux)
        return;
    idle = util_now_ms() - c->last_pong_ms;
    if (idle >= HANGUP_AFTER_MS) {
        CLIENT_WARN("no answer to pings from the node for %d s: closing the connection",
                    HANGUP_AFTER_MS / 1000);
        lws_set_timeout(c->ws, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    if (idle >= PING_AFTER_MS) {
        c->ping_due = 1;
        lws_callback_on_writable(c->ws);
    }
    lws_sul_schedule(c->ctx, 0, &c->sul_ping, ping_cb,
                     (lws_usec_t)(idle >= PING_AFTER_MS ? HANGUP_AFTER_MS - idle : PING_AFTER_MS - idle) *
                         LWS_US_PER_MS);
}

void client_wsconn_start(struct client *c)
{
    ws_parser_init(&c->wsp, WS_ROLE_CLIENT, CLIENT_MAX_MESSAGE);
    c->peer_closed = c->close_sent = c->pong_pending = c->ping_due = 0;
    c->last_pong_ms = util_now_ms();
    lws_sul_schedule(c->ctx, 0, &c->sul_ping, ping_cb, (lws_usec_t)PING_AFTER_MS * LWS_US_PER_MS);
}

void client_wsconn_stop(struct client *c)
{
    lws_sul_cancel(&c->sul_ping);
    ws_parser_free(&c->wsp);
    c->pong_pending = c->ping_due = 0;
}

/* ---- receiving ---------------------------------------------------------------------- */

int client_wsconn_readable(struct client *c, struct lws *wsi)
{
    char *buf = NULL; /* lws reads into its own 256 KiB buffer (pt_serv_buf_size) */
    int len = 0;
    (void)c;
    return lws_http_client_read(wsi, &buf, &len) < 0 ? -1 : 0;
}

/* Ends the connection after a protocol error: a close frame with code, then
 * the hang-up (nonzero return to lws). */
static int fail(struct lws *wsi, uint16_t code)
{
    uint8_t key[4], frame[LWS_PRE + 2 + 4 + 2];
    size_t n;
    if (RAND_bytes(key, sizeof key) == 1 &&
        (n = ws_encode_close(frame + LWS_PRE, sizeof frame - LWS_PRE, code, NULL, key)) > 0)
        (void)lws_write(wsi, frame + LWS_PRE, n, LWS_WRITE_RAW);
    return -1;
}

static int on_message(struct client *c, struct lws *wsi, const struct ws_event *ev)
{
    int rc;
    if (ev->opcode != WS_OP_BINARY) {
        CLIENT_DEBUG("ignoring a text message from the node");
        return 0;
    }
    rc = mux_session_feed(c->mux, ev->data, ev->len, util_now_ms());
    if (rc < 0) {
        CLIENT_ERROR("protocol error from the node (%s): closing the connection", mux_strerror(rc));
        return fail(wsi, 1002);
    }
    return 0;
}

static int on_event(struct client *c, struct lws *wsi, const struct ws_event *ev)
{
    switch (ev->type) {
    case WS_EV_MESSAGE: return on_message(c, wsi, ev);
    case WS_EV_PING:
        memcpy(c->pong, ev->data, ev->len);
        c->pong_len = ev->len;
        c->pong_pending = 1;
        lws_callback_on_writable(wsi);
        return 0;
    case WS_EV_PONG: c->last_pong_ms = util_now_ms(); return 0;
    case WS_EV_CLOSE:
        c->close_code = ev->close_code == WS_CLOSE_NO_STATUS ? 0 : ev->close_code;
        if (c->close_sent)
            return -1; /* the answer to ours: done */
        c->peer_closed = 1;
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_WAIT_S);
        lws_callback_on_writable(wsi);
        return 0;
    default: return 0;
    }
}

int client_wsconn_rx(struct client *c, struct lws *wsi, uint8_t *in, size_t len)
{
    size_t off = 0;
    struct ws_event ev;

    if (!c->mux || wsi != c->ws)
        return 0;
    while (!c->peer_closed && c->mux) {
        ssize_t n = ws_parse(&c->wsp, in + off, len - off, &ev);
        if (n < 0) {
            CLIENT_ERROR("WebSocket protocol error from the node (%s): closing the connection",
                         ws_strerror((int)n));
            return fail(wsi, ws_err_close_code((int)n));
        }
        off += (size_t)n;
        if (ev.type == WS_EV_NONE)
            break;
        if (on_event(c, wsi, &ev) < 0)
            return -1;
    }
    return 0;
}

/* ---- sending ------------------------------------------------------------------------ */

/* A masking key for the next frame: random, as RFC 6455 wants, from
 * OpenSSL's user-space generator, drawn 1 KiB (256 keys) at a time (a draw
 * costs a getpid() system call). */
static int next_key(void *ud, uint8_t key[4])
{
    struct client *c = ud;
    if (c->keys_left < 4) {
        if (RAND_bytes(c->keys, sizeof c->keys) != 1)
            return -1;
        c->keys_left = sizeof c->keys;
    }
    memcpy(key, c->keys + sizeof c->keys - c->keys_left, 4);
    c->keys_left -= 4;
    return 0;
}

/* Makes the frame of the n payload bytes at payload, in place: the header
 * (h bytes) goes just before it, in the WS_MAX_HEADER bytes of room there,
 * and the payload is masked (mux/ws.c masks 16 bytes per step; lws masked
 * one byte at a time). Returns h, or 0 without a key. */
static size_t make_frame(struct client *c, enum ws_opcode op, uint8_t *payload, size_t n)
{
    uint8_t key[4], hdr[WS_MAX_HEADER];
    if (next_key(c, key) < 0)
        return 0;
    size_t h = ws_encode_header(hdr, 1, op, n, key);
    ws_mask(payload, n, key, 0);
    memcpy(payload - h, hdr, h);
    return h;
}

/* Sends one frame. payload has LWS_PRE bytes of room before it. */
static int write_frame(struct client *c, struct lws *wsi, enum ws_opcode op, uint8_t *payload, size_t n)
{
    size_t h = make_frame(c, op, payload, n);
    return h && lws_write(wsi, payload - h, n + h, LWS_WRITE_RAW) >= 0 ? 0 : -1;
}

/* Our close frame (code), then wait for the node's. */
static int send_close(struct client *c, struct lws *wsi, uint16_t code)
{
    uint8_t key[4], *frame = c->tx + LWS_PRE;
    size_t n = 0;
    if (RAND_bytes(key, sizeof key) == 1)
        n = ws_encode_close(frame, TX_CAP, code, NULL, key);
    if (!n || lws_write(wsi, frame, n, LWS_WRITE_RAW) < 0)
        return -1;
    c->close_sent = 1;
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, CLOSE_WAIT_S);
    return 0;
}

/* A control frame due, if any: 1 if one was written, 0 if none, -1 on error
 * or when the connection is to end now. */
static int write_control(struct client *c, struct lws *wsi)
{
    uint8_t *frame = c->tx + LWS_PRE;
    if (c->peer_closed) { /* echo the node's close, then hang up */
        send_close(c, wsi,
                   c->close_code && ws_close_code_valid((uint16_t)c->close_code) ? (uint16_t)c->close_code
                                                                                 : 1000);
        return -1;
    }
    if (c->close_sent)
        return 1; /* nothing more after our close */
    if (c->ws_closing)
        return send_close(c, wsi, 1001) < 0 ? -1 : 1;
    if (c->pong_pending) {
        c->pong_pending = 0;
        memcpy(frame, c->pong, c->pong_len);
        return write_frame(c, wsi, WS_OP_PONG, frame, c->pong_len) < 0 ? -1 : 1;
    }
    if (c->ping_due) {
        c->ping_due = 0;
        return write_frame(c, wsi, WS_OP_PING, frame, 0) < 0 ? -1 : 1;
    }
    return 0;
}

int client_wsconn_writeable(struct client *c, struct lws *wsi)
{
    uint8_t *frame = c->tx + LWS_PRE;
    size_t n;
    int rc;

    if (wsi != c->ws || !c->mux)
        return 0;
    if ((rc = write_control(c, wsi)) != 0) {
        if (rc > 0 && !c->close_sent)
            lws_callback_on_writable(wsi); /* the mux frames come next time */
        return rc < 0 ? -1 : 0;
    }
    /* every stream that has something to say, in one write to the node */
    n = mux_session_next_ws(c->mux, frame, CLIENT_TX_BATCH, next_key, c);
    if (n == (size_t)-1 || (n > 0 && lws_write(wsi, frame, n, LWS_WRITE_RAW) < 0)) {
        CLIENT_ERROR("writing to the node failed");
        return -1;
    }
    if (c->mux && mux_session_has_output(c->mux))
        lws_callback_on_writable(wsi);
    return 0;
}
