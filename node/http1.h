/* http1: HTTP/1.1 message framing (RFC 9112) without I/O, for the proxy node.
 *
 * Three parts, all pure functions of their arguments (libc only):
 *   - head parsers for a viewer's request (http1_parse_request) and a worker's
 *     response (http1_parse_response), picohttpparser style: call with all the
 *     bytes received so far; the answer is the head length, HTTP1_INCOMPLETE,
 *     or a negative error. Names and values point into the caller's buffer
 *     (nothing is copied), so the buffer must outlive the use of the result.
 *     The parsers are strict: everything RFC 9112 lets a server reject, and
 *     every ambiguity that could make the node and a worker disagree about
 *     where a message ends (request smuggling), is an error;
 *   - helpers for the proxy's head rewrite: header lookup, token lists, the
 *     hop-by-hop check;
 *   - a chunked transfer-coding scanner that finds where a chunked body ends
 *     so the node can pass it through unchanged (http1_chunked_scan), the
 *     same state machine as a decoder (http1_chunked_decode), and an encoder
 *     for chunk headers.
 *
 * Content-Length bodies need no module: the node counts content_length bytes.
 *
 * Errors are negative values of enum http1_err; http1_strerror() names them
 * and http1_request_error_status() gives the status the node answers with.
 */
#ifndef WHT_NODE_HTTP1_H
#define WHT_NODE_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP1_MAX_HEADERS 100        /* header lines per head; one more is HTTP1_E_TOO_MANY_HEADERS */
#define HTTP1_MAX_LEADING_CRLF 8     /* empty lines skipped before a request line (RFC 9112 2.2) */
#define HTTP1_CHUNK_LINE_MAX 4096    /* bytes of a chunk-size line before its CRLF, extensions included */
#define HTTP1_CHUNK_TRAILER_MAX 8192 /* a reasonable max_trailer for http1_chunked_init() */
#define HTTP1_CONTENT_LENGTH_MAX INT64_MAX /* largest Content-Length and chunk size accepted */
#define HTTP1_CHUNK_HEADER_MAX 20          /* room for http1_chunk_header(): 16 hex digits + CRLF */
#define HTTP1_CHUNK_END "\r\n"             /* written after each chunk's data */
#define HTTP1_CHUNK_LAST "0\r\n\r\n"       /* last chunk and an empty trailer section: ends a body */

/* Errors: results >= 0 are success, these are negative. The status in
 * brackets is what the node answers a viewer whose request fails so; a bad
 * worker response is a 502 whatever the code. */
enum http1_err {
    HTTP1_INCOMPLETE = -1,                    /* not an error: the head or body needs more bytes */
    HTTP1_E_HEAD_TOO_LARGE = -2,              /* no complete head within max_head bytes [431] */
    HTTP1_E_TOO_MANY_HEADERS = -3,            /* more than HTTP1_MAX_HEADERS header lines [431] */
    HTTP1_E_BARE_LF = -4,                     /* LF not preceded by CR [400] */
    HTTP1_E_BARE_CR = -5,                     /* CR not followed by LF [400] */
    HTTP1_E_BAD_REQUEST_LINE = -6,            /* request line not "method SP target SP version" [400] */
    HTTP1_E_BAD_METHOD = -7,                  /* empty method or a non-token char in it [400] */
    HTTP1_E_BAD_TARGET = -8,                  /* request-target not of a form allowed for the method [400] */
    HTTP1_E_BAD_VERSION = -9,                 /* version not "HTTP/" DIGIT "." DIGIT [400] */
    HTTP1_E_VERSION_NOT_SUPPORTED = -10,      /* well-formed version other than 1.0 and 1.1 [505] */
    HTTP1_E_BAD_STATUS_LINE = -11,            /* response status line malformed, or status not 100-599 */
    HTTP1_E_OBS_FOLD = -12,                   /* header line starting with SP or HT (obs-fold) [400] */
    HTTP1_E_BAD_HEADER_NAME = -13,            /* empty or non-token header name, or no colon [400] */
    HTTP1_E_SPACE_BEFORE_COLON = -14,         /* whitespace between a header name and its colon [400] */
    HTTP1_E_BAD_HEADER_VALUE = -15,           /* control char (other than HT) in a header value [400] */
    HTTP1_E_BAD_CONTENT_LENGTH = -16,         /* Content-Length not digits, empty, or over 2^63-1 [400] */
    HTTP1_E_CONFLICTING_CONTENT_LENGTH = -17, /* Content-Length values that differ [400] */
    HTTP1_E_CL_AND_TE = -18,                  /* both Content-Length and Transfer-Encoding [400] */
    HTTP1_E_BAD_TRANSFER_ENCODING = -19, /* final coding not chunked, chunked twice, empty, HTTP/1.0 [400] */
    HTTP1_E_UNSUPPORTED_TRANSFER_CODING = -20, /* codings other than chunked before chunked [501] */
    HTTP1_E_MISSING_HOST = -21,                /* HTTP/1.1 request without Host [400] */
    HTTP1_E_BAD_HOST = -22,            /* several Host lines, or a Host that is not host[:port] [400] */
    HTTP1_E_BAD_CHUNK_SIZE = -23,      /* chunk size empty, not hex, or over 2^63-1 [400] */
    HTTP1_E_CHUNK_LINE_TOO_LONG = -24, /* chunk-size line over HTTP1_CHUNK_LINE_MAX [400] */
    HTTP1_E_BAD_CHUNK_EXT = -25,       /* malformed chunk extension [400] */
    HTTP1_E_BAD_CHUNK_END = -26,       /* chunk data not followed by CRLF [400] */
    HTTP1_E_BAD_TRAILER = -27,         /* malformed trailer field line [400] */
    HTTP1_E_TRAILER_TOO_LARGE = -28,   /* trailer section over max_trailer bytes [400] */
};

/* The request methods the node tells apart; any other token is OTHER. Methods
 * are case-sensitive: "get" is OTHER. */
enum http1_method {
    HTTP1_METHOD_OTHER = 0,
    HTTP1_METHOD_GET,
    HTTP1_METHOD_HEAD,
    HTTP1_METHOD_POST,
    HTTP1_METHOD_PUT,
    HTTP1_METHOD_DELETE,
    HTTP1_METHOD_OPTIONS,
    HTTP1_METHOD_PATCH,
    HTTP1_METHOD_CONNECT,
};

/* The four request-target forms of RFC 9112 3.2. */
enum http1_target_form {
    HTTP1_TARGET_ORIGIN = 0, /* "/path?query" (any method but CONNECT) */
    HTTP1_TARGET_ABSOLUTE,   /* "http://host[:port]/path?query", scheme http or https only */
    HTTP1_TARGET_AUTHORITY,  /* "host:port", CONNECT only (and CONNECT only takes this form) */
    HTTP1_TARGET_ASTERISK,   /* "*", OPTIONS only */
};

/* How the message body after the head is delimited. */
enum http1_body {
    HTTP1_BODY_NONE = 0, /* no body: the next message (or tunnel data) starts right after the head */
    HTTP1_BODY_LENGTH,   /* content_length bytes (possibly 0) */
    HTTP1_BODY_CHUNKED,  /* chunked: feed the bytes to http1_chunked_scan() until it is done */
    HTTP1_BODY_CLOSE,    /* responses only: everything until the worker closes the connection */
};

/* One header line. name and value point into the parsed buffer; the value has
 * its leading and trailing whitespace removed and may be empty. */
struct http1_header {
    const char *name;
    const char *value;
    size_t name_len;
    size_t value_len;
};

/* The header lines of a head, in the order received. */
struct http1_headers {
    size_t count;
    struct http1_header h[HTTP1_MAX_HEADERS];
};

/* A parsed request head. Every field is valid only after http1_parse_request()
 * returned a head length; pointers are into the buffer it was given. */
struct http1_request {
    const char *method; /* method token, method_len bytes */
    size_t method_len;
    enum http1_method method_id;
    const char *target; /* request-target as received, target_len bytes */
    size_t target_len;
    enum http1_target_form target_form;
    /* Path and query to route on and to forward: the whole target in
     * origin-form; in absolute-form the part after the authority, which may
     * be empty (meaning "/") or start with '?'; empty for the other forms.
     * Not percent-decoded nor normalised: "/a/../b" and "%2F" are as sent. */
    const char *path;
    size_t path_len;
    /* The host the request is for, "host[:port]" as received: the authority of
     * an absolute-form or authority-form target (RFC 9112 3.2.2: it wins over
     * the Host header), else the Host header's value (which may be empty).
     * NULL with host_len 0 for an HTTP/1.0 request without Host. */
    const char *host;
    size_t host_len;
    int version_minor; /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
    struct http1_headers headers;
    enum http1_body body;     /* NONE, LENGTH or CHUNKED; never CLOSE */
    uint64_t content_length;  /* for HTTP1_BODY_LENGTH; duplicates of one value collapsed */
    bool keep_alive;          /* HTTP/1.1 without "Connection: close", or HTTP/1.0 with keep-alive */
    bool upgrade;             /* HTTP/1.1, "upgrade" in Connection and a non-empty Upgrade header */
    bool expect_100_continue; /* HTTP/1.1 and "100-continue" in Expect */
    size_t head_len;          /* same as the parse result */
    size_t scan_hint;         /* private: 0 before the first call for a head (see below) */
    unsigned char scan_class; /* private */
};

/* A parsed response head; as for requests, valid only after a head length
 * was returned, pointers into the parsed buffer. */
struct http1_response {
    int version_minor;  /* 0 or 1 */
    int status;         /* 100 to 599 */
    const char *reason; /* reason phrase, possibly empty */
    size_t reason_len;
    struct http1_headers headers;
    /* NONE for a response to HEAD, a 1xx, 204 or 304, and a 2xx to CONNECT;
     * else CHUNKED, LENGTH, or CLOSE when neither header is present. */
    enum http1_body body;
    uint64_t content_length; /* for HTTP1_BODY_LENGTH */
    /* The connection can carry another request after this response's body:
     * per version and Connection tokens, and false for BODY_CLOSE or upgrade.
     * The node must also honour the request's own keep_alive. */
    bool keep_alive;
    /* After this head the connection is no longer HTTP but an opaque
     * two-way stream: a 101 (Switching Protocols), or a 2xx to CONNECT. */
    bool upgrade;
    size_t head_len;
    size_t scan_hint;         /* private: as in struct http1_request */
    unsigned char scan_class; /* private */
};

/* Parses a request head from the first len bytes of buf.
 *
 * Call it with everything received so far each time more arrives. Before the
 * first call for a new head, req->scan_hint must be 0 (a zeroed struct; the
 * parser sets it back to 0 whenever it returns anything but HTTP1_INCOMPLETE,
 * so a struct reused per connection needs no reset). While it returns
 * HTTP1_INCOMPLETE, the next call must pass the same bytes followed by more:
 * the hint lets it skip the full re-parse while the new bytes only extend the
 * token it stopped in, so a head sent one byte at a time costs
 * O(tokens x size), not O(size^2). The results are exactly those of parsing
 * each buffer from scratch.
 *
 * max_head bounds the head, its final CRLF included. A complete head of
 * exactly max_head bytes is accepted; as soon as len exceeds max_head without
 * a complete head, the result is HTTP1_E_HEAD_TOO_LARGE (unless an error
 * occurs within the first max_head bytes, which is reported instead). Values
 * over INT_MAX are taken as INT_MAX.
 *
 * Returns the head length (> 0; the body or next request starts there) with
 * *req filled in, HTTP1_INCOMPLETE, or a negative enum http1_err. Errors are
 * final: more bytes never change them. An error may be reported before the
 * whole head has arrived (a bad method in the first bytes is rejected at once).
 */
int http1_parse_request(const char *buf, size_t len, struct http1_request *req, size_t max_head);

/* Whether buf[0..len) may hold a complete head: an empty line ("\n\r\n" or
 * "\n\n") at or after *from, picohttpparser's last_len idea. Returns 1 if
 * so; else 0, with *from moved to where the next call (with more bytes
 * appended) resumes, so a head that arrives in pieces is scanned once, not
 * parsed again from byte 0 on every read. Start each head with *from = 0. */
int http1_head_maybe_complete(const char *buf, size_t len, size_t *from);

/* Parses a worker's response head to a request made with request_method: the
 * same contract as http1_parse_request(). Body framing follows RFC 9112 6.3;
 * both Content-Length and Transfer-Encoding is an error (as nginx does), and
 * the only transfer coding accepted is a lone "chunked" (as Go does). A 1xx
 * other than 101 is an interim response: the node forwards it and parses the
 * next head from the bytes after it. */
int http1_parse_response(const char *buf, size_t len, struct http1_response *resp, size_t max_head,
                         enum http1_method request_method);

/* The same two parsers for a head that arrives in pieces, parsed as bytes
 * arrive (picohttpparser's last_len): *scan (0 for a new head, kept between
 * calls with the same growing buffer) says where the search for the end of
 * the head resumes. The first piece is parsed at once (a bad first line is
 * refused early); after that a full parse runs only once the head may be
 * complete (http1_head_maybe_complete) or is over max_head, so a head that
 * trickles in is scanned once instead of parsed again from byte 0 on every
 * read. Same results as the plain parsers. */
int http1_parse_request_from(const char *buf, size_t len, struct http1_request *req, size_t max_head,
                             size_t *scan);
int http1_parse_response_from(const char *buf, size_t len, struct http1_response *resp, size_t max_head,
                              enum http1_method request_method, size_t *scan);

/* Returns the status the node should answer a viewer with when
 * http1_parse_request() failed with err: 431, 501, 505, or 400. */
int http1_request_error_status(int err);

/* Returns a fixed English description of an enum http1_err value (or of 0). */
const char *http1_strerror(int err);

/* Returns the first header whose name equals name (NUL-terminated, compared
 * case-insensitively), or NULL. */
const struct http1_header *http1_find_header(const struct http1_headers *hs, const char *name);

/* Returns true when the comma-separated list in value[0..len) has an element
 * equal to token (case-insensitive, whitespace around elements ignored,
 * empty elements skipped). An element with parameters ("a;q=1") does not
 * equal "a". */
bool http1_header_has_token(const char *value, size_t len, const char *token);

/* Returns true when the header name[0..name_len) must not be forwarded by a
 * proxy (RFC 9110 7.6.1): Connection, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate and
 * Proxy-Authorization, plus every name listed in a Connection header of hs
 * (hs may be NULL to check only the fixed list).
 *
 * Proxy-Authorization and Proxy-Authenticate are on the list (as in Go's
 * httputil.ReverseProxy): credentials meant for a proxy must not reach a
 * worker, which is an untrusted machine. Host and Content-Length are never
 * hop-by-hop, even when a Connection header names them, so a viewer cannot
 * strip the routing or framing of its own request.
 *
 * The node, which writes the forwarded head itself, drops every hop-by-hop
 * header and every Content-Length, then adds its own framing header from
 * body/content_length ("Transfer-Encoding: chunked" for a chunked body passed
 * through unchanged) and, for an upgrade, "Connection: upgrade" and the
 * Upgrade header again. */
bool http1_is_hop_by_hop(const struct http1_headers *hs, const char *name, size_t name_len);

/* ---- chunked transfer coding (RFC 9112 7.1) ---- */

/* State of one chunked body being scanned or decoded. Initialise with
 * http1_chunked_init() before each body; no resources to free. */
struct http1_chunked {
    int state;          /* private */
    int error;          /* private: sticky error, 0 if none */
    uint64_t remaining; /* private: data bytes left in the current chunk */
    size_t line_len;    /* private: bytes of the current chunk-size line */
    size_t trailer_len; /* private: bytes of the trailer section so far */
    size_t max_trailer; /* private: limit on trailer_len */
    uint64_t total;     /* body bytes accepted so far, framing included */
};

/* Prepares c for a new body whose trailer section (the field lines after the
 * last chunk, their CRLFs included, the final CRLF not) may hold up to
 * max_trailer bytes; 0 allows no trailer field at all. */
void http1_chunked_init(struct http1_chunked *c, size_t max_trailer);

/* Framing scanner: consumes the first len bytes of buf as the continuation of
 * the body. Returns how many of them belong to the body (chunk-size lines,
 * extensions, data, CRLFs, trailers and the final CRLF): len, or fewer when
 * the body ended inside buf, the rest being the next message. Returns a
 * negative enum http1_err on malformed framing; errors are sticky (every later
 * call returns the same). Returns 0 once the body is done. The bytes are
 * not modified: the node forwards exactly the counted bytes. */
ssize_t http1_chunked_scan(struct http1_chunked *c, const char *buf, size_t len);

/* Decoder: the same state machine as http1_chunked_scan() (the two may even
 * be mixed on one body), but stops after at most one run of payload bytes.
 * Returns the bytes of buf consumed (framing and payload) and sets
 * buf[*data_off .. *data_off + *data_len) to the payload among them
 * (*data_len 0 if none); or a negative enum http1_err. Call it again on the
 * rest of buf until it is used up or the body is done. */
ssize_t http1_chunked_decode(struct http1_chunked *c, const char *buf, size_t len, size_t *data_off,
                             size_t *data_len);

/* Returns true once the final CRLF of the body has been consumed. */
bool http1_chunked_done(const struct http1_chunked *c);

/* Writes the chunk-size line for an n-byte chunk, lowercase hex and CRLF
 * ("1a2b\r\n"), not NUL-terminated, into out. Returns its length (3 to 18).
 * The chunk's data and HTTP1_CHUNK_END follow it. For n 0 it writes "0\r\n",
 * which starts the last chunk; HTTP1_CHUNK_LAST is a whole body ending. */
size_t http1_chunk_header(char out[HTTP1_CHUNK_HEADER_MAX], uint64_t n);

#endif
