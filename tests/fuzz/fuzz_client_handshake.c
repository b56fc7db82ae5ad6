/* Fuzz target: whclient's handling of the node's answer to the registration
 * request (client/handshake.c: client_hs_check, client_refusal_parse).
 *
 * Input: a first line "<status>" (decimal, may be junk), then header lines
 * "name:value" separated by LF, as libwebsockets hands them over (a name
 * without a colon is a field with an empty value). The key sent is RFC 6455's
 * example, so a seed carrying its accept value reaches the 101 paths.
 *
 * Checks: the strings out are NUL-terminated, printable and within bounds; only
 * a 101 is accepted, and only when mux/ws.c's ws_check_response accepts it
 * (and no Content-Length or Transfer-Encoding comes with it); a reason for
 * every refusal;
 * nothing is read from a refused response; a reason only for a 401, and it is
 * the one client_refusal_parse finds; client_refusal_parse at every cap gives
 * a prefix of the whole reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/handshake.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define MAX_FIELDS 32

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_string(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    check(n < cap);
    for (size_t i = 0; i < n; i++)
        check((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f);
}

/* Splits the input into a status and fields (pointing into text). */
static size_t split(const char *text, size_t size, int *status, struct ws_header *h)
{
    const char *p = text, *end = text + size, *nl = memchr(p, '\n', size);
    size_t n = 0;
    *status = 0;
    for (const char *q = p; q < (nl ? nl : end) && *q >= '0' && *q <= '9' && *status < 100000; q++)
        *status = *status * 10 + (*q - '0');
    p = nl ? nl + 1 : end;
    while (p < end && n < MAX_FIELDS) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = e ? e : end, *colon = memchr(p, ':', (size_t)(line_end - p));
        h[n].name = p;
        h[n].name_len = (size_t)((colon ? colon : line_end) - p);
        h[n].value = colon ? colon + 1 : line_end;
        h[n].value_len = colon ? (size_t)(line_end - colon - 1) : 0;
        n++;
        p = e ? e + 1 : end;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_header h[MAX_FIELDS];
    struct client_hs_result r;
    char *text = malloc(size ? size : 1), ref[CLIENT_MAX_REFUSAL];
    int status;

    if (!text)
        return 0;
    memcpy(text, data, size);
    size_t n = split(text, size, &status, h);
    client_hs_check(status, h, n, KEY, &r);
    check(r.status == status);
    check_string(r.url, sizeof r.url);
    check_string(r.refusal, sizeof r.refusal);
    check(r.ext == 0 || r.ext == 1);
    check(!r.err == !r.why);
    if (status != 101) {
        check(r.err == WS_E_BAD_STATUS);
    } else {
        int w = ws_check_response(101, h, n, KEY);
        check(w ? r.err == w : r.err == 0 || r.err == WS_E_NOT_UPGRADE); /* body framing */
    }
    if (r.err)
        check(!r.ext && !r.url[0]);
    if (status != 401)
        check(!r.refusal[0]);

    /* the reason of the whole input, then at every cap: a prefix of it */
    client_refusal_parse(text, size, ref, sizeof ref);
    check_string(ref, sizeof ref);
    size_t full = strlen(ref);
    for (size_t cap = 1; cap <= full + 1; cap++) {
        char small[CLIENT_MAX_REFUSAL];
        client_refusal_parse(text, size, small, cap);
        check(strlen(small) == cap - 1 && memcmp(small, ref, cap - 1) == 0);
    }
    free(text);
    return 0;
}
