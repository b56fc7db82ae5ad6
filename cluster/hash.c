/* The intrusive hash table used across cluster/ (see hash.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cluster/cluster.h"
#include "cluster/hash.h"

void cluster__htab_init(struct cluster__htab *t, size_t key_off, uint64_t seed, size_t max_buckets)
{
    size_t m = 16;
    while (m * 2 <= max_buckets && m * 2 != 0)
        m *= 2;
    memset(t, 0, sizeof(*t));
    t->key_off = key_off;
    t->seed = seed;
    t->max_buckets = m;
}

void cluster__htab_free(struct cluster__htab *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

static uint64_t htab__mix(uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

uint32_t cluster__htab_hash(const struct cluster__htab *t, const char *key, size_t len)
{
    uint64_t h = htab__mix(t->seed ^ (len * UINT64_C(0x9e3779b97f4a7c15)));
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = htab__mix(h ^ w) + UINT64_C(0x9e3779b97f4a7c15);
    }
    uint64_t w = 0;
    memcpy(&w, key + i, len - i);
    h = htab__mix(h ^ w ^ t->seed);
    return (uint32_t)(h >> 32);
}

static const char *htab__key(const struct cluster__htab *t, const struct cluster__hnode *n)
{
    return (const char *)n + t->key_off;
}

struct cluster__hnode *cluster__htab_find(const struct cluster__htab *t, const char *key, size_t len,
                                          uint32_t hash)
{
    if (!t->nb)
        return NULL;
    for (struct cluster__hnode *n = t->b[hash & (t->nb - 1)]; n; n = n->next)
        if (n->hash == hash && n->klen == len && memcmp(htab__key(t, n), key, len) == 0)
            return n;
    return NULL;
}

static void htab__grow(struct cluster__htab *t)
{
    size_t nb = t->nb * 2;
    struct cluster__hnode **b = calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < t->nb; i++) {
        struct cluster__hnode *n = t->b[i], *next;
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

int cluster__htab_insert(struct cluster__htab *t, struct cluster__hnode *n)
{
    if (!t->nb) {
        t->b = calloc(16, sizeof(*t->b));
        if (!t->b)
            return CLUSTER_E_NOMEM;
        t->nb = 16;
    }
    if (t->n >= t->nb && t->nb < t->max_buckets)
        htab__grow(t);
    struct cluster__hnode **head = &t->b[n->hash & (t->nb - 1)];
    n->next = *head;
    *head = n;
    t->n++;
    return 0;
}

void cluster__htab_remove(struct cluster__htab *t, struct cluster__hnode *n)
{
    struct cluster__hnode **pp = &t->b[n->hash & (t->nb - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = n->next;
        n->next = NULL;
        t->n--;
    }
}

size_t cluster__htab_bytes(const struct cluster__htab *t)
{
    return t->nb * sizeof(*t->b);
}

uint64_t cluster__random_seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)(uintptr_t)&ts ^ (uint64_t)ts.tv_nsec << 20 ^ (uint64_t)ts.tv_sec;
    }
    return s;
}
