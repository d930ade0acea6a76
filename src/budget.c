/* budget.c -- a database's backend-connection budget, lent to pools in buddy blocks.
 *
 * Theory.  The domain's buddy allocator manages exactly
 *
 *   [0, slots)  union  (held blocks lying at indices >= slots)
 *
 * so every managed unit is free or in exactly one member's block table, and
 *
 *   held == sum over members of capacity == sum of their blocks
 *   buddy units == slots + draining        (draining: held units >= slots)
 *   buddy units free + held == buddy units
 *   room == slots - held (or 0) <= buddy units free
 *
 * Free units never lie at indices >= slots: any operation that frees a block
 * reaching past <slots> sets b->trim, and budget_trim() takes such free
 * units out of the allocator before the operation returns.  Grows are
 * bounded by room, not by what the allocator has free, so after a shrinking
 * resize the total held only falls until it fits ("draining").
 *
 * A member's blocks are kept sorted by order, largest first, then by start.
 * Two blocks of one member that are buddies are merged (freed, and one block
 * of the next order allocated), so "1+1" becomes "2": the allocator can only
 * merge what is free, and this keeps a member's table short and its
 * display meaningful.
 *
 * Fair shares are weighted water-filling with bounds: member i with demand
 * gets clamp(lambda * w_i, lb, cap_i), cap_i = min(demand, max, slots),
 * lb = 1 when slots >= number of demanding members else 0, with lambda the
 * level at which the shares sum to <slots> (or everyone at cap).  The sum is
 * piecewise linear in lambda with breakpoints lb / w_i and cap_i / w_i; the
 * segment holding the solution is found among them with exact integer
 * arithmetic, and fractional shares are rounded by largest remainder (ties
 * in member-list order), so integer shares sum to exactly <slots>.
 *
 * Cost.  The sum is nondecreasing in lambda, so the segment is found by
 * sorting the 2n breakpoints and binary-searching them with an O(n) sum
 * each, and the remainders are ranked by one sort: one solve gives every
 * member's share in O(n log n) for n members with demand.  budget_fair_share()
 * is O(n log n), budget_pick_victim() and budget_pick_needy() one solve plus
 * an O(members) walk.  The scratch arrays live in the domain and grow in
 * budget_join(), so the solve allocates nothing.
 *
 * Ownership: members are embedded in the caller's objects; the domain links
 * them but never frees them.  The domain owns its buddy allocator.
 */
#include "budget.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysalloc.h"

/* One demanding member in share_solve(), in member-list order. */
struct share_item {
	struct budget_member *m;
	uint64_t cap, w, rem;
	unsigned share;
	unsigned order; /* index in list order, for ties */
};

/* A breakpoint p / q of the water level. */
struct share_point {
	uint64_t p, q;
};

struct budget {
	struct buddy *buddy;
	unsigned slots;
	unsigned held;	   /* sum of member capacities */
	unsigned owed;	   /* sum of member owed */
	unsigned handover; /* slots freed by take_slot, not yet grown into */
	bool trim;	   /* free units at indices >= slots may exist */
	uint64_t clock;	   /* grow sequence, for "least recently grown" */
	struct list members;
	unsigned nmembers;
	unsigned scratch_cap;	     /* entries in items; points has twice as many */
	struct share_item *items;    /* scratch of share_solve(): demanding members */
	struct share_point *points;  /* scratch of share_solve(): breakpoints */
	struct share_item **ranked;  /* scratch of share_solve(): free members */
	uint64_t grows, grow_fail, table_full, shrinks, reclaims, victims;
};

/* ---- helpers ---- */

static unsigned umin(unsigned a, unsigned b)
{
	return a < b ? a : b;
}

static unsigned floor_log2(unsigned v)
{
	return 31u - (unsigned)__builtin_clz(v);
}

static unsigned budget_room(const struct budget *b)
{
	return b->slots > b->held ? b->slots - b->held : 0;
}

static unsigned member_limit(const struct budget_member *m)
{
	return m->max ? umin(m->max, BUDGET_MAX_SLOTS) : BUDGET_MAX_SLOTS;
}

static uint64_t member_weight(const struct budget_member *m)
{
	if (m->weight == 0)
		return 1;
	return umin(m->weight, BUDGET_MAX_WEIGHT);
}

static unsigned member_cap(const struct budget *b, const struct budget_member *m)
{
	return umin(umin(m->demand, member_limit(m)), b->slots);
}

static void member_add_block(struct budget_member *m, uint32_t start, unsigned order)
{
	unsigned i = m->nblocks;

	while (i > 0 && (m->blocks[i - 1].order < order ||
					(m->blocks[i - 1].order == order &&
							m->blocks[i - 1].start > start))) {
		m->blocks[i] = m->blocks[i - 1];
		i--;
	}
	m->blocks[i].start = start;
	m->blocks[i].order = (uint8_t)order;
	m->nblocks++;
	m->capacity += 1u << order;
}

static void member_del_block(struct budget_member *m, unsigned i)
{
	m->capacity -= 1u << m->blocks[i].order;
	m->nblocks--;
	memmove(&m->blocks[i], &m->blocks[i + 1], (m->nblocks - i) * sizeof(m->blocks[0]));
}

/* Free the allocator block behind <m>'s block <i> and drop it from <m>. */
static void release_block(struct budget *b, struct budget_member *m, unsigned i)
{
	uint32_t start = m->blocks[i].start;
	unsigned order = m->blocks[i].order;

	member_del_block(m, i);
	b->held -= 1u << order;
	buddy_free(b->buddy, start, order);
	if ((uint64_t)start + (1u << order) > b->slots)
		b->trim = true;
}

/* Allocate a block of 2^<order> for <m>; the caller checked room, table
 * space and that a free block of that order exists. */
static bool acquire_block(struct budget *b, struct budget_member *m, unsigned order)
{
	int64_t idx = buddy_alloc(b->buddy, order);

	if (idx < 0)
		return false;
	member_add_block(m, (uint32_t)idx, order);
	b->held += 1u << order;
	return true;
}

/* Merge pairs of buddy blocks held by <m> into one block of the next
 * order.  Two buddies of one order sort next to each other.  Freeing both
 * leaves an aligned free run of twice the size, so the allocation of the
 * next order cannot fail. */
static void member_compact(struct budget *b, struct budget_member *m)
{
	unsigned i = 0;

	while (i + 1 < m->nblocks) {
		struct budget_block x = m->blocks[i], y = m->blocks[i + 1];

		if (x.order != y.order || x.order >= BUDGET_MAX_ORDER ||
				(x.start ^ y.start) != 1u << x.order) {
			i++;
			continue;
		}
		release_block(b, m, i + 1);
		release_block(b, m, i);
		if (!acquire_block(b, m, x.order + 1u)) {
			/* cannot happen (see above); keep accounting exact */
			acquire_block(b, m, x.order);
			acquire_block(b, m, x.order);
			return;
		}
		i = 0;
	}
}

struct trim_find {
	uint64_t limit, order_size;
	int64_t found;
};

static void trim_visit(uint64_t idx, void *arg)
{
	struct trim_find *f = arg;

	if (f->found < 0 && idx + f->order_size > f->limit)
		f->found = (int64_t)idx;
}

/* Take free units at indices >= slots out of the allocator.  Removing part
 * of a free block only leaves smaller free blocks below <slots>, so one pass
 * from the top order down finds everything. */
static void budget_trim(struct budget *b)
{
	int k;

	if (!b->trim)
		return;
	b->trim = false;
	for (k = BUDGET_MAX_ORDER; k >= 0; k--) {
		for (;;) {
			struct trim_find f = {b->slots, 1ull << k, -1};
			uint64_t i, end;

			buddy_foreach_free(b->buddy, (unsigned)k, trim_visit, &f);
			if (f.found < 0)
				break;
			i = (uint64_t)f.found > b->slots ? (uint64_t)f.found : b->slots;
			end = (uint64_t)f.found + (1ull << k);
			while (i < end) {
				unsigned o = 0;

				while (!(i & (1ull << o)) && i + (2ull << o) <= end)
					o++;
				buddy_remove_block(b->buddy, i, o);
				i += 1ull << o;
			}
		}
	}
}

static void member_clamp_owed(struct budget *b, struct budget_member *m)
{
	if (m->owed > m->capacity) {
		b->owed -= m->owed - m->capacity;
		m->owed = m->capacity;
	}
}

/* ---- domains ---- */

struct budget *budget_create(unsigned slots)
{
	struct budget *b;

	if (slots > BUDGET_MAX_SLOTS)
		return NULL;
	b = sys_calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	list_init(&b->members);
	b->buddy = buddy_create(BUDGET_MAX_ORDER);
	if (b->buddy == NULL)
		goto fail;
	if (slots && buddy_add_range(b->buddy, 0, slots) != 0)
		goto fail_buddy;
	b->slots = slots;
	return b;

fail_buddy:
	buddy_destroy(b->buddy);
fail:
	sys_free(b);
	return NULL;
}

void budget_destroy(struct budget *b)
{
	struct list *it, *tmp;

	if (b == NULL)
		return;
	list_for_each_safe(it, tmp, &b->members) {
		struct budget_member *m = list_entry(it, struct budget_member, node);

		list_del(&m->node);
		m->budget = NULL;
		m->nblocks = 0;
		m->capacity = 0;
		m->owed = 0;
	}
	sys_free(b->items);
	sys_free(b->points);
	sys_free(b->ranked);
	buddy_destroy(b->buddy);
	sys_free(b);
}

/* The held block starting lowest among those ending above <pos>, or NULL. */
static const struct budget_block *held_block_after(const struct budget *b, uint64_t pos)
{
	const struct budget_block *best = NULL;
	const struct list *it;

	list_for_each(it, &b->members) {
		const struct budget_member *m = list_entry(it, struct budget_member, node);
		unsigned i;

		for (i = 0; i < m->nblocks; i++) {
			const struct budget_block *x = &m->blocks[i];

			if ((uint64_t)x->start + (1u << x->order) > pos &&
					(best == NULL || x->start < best->start))
				best = x;
		}
	}
	return best;
}

int budget_resize(struct budget *b, unsigned slots)
{
	if (slots > BUDGET_MAX_SLOTS)
		return -EINVAL;
	if (slots > b->slots) {
		uint64_t pos = b->slots;
		int err = buddy_reserve(b->buddy, slots);

		if (err)
			return err;
		/* Add what is not managed yet: [old, new) minus held blocks. */
		while (pos < slots) {
			const struct budget_block *x = held_block_after(b, pos);
			uint64_t end = x ? x->start : slots;

			if (end > slots)
				end = slots;
			if (end > pos) {
				err = buddy_add_range(b->buddy, pos, end - pos);
				if (err)
					return err; /* cannot happen: reserved, unmanaged */
				pos = end;
			}
			if (x)
				pos = (uint64_t)x->start + (1u << x->order);
		}
	}
	b->slots = slots;
	b->trim = true;
	budget_trim(b);
	return 0;
}

unsigned budget_slots(const struct budget *b)
{
	return b->slots;
}

unsigned budget_free(const struct budget *b)
{
	return budget_room(b);
}

const struct buddy *budget_buddy(const struct budget *b)
{
	return b->buddy;
}

static unsigned budget_draining(const struct budget *b)
{
	const struct list *it;
	unsigned n = 0;

	list_for_each(it, &b->members) {
		const struct budget_member *m = list_entry(it, struct budget_member, node);
		unsigned i;

		for (i = 0; i < m->nblocks; i++) {
			uint64_t s = m->blocks[i].start, e = s + (1u << m->blocks[i].order);

			if (e > b->slots)
				n += (unsigned)(e - (s > b->slots ? s : b->slots));
		}
	}
	return n;
}

void budget_stats_get(const struct budget *b, struct budget_stats *st)
{
	const struct list *it;

	memset(st, 0, sizeof(*st));
	st->slots = b->slots;
	st->held = b->held;
	st->free = budget_room(b);
	st->draining = budget_draining(b);
	st->members = b->nmembers;
	list_for_each(it, &b->members) {
		const struct budget_member *m = list_entry(it, struct budget_member, node);

		if (m->demand)
			st->demanding++;
	}
	st->owed = b->owed;
	st->grows = b->grows;
	st->grow_fail = b->grow_fail;
	st->table_full = b->table_full;
	st->shrinks = b->shrinks;
	st->reclaims = b->reclaims;
	st->victims = b->victims;
	buddy_stats_get(b->buddy, &st->buddy);
}

int budget_check(const struct budget *b)
{
	struct buddy_stats bs;
	const struct list *it;
	uint64_t held = 0, owed = 0;
	unsigned n = 0;

	list_for_each(it, &b->members) {
		const struct budget_member *m = list_entry(it, struct budget_member, node);
		uint64_t cap = 0;
		unsigned i;

		if (m->budget != b || m->nblocks > BUDGET_MAX_BLOCKS || m->owed > m->capacity)
			return -EINVAL;
		for (i = 0; i < m->nblocks; i++) {
			const struct budget_block *x = &m->blocks[i];

			if (x->order > BUDGET_MAX_ORDER || (x->start & ((1u << x->order) - 1)))
				return -EINVAL;
			if (i && (x->order > m->blocks[i - 1].order ||
						 (x->order == m->blocks[i - 1].order &&
								 x->start <= m->blocks[i - 1].start)))
				return -EINVAL;
			cap += 1u << x->order;
		}
		if (cap != m->capacity)
			return -EINVAL;
		held += cap;
		owed += m->owed;
		n++;
	}
	buddy_stats_get(b->buddy, &bs);
	if (n != b->nmembers || held != b->held || owed != b->owed)
		return -EINVAL;
	if (bs.units != (uint64_t)b->slots + budget_draining(b))
		return -EINVAL;
	if (bs.units_free + held != bs.units || budget_room(b) > bs.units_free)
		return -EINVAL;
	return 0;
}

/* ---- members ---- */

void budget_member_init(struct budget_member *m, unsigned max, unsigned weight)
{
	memset(m, 0, sizeof(*m));
	m->max = max;
	m->weight = weight;
	list_init(&m->node);
}

/* Room in the share scratch for one more member (doubling). */
static int budget_scratch_grow(struct budget *b)
{
	unsigned cap = b->scratch_cap ? 2 * b->scratch_cap : 8;
	struct share_item *items = sys_realloc(b->items, cap * sizeof(*items));
	struct share_point *points;
	struct share_item **ranked;

	if (items == NULL)
		return -ENOMEM;
	b->items = items;
	points = sys_realloc(b->points, 2 * (size_t)cap * sizeof(*points));
	if (points == NULL)
		return -ENOMEM;
	b->points = points;
	ranked = sys_realloc(b->ranked, cap * sizeof(*ranked));
	if (ranked == NULL)
		return -ENOMEM;
	b->ranked = ranked;
	b->scratch_cap = cap;
	return 0;
}

int budget_join(struct budget *b, struct budget_member *m)
{
	if (m->budget == b)
		return 0;
	if (m->budget != NULL || m->nblocks != 0)
		return -EBUSY;
	if (b->nmembers >= b->scratch_cap && budget_scratch_grow(b) < 0)
		return -ENOMEM;
	m->budget = b;
	list_append(&b->members, &m->node);
	b->nmembers++;
	return 0;
}

unsigned budget_leave(struct budget *b, struct budget_member *m)
{
	unsigned n;

	if (m->budget != b)
		return 0;
	n = budget_release_all(b, m);
	list_del(&m->node);
	m->budget = NULL;
	b->nmembers--;
	return n;
}

/* Trade <m>'s block <i> (order j) for one of order j + 1: a gain of 2^j
 * with no new table entry.  When the block's buddy is free the two merge in
 * the allocator; otherwise a free block of order > j must exist elsewhere.
 * The caller checked that 2^j fits. */
static bool member_upgrade(struct budget *b, struct budget_member *m, unsigned i)
{
	unsigned j = m->blocks[i].order;

	if (j >= BUDGET_MAX_ORDER)
		return false;
	if (!buddy_block_is_free(b->buddy, m->blocks[i].start ^ (1u << j), j) &&
			buddy_largest_free_order(b->buddy) < (int)(j + 1))
		return false;
	release_block(b, m, i);
	if (acquire_block(b, m, j + 1))
		return true;
	acquire_block(b, m, j); /* cannot happen: restore what was there */
	return false;
}

/* Index of <m>'s block of order <j> whose buddy is free, or -1. */
static int block_with_free_buddy(const struct budget *b, const struct budget_member *m, unsigned j)
{
	unsigned i;

	for (i = 0; i < m->nblocks; i++)
		if (m->blocks[i].order == j && j < BUDGET_MAX_ORDER &&
				buddy_block_is_free(b->buddy, m->blocks[i].start ^ (1u << j), j))
			return (int)i;
	return -1;
}

/* Grow by 2^<k> (or less, down to 1, when the table is full), adding as
 * few table entries as possible.  Returns false when nothing could be had. */
static bool member_grow_by(struct budget *b, struct budget_member *m, unsigned k)
{
	int i = block_with_free_buddy(b, m, k), j;

	/* merge with the free buddy of a block it holds: "4" becomes "8" */
	if (i >= 0)
		return member_upgrade(b, m, (unsigned)i);
	if (m->nblocks < BUDGET_MAX_BLOCKS)
		return acquire_block(b, m, k);
	member_compact(b, m);
	if (m->nblocks < BUDGET_MAX_BLOCKS)
		return acquire_block(b, m, k);
	/* table full: upgrade some block of order <= k, buddies first */
	for (j = (int)k; j >= 0; j--) {
		i = block_with_free_buddy(b, m, (unsigned)j);
		if (i >= 0 && member_upgrade(b, m, (unsigned)i))
			return true;
	}
	for (i = (int)m->nblocks - 1; i >= 0 && m->blocks[i].order <= k; i--)
		if (member_upgrade(b, m, (unsigned)i))
			return true;
	return false;
}

void budget_touch(struct budget *b, struct budget_member *m)
{
	if (m->budget != b)
		return;
	list_move_tail(&b->members, &m->node);
}

unsigned budget_grow(struct budget *b, struct budget_member *m)
{
	unsigned limit = member_limit(m), want, k, gain, cap0 = m->capacity;
	int top;

	if (m->budget != b || m->capacity >= limit)
		return 0;
	want = umin(limit - m->capacity, budget_room(b));
	top = buddy_largest_free_order(b->buddy);
	if (want == 0 || top < 0) {
		b->grow_fail++;
		return 0;
	}
	k = m->capacity ? floor_log2(m->capacity) : 0;
	k = umin(umin(k, floor_log2(want)), (unsigned)top);
	if (!member_grow_by(b, m, k)) {
		b->grow_fail++;
		b->table_full++;
		budget_trim(b);
		return 0;
	}
	member_compact(b, m);
	budget_trim(b);
	gain = m->capacity - cap0;
	if (b->handover) {
		unsigned l = umin(gain, b->handover);

		m->lent += l;
		b->handover -= l;
	}
	m->grows++;
	m->slots_grown += gain;
	m->grow_seq = ++b->clock;
	b->grows++;
	return gain;
}

/* Free one slot of <m>: its smallest block (order j) goes and its other
 * 2^j - 1 slots are allocated again as blocks of orders j-1 .. 0; the
 * freed block guarantees those allocations succeed.  If the table cannot
 * hold every piece, the smallest pieces are given up too, but only while
 * capacity stays >= used; otherwise nothing changes.  Returns the slots
 * freed (1 unless the table is full).  No stats; the caller trims. */
static unsigned member_give_one(struct budget *b, struct budget_member *m)
{
	unsigned cap0 = m->capacity, i, j, k, room, keep_from;
	int f;

	if (m->nblocks == 0 || m->capacity <= m->used)
		return 0;
	j = m->blocks[m->nblocks - 1].order;
	if (j > 1 && BUDGET_MAX_BLOCKS - m->nblocks + 1 < j)
		member_compact(b, m);
	i = m->nblocks - 1;
	j = m->blocks[i].order;
	/* among the smallest, one whose buddy is free merges back at once */
	f = block_with_free_buddy(b, m, j);
	if (f >= 0)
		i = (unsigned)f;
	room = BUDGET_MAX_BLOCKS - m->nblocks + 1; /* entries free once it goes */
	keep_from = j > room ? j - room : 0;	   /* pieces of order < this go */
	if (cap0 - (1u << keep_from) < m->used)
		return 0;
	release_block(b, m, i);
	for (k = j; k-- > keep_from;)
		acquire_block(b, m, k);
	member_compact(b, m);
	return cap0 - m->capacity;
}

unsigned budget_shrink(struct budget *b, struct budget_member *m)
{
	unsigned i = 0, released = 0;

	if (m->budget != b)
		return 0;
	while (i < m->nblocks) {
		unsigned sz = 1u << m->blocks[i].order;

		if (m->capacity - sz >= m->used) {
			release_block(b, m, i);
			released += sz;
		} else {
			i++;
		}
	}
	/* above pool_size (lowered by a reload): shed single slots */
	while (m->capacity > member_limit(m) && m->capacity > m->used) {
		unsigned n = member_give_one(b, m);

		if (n == 0)
			break;
		released += n;
	}
	if (released) {
		unsigned o = umin(m->owed, released); /* freed slots serve the reclaim */

		m->owed -= o;
		b->owed -= o;
		member_clamp_owed(b, m);
		m->shrinks++;
		m->slots_shrunk += released;
		b->shrinks++;
		budget_trim(b);
	}
	return released;
}

unsigned budget_release_all(struct budget *b, struct budget_member *m)
{
	unsigned released = m->capacity;

	if (m->budget != b)
		return 0;
	while (m->nblocks)
		release_block(b, m, m->nblocks - 1);
	b->owed -= m->owed;
	m->owed = 0;
	if (released) {
		m->shrinks++;
		m->slots_shrunk += released;
		b->shrinks++;
	}
	budget_trim(b);
	return released;
}

unsigned budget_take_slot(struct budget *b, struct budget_member *m)
{
	unsigned taken;

	if (m->budget != b || m->capacity == 0 || m->used >= m->capacity)
		return 0;
	taken = member_give_one(b, m);
	if (taken == 0)
		return 0;
	budget_trim(b);
	if (m->owed) {
		unsigned o = umin(m->owed, taken);

		m->owed -= o;
		b->owed -= o;
	}
	member_clamp_owed(b, m);
	m->taken += taken;
	b->handover += taken;
	b->reclaims++;
	return taken;
}

/* ---- fair shares ---- */

enum share_class { SHARE_LOW, SHARE_HIGH, SHARE_FREE };

/* The water level lambda of the current demand, as the segment (lo, hi) of
 * breakpoints that contains it and the exact level num / den there.  After
 * share_solve(), b->items[0 .. n) holds every member with demand, in list
 * order, with its integer share. */
struct share_solution {
	bool none;    /* no demand or no slots: every share is 0 */
	bool all_cap; /* demand fits: every share is its cap */
	unsigned lb;
	unsigned n; /* members with demand */
	uint64_t lo_p, lo_q, hi_p, hi_q;
	uint64_t num, den;
	uint64_t extra; /* slots left over by rounding down the free shares */
};

static enum share_class share_classify(const struct share_solution *s, uint64_t cap, uint64_t w)
{
	if (s->hi_p * w <= s->hi_q * s->lb)
		return SHARE_LOW;
	if (s->lo_p * w >= s->lo_q * cap)
		return SHARE_HIGH;
	return SHARE_FREE;
}

/* Is sum_j clamp(p / q * w_j, lb, cap_j) <= slots?  O(n). */
static bool share_fits(const struct budget *b, const struct share_solution *s, uint64_t p,
		uint64_t q)
{
	uint64_t sum = 0;
	unsigned i;

	for (i = 0; i < s->n; i++) {
		const struct share_item *it = &b->items[i];
		uint64_t v = p * it->w;

		if (v < q * s->lb)
			v = q * s->lb;
		if (v > q * it->cap)
			v = q * it->cap;
		sum += v;
	}
	return sum <= (uint64_t)b->slots * q;
}

/* Breakpoints by value p / q (p < 2^25, q < 2^17: the products are exact). */
static int share_point_cmp(const void *x, const void *y)
{
	const struct share_point *a = x, *c = y;
	uint64_t l = a->p * c->q, r = c->p * a->q;

	return l < r ? -1 : l > r;
}

/* Free members by remainder, largest first; ties in list order. */
static int share_rem_cmp(const void *x, const void *y)
{
	const struct share_item *a = *(const struct share_item *const *)x;
	const struct share_item *c = *(const struct share_item *const *)y;

	if (a->rem != c->rem)
		return a->rem > c->rem ? -1 : 1;
	return a->order < c->order ? -1 : a->order > c->order;
}

/* Solve for the level and give every member with demand its share.
 *
 * The sum of clamped shares is nondecreasing in lambda, so "fits" holds for
 * a prefix of the sorted breakpoints: lo is the last breakpoint that fits,
 * hi the first that does not, found by binary search.  Leftover slots go by
 * largest remainder, found by sorting the free members.  O(n log n) for the
 * n members with demand; uses the domain's scratch (sized in budget_join()). */
static void share_solve(const struct budget *b, struct share_solution *s)
{
	struct share_item **order = b->ranked;
	const struct list *it;
	uint64_t sumcap = 0, fixed = 0, floors = 0;
	unsigned n = 0, np = 0, i, nfree = 0, lo, hi;

	memset(s, 0, sizeof(*s));
	list_for_each(it, &b->members) {
		struct budget_member *m = list_entry(it, struct budget_member, node);
		struct share_item *x;

		if (m->demand == 0)
			continue;
		x = &b->items[n];
		x->m = m;
		x->cap = member_cap(b, m);
		x->w = member_weight(m);
		x->share = 0;
		x->order = n++;
		sumcap += x->cap;
	}
	s->n = n;
	if (n == 0 || b->slots == 0) {
		s->none = true;
		return;
	}
	if (sumcap <= b->slots) {
		s->all_cap = true;
		for (i = 0; i < n; i++)
			b->items[i].share = (unsigned)b->items[i].cap;
		return;
	}
	s->lb = b->slots >= n ? 1 : 0;
	if (s->lb == 0) {
		s->lo_p = 0;
		s->lo_q = 1;
	}
	for (i = 0; i < n; i++) {
		if (s->lb)
			b->points[np++] = (struct share_point){s->lb, b->items[i].w};
		b->points[np++] = (struct share_point){b->items[i].cap, b->items[i].w};
	}
	qsort(b->points, np, sizeof(b->points[0]), share_point_cmp);
	/* points[0 .. lo) fit, points[hi ..) do not */
	lo = 0;
	hi = np;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (share_fits(b, s, b->points[mid].p, b->points[mid].q))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0) {
		s->lo_p = b->points[lo - 1].p;
		s->lo_q = b->points[lo - 1].q;
	}
	if (hi < np) {
		s->hi_p = b->points[hi].p;
		s->hi_q = b->points[hi].q;
	}
	/* lo exists (everyone at lb fits), hi exists (everyone at cap does not) */
	for (i = 0; i < n; i++) {
		struct share_item *x = &b->items[i];

		switch (share_classify(s, x->cap, x->w)) {
		case SHARE_LOW:
			fixed += s->lb;
			x->share = s->lb;
			break;
		case SHARE_HIGH:
			fixed += x->cap;
			x->share = (unsigned)x->cap;
			break;
		case SHARE_FREE:
			s->den += x->w;
			order[nfree++] = x;
			break;
		}
	}
	s->num = b->slots - fixed; /* sum(lo) <= slots, so fixed <= slots */
	if (s->den == 0)
		return;
	for (i = 0; i < nfree; i++) {
		struct share_item *x = order[i];

		x->share = (unsigned)(s->num * x->w / s->den);
		x->rem = s->num * x->w % s->den;
		floors += x->share;
	}
	s->extra = s->num - floors;
	if (s->extra == 0)
		return;
	/* Largest remainders get the leftover slots; ties in list order. */
	qsort(order, nfree, sizeof(order[0]), share_rem_cmp);
	for (i = 0; i < nfree && i < s->extra && order[i]->rem; i++)
		order[i]->share++;
}

/* <m>'s share once share_solve() ran: found by scanning items.  O(n). */
static unsigned share_of(const struct budget *b, const struct share_solution *s,
		const struct budget_member *m)
{
	unsigned i;

	if (m->demand == 0 || s->none)
		return 0;
	for (i = 0; i < s->n; i++)
		if (b->items[i].m == m)
			return b->items[i].share;
	return 0;
}

/* Walk the members in list order alongside the items: the share of the
 * member at the list position, advancing the cursor <*k>.  O(1). */
static unsigned share_next(const struct budget *b, const struct share_solution *s,
		const struct budget_member *m, unsigned *k)
{
	if (*k < s->n && b->items[*k].m == m)
		return s->none ? 0 : b->items[(*k)++].share;
	return 0;
}

unsigned budget_fair_share(const struct budget *b, const struct budget_member *m)
{
	struct share_solution s;

	if (m->budget != b)
		return 0;
	share_solve(b, &s);
	return share_of(b, &s, m);
}

struct budget_member *budget_pick_victim(struct budget *b, const struct budget_member *needy)
{
	struct share_solution s;
	struct budget_member *best = NULL;
	unsigned best_excess = 0, share, k = 0;
	uint64_t shortfall = 0;
	struct list *it;

	if (needy->budget != b)
		return NULL;
	share_solve(b, &s);
	share = share_of(b, &s, needy);
	if (needy->capacity >= share)
		return NULL;
	list_for_each(it, &b->members) {
		struct budget_member *m = list_entry(it, struct budget_member, node);
		unsigned sh = share_next(b, &s, m, &k), avail = m->capacity - m->owed;

		if (m != needy && m->demand > m->capacity && sh > m->capacity)
			shortfall += sh - m->capacity;
		if (m == needy || avail <= sh)
			continue;
		if (best == NULL || avail - sh > best_excess ||
				(avail - sh == best_excess && m->grow_seq < best->grow_seq)) {
			best = m;
			best_excess = avail - sh;
		}
	}
	shortfall += share - needy->capacity;
	if (best == NULL || b->owed >= shortfall)
		return NULL;
	best->owed++;
	b->owed++;
	b->victims++;
	return best;
}

struct budget_member *budget_pick_needy(struct budget *b)
{
	struct share_solution s;
	struct budget_member *best = NULL;
	unsigned best_share = 0, k = 0;
	struct list *it;

	share_solve(b, &s);
	list_for_each(it, &b->members) {
		struct budget_member *m = list_entry(it, struct budget_member, node);
		unsigned sh = share_next(b, &s, m, &k);

		if (m->demand <= m->capacity || m->used < m->capacity)
			continue;
		if (m->capacity >= sh)
			continue;
		/* lowest capacity / share first */
		if (best == NULL ||
				(uint64_t)m->capacity * best_share <
						(uint64_t)best->capacity * sh ||
				((uint64_t)m->capacity * best_share ==
								(uint64_t)best->capacity * sh &&
						m->grow_seq < best->grow_seq)) {
			best = m;
			best_share = sh;
		}
	}
	return best;
}

char *budget_member_blocks_str(const struct budget_member *m, char *buf, size_t len)
{
	size_t off = 0;
	unsigned i;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (m->nblocks == 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	for (i = 0; i < m->nblocks && off < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%u", i ? "+" : "",
				1u << m->blocks[i].order);

		if (n < 0)
			break;
		off += (size_t)n;
	}
	return buf;
}
