/* http1: HTTP/1.1 head parsers and chunked framing, without I/O. See http1.h.
 *
 * The head parsers read strictly left to right and stop at the first byte
 * that decides the outcome, returning HTTP1_INCOMPLETE when they run out of
 * bytes before that. Every decision depends only on bytes before it, so a
 * longer buffer with the same prefix can never change an error; that is what
 * makes re-parsing from the start on every call correct. */
#include "node/http1.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/* ---- character classes ---- */

#define C_TCHAR 0x01  /* token (RFC 9110 5.6.2) */
#define C_TARGET 0x02 /* allowed in a request-target: VCHAR but '#' */
#define C_FIELD 0x04  /* field-value and reason: VCHAR, obs-text, SP, HT */
#define C_HOST 0x08   /* reg-name: unreserved and sub-delims ('%' handled apart) */
#define C_HEX 0x10
#define C_QDTEXT 0x20 /* quoted-string text: HT, SP, VCHAR but '"' and '\\', obs-text */

static const unsigned char http1__class[256] = {
    ['\t'] = C_FIELD | C_QDTEXT,
    [' '] = C_FIELD | C_QDTEXT,
    ['!'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['"'] = C_TARGET | C_FIELD,
    ['#'] = C_TCHAR | C_FIELD | C_QDTEXT,
    ['$'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['%'] = C_TCHAR | C_TARGET | C_FIELD | C_QDTEXT,
    ['&'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['\''] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['('] = C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    [')'] = C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['*'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['+'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    [','] = C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['-'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['.'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['/'] = C_TARGET | C_FIELD | C_QDTEXT,
    ['0' ... '9'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_HEX | C_QDTEXT,
    [':'] = C_TARGET | C_FIELD | C_QDTEXT,
    [';'] = C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['<'] = C_TARGET | C_FIELD | C_QDTEXT,
    ['='] = C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['>'] = C_TARGET | C_FIELD | C_QDTEXT,
    ['?'] = C_TARGET | C_FIELD | C_QDTEXT,
    ['@'] = C_TARGET | C_FIELD | C_QDTEXT,
    ['A' ... 'F'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_HEX | C_QDTEXT,
    ['G' ... 'Z'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['['] = C_TARGET | C_FIELD | C_QDTEXT,
    ['\\'] = C_TARGET | C_FIELD,
    [']'] = C_TARGET | C_FIELD | C_QDTEXT,
    ['^'] = C_TCHAR | C_TARGET | C_FIELD | C_QDTEXT,
    ['_'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['`'] = C_TCHAR | C_TARGET | C_FIELD | C_QDTEXT,
    ['a' ... 'f'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_HEX | C_QDTEXT,
    ['g' ... 'z'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    ['{'] = C_TARGET | C_FIELD | C_QDTEXT,
    ['|'] = C_TCHAR | C_TARGET | C_FIELD | C_QDTEXT,
    ['}'] = C_TARGET | C_FIELD | C_QDTEXT,
    ['~'] = C_TCHAR | C_TARGET | C_FIELD | C_HOST | C_QDTEXT,
    [0x80 ... 0xff] = C_FIELD | C_QDTEXT,
};

static inline bool http1__is(unsigned char c, unsigned char cls)
{
    return (http1__class[c] & cls) != 0;
}

static inline int http1__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    return (c | 0x20) - 'a' + 10;
}

/* Case-insensitive comparison of s[0..n) with the NUL-terminated lit. */
static bool http1__eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* The error for a byte c that cannot appear where it was found: a stray LF is
 * always reported as such, anything else as err. */
static inline int http1__bad(unsigned char c, int err)
{
    return c == '\n' ? HTTP1_E_BARE_LF : err;
}

/* b[i] is a CR: checks that a LF follows. */
static inline int http1__crlf(const char *b, size_t len, size_t i)
{
    if (i + 1 >= len)
        return HTTP1_INCOMPLETE;
    return b[i + 1] == '\n' ? 0 : HTTP1_E_BARE_CR;
}

/* ---- comma-separated lists ---- */

/* Yields the next element of the list v[0..len), whitespace-trimmed and
 * possibly empty, advancing *pos (start at 0). Returns false after the last. */
static bool http1__list_next(const char *v, size_t len, size_t *pos, const char **el, size_t *el_len)
{
    size_t i = *pos;
    if (i > len)
        return false;
    const char *comma = i < len ? memchr(v + i, ',', len - i) : NULL;
    size_t end = comma ? (size_t)(comma - v) : len;
    *pos = end + 1;
    while (i < end && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    *el = v + i;
    *el_len = end - i;
    return true;
}

static bool http1__has_token_n(const char *v, size_t len, const char *tok, size_t tok_len)
{
    size_t pos = 0;
    const char *el;
    size_t el_len;
    while (http1__list_next(v, len, &pos, &el, &el_len))
        if (el_len == tok_len && el_len > 0 && strncasecmp(el, tok, tok_len) == 0)
            return true;
    return false;
}

bool http1_header_has_token(const char *value, size_t len, const char *token)
{
    if (len == 0)
        return false; /* (value may then be NULL) */
    return http1__has_token_n(value, len, token, strlen(token));
}

/* ---- hosts and targets ---- */

/* Checks "host[:port]" per RFC 3986 (IP-literal or reg-name; IPv4 is a
 * reg-name here). The port, when present, is at most 65535; need_port makes
 * it mandatory and non-empty; allow_empty accepts "" as a whole. */
static bool http1__valid_hostport(const char *s, size_t n, bool need_port, bool allow_empty)
{
    size_t i = 0;
    if (n == 0)
        return allow_empty && !need_port;
    if (s[0] == '[') {
        for (i = 1; i < n && s[i] != ']'; i++)
            if (!http1__is((unsigned char)s[i], C_HEX) && s[i] != ':' && s[i] != '.')
                return false;
        if (i == n || i == 1)
            return false;
        i++;
    } else {
        while (i < n && s[i] != ':') {
            unsigned char c = (unsigned char)s[i];
            if (c == '%') {
                if (i + 2 >= n || !http1__is((unsigned char)s[i + 1], C_HEX) ||
                    !http1__is((unsigned char)s[i + 2], C_HEX))
                    return false;
                i += 3;
                continue;
            }
            if (!http1__is(c, C_HOST))
                return false;
            i++;
        }
        if (i == 0)
            return false; /* ":80" */
    }
    if (i == n)
        return !need_port;
    if (s[i] != ':')
        return false;
    i++;
    if (i == n)
        return !need_port; /* "host:" has an empty port, which RFC 3986 allows */
    if (n - i > 5)
        return false;
    unsigned port = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (unsigned)(s[i] - '0');
    }
    return port <= 65535;
}

/* Sets the target form, path and host of req from its method and target. */
static int http1__classify_target(struct http1_request *req)
{
    const char *t = req->target;
    size_t n = req->target_len;

    req->path = t + n;
    req->path_len = 0;
    req->host = NULL;
    req->host_len = 0;
    if (req->method_id == HTTP1_METHOD_CONNECT) {
        if (!http1__valid_hostport(t, n, true, false))
            return HTTP1_E_BAD_TARGET;
        req->target_form = HTTP1_TARGET_AUTHORITY;
        req->host = t;
        req->host_len = n;
        return 0;
    }
    if (t[0] == '/') {
        req->target_form = HTTP1_TARGET_ORIGIN;
        req->path = t;
        req->path_len = n;
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        if (req->method_id != HTTP1_METHOD_OPTIONS)
            return HTTP1_E_BAD_TARGET;
        req->target_form = HTTP1_TARGET_ASTERISK;
        return 0;
    }
    size_t i;
    if (n > 7 && strncasecmp(t, "http://", 7) == 0)
        i = 7;
    else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
        i = 8;
    else
        return HTTP1_E_BAD_TARGET;
    size_t a = i;
    while (i < n && t[i] != '/' && t[i] != '?')
        i++;
    /* userinfo ("user@host") is refused by the host check: '@' is not a host char */
    if (!http1__valid_hostport(t + a, i - a, false, false))
        return HTTP1_E_BAD_TARGET;
    req->target_form = HTTP1_TARGET_ABSOLUTE;
    req->host = t + a;
    req->host_len = i - a;
    req->path = t + i;
    req->path_len = n - i;
    return 0;
}

static enum http1_method http1__method_id(const char *m, size_t n)
{
    static const struct {
        const char *name;
        enum http1_method id;
    } methods[] = {
        {"GET", HTTP1_METHOD_GET},     {"HEAD", HTTP1_METHOD_HEAD},       {"POST", HTTP1_METHOD_POST},
        {"PUT", HTTP1_METHOD_PUT},     {"DELETE", HTTP1_METHOD_DELETE},   {"OPTIONS", HTTP1_METHOD_OPTIONS},
        {"PATCH", HTTP1_METHOD_PATCH}, {"CONNECT", HTTP1_METHOD_CONNECT},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i].name) == n && memcmp(methods[i].name, m, n) == 0)
            return methods[i].id;
    return HTTP1_METHOD_OTHER;
}

/* ---- start lines ---- */

/* Matches "HTTP/" DIGIT "." DIGIT at b[i..]. A mismatch in "HTTP/" is
 * prefix_err, in the digits HTTP1_E_BAD_VERSION. Stores the two digits. */
static int http1__version(const char *b, size_t len, size_t i, int prefix_err, int *major, int *minor)
{
    static const char pat[] = "HTTP/0.0";
    for (size_t k = 0; k < 8; k++) {
        if (i + k >= len)
            return HTTP1_INCOMPLETE;
        unsigned char c = (unsigned char)b[i + k];
        bool ok = (k == 5 || k == 7) ? (c >= '0' && c <= '9') : c == (unsigned char)pat[k];
        if (!ok)
            return http1__bad(c, k < 5 ? prefix_err : HTTP1_E_BAD_VERSION);
    }
    *major = b[i + 5] - '0';
    *minor = b[i + 7] - '0';
    return 0;
}

/* Parses the request line (after up to HTTP1_MAX_LEADING_CRLF empty lines).
 * Returns the offset after its CRLF, or a negative code. On HTTP1_INCOMPLETE,
 * *cls is the class of bytes that would extend the token being read without
 * deciding anything (0 if any byte may decide). */
static int http1__request_line(const char *b, size_t len, struct http1_request *req, unsigned char *cls)
{
    size_t i = 0;
    int r;

    for (unsigned empty = 0; i < len && (b[i] == '\r' || b[i] == '\n'); empty++) {
        if (b[i] == '\n')
            return HTTP1_E_BARE_LF;
        if (empty == HTTP1_MAX_LEADING_CRLF)
            return HTTP1_E_BAD_REQUEST_LINE;
        if ((r = http1__crlf(b, len, i)) < 0)
            return r;
        i += 2;
    }

    size_t start = i;
    while (i < len && http1__is((unsigned char)b[i], C_TCHAR))
        i++;
    if (i == len) {
        *cls = C_TCHAR;
        return HTTP1_INCOMPLETE;
    }
    if (b[i] != ' ' || i == start)
        return http1__bad((unsigned char)b[i], b[i] == '\r' ? HTTP1_E_BAD_REQUEST_LINE : HTTP1_E_BAD_METHOD);
    req->method = b + start;
    req->method_len = i - start;
    req->method_id = http1__method_id(req->method, req->method_len);

    start = ++i;
    while (i < len && http1__is((unsigned char)b[i], C_TARGET))
        i++;
    if (i == len) {
        *cls = C_TARGET;
        return HTTP1_INCOMPLETE;
    }
    if (b[i] != ' ' || i == start)
        return http1__bad((unsigned char)b[i], b[i] == '\r' ? HTTP1_E_BAD_REQUEST_LINE : HTTP1_E_BAD_TARGET);
    req->target = b + start;
    req->target_len = i - start;

    int major, minor;
    if ((r = http1__version(b, len, ++i, HTTP1_E_BAD_VERSION, &major, &minor)) < 0)
        return r;
    i += 8;
    if (i == len)
        return HTTP1_INCOMPLETE;
    if (b[i] != '\r')
        return http1__bad((unsigned char)b[i], HTTP1_E_BAD_VERSION);
    if ((r = http1__crlf(b, len, i)) < 0)
        return r;
    if (major != 1 || minor > 1)
        return HTTP1_E_VERSION_NOT_SUPPORTED;
    req->version_minor = minor;
    if ((r = http1__classify_target(req)) < 0)
        return r;
    return (int)(i + 2);
}

/* Parses "HTTP/1.x SP 3DIGIT [SP reason] CRLF". The reason's SP is optional
 * as many servers omit it. Returns the offset after the CRLF. */
static int http1__status_line(const char *b, size_t len, struct http1_response *resp, unsigned char *cls)
{
    int r, major, minor;
    if ((r = http1__version(b, len, 0, HTTP1_E_BAD_STATUS_LINE, &major, &minor)) < 0)
        return r;
    size_t i = 8;
    if (i == len)
        return HTTP1_INCOMPLETE;
    if (b[i] != ' ')
        return http1__bad((unsigned char)b[i], HTTP1_E_BAD_STATUS_LINE);
    int status = 0;
    for (i = 9; i < 12; i++) {
        if (i == len)
            return HTTP1_INCOMPLETE;
        if (b[i] < '0' || b[i] > '9')
            return http1__bad((unsigned char)b[i], HTTP1_E_BAD_STATUS_LINE);
        status = status * 10 + (b[i] - '0');
    }
    if (i == len)
        return HTTP1_INCOMPLETE;
    size_t rs = i;
    if (b[i] == ' ') {
        rs = ++i;
        while (i < len && http1__is((unsigned char)b[i], C_FIELD))
            i++;
        if (i == len) {
            *cls = C_FIELD;
            return HTTP1_INCOMPLETE;
        }
    }
    if (b[i] != '\r')
        return http1__bad((unsigned char)b[i], HTTP1_E_BAD_STATUS_LINE);
    if ((r = http1__crlf(b, len, i)) < 0)
        return r;
    if (major != 1 || minor > 1)
        return HTTP1_E_VERSION_NOT_SUPPORTED;
    if (status < 100 || status > 599)
        return HTTP1_E_BAD_STATUS_LINE;
    resp->version_minor = minor;
    resp->status = status;
    resp->reason = b + rs;
    resp->reason_len = i - rs;
    return (int)(i + 2);
}

/* ---- header lines ---- */

/* Parses header lines from b[i..] up to and including the empty line.
 * Returns the head length, or a negative code; *cls as for the request line. */
static int http1__headers(const char *b, size_t len, size_t i, struct http1_headers *hs, unsigned char *cls)
{
    int r;
    hs->count = 0;
    for (;;) {
        if (i == len)
            return HTTP1_INCOMPLETE;
        unsigned char c = (unsigned char)b[i];
        if (c == '\r') {
            if ((r = http1__crlf(b, len, i)) < 0)
                return r;
            return (int)(i + 2);
        }
        if (c == ' ' || c == '\t')
            return HTTP1_E_OBS_FOLD;
        if (hs->count == HTTP1_MAX_HEADERS)
            return c == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_TOO_MANY_HEADERS;

        size_t start = i;
        while (i < len && http1__is((unsigned char)b[i], C_TCHAR))
            i++;
        if (i == len) {
            *cls = C_TCHAR;
            return HTTP1_INCOMPLETE;
        }
        c = (unsigned char)b[i];
        if (c != ':' || i == start) {
            if (i > start && (c == ' ' || c == '\t'))
                return HTTP1_E_SPACE_BEFORE_COLON;
            return http1__bad(c, HTTP1_E_BAD_HEADER_NAME);
        }
        struct http1_header *h = &hs->h[hs->count];
        h->name = b + start;
        h->name_len = i - start;

        i++;
        while (i < len && (b[i] == ' ' || b[i] == '\t'))
            i++;
        size_t vstart = i, vend = i;
        for (;; i++) {
            if (i == len) {
                *cls = C_FIELD; /* also right while skipping the leading OWS */
                return HTTP1_INCOMPLETE;
            }
            c = (unsigned char)b[i];
            if (!http1__is(c, C_FIELD))
                break;
            if (c != ' ' && c != '\t')
                vend = i + 1;
        }
        if (c != '\r')
            return http1__bad(c, HTTP1_E_BAD_HEADER_VALUE);
        if ((r = http1__crlf(b, len, i)) < 0)
            return r;
        h->value = b + vstart;
        h->value_len = vend - vstart;
        hs->count++;
        i += 2;
    }
}

/* ---- what the headers say about framing and the connection ---- */

struct http1__facts {
    bool has_cl, has_te;
    uint64_t cl;
    unsigned te_codings, te_chunked; /* codings listed, of which "chunked" */
    bool te_last_chunked;
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool has_upgrade, expect_continue;
    unsigned host_count;
    const struct http1_header *host;
};

/* Parses one Content-Length value (a list of equal values is allowed) into f. */
static int http1__content_length(const struct http1_header *h, struct http1__facts *f)
{
    size_t pos = 0;
    const char *el;
    size_t n;
    while (http1__list_next(h->value, h->value_len, &pos, &el, &n)) {
        if (n == 0)
            return HTTP1_E_BAD_CONTENT_LENGTH;
        uint64_t v = 0;
        for (size_t k = 0; k < n; k++) {
            if (el[k] < '0' || el[k] > '9')
                return HTTP1_E_BAD_CONTENT_LENGTH;
            unsigned d = (unsigned)(el[k] - '0');
            if (v > ((uint64_t)HTTP1_CONTENT_LENGTH_MAX - d) / 10)
                return HTTP1_E_BAD_CONTENT_LENGTH;
            v = v * 10 + d;
        }
        if (f->has_cl && f->cl != v)
            return HTTP1_E_CONFLICTING_CONTENT_LENGTH;
        f->has_cl = true;
        f->cl = v;
    }
    return 0;
}

/* Adds one Transfer-Encoding line's codings to f (several lines form one list). */
static void http1__transfer_encoding(const struct http1_header *h, struct http1__facts *f)
{
    size_t pos = 0;
    const char *el;
    size_t n;
    f->has_te = true;
    while (http1__list_next(h->value, h->value_len, &pos, &el, &n)) {
        if (n == 0)
            continue;
        f->te_codings++;
        f->te_last_chunked = http1__eq(el, n, "chunked");
        f->te_chunked += f->te_last_chunked;
    }
}

/* Collects the facts of every header line; fails on a bad Content-Length. */
static int http1__collect_facts(const struct http1_headers *hs, struct http1__facts *f)
{
    int r;
    memset(f, 0, sizeof *f);
    for (size_t k = 0; k < hs->count; k++) {
        const struct http1_header *h = &hs->h[k];
        const char *n = h->name;
        size_t nl = h->name_len;
        if (http1__eq(n, nl, "content-length")) {
            if ((r = http1__content_length(h, f)) < 0)
                return r;
        } else if (http1__eq(n, nl, "transfer-encoding")) {
            http1__transfer_encoding(h, f);
        } else if (http1__eq(n, nl, "connection")) {
            f->conn_close |= http1_header_has_token(h->value, h->value_len, "close");
            f->conn_keep_alive |= http1_header_has_token(h->value, h->value_len, "keep-alive");
            f->conn_upgrade |= http1_header_has_token(h->value, h->value_len, "upgrade");
        } else if (http1__eq(n, nl, "upgrade")) {
            f->has_upgrade |= h->value_len > 0;
        } else if (http1__eq(n, nl, "expect")) {
            f->expect_continue |= http1_header_has_token(h->value, h->value_len, "100-continue");
        } else if (http1__eq(n, nl, "host")) {
            f->host_count++;
            f->host = h;
        }
    }
    return 0;
}

/* The verdict on Transfer-Encoding once present: only a lone "chunked" is
 * accepted. RFC 9112 6.1: HTTP/1.0 with Transfer-Encoding is faulty framing. */
static int http1__te_verdict(const struct http1__facts *f, int version_minor)
{
    if (f->has_cl)
        return HTTP1_E_CL_AND_TE;
    if (version_minor == 0 || f->te_codings == 0 || !f->te_last_chunked || f->te_chunked > 1)
        return HTTP1_E_BAD_TRANSFER_ENCODING;
    if (f->te_codings > 1)
        return HTTP1_E_UNSUPPORTED_TRANSFER_CODING;
    return 0;
}

static bool http1__keep_alive(const struct http1__facts *f, int version_minor)
{
    if (f->conn_close)
        return false;
    return version_minor == 1 || f->conn_keep_alive;
}

static int http1__request_semantics(struct http1_request *req)
{
    struct http1__facts f;
    int r;
    if ((r = http1__collect_facts(&req->headers, &f)) < 0)
        return r;

    req->body = HTTP1_BODY_NONE;
    req->content_length = 0;
    if (f.has_te) {
        if ((r = http1__te_verdict(&f, req->version_minor)) < 0)
            return r;
        req->body = HTTP1_BODY_CHUNKED;
    } else if (f.has_cl) {
        req->body = HTTP1_BODY_LENGTH;
        req->content_length = f.cl;
    }

    if (f.host_count > 1)
        return HTTP1_E_BAD_HOST;
    if (f.host_count == 1 && !http1__valid_hostport(f.host->value, f.host->value_len, false, true))
        return HTTP1_E_BAD_HOST;
    if (f.host_count == 0 && req->version_minor == 1)
        return HTTP1_E_MISSING_HOST;
    if (f.host_count == 1 && req->host == NULL) {
        req->host = f.host->value;
        req->host_len = f.host->value_len;
    }

    bool v11 = req->version_minor == 1;
    req->keep_alive = http1__keep_alive(&f, req->version_minor);
    /* RFC 9110 7.8 and 10.1.1: Upgrade and Expect are ignored in HTTP/1.0 */
    req->upgrade = v11 && f.conn_upgrade && f.has_upgrade;
    req->expect_100_continue = v11 && f.expect_continue;
    return 0;
}

static int http1__response_semantics(struct http1_response *resp, enum http1_method method)
{
    struct http1__facts f;
    int r;
    if ((r = http1__collect_facts(&resp->headers, &f)) < 0)
        return r;
    if (f.has_te && (r = http1__te_verdict(&f, resp->version_minor)) < 0)
        return r;

    int s = resp->status;
    resp->upgrade = false;
    resp->content_length = 0;
    if (s < 200) {
        resp->body = HTTP1_BODY_NONE;
        resp->upgrade = s == 101;
    } else if (method == HTTP1_METHOD_CONNECT && s < 300) {
        resp->body = HTTP1_BODY_NONE;
        resp->upgrade = true;
    } else if (method == HTTP1_METHOD_HEAD || s == 204 || s == 304) {
        resp->body = HTTP1_BODY_NONE;
    } else if (f.has_te) {
        resp->body = HTTP1_BODY_CHUNKED;
    } else if (f.has_cl) {
        resp->body = HTTP1_BODY_LENGTH;
        resp->content_length = f.cl;
    } else {
        resp->body = HTTP1_BODY_CLOSE;
    }
    resp->keep_alive =
        http1__keep_alive(&f, resp->version_minor) && resp->body != HTTP1_BODY_CLOSE && !resp->upgrade;
    return 0;
}

/* ---- entry points ---- */

/* Shared front of both parsers. After an HTTP1_INCOMPLETE, *hint is the
 * length parsed and *cls the class of bytes that only extend the token the
 * parser ran out in: when every new byte is of that class, a full parse would
 * run out in the same place, so the answer is HTTP1_INCOMPLETE again without
 * one. Any other byte (a separator, CR, LF, a bad char) costs a full parse,
 * which keeps the results identical to parsing the whole buffer at once.
 * Returns 1 when a full parse of the first *n bytes is needed. */
static int http1__prefilter(const char *buf, size_t len, size_t *hint, unsigned char *cls, size_t *max_head,
                            size_t *n)
{
    if (*max_head > INT_MAX)
        *max_head = INT_MAX;
    if (len <= *max_head && *hint != 0 && *hint <= len && *cls != 0) {
        size_t i = *hint;
        while (i < len && http1__is((unsigned char)buf[i], *cls))
            i++;
        if (i == len) {
            *hint = len;
            return 0;
        }
    }
    *cls = 0;
    *n = len < *max_head ? len : *max_head;
    return 1;
}

/* Shared back: INCOMPLETE past max_head is "too large"; the hint is kept
 * only while incomplete. */
static int http1__postfilter(int r, size_t len, size_t max_head, size_t *hint, unsigned char *cls)
{
    if (r == HTTP1_INCOMPLETE && len <= max_head) {
        *hint = len;
        return r;
    }
    *hint = 0;
    *cls = 0;
    return r == HTTP1_INCOMPLETE ? HTTP1_E_HEAD_TOO_LARGE : r;
}

int http1_parse_request(const char *buf, size_t len, struct http1_request *req, size_t max_head)
{
    size_t n;
    if (!http1__prefilter(buf, len, &req->scan_hint, &req->scan_class, &max_head, &n))
        return HTTP1_INCOMPLETE;
    int r = http1__request_line(buf, n, req, &req->scan_class);
    if (r >= 0)
        r = http1__headers(buf, n, (size_t)r, &req->headers, &req->scan_class);
    if (r >= 0) {
        req->head_len = (size_t)r;
        int e = http1__request_semantics(req);
        if (e < 0)
            r = e;
    }
    return http1__postfilter(r, len, max_head, &req->scan_hint, &req->scan_class);
}

int http1_parse_response(const char *buf, size_t len, struct http1_response *resp, size_t max_head,
                         enum http1_method request_method)
{
    size_t n;
    if (!http1__prefilter(buf, len, &resp->scan_hint, &resp->scan_class, &max_head, &n))
        return HTTP1_INCOMPLETE;
    int r = http1__status_line(buf, n, resp, &resp->scan_class);
    if (r >= 0)
        r = http1__headers(buf, n, (size_t)r, &resp->headers, &resp->scan_class);
    if (r >= 0) {
        resp->head_len = (size_t)r;
        int e = http1__response_semantics(resp, request_method);
        if (e < 0)
            r = e;
    }
    return http1__postfilter(r, len, max_head, &resp->scan_hint, &resp->scan_class);
}

int http1_head_maybe_complete(const char *buf, size_t len, size_t *from)
{
    for (size_t i = *from; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl)
            break;
        i = (size_t)(nl - buf) + 1;
        if (i < len && (buf[i] == '\n' || (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n')))
            return 1;
    }
    *from = len >= 2 ? len - 2 : 0;
    return 0;
}

/* Whether a full parse of the head in buf[0..len) can wait for more bytes. */
static bool http1__parse_can_wait(const char *buf, size_t len, size_t max_head, size_t *scan)
{
    if (*scan == 0) /* the first piece: parsed at once (most heads come whole) */
        return false;
    return !http1_head_maybe_complete(buf, len, scan) && len <= max_head;
}

/* After a full parse: where the next search resumes (leading empty lines look like an end). */
static int http1__parsed(int rc, size_t len, size_t *scan)
{
    if (rc == HTTP1_INCOMPLETE)
        *scan = len >= 2 ? len - 2 : 1;
    return rc;
}

int http1_parse_request_from(const char *buf, size_t len, struct http1_request *req, size_t max_head,
                             size_t *scan)
{
    if (http1__parse_can_wait(buf, len, max_head, scan))
        return HTTP1_INCOMPLETE;
    return http1__parsed(http1_parse_request(buf, len, req, max_head), len, scan);
}

int http1_parse_response_from(const char *buf, size_t len, struct http1_response *resp, size_t max_head,
                              enum http1_method request_method, size_t *scan)
{
    if (http1__parse_can_wait(buf, len, max_head, scan))
        return HTTP1_INCOMPLETE;
    return http1__parsed(http1_parse_response(buf, len, resp, max_head, request_method), len, scan);
}

int http1_request_error_status(int err)
{
    switch (err) {
    case HTTP1_E_HEAD_TOO_LARGE:
    case HTTP1_E_TOO_MANY_HEADERS: return 431;
    case HTTP1_E_UNSUPPORTED_TRANSFER_CODING: return 501;
    case HTTP1_E_VERSION_NOT_SUPPORTED: return 505;
    default: return 400;
    }
}

const char *http1_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case HTTP1_INCOMPLETE: return "incomplete message";
    case HTTP1_E_HEAD_TOO_LARGE: return "message head too large";
    case HTTP1_E_TOO_MANY_HEADERS: return "too many header fields";
    case HTTP1_E_BARE_LF: return "LF without CR";
    case HTTP1_E_BARE_CR: return "CR without LF";
    case HTTP1_E_BAD_REQUEST_LINE: return "malformed request line";
    case HTTP1_E_BAD_METHOD: return "invalid method";
    case HTTP1_E_BAD_TARGET: return "invalid request target";
    case HTTP1_E_BAD_VERSION: return "malformed HTTP version";
    case HTTP1_E_VERSION_NOT_SUPPORTED: return "HTTP version not supported";
    case HTTP1_E_BAD_STATUS_LINE: return "malformed status line";
    case HTTP1_E_OBS_FOLD: return "obsolete header line folding";
    case HTTP1_E_BAD_HEADER_NAME: return "invalid header field name";
    case HTTP1_E_SPACE_BEFORE_COLON: return "whitespace before colon in header field";
    case HTTP1_E_BAD_HEADER_VALUE: return "invalid character in header field value";
    case HTTP1_E_BAD_CONTENT_LENGTH: return "invalid Content-Length";
    case HTTP1_E_CONFLICTING_CONTENT_LENGTH: return "conflicting Content-Length values";
    case HTTP1_E_CL_AND_TE: return "both Content-Length and Transfer-Encoding";
    case HTTP1_E_BAD_TRANSFER_ENCODING: return "invalid Transfer-Encoding";
    case HTTP1_E_UNSUPPORTED_TRANSFER_CODING: return "unsupported transfer coding";
    case HTTP1_E_MISSING_HOST: return "missing Host header";
    case HTTP1_E_BAD_HOST: return "invalid or repeated Host header";
    case HTTP1_E_BAD_CHUNK_SIZE: return "invalid chunk size";
    case HTTP1_E_CHUNK_LINE_TOO_LONG: return "chunk size line too long";
    case HTTP1_E_BAD_CHUNK_EXT: return "invalid chunk extension";
    case HTTP1_E_BAD_CHUNK_END: return "chunk data not followed by CRLF";
    case HTTP1_E_BAD_TRAILER: return "invalid trailer field";
    case HTTP1_E_TRAILER_TOO_LARGE: return "trailer section too large";
    default: return "unknown error";
    }
}

/* ---- header helpers ---- */

const struct http1_header *http1_find_header(const struct http1_headers *hs, const char *name)
{
    size_t n = strlen(name);
    for (size_t k = 0; k < hs->count; k++)
        if (hs->h[k].name_len == n && strncasecmp(hs->h[k].name, name, n) == 0)
            return &hs->h[k];
    return NULL;
}

bool http1_is_hop_by_hop(const struct http1_headers *hs, const char *name, size_t name_len)
{
    /* by length first: this runs for every header line of every head relayed */
#define HOP(lit)                                                                                             \
    {                                                                                                        \
        lit, sizeof(lit) - 1                                                                                 \
    }
    static const struct {
        const char *name;
        size_t len;
    } fixed[] = {
        HOP("connection"),
        HOP("keep-alive"),
        HOP("proxy-connection"),
        HOP("te"),
        HOP("trailer"),
        HOP("upgrade"),
        HOP("transfer-encoding"),
        HOP("proxy-authenticate"),
        HOP("proxy-authorization"),
    };
#undef HOP
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        if (fixed[k].len == name_len && strncasecmp(name, fixed[k].name, name_len) == 0)
            return true;
    if (!hs || name_len == 0 || http1__eq(name, name_len, "host") ||
        http1__eq(name, name_len, "content-length"))
        return false;
    for (size_t k = 0; k < hs->count; k++) {
        const struct http1_header *h = &hs->h[k];
        if (h->name_len == 10 && h->value_len >= name_len && http1__eq(h->name, h->name_len, "connection") &&
            http1__has_token_n(h->value, h->value_len, name, name_len))
            return true;
    }
    return false;
}

/* ---- chunked transfer coding ---- */

/* States of struct http1_chunked. The chunk-size line runs from CH_SIZE_FIRST
 * to CH_SIZE_LF; its grammar (RFC 9112 7.1.1):
 *   chunk-size [ BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] ]... CRLF
 */
enum http1__ch_state {
    CH_SIZE_FIRST = 0, /* first hex digit of a chunk size */
    CH_SIZE,           /* more hex digits, ';', BWS or CR */
    CH_SIZE_BWS,       /* whitespace after the size: only ';' may follow */
    CH_EXT_NAME_BWS,   /* after ';': whitespace, then an extension name */
    CH_EXT_NAME,       /* in an extension name */
    CH_EXT_NAME_END,   /* whitespace after a name: '=', ';' or CR */
    CH_EXT_VAL_BWS,    /* after '=': whitespace, then a token or quoted string */
    CH_EXT_TOKEN,      /* in a token value */
    CH_EXT_QUOTED,     /* in a quoted-string value */
    CH_EXT_QUOTED_ESC, /* after a backslash in a quoted string */
    CH_EXT_VAL_END,    /* whitespace after a value: ';' or CR */
    CH_SIZE_LF,        /* LF ending the size line */
    CH_DATA,           /* chunk data, `remaining` bytes to go */
    CH_DATA_CR,        /* CR after the data */
    CH_DATA_LF,        /* LF after the data */
    CH_TRAILER_START,  /* start of a trailer field line, or CR of the final CRLF */
    CH_TRAILER_NAME,   /* in a trailer field name */
    CH_TRAILER_VALUE,  /* in a trailer field value */
    CH_TRAILER_LF,     /* LF ending a trailer field line */
    CH_FINAL_LF,       /* LF of the final CRLF */
    CH_DONE,
};

void http1_chunked_init(struct http1_chunked *c, size_t max_trailer)
{
    memset(c, 0, sizeof *c);
    c->state = CH_SIZE_FIRST;
    c->max_trailer = max_trailer;
}

bool http1_chunked_done(const struct http1_chunked *c)
{
    return c->state == CH_DONE;
}

/* Where the size line goes after a whitespace, ';', CR or other byte ch that
 * ends a part of it; other is the error for anything else. */
static int http1__ch_size_line_end(struct http1_chunked *c, unsigned char ch, int ws_state, int other)
{
    if (ch == ' ' || ch == '\t')
        c->state = ws_state;
    else if (ch == ';')
        c->state = CH_EXT_NAME_BWS;
    else if (ch == '\r')
        c->state = CH_SIZE_LF;
    else
        return http1__bad(ch, other);
    return 0;
}

/* Feeds one byte of a chunk-size line. */
static int http1__ch_size_byte(struct http1_chunked *c, unsigned char ch)
{
    if (c->state != CH_SIZE_LF && ch != '\r' && ++c->line_len > HTTP1_CHUNK_LINE_MAX)
        return HTTP1_E_CHUNK_LINE_TOO_LONG;
    bool ws = ch == ' ' || ch == '\t';
    switch (c->state) {
    case CH_SIZE_FIRST:
    case CH_SIZE:
        if (http1__is(ch, C_HEX)) {
            unsigned d = (unsigned)http1__hexval(ch);
            if (c->remaining > ((uint64_t)HTTP1_CONTENT_LENGTH_MAX - d) / 16)
                return HTTP1_E_BAD_CHUNK_SIZE;
            c->remaining = c->remaining * 16 + d;
            c->state = CH_SIZE;
            return 0;
        }
        if (c->state == CH_SIZE_FIRST)
            return http1__bad(ch, HTTP1_E_BAD_CHUNK_SIZE);
        return http1__ch_size_line_end(c, ch, CH_SIZE_BWS, HTTP1_E_BAD_CHUNK_SIZE);
    case CH_SIZE_BWS:
        if (ws)
            return 0;
        if (ch == ';') {
            c->state = CH_EXT_NAME_BWS;
            return 0;
        }
        return http1__bad(ch, HTTP1_E_BAD_CHUNK_SIZE);
    case CH_EXT_NAME_BWS:
        if (ws)
            return 0;
        if (!http1__is(ch, C_TCHAR))
            return http1__bad(ch, HTTP1_E_BAD_CHUNK_EXT);
        c->state = CH_EXT_NAME;
        return 0;
    case CH_EXT_NAME:
    case CH_EXT_NAME_END:
        if (c->state == CH_EXT_NAME && http1__is(ch, C_TCHAR))
            return 0;
        if (ch == '=') {
            c->state = CH_EXT_VAL_BWS;
            return 0;
        }
        return http1__ch_size_line_end(c, ch, CH_EXT_NAME_END, HTTP1_E_BAD_CHUNK_EXT);
    case CH_EXT_VAL_BWS:
        if (ws)
            return 0;
        if (ch == '"')
            c->state = CH_EXT_QUOTED;
        else if (http1__is(ch, C_TCHAR))
            c->state = CH_EXT_TOKEN;
        else
            return http1__bad(ch, HTTP1_E_BAD_CHUNK_EXT);
        return 0;
    case CH_EXT_TOKEN:
    case CH_EXT_VAL_END:
        if (c->state == CH_EXT_TOKEN && http1__is(ch, C_TCHAR))
            return 0;
        return http1__ch_size_line_end(c, ch, CH_EXT_VAL_END, HTTP1_E_BAD_CHUNK_EXT);
    case CH_EXT_QUOTED:
        if (ch == '"')
            c->state = CH_EXT_VAL_END;
        else if (ch == '\\')
            c->state = CH_EXT_QUOTED_ESC;
        else if (!http1__is(ch, C_QDTEXT))
            return http1__bad(ch, HTTP1_E_BAD_CHUNK_EXT);
        return 0;
    case CH_EXT_QUOTED_ESC:
        if (!http1__is(ch, C_FIELD))
            return http1__bad(ch, HTTP1_E_BAD_CHUNK_EXT);
        c->state = CH_EXT_QUOTED;
        return 0;
    default: /* CH_SIZE_LF */
        if (ch != '\n')
            return HTTP1_E_BARE_CR;
        c->line_len = 0;
        c->state = c->remaining ? CH_DATA : CH_TRAILER_START;
        return 0;
    }
}

/* Feeds one byte of the trailer section (after the last chunk). */
static int http1__ch_trailer_byte(struct http1_chunked *c, unsigned char ch)
{
    if (c->state == CH_FINAL_LF) {
        if (ch != '\n')
            return HTTP1_E_BARE_CR;
        c->state = CH_DONE;
        return 0;
    }
    if (c->state == CH_TRAILER_START && ch == '\r') {
        c->state = CH_FINAL_LF;
        return 0;
    }
    if (++c->trailer_len > c->max_trailer)
        return HTTP1_E_TRAILER_TOO_LARGE;
    switch (c->state) {
    case CH_TRAILER_START:
        if (!http1__is(ch, C_TCHAR)) /* includes obs-fold */
            return http1__bad(ch, HTTP1_E_BAD_TRAILER);
        c->state = CH_TRAILER_NAME;
        return 0;
    case CH_TRAILER_NAME:
        if (ch == ':')
            c->state = CH_TRAILER_VALUE;
        else if (!http1__is(ch, C_TCHAR))
            return http1__bad(ch, HTTP1_E_BAD_TRAILER);
        return 0;
    case CH_TRAILER_VALUE:
        if (ch == '\r')
            c->state = CH_TRAILER_LF;
        else if (!http1__is(ch, C_FIELD))
            return http1__bad(ch, HTTP1_E_BAD_TRAILER);
        return 0;
    default: /* CH_TRAILER_LF */
        if (ch != '\n')
            return HTTP1_E_BARE_CR;
        c->state = CH_TRAILER_START;
        return 0;
    }
}

/* Feeds one byte outside chunk data. */
static int http1__ch_byte(struct http1_chunked *c, unsigned char ch)
{
    switch (c->state) {
    case CH_DATA_CR:
        if (ch != '\r')
            return http1__bad(ch, HTTP1_E_BAD_CHUNK_END);
        c->state = CH_DATA_LF;
        return 0;
    case CH_DATA_LF:
        if (ch != '\n')
            return HTTP1_E_BARE_CR;
        c->state = CH_SIZE_FIRST;
        return 0;
    case CH_TRAILER_START:
    case CH_TRAILER_NAME:
    case CH_TRAILER_VALUE:
    case CH_TRAILER_LF:
    case CH_FINAL_LF: return http1__ch_trailer_byte(c, ch);
    default: return http1__ch_size_byte(c, ch);
    }
}

/* The scanner and the decoder: with data_len NULL runs through all of buf,
 * else stops after the first run of payload bytes and reports it. */
static ssize_t http1__chunked_run(struct http1_chunked *c, const char *buf, size_t len, size_t *data_off,
                                  size_t *data_len)
{
    size_t i = 0;
    int err = 0;

    if (data_len)
        *data_off = *data_len = 0;
    if (c->error)
        return c->error;
    while (i < len && c->state != CH_DONE) {
        if (c->state == CH_DATA) {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            if (data_len) {
                *data_off = i;
                *data_len = n;
                i += n;
                break;
            }
            i += n;
            continue;
        }
        if ((err = http1__ch_byte(c, (unsigned char)buf[i])) < 0)
            break;
        i++;
    }
    c->total += i;
    if (err < 0) {
        c->error = err;
        return err;
    }
    return (ssize_t)i;
}

ssize_t http1_chunked_scan(struct http1_chunked *c, const char *buf, size_t len)
{
    return http1__chunked_run(c, buf, len, NULL, NULL);
}

ssize_t http1_chunked_decode(struct http1_chunked *c, const char *buf, size_t len, size_t *data_off,
                             size_t *data_len)
{
    return http1__chunked_run(c, buf, len, data_off, data_len);
}

size_t http1_chunk_header(char out[HTTP1_CHUNK_HEADER_MAX], uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 15];
        n >>= 4;
    } while (n);
    size_t len = 0;
    while (k)
        out[len++] = tmp[--k];
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}
