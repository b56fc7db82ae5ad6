/* net: socket addresses, and reads and writes of a socket bufferevent (see net.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/util.h>

#include "node/net.h"
#include "node/node.h"
#include "util/cidr.h"
#include "util/util.h"

void net_format_ip(const struct sockaddr *sa, char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

int net_in_cidrs(const struct util_cidr_list *l, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return util_cidr_match(l, 0, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return util_cidr_match(l, 1, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return 0;
}

int net_parse_sockaddr(const char *addr, unsigned flags, struct sockaddr_storage *ss, int *len)
{
    struct util_hostport hp = {0};
    char host[64];
    if (util_hostport_parse(addr, strlen(addr), flags, &hp) != 0 || hp.host_len >= sizeof host)
        return -1;
    memcpy(host, hp.host, hp.host_len);
    host[hp.host_len] = 0;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (!hp.ipv6 && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)hp.port);
        *len = sizeof *v4;
        return 0;
    }
    if (hp.ipv6 && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)hp.port);
        *len = sizeof *v6;
        return 0;
    }
    return -1;
}

int net_bound_port(int fd)
{
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) != 0)
        return 0;
    return ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                             : ((struct sockaddr_in *)&bound)->sin_port);
}

/* bev's socket, if bev is a plain socket bufferevent with writing (what:
 * EV_WRITE) or reading (EV_READ) enabled; else -1 (TLS, pairs and a
 * direction switched off are left to libevent). */
static evutil_socket_t plain_socket(struct bufferevent *bev, short what)
{
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || !(bufferevent_get_enabled(bev) & what) || bufferevent_openssl_get_ssl(bev))
        return -1;
    return fd;
}

int net_write_now(struct bufferevent *bev, int max_bytes)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd;
    if (evbuffer_get_length(out) == 0)
        return 0;
    if (bufferevent_openssl_get_ssl(bev)) {
        /* libevent 2.1's OpenSSL bufferevent on a socket writes only when
         * its write event fires, after another epoll_wait() (and an
         * epoll_ctl() each way per response): made to fire in this turn,
         * where its write and the event's removal follow at once */
        if (bufferevent_get_enabled(bev) & EV_WRITE)
            event_active(&bev->ev_write, EV_WRITE, 1);
        return 0;
    }
    if ((fd = plain_socket(bev, EV_WRITE)) < 0)
        return 0;
    /* a bufferevent's output is frozen at its start but while it writes itself */
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write_atmost(out, fd, max_bytes);
    evbuffer_freeze(out, 1);
    if (n <= 0)
        return 0;
    if (evbuffer_get_length(out) == 0)
        event_del(&bev->ev_write);
    return 1;
}

/* One readv() into bev's input of at most want bytes; what it returns.
 * *full: whether it read all of them (so more may wait). */
static ssize_t read_into(struct bufferevent *bev, evutil_socket_t fd, size_t want, int *full)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[2];
    struct iovec iov[2];
    /* a bufferevent's input is frozen at its end but while it reads itself */
    evbuffer_unfreeze(in, 0);
    int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
    size_t room = 0;
    for (int i = 0; i < nv; i++) { /* the space reserved may be more: want at most */
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len < want - room ? v[i].iov_len : want - room;
        room += iov[i].iov_len;
    }
    ssize_t n = -1;
    if (nv > 0)
        n = readv(fd, iov, nv);
    else
        errno = ENOMEM;
    if (n > 0) {
        size_t left = (size_t)n;
        for (int i = 0; i < nv; i++) {
            if (v[i].iov_len > left)
                v[i].iov_len = left;
            left -= v[i].iov_len;
        }
        evbuffer_commit_space(in, v, nv > 1 && v[1].iov_len > 0 ? 2 : 1);
    }
    evbuffer_freeze(in, 0);
    *full = n > 0 && (size_t)n == room;
    return n;
}

/* bev's read event, in place of libevent's: see net_read_own(). */
static void read_event(evutil_socket_t fd, short what, struct bufferevent *bev, size_t first)
{
    short fail = BEV_EVENT_READING;
    if (what & EV_TIMEOUT) {
        fail |= BEV_EVENT_TIMEOUT;
    } else {
        int full;
        ssize_t n = read_into(bev, fd, first, &full);
        if (full) {
            /* more may wait: the rest in one more call, up to the read high
             * watermark. Its EOF or error, if any, is the next turn's: the
             * socket stays readable. */
            size_t have = evbuffer_get_length(bufferevent_get_input(bev)), high = 0;
            size_t want = NODE_MAX_SINGLE_IO - (size_t)n;
            bufferevent_getwatermark(bev, EV_READ, NULL, &high);
            if (high)
                want = have >= high ? 0 : high - have < want ? high - have : want;
            if (want > 0)
                (void)read_into(bev, fd, want, &full);
        }
        if (n > 0) {
            bufferevent_trigger(bev, EV_READ, 0); /* may free bev */
            return;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        fail |= n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR;
    }
    /* as libevent's own read: reading stops, then the event callback */
    bufferevent_disable(bev, EV_READ);
    bufferevent_trigger_event(bev, fail, 0); /* may free bev */
}

static void read_small(evutil_socket_t fd, short what, void *arg)
{
    read_event(fd, what, arg, NET_READ_SMALL);
}

static void read_bulk(evutil_socket_t fd, short what, void *arg)
{
    read_event(fd, what, arg, NET_READ_BULK);
}

void net_read_own(struct bufferevent *bev, int bulk)
{
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || bufferevent_openssl_get_ssl(bev))
        return;
    /* the event keeps libevent's flags (EV_FINALIZE: a bufferevent may be
     * freed from its own callback) and its place in the loop */
    int pending = event_pending(&bev->ev_read, EV_READ, NULL);
    event_del(&bev->ev_read);
    event_assign(&bev->ev_read, bufferevent_get_base(bev), fd, EV_READ | EV_PERSIST | EV_FINALIZE,
                 bulk ? read_bulk : read_small, bev);
    if (pending)
        event_add(&bev->ev_read, evutil_timerisset(&bev->timeout_read) ? &bev->timeout_read : NULL);
}
