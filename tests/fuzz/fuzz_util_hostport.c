/* libFuzzer target for util/util.c's host:port rule, which REDIS_URL, peer
 * addresses, the node's configuration and whclient's server URL all share.
 *
 * The first byte picks the flags (byte % 4: UTIL_HP_PORT_OPTIONAL, and
 * UTIL_HP_PORT_ZERO), the rest is the text. Invariants checked: the host
 * points into the text and obeys its limits; the port is in range; what
 * parses formats back (util_hostport_format) to text that parses to the same
 * host and port, and to exactly the input when it had a port (one spelling
 * per address); util_port_parse agrees with "%d". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define FUZZ_DEFAULT_PORT 4242

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_port(const char *s, size_t len, unsigned flags)
{
    char out[16];
    int p = util_port_parse(s, len, flags);
    if (p < 0)
        return;
    if (p > 65535 || (p == 0 && !(flags & UTIL_HP_PORT_ZERO)))
        abort();
    if ((size_t)snprintf(out, sizeof(out), "%d", p) != len || memcmp(out, s, len) != 0)
        abort();
}

static void fuzz_reformat(const char *s, size_t len, unsigned flags, const struct util_hostport *hp)
{
    char host[UTIL_MAX_HOST_LEN + 1], text[UTIL_MAX_HOST_LEN + 16];
    struct util_hostport again = {0};
    memcpy(host, hp->host, hp->host_len);
    host[hp->host_len] = '\0';
    int n = util_hostport_format(text, sizeof(text), host, hp->port);
    if (n < 0 || util_hostport_parse(text, (size_t)n, flags & UTIL_HP_PORT_ZERO, &again) != 0)
        abort();
    if (again.host_len != hp->host_len || memcmp(again.host, host, hp->host_len) != 0 ||
        again.port != hp->port || again.ipv6 != hp->ipv6)
        abort();
    int had_port = hp->host + hp->host_len + (hp->ipv6 ? 1 : 0) != s + len;
    if (had_port && ((size_t)n != len || memcmp(text, s, len) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    unsigned flags = data[0] % 4;
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    struct util_hostport hp = {.port = FUZZ_DEFAULT_PORT};

    fuzz_port(s, len, flags);
    int rc = util_hostport_parse(s, len, flags, &hp);
    if (rc != 0) {
        if (rc != UTIL_E_HOST && rc != UTIL_E_PORT && rc != UTIL_E_TOO_LONG)
            abort();
        if (hp.port != FUZZ_DEFAULT_PORT || hp.host)
            abort(); /* out unchanged */
        return 0;
    }
    if (hp.host < s || hp.host + hp.host_len > s + len || hp.host_len == 0)
        abort();
    if (hp.host_len > (hp.ipv6 ? 45u : (size_t)UTIL_MAX_HOST_LEN) || (hp.ipv6 && s[0] != '['))
        abort();
    if (hp.port < 0 || hp.port > 65535 || (hp.port == 0 && !(flags & UTIL_HP_PORT_ZERO)))
        abort();
    if (!util_chars_only(hp.host, hp.host_len, hp.ipv6 ? ":." : "-._"))
        abort();
    fuzz_reformat(s, len, flags, &hp);
    return 0;
}
