/* util_htab: the intrusive chained hash table of the project: the node's
 * worker table, the mux session's streams, and in cluster/ the route cache,
 * the held-worker table and the pending lookups.
 *
 * An element embeds a struct util_hnode; its key bytes live in the same
 * allocation, key_off bytes after the node (set once per table). Keys are at
 * most 65535 bytes. The table never owns elements: removing one does not
 * free it. The bucket array doubles when the table holds more elements than
 * buckets, up to max_buckets; it never shrinks. Hashing is keyed with a
 * per-table seed, so colliding ids cannot be prepared in advance.
 */
#ifndef WHT_UTIL_HTAB_H
#define WHT_UTIL_HTAB_H

#include <stddef.h>
#include <stdint.h>

struct util_hnode {
    struct util_hnode *next;
    uint32_t hash;
    uint16_t klen;
};

struct util_htab {
    struct util_hnode **b;
    size_t nb;          /* buckets, a power of two (0 before the first insert) */
    size_t n;           /* elements */
    size_t max_buckets; /* growth limit, a power of two */
    size_t key_off;     /* from an element's hnode to its key bytes */
    uint64_t seed;
};

/* Prepares an empty table. max_buckets is rounded down to a power of two (at least 16). */
void util_htab_init(struct util_htab *t, size_t key_off, uint64_t seed, size_t max_buckets);

/* Frees the bucket array (not the elements) and zeroes the table. */
void util_htab_free(struct util_htab *t);

/* The keyed hash of key (len bytes). */
uint32_t util_htab_hash(const struct util_htab *t, const char *key, size_t len);

/* The element with this key, or NULL. */
struct util_hnode *util_htab_find(const struct util_htab *t, const char *key, size_t len,
                                          uint32_t hash);

/* Inserts n, whose hash and klen the caller set (a duplicate key is the
 * caller's mistake). Returns 0, or -1 if the first bucket array
 * cannot be allocated (a failed growth is not an error: chains get longer). */
int util_htab_insert(struct util_htab *t, struct util_hnode *n);

/* Removes n, which must be in the table. */
void util_htab_remove(struct util_htab *t, struct util_hnode *n);

/* Bytes of the bucket array. */
size_t util_htab_bytes(const struct util_htab *t);

/* Seeds from the kernel's random source (getrandom), falling back to the
 * address of a stack variable and the clock: tables must differ, not be secret. */
uint64_t util_random_seed(void);

#endif
