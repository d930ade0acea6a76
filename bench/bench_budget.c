/* bench_budget.c -- make bench-budget: the cost of fair-share computation with many pools.
 *
 * One budget domain of BENCH_SLOTS slots with BENCH_POOLS members (default
 * 1,000), each with random demand, weight and pool_size, every one holding
 * a slot.  Times one budget_fair_share() (a share refresh for one pool),
 * the shares of every pool (a full refresh of the domain),
 * budget_pick_victim() and budget_pick_needy(), in ns per call.  Then
 * pool_get() on a bare struct proxy (no event loop, an empty config):
 * BENCH_POOLS pools over BENCH_DBS databases, ns per pool created, per
 * lookup of an existing pool, and per pool_budget_refresh().
 * Environment: BENCH_POOLS, BENCH_SLOTS, BENCH_DBS (100), BENCH_ITERS (a
 * fixed count of rounds per loop instead of 0.5 s, for callgrind; the
 * every-pool loop is then skipped).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "budget.h"
#include "config.h"
#include "cred.h"
#include "pool.h"
#include "proxy.h"
#include "slab.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned env_unsigned(const char *name, unsigned def)
{
	const char *v = getenv(name);

	return v ? (unsigned)strtoul(v, NULL, 0) : def;
}

static unsigned fixed_iters; /* BENCH_ITERS: loops run this often (for callgrind) */

/* Another round: for 0.5 s, or BENCH_ITERS rounds. */
static bool bench_more(uint64_t t0, uint64_t *t, uint64_t iters)
{
	*t = now_ns();
	return fixed_iters ? iters < fixed_iters : *t - t0 < 500000000u;
}

/* pool_get() with <n> pools over <ndb> databases. */
static void bench_pool_get(unsigned n, unsigned ndb)
{
	struct proxy *p = calloc(1, sizeof(*p));
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct db *dbs = calloc(ndb, sizeof(*dbs));
	struct cred *creds = calloc(n, sizeof(*creds));
	uint64_t t0, t, iters;
	unsigned i;

	if (!p || !cfg || !dbs || !creds)
		exit(1);
	cfg->s.default_pool_size = 20;
	cfg->s.max_client_conn = 100;
	cfg->s.pool_mode = POOL_MODE_TRANSACTION;
	p->cfg = cfg;
	p->arena = slab_arena_create(0);
	p->pool_cache = slab_cache_create(p->arena, "pool", sizeof(struct pool), 0, NULL, NULL, NULL);
	if (p->pool_cache == NULL)
		exit(1);
	list_init(&p->pools);
	list_init(&p->dbs);
	for (i = 0; i < ndb; i++) {
		dbs[i].pool_size = dbs[i].reserve_pool_size = dbs[i].max_db_connections = -1;
		dbs[i].min_pool_size = -1;
		dbs[i].pool_weight = 1;
		dbs[i].pool_mode = CONFIG_INHERIT;
		snprintf(dbs[i].name, sizeof(dbs[i].name), "db%u", i);
		list_append(&p->dbs, &dbs[i].node);
	}
	for (i = 0; i < n; i++)
		snprintf(creds[i].name, sizeof(creds[i].name), "u%u", i);
	t0 = now_ns();
	for (i = 0; i < n; i++)
		if (pool_get(p, &dbs[i % ndb], &creds[i]) == NULL)
			exit(1);
	t = now_ns();
	printf("%u pools, %u dbs: pool_get creating a pool           %10.0f ns\n", n, ndb,
			(double)(t - t0) / n);
	iters = 0;
	t0 = now_ns();
	do {
		i = (unsigned)(iters % n);
		if (pool_get(p, &dbs[i % ndb], &creds[i]) == NULL)
			exit(1);
		iters++;
	} while (bench_more(t0, &t, iters));
	printf("%u pools, %u dbs: pool_get finding a pool            %10.0f ns\n", n, ndb,
			(double)(t - t0) / (double)iters);
	iters = 0;
	t0 = now_ns();
	do {
		pool_budget_refresh(p);
		iters++;
	} while (bench_more(t0, &t, iters));
	printf("%u pools, %u dbs: pool_budget_refresh (every db)     %10.0f ns\n", n, ndb,
			(double)(t - t0) / (double)iters);
}

int main(void)
{
	unsigned n = env_unsigned("BENCH_POOLS", 1000), slots = env_unsigned("BENCH_SLOTS", 2048);
	struct budget_member *ms = calloc(n, sizeof(*ms));
	struct budget *b = budget_create(slots);
	uint64_t t0, t, sink = 0, iters;
	unsigned i, r;

	if (ms == NULL || b == NULL)
		return 1;
	fixed_iters = env_unsigned("BENCH_ITERS", 0);
	srand(1);
	for (i = 0; i < n; i++) {
		budget_member_init(&ms[i], rand() % 3 ? 1 + (unsigned)rand() % 40 : 0,
				1 + (unsigned)rand() % 8);
		ms[i].demand = (unsigned)rand() % 30;
		if (budget_join(b, &ms[i]) < 0)
			return 1;
		if (i < slots && budget_grow(b, &ms[i]))
			ms[i].used = ms[i].capacity;
	}
	iters = 0;
	t0 = now_ns();
	do {
		sink += budget_fair_share(b, &ms[iters % n]);
		iters++;
	} while (bench_more(t0, &t, iters));
	printf("%u pools, %u slots: budget_fair_share (one pool)  %10.0f ns\n", n, slots,
			(double)(t - t0) / (double)iters);
	iters = 0;
	t0 = now_ns();
	do {
		for (r = 0; r < n && !fixed_iters; r++)
			sink += budget_fair_share(b, &ms[r]);
		iters++;
	} while (bench_more(t0, &t, iters) && iters < 1000);
	if (!fixed_iters)
		printf("%u pools, %u slots: shares of every pool       %10.0f ns\n", n, slots,
			(double)(t - t0) / (double)iters);
	iters = 0;
	t0 = now_ns();
	do {
		struct budget_member *v = budget_pick_victim(b, &ms[n - 1 - iters % n]);

		if (v) { /* undo the promise so every call sees the same state */
			v->owed--;
			sink++;
		}
		iters++;
	} while (bench_more(t0, &t, iters));
	printf("%u pools, %u slots: budget_pick_victim          %10.0f ns\n", n, slots,
			(double)(t - t0) / (double)iters);
	iters = 0;
	t0 = now_ns();
	do {
		sink += budget_pick_needy(b) != NULL;
		iters++;
	} while (bench_more(t0, &t, iters));
	printf("%u pools, %u slots: budget_pick_needy           %10.0f ns\n", n, slots,
			(double)(t - t0) / (double)iters);
	fprintf(stderr, "(%" PRIu64 ")\n", sink);
	bench_pool_get(n, env_unsigned("BENCH_DBS", 100));
	return 0;
}
