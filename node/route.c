/* route: the routing decision (see route.h). */
#include <string.h>
#include <strings.h>

#include "node/route.h"
#include "util/util.h"

/* Whether the request's path (without the query) is p; the empty path of an
 * absolute-form target ("http://host" or "http://host?q") is "/". */
static int path_is(const struct http1_request *r, const char *p)
{
    size_t n = strlen(p), len = r->path_len;
    const char *path = r->path;
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    if (len == 0 && r->target_form == HTTP1_TARGET_ABSOLUTE)
        path = "/", len = 1;
    return len == n && memcmp(path, p, n) == 0;
}

static int fail(struct route *out, int status, const char *body)
{
    out->kind = ROUTE_FAIL;
    out->status = status;
    out->body = body;
    return 1;
}

static int answer(struct route *out, enum route_endpoint ep)
{
    out->kind = ROUTE_ANSWER;
    out->endpoint = ep;
    return 1;
}

/* The node's own endpoints and registration; 1 when one of them decides. */
static int endpoint(const struct route_env *env, const struct http1_request *r, struct route *out)
{
    if (env->draining && path_is(r, "/__lbheartbeat__")) /* load balancers: send nothing new here */
        return answer(out, ROUTE_EP_DRAINING);
    if (path_is(r, "/__lbheartbeat__") || path_is(r, "/__heartbeat__"))
        return answer(out, ROUTE_EP_HEARTBEAT);
    if (path_is(r, "/__version__"))
        return answer(out, ROUTE_EP_VERSION);
    if (path_is(r, "/__cluster__"))
        return answer(out, ROUTE_EP_CLUSTER);
    const struct http1_header *idh = http1_find_header(&r->headers, "x-websocktunnel-id");
    if (!idh)
        idh = http1_find_header(&r->headers, "x-webhooktunnel-id");
    if (!idh || !path_is(r, "/"))
        return 0;
    if (env->relayed) /* a worker registers with the node it dialed, never through a peer */
        return fail(out, 400, "registration cannot be relayed\n");
    if (env->draining)
        return fail(out, 503, "this node is draining: register with another one\n");
    out->kind = ROUTE_REGISTER;
    out->idh = idh;
    return 1;
}

/* Domain mode: the id of "<id>.<domain>[:port]" in the host; 0 if the host
 * is not such a name. */
static int domain_id(const struct route_env *env, const struct http1_request *r, struct route *out)
{
    if (!env->domain || !env->domain[0] || !r->host)
        return 0;
    size_t hl = r->host_len, dl = strlen(env->domain);
    const char *colon = memchr(r->host, ':', hl);
    if (colon)
        hl = (size_t)(colon - r->host);
    if (hl > dl + 1 && r->host[hl - dl - 1] == '.' && strncasecmp(r->host + hl - dl, env->domain, dl) == 0) {
        out->id = r->host;
        out->id_len = hl - dl - 1;
        return 1;
    }
    return 0;
}

/* Which worker, and the target it sees: <id>.<domain> in the host and the
 * whole target, else the first path segment and the rest. 0, or -1 when the
 * target names no worker. */
static int worker_target(const struct route_env *env, const struct http1_request *r, char *fwd,
                         struct route *out)
{
    const char *path = r->path_len ? r->path : "/";
    size_t path_len = r->path_len ? r->path_len : 1, k = 0;
    if (domain_id(env, r, out)) {
        if (path[0] == '?') /* absolute-form with no path */
            fwd[k++] = '/';
        memcpy(fwd + k, path, path_len);
        out->fwd_len = k + path_len;
        return 0;
    }
    out->path_mode = 1;
    if (path[0] != '/')
        return -1;
    const char *id = path + 1;
    size_t id_len = 0;
    while (id_len < path_len - 1 && id[id_len] != '/' && id[id_len] != '?')
        id_len++;
    const char *rest = id + id_len;
    size_t rest_len = path_len - 1 - id_len;
    if (rest_len == 0 || rest[0] == '?')
        fwd[k++] = '/';
    memcpy(fwd + k, rest, rest_len);
    out->fwd_len = k + rest_len;
    out->id = id;
    out->id_len = id_len;
    return 0;
}

void route_decide(const struct route_env *env, const struct http1_request *r, char *fwd, struct route *out)
{
    memset(out, 0, sizeof *out);
    if (endpoint(env, r, out))
        return;
    if (worker_target(env, r, fwd, out) != 0 || !util_valid_worker_id(out->id, out->id_len)) {
        fail(out, 404, "not found\n");
        return;
    }
    out->kind = ROUTE_LOCAL;
    out->worker = env->find_worker(env->ud, out->id, out->id_len);
    if (out->worker)
        return;
    if (env->draining) {
        int m = env->moving(env->ud, out->id, out->id_len);
        if (m == 0) {
            out->kind = ROUTE_PARK; /* it left this node moments ago: wait for its next one */
            return;
        }
        if (m == 1) {
            out->kind = ROUTE_RELAY; /* it has a new home: follow it (even from a relayed request) */
            return;
        }
    }
    if (env->relayed)
        out->kind = ROUTE_MISS; /* never relayed twice */
    else if (env->cluster)
        out->kind = ROUTE_RELAY;
    else
        fail(out, 404, "No client is connected with that id\n");
}
