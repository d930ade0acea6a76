/* t_budget.c -- unit and simulated-demand tests of the backend-connection budget. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "tap.h"
#include "testutil.h"

static struct budget_stats bst;

static const struct budget_stats *bstats(const struct budget *b)
{
	budget_stats_get(b, &bst);
	return &bst;
}

/* Blocks of <m> as text; four rotating buffers, so one printf may show
 * several members. */
static const char *blocks(const struct budget_member *m)
{
	static char buf[4][128];
	static unsigned next;

	next = (next + 1) % 4;
	return budget_member_blocks_str(m, buf[next], sizeof(buf[next]));
}

/* nr_free of <b> per order equals <want>. */
static bool nr_free_eq(const struct budget *b, const uint64_t *want)
{
	unsigned k;

	bstats(b);
	for (k = 0; k <= BUDDY_MAX_ORDER; k++)
		if (bst.buddy.nr_free[k] != want[k])
			return false;
	return true;
}

/* ---- whole-domain consistency, from the outside ---- */

#define MAP_MAX 4096	   /* >= 8 * BUDGET_MAX_BLOCKS and the random budgets */
static int owner[MAP_MAX]; /* -1 unmanaged, -2 free, else member number */

struct mark_ctx {
	unsigned size, slots;
	bool bad;
};

static void mark_free(uint64_t idx, void *arg)
{
	struct mark_ctx *c = arg;
	uint64_t i;

	if (idx + c->size > c->slots || idx + c->size > MAP_MAX) {
		c->bad = true; /* free units must lie below the budget */
		return;
	}
	for (i = idx; i < idx + c->size; i++) {
		if (owner[i] != -1)
			c->bad = true;
		owner[i] = -2;
	}
}

/* Every held block aligned, disjoint from other blocks and from free
 * blocks; free blocks below slots; budget_check() agrees.  <ms> lists every
 * member of <b>.  Returns a reason or NULL. */
static const char *verify(const struct budget *b, struct budget_member *const *ms, unsigned n)
{
	struct mark_ctx c = {0, budget_slots(b), false};
	uint64_t managed = 0, held = 0;
	unsigned i, j, k;

	if (budget_check(b) != 0)
		return "budget_check";
	for (i = 0; i < MAP_MAX; i++)
		owner[i] = -1;
	for (i = 0; i < n; i++) {
		const struct budget_member *m = ms[i];

		/* above max only after a reload lowered it, while servers drain */
		if (m->max && m->capacity > m->max && m->capacity > m->used)
			return "capacity above max";
		for (j = 0; j < m->nblocks; j++) {
			uint64_t s = m->blocks[j].start, e = s + (1u << m->blocks[j].order);

			if (s & ((1u << m->blocks[j].order) - 1))
				return "misaligned block";
			if (e > MAP_MAX)
				return "block beyond test map";
			for (k = (unsigned)s; k < e; k++) {
				if (owner[k] != -1)
					return "overlapping blocks";
				owner[k] = (int)i;
				managed++;
			}
		}
		held += m->capacity;
	}
	for (k = 0; k <= BUDGET_MAX_ORDER; k++) {
		c.size = 1u << k;
		buddy_foreach_free(budget_buddy(b), k, mark_free, &c);
	}
	if (c.bad)
		return "free block overlaps, or lies above the budget";
	bstats(b);
	for (k = 0; k < MAP_MAX; k++)
		if (owner[k] == -2)
			managed++;
	if (managed != bst.buddy.units)
		return "managed units differ from held + free";
	if (held != bst.held || bst.buddy.units_free + held != bst.buddy.units)
		return "held != sum of capacities";
	if (bst.draining == 0 && held > bst.slots)
		return "held above the budget while not draining";
	return NULL;
}

static bool verify_ok(const struct budget *b, struct budget_member *const *ms, unsigned n,
		const char *what)
{
	const char *why = verify(b, ms, n);

	if (why)
		diag("%s: %s", what, why);
	return why == NULL;
}

/* Calls budget_grow(<b>, <m>) once per entry of <seq> (<n> entries); true if
 * each call granted the slots its entry expects, else diag()s every mismatch
 * as "grow I <what>: ...". */
static bool grows_are(struct budget *b, struct budget_member *m, const unsigned *seq, unsigned n,
		const char *what)
{
	bool seq_ok = true;
	unsigned i, g;

	for (i = 0; i < n; i++) {
		g = budget_grow(b, m);
		if (g != seq[i]) {
			diag("grow %u %s: got %u, expected %u", i, what, g, seq[i]);
			seq_ok = false;
		}
	}
	return seq_ok;
}

/* ---- deterministic cases ---- */

static void test_basics(void)
{
	struct budget *b = budget_create(64);
	struct budget_member m;
	uint64_t want[BUDDY_MAX_ORDER + 1] = {0};

	ok(b != NULL, "create a 64-slot domain");
	ok(budget_create(BUDGET_MAX_SLOTS + 1) == NULL, "a budget above BUDGET_MAX_SLOTS refused");
	is_int(budget_slots(b), 64, "slots");
	is_int(budget_free(b), 64, "all free");
	want[6] = 1;
	ok(nr_free_eq(b, want), "one free order-6 block");
	budget_member_init(&m, 16, 1);
	is_int(budget_join(b, &m), 0, "join");
	is_int(budget_join(b, &m), 0, "join again is a no-op");
	is_int(bstats(b)->members, 1, "one member");
	ok(strcmp(blocks(&m), "-") == 0, "no blocks: \"-\"");
	is_int(budget_fair_share(b, &m), 0, "no demand, no share");
	is_int(budget_take_slot(b, &m), 0, "nothing to take");
	is_int(budget_shrink(b, &m), 0, "nothing to shrink");
	is_int(budget_leave(b, &m), 0, "leave");
	is_int(bstats(b)->members, 0, "no members");
	budget_destroy(b);
}

static void test_doubling(void)
{
	static const unsigned seq16[] = {1, 1, 2, 4, 8, 0};
	static const unsigned seq20[] = {1, 1, 2, 4, 8, 4, 0};
	static const unsigned seq10[] = {1, 1, 2, 4, 2, 0, 0};
	struct budget *b = budget_create(64), *b2;
	struct budget_member m, m2, *ms[] = {&m, &m2};
	uint64_t want[BUDDY_MAX_ORDER + 1] = {0};
	bool seq_ok = true;
	unsigned i, g;

	budget_member_init(&m, 16, 1);
	budget_member_init(&m2, 20, 1);
	budget_join(b, &m);
	budget_join(b, &m2);
	m.demand = 100;
	for (i = 0; i < 6; i++) {
		g = budget_grow(b, &m);
		if (g != seq16[i]) {
			diag("grow %u of max 16: got %u, expected %u", i, g, seq16[i]);
			seq_ok = false;
		}
		m.used = m.capacity;
	}
	ok(seq_ok, "max 16: grows 1, 1, 2, 4, 8, then nothing");
	is_int(m.capacity, 16, "capacity 16 = pool_size");
	ok(strcmp(blocks(&m), "16") == 0, "buddies merged into one block (%s)", blocks(&m));
	is_int(m.grows, 5, "five grows counted");
	ok(grows_are(b, &m2, seq20, 7, "of max 20"),
			"max 20: grows 1, 1, 2, 4, 8, 4, then nothing");
	ok(strcmp(blocks(&m2), "16+4") == 0, "blocks 16+4 (%s)", blocks(&m2));
	ok(verify_ok(b, ms, 2, "doubling"), "accounting consistent");
	is_int(budget_free(b), 64 - 36, "28 slots left");
	budget_release_all(b, &m);
	budget_release_all(b, &m2);
	want[6] = 1;
	ok(nr_free_eq(b, want), "all released: back to one order-6 block");
	budget_destroy(b);

	/* capacity never above the budget: 10 slots, no pool_size */
	b2 = budget_create(10);
	budget_member_init(&m, 0, 1);
	budget_join(b2, &m);
	ok(grows_are(b2, &m, seq10, 7, "under 10"),
			"budget 10: grows 1, 1, 2, 4, then 2 to fit, then nothing");
	is_int(m.capacity, 10, "capacity = budget");
	ok(strcmp(blocks(&m), "8+2") == 0, "blocks 8+2 (%s)", blocks(&m));
	is_int(bstats(b2)->grow_fail, 2, "refusals counted");
	is_int(budget_free(b2), 0, "budget exhausted");
	budget_destroy(b2);
	is_int(m.capacity, 0, "destroy detaches the member");
	ok(m.budget == NULL, "member no longer joined");
}

static void test_odd_budgets(void)
{
	struct budget *b = budget_create(100);
	struct budget_member m[3], *ms[] = {&m[0], &m[1], &m[2]};
	uint64_t init[BUDDY_MAX_ORDER + 1] = {0}, init37[BUDDY_MAX_ORDER + 1] = {0};
	unsigned i, total, rounds;
	bool progress;

	init[6] = init[5] = init[2] = 1;
	ok(nr_free_eq(b, init), "100 slots carved 64 + 32 + 4");
	budget_member_init(&m[0], 100, 1);
	budget_join(b, &m[0]);
	while (budget_grow(b, &m[0]))
		;
	is_int(m[0].capacity, 100, "one pool takes all 100 slots");
	ok(strcmp(blocks(&m[0]), "64+32+4") == 0, "blocks 64+32+4 (%s)", blocks(&m[0]));
	m[0].used = 30;
	is_int(budget_shrink(b, &m[0]), 68, "used 30: the 64, then the 4 go back (largest first)");
	ok(strcmp(blocks(&m[0]), "32") == 0, "32 kept (%s)", blocks(&m[0]));
	m[0].used = 0;
	is_int(budget_shrink(b, &m[0]), 32, "idle: everything goes back");
	ok(nr_free_eq(b, init), "merged back to 64 + 32 + 4");
	budget_destroy(b);

	/* 37 slots, three pools taking turns */
	b = budget_create(37);
	init37[5] = init37[2] = init37[0] = 1;
	ok(nr_free_eq(b, init37), "37 slots carved 32 + 4 + 1");
	for (i = 0; i < 3; i++) {
		budget_member_init(&m[i], i == 2 ? 9 : 0, 1);
		budget_join(b, &m[i]);
	}
	rounds = 0;
	do {
		progress = false;
		for (i = 0; i < 3; i++)
			if (budget_grow(b, &m[i]))
				progress = true;
		rounds++;
	} while (progress && rounds < 100);
	total = m[0].capacity + m[1].capacity + m[2].capacity;
	is_int(total, 37, "three pools fill all 37 slots");
	ok(m[2].capacity <= 9, "the one with max 9 stays at or below 9 (%u)", m[2].capacity);
	ok(verify_ok(b, ms, 3, "37 slots"), "accounting consistent (%s / %s / %s)", blocks(&m[0]),
			blocks(&m[1]), blocks(&m[2]));
	for (i = 0; i < 3; i++)
		budget_leave(b, &m[i]);
	ok(nr_free_eq(b, init37), "all left: merged back to 32 + 4 + 1");
	is_int(bstats(b)->held, 0, "nothing held");
	budget_destroy(b);
}

static void test_shrink_take(void)
{
	struct budget *b = budget_create(32);
	struct budget_member m, n, *ms[] = {&m, &n};
	uint64_t init[BUDDY_MAX_ORDER + 1] = {0};

	init[5] = 1;
	budget_member_init(&m, 14, 1);
	budget_member_init(&n, 8, 1);
	budget_join(b, &m);
	budget_join(b, &n);
	while (budget_grow(b, &m))
		;
	ok(strcmp(blocks(&m), "8+4+2") == 0, "max 14: 8+4+2 (%s)", blocks(&m));
	m.used = 5;
	is_int(budget_shrink(b, &m), 8, "used 5: only the 8 can go (14 - 8 >= 5)");
	ok(strcmp(blocks(&m), "4+2") == 0, "4+2 kept");
	is_int(m.shrinks, 1, "one shrink counted");
	m.used = 6;
	is_int(budget_take_slot(b, &m), 0, "take_slot refused when every slot is used");
	m.used = 0;
	is_int(budget_shrink(b, &m), 6, "used 0: the rest goes");
	ok(nr_free_eq(b, init), "merged back to one order-5 block");

	/* take one slot out of an order-3 block: 8 -> 4 + 2 + 1 */
	while (budget_grow(b, &n))
		;
	n.used = 7;
	is_int(budget_take_slot(b, &n), 1, "take one slot");
	is_int(n.capacity, 7, "capacity 7");
	ok(strcmp(blocks(&n), "4+2+1") == 0, "the 8 split into 4+2+1 (%s)", blocks(&n));
	is_int(n.taken, 1, "taken counted");
	is_int(budget_free(b), 25, "the slot is free in the domain");
	ok(verify_ok(b, ms, 2, "take_slot"), "accounting consistent after a split");
	n.used = 6;
	is_int(budget_take_slot(b, &n), 1, "take another");
	ok(strcmp(blocks(&n), "4+2") == 0, "the 1 went (%s)", blocks(&n));
	m.demand = 1;
	is_int(budget_grow(b, &m), 1, "another member grows into a taken slot");
	is_int(m.lent, 1, "counted as lent to it");
	budget_leave(b, &m);
	budget_leave(b, &n);
	ok(nr_free_eq(b, init), "after take/grow/leave: back to one order-5 block");
	budget_destroy(b);
}

static void test_fair_shares(void)
{
	struct budget *b = budget_create(8);
	struct budget_member m[4];
	unsigned i;

	for (i = 0; i < 4; i++)
		budget_member_init(&m[i], 0, 1);
	budget_join(b, &m[0]);
	budget_join(b, &m[1]);
	m[0].demand = 24;
	m[1].demand = 4;
	is_int(budget_fair_share(b, &m[0]), 4, "24 vs 4 under 8: big one gets 4");
	is_int(budget_fair_share(b, &m[1]), 4, "24 vs 4 under 8: small one gets 4");
	m[1].demand = 2;
	is_int(budget_fair_share(b, &m[0]), 6, "24 vs 2: big one gets the leftover 6");
	is_int(budget_fair_share(b, &m[1]), 2, "24 vs 2: small one capped at its demand");
	m[0].demand = 3;
	is_int(budget_fair_share(b, &m[0]), 3, "demand fits: share = demand");
	m[0].demand = 24;
	m[1].demand = 24;
	m[0].weight = 3;
	is_int(budget_fair_share(b, &m[0]), 6, "weights 3:1: 6");
	is_int(budget_fair_share(b, &m[1]), 2, "weights 3:1: 2");
	m[0].max = 5;
	is_int(budget_fair_share(b, &m[0]), 5, "pool_size 5 caps the share");
	is_int(budget_fair_share(b, &m[1]), 3, "the rest goes to the other");
	m[0].max = 0;
	m[0].weight = 1000;
	budget_resize(b, 2);
	is_int(budget_fair_share(b, &m[1]), 1,
			"weight 1000:1 under 2 slots: the light one still gets 1");
	is_int(budget_fair_share(b, &m[0]), 1, "and the heavy one 1");
	budget_resize(b, 8);
	m[0].weight = 1;
	budget_join(b, &m[2]);
	budget_join(b, &m[3]);
	m[2].demand = 24;
	m[3].demand = 0;
	is_int(budget_fair_share(b, &m[0]) + budget_fair_share(b, &m[1]) +
					budget_fair_share(b, &m[2]),
			8, "three equal members: shares sum to 8");
	ok(budget_fair_share(b, &m[0]) == 3 && budget_fair_share(b, &m[1]) == 3 &&
					budget_fair_share(b, &m[2]) == 2,
			"8 / 3: 3, 3, 2 (largest remainder, list order)");
	is_int(budget_fair_share(b, &m[3]), 0, "no demand: share 0");
	m[3].demand = 1;
	budget_resize(b, 3);
	{
		unsigned s = 0, zero = 0;

		for (i = 0; i < 4; i++) {
			s += budget_fair_share(b, &m[i]);
			zero += budget_fair_share(b, &m[i]) == 0;
		}
		ok(s <= 3, "fewer slots than members: shares sum to at most 3 (%u)", s);
		is_int(zero, 1, "and only one member is left out");
	}
	budget_destroy(b);
}

/* ---- simulated pools: clock, demand, servers ---- */

#define SIM_MAX 8

struct sim_member {
	struct budget_member m;
	bool joined;
	unsigned long next_release; /* clock when one of its servers ends a transaction */
	unsigned wait;		    /* consecutive rounds with demand and no slot */
};

struct sim {
	struct budget *b;
	struct sim_member p[SIM_MAX];
	unsigned long clock;
	unsigned txn_max; /* rounds a transaction lasts at most */
	uint64_t rng;
	unsigned long handovers, immediate, deferred;
	unsigned max_wait;
};

static uint64_t sim_rand(struct sim *s)
{
	return xorshift64star(&s->rng);
}

static unsigned sim_below(struct sim *s, unsigned n)
{
	return n ? (unsigned)(sim_rand(s) % n) : 0;
}

/* The pool opens servers for its waiting clients on free slots. */
static void sim_open(struct budget_member *m)
{
	if (m->demand > m->used)
		m->used = m->demand < m->capacity ? m->demand : m->capacity;
}

/* A slot of <v> is free now: take it and hand it to the neediest member. */
static void sim_hand_over(struct sim *s, struct budget_member *v, struct budget_member *to)
{
	if (budget_take_slot(s->b, v) == 0)
		return;
	s->handovers++;
	if (to == NULL)
		to = budget_pick_needy(s->b);
	if (to && budget_grow(s->b, to)) {
		budget_touch(s->b, to);
		sim_open(to);
	}
}

/* While <v> owes slots and has a free one, give it. */
static void sim_settle(struct sim *s, struct budget_member *v)
{
	while (v->owed && v->used < v->capacity)
		sim_hand_over(s, v, NULL);
}

static void sim_member_step(struct sim *s, struct sim_member *sm)
{
	struct budget_member *m = &sm->m, *v;

	/* one of its servers ends a transaction */
	if (s->clock >= sm->next_release) {
		sm->next_release = s->clock + 1 + sim_below(s, s->txn_max);
		/* within txn_max rounds each of its servers ends a transaction */
		if (m->max && m->used > m->max) {
			m->used = m->max; /* above a lowered pool_size: close */
			budget_shrink(s->b, m);
		}
		while (m->owed && m->used) {
			m->used--; /* closed instead of reused */
			s->deferred++;
			sim_hand_over(s, m, NULL);
		}
	}
	/* idle servers time out (clients went away); the janitor also gives
	 * back blocks nobody uses */
	if (m->used > m->demand && sim_below(s, 4) == 0) {
		m->used = m->demand;
		budget_shrink(s->b, m);
	}
	if (m->capacity > m->used && m->demand <= m->capacity && sim_below(s, 4) == 0)
		budget_shrink(s->b, m);
	sim_settle(s, m);
	sim_open(m);
	if (m->demand <= m->capacity)
		return;
	/* clients wait and every slot is used */
	if (budget_grow(s->b, m)) {
		budget_touch(s->b, m); /* as pool.c: served members yield rounding ties */
		sim_open(m);
		return;
	}
	v = budget_pick_victim(s->b, m);
	if (v == NULL)
		return;
	if (v->used > v->demand) /* an idle server: close it now */
		v->used--;
	if (v->used < v->capacity) {
		s->immediate++;
		sim_hand_over(s, v, m);
	}
}

static void sim_round(struct sim *s)
{
	unsigned order[SIM_MAX], i, j, demanding = 0;
	bool draining;

	s->clock++;
	for (i = 0; i < SIM_MAX; i++)
		order[i] = i;
	for (i = SIM_MAX - 1; i > 0; i--) {
		unsigned t = order[i];

		j = sim_below(s, i + 1);
		order[i] = order[j];
		order[j] = t;
	}
	for (i = 0; i < SIM_MAX; i++) {
		struct sim_member *sm = &s->p[order[i]];

		if (sm->joined)
			sim_member_step(s, sm);
	}
	bstats(s->b);
	draining = bst.held > bst.slots || bst.draining;
	for (i = 0; i < SIM_MAX; i++)
		if (s->p[i].joined && s->p[i].m.demand)
			demanding++;
	for (i = 0; i < SIM_MAX; i++) {
		struct sim_member *sm = &s->p[i];

		if (!sm->joined || draining || budget_slots(s->b) < demanding ||
				sm->m.demand == 0 || sm->m.capacity > 0) {
			sm->wait = 0;
			continue;
		}
		if (++sm->wait > s->max_wait)
			s->max_wait = sm->wait;
	}
}

static void sim_join(struct sim *s, unsigned i, unsigned max, unsigned weight, unsigned demand)
{
	struct sim_member *sm = &s->p[i];

	budget_member_init(&sm->m, max, weight);
	budget_join(s->b, &sm->m);
	sm->m.demand = demand;
	sm->joined = true;
	sm->wait = 0;
	sm->next_release = s->clock + 1 + sim_below(s, s->txn_max);
}

static void sim_leave(struct sim *s, unsigned i)
{
	budget_leave(s->b, &s->p[i].m);
	s->p[i].joined = false;
}

static unsigned sim_members(struct sim *s, struct budget_member **ms)
{
	unsigned i, n = 0;

	for (i = 0; i < SIM_MAX; i++)
		if (s->p[i].joined)
			ms[n++] = &s->p[i].m;
	return n;
}

/* Every member within 1 of its fair share, or above it by less than its
 * smallest block (which shrink cannot split). */
static bool sim_at_shares(struct sim *s, const char *what)
{
	bool good = true;
	unsigned i;

	for (i = 0; i < SIM_MAX; i++) {
		const struct budget_member *m = &s->p[i].m;
		unsigned sh;

		if (!s->p[i].joined)
			continue;
		sh = budget_fair_share(s->b, m);
		if (m->capacity + 1 < sh ||
				(m->capacity > sh + 1 &&
						m->capacity - sh >=
								1u << m->blocks[m->nblocks - 1].order)) {
			diag("%s: member %u capacity %u (%s), share %u", what, i, m->capacity,
					blocks(m), sh);
			good = false;
		}
	}
	return good;
}

static void test_converge(void)
{
	struct sim s;
	struct budget_member *ms[SIM_MAX];
	unsigned r, n;

	memset(&s, 0, sizeof(s));
	s.b = budget_create(8);
	s.txn_max = 3;
	s.rng = 42;
	sim_join(&s, 0, 0, 1, 24);
	for (r = 0; r < 10; r++)
		sim_round(&s);
	is_int(s.p[0].m.capacity, 8, "a lone busy pool takes the whole budget");
	sim_join(&s, 1, 0, 1, 4);
	for (r = 0; r < 40; r++)
		sim_round(&s);
	ok(s.p[0].m.capacity == 4 && s.p[1].m.capacity == 4,
			"24 vs 4 clients under 8: converged to 4 / 4 (%u / %u)", s.p[0].m.capacity,
			s.p[1].m.capacity);
	ok(s.p[0].m.taken >= 4 && s.p[1].m.lent >= 4,
			"slots taken back (%" PRIu64 ") and lent (%" PRIu64 ")", s.p[0].m.taken,
			s.p[1].m.lent);
	sim_join(&s, 2, 0, 2, 10);
	for (r = 0; r < 60; r++)
		sim_round(&s);
	ok(sim_at_shares(&s, "weights 1:1:2"), "a weight-2 pool joins: 2 / 2 / 4 (%u / %u / %u)",
			s.p[0].m.capacity, s.p[1].m.capacity, s.p[2].m.capacity);
	sim_leave(&s, 1);
	for (r = 0; r < 60; r++)
		sim_round(&s);
	ok(sim_at_shares(&s, "after a leave"), "one leaves: 3 / 5 (%u / %u)", s.p[0].m.capacity,
			s.p[2].m.capacity);
	s.p[0].m.demand = 0;
	for (r = 0; r < 60; r++)
		sim_round(&s);
	is_int(s.p[0].m.capacity, 0, "a pool with no clients ends up holding nothing");
	ok(s.p[2].m.capacity == 8, "the other grew into the whole budget (%u)", s.p[2].m.capacity);
	n = sim_members(&s, ms);
	ok(verify_ok(s.b, ms, n, "converge"), "accounting consistent");
	{
		struct budget_member *needy = &s.p[0].m;

		needy->demand = 1;
		ok(budget_pick_victim(s.b, needy) == &s.p[2].m, "a needy pool finds the victim");
		is_int(s.p[2].m.owed, 1, "the victim owes one slot");
		ok(budget_pick_victim(s.b, needy) == NULL,
				"no second victim while the first reclaim covers the shortfall");
		ok(budget_pick_victim(s.b, &s.p[2].m) == NULL,
				"a pool at its share gets no victim");
		s.p[2].m.used--;
		is_int(budget_take_slot(s.b, &s.p[2].m), 1, "victim gives up one slot");
		is_int(s.p[2].m.owed, 0, "debt paid");
		ok(budget_pick_needy(s.b) == needy, "the needy pool is the one to grow");
		is_int(budget_grow(s.b, needy), 1, "and gets the slot");
	}
	budget_destroy(s.b);
}

/* More demanding pools than slots: integer shares give some pools 0, and
 * without rotation the same ones would starve forever.  Every pool must get
 * slots within a bounded number of rounds, again and again. */
static void test_more_pools_than_slots(void)
{
	struct sim s;
	unsigned r, i, served[SIM_MAX] = { 0 }, wait[SIM_MAX] = { 0 }, worst = 0;
	bool all = true;

	memset(&s, 0, sizeof(s));
	s.b = budget_create(4);
	s.txn_max = 3;
	s.rng = 7;
	for (i = 0; i < SIM_MAX; i++)
		sim_join(&s, i, 0, 1, 3);
	for (r = 0; r < 400; r++) {
		sim_round(&s);
		for (i = 0; i < SIM_MAX; i++) {
			if (s.p[i].m.capacity > 0) {
				served[i]++;
				wait[i] = 0;
			} else if (++wait[i] > worst) {
				worst = wait[i];
			}
		}
	}
	for (i = 0; i < SIM_MAX; i++)
		if (served[i] < 20)
			all = false;
	ok(all, "8 pools on 4 slots: every pool holds slots in at least 20 of 400 rounds");
	ok(worst <= 60, "8 pools on 4 slots: no pool waits more than 60 rounds in a row (%u)", worst);
	budget_destroy(s.b);
}

static void test_resize(void)
{
	struct budget *b = budget_create(16);
	struct budget_member m, n, *ms[] = {&m, &n};
	uint64_t init[BUDDY_MAX_ORDER + 1] = {0};

	budget_member_init(&m, 0, 1);
	budget_member_init(&n, 0, 1);
	budget_join(b, &m);
	budget_join(b, &n);
	while (budget_grow(b, &m))
		;
	is_int(m.capacity, 16, "holds the whole 16");
	is_int(budget_resize(b, 24), 0, "grow the budget to 24");
	is_int(budget_free(b), 8, "8 new slots free");
	is_int(budget_grow(b, &n), 1, "another pool grows into them");
	ok(verify_ok(b, ms, 2, "resize up"), "accounting consistent after growing");
	budget_release_all(b, &n);
	is_int(budget_resize(b, 8), 0, "shrink the budget to 8 below what is held");
	bstats(b);
	ok(bst.draining == 8 && bst.free == 0 && bst.buddy.units == 16,
			"the held block drains: 8 held above, nothing free, 16 managed (%u, %u, "
			"%" PRIu64 ")",
			bst.draining, bst.free, bst.buddy.units);
	ok(verify_ok(b, ms, 2, "resize down"), "accounting consistent while draining");
	is_int(budget_grow(b, &n), 0, "no growth while over budget");
	n.demand = 4;
	ok(budget_pick_victim(b, &n) == &m, "the over-budget pool is the victim");
	m.used = 12;
	is_int(budget_take_slot(b, &m), 1, "it gives one slot");
	is_int(budget_grow(b, &n), 0, "still over budget: nothing to grow into");
	ok(verify_ok(b, ms, 2, "drain take"), "accounting consistent after a split while draining");
	m.used = 3;
	ok(budget_shrink(b, &m) > 0, "shrink to used 3 (%s)", blocks(&m));
	ok(m.capacity >= 3 && m.capacity <= 8, "capacity within the new budget (%u)", m.capacity);
	ok(verify_ok(b, ms, 2, "drain shrink"), "accounting consistent after shrinking");
	is_int(budget_resize(b, 20), 0, "grow the budget again to 20 while blocks sit above 8");
	ok(verify_ok(b, ms, 2, "resize up over held"), "accounting consistent");
	while (budget_grow(b, &n))
		;
	is_int(m.capacity + n.capacity, 20, "the two fill all 20");
	budget_release_all(b, &m);
	budget_release_all(b, &n);
	init[4] = init[2] = 1;
	ok(nr_free_eq(b, init), "all released: 20 = 16 + 4");
	is_int(budget_resize(b, 0), 0, "resize to 0");
	is_int(bstats(b)->buddy.units, 0, "nothing managed");
	is_int(budget_resize(b, 5), 0, "and back to 5");
	is_int(budget_resize(b, BUDGET_MAX_SLOTS + 1), -EINVAL, "too large refused");
	ok(verify_ok(b, ms, 2, "resize 0 and back"), "accounting consistent");
	budget_destroy(b);
}

/* Fill <b> with one-slot helpers, then let the helpers at chosen indices
 * go: holes of known shape. */
#define HELPERS (8 * BUDGET_MAX_BLOCKS)
static struct budget_member helper[HELPERS];

static void fill_with_helpers(struct budget *b, unsigned slots)
{
	unsigned i;

	for (i = 0; i < slots; i++) {
		budget_member_init(&helper[i], 1, 1);
		budget_join(b, &helper[i]);
		budget_grow(b, &helper[i]);
	}
}

static void helper_leave_at(struct budget *b, unsigned slots, unsigned idx)
{
	unsigned i;

	for (i = 0; i < slots; i++)
		if (helper[i].budget && helper[i].nblocks && helper[i].blocks[0].start == idx)
			budget_leave(b, &helper[i]);
}

static unsigned members_of(struct budget_member **ms, unsigned slots, struct budget_member *a)
{
	unsigned i, n = 0;

	for (i = 0; i < slots; i++)
		if (helper[i].budget)
			ms[n++] = &helper[i];
	ms[n++] = a;
	return n;
}

static void helpers_leave(struct budget *b, unsigned slots)
{
	unsigned i;

	for (i = 0; i < slots; i++)
		if (helper[i].budget)
			budget_leave(b, &helper[i]);
}

static void test_full_table(void)
{
	const unsigned nb = BUDGET_MAX_BLOCKS, s1 = 2 * nb, s2 = 8 * nb;
	struct budget *b = budget_create(s1);
	static struct budget_member *ms[HELPERS + 1];
	struct budget_member a;
	unsigned i, n, g;
	bool one_each = true;

	fill_with_helpers(b, s1);
	is_int(budget_free(b), 0, "helpers hold one slot each");
	for (i = 0; i < s1; i += 2)
		helper_leave_at(b, s1, i);
	budget_member_init(&a, 0, 1);
	budget_join(b, &a);
	for (i = 0; i < nb; i++)
		if (budget_grow(b, &a) != 1)
			one_each = false;
	ok(one_each && a.nblocks == nb, "%u scattered single slots fill the block table", nb);
	is_int(budget_grow(b, &a), 0, "budget exhausted");
	helper_leave_at(b, s1, 1);
	is_int(budget_grow(b, &a), 1, "full table: grows by merging with the freed buddy");
	ok(a.nblocks == nb && a.blocks[0].order == 1, "2+1+...: %s", blocks(&a));
	helper_leave_at(b, s1, 5);
	helper_leave_at(b, s1, 9);
	g = budget_grow(b, &a);
	g += budget_grow(b, &a);
	is_int(g, 2, "and again for two more freed buddies");
	n = members_of(ms, s1, &a);
	ok(verify_ok(b, ms, n, "full table of singles"), "accounting consistent");
	helpers_leave(b, s1);
	budget_leave(b, &a);
	budget_destroy(b);

	/* a full table of order-2 blocks: a split cannot keep every piece */
	b = budget_create(s2);
	fill_with_helpers(b, s2);
	for (i = 0; i < s2; i++)
		if (i % 8 < 4)
			helper_leave_at(b, s2, i);
	budget_member_init(&a, 0, 1);
	budget_join(b, &a);
	while (budget_grow(b, &a))
		a.used = a.capacity;
	ok(a.capacity == 4 * nb && a.nblocks == nb, "%u order-2 blocks (%u)", nb, a.capacity);
	is_int(budget_take_slot(b, &a), 0, "every slot used: nothing taken");
	a.used = 4 * nb - 1;
	is_int(budget_take_slot(b, &a), 0,
			"a split that would drop 2 slots is refused at used - 1");
	a.used = 4 * nb - 2;
	is_int(budget_take_slot(b, &a), 2, "at used - 2 the order-0 piece is given up too");
	is_int(a.capacity, 4 * nb - 2, "capacity never below used");
	n = members_of(ms, s2, &a);
	ok(verify_ok(b, ms, n, "full table of 4s"), "accounting consistent");
	helpers_leave(b, s2);
	budget_leave(b, &a);
	{
		uint64_t want[BUDDY_MAX_ORDER + 1] = {0};

		want[buddy_order_for(s2)] = 1;
		ok(nr_free_eq(b, want), "everyone gone: one free block of %u", s2);
	}
	budget_destroy(b);
}

static void test_blocks_str(void)
{
	struct budget *b = budget_create(64);
	struct budget_member m;
	char small[4];

	budget_member_init(&m, 13, 1);
	budget_join(b, &m);
	while (budget_grow(b, &m))
		;
	ok(strcmp(blocks(&m), "8+4+1") == 0, "13 = 8+4+1 (%s)", blocks(&m));
	budget_member_blocks_str(&m, small, sizeof(small));
	ok(strcmp(small, "8+4") == 0, "truncated into a short buffer (%s)", small);
	budget_destroy(b);
}

/* ---- randomized: members join and leave, demand changes, budget resizes ---- */

static void test_random(uint64_t seed)
{
	struct sim s;
	struct budget_member *ms[SIM_MAX];
	const unsigned long rounds = 100000;
	const unsigned K = 12; /* 3 x the longest transaction */
	const char *fail = NULL;
	unsigned long r, fail_round = 0, resizes = 0, churn = 0, reloads = 0;
	unsigned i, n, max_blocks = 0;

	memset(&s, 0, sizeof(s));
	s.rng = seed ? seed : 1;
	s.txn_max = 4;
	s.b = budget_create(8 + sim_below(&s, 57));
	for (i = 0; i < 4; i++)
		sim_join(&s, i, sim_below(&s, 3) ? 1 + sim_below(&s, 40) : 0, 1 + sim_below(&s, 3),
				sim_below(&s, 30));
	for (r = 0; r < rounds && !fail; r++) {
		/* adversarial demand: spikes, drops to zero, pools come and go */
		for (i = 0; i < SIM_MAX; i++) {
			struct sim_member *sm = &s.p[i];

			if (sim_below(&s, 400) == 0) {
				churn++;
				if (sm->joined)
					sim_leave(&s, i);
				else
					sim_join(&s, i,
							sim_below(&s, 3) ? 1 + sim_below(&s, 40)
									 : 0,
							1 + sim_below(&s, 3), sim_below(&s, 40));
			}
			if (sm->joined && sim_below(&s, 16) == 0)
				sm->m.demand = sim_below(&s, 3) ? sim_below(&s, 50) : 0;
			if (sm->joined && sim_below(&s, 2000) == 0) { /* reload: new pool_size */
				sm->m.max = sim_below(&s, 3) ? 1 + sim_below(&s, 40) : 0;
				budget_shrink(s.b, &sm->m);
				reloads++;
			}
		}
		if (sim_below(&s, 3000) == 0) {
			resizes++;
			if (budget_resize(s.b, 4 + sim_below(&s, 93)) != 0)
				fail = "resize failed";
		}
		sim_round(&s);
		n = sim_members(&s, ms);
		for (i = 0; i < n; i++)
			if (ms[i]->nblocks > max_blocks)
				max_blocks = ms[i]->nblocks;
		if (!fail)
			fail = verify(s.b, ms, n);
		if (!fail && s.max_wait > K)
			fail = "a pool with clients waited too long without a slot";
		if (fail)
			fail_round = r;
	}
	if (fail)
		diag("round %lu: %s", fail_round, fail);
	ok(fail == NULL,
			"%lu rounds: invariants hold every round (capacity <= max, held <= "
			"budget, free + held == managed, blocks disjoint)",
			r);
	ok(s.max_wait <= K, "no starvation: longest wait without a slot %u rounds (limit %u)",
			s.max_wait, K);
	bstats(s.b);
	diag("resizes %lu, reloads %lu, largest block table %u, grows refused for a full table "
	     "%" PRIu64,
			resizes, reloads, max_blocks, bstats(s.b)->table_full);
	diag("joins/leaves %lu, handovers %lu (immediate %lu, deferred %lu), "
	     "grows %" PRIu64 ", grow refusals %" PRIu64 ", frag_index %.3f",
			churn, s.handovers, s.immediate, s.deferred, bst.grows, bst.grow_fail,
			bst.buddy.frag_index);
	ok(s.handovers > 1000 && resizes > 10, "the run exercised reclaim and resizes");
	/* then demand holds still: shares converge from wherever it ended */
	if (budget_slots(s.b) < 16)
		budget_resize(s.b, 16);
	for (i = 0; i < SIM_MAX; i++)
		if (s.p[i].joined)
			s.p[i].m.demand = 10 + 7 * i;
	for (r = 0; r < 200; r++)
		sim_round(&s);
	n = sim_members(&s, ms);
	ok(sim_at_shares(&s, "steady after random") && verify_ok(s.b, ms, n, "steady"),
			"steady demand after the storm: every pool within 1 of its share");
	for (i = 0; i < SIM_MAX; i++)
		if (s.p[i].joined)
			sim_leave(&s, i);
	budget_resize(s.b, 64);
	{
		uint64_t want[BUDDY_MAX_ORDER + 1] = {0};

		want[6] = 1;
		ok(nr_free_eq(s.b, want), "after everyone leaves: one free block of 64 again");
	}
	budget_destroy(s.b);
}

/* ---- reference fair shares: the former O(n^2) algorithm, kept to check the
 * O(n log n) one against (same inputs, same shares) ---- */

#define REF_MAX 64

struct ref_member {
	struct budget_member *m; /* in member-list order */
};

static uint64_t ref_cap(unsigned slots, const struct budget_member *m)
{
	unsigned lim = m->max ? (m->max < BUDGET_MAX_SLOTS ? m->max : BUDGET_MAX_SLOTS) :
				BUDGET_MAX_SLOTS;
	unsigned c = m->demand < lim ? m->demand : lim;

	return c < slots ? c : slots;
}

static uint64_t ref_weight(const struct budget_member *m)
{
	return m->weight == 0 ? 1 : m->weight < BUDGET_MAX_WEIGHT ? m->weight : BUDGET_MAX_WEIGHT;
}

struct ref_solution {
	unsigned lb;
	uint64_t lo_p, lo_q, hi_p, hi_q, num, den, extra;
};

/* 0 low, 1 high, 2 free */
static int ref_classify(const struct ref_solution *s, uint64_t cap, uint64_t w)
{
	if (s->hi_p * w <= s->hi_q * s->lb)
		return 0;
	if (s->lo_p * w >= s->lo_q * cap)
		return 1;
	return 2;
}

static bool ref_fits(struct budget_member *const *ms, unsigned n, unsigned slots, unsigned lb,
		uint64_t p, uint64_t q)
{
	uint64_t sum = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		uint64_t v;

		if (ms[i]->demand == 0)
			continue;
		v = p * ref_weight(ms[i]);
		if (v < q * lb)
			v = q * lb;
		if (v > q * ref_cap(slots, ms[i]))
			v = q * ref_cap(slots, ms[i]);
		sum += v;
	}
	return sum <= (uint64_t)slots * q;
}

static void ref_consider(struct budget_member *const *ms, unsigned n, unsigned slots,
		struct ref_solution *s, uint64_t p, uint64_t q)
{
	if (ref_fits(ms, n, slots, s->lb, p, q)) {
		if (s->lo_q == 0 || p * s->lo_q > s->lo_p * q) {
			s->lo_p = p;
			s->lo_q = q;
		}
	} else if (s->hi_q == 0 || p * s->hi_q < s->hi_p * q) {
		s->hi_p = p;
		s->hi_q = q;
	}
}

/* Every member's share, into <out> (list order), the old way. */
static void ref_shares(struct budget_member *const *ms, unsigned n, unsigned slots, unsigned *out)
{
	struct ref_solution s;
	uint64_t sumcap = 0, fixed = 0, floors = 0;
	unsigned i, j, nd = 0;

	memset(&s, 0, sizeof(s));
	for (i = 0; i < n; i++) {
		out[i] = 0;
		if (ms[i]->demand) {
			nd++;
			sumcap += ref_cap(slots, ms[i]);
		}
	}
	if (nd == 0 || slots == 0)
		return;
	if (sumcap <= slots) {
		for (i = 0; i < n; i++)
			out[i] = ms[i]->demand ? (unsigned)ref_cap(slots, ms[i]) : 0;
		return;
	}
	s.lb = slots >= nd ? 1 : 0;
	if (s.lb == 0)
		s.lo_q = 1;
	for (i = 0; i < n; i++) {
		if (ms[i]->demand == 0)
			continue;
		if (s.lb)
			ref_consider(ms, n, slots, &s, s.lb, ref_weight(ms[i]));
		ref_consider(ms, n, slots, &s, ref_cap(slots, ms[i]), ref_weight(ms[i]));
	}
	for (i = 0; i < n; i++) {
		uint64_t cap = ref_cap(slots, ms[i]), w = ref_weight(ms[i]);
		int c;

		if (ms[i]->demand == 0)
			continue;
		c = ref_classify(&s, cap, w);
		fixed += c == 0 ? s.lb : c == 1 ? cap : 0;
		if (c == 2)
			s.den += w;
	}
	s.num = slots - fixed;
	for (i = 0; i < n; i++)
		if (ms[i]->demand && ref_classify(&s, ref_cap(slots, ms[i]), ref_weight(ms[i])) == 2)
			floors += s.num * ref_weight(ms[i]) / s.den;
	s.extra = s.num - floors;
	for (i = 0; i < n; i++) {
		uint64_t cap = ref_cap(slots, ms[i]), w = ref_weight(ms[i]), rem, rank = 0;
		int c;

		if (ms[i]->demand == 0)
			continue;
		c = ref_classify(&s, cap, w);
		if (c != 2) {
			out[i] = c == 0 ? s.lb : (unsigned)cap;
			continue;
		}
		rem = s.num * w % s.den;
		out[i] = (unsigned)(s.num * w / s.den);
		if (s.extra == 0 || rem == 0)
			continue;
		for (j = 0; j < n; j++) {
			uint64_t r;

			if (j == i || ms[j]->demand == 0 ||
					ref_classify(&s, ref_cap(slots, ms[j]), ref_weight(ms[j])) != 2)
				continue;
			r = s.num * ref_weight(ms[j]) % s.den;
			if (r > rem || (r == rem && j < i))
				rank++;
		}
		out[i] += rank < s.extra ? 1 : 0;
	}
}

/* Randomized joins, leaves, touches, demand / weight / pool_size changes and
 * resizes: after each, every member's budget_fair_share() must equal the
 * reference.  Member-list order is mirrored in <ord>. */
static void test_shares_vs_reference(uint64_t seed)
{
	static struct budget_member pool[REF_MAX];
	struct budget_member *ord[REF_MAX];
	unsigned want[REF_MAX], n = 0, i, k, step, checks = 0;
	uint64_t rng = seed ? seed : 1;
	struct budget *b = budget_create(16);
	const char *fail = NULL;

	for (i = 0; i < REF_MAX; i++)
		budget_member_init(&pool[i], 0, 1);
	for (step = 0; step < 20000 && !fail; step++) {
		unsigned op = (unsigned)(xorshift64star(&rng) % 100), slots;
		struct budget_member *m = &pool[xorshift64star(&rng) % REF_MAX];

		if (op < 15 && m->budget == NULL) {
			m->demand = (unsigned)(xorshift64star(&rng) % 12);
			budget_join(b, m);
			ord[n++] = m;
		} else if (op < 25 && m->budget == b) {
			budget_leave(b, m);
			for (i = 0; ord[i] != m; i++)
				;
			memmove(&ord[i], &ord[i + 1], (n - i - 1) * sizeof(ord[0]));
			n--;
		} else if (op < 40 && m->budget == b) {
			budget_touch(b, m);
			for (i = 0; ord[i] != m; i++)
				;
			memmove(&ord[i], &ord[i + 1], (n - i - 1) * sizeof(ord[0]));
			ord[n - 1] = m;
		} else if (op < 75) {
			m->demand = (unsigned)(xorshift64star(&rng) % (op < 60 ? 12 : 200));
		} else if (op < 85) {
			m->weight = (unsigned)(xorshift64star(&rng) % 5 ? xorshift64star(&rng) % 9 :
									  xorshift64star(&rng) % 100000);
		} else if (op < 93) {
			m->max = (unsigned)(xorshift64star(&rng) % 3 ? xorshift64star(&rng) % 30 : 0);
		} else {
			slots = (unsigned)(xorshift64star(&rng) % (op < 97 ? 40 : 600));
			budget_resize(b, slots);
		}
		slots = budget_slots(b);
		ref_shares(ord, n, slots, want);
		for (k = 0; k < n && !fail; k++) {
			checks++;
			if (budget_fair_share(b, ord[k]) != want[k]) {
				diag("step %u: member %u of %u: share %u, reference %u (slots %u)",
						step, k, n, budget_fair_share(b, ord[k]), want[k], slots);
				fail = "share differs";
			}
		}
	}
	ok(fail == NULL, "randomized membership: O(n log n) shares equal the O(n^2) reference (%u checks)",
			checks);
	budget_destroy(b);
}

int main(void)
{
	const char *env = getenv("BUDGET_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);

	plan(142);
	test_basics();
	test_doubling();
	test_odd_budgets();
	test_shrink_take();
	test_fair_shares();
	test_converge();
	test_more_pools_than_slots();
	test_resize();
	test_full_table();
	test_blocks_str();
	diag("random seed %" PRIu64 " (BUDGET_SEED=%" PRIu64 " to repeat)", seed, seed);
	test_random(seed);
	test_shares_vs_reference(seed);
	return tap_exit_status();
}
