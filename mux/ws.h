/* ws: the WebSocket protocol (RFC 6455) without I/O.
 *
 * Three parts, all pure functions of their arguments:
 *   - a receiving frame parser (struct ws_parser, ws_parse) for either role,
 *     pull style: each call returns at most one event;
 *   - an encoder for frame headers and close frames, and the masking function
 *     used on the data path (ws_mask);
 *   - helpers for the opening handshake: Sec-WebSocket-Accept, a client key,
 *     checks of a received upgrade request or 101 response, and formatting of
 *     the request and the 101 response.
 *
 * No extensions are ever negotiated: any RSV bit set is an error, and a 101
 * response that selects an extension is refused.
 *
 * Text messages are NOT checked for valid UTF-8 (nor are close reasons):
 * wsmux ignores text messages, and a caller that needs text must validate it.
 *
 * Errors are negative values of enum ws_err; ws_strerror() names them.
 */
#ifndef WHT_MUX_WS_H
#define WHT_MUX_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WS_MAX_HEADER 14           /* 2 + 8 (64-bit length) + 4 (mask key) */
#define WS_MAX_CONTROL_PAYLOAD 125 /* RFC 6455 5.5 */
#define WS_MAX_CLOSE_REASON 123    /* control payload minus the 2-byte code */
#define WS_CLOSE_NO_STATUS 1005    /* reported when a close frame carries no code */
/* A reassembly buffer up to this size is kept for the next message; a bigger
 * one is freed once its message has been handed out. */
#define WS_PARSER_KEEP_BUFFER (64 * 1024)

/* Errors: 0 is success, these are negative. */
enum ws_err {
    WS_OK = 0,
    /* receiving: protocol errors (the parser stays in error afterwards) */
    WS_E_RSV = -1,                /* RSV1-3 set, no extension was negotiated */
    WS_E_OPCODE = -2,             /* reserved opcode (3-7, 11-15) */
    WS_E_MASK = -3,               /* masked frame to a client, or unmasked frame to a server */
    WS_E_CONTROL_FRAGMENTED = -4, /* control frame without FIN */
    WS_E_CONTROL_TOO_BIG = -5,    /* control frame payload over 125 bytes */
    WS_E_LENGTH = -6,             /* 64-bit payload length with the top bit set */
    WS_E_UNEXPECTED_CONT = -7,    /* continuation frame with no message in progress */
    WS_E_EXPECTED_CONT = -8,      /* new text/binary frame while a message is in progress */
    WS_E_TOO_BIG = -9,            /* message longer than max_message */
    WS_E_CLOSE_PAYLOAD = -10,     /* close frame with a 1-byte payload */
    WS_E_CLOSE_CODE = -11,        /* close code not allowed on the wire */
    WS_E_AFTER_CLOSE = -12,       /* bytes after a close frame */
    WS_E_NOMEM = -13,             /* out of memory for a reassembly buffer */
    /* encoding, formatting, arguments */
    WS_E_INVAL = -14,   /* invalid argument (bad opcode, CR/LF in a header value...) */
    WS_E_NOSPACE = -15, /* output buffer too small */
    /* opening handshake */
    WS_E_NOT_UPGRADE = -16, /* no "Upgrade: websocket" / "Connection: upgrade", or HTTP/1.0 */
    WS_E_BAD_METHOD = -17,  /* upgrade request whose method is not GET */
    WS_E_BAD_VERSION = -18, /* Sec-WebSocket-Version missing or not 13 */
    WS_E_BAD_KEY = -19,     /* Sec-WebSocket-Key missing, repeated, or not base64 of 16 bytes */
    WS_E_BAD_STATUS = -20,  /* response status is not 101 */
    WS_E_BAD_ACCEPT = -21,  /* Sec-WebSocket-Accept missing or wrong */
    WS_E_EXTENSION = -22,   /* response selects an extension we did not offer */
};

enum ws_role {
    WS_ROLE_SERVER = 0, /* receives masked frames (from a client) */
    WS_ROLE_CLIENT = 1, /* receives unmasked frames (from a server) */
};

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum ws_event_type {
    WS_EV_NONE = 0, /* no event: all input was consumed, more is needed */
    WS_EV_MESSAGE,  /* a whole (reassembled) text or binary message */
    WS_EV_PING,
    WS_EV_PONG,
    WS_EV_CLOSE,
};

/* One event out of ws_parse(). data points either into the caller's buffer
 * (a whole unfragmented frame: no copy) or into the parser's own buffer; it
 * stays valid until the next ws_parse() call on the same parser, or until the
 * caller changes or frees its buffer, whichever comes first. data is never
 * NULL when type != WS_EV_NONE (it may point at len == 0 bytes). */
struct ws_event {
    enum ws_event_type type;
    enum ws_opcode opcode; /* MESSAGE: TEXT or BINARY; PING/PONG/CLOSE: that opcode */
    uint8_t *data;         /* MESSAGE/PING/PONG: payload, unmasked; CLOSE: reason (not NUL-terminated) */
    size_t len;            /* length of data */
    uint16_t close_code;   /* CLOSE: the code, WS_CLOSE_NO_STATUS (1005) when the frame had none */
};

/* The receiving parser. Caller-allocated so it can live inside a connection
 * struct; the fields are private (read them only in tests). */
struct ws_parser {
    size_t max_message;
    uint64_t frame_len;  /* the frame being received: declared payload length */
    uint64_t frame_done; /* ... payload bytes consumed */
    /* the message being reassembled (fragmented, or split across calls) */
    uint8_t *msg; /* malloc'd, grows as data arrives, at most max_message */
    size_t msg_len, msg_cap;
    /* a control frame split across calls: WS_MAX_CONTROL_PAYLOAD bytes,
     * malloc'd when first needed (a parser per idle connection stays small) */
    uint8_t *ctl;
    enum ws_role role;
    int state;     /* internal enum: header, payload, closed, error */
    int err;       /* the sticky error in the error state */
    int delivered; /* the last event pointed into msg: reset it on the next call */
    /* the frame being received */
    uint8_t hdr[WS_MAX_HEADER]; /* header bytes received so far (split headers only) */
    uint8_t hdr_len;
    uint8_t fin, opcode, masked;
    uint8_t mask[4];    /* key, when masked */
    uint8_t msg_opcode; /* TEXT/BINARY while a fragmented message is open, else 0 */
};

/* Sets up p for the given role. max_message bounds the payload of a whole
 * text/binary message (all its fragments together); 0 allows only empty
 * messages. Allocates nothing: the reassembly buffer grows only as data
 * arrives. */
void ws_parser_init(struct ws_parser *p, enum ws_role role, size_t max_message);

/* Frees the reassembly buffers. p may be initialised again afterwards. Any
 * ws_event data that pointed into the parser becomes invalid. */
void ws_parser_free(struct ws_parser *p);

/* Frees the reassembly buffers not in use (call it on idle connections to
 * give memory back). Invalidates event data pointing into the parser. */
void ws_parser_trim(struct ws_parser *p);

/* Parses received bytes. buf is modified: masked payloads are unmasked in
 * place. Fills *ev and returns:
 *   < 0  an enum ws_err protocol error; the parser stays in error and returns
 *        the same code on every later call (close the connection, e.g. with
 *        ws_err_close_code(err)). ev->type is WS_EV_NONE.
 *   n >= 0 with ev->type != WS_EV_NONE: one event; n bytes (n >= 1) were
 *        consumed; call again with buf + n (there may be more events, even
 *        when n == len a call with len 0 is harmless).
 *   n >= 0 with ev->type == WS_EV_NONE: all input was consumed (n == len):
 *        wait for more bytes. Partial headers, partial control frames and the
 *        payload of fragmented or split messages are kept in the parser, so the
 *        caller never re-feeds bytes.
 * So "0 bytes consumed and no event" happens only when len == 0. After a
 * WS_EV_CLOSE any further byte is WS_E_AFTER_CLOSE.
 *
 * A whole unfragmented frame found in buf is returned in place (no copy, no
 * malloc); only fragmented messages and frames split across calls are copied,
 * into a buffer that grows as their bytes arrive, bounded by max_message.
 *
 * The loop:
 *
 *     size_t off = 0;
 *     struct ws_event ev;
 *     for (;;) {
 *         ssize_t n = ws_parse(p, buf + off, len - off, &ev);
 *         if (n < 0)
 *             return fail(n);              // ws_strerror(n), ws_err_close_code(n)
 *         off += (size_t)n;
 *         if (ev.type == WS_EV_NONE)
 *             break;                       // off == len: all consumed, read more
 *         handle(&ev);                     // ev.data valid until the next ws_parse()
 *     }
 *
 * (The form `while ((n = ws_parse(p, buf + off, len - off, &ev)) > 0 ||
 * ev.type != WS_EV_NONE) { off += n; ... }` with an error check after the
 * loop works too.) */
ssize_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev);

/* Writes a frame header for payload_len bytes into out and returns its length
 * (2 to 14), using the shortest length encoding. mask_key NULL: unmasked (a
 * server's frames); else the 4-byte key is copied into the header and the
 * caller masks the payload with ws_mask(payload, len, mask_key, 0). Returns 0
 * (nothing valid written) for an unknown opcode, a length with the top bit
 * set, or a control frame without fin or over 125 bytes. */
size_t ws_encode_header(uint8_t out[WS_MAX_HEADER], int fin, enum ws_opcode op, uint64_t payload_len,
                        const uint8_t mask_key[4]);

/* The length of the header ws_encode_header() writes for payload_len bytes,
 * masked or not. */
size_t ws_header_len(uint64_t payload_len, int masked);

/* XORs data[i] with key[(key_offset + i) % 4] for i < len, word at a time.
 * key_offset is the position of data[0] within the frame's payload (so a
 * payload may be masked piecewise); masking twice restores the data. */
void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t key_offset);

/* ws_mask() of a copy: dst[i] = src[i] ^ key[(key_offset + i) % 4], in one
 * pass. dst may be src; other overlaps are not allowed. */
void ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4], size_t key_offset);

/* Writes a whole close frame into out[cap]: code (big-endian) then reason,
 * masked with mask_key unless it is NULL. code 0 writes an empty close payload
 * (reason must then be NULL or ""). reason may be NULL; at most 123 bytes.
 * Returns the frame length, or 0 when cap is too small, the code may not be
 * sent (see ws_close_code_valid) or the reason is too long. */
size_t ws_encode_close(uint8_t *out, size_t cap, uint16_t code, const char *reason,
                       const uint8_t mask_key[4]);

/* 1 if code may appear in a close frame on the wire: 1000-1003, 1007-1014,
 * 3000-4999; else 0 (1004-1006 and 1015 are reserved, 1016-2999 unassigned). */
int ws_close_code_valid(uint16_t code);

/* The close code to send after a ws_parse() error: 1009 for WS_E_TOO_BIG,
 * 1011 for WS_E_NOMEM, 1002 (protocol error) for the others. */
uint16_t ws_err_close_code(int err);

/* --- Opening handshake ------------------------------------------------- */

/* A received header field, not NUL-terminated. Names compare
 * case-insensitively; values may carry leading/trailing spaces or tabs. A
 * field that appears several times appears several times in the array. */
struct ws_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Computes Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (surrounding
 * spaces/tabs ignored) into out: 28 base64 characters and a NUL. Returns 0, or
 * WS_E_BAD_KEY if the key is not base64 of exactly 16 bytes (24 characters
 * ending in "=="), with out set to "". */
int ws_accept_key(const char *client_key, size_t key_len, char out[29]);

/* Writes the Sec-WebSocket-Key for 16 random bytes (the caller draws them,
 * e.g. with RAND_bytes): 24 base64 characters and a NUL. */
void ws_client_key(const uint8_t random16[16], char out[25]);

/* Checks a received request (server side) for a valid WebSocket upgrade:
 * HTTP/1.1 or later (http_minor >= 1, major 1), an Upgrade header with the
 * token "websocket" and a Connection header with the token "upgrade" (both
 * case-insensitive, among comma-separated tokens, possibly over several
 * fields), method GET, Sec-WebSocket-Version with the token 13, exactly one
 * valid Sec-WebSocket-Key. On success returns 0 and, when key/key_len are not
 * NULL, points *key at the key (inside hdrs, trimmed) for ws_accept_key().
 * Errors, in the order checked, with the suggested answer:
 *   WS_E_NOT_UPGRADE   not an upgrade request (webhooktunnel answers 404)
 *   WS_E_BAD_METHOD    not GET (405 or 400)
 *   WS_E_BAD_VERSION   426 with "Sec-WebSocket-Version: 13"
 *   WS_E_BAD_KEY       400 */
int ws_check_request(const char *method, size_t method_len, int http_minor, const struct ws_header *hdrs,
                     size_t nhdrs, const char **key, size_t *key_len);

/* Checks a received response (client side): status 101, the Upgrade and
 * Connection tokens as above, Sec-WebSocket-Accept equal to the accept value
 * of client_key (the NUL-terminated key we sent), and no
 * Sec-WebSocket-Extensions (we never offer any). Sec-WebSocket-Protocol is
 * left to the caller. Returns 0, WS_E_BAD_STATUS, WS_E_NOT_UPGRADE,
 * WS_E_BAD_ACCEPT or WS_E_EXTENSION. */
int ws_check_response(int status, const struct ws_header *hdrs, size_t nhdrs, const char *client_key);

/* Formats a 101 response head into out[cap], NUL-terminated:
 *     HTTP/1.1 101 Switching Protocols\r\n
 *     Upgrade: websocket\r\nConnection: Upgrade\r\n
 *     Sec-WebSocket-Accept: <accept_key>\r\n<extra_headers>\r\n
 * extra_headers is NULL, "", or whole lines each ending in "\r\n". Returns the
 * length (without the NUL), WS_E_NOSPACE if it does not fit, WS_E_INVAL if
 * accept_key holds CR/LF or extra_headers does not end in "\r\n". */
int ws_format_response_101(char *out, size_t cap, const char *accept_key, const char *extra_headers);

/* Formats an upgrade request head into out[cap], NUL-terminated:
 *     GET <path> HTTP/1.1\r\nHost: <host>\r\n
 *     Upgrade: websocket\r\nConnection: Upgrade\r\n
 *     Sec-WebSocket-Key: <client_key>\r\nSec-WebSocket-Version: 13\r\n
 *     <extra_headers>\r\n
 * path must start with '/' and hold no space, CR, LF or NUL; host and
 * client_key no CR/LF; extra_headers as for ws_format_response_101. Returns
 * the length (without the NUL), WS_E_NOSPACE or WS_E_INVAL. */
int ws_format_request(char *out, size_t cap, const char *host, const char *path, const char *client_key,
                      const char *extra_headers);

/* A fixed description of an enum ws_err value ("unknown error" otherwise). */
const char *ws_strerror(int err);

#endif /* WHT_MUX_WS_H */
