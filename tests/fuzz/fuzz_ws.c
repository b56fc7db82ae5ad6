/* libFuzzer target for mux/ws.
 *
 * Byte 0 picks the parser's role (bit 0), a split pattern (bits 1-3) and
 * max_message (bits 4-6); the rest is the received byte stream. Checks:
 *   - parsing never crashes, leaks or breaks the ws_parse() contract;
 *   - the stream fed whole and fed in chunks gives identical events and status;
 *   - the rest of the input, encoded as a (fragmented, masked for the server
 *     role) message with a ping and a close, parses back to itself;
 *   - the handshake checks survive the input read as header lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mux/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            abort();                                                                                         \
    } while (0)

struct out {
    uint8_t *b;
    size_t n, cap;
};

static void out_put(struct out *o, const void *d, size_t n)
{
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 1024;
        while (cap < o->n + n)
            cap *= 2;
        o->b = realloc(o->b, cap);
        CHECK(o->b);
        o->cap = cap;
    }
    if (n)
        memcpy(o->b + o->n, d, n);
    o->n += n;
}

static void log_event(struct out *o, const struct ws_event *ev)
{
    uint64_t h[4] = {ev->type, ev->opcode, ev->close_code, ev->len};
    out_put(o, h, sizeof h);
    out_put(o, ev->data, ev->len);
}

/* Length of chunk number i under split pattern mode. */
static size_t chunk_len(unsigned mode, size_t i, const uint8_t *in, size_t n)
{
    switch (mode) {
    case 0:
        return n; /* whole (the reference run is whole too: a plain run) */
    case 1:
        return 1;
    case 2:
        return 2;
    case 3:
        return 3;
    case 4:
        return 7;
    case 5: /* two pieces, cut where the first byte says */
        return i == 0 ? (n ? in[0] % (n + 1) : 0) : n;
    case 6: /* sizes taken from the stream itself */
        return (size_t)(n ? in[i % n] % 19 : 0) + 1;
    default:
        return (size_t)1 << (i % 12);
    }
}

/* Feeds in[n] in chunks per mode (each copied into its own heap buffer) and
 * logs every event and the final status. */
static void run(enum ws_role role, size_t max, unsigned mode, const uint8_t *in, size_t n, struct out *log)
{
    struct ws_parser p;
    size_t start = 0;
    int32_t status = 0;

    ws_parser_init(&p, role, max);
    for (size_t c = 0; start < n && !status; c++) {
        size_t len = chunk_len(mode, c, in, n), off = 0;
        uint8_t *buf;
        if (len > n - start)
            len = n - start;
        buf = malloc(len ? len : 1);
        CHECK(buf);
        if (len)
            memcpy(buf, in + start, len);
        for (;;) {
            struct ws_event ev;
            ssize_t r = ws_parse(&p, buf + off, len - off, &ev);
            if (r < 0) {
                CHECK(ev.type == WS_EV_NONE);
                CHECK(strcmp(ws_strerror((int)r), "unknown error") != 0);
                CHECK(ws_parse(&p, buf, len, &ev) == r);
                status = (int32_t)r;
                break;
            }
            CHECK((size_t)r <= len - off);
            if (ev.type == WS_EV_NONE) {
                CHECK((size_t)r == len - off);
                break;
            }
            CHECK(r >= 1 && ev.data);
            if (ev.type == WS_EV_MESSAGE) {
                CHECK(ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY);
                CHECK(ev.len <= max);
            } else {
                CHECK(ev.len <= WS_MAX_CONTROL_PAYLOAD);
            }
            log_event(log, &ev);
            off += (size_t)r;
        }
        free(buf);
        start += len;
    }
    out_put(log, &status, sizeof status);
    ws_parser_free(&p);
}

/* Encodes payload as a message in pieces with a ping between, then a close,
 * for a parser of role; parses it back (whole) and checks it. */
static void round_trip(enum ws_role role, const uint8_t *payload, size_t n, size_t piece, uint16_t code)
{
    static const uint8_t key0[4] = {0xa5, 0x01, 0xff, 0x7e};
    const uint8_t *key = role == WS_ROLE_SERVER ? key0 : NULL;
    size_t cap = n + (n / piece + 3) * (WS_MAX_HEADER + WS_MAX_CONTROL_PAYLOAD) + 16, len = 0;
    uint8_t *wire = malloc(cap);
    char reason[WS_MAX_CLOSE_REASON + 1];
    size_t rlen = n < WS_MAX_CLOSE_REASON ? n : WS_MAX_CLOSE_REASON, cl;
    struct ws_parser p;
    struct ws_event ev;
    size_t off = 0;
    int seen_msg = 0;

    CHECK(wire);
    for (size_t at = 0;;) {
        size_t k = n - at < piece ? n - at : piece;
        int fin = at + k == n;
        size_t h = ws_encode_header(wire + len, fin, at ? WS_OP_CONT : WS_OP_BINARY, k, key);
        CHECK(h >= 2 && h <= WS_MAX_HEADER);
        len += h;
        memcpy(wire + len, payload + at, k);
        if (key)
            ws_mask(wire + len, k, key, 0);
        len += k;
        at += k;
        if (at == piece) { /* a ping after the first piece */
            h = ws_encode_header(wire + len, 1, WS_OP_PING, 1, key);
            wire[len + h] = 'p';
            if (key)
                ws_mask(wire + len + h, 1, key, 0);
            len += h + 1;
        }
        if (fin)
            break;
    }
    /* the reason: the payload's first bytes without NULs */
    memcpy(reason, payload, rlen);
    reason[rlen] = '\0';
    rlen = strlen(reason);
    cl = ws_encode_close(wire + len, cap - len, code, reason, key);
    CHECK(cl == 0 || cl >= 2);
    if (!ws_close_code_valid(code) && code != 0)
        CHECK(cl == 0);
    len += cl;

    ws_parser_init(&p, role, n);
    for (;;) {
        ssize_t r = ws_parse(&p, wire + off, len - off, &ev);
        CHECK(r >= 0);
        off += (size_t)r;
        if (ev.type == WS_EV_NONE)
            break;
        if (ev.type == WS_EV_PING) {
            CHECK(ev.len == 1 && ev.data[0] == 'p');
        } else if (ev.type == WS_EV_MESSAGE) {
            CHECK(!seen_msg);
            seen_msg = 1;
            CHECK(ev.opcode == WS_OP_BINARY && ev.len == n);
            CHECK(n == 0 || memcmp(ev.data, payload, n) == 0);
        } else {
            CHECK(ev.type == WS_EV_CLOSE && cl);
            CHECK(ev.close_code == (code ? code : WS_CLOSE_NO_STATUS));
            CHECK(ev.len == (code ? rlen : 0));
            CHECK(ev.len == 0 || memcmp(ev.data, reason, ev.len) == 0);
        }
    }
    CHECK(off == len && seen_msg);
    ws_parser_free(&p);
    free(wire);
}

/* Reads the input as "name:value" lines and runs the handshake checks. */
static void handshake(const uint8_t *in, size_t n)
{
    struct ws_header h[16] = {{0}};
    size_t nh = 0, i = 0;
    const char *key = NULL;
    size_t kl = 0;
    char acc[29], ck[25];

    while (i < n && nh < 16) {
        const uint8_t *line = in + i, *nl = memchr(line, '\n', n - i), *colon;
        size_t ll = nl ? (size_t)(nl - line) : n - i;
        colon = memchr(line, ':', ll);
        if (colon) {
            h[nh].name = (const char *)line;
            h[nh].name_len = (size_t)(colon - line);
            h[nh].value = (const char *)colon + 1;
            h[nh].value_len = ll - h[nh].name_len - 1;
            nh++;
        }
        i += ll + 1;
    }
    if (ws_check_request("GET", 3, 1, h, nh, &key, &kl) == 0) {
        CHECK(kl == 24);
        CHECK(ws_accept_key(key, kl, acc) == 0);
        CHECK(strlen(acc) == 28);
    }
    (void)ws_check_request("POST", 4, 0, h, nh, NULL, NULL);
    (void)ws_check_response(101, h, nh, "dGhlIHNhbXBsZSBub25jZQ==");
    if (n >= 16) {
        ws_client_key(in, ck);
        CHECK(strlen(ck) == 24 && ws_accept_key(ck, 24, acc) == 0);
    }
    (void)ws_accept_key((const char *)in, n, acc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[8] = {0, 1, 5, 125, 126, 1000, 65536, SIZE_MAX};
    struct out whole = {0}, split = {0};
    enum ws_role role;
    unsigned mode;
    size_t max;

    if (size < 1)
        return 0;
    role = (data[0] & 1) ? WS_ROLE_CLIENT : WS_ROLE_SERVER;
    mode = (data[0] >> 1) & 7;
    max = maxes[(data[0] >> 4) & 7];
    data++;
    size--;

    run(role, max, 0, data, size, &whole);
    run(role, max, mode, data, size, &split);
    CHECK(whole.n == split.n && (whole.n == 0 || memcmp(whole.b, split.b, whole.n) == 0));
    free(whole.b);
    free(split.b);

    round_trip(role, data, size, size ? (size_t)(data[0] & 0x3f) + 1 : 1,
               size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 1000);
    round_trip(role == WS_ROLE_SERVER ? WS_ROLE_CLIENT : WS_ROLE_SERVER, data, size, size + 1, 0);
    handshake(data, size);
    return 0;
}
