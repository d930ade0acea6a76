/* t_buddy.c -- unit and randomized property tests of the buddy allocator. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buddy.h"
#include "tap.h"
#include "testutil.h"

static struct buddy_stats st;

static const struct buddy_stats *stats(struct buddy *b)
{
	buddy_stats_get(b, &st);
	return &st;
}

static void double_free(void *arg)
{
	struct buddy *b = arg;
	int64_t i = buddy_alloc(b, 1);

	buddy_free(b, (uint64_t)i, 1);
	buddy_free(b, (uint64_t)i, 1);
}

static void wrong_order_free(void *arg)
{
	struct buddy *b = arg;
	int64_t i = buddy_alloc(b, 2);

	buddy_free(b, (uint64_t)i, 1);
}

static void never_allocated_free(void *arg)
{
	struct buddy *b = arg;

	buddy_free(b, 3, 0);
}

static int nr_free_is(const struct buddy_stats *s, const unsigned *want, unsigned n)
{
	unsigned k;

	for (k = 0; k <= BUDDY_MAX_ORDER; k++)
		if (s->nr_free[k] != (k < n ? want[k] : 0))
			return 0;
	return 1;
}

static uint64_t sum_free(const struct buddy_stats *s)
{
	uint64_t sum = 0;
	unsigned k;

	for (k = 0; k <= s->max_order; k++)
		sum += s->nr_free[k] << k;
	return sum;
}

static void unit_cases(void)
{
	struct buddy *b, *b2;
	int64_t idx[128];
	unsigned k;
	int i, distinct;

	ok(buddy_create(BUDDY_MAX_ORDER + 1) == NULL, "max_order above BUDDY_MAX_ORDER refused");

	/* split and merge counts */
	b = buddy_create(4);
	is_int(buddy_add_range(b, 0, 16), 0, "add [0,16)");
	is_int(stats(b)->nr_free[4], 1, "one order-4 block");
	is_int(buddy_alloc(b, 0), 0, "alloc order 0 gets unit 0");
	is_int(stats(b)->splits, 4, "four splits");
	{
		const unsigned want[] = {1, 1, 1, 1, 0};

		ok(nr_free_is(stats(b), want, 5), "one free block per order 0..3 after split");
	}
	is_int(st.units_free, 15, "15 units free");
	buddy_free(b, 0, 0);
	is_int(stats(b)->merges, 4, "four merges on free");
	is_int(st.nr_free[4], 1, "merged back to order 4");
	is_int(st.units_free, 16, "all free");
	is_int(st.allocs, 1, "allocs counted");
	is_int(st.frees, 1, "frees counted");
	is_int(buddy_alloc(b, 5), -1, "order above max fails");
	is_int(buddy_alloc(b, 4), 0, "whole range as one block");
	is_int(buddy_alloc(b, 0), -1, "nothing left");
	is_int(stats(b)->alloc_fail, 2, "failures counted");
	ok(st.frag_index == 0.0, "frag_index 0 when nothing free");
	buddy_free(b, 0, 4);

	/* remove and re-add */
	is_int(buddy_remove_block(b, 4, 2), 0, "remove [4,8) out of a free order-4 block");
	{
		const unsigned want[] = {0, 0, 1, 1};

		ok(nr_free_is(stats(b), want, 4),
				"remove split the container: orders 2 and 3 left");
	}
	is_int(st.units, 12, "12 units managed");
	ok(!buddy_block_is_free(b, 4, 2), "removed block is not free");
	is_int(buddy_add_range(b, 4, 4), 0, "re-add [4,8)");
	is_int(stats(b)->nr_free[4], 1, "re-added block merged back to order 4");
	is_int(st.units, 16, "16 units managed again");
	is_int(buddy_remove_block(b, 2, 2), -EINVAL, "misaligned remove refused");
	idx[0] = buddy_alloc(b, 3);
	is_int(buddy_remove_block(b, (uint64_t)idx[0], 3), -EINVAL,
			"remove of an allocated block refused");
	buddy_free(b, (uint64_t)idx[0], 3);
	is_int(buddy_remove_block(b, 0, 4), 0, "remove the whole top block");
	is_int(buddy_alloc(b, 0), -1, "nothing to allocate after remove");
	is_int(buddy_add_range(b, 0, 16), 0, "re-add the same range");
	ok(buddy_alloc(b, 0) >= 0, "allocation works after re-add");
	is_int(buddy_add_range(b, 8, 4), -EINVAL, "overlapping range refused");
	is_int(buddy_add_range(b, 20, 0), -EINVAL, "empty range refused");
	buddy_destroy(b);

	/* max_db_connections = 100: 64 + 32 + 4 */
	b = buddy_create(10);
	is_int(buddy_add_range(b, 0, 100), 0, "add 100 slots");
	{
		const unsigned want[] = {0, 0, 1, 0, 0, 1, 1};

		ok(nr_free_is(stats(b), want, 7), "100 = 64 + 32 + 4");
	}
	is_int(buddy_largest_free_order(b), 6, "largest free order 6");
	ok(buddy_block_is_free(b, 64, 5) && buddy_block_is_free(b, 96, 2) &&
					buddy_block_is_free(b, 70, 1) &&
					!buddy_block_is_free(b, 96, 3),
			"block_is_free agrees with the carve-out");
	ok(st.frag_index > 0.35 && st.frag_index < 0.37, "frag_index 1 - 64/100 (%f)",
			st.frag_index);
	distinct = 1;
	for (i = 0; i < 100; i++) {
		idx[i] = buddy_alloc(b, 0);
		if (idx[i] < 0 || idx[i] >= 100)
			distinct = 0;
	}
	for (i = 0; i < 100 && distinct; i++) {
		int j;

		for (j = 0; j < i; j++)
			if (idx[i] == idx[j])
				distinct = 0;
	}
	ok(distinct, "100 slots, all distinct and in range");
	is_int(buddy_alloc(b, 0), -1, "slot 101 fails");
	is_int(stats(b)->alloc_fail, 1, "failure reported in stats");
	is_int(buddy_largest_free_order(b), -1, "nothing free");
	for (i = 0; i < 100; i++)
		if (idx[i] % 2 == 0)
			buddy_free(b, (uint64_t)idx[i], 0);
	ok(stats(b)->frag_index > 0.979 && st.frag_index < 0.981,
			"50 scattered free slots: frag_index 1 - 1/50 (%f)", st.frag_index);
	is_int(sum_free(&st), st.units_free, "sum nr_free << k == units_free");
	for (i = 0; i < 100; i++)
		if (idx[i] % 2 == 1)
			buddy_free(b, (uint64_t)idx[i], 0);
	{
		const unsigned want[] = {0, 0, 1, 0, 0, 1, 1};

		ok(nr_free_is(stats(b), want, 7), "all freed: back to 64 + 32 + 4");
	}
	ok(dies_with_abort(double_free, b), "double free aborts");
	ok(dies_with_abort(wrong_order_free, b), "free with the wrong order aborts");
	ok(dies_with_abort(never_allocated_free, b), "free of a never-allocated block aborts");
	buddy_destroy(b);

	/* ranges not starting at 0, and adjacent ranges merging */
	b = buddy_create(10);
	is_int(buddy_add_range(b, 5, 20), 0, "add [5,25)");
	{
		const unsigned want[] = {2, 1, 0, 2};

		ok(nr_free_is(stats(b), want, 4), "[5,25) = 5 | 6-7 | 8-15 | 16-23 | 24");
	}
	buddy_destroy(b);
	b = buddy_create(10);
	b2 = buddy_create(10);
	buddy_add_range(b, 0, 50);
	buddy_add_range(b, 50, 50);
	buddy_add_range(b2, 0, 100);
	buddy_stats_get(b2, &st);
	{
		struct buddy_stats s2 = st;
		int same = 1;

		buddy_stats_get(b, &st);
		for (k = 0; k <= BUDDY_MAX_ORDER; k++)
			if (st.nr_free[k] != s2.nr_free[k])
				same = 0;
		ok(same && st.units == 100, "[0,50) + [50,100) carve like [0,100)");
	}
	buddy_destroy(b);
	buddy_destroy(b2);

	is_int(buddy_order_for(0), 0, "order_for(0)");
	is_int(buddy_order_for(1), 0, "order_for(1)");
	is_int(buddy_order_for(3), 2, "order_for(3)");
	is_int(buddy_order_for(64), 6, "order_for(64)");
	is_int(buddy_order_for(65), 7, "order_for(65)");
}

/* ---- randomized property test against a per-unit owner model ---- */

#define PROP_OPS 1000000
#define PROP_MAX_ORDER 8
#define PROP_CAP 4096
#define PROP_MAXLIVE 4096

struct live {
	uint32_t idx, id;
	unsigned order;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	return xorshift64star(&rng_state);
}

static unsigned pick_order(void)
{
	unsigned r = rnd() % 16;

	if (r < 8)
		return 0;
	if (r < 12)
		return 1;
	if (r < 14)
		return 2;
	if (r < 15)
		return 3 + rnd() % 3;
	return 6 + rnd() % 3;
}

static void property_test(void)
{
	static int32_t owner[PROP_CAP]; /* -1 unmanaged, 0 free, else live id */
	static struct live live[PROP_MAXLIVE];
	uint64_t removed[8];
	unsigned nremoved = 0, nlive = 0, k;
	uint64_t bad_alloc = 0, bad_free = 0, bad_fail = 0, bad_consistency = 0;
	uint64_t fails = 0, fail_checks = 0, removes = 0, checks = 0, n_ok = 0;
	uint64_t seed = 0x5eed0b0ddf00dull, u, op;
	struct buddy_stats initial;
	struct buddy *b;
	uint32_t next_id = 1;
	const char *env = getenv("BUDDY_SEED");
	int i;

	if (env)
		seed = strtoull(env, NULL, 0);
	rng_state = seed ? seed : 1;
	diag("property test: %d ops, seed 0x%" PRIx64 " (set BUDDY_SEED to replay)", PROP_OPS,
			seed);

	b = buddy_create(PROP_MAX_ORDER);
	for (i = 0; i < PROP_CAP; i++)
		owner[i] = -1;
	/* two odd ranges, neither starting at 0 nor a power of two */
	buddy_add_range(b, 3, 1500);
	buddy_add_range(b, 2048, 1100);
	for (i = 3; i < 1503; i++)
		owner[i] = 0;
	for (i = 2048; i < 3148; i++)
		owner[i] = 0;
	buddy_stats_get(b, &initial);

	for (op = 0; op < PROP_OPS; op++) {
		unsigned r = rnd() % 100;

		if (r < 1 && nremoved < 8) {
			int64_t t = buddy_peek_free(b, PROP_MAX_ORDER);

			if (t >= 0) {
				if (buddy_remove_block(b, (uint64_t)t, PROP_MAX_ORDER) != 0)
					bad_consistency++;
				for (u = (uint64_t)t; u < (uint64_t)t + (1u << PROP_MAX_ORDER);
						u++) {
					if (owner[u] != 0)
						bad_consistency++;
					owner[u] = -1;
				}
				removed[nremoved++] = (uint64_t)t;
				removes++;
			}
		} else if (r < 2 && nremoved > 0) {
			uint64_t t = removed[--nremoved];

			if (buddy_add_range(b, t, 1u << PROP_MAX_ORDER) != 0)
				bad_consistency++;
			for (u = t; u < t + (1u << PROP_MAX_ORDER); u++)
				owner[u] = 0;
		} else if ((r < 52 || nlive == 0) && nlive < PROP_MAXLIVE) {
			unsigned order = pick_order();
			int64_t idx = buddy_alloc(b, order);

			if (idx < 0) {
				/* Exact failure check, sampled: no aligned fully
				 * free run of 2^order units may exist. */
				if (fails++ % 16 == 0) {
					fail_checks++;
					for (u = 0; u < PROP_CAP; u += 1u << order) {
						uint64_t v;

						for (v = u; v < u + (1u << order); v++)
							if (owner[v] != 0)
								break;
						if (v == u + (1u << order)) {
							bad_fail++;
							break;
						}
					}
				}
				continue;
			}
			if ((idx & ((1 << order) - 1)) || idx + (1 << order) > PROP_CAP) {
				bad_alloc++;
				continue;
			}
			for (u = (uint64_t)idx; u < (uint64_t)idx + (1u << order); u++) {
				if (owner[u] != 0)
					bad_alloc++;
				owner[u] = (int32_t)next_id;
			}
			live[nlive].idx = (uint32_t)idx;
			live[nlive].order = order;
			live[nlive].id = next_id++;
			nlive++;
			n_ok++;
		} else if (nlive > 0) {
			unsigned j = rnd() % nlive;
			struct live l = live[j];

			live[j] = live[--nlive];
			for (u = l.idx; u < l.idx + (1u << l.order); u++) {
				if (owner[u] != (int32_t)l.id)
					bad_free++;
				owner[u] = 0;
			}
			buddy_free(b, l.idx, l.order);
		}
		if (op % 4096 == 0) {
			uint64_t nfree = 0, nmanaged = 0;

			checks++;
			buddy_stats_get(b, &st);
			for (u = 0; u < PROP_CAP; u++) {
				if (owner[u] >= 0)
					nmanaged++;
				if (owner[u] == 0)
					nfree++;
				if ((owner[u] == 0) != buddy_block_is_free(b, u, 0))
					bad_consistency++;
			}
			if (nfree != st.units_free || nmanaged != st.units ||
					sum_free(&st) != st.units_free)
				bad_consistency++;
		}
	}
	diag("%" PRIu64 " allocs ok, %" PRIu64 " failures (%" PRIu64 " checked exactly), "
	     "%" PRIu64 " removes, %" PRIu64 " full checks, %u live at end",
			n_ok, fails, fail_checks, removes, checks, nlive);
	ok(bad_alloc == 0, "every allocated block was aligned and wholly free (model)");
	ok(bad_free == 0, "no two live blocks overlapped (owner intact at free)");
	ok(bad_fail == 0, "alloc failed only when no aligned free run existed");
	ok(bad_consistency == 0, "units free/managed and sum(nr_free << k) matched the model");
	ok(fails > 0 && removes > 0, "the run exercised failures and removes");

	while (nremoved > 0)
		buddy_add_range(b, removed[--nremoved], 1u << PROP_MAX_ORDER);
	while (nlive > 0) {
		nlive--;
		buddy_free(b, live[nlive].idx, live[nlive].order);
	}
	buddy_stats_get(b, &st);
	{
		int same = st.units == initial.units && st.units_free == initial.units_free;

		for (k = 0; k <= BUDDY_MAX_ORDER; k++)
			if (st.nr_free[k] != initial.nr_free[k])
				same = 0;
		ok(same, "freeing everything merges back to the initial carve-out");
	}
	ok(st.allocs - st.frees == 0 && st.merges > 0 && st.splits > 0,
			"allocs == frees at the end, with splits and merges counted");
	buddy_destroy(b);
}

int main(void)
{
	plan(62);
	unit_cases();
	property_test();
	return tap_exit_status();
}
