/* whclient: pure helpers (no lws, no I/O): URL, id, token and port checks,
 * the reconnect backoff, the clock. See client.h. */
#include "client/client.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BACKOFF_BASE_MS 500.0
#define BACKOFF_FACTOR 1.5
#define BACKOFF_CAP_MS 60000.0

static int is_unreserved_host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '.' || ch == '_';
}

int client_port_parse(const char *s)
{
    long v = 0;
    if (!s || !*s || strlen(s) > 5)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= 65535 ? (int)v : -1;
}

int client_url_parse(const char *text, struct client_url *out, const char **why)
{
    const char *p, *auth, *auth_end, *host, *host_end, *port = NULL;
    size_t n;

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
    if (!strncasecmp(text, "wss://", 6) || !strncasecmp(text, "https://", 8)) {
        out->tls = 1;
        out->port = 443;
    } else if (!strncasecmp(text, "ws://", 5) || !strncasecmp(text, "http://", 7)) {
        out->port = 80;
    } else {
        *why = "the scheme must be ws://, wss://, http:// or https://";
        return -1;
    }
    auth = strstr(text, "://") + 3;
    auth_end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(auth_end - auth))) {
        *why = "user information (user@host) is not supported";
        return -1;
    }
    if (*auth == '[') { /* [IPv6]:port */
        host = auth + 1;
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (!host_end) {
            *why = "unterminated [IPv6 address]";
            return -1;
        }
        if (host_end + 1 < auth_end) {
            if (host_end[1] != ':') {
                *why = "bad character after ]";
                return -1;
            }
            port = host_end + 2;
        }
        for (p = host; p < host_end; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') ||
                  *p == ':' || *p == '.')) {
                *why = "bad IPv6 address";
                return -1;
            }
        }
    } else {
        host = auth;
        host_end = memchr(auth, ':', (size_t)(auth_end - auth));
        if (host_end)
            port = host_end + 1;
        else
            host_end = auth_end;
        for (p = host; p < host_end; p++) {
            if (!is_unreserved_host_char(*p)) {
                *why = "bad character in the host name";
                return -1;
            }
        }
    }
    n = (size_t)(host_end - host);
    if (n == 0 || n >= sizeof out->host) {
        *why = n ? "host name too long" : "no host";
        return -1;
    }
    memcpy(out->host, host, n);
    if (port) {
        char buf[8];
        size_t pl = (size_t)(auth_end - port);
        if (pl == 0 || pl >= sizeof buf) {
            *why = "bad port";
            return -1;
        }
        memcpy(buf, port, pl);
        buf[pl] = '\0';
        out->port = client_port_parse(buf);
        if (out->port < 0) {
            *why = "bad port (1-65535)";
            return -1;
        }
    }
    memcpy(out->authority, auth, (size_t)(auth_end - auth));
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

int client_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > CLIENT_MAX_ID)
        return 0;
    for (const char *p = id; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '~' || ch == '.' || ch == '%' || ch == '-'))
            return 0;
    }
    return 1;
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

int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double client_random01(void)
{
    uint32_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        v = (uint32_t)client_now_ms() * 2654435761u; /* never expected; any spread will do */
    return (double)v / (double)UINT32_MAX;
}
