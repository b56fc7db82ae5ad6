/* util: small pieces of logic that mux/, cluster/, node/ and client/ all
 * need and must agree on: the clock, the worker-id rule, host:port parsing;
 * and the malloc settings of the two processes that move bulk data. libc
 * only; no I/O, no logging. (The hash table is util/htab.h.) */
#ifndef WHT_UTIL_UTIL_H
#define WHT_UTIL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Sets glibc's malloc for a process whose buffers of 32-256 KiB come and go
 * with every transfer (the node's libevent chains, whclient's wsmux queue):
 * with glibc's defaults the heap's top was given back with brk() as such a
 * buffer was freed, and taken and faulted in again for the next (5 brk() per
 * MiB through the node; 0.4 per MiB downloaded through whclient). Allocations
 * under 1 MiB come from the heap, and up to 1 MiB of free space at its top
 * stays. Called once, early in main(). */
void util_keep_heap(void);

/* Milliseconds of the monotonic clock (CLOCK_MONOTONIC): for timeouts and
 * deadlines, never for dates. */
int64_t util_now_ms(void);
/* The same in microseconds (for durations). */
int64_t util_now_us(void);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME): for dates and the
 * cluster's generation floor. */
int64_t util_wall_ms(void);

/* A worker id, the original service's rule: 1..UTIL_MAX_ID_LEN bytes of
 * [A-Za-z0-9_~.%-]. */
#define UTIL_MAX_ID_LEN 255
#define UTIL_ID_CHARS "_~.%-" /* besides letters and digits */

/* 1 if id (len bytes) is a valid worker id, else 0 (NULL is not valid). */
int util_valid_worker_id(const char *id, size_t len);

/* 1 if each of the len bytes of s is a letter, a digit or one of extra
 * (a NUL-terminated set; NUL itself never matches). 1 for len 0. */
int util_chars_only(const char *s, size_t len, const char *extra);

/* Results of the host:port parsers: 0 is success, errors are negative. */
enum util_err {
    UTIL_OK = 0,
    UTIL_E_HOST = -1,     /* no host, a bad character, an empty label, a bad IPv6 literal */
    UTIL_E_PORT = -2,     /* the port is missing (when required), malformed or out of range */
    UTIL_E_TOO_LONG = -3, /* a host name over UTIL_MAX_HOST_LEN bytes */
};

/* A short static description of a util result; never NULL. */
const char *util_strerror(int err);

/* A host name is at most this long: 253 bytes, the longest name DNS can
 * carry (255 octets on the wire). */
#define UTIL_MAX_HOST_LEN 253

/* host:port, parsed by util_hostport_parse(). */
struct util_hostport {
    const char *host; /* into the parsed text; brackets of an IPv6 literal removed */
    size_t host_len;
    int port; /* 0..65535; the caller's default when the text has none */
    int ipv6; /* the host was a bracketed IPv6 literal */
};

enum util_hostport_flags {
    UTIL_HP_PORT_OPTIONAL = 1, /* "host" and "[v6]" alone are fine: port stays as *out had it */
    UTIL_HP_PORT_ZERO = 2,     /* port 0 is allowed (the kernel picks one) */
};

/* Parses a TCP port, len bytes of s (no NUL needed): 1..5 decimal digits,
 * no sign, no leading zero (one spelling per port: the cluster compares
 * addresses as text, and strtol(s, NULL, 0) would read "010" as 8), 1..65535,
 * or 0 with UTIL_HP_PORT_ZERO (other flags are ignored). Returns the port or
 * UTIL_E_PORT. */
int util_port_parse(const char *s, size_t len, unsigned flags);

/* Parses "host:port" or "[ipv6]:port" (len bytes of s; no NUL needed).
 * host: a DNS name or IPv4 address: 1..UTIL_MAX_HOST_LEN bytes of letters,
 * digits, '-', '.' and '_', with no empty label (no leading '.', no "..";
 * one trailing '.' is fine); or an IPv6 literal in brackets: hex digits, ':'
 * and '.', at least two ':', at most 45 bytes (no zone: '%' is refused).
 * port: as util_port_parse(). out->port is read as the default when the port
 * is optional and missing. Returns 0 with *out filled, or UTIL_E_HOST,
 * UTIL_E_PORT or UTIL_E_TOO_LONG (out is then unchanged). */
int util_hostport_parse(const char *s, size_t len, unsigned flags, struct util_hostport *out);

/* Formats host and port as "host:port", or "[host]:port" when host holds a
 * ':'. Returns the length written (NUL-terminated), or -1 if cap is too small. */
int util_hostport_format(char *out, size_t cap, const char *host, int port);

#endif
