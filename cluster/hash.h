/* cluster__htab: the intrusive chained hash table behind the route cache, the
 * held-worker table and the pending lookups. Internal to cluster/.
 *
 * An element embeds a struct cluster__hnode; its key bytes live in the same
 * allocation, key_off bytes after the node (set once per table). Keys are at
 * most 65535 bytes. The table never owns elements: removing one does not
 * free it. The bucket array doubles when the table holds more elements than
 * buckets, up to max_buckets; it never shrinks. Hashing is keyed with a
 * per-table seed, so colliding ids cannot be prepared in advance.
 */
#ifndef WHT_CLUSTER_HASH_H
#define WHT_CLUSTER_HASH_H

#include <stddef.h>
#include <stdint.h>

struct cluster__hnode {
    struct cluster__hnode *next;
    uint32_t hash;
    uint16_t klen;
};

struct cluster__htab {
    struct cluster__hnode **b;
    size_t nb;          /* buckets, a power of two (0 before the first insert) */
    size_t n;           /* elements */
    size_t max_buckets; /* growth limit, a power of two */
    size_t key_off;     /* from an element's hnode to its key bytes */
    uint64_t seed;
};

/* Prepares an empty table. max_buckets is rounded down to a power of two (at least 16). */
void cluster__htab_init(struct cluster__htab *t, size_t key_off, uint64_t seed, size_t max_buckets);

/* Frees the bucket array (not the elements) and zeroes the table. */
void cluster__htab_free(struct cluster__htab *t);

/* The keyed hash of key (len bytes). */
uint32_t cluster__htab_hash(const struct cluster__htab *t, const char *key, size_t len);

/* The element with this key, or NULL. */
struct cluster__hnode *cluster__htab_find(const struct cluster__htab *t, const char *key, size_t len,
                                          uint32_t hash);

/* Inserts n, whose hash and klen the caller set (a duplicate key is the
 * caller's mistake). Returns 0, or CLUSTER_E_NOMEM if the first bucket array
 * cannot be allocated (a failed growth is not an error: chains get longer). */
int cluster__htab_insert(struct cluster__htab *t, struct cluster__hnode *n);

/* Removes n, which must be in the table. */
void cluster__htab_remove(struct cluster__htab *t, struct cluster__hnode *n);

/* Bytes of the bucket array. */
size_t cluster__htab_bytes(const struct cluster__htab *t);

/* Seeds from the kernel's random source (getrandom), falling back to the
 * address of a stack variable and the clock: tables must differ, not be secret. */
uint64_t cluster__random_seed(void);

#endif
