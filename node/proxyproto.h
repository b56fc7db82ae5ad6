/* proxyproto: the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer writes at the start of a
 * connection to say whose connection it is. Sans-I/O: bytes in; "need
 * more", or the header's length and what it says, or an error with a fixed
 * reason. The version is told from the first bytes.
 *
 * v1: "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n" or
 *     "PROXY UNKNOWN[ anything]\r\n", at most PROXYPROTO_V1_MAX bytes with
 *     the CR LF. Single spaces; addresses numeric (IPv4 four decimal parts
 *     without leading zeros, IPv6 as inet_pton reads it) and of the family
 *     named; ports 0..65535 in decimal without sign or leading zero.
 * v2: the 12-byte signature, version 2 and a command (LOCAL or PROXY), the
 *     family and transport, a 16-bit length of what follows (at most
 *     PROXYPROTO_V2_MAX_LEN here), the addresses, then TLVs (each
 *     type, 16-bit length, value), which are skipped after checking that
 *     they fill the block exactly.
 *
 * What the node makes of it (docs/node.md, "Load balancers"): a PROXY over
 * TCP/IPv4 or TCP/IPv6 gives the client's address and port; LOCAL (v2),
 * UNKNOWN (v1), and a PROXY for another family or transport (UNSPEC,
 * AF_UNIX, UDP) keep the connection's own address (`local`). */
#ifndef WHT_NODE_PROXYPROTO_H
#define WHT_NODE_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROXYPROTO_V1_MAX 107      /* bytes of a v1 line, CR LF included (the spec's limit) */
#define PROXYPROTO_V2_HEAD 16      /* signature, version/command, family, length */
#define PROXYPROTO_V2_MAX_LEN 2048 /* the v2 length field (addresses and TLVs): more is an error */
#define PROXYPROTO_MAX (PROXYPROTO_V2_HEAD + PROXYPROTO_V2_MAX_LEN) /* bytes a header may take */

/* Results of proxyproto_parse(): > 0 the header's length; else one of these. */
enum proxyproto_err {
    PROXYPROTO_INCOMPLETE = 0,      /* not an error: every byte so far belongs to the header; more needed */
    PROXYPROTO_E_NOT_PROXY = -1,    /* the bytes start with neither signature: no header */
    PROXYPROTO_E_V1_TOO_LONG = -2,  /* no CR LF within PROXYPROTO_V1_MAX bytes */
    PROXYPROTO_E_V1_SYNTAX = -3,    /* LF without CR, missing or extra fields, not single spaces */
    PROXYPROTO_E_V1_PROTOCOL = -4,  /* not TCP4, TCP6 or UNKNOWN */
    PROXYPROTO_E_V1_ADDRESS = -5,   /* an address that is not one of the family named */
    PROXYPROTO_E_V1_PORT = -6,      /* a port not 0..65535 in decimal */
    PROXYPROTO_E_V2_VERSION = -7,   /* a version other than 2 */
    PROXYPROTO_E_V2_COMMAND = -8,   /* a command other than LOCAL (0) and PROXY (1) */
    PROXYPROTO_E_V2_FAMILY = -9,    /* a family over 3 (AF_UNIX) or a transport over 2 (DGRAM) */
    PROXYPROTO_E_V2_TOO_LONG = -10, /* a length over PROXYPROTO_V2_MAX_LEN */
    PROXYPROTO_E_V2_LENGTH = -11,   /* a length too short for the family's addresses */
    PROXYPROTO_E_V2_TLV = -12,      /* TLVs that do not fill the block exactly */
};

/* What a header says. */
struct proxyproto_header {
    int version; /* 1 or 2 */
    int local;   /* 1: keep the connection's own address (LOCAL, UNKNOWN, or no IP family) */
    int v6;      /* with local 0: the addresses are IPv6 (16 bytes), else IPv4 (the first 4) */
    uint8_t src[16], dst[16];
    uint16_t src_port, dst_port;
};

/* Parses the len bytes at p, the first bytes a connection sent. Returns
 * the header's length (> 0) with *h filled; PROXYPROTO_INCOMPLETE when all
 * len bytes belong to a header not complete yet (so a reader may take them
 * off the socket and ask again with more); or a negative proxyproto_err
 * (*h is then undefined). Never reads past len; needs no NUL. Errors come
 * as soon as the bytes show them (a wrong signature at its first byte). */
int proxyproto_parse(const uint8_t *p, size_t len, struct proxyproto_header *h);

/* 1 if p (len >= 1 bytes) starts like a PROXY header, v1 or v2 (its first
 * min(len, 6) bytes for v1, min(len, 12) for v2), else 0. For telling a
 * header sent where none is expected from other bad requests. */
int proxyproto_looks_like(const uint8_t *p, size_t len);

/* The source address of h (local 0) as text into out ("1.2.3.4", "::1").
 * Returns 0, or -1 if cap is too small (46 bytes always suffice). */
int proxyproto_source_ip(const struct proxyproto_header *h, char *out, size_t cap);

/* A short static description of a result; never NULL. */
const char *proxyproto_strerror(int rc);

#endif
