/* fuzz_resp.h: RESP bytes through hiredis's reader for the cluster fuzz
 * targets (fuzz_cluster_records, fuzz_cluster_sentinel). The input's first
 * byte picks a split; the rest is fed whole, then in two pieces at the split,
 * and every reply must interpret the same both ways (interpret() hashes what
 * the target's interpreters make of a reply). */
#ifndef WHT_TESTS_FUZZ_RESP_H
#define WHT_TESTS_FUZZ_RESP_H

#include <stdint.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

typedef uint64_t fuzz_resp_interpret_fn(const redisReply *r);

/* Refuses RESP whose headers announce huge arrays or strings (hiredis would
 * allocate them up front): not what these targets are about. */
static int resp_sane(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '*' && s[i] != '$')
            continue;
        size_t j = i + 1;
        uint64_t v = 0;
        if (j < len && s[j] == '-')
            continue;
        while (j < len && s[j] >= '0' && s[j] <= '9' && v < 100000)
            v = v * 10 + (uint64_t)(s[j++] - '0');
        if (v > 4096)
            return 0;
    }
    return 1;
}

/* Every reply in s[0..len) fed in two pieces at split, compared with whole[]. */
static void resp_split(const char *s, size_t len, size_t split, const uint64_t *whole, size_t nwhole,
                       fuzz_resp_interpret_fn *interpret)
{
    redisReader *rd = redisReaderCreate();
    void *reply;
    size_t k = 0;
    if (!rd)
        return;
    int ok = redisReaderFeed(rd, s, split) == REDIS_OK;
    while (ok && k < nwhole && redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        if (interpret(reply) != whole[k++])
            abort();
        freeReplyObject(reply);
    }
    ok = ok && redisReaderFeed(rd, s + split, len - split) == REDIS_OK;
    while (ok && k < nwhole && redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        if (interpret(reply) != whole[k++])
            abort();
        freeReplyObject(reply);
    }
    if (ok && k != nwhole)
        abort();
    redisReaderFree(rd);
}

static void fuzz_resp(const char *s, size_t len, fuzz_resp_interpret_fn *interpret)
{
    uint64_t whole[16];
    size_t nwhole = 0, split;
    void *reply;
    if (len < 1 || !resp_sane(s + 1, len - 1))
        return;
    split = (unsigned char)s[0];
    s++, len--;
    if (split > len)
        split = len;
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return;
    if (redisReaderFeed(rd, s, len) == REDIS_OK) {
        while (nwhole < 16 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
            whole[nwhole++] = interpret(reply);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
    resp_split(s, len, split, whole, nwhole, interpret);
}

#endif
