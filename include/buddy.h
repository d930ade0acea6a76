/* buddy.h -- a power-of-two block allocator over a range of indices.
 *
 * It hands out indices, not memory: the slab layer maps page indices to
 * addresses, and the pool manager uses it for backend-connection slots.
 * A block of order k covers 2^k consecutive units starting at an index that
 * is a multiple of 2^k; its buddy starts at idx ^ (1 << k).  Allocation
 * splits a larger free block; freeing merges with a free buddy, upward.
 *
 * Invariant: sum over k of nr_free[k] << k == units free; units free +
 * units allocated == units managed.  No global state: each struct buddy is
 * owned by whoever created it.
 */
#ifndef PGSLAB_BUDDY_H
#define PGSLAB_BUDDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUDDY_MAX_ORDER 24

struct buddy; /* opaque */

struct buddy_stats {
	unsigned max_order;
	uint64_t units;                         /* units managed */
	uint64_t units_free;
	uint64_t nr_free[BUDDY_MAX_ORDER + 1];  /* free blocks per order */
	uint64_t allocs, frees, splits, merges, alloc_fail;
	/* 0.0 when the largest free block holds all free units, towards 1.0
	 * as free units scatter into small blocks; 0 when nothing is free. */
	double frag_index;
};

/* A buddy allocator managing no units yet; blocks never exceed <max_order>.
 * NULL on bad arguments or allocation failure. */
struct buddy *buddy_create(unsigned max_order);
void buddy_destroy(struct buddy *b);

/* Make [start, start + count) available, carved into the largest aligned
 * blocks that fit.  The range must not overlap units already managed.
 * Returns 0 or -EINVAL. */
int buddy_add_range(struct buddy *b, uint64_t start, uint64_t count);

/* Take a block of 2^<order> units out of management for good (used to give
 * a top-order block of pages back to the OS).  The block must be free.
 * Returns 0 or -EINVAL. */
int buddy_remove_block(struct buddy *b, uint64_t idx, unsigned order);

/* Allocate a block of 2^<order> units; returns its first index, or -1 when
 * no block that large is free (counted in alloc_fail). */
int64_t buddy_alloc(struct buddy *b, unsigned order);

/* Free a block obtained from buddy_alloc with the same order.  Freeing a
 * block that is not allocated aborts: it would corrupt the free lists. */
void buddy_free(struct buddy *b, uint64_t idx, unsigned order);

/* Is the whole block [idx, idx + 2^order) free and merged as one block?
 * (Also true when it lies inside a larger free block; O(max_order).) */
bool buddy_block_is_free(const struct buddy *b, uint64_t idx, unsigned order);

/* Largest order with a free block, or -1 when nothing is free. */
int buddy_largest_free_order(const struct buddy *b);

void buddy_stats_get(const struct buddy *b, struct buddy_stats *st);

/* Smallest order whose block holds at least <n> units. */
unsigned buddy_order_for(uint64_t n);

/* Additions (after the API above was pinned). */

/* Metadata is per unit, sized to the highest index managed (indices must
 * stay below 2^32 - 1), and only grows in buddy_add_range()/buddy_reserve():
 * buddy_add_range() can therefore also return -ENOMEM.  buddy_alloc and
 * buddy_free never allocate. */

/* Pre-size the per-unit metadata for indices below <end>, so that later
 * buddy_add_range() calls under <end> never allocate.  0, -EINVAL (index
 * limit is 2^32 - 1) or -ENOMEM. */
int buddy_reserve(struct buddy *b, uint64_t end);

/* Number of free blocks of exactly <order>. */
uint64_t buddy_nr_free(const struct buddy *b, unsigned order);

/* First index of some free block of exactly <order>, or -1: lets a caller
 * walk free top-order blocks to give them back (remove it, then peek again). */
int64_t buddy_peek_free(const struct buddy *b, unsigned order);

/* Calls <fn>(<idx>, <arg>) for each free block of exactly <order>; <fn>
 * must not change <b>. */
typedef void (*buddy_visit_fn)(uint64_t idx, void *arg);
void buddy_foreach_free(const struct buddy *b, unsigned order, buddy_visit_fn fn, void *arg);

#endif
