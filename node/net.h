/* net: socket addresses for the listeners (node.c, links.c), and writing a
 * socket's output without waiting for the loop (viewer.c, wsmux.c). */
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

/* libevent 2.1 reads at most 4096 bytes per read() into a socket
 * bufferevent (EVBUFFER_MAX_READ in evbuffer_read()), whatever
 * bufferevent_set_max_single_read() says: bulk data would take a loop turn
 * and two system calls per 4 KiB. Called at the start of a read callback,
 * this reads what else the socket holds into bev's input, in one readv() of
 * at most max_bytes and never past the read high watermark, when the input
 * holds NET_READ_QUANTUM bytes or more (libevent's read may have stopped
 * short; a smaller input was all there was, and costs no extra call). Same
 * bufferevents as net_write_now(); EOF and errors are left to libevent's
 * next read, which reports them. */
#define NET_READ_QUANTUM 4096
void net_read_more(struct bufferevent *bev, size_t max_bytes);

#endif
