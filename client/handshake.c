/* whclient: the checks of the node's answer to the registration request,
 * without I/O (see client.h). libwebsockets parses the response head; this
 * file decides what its status and header fields mean: a valid WebSocket
 * upgrade (mux/ws.c's ws_check_response: Upgrade, Connection,
 * Sec-WebSocket-Accept, no extension, no body framing), the client URL, the
 * extension flag, and the reason of a 401. Everything copied out is made printable ASCII: it goes
 * to the log and to stdout. */
#include "client/client.h"
#include "mux/ws.h"

#include <string.h>
#include <strings.h>

/* The value of the first field called name (case-insensitive), surrounding
 * blanks trimmed; NULL if there is none. */
static const char *client__field(const struct ws_header *h, size_t n, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len != nl || strncasecmp(h[i].name, name, nl) != 0 || !h[i].value)
            continue;
        const char *v = h[i].value;
        size_t vl = h[i].value_len;
        while (vl && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        *len = vl;
        return v;
    }
    return NULL;
}

/* Copies len bytes at s into out[cap] as printable ASCII ('?' for the rest),
 * truncated to cap - 1 bytes, NUL-terminated. */
static void client__printable(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    out[n] = '\0';
}

void client_refusal_parse(const char *value, size_t len, char *out, size_t cap)
{
    static const char key[] = "error_description=\"";
    const size_t kl = sizeof key - 1;
    out[0] = '\0';
    for (size_t i = 0; value && len >= kl && i <= len - kl; i++) {
        if (memcmp(value + i, key, kl) != 0)
            continue;
        const char *d = value + i + kl, *end = memchr(d, '"', len - i - kl);
        if (end)
            client__printable(out, cap, d, (size_t)(end - d));
        return;
    }
}

void client_hs_check(int status, const struct ws_header *hdrs, size_t n, const char *key,
                     struct client_hs_result *out)
{
    const char *v;
    size_t vl = 0;

    memset(out, 0, sizeof *out);
    out->status = status;
    if (status == 401 && (v = client__field(hdrs, n, "www-authenticate", &vl)))
        client_refusal_parse(v, vl, out->refusal, sizeof out->refusal);
    if (status != 101) {
        out->err = WS_E_BAD_STATUS;
        out->why = "not switching to a WebSocket";
        return;
    }
    out->err = ws_check_response(status, hdrs, n, key);
    if (out->err) {
        out->why = ws_strerror(out->err);
        return;
    }
    /* lws reads what follows a response head as its body: framing would
     * make it rewrite (dechunk) or cut the WebSocket */
    if (client__field(hdrs, n, "content-length", &vl) || client__field(hdrs, n, "transfer-encoding", &vl)) {
        out->err = WS_E_NOT_UPGRADE;
        out->why = "a 101 response with Content-Length or Transfer-Encoding";
        return;
    }
    v = client__field(hdrs, n, "x-whtunnel-ext", &vl);
    out->ext = v && vl == 1 && v[0] == '1';
    v = client__field(hdrs, n, "x-websocktunnel-client-url", &vl);
    if (!v || !vl)
        v = client__field(hdrs, n, "x-webhooktunnel-client-url", &vl);
    if (v)
        client__printable(out->url, sizeof out->url, v, vl);
}
