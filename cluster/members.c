/* cluster_registry: membership (the heartbeat and its member list, join and
 * leave messages), the subscriber's messages, and what the registry does when
 * a connection becomes ready or goes away. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/registry_int.h"

/* ---- membership ------------------------------------------------------------------------- */

static void reg__member_event(struct cluster_registry *reg, int ev, const struct cluster_cache_node *old,
                              const char *node, size_t node_len, const char *addr, size_t addr_len)
{
    char n[CLUSTER_MAX_NODE_LEN + 1], a[CLUSTER_MAX_ADDR_LEN + 1];
    if (ev == CLUSTER_MEMBER_NONE || ev < 0)
        return;
    if (ev == CLUSTER_MEMBER_DOWN || ev == CLUSTER_MEMBER_RESTARTED)
        reg__call_peer(reg, 0, old->id, old->addr);
    if (ev == CLUSTER_MEMBER_UP || ev == CLUSTER_MEMBER_RESTARTED) {
        memcpy(n, node, node_len);
        n[node_len] = '\0';
        memcpy(a, addr, addr_len);
        a[addr_len] = '\0';
        reg__call_peer(reg, 1, n, a);
    }
}

int reg__send_beat(struct cluster_registry *reg)
{
    char ttl[21], max[21], info[CLUSTER_MAX_INFO_VALUE + 1];
    const char *argv[12] = {"EVALSHA",
                            reg->sha[CLUSTER_SCRIPT_BEAT],
                            "3",
                            reg->key_node,
                            reg->key_members,
                            reg->key_info,
                            reg->member_value,
                            ttl,
                            reg->chan_events,
                            reg->chan_ping,
                            max,
                            info};
    size_t lens[12] = {7,
                       40,
                       1,
                       strlen(reg->key_node),
                       strlen(reg->key_members),
                       strlen(reg->key_info),
                       strlen(reg->member_value),
                       cluster_format_u64(ttl, (uint64_t)reg->member_ttl_ms),
                       strlen(reg->chan_events),
                       strlen(reg->chan_ping),
                       cluster_format_u64(max, CLUSTER_MAX_NODES),
                       reg__info_value(reg, info)};
    struct cluster__req *rq = reg__req_new(&reg->cmd, REQ_BEAT);
    int rc;
    if (!rq)
        return CLUSTER_E_NOMEM;
    if ((rc = reg__send(&reg->cmd, rq, 12, argv, lens)) != 0)
        return rc;
    reg->beat_inflight = 1;
    reg->beat_sent_ms = util_now_ms();
    reg->next_beat_ms = reg->beat_sent_ms + reg->refresh_ms;
    reg__info_sent(reg, reg->beat_sent_ms);
    return 0;
}

static void reg__beat_reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r)
{
    int64_t now_redis, now = util_now_ms();
    const redisReply *members;
    const char *prev;
    size_t prev_len;
    struct cluster_cache_node old;

    if (rq->ac != reg->cmd.ac)
        return; /* from a connection that is gone */
    reg->beat_inflight = 0;
    if (!r)
        return;
    int rc = cluster_reply_heartbeat(r, &now_redis, &members, &prev, &prev_len);
    if (rc != 0) {
        reg__log(reg, CLUSTER_LOG_WARN, "heartbeat failed: %.200s",
                 r->type == REDIS_REPLY_ERROR && r->str ? r->str : cluster_strerror(rc));
        reg->beat_failed = 1;
        if (r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0)
            reg__conn_fail(&reg->cmd, CLUSTER_E_REDIS);
        return;
    }
    /* nobody could beat while Redis refused the script (out of memory...): as after a reconnection,
       the others get a TTL to beat again before this list may call them gone */
    if (reg->beat_failed)
        reg->grace_until_ms = now + reg->member_ttl_ms;
    reg->beat_failed = 0;
    if (prev && reg->beats_ok > 0 &&
        (prev_len != strlen(reg->member_value) || memcmp(prev, reg->member_value, prev_len) != 0))
        reg__log(reg, CLUSTER_LOG_ERROR,
                 "member key of node %s was held by another process (\"%.*s\"): are two nodes using the "
                 "same WHT_NODE_ID?",
                 reg->node_id, (int)(prev_len > 200 ? 200 : prev_len), prev);
    reg->beats_ok++;
    reg->beat_ok_ms = now;
    if (reg->sub.state == REG_C_READY && reg->ping_wait_ms == 0)
        reg->ping_wait_ms = now;

    cluster_cache_poll_begin(reg->cache);
    for (size_t i = 0; i < members->elements; i++) {
        struct cluster_member_value m;
        if (cluster_reply_member(members, i, &m) != 0) {
            reg->st.bad_messages++;
            continue;
        }
        if (reg__is_self(reg, m.node, m.node_len))
            continue;
        int ev = cluster_cache_member_up(reg->cache, m.node, m.node_len, m.addr, m.addr_len, m.boot,
                                         now_redis, 1, &old);
        reg__member_event(reg, ev, &old, m.node, m.node_len, m.addr, m.addr_len);
        if (reg->closing)
            return;
    }
    /* right after (re)connecting, give the others a TTL to re-beat before calling them gone */
    if (now < reg->grace_until_ms)
        return;
    while (!reg->closing && cluster_cache_poll_next_down(reg->cache, now_redis, &old))
        reg__call_peer(reg, 0, old.id, old.addr);
}

/* ---- messages --------------------------------------------------------------------------- */

void reg__sub_message(struct cluster_registry *reg, const char *ch, size_t chl, const char *payload,
                      size_t len)
{
    struct cluster_msg m;
    struct cluster_cache_node old;
    int ev;

    if (chl == strlen(reg->chan_ping) && memcmp(ch, reg->chan_ping, chl) == 0) {
        reg->ping_wait_ms = 0;
        return;
    }
    if (chl != strlen(reg->chan_events) || memcmp(ch, reg->chan_events, chl) != 0)
        return;
    reg->st.messages++;
    if (cluster_msg_parse(payload, len, &m) != 0) {
        reg->st.bad_messages++;
        reg__log(reg, CLUSTER_LOG_DEBUG, "ignored malformed message on %s", reg->chan_events);
        return;
    }
    switch (m.type) {
    case CLUSTER_MSG_SET:
        reg__msg_set(reg, &m);
        break;
    case CLUSTER_MSG_DEL:
        reg__msg_del(reg, &m);
        break;
    case CLUSTER_MSG_JOIN:
        if (reg__is_self(reg, m.node, m.node_len)) {
            if (m.boot != reg->boot)
                reg__log(reg, CLUSTER_LOG_ERROR,
                         "another process joined as node %s: are two nodes using the "
                         "same WHT_NODE_ID?",
                         reg->node_id);
            break;
        }
        ev = cluster_cache_member_up(reg->cache, m.node, m.node_len, m.addr, m.addr_len, m.boot, m.ms, 0,
                                     &old);
        reg__member_event(reg, ev, &old, m.node, m.node_len, m.addr, m.addr_len);
        break;
    case CLUSTER_MSG_LEAVE:
        if (reg__is_self(reg, m.node, m.node_len))
            break;
        ev = cluster_cache_member_down(reg->cache, m.node, m.node_len, &m.boot, m.ms, &old);
        reg__member_event(reg, ev, &old, NULL, 0, NULL, 0);
        break;
    }
}

/* ---- connection events ------------------------------------------------------------------ */

void reg__cmd_ready(struct cluster_registry *reg)
{
    int64_t now = util_now_ms();
    cluster_cache_members_reset_clock(reg->cache);
    reg->grace_until_ms = now + reg->member_ttl_ms;
    reg->beat_inflight = 0;
    reg->next_beat_ms = now;
    reg__set_redis_state(reg, REG_R_UP, 0);
    if (reg->closing)
        return;
    reg__reassert_all(reg);
    if (!reg->leaving)
        reg__send_beat(reg);
    reg__pump(reg);
}

void reg__cmd_down(struct cluster_registry *reg, int err)
{
    reg->beat_inflight = 0;
    for (size_t i = 0; i < reg->held.nb; i++)
        for (struct util_hnode *h = reg->held.b[i]; h; h = h->next)
            ((struct cluster__held *)((char *)h - offsetof(struct cluster__held, h)))->confirmed = 0;
    /* registrations not yet asserted get their generation from their registration time */
    for (struct cluster__held *e = reg->dirty.head; e; e = e->next)
        if (e->gen == 0)
            e->gen = reg__local_gen(reg, e->floor);
    for (int i = 0; i < CLUSTER_SCRIPT_COUNT; i++)
        reg->sha[i][0] = '\0';
    reg__set_redis_state(reg, REG_R_DOWN, err);
    /* the subscriber is probably gone too; if not it stays, and its pings tell */
}

void reg__sub_ready(struct cluster_registry *reg)
{
    reg->ping_wait_ms = 0;
    reg__reassert_all(reg); /* messages may have been missed while unsubscribed */
    reg__pump(reg);
}

static struct cluster__conn *reg__conn_of(struct cluster_registry *reg, redisAsyncContext *ac)
{
    if (ac && ac == reg->cmd.ac)
        return &reg->cmd;
    if (ac && ac == reg->sub.ac)
        return &reg->sub;
    if (ac && ac == reg->ask.ac)
        return &reg->ask;
    return NULL;
}

void reg__reply(struct cluster_registry *reg, struct cluster__req *rq, redisReply *r)
{
    switch (rq->kind) {
    case REQ_AUTH:
    case REQ_SELECT:
    case REQ_ROLE:
    case REQ_SCRIPT_LOAD: {
        struct cluster__conn *c = reg__conn_of(reg, rq->ac);
        if (c && !reg->closing)
            reg__conn_handshake_reply(c, rq, r);
        break;
    }
    case REQ_ASSERT:
        reg__assert_reply(reg, rq, r);
        break;
    case REQ_RELEASE: {
        int deleted;
        reg->inflight--;
        if (!r) {
            reg__release_queue(reg, rq->rel->id, rq->rel->id_len, rq->rel->gen); /* no-op when closing */
        } else if (cluster_reply_release(r, &deleted) != 0) {
            reg__log(reg, CLUSTER_LOG_WARN, "release of worker %s failed: %.200s", rq->rel->id,
                     r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
            if (r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0) {
                reg__release_queue(reg, rq->rel->id, rq->rel->id_len, rq->rel->gen);
                reg__conn_fail(&reg->cmd, CLUSTER_E_REDIS);
            }
        }
        free(rq->rel);
        break;
    }
    case REQ_GET:
        reg__get_reply(reg, rq, r);
        break;
    case REQ_BEAT:
        reg__beat_reply(reg, rq, r);
        break;
    case REQ_INFO: reg__info_reply(reg, rq, r); break;
    case REQ_ASK: reg__ask_reply(reg, rq, r); break;
    case REQ_LEAVE:
        if (reg->leave_cb && !reg->closing) {
            cluster_done_cb *cb = reg->leave_cb;
            reg->leave_cb = NULL;
            int res = !r ? CLUSTER_E_DOWN : r->type == REDIS_REPLY_ERROR ? CLUSTER_E_REDIS : 0;
            reg->cb_depth++;
            cb(reg, res, reg->leave_ud);
            reg->cb_depth--;
        }
        break;
    }
    free(rq);
    if (!reg->closing)
        reg__pump(reg);
}
