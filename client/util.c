/* whclient: pure helpers (no lws, no I/O): URL, token and port checks, the
 * reconnect backoff. See client.h; the clock, the worker-id and host:port
 * rules are util/util.h's. */
#include "client/client.h"
#include "util/util.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define BACKOFF_BASE_MS 500.0
#define BACKOFF_FACTOR 1.5
#define BACKOFF_CAP_MS 60000.0

int client_port_parse(const char *s)
{
    int v = s ? util_port_parse(s, strlen(s), 0) : -1;
    return v > 0 ? v : -1;
}

/* The scheme: sets out->tls and the default port. Returns the text after
 * "://", or NULL. */
static const char *client__url_scheme(const char *text, struct client_url *out)
{
    if (!strncasecmp(text, "wss://", 6) || !strncasecmp(text, "https://", 8)) {
        out->tls = 1;
        out->port = 443;
    } else if (!strncasecmp(text, "ws://", 5) || !strncasecmp(text, "http://", 7)) {
        out->port = 80;
    } else {
        return NULL;
    }
    return strstr(text, "://") + 3;
}

/* host[:port] (util_hostport_parse), len bytes at auth, into out->host,
 * out->port and out->authority. Returns 0, or -1 with *why. */
static int client__url_authority(const char *auth, size_t len, struct client_url *out, const char **why)
{
    struct util_hostport hp = {.port = out->port};
    int rc;
    if (memchr(auth, '@', len)) {
        *why = "user information (user@host) is not supported";
        return -1;
    }
    if (len == 0) {
        *why = "no host";
        return -1;
    }
    if ((rc = util_hostport_parse(auth, len, UTIL_HP_PORT_OPTIONAL, &hp)) != 0) {
        *why = util_strerror(rc);
        return -1;
    }
    memcpy(out->host, hp.host, hp.host_len);
    out->port = hp.port;
    memcpy(out->authority, auth, len);
    return 0;
}

int client_url_parse(const char *text, struct client_url *out, const char **why)
{
    const char *p, *auth, *auth_end;

    memset(out, 0, sizeof *out);
    if (strlen(text) >= CLIENT_MAX_URL) {
        *why = "too long";
        return -1;
    }
    for (p = text; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            *why = "contains spaces or control characters";
            return -1;
        }
    }
    auth = client__url_scheme(text, out);
    if (!auth) {
        *why = "the scheme must be ws://, wss://, http:// or https://";
        return -1;
    }
    auth_end = auth + strcspn(auth, "/?#");
    if (client__url_authority(auth, (size_t)(auth_end - auth), out, why) != 0)
        return -1;
    if (strchr(auth_end, '#')) {
        *why = "a fragment (#...) makes no sense here";
        return -1;
    }
    if (*auth_end == '\0')
        strcpy(out->path, "/");
    else if (*auth_end == '?')
        snprintf(out->path, sizeof out->path, "/%s", auth_end);
    else
        snprintf(out->path, sizeof out->path, "%s", auth_end);
    return 0;
}

int client_token_valid(const char *tok, size_t len)
{
    if (len == 0 || len > CLIENT_MAX_TOKEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = tok[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

int64_t client_backoff_ms(unsigned n, double r)
{
    double ceiling = BACKOFF_BASE_MS;
    for (unsigned i = 0; i < n && ceiling < BACKOFF_CAP_MS; i++) /* passes the cap at n = 12 */
        ceiling *= BACKOFF_FACTOR;
    if (ceiling > BACKOFF_CAP_MS)
        ceiling = BACKOFF_CAP_MS;
    if (r < 0)
        r = 0;
    if (r > 1)
        r = 1;
    return (int64_t)(r * ceiling + 0.5);
}

double client_random01(void)
{
    uint32_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        v = (uint32_t)util_now_ms() * 2654435761u; /* never expected; any spread will do */
    return (double)v / (double)UINT32_MAX;
}
