/* proxyproto: the PROXY protocol header, v1 and v2 (see proxyproto.h). */
#include <arpa/inet.h>
#include <string.h>

#include "node/proxyproto.h"
#include "util/util.h"

static const uint8_t v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};
static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define V2_CMD_LOCAL 0
#define V2_CMD_PROXY 1
#define V2_AF_UNSPEC 0
#define V2_AF_INET 1
#define V2_AF_INET6 2
#define V2_AF_UNIX 3
#define V2_STREAM 1
#define V2_DGRAM 2

const char *proxyproto_strerror(int rc)
{
    if (rc > 0)
        return "ok";
    switch (rc) {
    case PROXYPROTO_INCOMPLETE: return "incomplete PROXY header";
    case PROXYPROTO_E_NOT_PROXY: return "no PROXY protocol header";
    case PROXYPROTO_E_V1_TOO_LONG: return "PROXY v1 line too long (over 107 bytes)";
    case PROXYPROTO_E_V1_SYNTAX: return "malformed PROXY v1 line";
    case PROXYPROTO_E_V1_PROTOCOL: return "PROXY v1 protocol not TCP4, TCP6 or UNKNOWN";
    case PROXYPROTO_E_V1_ADDRESS: return "bad address in PROXY v1 line";
    case PROXYPROTO_E_V1_PORT: return "bad port in PROXY v1 line";
    case PROXYPROTO_E_V2_VERSION: return "PROXY v2 header with a version other than 2";
    case PROXYPROTO_E_V2_COMMAND: return "PROXY v2 command not LOCAL or PROXY";
    case PROXYPROTO_E_V2_FAMILY: return "PROXY v2 address family or transport unknown";
    case PROXYPROTO_E_V2_TOO_LONG: return "PROXY v2 header too long";
    case PROXYPROTO_E_V2_LENGTH: return "PROXY v2 length too short for its addresses";
    case PROXYPROTO_E_V2_TLV: return "malformed PROXY v2 TLVs";
    }
    return "unknown PROXY protocol error";
}

/* 1 if the first min(len, n) bytes of p are those of sig. */
static int starts(const uint8_t *p, size_t len, const uint8_t *sig, size_t n)
{
    return memcmp(p, sig, len < n ? len : n) == 0;
}

int proxyproto_looks_like(const uint8_t *p, size_t len)
{
    return len > 0 && (starts(p, len, v1_sig, sizeof v1_sig) || starts(p, len, v2_sig, sizeof v2_sig));
}

/* ---- v1 ---------------------------------------------------------------------------------- */

/* The next field of the line at *p (up to a single space or end), moved past. */
static int field(const char **p, const char *end, const char **f, size_t *n)
{
    const char *sp = memchr(*p, ' ', (size_t)(end - *p));
    *f = *p;
    *n = (size_t)((sp ? sp : end) - *p);
    *p = sp ? sp + 1 : end;
    return *n > 0 && !(sp && sp + 1 == end) ? 0 : PROXYPROTO_E_V1_SYNTAX;
}

static int v1_address(const char *f, size_t n, int v6, uint8_t *out)
{
    char text[64];
    if (n >= sizeof text || memchr(f, 0, n))
        return PROXYPROTO_E_V1_ADDRESS;
    memcpy(text, f, n);
    text[n] = 0;
    return inet_pton(v6 ? AF_INET6 : AF_INET, text, out) == 1 ? 0 : PROXYPROTO_E_V1_ADDRESS;
}

static int v1_port(const char *f, size_t n, uint16_t *out)
{
    int port = util_port_parse(f, n, UTIL_HP_PORT_ZERO);
    if (port < 0)
        return PROXYPROTO_E_V1_PORT;
    *out = (uint16_t)port;
    return 0;
}

/* The line between "PROXY " and CR LF: len bytes at s. */
static int v1_fields(const char *s, size_t len, struct proxyproto_header *h)
{
    const char *p = s, *end = s + len, *f[5];
    size_t n[5];
    if (len >= 7 && memcmp(s, "UNKNOWN", 7) == 0 && (len == 7 || s[7] == ' ')) {
        h->local = 1; /* the rest of the line is ignored (the spec) */
        return 0;
    }
    for (int i = 0; i < 5; i++) {
        if (p == end || field(&p, end, &f[i], &n[i]) != 0)
            return i == 0 ? PROXYPROTO_E_V1_PROTOCOL : PROXYPROTO_E_V1_SYNTAX;
        if (i == 0 && (n[0] != 4 || (memcmp(f[0], "TCP4", 4) != 0 && memcmp(f[0], "TCP6", 4) != 0)))
            return PROXYPROTO_E_V1_PROTOCOL;
    }
    if (p != end)
        return PROXYPROTO_E_V1_SYNTAX; /* a sixth field */
    h->v6 = f[0][3] == '6';
    int rc;
    if ((rc = v1_address(f[1], n[1], h->v6, h->src)) != 0 ||
        (rc = v1_address(f[2], n[2], h->v6, h->dst)) != 0 || (rc = v1_port(f[3], n[3], &h->src_port)) != 0 ||
        (rc = v1_port(f[4], n[4], &h->dst_port)) != 0)
        return rc;
    return 0;
}

static int parse_v1(const uint8_t *p, size_t len, struct proxyproto_header *h)
{
    size_t scan = len < PROXYPROTO_V1_MAX ? len : PROXYPROTO_V1_MAX;
    const uint8_t *lf = memchr(p, '\n', scan);
    if (!lf)
        return len >= PROXYPROTO_V1_MAX ? PROXYPROTO_E_V1_TOO_LONG : PROXYPROTO_INCOMPLETE;
    size_t n = (size_t)(lf - p) + 1; /* the header's length */
    if (n < sizeof v1_sig + 2 || lf[-1] != '\r')
        return PROXYPROTO_E_V1_SYNTAX;
    const char *body = (const char *)p + sizeof v1_sig;
    size_t blen = n - sizeof v1_sig - 2;
    if (memchr(body, '\r', blen))
        return PROXYPROTO_E_V1_SYNTAX;
    h->version = 1;
    int rc = v1_fields(body, blen, h);
    return rc < 0 ? rc : (int)n;
}

/* ---- v2 ---------------------------------------------------------------------------------- */

/* The TLVs: len bytes at p, each type (1), length (2, big-endian), value. */
static int v2_tlvs(const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (len - off < 3)
            return PROXYPROTO_E_V2_TLV;
        size_t vlen = (size_t)p[off + 1] << 8 | p[off + 2];
        if (vlen > len - off - 3)
            return PROXYPROTO_E_V2_TLV;
        off += 3 + vlen;
    }
    return 0;
}

/* The block after the 16-byte head of a PROXY command (len bytes at p). */
static int v2_proxy(uint8_t fam, const uint8_t *p, size_t len, struct proxyproto_header *h)
{
    unsigned af = fam >> 4, tr = fam & 15;
    static const size_t addr_len[4] = {0, 12, 36, 216};
    if (af == V2_AF_UNSPEC) {
        h->local = 1; /* no addresses: what follows is ignored (the spec) */
        return 0;
    }
    if (len < addr_len[af])
        return PROXYPROTO_E_V2_LENGTH;
    int rc = v2_tlvs(p + addr_len[af], len - addr_len[af]);
    if (rc != 0)
        return rc;
    if (af == V2_AF_UNIX || tr != V2_STREAM) {
        h->local = 1; /* not a TCP/IP client: the connection's own address is all there is */
        return 0;
    }
    size_t a = af == V2_AF_INET ? 4 : 16;
    h->v6 = af == V2_AF_INET6;
    memcpy(h->src, p, a);
    memcpy(h->dst, p + a, a);
    h->src_port = (uint16_t)(p[2 * a] << 8 | p[2 * a + 1]);
    h->dst_port = (uint16_t)(p[2 * a + 2] << 8 | p[2 * a + 3]);
    return 0;
}

static int parse_v2(const uint8_t *p, size_t len, struct proxyproto_header *h)
{
    if (len > 12 && (p[12] >> 4) != 2)
        return PROXYPROTO_E_V2_VERSION;
    if (len > 12 && (p[12] & 15) > V2_CMD_PROXY)
        return PROXYPROTO_E_V2_COMMAND;
    int local = len > 12 && (p[12] & 15) == V2_CMD_LOCAL;
    if (len > 13 && !local && ((p[13] >> 4) > V2_AF_UNIX || (p[13] & 15) > V2_DGRAM))
        return PROXYPROTO_E_V2_FAMILY;
    if (len < PROXYPROTO_V2_HEAD)
        return PROXYPROTO_INCOMPLETE;
    size_t blen = (size_t)p[14] << 8 | p[15];
    if (blen > PROXYPROTO_V2_MAX_LEN)
        return PROXYPROTO_E_V2_TOO_LONG;
    if (len < PROXYPROTO_V2_HEAD + blen)
        return PROXYPROTO_INCOMPLETE;
    h->version = 2;
    if (local) {
        h->local = 1; /* the family and the block are ignored (the spec) */
    } else {
        int rc = v2_proxy(p[13], p + PROXYPROTO_V2_HEAD, blen, h);
        if (rc != 0)
            return rc;
    }
    return (int)(PROXYPROTO_V2_HEAD + blen);
}

int proxyproto_parse(const uint8_t *p, size_t len, struct proxyproto_header *h)
{
    memset(h, 0, sizeof *h);
    if (len == 0)
        return PROXYPROTO_INCOMPLETE;
    if (p[0] == 'P') {
        if (!starts(p, len, v1_sig, sizeof v1_sig))
            return PROXYPROTO_E_NOT_PROXY;
        return len <= sizeof v1_sig ? PROXYPROTO_INCOMPLETE : parse_v1(p, len, h);
    }
    if (!starts(p, len, v2_sig, sizeof v2_sig))
        return PROXYPROTO_E_NOT_PROXY;
    return len <= sizeof v2_sig ? PROXYPROTO_INCOMPLETE : parse_v2(p, len, h);
}

int proxyproto_source_ip(const struct proxyproto_header *h, char *out, size_t cap)
{
    return inet_ntop(h->v6 ? AF_INET6 : AF_INET, h->src, out, (socklen_t)cap) ? 0 : -1;
}
