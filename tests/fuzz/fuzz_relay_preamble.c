/* libFuzzer target for node/relay.c's preamble line: relay_parse_preamble on
 * arbitrary bytes. Invariants: what parses has an address of allowed
 * characters, formats back to a line that parses to the same values, and the
 * formatted line is the canonical form of the input (up to its line end). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ip[RELAY_MAX_IP], ip2[RELAY_MAX_IP], out[RELAY_PREAMBLE_MAX];
    int tls, tls2;
    if (relay_parse_preamble((const char *)data, size, ip, &tls) != 0)
        return 0;
    size_t n = strlen(ip);
    if (n == 0 || n >= RELAY_MAX_IP || strspn(ip, RELAY_IP_CHARS) != n || (tls != 0 && tls != 1))
        abort();
    int len = relay_format_preamble(out, sizeof out, ip, tls);
    if (len < 0 || relay_parse_preamble(out, (size_t)len, ip2, &tls2) != 0 || strcmp(ip, ip2) != 0 ||
        tls != tls2)
        abort();
    size_t body = (size_t)len - 2; /* without \r\n */
    if (size < body || memcmp(data, out, body) != 0)
        abort();
    return 0;
}
