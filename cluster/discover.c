/* Redis Sentinel: finding the master and following it (docs/cluster.md,
 * "Redis Sentinel"). The sans-I/O part (settings, replies, messages) is
 * sentinel.c; the connections themselves are conn.c's.
 *
 *   - discovery: the ASK connection asks the sentinels in turn, each within
 *     sentinel_timeout_ms, SENTINEL get-master-addr-by-name; the first
 *     address given becomes the master CMD and SUB connect to. A round in
 *     which no sentinel answered is retried after the ASK connection's
 *     backoff;
 *   - confirmation: CMD and SUB send ROLE in their handshake (conn.c): an
 *     instance that is not a master fails the connection, and the next
 *     discovery starts at the sentinel after the one that named it;
 *   - following: the WATCH connection is subscribed to +switch-master on one
 *     sentinel (the next one when it fails); a switch of our master, a lost
 *     CMD or SUB connection to the master, or a READONLY answer (conn.c)
 *     starts a new discovery. A new master is taken as Redis coming back:
 *     the registry re-asserts what it holds and subscribes again.
 */
#include <stdio.h>
#include <string.h>

#include "cluster/registry_int.h"

int reg__sentinel_init(struct cluster_registry *reg, const struct cluster_options *o)
{
    const char *url = o->redis_url ? o->redis_url : "";
    int rc;
    if (!o->sentinels || !o->sentinels[0]) {
        if (o->master_name && o->master_name[0])
            return CLUSTER_E_SENTINELS; /* a master name without sentinels */
        return cluster_url_parse(url, strlen(url), &reg->url);
    }
    if (!o->master_name || !cluster_valid_master_name(o->master_name, strlen(o->master_name)))
        return CLUSTER_E_MASTER_NAME;
    if ((rc = cluster_sentinels_parse(o->sentinels, strlen(o->sentinels), &reg->sentinels)) != 0)
        return rc;
    if (!url[0])
        url = "redis://";
    if ((rc = cluster_url_parse_auth(url, strlen(url), &reg->url)) != 0)
        return rc;
    snprintf(reg->master_name, sizeof(reg->master_name), "%s", o->master_name);
    reg->sentinel = 1;
    return 0;
}

/* Starts a discovery round unless one is under way; now: also when one is
 * waiting for its backoff, and from the first sentinel to answer last time. */
static void disc__start(struct cluster_registry *reg, int now)
{
    struct cluster__conn *a = &reg->ask;
    if (!reg->sentinel || reg->closing)
        return;
    if (a->state != REG_C_IDLE) {
        if (!now)
            return;
        reg__conn_done(a); /* ask again: the answer in flight may predate the switch */
    } else if (evtimer_pending(a->retry_ev, NULL) && !now) {
        return;
    }
    reg->ask_tried = 0;
    reg__conn_start_now(a);
}

int reg__conn_target(struct cluster__conn *c)
{
    struct cluster_registry *reg = c->reg;
    switch (c->kind) {
    case REG_CONN_ASK: c->target = reg->sentinels.s[reg->ask_next % reg->sentinels.n]; return 1;
    case REG_CONN_WATCH: c->target = reg->sentinels.s[reg->watch_next % reg->sentinels.n]; return 1;
    default: break;
    }
    if (!reg->sentinel) {
        memcpy(c->target.host, reg->url.host, sizeof(c->target.host));
        c->target.port = reg->url.port;
        return 1;
    }
    if (reg->master_known) {
        c->target = reg->master;
        return 1;
    }
    disc__start(reg, 0);
    return 0;
}

/* The sentinels named addr: CMD and SUB go there now (leaving an old master). */
static void disc__found(struct cluster_registry *reg, const struct cluster_addr *addr)
{
    struct cluster__conn *conns[2] = {&reg->cmd, &reg->sub};
    if (!reg->master_known || !reg__addr_eq(&reg->master, addr))
        reg__log(reg, CLUSTER_LOG_INFO, "sentinel %s:%u: master %s is at %s:%u",
                 reg->sentinels.s[reg->ask_from].host, (unsigned)reg->sentinels.s[reg->ask_from].port,
                 reg->master_name, addr->host, (unsigned)addr->port);
    reg->master = *addr;
    reg->master_known = 1;
    for (int i = 0; i < 2 && !reg->closing; i++) {
        struct cluster__conn *c = conns[i];
        if (c->state != REG_C_IDLE && !reg__addr_eq(&c->target, addr))
            reg__conn_fail(c, CLUSTER_E_NOT_MASTER);
        reg__conn_start_now(c);
    }
}

void reg__ask_reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r)
{
    struct cluster__conn *a = &reg->ask;
    struct cluster_addr addr;
    int found = 0, rc;
    if (!r || rq->ac != a->ac || a->state != REG_C_CONNECTING || reg->closing)
        return; /* an abandoned question */
    rc = cluster_reply_master_addr(r, &found, &addr);
    if (rc != 0 || !found) {
        reg__log(reg, CLUSTER_LOG_WARN, "sentinel %s:%u: no address for master %s: %.200s", a->target.host,
                 (unsigned)a->target.port, reg->master_name,
                 rc == 0                                  ? "it does not monitor that name"
                 : r->type == REDIS_REPLY_ERROR && r->str ? r->str
                                                          : cluster_strerror(rc));
        reg__conn_fail(a, rc == 0 ? CLUSTER_E_NO_MASTER : rc);
        return;
    }
    reg->ask_from = reg->ask_next % reg->sentinels.n;
    reg__conn_done(a);
    disc__found(reg, &addr);
}

/* The ASK connection failed: the next sentinel, or after a full round the backoff. */
static int disc__ask_failed(struct cluster_registry *reg, int err)
{
    reg->ask_next = (reg->ask_next + 1) % reg->sentinels.n;
    if (++reg->ask_tried < reg->sentinels.n) {
        reg__conn_start(&reg->ask);
        return 0;
    }
    reg->ask_tried = 0;
    reg__log(reg, CLUSTER_LOG_WARN, "no sentinel of %zu gave the address of master %s (last: %s)",
             reg->sentinels.n, reg->master_name, cluster_strerror(err));
    if (reg->cmd.state != REG_C_READY)
        reg__set_redis_state(reg, REG_R_DOWN, CLUSTER_E_NO_MASTER);
    return 1;
}

int reg__sentinel_conn_failed(struct cluster__conn *c, int err)
{
    struct cluster_registry *reg = c->reg;
    if (!reg->sentinel)
        return 1;
    switch (c->kind) {
    case REG_CONN_ASK: return disc__ask_failed(reg, err);
    case REG_CONN_WATCH: reg->watch_next = (reg->watch_next + 1) % reg->sentinels.n; return 1;
    default: break;
    }
    /* CMD or SUB lost the master it was given, or it was not one: ask again */
    if (reg->master_known && reg__addr_eq(&c->target, &reg->master)) {
        reg->master_known = 0;
        if (err == CLUSTER_E_NOT_MASTER) /* that sentinel is stale: start with the next one */
            reg->ask_next = (reg->ask_from + 1) % reg->sentinels.n;
        else
            reg->ask_next = reg->ask_from;
    }
    return 1; /* retried after the backoff: its start asks the sentinels */
}

void reg__sentinel_confirmed(struct cluster__conn *c)
{
    struct cluster_registry *reg = c->reg;
    if (c->kind != REG_CONN_CMD)
        return;
    if (reg->sentinel && reg->confirmed_known && !reg__addr_eq(&reg->confirmed, &c->target)) {
        reg->st.master_changes++;
        reg__log(reg, CLUSTER_LOG_WARN,
                 "redis master %s changed from %s:%u to %s:%u: re-asserting every worker", reg->master_name,
                 reg->confirmed.host, (unsigned)reg->confirmed.port, c->target.host,
                 (unsigned)c->target.port);
    }
    reg->confirmed = c->target;
    reg->confirmed_known = 1;
}

void reg__watch_ready(struct cluster_registry *reg)
{
    /* a switch may have happened while no sentinel was watched: check */
    disc__start(reg, 0);
}

void reg__watch_message(struct cluster_registry *reg, const char *ch, size_t chl, const char *payload,
                        size_t len)
{
    struct cluster_switch m;
    if (chl != 14 || memcmp(ch, "+switch-master", 14) != 0)
        return;
    if (cluster_switch_parse(payload, len, &m) != 0) {
        reg->st.bad_messages++;
        reg__log(reg, CLUSTER_LOG_DEBUG, "ignored malformed +switch-master message");
        return;
    }
    if (m.name_len != strlen(reg->master_name) || memcmp(m.name, reg->master_name, m.name_len) != 0)
        return; /* another master the sentinels watch */
    reg__log(reg, CLUSTER_LOG_WARN, "sentinel: +switch-master %s %.*s:%u -> %.*s:%u", reg->master_name,
             (int)m.old_host_len, m.old_host, (unsigned)m.old_port, (int)m.new_host_len, m.new_host,
             (unsigned)m.new_port);
    reg->ask_next = reg->watch_next % reg->sentinels.n; /* the sentinel that told us first */
    disc__start(reg, 1);
}
