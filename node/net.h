/* net: socket addresses for the listeners (node.c, links.c), and a socket
 * bufferevent's reads and writes with fewer system calls than libevent's
 * (viewer.c, wsmux.c). */
#ifndef WHT_NODE_NET_H
#define WHT_NODE_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* The numeric address of sa into out ("unknown" for other families). */
void net_format_ip(const struct sockaddr *sa, char *out, size_t cap);

struct util_cidr_list;

/* 1 if sa (AF_INET or AF_INET6) is in one of l's networks, else 0. */
int net_in_cidrs(const struct util_cidr_list *l, const struct sockaddr *sa);

/* Parses "ip:port" or "[ipv6]:port" (flags: util_hostport_flags) into *ss
 * and *len. The host must be a numeric address. Returns 0 or -1. */
int net_parse_sockaddr(const char *addr, unsigned flags, struct sockaddr_storage *ss, int *len);

/* The port a listening socket is bound to (0 if unknown). */
int net_bound_port(int fd);

struct bufferevent;

/* Writes what bev's output holds now, in one system call of at most
 * max_bytes, instead of on the next turn of the loop (which costs two
 * epoll_ctl() calls and an epoll_wait() wake-up per write). Only a plain
 * socket bufferevent whose writing is enabled is written (pairs are left to
 * libevent; a TLS bufferevent's own write is made to run in this turn of the
 * loop, after the current callback: 0 is returned for it). Errors and what
 * the socket did not take are left to libevent's own write, which reports or
 * retries them. When the output is empty afterwards, the write event
 * libevent had pending is dropped, as libevent's own write does. Does not
 * run the write callback. Returns 1 if something was written, else 0. */
int net_write_now(struct bufferevent *bev, int max_bytes);

/* Makes bev's reads the node's own: libevent 2.1 asks the kernel how much
 * the socket holds (ioctl FIONREAD) before every read and then reads at most
 * 4096 bytes (EVBUFFER_MAX_READ), whatever bufferevent_set_max_single_read()
 * says. The node's read is one readv() into the input of NET_READ_SMALL
 * bytes, or NET_READ_BULK with bulk set (a wsmux session: its reads are
 * what a worker or a peer sent for many streams), and when that filled, one
 * more of up to NODE_MAX_SINGLE_IO in all, never past the read high
 * watermark; then the read callback as libevent's (watermarks, timeouts,
 * EOF and errors as it reports them: reading disabled, then the event
 * callback with BEV_EVENT_READING). The small first read keeps what a
 * viewer's partial head holds to 1 KiB (a chain of that size with
 * libevent's header), as libevent's read sized by FIONREAD did: 2,000
 * slowloris connections took 6 MB more with a first read of 4,000 bytes;
 * the bulk one saves a system call per read of a busy session.
 * For a plain socket bufferevent with its socket set (after a connect, not
 * before); others are left to libevent. Call again after
 * bufferevent_setfd(). */
#define NET_READ_SMALL 960
#define NET_READ_BULK 65000
void net_read_own(struct bufferevent *bev, int bulk);

#endif
