/* buddy.c -- power-of-two block allocator over index ranges (see buddy.h).
 *
 * Theory.  Every managed unit belongs to exactly one block: a free block on
 * the list of its order, or an allocated block.  Metadata lives in three
 * arrays indexed by unit, sized to the highest index ever managed and grown
 * only by buddy_add_range()/buddy_reserve(), never by alloc or free:
 *
 *   state[i]  BUDDY_S_MANAGED for every managed unit; the first unit of a
 *             block also carries BUDDY_S_FREE or BUDDY_S_ALLOC and the order
 *             in the low bits.  Interior units carry MANAGED alone.
 *   next[i], prev[i]  free-list links, meaningful only at a free block's
 *             first unit (intrusive doubly-linked list per order, NIL-ended).
 *
 * Invariants (checked by test/unit/t_buddy.c):
 *   sum_k nr_free[k] << k == units_free
 *   units_free + units in allocated blocks == units
 *   no two free buddies of the same order k < max_order coexist: a free
 *   block whose buddy idx ^ (1 << k) is free with order k was merged.
 * Hence an aligned, fully managed run of 2^k free units always lies inside
 * one free block of order >= k, and buddy_alloc(k) fails only when no such
 * run exists.
 *
 * Costs: alloc is O(max_order) (find a list, split down); free is
 * O(max_order) (merge up); add_range and remove_block are O(units touched).
 * Freeing anything but the head of an allocated block of that exact order
 * aborts with a message: a silent overlap would corrupt every later caller.
 */
#include "buddy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysalloc.h"

#define BUDDY_NIL UINT32_MAX
#define BUDDY_INDEX_LIMIT ((uint64_t)UINT32_MAX) /* indices must stay below */

#define BUDDY_S_ORDER 0x1fu
#define BUDDY_S_MANAGED 0x20u
#define BUDDY_S_ALLOC 0x40u
#define BUDDY_S_FREE 0x80u

struct buddy {
	unsigned max_order;
	uint64_t cap; /* entries in state/next/prev */
	uint8_t *state;
	uint32_t *next, *prev;
	uint32_t head[BUDDY_MAX_ORDER + 1];
	uint64_t nr_free[BUDDY_MAX_ORDER + 1];
	uint64_t units, units_free;
	uint64_t allocs, frees, splits, merges, alloc_fail;
};

static void buddy_die(const char *what, uint64_t idx, unsigned order)
{
	fprintf(stderr, "buddy: %s (block %llu, order %u)\n", what, (unsigned long long)idx, order);
	abort();
}

static void list_push(struct buddy *b, uint32_t idx, unsigned order)
{
	uint32_t h = b->head[order];

	b->state[idx] = BUDDY_S_MANAGED | BUDDY_S_FREE | order;
	b->prev[idx] = BUDDY_NIL;
	b->next[idx] = h;
	if (h != BUDDY_NIL)
		b->prev[h] = idx;
	b->head[order] = idx;
	b->nr_free[order]++;
}

static void list_unlink(struct buddy *b, uint32_t idx, unsigned order)
{
	uint32_t n = b->next[idx], p = b->prev[idx];

	if (p != BUDDY_NIL)
		b->next[p] = n;
	else
		b->head[order] = n;
	if (n != BUDDY_NIL)
		b->prev[n] = p;
	b->state[idx] = BUDDY_S_MANAGED;
	b->nr_free[order]--;
}

static bool is_free_head(const struct buddy *b, uint64_t idx, unsigned order)
{
	return idx < b->cap && b->state[idx] == (BUDDY_S_MANAGED | BUDDY_S_FREE | order);
}

/* Put the free block <idx>/<order> on the lists, merging upward with free
 * buddies.  <count> says whether merges show in the stats (buddy_free) or
 * not (ranges being added). */
static void insert_merge(struct buddy *b, uint64_t idx, unsigned order, bool count)
{
	while (order < b->max_order) {
		uint64_t bud = idx ^ (1ull << order);

		if (!is_free_head(b, bud, order))
			break;
		list_unlink(b, (uint32_t)bud, order);
		if (bud < idx) {
			b->state[idx] = BUDDY_S_MANAGED;
			idx = bud;
		}
		order++;
		if (count)
			b->merges++;
	}
	list_push(b, (uint32_t)idx, order);
}

struct buddy *buddy_create(unsigned max_order)
{
	struct buddy *b;
	unsigned k;

	if (max_order > BUDDY_MAX_ORDER)
		return NULL;
	b = sys_calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->max_order = max_order;
	for (k = 0; k <= BUDDY_MAX_ORDER; k++)
		b->head[k] = BUDDY_NIL;
	return b;
}

void buddy_destroy(struct buddy *b)
{
	if (b == NULL)
		return;
	sys_free(b->state);
	sys_free(b->next);
	sys_free(b->prev);
	sys_free(b);
}

int buddy_reserve(struct buddy *b, uint64_t end)
{
	uint64_t ncap = b->cap ? b->cap : 64;
	uint8_t *st;
	uint32_t *nx, *pv;

	if (end <= b->cap)
		return 0;
	if (end > BUDDY_INDEX_LIMIT)
		return -EINVAL;
	while (ncap < end)
		ncap *= 2;
	if (ncap > BUDDY_INDEX_LIMIT)
		ncap = BUDDY_INDEX_LIMIT;
	/* Fresh arrays (calloc'd, so large ones stay untouched until used),
	 * then copy: realloc would not zero the new tail of state[]. */
	st = sys_calloc(ncap, sizeof(*st));
	nx = sys_malloc(ncap * sizeof(*nx));
	pv = sys_malloc(ncap * sizeof(*pv));
	if (st == NULL || nx == NULL || pv == NULL) {
		sys_free(st);
		sys_free(nx);
		sys_free(pv);
		return -ENOMEM;
	}
	if (b->cap) {
		memcpy(st, b->state, b->cap * sizeof(*st));
		memcpy(nx, b->next, b->cap * sizeof(*nx));
		memcpy(pv, b->prev, b->cap * sizeof(*pv));
	}
	sys_free(b->state);
	sys_free(b->next);
	sys_free(b->prev);
	b->state = st;
	b->next = nx;
	b->prev = pv;
	b->cap = ncap;
	return 0;
}

int buddy_add_range(struct buddy *b, uint64_t start, uint64_t count)
{
	uint64_t i, end = start + count;
	int err;

	if (count == 0 || end < start || end > BUDDY_INDEX_LIMIT)
		return -EINVAL;
	err = buddy_reserve(b, end);
	if (err)
		return err == -ENOMEM ? -ENOMEM : -EINVAL;
	for (i = start; i < end; i++)
		if (b->state[i] & BUDDY_S_MANAGED)
			return -EINVAL;
	for (i = start; i < end; i++)
		b->state[i] = BUDDY_S_MANAGED;
	/* Carve into maximal aligned blocks; each may merge with a free
	 * neighbour added earlier, so adjacent ranges behave as one. */
	for (i = start; i < end;) {
		unsigned k = 0;

		while (k < b->max_order && !(i & (1ull << k)) && i + (2ull << k) <= end)
			k++;
		insert_merge(b, i, k, false);
		i += 1ull << k;
	}
	b->units += count;
	b->units_free += count;
	return 0;
}

/* Head of the free block of order >= <order> containing <idx>, or -1;
 * its order goes to *<found>. */
static int64_t find_free_container(
		const struct buddy *b, uint64_t idx, unsigned order, unsigned *found)
{
	unsigned k;

	for (k = order; k <= b->max_order; k++) {
		uint64_t h = idx & ~((1ull << k) - 1);

		if (is_free_head(b, h, k)) {
			*found = k;
			return (int64_t)h;
		}
	}
	return -1;
}

int buddy_remove_block(struct buddy *b, uint64_t idx, unsigned order)
{
	uint64_t h, i, n;
	int64_t c;
	unsigned k;

	if (order > b->max_order || (idx & ((1ull << order) - 1)) || idx >= b->cap)
		return -EINVAL;
	c = find_free_container(b, idx, order, &k);
	if (c < 0)
		return -EINVAL;
	h = (uint64_t)c;
	list_unlink(b, (uint32_t)h, k);
	/* Split the container down, keeping the halves that miss <idx>. */
	while (k > order) {
		uint64_t half;

		k--;
		half = h + (1ull << k);
		if (idx >= half) {
			list_push(b, (uint32_t)h, k);
			h = half;
		} else {
			list_push(b, (uint32_t)half, k);
		}
		b->splits++;
	}
	n = 1ull << order;
	for (i = idx; i < idx + n; i++)
		b->state[i] = 0;
	b->units -= n;
	b->units_free -= n;
	return 0;
}

int64_t buddy_alloc(struct buddy *b, unsigned order)
{
	unsigned k;
	uint32_t idx;

	for (k = order; k <= b->max_order; k++)
		if (b->head[k] != BUDDY_NIL)
			break;
	if (order > b->max_order || k > b->max_order) {
		b->alloc_fail++;
		return -1;
	}
	idx = b->head[k];
	list_unlink(b, idx, k);
	while (k > order) {
		k--;
		list_push(b, idx + (1u << k), k);
		b->splits++;
	}
	b->state[idx] = BUDDY_S_MANAGED | BUDDY_S_ALLOC | order;
	b->units_free -= 1ull << order;
	b->allocs++;
	return idx;
}

void buddy_free(struct buddy *b, uint64_t idx, unsigned order)
{
	if (order > b->max_order || idx >= b->cap ||
			b->state[idx] != (BUDDY_S_MANAGED | BUDDY_S_ALLOC | order))
		buddy_die("buddy_free of a block that is not allocated with this order", idx,
				order);
	b->state[idx] = BUDDY_S_MANAGED;
	b->units_free += 1ull << order;
	b->frees++;
	insert_merge(b, idx, order, true);
}

bool buddy_block_is_free(const struct buddy *b, uint64_t idx, unsigned order)
{
	unsigned k;

	if (order > b->max_order || (idx & ((1ull << order) - 1)))
		return false;
	return find_free_container(b, idx, order, &k) >= 0;
}

int buddy_largest_free_order(const struct buddy *b)
{
	int k;

	for (k = (int)b->max_order; k >= 0; k--)
		if (b->nr_free[k])
			return k;
	return -1;
}

uint64_t buddy_nr_free(const struct buddy *b, unsigned order)
{
	return order <= b->max_order ? b->nr_free[order] : 0;
}

int64_t buddy_peek_free(const struct buddy *b, unsigned order)
{
	if (order > b->max_order || b->head[order] == BUDDY_NIL)
		return -1;
	return b->head[order];
}

void buddy_foreach_free(const struct buddy *b, unsigned order, buddy_visit_fn fn, void *arg)
{
	uint32_t i;

	if (order > b->max_order)
		return;
	for (i = b->head[order]; i != BUDDY_NIL; i = b->next[i])
		fn(i, arg);
}

void buddy_stats_get(const struct buddy *b, struct buddy_stats *st)
{
	int top = buddy_largest_free_order(b);

	memset(st, 0, sizeof(*st));
	st->max_order = b->max_order;
	st->units = b->units;
	st->units_free = b->units_free;
	memcpy(st->nr_free, b->nr_free, sizeof(st->nr_free));
	st->allocs = b->allocs;
	st->frees = b->frees;
	st->splits = b->splits;
	st->merges = b->merges;
	st->alloc_fail = b->alloc_fail;
	if (b->units_free && top >= 0)
		st->frag_index = 1.0 - (double)(1ull << top) / (double)b->units_free;
}

unsigned buddy_order_for(uint64_t n)
{
	unsigned k = 0;

	while (k < 63 && (1ull << k) < n)
		k++;
	return k;
}
