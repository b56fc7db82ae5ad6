/* The intrusive hash table of the project (see htab.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/htab.h"

void util_htab_init(struct util_htab *t, size_t key_off, uint64_t seed, size_t max_buckets)
{
    size_t m = 16;
    while (m * 2 <= max_buckets && m * 2 != 0)
        m *= 2;
    memset(t, 0, sizeof(*t));
    t->key_off = key_off;
    t->seed = seed;
    t->max_buckets = m;
}

void util_htab_free(struct util_htab *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

static uint64_t util__htab_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

uint32_t util_htab_hash(const struct util_htab *t, const char *key, size_t len)
{
    uint64_t h = util__htab_mix(t->seed ^ (len * UINT64_C(0x9e3779b97f4a7c15)));
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = util__htab_mix(h ^ w) + UINT64_C(0x9e3779b97f4a7c15);
    }
    uint64_t w = 0;
    memcpy(&w, key + i, len - i);
    h = util__htab_mix(h ^ w ^ t->seed);
    return (uint32_t)(h >> 32);
}

static const char *util__htab_key(const struct util_htab *t, const struct util_hnode *n)
{
    return (const char *)n + t->key_off;
}

struct util_hnode *util_htab_find(const struct util_htab *t, const char *key, size_t len,
                                          uint32_t hash)
{
    if (!t->nb)
        return NULL;
    for (struct util_hnode *n = t->b[hash & (t->nb - 1)]; n; n = n->next)
        if (n->hash == hash && n->klen == len && memcmp(util__htab_key(t, n), key, len) == 0)
            return n;
    return NULL;
}

static void util__htab_grow(struct util_htab *t)
{
    size_t nb = t->nb * 2;
    struct util_hnode **b = calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < t->nb; i++) {
        struct util_hnode *n = t->b[i], *next;
        for (; n; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

int util_htab_insert(struct util_htab *t, struct util_hnode *n)
{
    if (!t->nb) {
        t->b = calloc(16, sizeof(*t->b));
        if (!t->b)
            return -1;
        t->nb = 16;
    }
    if (t->n >= t->nb && t->nb < t->max_buckets)
        util__htab_grow(t);
    struct util_hnode **head = &t->b[n->hash & (t->nb - 1)];
    n->next = *head;
    *head = n;
    t->n++;
    return 0;
}

void util_htab_remove(struct util_htab *t, struct util_hnode *n)
{
    struct util_hnode **pp = &t->b[n->hash & (t->nb - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = n->next;
        n->next = NULL;
        t->n--;
    }
}

size_t util_htab_bytes(const struct util_htab *t)
{
    return t->nb * sizeof(*t->b);
}

uint64_t util_random_seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)(uintptr_t)&ts ^ (uint64_t)ts.tv_nsec << 20 ^ (uint64_t)ts.tv_sec;
    }
    return s;
}
