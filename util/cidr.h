/* cidr: lists of IPv4 and IPv6 networks, as WHT_PROXY_PROTOCOL and
 * WHT_TRUSTED_PROXIES give them ("10.0.0.0/8, 127.0.0.1/32, ::1/128"), and
 * the test of an address against such a list. libc only; no I/O. */
#ifndef WHT_UTIL_CIDR_H
#define WHT_UTIL_CIDR_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_CIDR_MAX 64       /* networks in one list */
#define UTIL_CIDR_MAX_ENTRY 64 /* bytes of one entry, spaces around it aside */

/* One network. An IPv4-mapped IPv6 network (::ffff:a.b.c.d/96 and longer)
 * is stored as the IPv4 network it names. */
struct util_cidr {
    uint8_t v6;   /* 0: IPv4, the address in addr[0..3]; 1: IPv6 */
    uint8_t bits; /* prefix length: 0..32, or 0..128 */
    uint8_t addr[16];
};

struct util_cidr_list {
    size_t count;
    struct util_cidr net[UTIL_CIDR_MAX];
};

/* Results: 0 is success, errors are negative. */
enum util_cidr_err {
    UTIL_CIDR_OK = 0,
    UTIL_CIDR_E_ADDR = -1,      /* not an IPv4 or IPv6 address in numeric form */
    UTIL_CIDR_E_PREFIX = -2,    /* the /length is not 0..32 (IPv4) or 0..128 (IPv6) in decimal */
    UTIL_CIDR_E_HOST_BITS = -3, /* bits set after the prefix (10.0.0.1/8): which network was meant? */
    UTIL_CIDR_E_EMPTY = -4,     /* an empty entry (",,", a trailing ',') */
    UTIL_CIDR_E_TOO_MANY = -5,  /* over UTIL_CIDR_MAX networks */
};

/* A short static description of a result; never NULL. */
const char *util_cidr_strerror(int err);

/* Parses len bytes of s (no NUL needed): entries separated by ',', each an
 * address with an optional "/length" (without one: the single address),
 * with spaces or tabs around it allowed. IPv4: four decimal parts without
 * leading zeros; IPv6: as inet_pton() reads it (no zone, no brackets). The
 * length: decimal, no sign, no leading zero. "" (or only blanks) is the
 * empty list. On success returns 0 with *out filled; else a negative
 * util_cidr_err, *out's count 0, and the entry at fault in *bad_off and
 * *bad_len (offsets into s; either pointer may be NULL). */
int util_cidr_parse_list(const char *s, size_t len, struct util_cidr_list *out, size_t *bad_off,
                         size_t *bad_len);

/* 1 if the address (4 bytes with v6 0, 16 bytes with v6 1, network order)
 * is in one of l's networks, else 0. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) is tested as the IPv4 address a.b.c.d. */
int util_cidr_match(const struct util_cidr_list *l, int v6, const uint8_t *addr);

/* The same for an address in numeric text form ("1.2.3.4", "::1"); 0 for
 * text that is not one. */
int util_cidr_match_text(const struct util_cidr_list *l, const char *ip);

#endif
