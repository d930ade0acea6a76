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
 * Ownership: members are embedded in the caller's objects; the domain links
 * them but never frees them.  The domain owns its buddy allocator.
 */
#include "budget.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sysalloc.h"

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

int budget_join(struct budget *b, struct budget_member *m)
{
	if (m->budget == b)
		return 0;
	if (m->budget != NULL || m->nblocks != 0)
		return -EBUSY;
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
 * breakpoints that contains it and the exact level num / den there. */
struct share_solution {
	bool none;    /* no demand or no slots: every share is 0 */
	bool all_cap; /* demand fits: every share is its cap */
	unsigned lb;
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

/* Is sum_j clamp(p / q * w_j, lb, cap_j) <= slots? */
static bool share_fits(const struct budget *b, unsigned lb, uint64_t p, uint64_t q)
{
	const struct list *it;
	uint64_t sum = 0;

	list_for_each(it, &b->members) {
		const struct budget_member *m = list_entry(it, struct budget_member, node);
		uint64_t v;

		if (m->demand == 0)
			continue;
		v = p * member_weight(m);
		if (v < q * lb)
			v = q * lb;
		if (v > q * member_cap(b, m))
			v = q * member_cap(b, m);
		sum += v;
	}
	return sum <= (uint64_t)b->slots * q;
}

/* Candidate breakpoint p / q: widen the solution segment with it. */
static void share_consider(const struct budget *b, struct share_solution *s, uint64_t p, uint64_t q)
{
	if (share_fits(b, s->lb, p, q)) {
		if (s->lo_q == 0 || p * s->lo_q > s->lo_p * q) {
			s->lo_p = p;
			s->lo_q = q;
		}
	} else if (s->hi_q == 0 || p * s->hi_q < s->hi_p * q) {
		s->hi_p = p;
		s->hi_q = q;
	}
}

static void share_solve(const struct budget *b, struct share_solution *s)
{
	const struct list *it;
	uint64_t sumcap = 0, fixed = 0, floors = 0;
	unsigned n = 0;

	memset(s, 0, sizeof(*s));
	list_for_each(it, &b->members) {
		const struct budget_member *m = list_entry(it, struct budget_member, node);

		if (m->demand) {
			n++;
			sumcap += member_cap(b, m);
		}
	}
	if (n == 0 || b->slots == 0) {
		s->none = true;
		return;
	}
	if (sumcap <= b->slots) {
		s->all_cap = true;
		return;
	}
	s->lb = b->slots >= n ? 1 : 0;
	if (s->lb == 0) {
		s->lo_p = 0;
		s->lo_q = 1;
	}
	list_for_each(it, &b->members) {
		const struct budget_member *m = list_entry(it, struct budget_member, node);

		if (m->demand == 0)
			continue;
		if (s->lb)
			share_consider(b, s, s->lb, member_weight(m));
		share_consider(b, s, member_cap(b, m), member_weight(m));
	}
	/* lo exists (everyone at lb fits), hi exists (everyone at cap does not) */
	list_for_each(it, &b->members) {
		const struct budget_member *m = list_entry(it, struct budget_member, node);
		uint64_t cap = member_cap(b, m), w = member_weight(m);

		if (m->demand == 0)
			continue;
		switch (share_classify(s, cap, w)) {
		case SHARE_LOW:
			fixed += s->lb;
			break;
		case SHARE_HIGH:
			fixed += cap;
			break;
		case SHARE_FREE:
			s->den += w;
			break;
		}
	}
	s->num = b->slots - fixed; /* sum(lo) <= slots, so fixed <= slots */
	if (s->den == 0)
		return;
	list_for_each(it, &b->members) {
		const struct budget_member *m = list_entry(it, struct budget_member, node);

		if (m->demand &&
				share_classify(s, member_cap(b, m), member_weight(m)) == SHARE_FREE)
			floors += s->num * member_weight(m) / s->den;
	}
	s->extra = s->num - floors;
}

static unsigned share_of(const struct budget *b, const struct share_solution *s,
		const struct budget_member *m)
{
	const struct list *it;
	uint64_t cap, w, rem, rank = 0;
	bool before = true;

	if (m->demand == 0 || s->none)
		return 0;
	cap = member_cap(b, m);
	if (s->all_cap)
		return (unsigned)cap;
	w = member_weight(m);
	switch (share_classify(s, cap, w)) {
	case SHARE_LOW:
		return s->lb;
	case SHARE_HIGH:
		return (unsigned)cap;
	case SHARE_FREE:
		break;
	}
	if (s->den == 0)
		return 0;
	rem = s->num * w % s->den;
	if (s->extra == 0 || rem == 0)
		return (unsigned)(s->num * w / s->den);
	/* Largest remainders get the leftover slots; ties in list order. */
	list_for_each(it, &b->members) {
		const struct budget_member *o = list_entry(it, struct budget_member, node);
		uint64_t r;

		if (o == m) {
			before = false;
			continue;
		}
		if (o->demand == 0 ||
				share_classify(s, member_cap(b, o), member_weight(o)) != SHARE_FREE)
			continue;
		r = s->num * member_weight(o) % s->den;
		if (r > rem || (r == rem && before))
			rank++;
	}
	return (unsigned)(s->num * w / s->den + (rank < s->extra ? 1 : 0));
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
	unsigned best_excess = 0, share;
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
		unsigned sh = share_of(b, &s, m), avail = m->capacity - m->owed;

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
	unsigned best_share = 0;
	struct list *it;

	share_solve(b, &s);
	list_for_each(it, &b->members) {
		struct budget_member *m = list_entry(it, struct budget_member, node);
		unsigned sh;

		if (m->demand <= m->capacity || m->used < m->capacity)
			continue;
		sh = share_of(b, &s, m);
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
