/* ws: RFC 6455 framing and opening handshake, without I/O. See ws.h. */
#include "mux/ws.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parser states (struct ws_parser.state). */
enum ws__state {
    WS__S_HEADER = 0, /* between frames, or inside a header (hdr_len > 0) */
    WS__S_PAYLOAD,    /* header done, frame_done of frame_len payload bytes consumed */
    WS__S_CLOSED,     /* a close frame was delivered: no more bytes allowed */
    WS__S_ERROR,      /* err is returned on every call */
};

#define WS__FIN 0x80
#define WS__RSV 0x70
#define WS__OPCODE 0x0f
#define WS__CONTROL 0x08
#define WS__MASKED 0x80
#define WS__LEN7 0x7f
#define WS__MIN_BUFFER 256 /* first allocation of the reassembly buffer */

static const char ws__guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* --- Masking ----------------------------------------------------------- */

typedef uint64_t ws__u64x2 __attribute__((vector_size(16)));

void ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4], size_t key_offset)
{
    uint8_t k[4];
    size_t i = 0;

    for (int j = 0; j < 4; j++)
        k[j] = key[(key_offset + (size_t)j) & 3];
    if (len >= 32) {
        /* bytes up to a 16-byte boundary of dst, then 16 bytes at a time
         * (SSE2 on x86-64, plain 64-bit words elsewhere), then the tail;
         * each block is read before it is written, so dst may be src */
        size_t head = (size_t)(-(uintptr_t)dst & 15);
        uint8_t kb[16];
        ws__u64x2 kv;

        for (; i < head; i++)
            dst[i] = src[i] ^ k[i & 3];
        for (int j = 0; j < 16; j++)
            kb[j] = k[(i + (size_t)j) & 3];
        memcpy(&kv, kb, sizeof kv);
        for (; len - i >= 64; i += 64) {
            ws__u64x2 a, b, c, d;
            memcpy(&a, src + i, 16);
            memcpy(&b, src + i + 16, 16);
            memcpy(&c, src + i + 32, 16);
            memcpy(&d, src + i + 48, 16);
            a ^= kv;
            b ^= kv;
            c ^= kv;
            d ^= kv;
            memcpy(dst + i, &a, 16);
            memcpy(dst + i + 16, &b, 16);
            memcpy(dst + i + 32, &c, 16);
            memcpy(dst + i + 48, &d, 16);
        }
        for (; len - i >= 16; i += 16) {
            ws__u64x2 a;
            memcpy(&a, src + i, 16);
            a ^= kv;
            memcpy(dst + i, &a, 16);
        }
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ k[i & 3];
}

void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t key_offset)
{
    ws_mask_copy(data, data, len, key, key_offset);
}

/* --- Receiving --------------------------------------------------------- */

void ws_parser_init(struct ws_parser *p, enum ws_role role, size_t max_message)
{
    memset(p, 0, sizeof *p);
    p->role = role;
    p->max_message = max_message;
    p->state = WS__S_HEADER;
}

static void ws__free_msg(struct ws_parser *p)
{
    free(p->msg);
    p->msg = NULL;
    p->msg_len = p->msg_cap = 0;
    p->delivered = 0;
}

void ws_parser_free(struct ws_parser *p)
{
    ws__free_msg(p);
    free(p->ctl);
    p->ctl = NULL;
}

void ws_parser_trim(struct ws_parser *p)
{
    /* a split unfragmented frame also lives in msg while in the payload state */
    if (p->msg_opcode || (p->state == WS__S_PAYLOAD && !(p->opcode & WS__CONTROL)))
        return;
    ws__free_msg(p);
    if (p->state != WS__S_PAYLOAD) { /* (else a split control frame is in ctl) */
        free(p->ctl);
        p->ctl = NULL;
    }
}

static ssize_t ws__fail(struct ws_parser *p, int err)
{
    p->state = WS__S_ERROR;
    p->err = err;
    return err;
}

/* Header length (2..14) given its second byte. */
static size_t ws__header_size(uint8_t b1)
{
    size_t n = 2;
    if ((b1 & WS__LEN7) == 126)
        n += 2;
    else if ((b1 & WS__LEN7) == 127)
        n += 8;
    if (b1 & WS__MASKED)
        n += 4;
    return n;
}

/* Checks of byte 0, made as soon as it arrives. */
static int ws__check_byte0(const struct ws_parser *p, uint8_t b0)
{
    if (b0 & WS__RSV)
        return WS_E_RSV;
    switch (b0 & WS__OPCODE) {
    case WS_OP_CONT: return p->msg_opcode ? WS_OK : WS_E_UNEXPECTED_CONT;
    case WS_OP_TEXT:
    case WS_OP_BINARY: return p->msg_opcode ? WS_E_EXPECTED_CONT : WS_OK;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG: return (b0 & WS__FIN) ? WS_OK : WS_E_CONTROL_FRAGMENTED;
    default: return WS_E_OPCODE;
    }
}

/* Checks of byte 1, made as soon as it arrives (byte 0 passed). */
static int ws__check_byte1(const struct ws_parser *p, uint8_t b0, uint8_t b1)
{
    int masked = (b1 & WS__MASKED) != 0;
    if (masked != (p->role == WS_ROLE_SERVER))
        return WS_E_MASK;
    if ((b0 & WS__CONTROL) && (b1 & WS__LEN7) > WS_MAX_CONTROL_PAYLOAD)
        return WS_E_CONTROL_TOO_BIG;
    return WS_OK;
}

/* The whole header h (bytes 0 and 1 checked) is here: take the frame. */
static int ws__begin_frame(struct ws_parser *p, const uint8_t *h)
{
    uint64_t len = h[1] & WS__LEN7;
    size_t i = 2;

    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        i = 4;
    } else if (len == 127) {
        len = 0;
        for (i = 2; i < 10; i++)
            len = len << 8 | h[i];
        if (len >> 63)
            return WS_E_LENGTH;
    }
    p->masked = (h[1] & WS__MASKED) != 0;
    if (p->masked)
        memcpy(p->mask, h + i, 4);
    p->fin = (h[0] & WS__FIN) != 0;
    p->opcode = h[0] & WS__OPCODE;
    p->frame_len = len;
    p->frame_done = 0;
    if (!(p->opcode & WS__CONTROL)) {
        /* msg_len is 0 unless a fragmented message is open (reset after delivery) */
        if (len > p->max_message - p->msg_len)
            return WS_E_TOO_BIG;
        if (!p->fin && p->opcode != WS_OP_CONT)
            p->msg_opcode = p->opcode;
    }
    p->hdr_len = 0;
    p->state = WS__S_PAYLOAD;
    return WS_OK;
}

/* Consumes header bytes; returns the count, or an error. The state becomes
 * WS__S_PAYLOAD once the header is complete. Checks run in the same order
 * however the bytes are split. */
static ssize_t ws__header(struct ws_parser *p, const uint8_t *buf, size_t len)
{
    size_t used = 0, need, take;
    int r;

    if (p->hdr_len == 0 && len >= 2 && len >= (need = ws__header_size(buf[1]))) {
        /* fast path: the whole header is in buf */
        if ((r = ws__check_byte0(p, buf[0])) || (r = ws__check_byte1(p, buf[0], buf[1])) ||
            (r = ws__begin_frame(p, buf)))
            return r;
        return (ssize_t)need;
    }
    if (p->hdr_len == 0 && used < len) {
        p->hdr[p->hdr_len++] = buf[used++];
        if ((r = ws__check_byte0(p, p->hdr[0])))
            return r;
    }
    if (p->hdr_len == 1 && used < len) {
        p->hdr[p->hdr_len++] = buf[used++];
        if ((r = ws__check_byte1(p, p->hdr[0], p->hdr[1])))
            return r;
    }
    if (p->hdr_len < 2)
        return (ssize_t)used;
    need = ws__header_size(p->hdr[1]);
    take = need - p->hdr_len;
    if (take > len - used)
        take = len - used;
    memcpy(p->hdr + p->hdr_len, buf + used, take);
    p->hdr_len += (uint8_t)take;
    used += take;
    if (p->hdr_len == need && (r = ws__begin_frame(p, p->hdr)))
        return r;
    return (ssize_t)used;
}

/* Makes room for add more bytes in msg. Grows geometrically as data arrives,
 * never past the end of the current frame (itself within max_message). */
static int ws__grow(struct ws_parser *p, size_t add)
{
    size_t need = p->msg_len + add, cap, end;
    uint8_t *m;

    if (need <= p->msg_cap)
        return WS_OK;
    end = p->msg_len + (size_t)(p->frame_len - p->frame_done); /* <= max_message */
    cap = p->msg_cap < WS__MIN_BUFFER ? WS__MIN_BUFFER : p->msg_cap;
    while (cap < need && cap <= SIZE_MAX / 2)
        cap *= 2;
    if (cap > end)
        cap = end;
    if (cap < need)
        cap = need;
    m = realloc(p->msg, cap);
    if (!m)
        return WS_E_NOMEM;
    p->msg = m;
    p->msg_cap = cap;
    return WS_OK;
}

static int ws__close_event(struct ws_parser *p, uint8_t *data, size_t len, struct ws_event *ev)
{
    uint16_t code = WS_CLOSE_NO_STATUS;

    if (len == 1)
        return WS_E_CLOSE_PAYLOAD;
    if (len >= 2) {
        code = (uint16_t)(data[0] << 8 | data[1]);
        if (!ws_close_code_valid(code))
            return WS_E_CLOSE_CODE;
        data += 2;
        len -= 2;
    }
    ev->type = WS_EV_CLOSE;
    ev->opcode = WS_OP_CLOSE;
    ev->data = data;
    ev->len = len;
    ev->close_code = code;
    p->state = WS__S_CLOSED;
    return WS_OK;
}

/* The frame's whole payload (unmasked) is data[len]: emit its event, if any. */
/* The data of an empty event that has no buffer to point into. */
static uint8_t ws__empty[1];

static int ws__end_frame(struct ws_parser *p, uint8_t *data, size_t len, struct ws_event *ev)
{
    p->state = WS__S_HEADER;
    switch (p->opcode) {
    case WS_OP_CLOSE: return ws__close_event(p, data, len, ev);
    case WS_OP_PING:
    case WS_OP_PONG:
        ev->type = p->opcode == WS_OP_PING ? WS_EV_PING : WS_EV_PONG;
        ev->opcode = (enum ws_opcode)p->opcode;
        break;
    default:
        if (!p->fin)
            return WS_OK; /* a fragment: its bytes are in msg */
        ev->type = WS_EV_MESSAGE;
        ev->opcode = (enum ws_opcode)(p->opcode == WS_OP_CONT ? p->msg_opcode : p->opcode);
        p->msg_opcode = 0;
        if (data == p->msg)
            p->delivered = 1; /* reset msg on the next call, not before */
        break;
    }
    ev->data = data ? data : ws__empty;
    ev->len = len;
    return WS_OK;
}

/* Copies what is here of the payload (n bytes at src) into ctl or msg,
 * unmasking the copy; ends the frame when its last byte came. Returns 0 or
 * an error. */
static int ws__payload_copy(struct ws_parser *p, const uint8_t *src, size_t n, struct ws_event *ev)
{
    int control = (p->opcode & WS__CONTROL) != 0;
    int r;

    if (control) {
        if (!p->ctl && !(p->ctl = malloc(WS_MAX_CONTROL_PAYLOAD)))
            return WS_E_NOMEM;
        if (p->masked)
            ws_mask_copy(p->ctl + p->frame_done, src, n, p->mask, (size_t)p->frame_done);
        else
            memcpy(p->ctl + p->frame_done, src, n);
    } else if (n > 0) {
        if ((r = ws__grow(p, n)))
            return r;
        if (p->masked)
            ws_mask_copy(p->msg + p->msg_len, src, n, p->mask, (size_t)p->frame_done);
        else
            memcpy(p->msg + p->msg_len, src, n);
        p->msg_len += n;
    }
    p->frame_done += n;
    if (p->frame_done < p->frame_len)
        return 0;
    if (control)
        return ws__end_frame(p, p->ctl, (size_t)p->frame_len, ev);
    return ws__end_frame(p, p->msg, p->msg_len, ev);
}

/* The payload of the current frame (possibly empty, possibly with no bytes
 * available yet) from the avail bytes at data. Sets *used. Returns 0, 1 when
 * it needs more bytes (all of avail used), or an error. */
static int ws__payload(struct ws_parser *p, uint8_t *data, size_t avail, size_t *used, struct ws_event *ev)
{
    int control = (p->opcode & WS__CONTROL) != 0;
    uint64_t left = p->frame_len - p->frame_done;
    size_t n;
    int r;

    *used = 0;
    if (left > 0 && avail == 0)
        return 1;
    if (left <= avail && p->frame_done == 0 && (control || (p->fin && p->msg_len == 0))) {
        /* the whole payload is here and is the whole event: in place */
        n = (size_t)left;
        if (p->masked)
            ws_mask(data, n, p->mask, 0);
        *used = n;
        return ws__end_frame(p, data, n, ev);
    }
    n = left < avail ? (size_t)left : avail;
    *used = n;
    if ((r = ws__payload_copy(p, data, n, ev)))
        return r;
    return p->state == WS__S_PAYLOAD ? 1 : 0; /* frame incomplete: avail all used */
}

ssize_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev)
{
    size_t off = 0, n;
    int r;

    memset(ev, 0, sizeof *ev);
    if (p->state == WS__S_ERROR)
        return p->err;
    if (p->delivered) {
        p->delivered = 0;
        p->msg_len = 0;
        if (p->msg_cap > WS_PARSER_KEEP_BUFFER)
            ws__free_msg(p);
    }
    for (;;) {
        if (p->state == WS__S_CLOSED) {
            if (off == len)
                break;
            return ws__fail(p, WS_E_AFTER_CLOSE);
        }
        if (p->state == WS__S_HEADER) {
            ssize_t used;
            if (off == len)
                break;
            used = ws__header(p, buf + off, len - off);
            if (used < 0)
                return ws__fail(p, (int)used);
            off += (size_t)used;
            if (p->state == WS__S_HEADER)
                break; /* header incomplete: off == len */
        }
        r = ws__payload(p, buf + off, len - off, &n, ev);
        off += n;
        if (r < 0)
            return ws__fail(p, r);
        if (r > 0)
            break; /* off == len */
        if (ev->type != WS_EV_NONE)
            return (ssize_t)off;
    }
    return (ssize_t)off;
}

/* --- Encoding ---------------------------------------------------------- */

static int ws__opcode_known(unsigned op)
{
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

size_t ws_header_len(uint64_t payload_len, int masked)
{
    size_t n = payload_len < 126 ? 2 : payload_len <= 0xffff ? 4 : 10;
    return masked ? n + 4 : n;
}

size_t ws_encode_header(uint8_t out[WS_MAX_HEADER], int fin, enum ws_opcode op, uint64_t payload_len,
                        const uint8_t mask_key[4])
{
    uint8_t m = mask_key ? WS__MASKED : 0;
    size_t n;

    if (!ws__opcode_known((unsigned)op) || (payload_len >> 63))
        return 0;
    if ((op & WS__CONTROL) && (!fin || payload_len > WS_MAX_CONTROL_PAYLOAD))
        return 0;
    out[0] = (uint8_t)((fin ? WS__FIN : 0) | op);
    if (payload_len < 126) {
        out[1] = (uint8_t)(m | payload_len);
        n = 2;
    } else if (payload_len <= 0xffff) {
        out[1] = m | 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        n = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
        n = 10;
    }
    if (mask_key) {
        memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

int ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

size_t ws_encode_close(uint8_t *out, size_t cap, uint16_t code, const char *reason, const uint8_t mask_key[4])
{
    size_t rlen = reason ? strlen(reason) : 0, plen, hlen;
    uint8_t hdr[WS_MAX_HEADER];

    if (code == 0 ? rlen != 0 : !ws_close_code_valid(code))
        return 0;
    if (rlen > WS_MAX_CLOSE_REASON)
        return 0;
    plen = code ? 2 + rlen : 0;
    hlen = ws_encode_header(hdr, 1, WS_OP_CLOSE, plen, mask_key);
    if (!out || hlen + plen > cap)
        return 0;
    memcpy(out, hdr, hlen);
    if (code) {
        out[hlen] = (uint8_t)(code >> 8);
        out[hlen + 1] = (uint8_t)code;
        if (rlen)
            memcpy(out + hlen + 2, reason, rlen);
        if (mask_key)
            ws_mask(out + hlen, plen, mask_key, 0);
    }
    return hlen + plen;
}

uint16_t ws_err_close_code(int err)
{
    switch (err) {
    case WS_E_TOO_BIG: return 1009;
    case WS_E_NOMEM: return 1011;
    default: return 1002;
    }
}

/* --- Opening handshake ------------------------------------------------- */

static int ws__is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void ws__trim(const char **s, size_t *n)
{
    while (*n && ws__is_ows((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n && ws__is_ows((*s)[*n - 1]))
        (*n)--;
}

static int ws__ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

/* 1 if some field called name holds token among its comma-separated values. */
static int ws__has_token(const struct ws_header *h, size_t nh, const char *name, const char *token)
{
    for (size_t i = 0; i < nh; i++) {
        const char *v = h[i].value;
        size_t n = h[i].value_len;
        if (!ws__ieq(h[i].name, h[i].name_len, name))
            continue;
        while (n > 0) {
            const char *comma = memchr(v, ',', n);
            size_t tl = comma ? (size_t)(comma - v) : n;
            const char *t = v;
            size_t tn = tl;
            ws__trim(&t, &tn);
            if (ws__ieq(t, tn, token))
                return 1;
            if (!comma)
                break;
            v += tl + 1;
            n -= tl + 1;
        }
    }
    return 0;
}

/* The only field called name: its trimmed value. 0 if absent, -1 if repeated. */
static int ws__single(const struct ws_header *h, size_t nh, const char *name, const char **v, size_t *vn)
{
    int found = 0;
    for (size_t i = 0; i < nh; i++) {
        if (!ws__ieq(h[i].name, h[i].name_len, name))
            continue;
        if (found)
            return -1;
        found = 1;
        *v = h[i].value;
        *vn = h[i].value_len;
        ws__trim(v, vn);
    }
    return found;
}

static int ws__b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Base64 of 16 bytes: 22 characters then "==". Like Go's default decoder
 * (which the Go peers use) the unused low bits of the 22nd are not checked. */
static int ws__key_valid(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!ws__b64_char(k[i]))
            return 0;
    return 1;
}

int ws_accept_key(const char *client_key, size_t key_len, char out[29])
{
    char cat[24 + sizeof ws__guid];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    out[0] = '\0';
    if (!client_key)
        return WS_E_BAD_KEY;
    ws__trim(&client_key, &key_len);
    if (!ws__key_valid(client_key, key_len))
        return WS_E_BAD_KEY;
    memcpy(cat, client_key, 24);
    memcpy(cat + 24, ws__guid, sizeof ws__guid - 1);
    if (!EVP_Digest(cat, 24 + sizeof ws__guid - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return WS_E_NOMEM; /* OpenSSL failed: only allocation can make SHA-1 fail */
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return WS_OK;
}

void ws_client_key(const uint8_t random16[16], char out[25])
{
    EVP_EncodeBlock((unsigned char *)out, random16, 16);
}

int ws_check_request(const char *method, size_t method_len, int http_minor, const struct ws_header *hdrs,
                     size_t nhdrs, const char **key, size_t *key_len)
{
    const char *k = NULL;
    size_t kn = 0;

    if (http_minor < 1 || !ws__has_token(hdrs, nhdrs, "upgrade", "websocket") ||
        !ws__has_token(hdrs, nhdrs, "connection", "upgrade"))
        return WS_E_NOT_UPGRADE;
    if (!method || method_len != 3 || memcmp(method, "GET", 3) != 0)
        return WS_E_BAD_METHOD;
    if (!ws__has_token(hdrs, nhdrs, "sec-websocket-version", "13"))
        return WS_E_BAD_VERSION;
    if (ws__single(hdrs, nhdrs, "sec-websocket-key", &k, &kn) != 1 || !ws__key_valid(k, kn))
        return WS_E_BAD_KEY;
    if (key)
        *key = k;
    if (key_len)
        *key_len = kn;
    return WS_OK;
}

int ws_check_response(int status, const struct ws_header *hdrs, size_t nhdrs, const char *client_key)
{
    char want[29];
    const char *v = NULL;
    size_t vn = 0;

    if (status != 101)
        return WS_E_BAD_STATUS;
    if (!ws__has_token(hdrs, nhdrs, "upgrade", "websocket") ||
        !ws__has_token(hdrs, nhdrs, "connection", "upgrade"))
        return WS_E_NOT_UPGRADE;
    if (!client_key || ws_accept_key(client_key, strlen(client_key), want) != WS_OK)
        return WS_E_INVAL;
    if (ws__single(hdrs, nhdrs, "sec-websocket-accept", &v, &vn) != 1 || vn != 28 || memcmp(v, want, 28) != 0)
        return WS_E_BAD_ACCEPT;
    for (size_t i = 0; i < nhdrs; i++) {
        if (ws__ieq(hdrs[i].name, hdrs[i].name_len, "sec-websocket-extensions")) {
            v = hdrs[i].value;
            vn = hdrs[i].value_len;
            ws__trim(&v, &vn);
            if (vn)
                return WS_E_EXTENSION;
        }
    }
    return WS_OK;
}

/* 1 if s is safe inside one header line: no CR, LF. */
static int ws__line_safe(const char *s)
{
    return s && !strpbrk(s, "\r\n");
}

/* NULL, "", or whole lines ending in CRLF with no empty line among them. */
static int ws__extra_ok(const char *x)
{
    size_t n;
    if (!x || !*x)
        return 1;
    n = strlen(x);
    if (n < 2 || strcmp(x + n - 2, "\r\n") != 0 || x[0] == '\r' || x[0] == '\n' || strstr(x, "\r\n\r\n"))
        return 0;
    for (const char *c = x; *c; c++) /* no bare CR or LF */
        if ((*c == '\r' && c[1] != '\n') || (*c == '\n' && (c == x || c[-1] != '\r')))
            return 0;
    return 1;
}

static int ws__fit(int n, size_t cap)
{
    if (n < 0)
        return WS_E_INVAL;
    if ((size_t)n >= cap)
        return WS_E_NOSPACE;
    return n;
}

int ws_format_response_101(char *out, size_t cap, const char *accept_key, const char *extra_headers)
{
    if (!ws__line_safe(accept_key) || !ws__extra_ok(extra_headers) || (!out && cap))
        return WS_E_INVAL;
    return ws__fit(snprintf(out, cap,
                            "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n"
                            "%s\r\n",
                            accept_key, extra_headers ? extra_headers : ""),
                   cap);
}

int ws_format_request(char *out, size_t cap, const char *host, const char *path, const char *client_key,
                      const char *extra_headers)
{
    if (!ws__line_safe(host) || !ws__line_safe(client_key) || !ws__extra_ok(extra_headers) || (!out && cap))
        return WS_E_INVAL;
    if (!path || path[0] != '/' || strpbrk(path, " \t\r\n"))
        return WS_E_INVAL;
    return ws__fit(snprintf(out, cap,
                            "GET %s HTTP/1.1\r\n"
                            "Host: %s\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n"
                            "%s\r\n",
                            path, host, client_key, extra_headers ? extra_headers : ""),
                   cap);
}

const char *ws_strerror(int err)
{
    switch (err) {
    case WS_OK: return "success";
    case WS_E_RSV: return "reserved bits set (no extension negotiated)";
    case WS_E_OPCODE: return "reserved opcode";
    case WS_E_MASK: return "frame masking wrong for the role";
    case WS_E_CONTROL_FRAGMENTED: return "fragmented control frame";
    case WS_E_CONTROL_TOO_BIG: return "control frame payload over 125 bytes";
    case WS_E_LENGTH: return "64-bit payload length with the top bit set";
    case WS_E_UNEXPECTED_CONT: return "continuation frame without a message in progress";
    case WS_E_EXPECTED_CONT: return "new message while a fragmented message is in progress";
    case WS_E_TOO_BIG: return "message too big";
    case WS_E_CLOSE_PAYLOAD: return "close frame with a 1-byte payload";
    case WS_E_CLOSE_CODE: return "invalid close code";
    case WS_E_AFTER_CLOSE: return "data after close frame";
    case WS_E_NOMEM: return "out of memory";
    case WS_E_INVAL: return "invalid argument";
    case WS_E_NOSPACE: return "output buffer too small";
    case WS_E_NOT_UPGRADE: return "not a WebSocket upgrade";
    case WS_E_BAD_METHOD: return "WebSocket upgrade method is not GET";
    case WS_E_BAD_VERSION: return "unsupported Sec-WebSocket-Version (need 13)";
    case WS_E_BAD_KEY: return "missing or invalid Sec-WebSocket-Key";
    case WS_E_BAD_STATUS: return "handshake response status is not 101";
    case WS_E_BAD_ACCEPT: return "missing or wrong Sec-WebSocket-Accept";
    case WS_E_EXTENSION: return "handshake response selects an extension that was not offered";
    default: return "unknown error";
    }
}
