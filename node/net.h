/* net: socket addresses for the listeners (node.c, links.c). */
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

#endif
