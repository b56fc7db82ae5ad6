/* libFuzzer target for util/cidr.c: the CIDR lists of WHT_PROXY_PROTOCOL and
 * WHT_TRUSTED_PROXIES.
 *
 * The input is the list text. Invariants checked: a failure names an entry
 * inside the text and leaves the list empty; a success gives at most
 * UTIL_CIDR_MAX networks, each with its prefix length in range and no bit set
 * after it; every network matches its own address and, with a prefix
 * shorter than the address, the address with its last bit flipped; a
 * network printed back (inet_ntop) parses alone to the same network. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct util_cidr_list g_list, g_again;

static void check_net(const struct util_cidr *n)
{
    size_t bytes = n->v6 ? 16 : 4;
    if (n->bits > bytes * 8)
        abort();
    for (size_t i = bytes; i < 16; i++)
        if (n->addr[i])
            abort();
    struct util_cidr_list one = {.count = 1, .net = {*n}};
    uint8_t a[16];
    memcpy(a, n->addr, 16);
    if (!util_cidr_match(&one, n->v6, a))
        abort();
    if (n->bits < bytes * 8) {
        a[bytes - 1] ^= 1;
        if (!util_cidr_match(&one, n->v6, a))
            abort();
    }
    char text[INET6_ADDRSTRLEN + 8];
    if (!inet_ntop(n->v6 ? AF_INET6 : AF_INET, n->addr, text, sizeof text))
        abort();
    size_t len = strlen(text);
    len += (size_t)snprintf(text + len, sizeof text - len, "/%u", n->bits);
    if (util_cidr_parse_list(text, len, &g_again, NULL, NULL) != 0 || g_again.count != 1)
        abort();
    const struct util_cidr *b = &g_again.net[0];
    if (b->v6 != n->v6 || b->bits != n->bits || memcmp(b->addr, n->addr, 16) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    const char *s = (const char *)data;
    size_t off = (size_t)-1, len = (size_t)-1;
    int rc = util_cidr_parse_list(s, size, &g_list, &off, &len);
    if (rc != 0) {
        if (rc < UTIL_CIDR_E_TOO_MANY || rc > UTIL_CIDR_E_ADDR || g_list.count != 0)
            abort();
        if (off > size || len > size - off || !util_cidr_strerror(rc))
            abort();
        return 0;
    }
    if (g_list.count > UTIL_CIDR_MAX)
        abort();
    for (size_t i = 0; i < g_list.count; i++)
        check_net(&g_list.net[i]);
    return 0;
}
