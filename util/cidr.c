/* cidr: network lists and the address test (see cidr.h). */
#include <arpa/inet.h>
#include <string.h>

#include "util/cidr.h"

const char *util_cidr_strerror(int err)
{
    switch (err) {
    case UTIL_CIDR_OK: return "ok";
    case UTIL_CIDR_E_ADDR: return "not a numeric IPv4 or IPv6 address";
    case UTIL_CIDR_E_PREFIX: return "bad prefix length: expected /0 to /32 for IPv4, /0 to /128 for IPv6";
    case UTIL_CIDR_E_HOST_BITS: return "address bits set after the prefix length (write the network address)";
    case UTIL_CIDR_E_EMPTY: return "empty entry";
    case UTIL_CIDR_E_TOO_MANY: return "too many networks (at most 64)";
    }
    return "unknown cidr error";
}

static const uint8_t util__mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The prefix length: 1..3 decimal digits, no leading zero, at most max. */
static int util__prefix(const char *s, size_t len, int max)
{
    int v = 0;
    if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
        return UTIL_CIDR_E_PREFIX;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return UTIL_CIDR_E_PREFIX;
        v = v * 10 + (s[i] - '0');
    }
    return v > max ? UTIL_CIDR_E_PREFIX : v;
}

/* 1 if no bit of addr after the first bits is set. */
static int util__host_bits_clear(const uint8_t *addr, size_t bytes, unsigned bits)
{
    for (size_t i = bits / 8; i < bytes; i++) {
        uint8_t mask = i == bits / 8 ? (uint8_t)(0xffu >> (bits % 8)) : 0xff;
        if (addr[i] & mask)
            return 0;
    }
    return 1;
}

/* One entry, without blanks around it. */
static int util__entry(const char *s, size_t len, struct util_cidr *out)
{
    char text[UTIL_CIDR_MAX_ENTRY + 1];
    if (len == 0)
        return UTIL_CIDR_E_EMPTY;
    if (len > UTIL_CIDR_MAX_ENTRY)
        return UTIL_CIDR_E_ADDR;
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    memcpy(text, s, alen);
    text[alen] = 0;
    memset(out, 0, sizeof *out);
    out->v6 = memchr(text, ':', alen) != NULL;
    if (alen == 0 || memchr(text, 0, alen) || inet_pton(out->v6 ? AF_INET6 : AF_INET, text, out->addr) != 1)
        return UTIL_CIDR_E_ADDR;
    int max = out->v6 ? 128 : 32;
    int bits = slash ? util__prefix(slash + 1, len - alen - 1, max) : max;
    if (bits < 0)
        return bits;
    if (!util__host_bits_clear(out->addr, out->v6 ? 16 : 4, (unsigned)bits))
        return UTIL_CIDR_E_HOST_BITS;
    out->bits = (uint8_t)bits;
    if (out->v6 && bits >= 96 && memcmp(out->addr, util__mapped, 12) == 0) {
        memmove(out->addr, out->addr + 12, 4); /* ::ffff:a.b.c.d/n is a.b.c.d/(n-96) */
        memset(out->addr + 4, 0, 12);
        out->v6 = 0;
        out->bits = (uint8_t)(bits - 96);
    }
    return 0;
}

static int util__blank(char c)
{
    return c == ' ' || c == '\t';
}

int util_cidr_parse_list(const char *s, size_t len, struct util_cidr_list *out, size_t *bad_off,
                         size_t *bad_len)
{
    size_t i = 0, count = 0;
    int rc = 0;
    out->count = 0;
    while (i < len && util__blank(s[i]))
        i++;
    if (i == len)
        return 0; /* the empty list */
    for (i = 0; i <= len;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t end = comma ? (size_t)(comma - s) : len, a = i, b = end;
        while (a < b && util__blank(s[a]))
            a++;
        while (b > a && util__blank(s[b - 1]))
            b--;
        rc = count == UTIL_CIDR_MAX ? UTIL_CIDR_E_TOO_MANY : util__entry(s + a, b - a, &out->net[count]);
        if (rc != 0) {
            if (bad_off)
                *bad_off = a;
            if (bad_len)
                *bad_len = b - a;
            return rc;
        }
        count++;
        i = end + 1;
    }
    out->count = count;
    return 0;
}

/* 1 if the first bits of a and b are equal. */
static int util__prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    size_t whole = bits / 8;
    if (memcmp(a, b, whole) != 0)
        return 0;
    if (bits % 8 == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff00u >> (bits % 8));
    return (a[whole] & mask) == (b[whole] & mask);
}

int util_cidr_match(const struct util_cidr_list *l, int v6, const uint8_t *addr)
{
    if (v6 && memcmp(addr, util__mapped, 12) == 0) {
        v6 = 0;
        addr += 12;
    }
    for (size_t i = 0; i < l->count; i++) {
        const struct util_cidr *n = &l->net[i];
        if (n->v6 == (v6 != 0) && util__prefix_equal(n->addr, addr, n->bits))
            return 1;
    }
    return 0;
}

int util_cidr_match_text(const struct util_cidr_list *l, const char *ip)
{
    uint8_t addr[16];
    int v6 = strchr(ip, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, ip, addr) != 1)
        return 0;
    return util_cidr_match(l, v6, addr);
}
