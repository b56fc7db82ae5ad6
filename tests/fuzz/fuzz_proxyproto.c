/* libFuzzer target for node/proxyproto.c: the PROXY protocol header (v1 and
 * v2) on arbitrary bytes.
 *
 * Invariants checked: a result is INCOMPLETE, a length within the input and
 * within PROXYPROTO_MAX (PROXYPROTO_V1_MAX for v1), or a known error; every
 * shorter prefix of a header is INCOMPLETE and the header alone parses to
 * the same header (nothing after it is looked at); a prefix of an error is
 * INCOMPLETE or the same error; a source address formats; a v1 header's
 * source and ports are those written in its text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_v1_text(const uint8_t *data, const struct proxyproto_header *h)
{
    char ip[64], line[160];
    if (h->local)
        return;
    if (proxyproto_source_ip(h, ip, sizeof ip) != 0)
        abort();
    int n = snprintf(line, sizeof line, "PROXY TCP%c %s ", h->v6 ? '6' : '4', ip);
    if (n <= 0 || memcmp(data, line, (size_t)n) != 0) {
        /* the text may spell the address another way (::0 for ::): compare the port at the end */
        n = snprintf(line, sizeof line, " %u %u\r\n", h->src_port, h->dst_port);
        const char *end = memchr(data, '\n', PROXYPROTO_V1_MAX);
        if (!end || memcmp(end + 1 - n, line, (size_t)n) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxyproto_header h, again;
    if (size > PROXYPROTO_MAX + 64)
        return 0;
    int rc = proxyproto_parse(data, size, &h);
    if (rc == PROXYPROTO_INCOMPLETE)
        return 0;
    if (rc < 0) {
        if (rc < PROXYPROTO_E_V2_TLV || !proxyproto_strerror(rc))
            abort();
        for (size_t k = 0; k < size; k += 1 + k / 8) {
            int r = proxyproto_parse(data, k, &again);
            if (r != PROXYPROTO_INCOMPLETE && r != rc)
                abort();
        }
        return 0;
    }
    if ((size_t)rc > size || rc > PROXYPROTO_MAX || (h.version == 1 && rc > PROXYPROTO_V1_MAX) ||
        (h.version != 1 && h.version != 2))
        abort();
    for (size_t k = 0; k < (size_t)rc; k++)
        if (proxyproto_parse(data, k, &again) != PROXYPROTO_INCOMPLETE)
            abort();
    if (proxyproto_parse(data, (size_t)rc, &again) != rc || memcmp(&h, &again, sizeof h) != 0)
        abort();
    if (!proxyproto_looks_like(data, (size_t)rc))
        abort();
    if (h.version == 1)
        check_v1_text(data, &h);
    else if (!h.local) {
        char ip[64];
        if (proxyproto_source_ip(&h, ip, sizeof ip) != 0)
            abort();
    }
    return 0;
}
